//! The file tailing engine shared by logship and log2json (feature `tail`).
//!
//! [`Tailer::start`] finds the files matching the include globs (minus the exclude globs),
//! follows them (inotify on the globs' base directories, plus a rescan every
//! [`TailConfig::rescan_interval`] for filesystems where events are missed), and sends their
//! lines in [`Chunk`]s on a bounded channel. Whoever delivers the lines acknowledges each chunk
//! with the [`Acker`]; acknowledged offsets are what the checkpoint file under
//! [`TailConfig::data_dir`] records, so a restart (even after `kill -9`) resumes where delivery
//! stopped, never ahead of it.
//!
//! # Layout
//! - this file: the public types.
//! - `tail/glob.rs`: include/exclude globs, their base directories, the directory walk.
//! - `tail/fingerprint.rs`: file identity (device, inode, checksum of the first bytes).
//! - `tail/lines.rs`: splitting blocks of bytes into [`Line`]s (long, partial, invalid UTF-8).
//! - `tail/ack.rs`: per-file acknowledgement tracking and the in-flight byte budget.
//! - `tail/checkpoint.rs`: the checkpoint file (versioned JSON, written atomically).
//! - `tail/watch.rs`: the inotify watcher (notify crate) feeding the reader.
//! - `tail/file.rs`: one followed file (descriptor, identity, where reading starts).
//! - `tail/reader.rs`: the reader task: discovery, rotation, truncation, reading, sending.
//! - `tail/handle.rs`: start, finish, and the checkpoint task.
//!
//! # Files and rotation
//! A file is known by its identity (device and inode) and its fingerprint, a 64-bit hash of
//! device, inode, a CRC-32 of its first bytes (up to [`FINGERPRINT_BYTES`], fixed when the
//! file first has data) and a salt. The salt is 0 for a file with no history, so a file's
//! fingerprint is the same whenever it is found; it is random for a new file in an inode this
//! process followed before (after a truncation, or a delete-and-recreate that reused the
//! inode), because the first bytes may be the same as the old content's (`2024-01-01T`) and
//! equal fingerprints would mean equal document ids. The fingerprint is stable across renames.
//!
//! Rename-and-create rotation: the renamed file is read through its open descriptor to its
//! end (and kept while it still grows), the new file at the path is read from its head.
//! Copytruncate: a file shorter than what was read, or whose first bytes changed, is a new
//! file (new fingerprint) read from offset 0. A deleted file (or one renamed out of the globs)
//! is read to its end, its held partial line emitted, and let go once it did not grow for a
//! rescan interval. Globs should not match the copies that copytruncate makes (they are new
//! inodes, so they would be read again); with rename-and-create they may match the rotated
//! names (the same inodes: followed under their new names, not read again). A file that
//! leaves the globs (or is deleted) before the tailer ever opened it cannot be read: inotify
//! makes that window milliseconds, the rescan interval bounds it without inotify.
//!
//! # Lines
//! Lines end at `'\n'` (which is not part of [`Line::text`]; a `'\r'` before it is kept).
//! A held last line without newline is emitted (marked `partial`) when the file was read to
//! its end and `partial_line_timeout` passed, or when the file is let go; at shutdown it is not
//! emitted (it is not acknowledged either, so after a restart it is read again, whole).
//!
//! # Checkpoints
//! `data_dir/checkpoints.json`: `{"version":1,"files":[{"fingerprint":"<16 hex>","path":..,
//! "offset":..,"dev":..,"inode":..,"head_len":..,"head_crc":..,"salt":..}]}`, written
//! (temp file, fsync, rename, fsync of the directory) every
//! [`TailConfig::checkpoint_interval`] when something changed, and by [`Tailer::finish`];
//! nothing is written when a tailer is dropped without `finish` (as after a crash). `offset`
//! is the end of the contiguous acknowledged prefix of the file. On start, a file whose
//! device, inode and first `head_len` bytes match an entry resumes at its offset, with its
//! fingerprint (even under another name); entries that match no file are dropped.
//!
//! # Work
//! One tokio task reads (with plain blocking reads of 256 KiB blocks: regular files in the
//! page cache, short calls), another writes checkpoints (in `spawn_blocking`). When idle the
//! reader sleeps until an inotify event, the next rescan, or a partial-line deadline; after a
//! rescan interval without reads it lets its read buffer go, so an idle tailer holds none.
use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod ack;
mod checkpoint;
mod file;
mod fingerprint;
mod glob;
mod handle;
mod lines;
mod reader;
mod watch;

#[cfg(test)]
mod tests;

pub use ack::{AckToken, Acker};

/// The line splitter, for the micro-benchmarks in `benches/micro` (not a stable API).
#[doc(hidden)]
pub mod bench {
    pub use super::lines::Splitter;
}

/// How many first bytes of a file its fingerprint covers (fewer when the file is shorter
/// when it is first read; the number used is kept in the checkpoint).
pub const FINGERPRINT_BYTES: usize = 256;

/// The checkpoint file's name under [`TailConfig::data_dir`].
pub const CHECKPOINT_FILE: &str = "checkpoints.json";

