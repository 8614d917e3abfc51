//! Acknowledgement tracking: which part of each file was delivered, and the in-flight budget.
//!
//! Every chunk of a file gets the next sequence number and the file offset where it ends.
//! Acks may arrive in any order; a file's acknowledged offset advances only over the contiguous
//! run of acknowledged sequence numbers, so it is never ahead of delivery. The bytes of a chunk
//! count against the in-flight budget from the moment it is sent until it is acknowledged (or
//! its token is dropped), and the reader waits for room in the budget before reading more.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use tokio::sync::Notify;

use super::{checkpoint::Entry, fingerprint::Head, FileStats};

/// State shared by the reader, the ackers and the checkpoint task.
#[derive(Debug)]
pub(crate) struct Shared {
    in_flight: AtomicU64,
    max_in_flight: u64,
    /// Signalled when acks bring the in-flight bytes back under the budget.
    pub(crate) space: Notify,
    /// Bumped whenever something the checkpoint records changes.
    generation: AtomicU64,
    /// The files the reader currently follows.
    files: Mutex<Vec<Arc<FileAck>>>,
    /// How often the reader loop went round (tests check it is idle when nothing happens).
    #[cfg(test)]
    pub(crate) rounds: AtomicU64,
}

impl Shared {
    pub(crate) fn new(max_in_flight: u64) -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            max_in_flight,
            space: Notify::new(),
            generation: AtomicU64::new(0),
            files: Mutex::new(Vec::new()),
            #[cfg(test)]
            rounds: AtomicU64::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn over_budget(&self) -> bool {
        self.in_flight() >= self.max_in_flight
    }

