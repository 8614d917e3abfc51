//! Filesystem watches (inotify through notify) that wake the reload loop.
//!
//! A watched directory is watched recursively, without following symlinks: in a ConfigMap or
//! Secret volume that sees kubelet's `..data` rename in the volume directory itself. A watched
//! file is watched through its parent directory (not the file: an atomic rename or a `..data`
//! swap replaces the inode a file watch holds). Events only wake the loop; the content hash
//! decides whether anything changed. Reads (open, access, close without writing) are ignored,
//! so hashing the files does not wake the loop again.
//!
//! When a watched directory is replaced (deleted and created again, or a file's parent
//! resolving elsewhere), [`Watch::refresh`] notices the new inode and watches it again; the
//! loop calls it after every burst of events and at each full re-check.
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use notify::{
    event::{AccessKind, AccessMode},
    EventKind, RecursiveMode, Watcher,
};
use tokio::sync::Notify;

use crate::{events::WatchError, metrics::Metrics};

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    mode: RecursiveMode,
    id: Option<(u64, u64)>,
}

/// The watches on the watched set.
pub struct Watch {
    watcher: notify::RecommendedWatcher,
    entries: Vec<Entry>,
    metrics: Metrics,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("entries", &self.entries)
            .finish()
    }
}

fn identity(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

impl Watch {
    /// Starts inotify and watches every path; `wake` is notified on each relevant event.
    pub fn start(paths: &[PathBuf], wake: Arc<Notify>, metrics: Metrics) -> Result<Self, String> {
        let m = metrics.clone();
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if relevant(&ev.kind) {
                    m.fs_events.inc();
                    wake.notify_one();
                }
            }
            Err(e) => {
                WatchError {
                    error: &e.to_string(),
                }
                .emit(&m);
                // Something may have been missed: let the loop check.
                wake.notify_one();
            }
        };
        let config = notify::Config::default().with_follow_symlinks(false);
        let watcher = notify::RecommendedWatcher::new(handler, config)
            .map_err(|e| format!("cannot start inotify: {e}"))?;
        let mut w = Watch {
            watcher,
            entries: Vec::new(),
            metrics,
        };
        for p in paths {
            let is_dir = std::fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false);
            let (path, mode) = if is_dir {
                (p.clone(), RecursiveMode::Recursive)
            } else {
                (
                    p.parent().unwrap_or(Path::new("/")).to_path_buf(),
                    RecursiveMode::NonRecursive,
                )
            };
            if w.entries.iter().any(|e| e.path == path && e.mode == mode) {
                continue;
            }
            let id = identity(&path);
            w.watcher
                .watch(&path, mode)
                .map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
            w.entries.push(Entry { path, mode, id });
        }
        Ok(w)
    }

    /// Watches again any watched directory that was replaced; returns true if one was (its
    /// content may have changed unseen).
    pub fn refresh(&mut self) -> bool {
        let mut replaced = false;
        for e in &mut self.entries {
            let now = identity(&e.path);
            if now == e.id {
                continue;
            }
            replaced = true;
            let _ = self.watcher.unwatch(&e.path);
            e.id = now;
            if now.is_none() {
                WatchError {
                    error: &format!(
                        "{} is gone; watching again once it is back",
                        e.path.display()
                    ),
                }
                .emit(&self.metrics);
                continue;
            }
            match self.watcher.watch(&e.path, e.mode) {
                Ok(()) => {
                    tracing::info!(path = %e.path.display(), "watched directory was replaced; watching the new one")
                }
                Err(err) => {
                    e.id = None;
                    WatchError {
                        error: &format!("cannot watch {} again: {err}", e.path.display()),
                    }
                    .emit(&self.metrics);
                }
            }
        }
        replaced
    }
}