/// What to tail and how.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Glob patterns of the files to read, e.g. `/var/log/app/*.log` (at least one).
    /// Relative patterns are taken from the current directory. `*` does not cross `/`;
    /// `**` does.
    pub include: Vec<String>,
    /// Glob patterns of paths to skip. A pattern without `/` is matched against the file
    /// name (`*.gz`), one with `/` against the whole path.
    pub exclude: Vec<String>,
    /// Where a file found at start with no checkpoint is read from.
    pub start_at: StartAt,
    /// Checkpoints live here (created if missing); `None`: no persistence.
    pub data_dir: Option<PathBuf>,
    /// Longer lines are split into pieces of at most this many bytes, marked `truncated`.
    pub max_line_bytes: usize,
    /// A last line without `'\n'` is emitted after this, marked `partial`.
    pub partial_line_timeout: Duration,
    /// Polling fallback: glob rescan plus stat of known files this often.
    pub rescan_interval: Duration,
    /// A [`Chunk`] holds at most this many bytes of line text (at least one line).
    pub max_batch_bytes: usize,
    /// Reading pauses while un-acknowledged bytes exceed this.
    pub max_in_flight_bytes: usize,
    /// How often acknowledged offsets are persisted (when they changed), plus once at finish.
    pub checkpoint_interval: Duration,
}

impl TailConfig {
    /// The defaults: read from the head, 1 MiB lines, 5 s partial-line timeout, 1 s rescan,
    /// 256 KiB chunks, 4 MiB in flight, 1 s checkpoints, no data dir.
    pub fn new(include: Vec<String>) -> Self {
        Self {
            include,
            exclude: Vec::new(),
            start_at: StartAt::Head,
            data_dir: None,
            max_line_bytes: 1024 * 1024,
            partial_line_timeout: Duration::from_secs(5),
            rescan_interval: Duration::from_secs(1),
            max_batch_bytes: 256 * 1024,
            max_in_flight_bytes: 4 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// Where a file found at start with no checkpoint is read from. Files discovered after start
/// (new files, rotated-in files) are always read from their head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// From the first byte (nothing already written is missed).
    #[default]
    Head,
    /// From the current end (only what is written from now on).
    End,
}

/// A batch of lines of one file, acknowledged as a whole.
#[derive(Debug)]
pub struct Chunk {
    /// The file the lines come from.
    pub file: Arc<FileInfo>,
    /// The lines, in file order.
    pub lines: Vec<Line>,
    /// Covers exactly these lines: hand it to [`Acker::ack`] once they are delivered.
    pub ack: AckToken,
}

/// The file a chunk comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path at the time of reading (after a rename, the new path).
    pub path: PathBuf,
    /// From device, inode and a checksum of the first bytes: stable across renames,
    /// different after inode reuse with other content.
    pub fingerprint: u64,
}

/// One line (or one piece of a long line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// The text without its `'\n'`; invalid UTF-8 replaced with U+FFFD.
    pub text: String,
    /// Replacement happened.
    pub invalid_utf8: bool,
    /// This is a piece of a line longer than `max_line_bytes`.
    pub truncated: bool,
    /// Emitted without its `'\n'` after `partial_line_timeout` (or when its file was let go).
    pub partial: bool,
}

/// Per-file figures for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStats {
    /// Current path.
    pub path: PathBuf,
    /// Size at the last read or stat.
    pub size: u64,
    /// How far reading got.
    pub read_offset: u64,
    /// End of the contiguous acknowledged prefix.
    pub acked_offset: u64,
    /// `size - acked_offset`.
    pub lag_bytes: u64,
}

/// What can go wrong starting or finishing the tailer.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// No include pattern.
    #[error("no file pattern given: at least one glob such as /var/log/app/*.log is needed")]
    NoInclude,
    /// A glob did not parse.
    #[error("invalid glob {pattern:?}: {source}; fix the pattern (for example /var/log/app/*.log or /var/log/**/*.log) and quote it so the shell does not expand it")]
    Glob {
        /// The pattern as given.
        pattern: String,
        /// Why.
        source: globset::Error,
    },
    /// A setting is out of range.
    #[error("invalid tail setting {name}: {reason}")]
    Setting {
        /// The setting (`max_line_bytes`).
        name: &'static str,
        /// What is expected.
        reason: &'static str,
    },
    /// The data directory cannot be created or written.
    #[error("cannot use data directory {dir}: {source}; mount a writable volume there (for example an emptyDir) or fix its permissions (securityContext.fsGroup / runAsUser)")]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The checkpoint file exists but cannot be read or understood.
    #[error("cannot read checkpoint file {path}: {reason}; move it away to start over (files are then read according to the start position)")]
    CheckpointRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing the checkpoint file failed.
    #[error("cannot write checkpoint file {path}: {source}; check free space and permissions of the data directory")]
    CheckpointWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Called outside a tokio runtime.
    #[error("the tailer must be started inside a tokio runtime")]
    NoRuntime,
}

/// The running tailer: reader and checkpoint tasks on the current tokio runtime.
#[derive(Debug)]
pub struct Tailer {
    inner: handle::Handle,
}

impl Tailer {
    /// Validates globs, settings and the data dir, loads checkpoints, and starts the watcher,
    /// reader and checkpoint tasks on the current tokio runtime. Reading stops when `shutdown`
    /// is cancelled (or the tailer is dropped).
    pub fn start(
        config: TailConfig,
        shutdown: CancellationToken,
    ) -> Result<(Tailer, mpsc::Receiver<Chunk>), TailError> {
        let (inner, rx) = handle::Handle::start(config, shutdown)?;
        Ok((Tailer { inner }, rx))
    }

    /// Hand this to whoever delivers the lines.
    pub fn acker(&self) -> Acker {
        self.inner.acker()
    }

    /// Per-file figures (files currently watched), sorted by path.
    pub fn stats(&self) -> Vec<FileStats> {
        self.inner.stats()
    }

    /// Stops reading (if shutdown has not already), waits for the reader, and writes the
    /// final checkpoint of what was acknowledged.
    pub async fn finish(self) -> Result<(), TailError> {
        self.inner.finish().await
    }

    #[cfg(test)]
    fn rounds(&self) -> u64 {
        self.inner.rounds()
    }
}
