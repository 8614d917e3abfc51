//! The inotify watcher (notify crate, inotify backend) feeding the reader.
//!
//! The base directories of the globs are watched (not each file), plus the directories of
//! symlink targets (Kubernetes' `/var/log/containers/*.log` point into `/var/log/pods`).
//! Events are coalesced into [`Events`]: the set of paths that changed and whether the globs
//! need a rescan (a matching path was created, removed or renamed); one [`Notify`] wakes the
//! reader however many events arrived. When the watcher cannot start (inotify limits), the
//! reader still follows files by its periodic rescan.
use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use notify::{
    event::{EventKind, ModifyKind},
    RecursiveMode, Watcher as _,
};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::glob::Globs;

/// Above this many distinct changed paths, the reader checks every file instead.
const MAX_PATHS: usize = 4096;

/// What changed since the reader last looked.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Files written to (or otherwise touched).
    pub(crate) paths: HashSet<PathBuf>,
    /// Too many paths, or an error: check every file.
    pub(crate) all: bool,
    /// A matching path appeared, vanished or was renamed: rescan the globs.
    pub(crate) rescan: bool,
}

/// Changes shared between the notify thread and the reader.
#[derive(Debug, Default)]
pub(crate) struct Events {
    changes: Mutex<Changes>,
    /// Wakes the reader.
    pub(crate) notify: Notify,
}

impl Events {
    fn lock(&self) -> MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what changed so far.
    pub(crate) fn take(&self) -> Changes {
        std::mem::take(&mut *self.lock())
    }

    fn record(&self, globs: &Globs, event: notify::Result<notify::Event>) {
        let mut c = self.lock();
        match event {
            Ok(event) => {
                let structural = match event.kind {
                    EventKind::Access(_) => return,
                    EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => false,
                    EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_) => true,
                    EventKind::Any | EventKind::Other => {
                        c.all = true;
                        c.rescan = true;
                        false
                    }
                };
                for path in event.paths {
                    if structural && globs.matches(&path) {
                        c.rescan = true;
                    }
                    if c.paths.len() < MAX_PATHS {
                        c.paths.insert(path);
                    } else {
                        c.all = true;
                    }
                }
            }
            Err(error) => {
                debug!(%error, "file watch error, checking every file");
                c.all = true;
                c.rescan = true;
            }
        }
        drop(c);
        self.notify.notify_one();
    }
}

/// The inotify watches.
pub(crate) struct Watcher {
    inner: notify::INotifyWatcher,
    /// Watched directory -> (device, inode) when the watch was added.
    watched: HashMap<PathBuf, (u64, u64)>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("watched", &self.watched)
            .finish()
    }
}

impl Watcher {
    /// Starts the inotify watcher; `None` (logged) when the system refuses.
    pub(crate) fn new(events: Arc<Events>, globs: Arc<Globs>) -> Option<Self> {
        let handler = move |ev: notify::Result<notify::Event>| events.record(&globs, ev);
        match notify::INotifyWatcher::new(handler, notify::Config::default()) {
            Ok(inner) => Some(Self {
                inner,
                watched: HashMap::new(),
            }),
            Err(error) => {
                warn!(%error, "cannot start inotify, following files by polling only; raise fs.inotify.max_user_instances if this persists");
                None
            }
        }
    }

    /// Watches `dir` if it exists and is not watched yet (or was replaced since).
    pub(crate) fn ensure(&mut self, dir: &Path, recursive: bool) {
        let Ok(meta) = std::fs::metadata(dir) else {
            if self.watched.remove(dir).is_some() {
                let _ = self.inner.unwatch(dir);
            }
            return;
        };
        let id = (meta.dev(), meta.ino());
        match self.watched.get(dir) {
            Some(old) if *old == id => return,
            Some(_) => {
                let _ = self.inner.unwatch(dir);
            }
            None => {}
        }
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match self.inner.watch(dir, mode) {
            Ok(()) => {
                debug!(dir = %dir.display(), recursive, "watching directory");
                self.watched.insert(dir.to_path_buf(), id);
            }
            Err(error) => {
                warn!(%error, dir = %dir.display(), "cannot watch directory, relying on the periodic rescan; raise fs.inotify.max_user_watches if this persists");
                // Remember it anyway so the warning is not repeated every rescan.
                self.watched.insert(dir.to_path_buf(), id);
            }
        }
    }
}
