//! The checkpoint file: acknowledged offsets per file, as versioned JSON written atomically.
//!
//! `data_dir/checkpoints.json` is replaced as a whole: written to `checkpoints.json.tmp`,
//! fsynced, renamed over the old file, and the directory fsynced, so after a crash the file is
//! either the old or the new version, never a mix.
use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{TailError, CHECKPOINT_FILE};

/// The version this code writes and reads.
const VERSION: u32 = 1;

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The fingerprint as 16 hex digits (as in document ids).
    pub(crate) fingerprint: String,
    /// The path when last written (informational: files are matched by identity).
    pub(crate) path: PathBuf,
    /// The end of the contiguous acknowledged prefix.
    pub(crate) offset: u64,
    /// Device number.
    pub(crate) dev: u64,
    /// Inode number.
    pub(crate) inode: u64,
    /// How many first bytes the fingerprint covers.
    pub(crate) head_len: u32,
    /// CRC-32 of those bytes.
    #[serde(default)]
    pub(crate) head_crc: u32,
    /// Salt of the fingerprint (0 unless the inode held another file before).
    #[serde(default)]
    pub(crate) salt: u64,
}

impl Entry {
    pub(crate) fn fingerprint(&self) -> Option<u64> {
        u64::from_str_radix(&self.fingerprint, 16).ok()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    version: u32,
    files: Vec<Entry>,
}

/// Where the checkpoint file lives.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
}

impl Store {
    /// Creates the directory if needed, checks that it is writable, and loads the entries.
    pub(crate) fn open(dir: &Path) -> Result<(Store, Vec<Entry>), TailError> {
        let dir_err = |source| TailError::DataDir {
            dir: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(dir_err)?;
        let store = Store {
            dir: dir.to_path_buf(),
            path: dir.join(CHECKPOINT_FILE),
            tmp: dir.join(format!("{CHECKPOINT_FILE}.tmp")),
        };
        // Probe: fail now, with the directory named, rather than at the first checkpoint.
        fs::File::create(&store.tmp)
            .and_then(|_| fs::remove_file(&store.tmp))
            .map_err(dir_err)?;
        let entries = store.load()?;
        Ok((store, entries))
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Vec<Entry>, TailError> {
        let err = |reason: String| TailError::CheckpointRead {
            path: self.path.clone(),
            reason,
        };
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e.to_string())),
        };
        let doc: Document =
            serde_json::from_slice(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        if doc.version != VERSION {
            return Err(err(format!(
                "version {} is not supported (this build reads version {VERSION})",
                doc.version
            )));
        }
        if let Some(bad) = doc.files.iter().find(|e| e.fingerprint().is_none()) {
            return Err(err(format!("bad fingerprint {:?}", bad.fingerprint)));
        }
        Ok(doc.files)
    }

    /// Replaces the checkpoint file atomically with these entries.
    pub(crate) fn write(&self, files: Vec<Entry>) -> Result<(), TailError> {
        let doc = Document {
            version: VERSION,
            files,
        };
        self.write_doc(&doc)
            .map_err(|source| TailError::CheckpointWrite {
                path: self.path.clone(),
                source,
            })
    }

    fn write_doc(&self, doc: &Document) -> io::Result<()> {
        let bytes = serde_json::to_vec(doc).map_err(io::Error::other)?;
        let mut f = fs::File::create(&self.tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (store, entries) = Store::open(&dir.path().join("sub")).unwrap();
        assert!(entries.is_empty());
        let e = Entry {
            fingerprint: format!("{:016x}", u64::MAX - 1),
            path: "/var/log/a.log".into(),
            offset: 42,
            dev: 1,
            inode: 2,
            head_len: 256,
            head_crc: 7,
            salt: 0,
        };
        store.write(vec![e.clone()]).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with(r#"{"version":1,"files":[{"fingerprint":"fffffffffffffffe""#));
        let (_, back) = Store::open(&dir.path().join("sub")).unwrap();
        assert_eq!(back, vec![e]);

        fs::write(store.path(), br#"{"version":2,"files":[]}"#).unwrap();
        let msg = Store::open(&dir.path().join("sub"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("version 2") && msg.contains("move it away"),
            "{msg}"
        );
        fs::write(store.path(), b"{").unwrap();
        assert!(Store::open(&dir.path().join("sub")).is_err());
    }

    #[test]
    fn unwritable_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let msg = Store::open(&file.join("data")).unwrap_err().to_string();
        assert!(
            msg.contains("plain-file/data") && msg.contains("writable volume"),
            "{msg}"
        );
    }
}