    fn release(&self, bytes: u64) {
        let before = self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.max_in_flight && before - bytes < self.max_in_flight {
            self.space.notify_one();
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn files(&self) -> MutexGuard<'_, Vec<Arc<FileAck>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts tracking a file (it appears in stats and checkpoints).
    pub(crate) fn register(&self, file: Arc<FileAck>) {
        self.files().push(file);
        self.touch();
    }

    /// Stops tracking a file (let go, or replaced after truncation).
    pub(crate) fn unregister(&self, file: &Arc<FileAck>) {
        self.files().retain(|f| !Arc::ptr_eq(f, file));
        self.touch();
    }

    /// The checkpoint entries of the files followed now.
    pub(crate) fn snapshot(&self) -> Vec<Entry> {
        let files = self.files();
        let mut out: Vec<Entry> = files.iter().map(|f| f.state().entry()).collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    pub(crate) fn stats(&self) -> Vec<FileStats> {
        let files = self.files();
        let mut out: Vec<FileStats> = files
            .iter()
            .map(|f| {
                let s = f.state();
                FileStats {
                    path: s.path.clone(),
                    size: s.size,
                    read_offset: s.read_offset,
                    acked_offset: s.acked_offset,
                    lag_bytes: s.size.saturating_sub(s.acked_offset),
                }
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// One followed file (one identity: a truncation starts a new one).
#[derive(Debug)]
pub(crate) struct FileAck {
    state: Mutex<AckState>,
}

/// What the checkpoint and stats know of a file.
#[derive(Debug)]
pub(crate) struct AckState {
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) inode: u64,
    /// `None` until the file had data.
    pub(crate) head: Option<Head>,
    /// Salt for the fingerprint once the file has data.
    pub(crate) salt: u64,
    pub(crate) size: u64,
    pub(crate) read_offset: u64,
    pub(crate) acked_offset: u64,
    /// The next sequence number expected to be acknowledged.
    next_ack: u64,
    /// Acknowledged chunks after a gap: sequence number -> end offset.
    done: BTreeMap<u64, u64>,
}

impl AckState {
    /// The checkpoint entry; a file that had no data yet is recorded with an empty head,
    /// so that a restart resumes it at its offset rather than per the start position.
    fn entry(&self) -> Entry {
        let head = self
            .head
            .unwrap_or_else(|| Head::of(self.dev, self.inode, &[], self.salt));
        Entry {
            fingerprint: format!("{:016x}", head.fingerprint),
            path: self.path.clone(),
            offset: self.acked_offset,
            dev: self.dev,
            inode: self.inode,
            head_len: head.len,
            head_crc: head.crc,
            salt: head.salt,
        }
    }

    fn ack(&mut self, seq: u64, end: u64) -> bool {
        if seq == self.next_ack {
            self.acked_offset = end;
            self.next_ack += 1;
            while let Some(end) = self.done.remove(&self.next_ack) {
                self.acked_offset = end;
                self.next_ack += 1;
            }
            true
        } else {
            if seq > self.next_ack {
                self.done.insert(seq, end);
            }
            false
        }
    }
}

impl FileAck {
    pub(crate) fn new(
        path: PathBuf,
        dev: u64,
        inode: u64,
        head: Option<Head>,
        salt: u64,
        offset: u64,
        size: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(AckState {
                path,
                dev,
                inode,
                head,
                salt,
                size,
                read_offset: offset,
                acked_offset: offset,
                next_ack: 0,
                done: BTreeMap::new(),
            }),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks chunks delivered. Cheap to clone; hand one to each delivering task.
#[derive(Debug, Clone)]
pub struct Acker {
    _private: (),
}

impl Acker {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// Marks the chunk's lines delivered. Acks may arrive out of order across chunks;
    /// a file's checkpoint advances only over a contiguous acknowledged prefix.
    pub fn ack(&self, token: AckToken) {
        token.ack();
    }
}

/// Covers exactly the lines of one chunk. Dropping it without acknowledging frees its
/// in-flight bytes but leaves the file's checkpoint behind it (the lines are read again after
/// a restart).
#[derive(Debug)]
pub struct AckToken {
    inner: Option<TokenInner>,
}

#[derive(Debug)]
struct TokenInner {
    shared: Arc<Shared>,
    file: Arc<FileAck>,
    seq: u64,
    end: u64,
    bytes: u64,
}

impl AckToken {
    /// Counts `bytes` in flight until this token is acknowledged or dropped.
    pub(crate) fn new(
        shared: Arc<Shared>,
        file: Arc<FileAck>,
        seq: u64,
        end: u64,
        bytes: u64,
    ) -> Self {
        shared.in_flight.fetch_add(bytes, Ordering::AcqRel);
        Self {
            inner: Some(TokenInner {
                shared,
                file,
                seq,
                end,
                bytes,
            }),
        }
    }

    fn ack(mut self) {
        if let Some(t) = self.inner.take() {
            if t.file.state().ack(t.seq, t.end) {
                t.shared.touch();
            }
            t.shared.release(t.bytes);
        }
    }

    /// The file offset just after the last byte this token covers.
    pub fn end_offset(&self) -> u64 {
        self.inner.as_ref().map_or(0, |t| t.end)
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(t) = self.inner.take() {
            t.shared.release(t.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks_advance_only_over_contiguous_prefix() {
        let shared = Arc::new(Shared::new(1000));
        let file = FileAck::new("/x".into(), 1, 2, None, 0, 10, 100);
        let tok = |seq, end| AckToken::new(shared.clone(), file.clone(), seq, end, 10);
        let (a, b, c) = (tok(0, 20), tok(1, 30), tok(2, 40));
        assert_eq!(shared.in_flight(), 30);
        c.ack();
        assert_eq!(file.state().acked_offset, 10);
        a.ack();
        assert_eq!(file.state().acked_offset, 20);
        b.ack();
        assert_eq!(file.state().acked_offset, 40);
        assert_eq!(shared.in_flight(), 0);
    }

    #[test]
    fn dropped_token_frees_budget_but_holds_checkpoint() {
        let shared = Arc::new(Shared::new(15));
        let file = FileAck::new("/x".into(), 1, 2, None, 0, 0, 100);
        let a = AckToken::new(shared.clone(), file.clone(), 0, 10, 10);
        let b = AckToken::new(shared.clone(), file.clone(), 1, 20, 10);
        assert!(shared.over_budget());
        drop(a);
        assert!(!shared.over_budget());
        b.ack();
        assert_eq!(file.state().acked_offset, 0);
    }
}
