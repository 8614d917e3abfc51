//! One followed file: its open descriptor, identity, line splitter and timers.
//!
//! The descriptor is opened once, when the file is found, and read sequentially from then on:
//! after a rename, or after the path was deleted, the same descriptor reads what remains.
//! Where reading starts is decided here: a matching checkpoint entry (same device, inode and
//! first bytes), else the start position for files found at start, else the head.
use std::{
    fs::File,
    io::{self, Seek, SeekFrom},
    os::unix::fs::{FileExt, MetadataExt},
    path::PathBuf,
    sync::Arc,
};

use tokio::time::Instant;
use tracing::info;

use super::{
    ack::{FileAck, Shared},
    checkpoint::Entry,
    fingerprint::Head,
    lines::Splitter,
    FileInfo, StartAt, TailConfig, FINGERPRINT_BYTES,
};

/// Reads up to `len` first bytes of the file (fewer if it is shorter).
pub(crate) fn read_head(file: &File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// A random non-zero salt.
fn new_salt() -> u64 {
    rand::random::<u64>() | 1
}

/// A followed file.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) file: File,
    pub(crate) dev: u64,
    pub(crate) inode: u64,
    pub(crate) path: PathBuf,
    /// The resolved path when `path` is a symlink (events name the target).
    pub(crate) real_path: Option<PathBuf>,
    pub(crate) ack: Arc<FileAck>,
    /// Known once the file had data.
    pub(crate) info: Option<Arc<FileInfo>>,
    pub(crate) head: Option<Head>,
    /// Salt of the fingerprint to take when the file gets data.
    pub(crate) salt: u64,
    pub(crate) splitter: Splitter,
    pub(crate) size: u64,
    /// Sequence number of the next chunk.
    pub(crate) seq: u64,
    /// There may be data to read.
    pub(crate) more: bool,
    /// When the held partial line started waiting.
    pub(crate) pending_since: Option<Instant>,
    /// When the file was found gone from the globs (deleted or renamed away).
    pub(crate) gone_since: Option<Instant>,
    /// When data was last read.
    pub(crate) last_data: Instant,
}

impl Tracked {
    /// Opens a file found at `path`. `entries`: unclaimed checkpoint entries (a match is
    /// removed). `at_start`: found by the initial scan (the start position applies).
    pub(crate) fn open(
        path: PathBuf,
        config: &TailConfig,
        shared: &Shared,
        entries: &mut Vec<Entry>,
        at_start: bool,
        reused: bool,
    ) -> io::Result<Self> {
        let mut file = File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let (dev, inode, size) = (meta.dev(), meta.ino(), meta.len());
        let mut start = None;
        let mut head = None;
        let mut salt = if reused { new_salt() } else { 0 };
        let mut why = "new file, reading from the start";
        let same_head = |e: &Entry| {
            read_head(&file, e.head_len as usize)
                .is_ok_and(|h| h.len() == e.head_len as usize && crc32fast::hash(&h) == e.head_crc)
        };
        if let Some(i) = entries
            .iter()
            .position(|e| e.dev == dev && e.inode == inode && same_head(e))
        {
            let e = entries.swap_remove(i);
            if size >= e.offset {
                salt = e.salt;
                head = match (e.head_len, e.fingerprint()) {
                    (0, _) | (_, None) => None,
                    (len, Some(fingerprint)) => Some(Head {
                        len,
                        crc: e.head_crc,
                        salt,
                        fingerprint,
                    }),
                };
                start = Some(e.offset);
                why = "resuming at the checkpoint";
            } else {
                salt = new_salt();
                why = "shorter than its checkpoint (truncated), reading from the start";
            }
        }
        let start = start.unwrap_or(if at_start && config.start_at == StartAt::End {
            why = "found at start without checkpoint, reading from the end";
            size
        } else {
            0
        });
        if head.is_none() && size > 0 {
            let bytes = read_head(&file, FINGERPRINT_BYTES.min(size as usize))?;
            head = Some(Head::of(dev, inode, &bytes, salt));
        }
        file.seek(SeekFrom::Start(start))?;
        let real_path = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.file_type().is_symlink())
            .then(|| std::fs::canonicalize(&path).ok())
            .flatten();
        let ack = FileAck::new(path.clone(), dev, inode, head, salt, start, size);
        shared.register(ack.clone());
        info!(path = %path.display(), offset = start, size, "following file: {why}");
        let now = Instant::now();
        Ok(Self {
            info: head.map(|h| {
                Arc::new(FileInfo {
                    path: path.clone(),
                    fingerprint: h.fingerprint,
                })
            }),
            file,
            dev,
            inode,
            path,
            real_path,
            ack,
            head,
            salt,
            splitter: Splitter::new(config.max_line_bytes, start),
            size,
            seq: 0,
            more: true,
            pending_since: None,
            gone_since: None,
            last_data: now,
        })
    }

    /// Sets the fingerprint from the first bytes (the file just got its first data).
    pub(crate) fn set_head(&mut self, bytes: &[u8], shared: &Shared) {
        let h = Head::of(self.dev, self.inode, bytes, self.salt);
        self.head = Some(h);
        self.info = Some(Arc::new(FileInfo {
            path: self.path.clone(),
            fingerprint: h.fingerprint,
        }));
        self.ack.state().head = Some(h);
        shared.touch();
    }

    /// Records a new path (renamed within the globs).
    pub(crate) fn rename(&mut self, path: PathBuf, shared: &Shared) {
        info!(from = %self.path.display(), to = %path.display(), "file renamed, following it");
        self.info = self.info.as_ref().map(|i| {
            Arc::new(FileInfo {
                path: path.clone(),
                fingerprint: i.fingerprint,
            })
        });
        self.ack.state().path = path.clone();
        self.path = path;
        shared.touch();
    }

    /// Whether the first bytes changed since they were checked (content replaced, e.g.
    /// truncated then written past our offset). While the checked part is shorter than
    /// [`FINGERPRINT_BYTES`] it grows with the file (the fingerprint itself stays), so that a
    /// first read of a few bytes (`2024-`) does not leave a weak check behind.
    pub(crate) fn check_head(&mut self, shared: &Shared) -> bool {
        let Some(mut h) = self.head else { return false };
        let Ok(bytes) = read_head(&self.file, FINGERPRINT_BYTES.max(h.len as usize)) else {
            return false;
        };
        let len = h.len as usize;
        if bytes.len() < len || crc32fast::hash(&bytes[..len]) != h.crc {
            return true;
        }
        if bytes.len() > len {
            h.len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            h.crc = crc32fast::hash(&bytes);
            self.head = Some(h);
            self.ack.state().head = Some(h);
            shared.touch();
        }
        false
    }

    /// Starts over at offset 0 as a new file (after a truncation).
    pub(crate) fn restart(&mut self, config: &TailConfig, shared: &Shared) -> io::Result<()> {
        shared.unregister(&self.ack);
        self.file.seek(SeekFrom::Start(0))?;
        self.size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        self.salt = new_salt();
        self.ack = FileAck::new(
            self.path.clone(),
            self.dev,
            self.inode,
            None,
            self.salt,
            0,
            self.size,
        );
        shared.register(self.ack.clone());
        self.info = None;
        self.head = None;
        self.splitter = Splitter::new(config.max_line_bytes, 0);
        self.seq = 0;
        self.more = true;
        self.pending_since = None;
        Ok(())
    }

    /// Publishes size and read offset for stats.
    pub(crate) fn publish(&self) {
        let mut s = self.ack.state();
        s.size = self.size;
        s.read_offset = self.splitter.read_end();
    }
}
