//! The reload loop: wait for filesystem events (or the poll, or the periodic re-check), let a
//! burst settle (`--debounce`, at most `--debounce-max`), hash the watched set, and when the
//! content changed carry it through the actions. A failed step is retried with backoff until it
//! succeeds; a newer change replaces the one being retried (from its first step). A change
//! validation refused is not retried: the next change is.
use std::{path::PathBuf, sync::Arc, time::Duration};

use common::{readiness::Condition, retry::Backoff, Shutdown};
use tokio::{sync::Notify, time::Instant};
use tracing::{info, warn};

use crate::{
    actions::{Actions, Outcome, Progress, Step},
    events::{
        ActionFailed, ActionSucceeded, ConfigHashSeen, ReloadCompleted, ValidationRejected,
        WatchError,
    },
    metrics::Metrics,
    snapshot::{self, ContentHash, File, Snapshot},
    watch::Watch,
};

/// Polling interval when inotify cannot be used (instance or watch limit reached).
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// How soon to look again after the watched files could not be read.
const REREAD_AFTER_ERROR: Duration = Duration::from_secs(1);

/// A change on its way through the actions.
#[derive(Debug)]
struct Pending {
    hash: ContentHash,
    files: Vec<File>,
    steps: Vec<Step>,
    next: usize,
    progress: Progress,
    backoff: Backoff,
    retry_at: Option<Instant>,
    started: Instant,
    attempts: u32,
}

/// The loop's state.
#[derive(Debug)]
pub struct Reload {
    actions: Actions,
    metrics: Metrics,
    roots: Vec<PathBuf>,
    keep_files: bool,
    /// The hash last seen on disk.
    current: Option<ContentHash>,
    /// The hash whose actions completed (or that validation refused).
    settled: Option<ContentHash>,
    pending: Option<Pending>,
}

/// What ending a run of steps left.
enum Ran {
    Finished,
    Interrupted,
}

impl Reload {
    /// A loop over `actions`.
    pub fn new(actions: Actions, metrics: Metrics) -> Self {
        let roots = actions.settings().watch.clone();
        let keep_files = actions.settings().sync_to.is_some();
        Reload {
            actions,
            metrics,
            roots,
            keep_files,
            current: None,
            settled: None,
            pending: None,
        }
    }

