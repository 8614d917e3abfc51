//! The reader task: discovery, rotation, truncation, reading and sending.
//!
//! One task owns every followed file. It wakes on inotify events, on the rescan timer, on the
//! partial-line and let-go deadlines, and on room in the in-flight budget; otherwise it sleeps.
//! When awake it reads one block (256 KiB) per file with data in turn, so one busy file does
//! not starve the others, and sends the lines in chunks of at most `max_batch_bytes`. A full
//! channel or an exhausted in-flight budget stops reading: the files are the buffer.
use std::{
    collections::{HashMap, HashSet},
    io::{self, Read},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    sync::Arc,
};

use tokio::{
    sync::mpsc,
    time::{sleep_until, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    ack::{AckToken, Shared},
    checkpoint::Entry,
    file::{read_head, Tracked},
    glob::Globs,
    watch::{Events, Watcher},
    Chunk, Line, TailConfig, FINGERPRINT_BYTES,
};

/// Bytes read per `read` call.
const BLOCK: usize = 256 * 1024;
/// How many let-go files are remembered (for salting fingerprints of reused inodes).
const MAX_RETIRED: usize = 4096;

/// Why the reader stopped.
#[derive(Debug)]
enum Stop {
    Cancelled,
    ReceiverGone,
}

pub(crate) struct Reader {
    config: TailConfig,
    globs: Arc<Globs>,
    shared: Arc<Shared>,
    events: Arc<Events>,
    watcher: Option<Watcher>,
    tx: mpsc::Sender<Chunk>,
    cancel: CancellationToken,
    files: Vec<Tracked>,
    /// The read buffer ([`BLOCK`] bytes while reading; empty after a quiet spell).
    buf: Vec<u8>,
    /// When a block was last read: the buffer is let go once reading was quiet for a rescan
    /// interval, so an idle tailer holds no read buffer.
    last_read: Instant,
    /// Device and inode of files let go: a new file there gets a salted fingerprint.
    retired: HashSet<(u64, u64)>,
    /// Paths that could not be opened, with the error, to warn once.
    warned: HashMap<PathBuf, String>,
    next_rescan: Instant,
}

impl Reader {
    pub(crate) fn new(
        config: TailConfig,
        globs: Arc<Globs>,
        shared: Arc<Shared>,
        events: Arc<Events>,
        watcher: Option<Watcher>,
        tx: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            next_rescan: Instant::now() + config.rescan_interval,
            config,
            globs,
            shared,
            events,
            watcher,
            tx,
            cancel,
            files: Vec::new(),
            buf: Vec::new(),
            last_read: Instant::now(),
            warned: HashMap::new(),
            retired: HashSet::new(),
        }
    }

    /// The initial scan: checkpoints (`entries`, matches removed) and the start position
    /// apply to the files found.
    pub(crate) fn scan_at_start(&mut self, entries: &mut Vec<Entry>) {
        let truncated = self.scan(entries, true);
        debug_assert!(truncated.is_empty(), "no file is followed before the start");
    }

    pub(crate) async fn run(mut self) {
        match self.run_inner().await {
            Err(Stop::Cancelled) => debug!("tailer stopped"),
            Err(Stop::ReceiverGone) => debug!("tailer stopped: nobody receives lines"),
            Ok(()) => {}
        }
    }

    async fn run_inner(&mut self) -> Result<(), Stop> {
        loop {
            #[cfg(test)]
            self.shared
                .rounds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            if self.shared.over_budget() {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                    _ = self.shared.space.notified() => {}
                }
                continue;
            }
            let now = Instant::now();
            let changes = self.events.take();
            let periodic = now >= self.next_rescan;
            if changes.rescan || periodic {
                if periodic {
                    self.next_rescan = now + self.config.rescan_interval;
                }
                let truncated = self.scan(&mut Vec::new(), false);
                for i in truncated {
                    self.truncated(i).await?;
                }
            }
            for t in &mut self.files {
                if changes.all
                    || changes.paths.contains(&t.path)
                    || t.real_path
                        .as_ref()
                        .is_some_and(|p| changes.paths.contains(p))
                {
                    t.more = true;
                }
            }
            let mut progressed = false;
            for i in 0..self.files.len() {
                if self.files[i].more {
                    self.read_block(i).await?;
                    progressed = true;
                    if self.shared.over_budget() {
                        break;
                    }
                }
            }
            self.timers(Instant::now()).await?;
            if progressed {
                tokio::task::consume_budget().await;
                continue;
            }
            if !self.buf.is_empty()
                && now.duration_since(self.last_read) >= self.config.rescan_interval
            {
                self.buf = Vec::new();
            }
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                _ = self.events.notify.notified() => {}
                _ = sleep_until(deadline) => {}
            }
        }
    }

    /// The earliest timer: rescan, a partial line's timeout, a gone file's let-go.
    fn next_deadline(&self) -> Instant {
        let mut d = self.next_rescan;
        for t in &self.files {
            if let Some(since) = t.pending_since.filter(|_| !t.more) {
                d = d.min(since + self.config.partial_line_timeout);
            }
            if let Some(gone) = t.gone_since {
                d = d.min(gone.max(t.last_data) + self.config.rescan_interval);
            }
        }
        d
    }

    /// Re-globs: notices renames, gone files, growth, truncation; opens new files.
    /// Returns the indices of truncated files.
    fn scan(&mut self, entries: &mut Vec<Entry>, at_start: bool) -> Vec<usize> {
        if let Some(w) = &mut self.watcher {
            for root in self.globs.roots() {
                w.ensure(&root.dir, root.recursive());
            }
        }
        let mut by_id: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut order = Vec::new();
        for (path, meta) in self.globs.walk() {
            let id = (meta.dev(), meta.ino());
            if let std::collections::hash_map::Entry::Vacant(v) = by_id.entry(id) {
                v.insert(path);
                order.push(id);
            }
        }
        let now = Instant::now();
        let mut truncated = Vec::new();
        for (i, t) in self.files.iter_mut().enumerate() {
            match by_id.remove(&(t.dev, t.inode)) {
                Some(path) => {
                    if path != t.path {
                        t.rename(path, &self.shared);
                    }
                    t.gone_since = None;
                }
                None if t.gone_since.is_none() => {
                    info!(path = %t.path.display(), "file deleted or renamed away, reading it to its end");
                    t.gone_since = Some(now);
                }
                None => {}
            }
            if let Ok(meta) = t.file.metadata() {
                t.size = meta.len();
                let read = t.splitter.read_end();
                if t.size < read || t.check_head(&self.shared) {
                    truncated.push(i);
                } else if t.size > read {
                    t.more = true;
                }
            }
            t.publish();
        }
        for id in order {
            let Some(path) = by_id.remove(&id) else {
                continue;
            };
            let reused = self.retired.contains(&id);
            match Tracked::open(
                path.clone(),
                &self.config,
                &self.shared,
                entries,
                at_start,
                reused,
            ) {
                Ok(t) => {
                    if let (Some(w), Some(real)) = (&mut self.watcher, &t.real_path) {
                        if let Some(dir) = real.parent() {
                            w.ensure(dir, false);
                        }
                    }
                    self.warned.remove(&path);
                    self.files.push(t);
                }
                Err(error) => {
                    let text = error.to_string();
                    if self.warned.get(&path) != Some(&text) {
                        warn!(%error, path = %path.display(), "cannot open file, retrying at each rescan");
                        self.warned.insert(path, text);
                    }
                }
            }
        }
        truncated
    }

    /// Handles a truncated (or rewritten) file: what was held is emitted, then the file is
    /// read again from offset 0 as a new file.
    async fn truncated(&mut self, i: usize) -> Result<(), Stop> {
        self.flush_partial(i).await?;
        let t = &mut self.files[i];
        info!(path = %t.path.display(), size = t.size, offset = t.splitter.read_end(), "file truncated or rewritten, reading it again from the start");
        if let Err(error) = t.restart(&self.config, &self.shared) {
            warn!(%error, path = %t.path.display(), "cannot seek in truncated file");
        }
        Ok(())
    }

    /// Reads one block of file `i` and sends its lines.
    async fn read_block(&mut self, i: usize) -> Result<(), Stop> {
        let t = &mut self.files[i];
        // Rewritten in place (truncated, then written past our offset) before we looked?
        if t.check_head(&self.shared) {
            t.size = t.file.metadata().map_or(t.size, |m| m.len());
            return self.truncated(i).await;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; BLOCK];
        }
        self.last_read = Instant::now();
        let t = &mut self.files[i];
        let n = match read_retry(&mut t.file, &mut self.buf) {
            Ok(n) => n,
            Err(error) => {
                warn!(%error, path = %t.path.display(), "cannot read file");
                t.more = false;
                return Ok(());
            }
        };
        if n == 0 {
            t.more = false;
            if let Ok(meta) = t.file.metadata() {
                t.size = meta.len();
                if t.size < t.splitter.read_end() {
                    t.publish();
                    return self.truncated(i).await;
                }
            }
            t.publish();
            return Ok(());
        }
        let now = Instant::now();
        t.last_data = now;
        if t.head.is_none() {
            let start = t.splitter.read_end();
            if start == 0 {
                let len = n.min(FINGERPRINT_BYTES);
                t.set_head(&self.buf[..len], &self.shared);
            } else {
                let bytes = read_head(&t.file, FINGERPRINT_BYTES).unwrap_or_default();
                t.set_head(&bytes, &self.shared);
            }
        }
        let mut lines = Vec::with_capacity(n / 64);
        t.splitter.feed(&self.buf[..n], &mut lines);
        if t.splitter.has_pending() {
            t.pending_since.get_or_insert(now);
        } else {
            t.pending_since = None;
        }
        t.size = t.size.max(t.splitter.read_end());
        t.publish();
        let end = t.splitter.emitted_end();
        self.send(i, lines, end).await
    }

    /// Emits the held partial line of file `i`, if any.
    async fn flush_partial(&mut self, i: usize) -> Result<(), Stop> {
        let t = &mut self.files[i];
        t.pending_since = None;
        match t.splitter.flush_partial() {
            Some(line) => {
                let end = t.splitter.emitted_end();
                self.send(i, vec![line], end).await
            }
            None => Ok(()),
        }
    }

    /// Flushes timed-out partial lines; lets go of gone files that were read to their end.
    async fn timers(&mut self, now: Instant) -> Result<(), Stop> {
        for i in 0..self.files.len() {
            // Only at the end of the data: a line cut by a block boundary or by a pause for
            // backpressure is not partial.
            let t = &self.files[i];
            if !t.more
                && t.pending_since
                    .is_some_and(|s| now >= s + self.config.partial_line_timeout)
            {
                self.flush_partial(i).await?;
            }
        }
        let mut i = 0;
        while i < self.files.len() {
            let t = &mut self.files[i];
            let due = t
                .gone_since
                .is_some_and(|g| now >= g.max(t.last_data) + self.config.rescan_interval);
            if !due || t.more {
                i += 1;
                continue;
            }
            if t.file
                .metadata()
                .is_ok_and(|m| m.len() > t.splitter.read_end())
            {
                t.more = true;
                i += 1;
                continue;
            }
            self.flush_partial(i).await?;
            let t = self.files.swap_remove(i);
            info!(path = %t.path.display(), offset = t.splitter.read_end(), "file read to its end and gone, letting it go");
            self.shared.unregister(&t.ack);
            if self.retired.len() >= MAX_RETIRED {
                self.retired.clear();
            }
            self.retired.insert((t.dev, t.inode));
        }
        Ok(())
    }

    /// Sends `lines` of file `i` (ending at file offset `end`) in chunks.
    async fn send(&mut self, i: usize, lines: Vec<Line>, end: u64) -> Result<(), Stop> {
        let max = self.config.max_batch_bytes;
        let total: usize = lines.iter().map(|l| l.text.len()).sum();
        if total <= max || lines.len() == 1 {
            // The usual case: the block's lines make one chunk, no copying.
            return self.send_chunk(i, lines, end).await;
        }
        let mut it = lines.into_iter().peekable();
        while let Some(first) = it.next() {
            let mut bytes = first.text.len();
            let mut batch = vec![first];
            while let Some(l) = it.peek() {
                if bytes + l.text.len() > max {
                    break;
                }
                bytes += l.text.len();
                batch.extend(it.next());
            }
            let chunk_end = it.peek().map_or(end, |l| l.offset);
            self.send_chunk(i, batch, chunk_end).await?;
        }
        Ok(())
    }

    /// Sends one chunk of file `i` ending at file offset `end`.
    async fn send_chunk(&mut self, i: usize, lines: Vec<Line>, end: u64) -> Result<(), Stop> {
        let Some(start) = lines.first().map(|l| l.offset) else {
            return Ok(());
        };
        let t = &mut self.files[i];
        let Some(file) = t.info.clone() else {
            return Ok(());
        };
        let ack = AckToken::new(self.shared.clone(), t.ack.clone(), t.seq, end, end - start);
        t.seq += 1;
        let chunk = Chunk { file, lines, ack };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Stop::Cancelled),
            sent = self.tx.send(chunk) => if sent.is_err() { Err(Stop::ReceiverGone) } else { Ok(()) },
        }
    }
}

fn read_retry(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}