    fn pending_for(&self, snap: Snapshot, steps: Vec<Step>) -> Pending {
        let s = self.actions.settings();
        Pending {
            hash: snap.hash,
            files: snap.files,
            steps,
            next: 0,
            progress: Progress::default(),
            backoff: Backoff::new(s.retry_initial, s.retry_max),
            retry_at: None,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// `--once`: sync and validate (and the actions with `--reload-on-start`) without retries.
    pub async fn once(mut self, shutdown: &Shutdown) -> Result<(), String> {
        let snap = snapshot::take(&self.roots, self.keep_files)
            .map_err(|e| format!("cannot read the watched files: {e}"))?;
        ConfigHashSeen {
            hash: &snap.hash,
            files: snap.files.len(),
            initial: true,
        }
        .emit(&self.metrics);
        let steps = self.actions.steps(self.actions.settings().reload_on_start);
        let mut p = self.pending_for(snap, steps);
        for step in p.steps.clone() {
            let target = self.actions.target(step);
            let t0 = Instant::now();
            let outcome = tokio::select! {
                o = self.actions.run(step, &p.hash, &p.files, &mut p.progress) => o,
                _ = shutdown.triggered() => return Err("interrupted by shutdown".into()),
            };
            match outcome {
                Outcome::Done => ActionSucceeded {
                    action: step.name(),
                    target: &target,
                    elapsed: t0.elapsed(),
                }
                .emit(&self.metrics),
                Outcome::Failed(e) => return Err(format!("{} ({target}): {e}", step.name())),
                Outcome::Rejected(e) => {
                    let restored = self.actions.rollback(&mut p.progress)?;
                    ValidationRejected {
                        hash: &p.hash,
                        error: &e,
                        rolled_back: restored,
                    }
                    .emit(&self.metrics);
                    return Err(format!("validation failed: {e}"));
                }
            }
        }
        info!(hash = %p.hash, "synced once; exiting");
        Ok(())
    }

    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: Shutdown, ready: Condition) {
        let wake = Arc::new(Notify::new());
        let settings = self.actions.settings().clone();
        let (mut watch, poll) = match settings.poll_interval {
            Some(p) => (None, Some(p)),
            None => match Watch::start(&self.roots, wake.clone(), self.metrics.clone()) {
                Ok(w) => (Some(w), None),
                Err(e) => {
                    WatchError {
                        error: &format!("{e}; polling every {}s instead", FALLBACK_POLL.as_secs()),
                    }
                    .emit(&self.metrics);
                    (None, Some(FALLBACK_POLL))
                }
            },
        };
        // The initial state, and the start actions (sync; everything with --reload-on-start).
        match snapshot::take(&self.roots, self.keep_files) {
            Ok(snap) => {
                ConfigHashSeen {
                    hash: &snap.hash,
                    files: snap.files.len(),
                    initial: true,
                }
                .emit(&self.metrics);
                self.current = Some(snap.hash.clone());
                let steps = self.actions.steps(settings.reload_on_start);
                if steps.is_empty() {
                    self.metrics.applied_hash.set(snap.hash.prefix_value());
                    self.settled = Some(snap.hash);
                } else {
                    self.pending = Some(self.pending_for(snap, steps));
                }
            }
            Err(e) => {
                WatchError {
                    error: &format!("cannot read the watched files: {e}"),
                }
                .emit(&self.metrics);
            }
        }
        ready.set_ready();
        info!(
            paths = self.roots.len(),
            mode = if poll.is_some() { "poll" } else { "inotify" },
            "watching"
        );
        let far = || Instant::now() + Duration::from_secs(86400 * 365);
        let mut recheck_at = Instant::now() + settings.recheck_interval;
        if self.current.is_none() {
            recheck_at = Instant::now() + REREAD_AFTER_ERROR;
        }
        let mut poll_at = poll.map_or_else(far, |p| Instant::now() + p);
        if self.pending.is_some() && matches!(self.attempt(&shutdown).await, Ran::Interrupted) {
            return;
        }
        loop {
            let retry_at = self.pending.as_ref().and_then(|p| p.retry_at);
            tokio::select! {
                biased;
                _ = shutdown.triggered() => return,
                _ = wake.notified() => {
                    if !debounce(&wake, settings.debounce, settings.debounce_max, &shutdown).await {
                        return;
                    }
                    if let Some(w) = watch.as_mut() {
                        w.refresh();
                    }
                    if let Some(at) = self.check() {
                        recheck_at = recheck_at.min(at);
                    }
                }
                _ = tokio::time::sleep_until(recheck_at) => {
                    recheck_at = Instant::now() + settings.recheck_interval;
                    if let Some(w) = watch.as_mut() {
                        w.refresh();
                    }
                    if let Some(at) = self.check() {
                        recheck_at = at;
                    }
                }
                _ = tokio::time::sleep_until(poll_at), if poll.is_some() => {
                    poll_at = Instant::now() + poll.unwrap_or(FALLBACK_POLL);
                    if let Some(at) = self.check() {
                        recheck_at = recheck_at.min(at);
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(far)), if retry_at.is_some() => {}
            }
            let due = self
                .pending
                .as_ref()
                .is_some_and(|p| p.retry_at.is_none_or(|t| t <= Instant::now()));
            if due && matches!(self.attempt(&shutdown).await, Ran::Interrupted) {
                return;
            }
        }
    }

    /// Hashes the watched set; starts a new pending change when the content differs from what
    /// was settled or is being worked on. Returns when to look again after a read error.
    fn check(&mut self) -> Option<Instant> {
        self.metrics.checks.inc();
        let snap = match snapshot::take(&self.roots, self.keep_files) {
            Ok(s) => s,
            Err(e) => {
                WatchError {
                    error: &format!("cannot read the watched files: {e}"),
                }
                .emit(&self.metrics);
                return Some(Instant::now() + REREAD_AFTER_ERROR);
            }
        };
        if self.current.as_ref() != Some(&snap.hash) {
            ConfigHashSeen {
                hash: &snap.hash,
                files: snap.files.len(),
                initial: false,
            }
            .emit(&self.metrics);
            self.current = Some(snap.hash.clone());
        }
        if let Some(p) = &self.pending {
            if p.hash == snap.hash {
                return None;
            }
            info!(old = %p.hash, new = %snap.hash, "a newer change replaces the one in progress");
        } else if self.settled.as_ref() == Some(&snap.hash) {
            self.metrics.pending.set(0);
            return None;
        }
        let steps = self.actions.steps(true);
        self.pending = Some(self.pending_for(snap, steps));
        None
    }

    /// Runs the pending change's steps from where it stopped.
    async fn attempt(&mut self, shutdown: &Shutdown) -> Ran {
        let Some(mut p) = self.pending.take() else {
            return Ran::Finished;
        };
        p.retry_at = None;
        p.attempts += 1;
        while let Some(&step) = p.steps.get(p.next) {
            let target = self.actions.target(step);
            let t0 = Instant::now();
            let outcome = tokio::select! {
                o = self.actions.run(step, &p.hash, &p.files, &mut p.progress) => o,
                _ = shutdown.triggered() => {
                    self.pending = Some(p);
                    return Ran::Interrupted;
                }
            };
            match outcome {
                Outcome::Done => {
                    ActionSucceeded {
                        action: step.name(),
                        target: &target,
                        elapsed: t0.elapsed(),
                    }
                    .emit(&self.metrics);
                    p.next += 1;
                }
                Outcome::Failed(error) => {
                    let delay = p.backoff.next_delay();
                    ActionFailed {
                        action: step.name(),
                        target: &target,
                        error: &error,
                        retry_in: delay,
                    }
                    .emit(&self.metrics);
                    p.retry_at = Some(Instant::now() + delay);
                    self.pending = Some(p);
                    return Ran::Finished;
                }
                Outcome::Rejected(error) => {
                    let restored = match self.actions.rollback(&mut p.progress) {
                        Ok(n) => n,
                        Err(e) => {
                            warn!(error = %e, "cannot put the previous files back");
                            0
                        }
                    };
                    ValidationRejected {
                        hash: &p.hash,
                        error: &error,
                        rolled_back: restored,
                    }
                    .emit(&self.metrics);
                    self.settled = Some(p.hash);
                    return Ran::Finished;
                }
            }
        }
        ReloadCompleted {
            hash: &p.hash,
            elapsed: p.started.elapsed(),
            attempts: p.attempts,
        }
        .emit(&self.metrics);
        self.settled = Some(p.hash);
        Ran::Finished
    }
}

/// Waits until no event came for `quiet`, or `max` has passed; false on shutdown.
async fn debounce(wake: &Notify, quiet: Duration, max: Duration, shutdown: &Shutdown) -> bool {
    let start = Instant::now();
    let cap = start + max;
    let mut until = (start + quiet).min(cap);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.triggered() => return false,
            _ = wake.notified() => until = (Instant::now() + quiet).min(cap),
            _ = tokio::time::sleep_until(until) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn debounce_waits_for_quiet_but_not_past_the_cap() {
        let wake = Arc::new(Notify::new());
        let shutdown = Shutdown::new();
        let quiet = Duration::from_millis(25);
        let cap = Duration::from_millis(100);

        let t = Instant::now();
        assert!(debounce(&wake, quiet, cap, &shutdown).await);
        assert_eq!(t.elapsed(), quiet);

        // Three events 10 ms apart: done 25 ms after the last.
        let w = wake.clone();
        let burst = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                w.notify_one();
            }
        });
        let t = Instant::now();
        assert!(debounce(&wake, quiet, cap, &shutdown).await);
        assert_eq!(t.elapsed(), Duration::from_millis(55));
        burst.await.unwrap();

        // A writer that never pauses is cut at the cap.
        let w = wake.clone();
        let endless = tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                w.notify_one();
            }
        });
        let t = Instant::now();
        assert!(debounce(&wake, quiet, cap, &shutdown).await);
        assert_eq!(t.elapsed(), cap);
        endless.abort();

        shutdown.trigger();
        assert!(!debounce(&wake, quiet, cap, &shutdown).await);
    }
}
