//! Internal events: one small type per observable happening, whose `emit()` writes the log line
//! and bumps the metric, so the two never drift apart.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::{metrics::Metrics, snapshot::ContentHash};

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The hash of the watched set, at start or after a change.
pub struct ConfigHashSeen<'a> {
    pub hash: &'a ContentHash,
    pub files: usize,
    pub initial: bool,
}

impl ConfigHashSeen<'_> {
    pub fn emit(self, m: &Metrics) {
        m.config_info.clear();
        m.config_info
            .get_or_create(&[("hash", self.hash.short().to_string())])
            .set(1);
        m.config_hash.set(self.hash.prefix_value());
        if self.initial {
            info!(hash = %self.hash, files = self.files, "watched content hashed");
        } else {
            m.changes.inc();
            m.last_change.set(now_seconds());
            m.pending.set(1);
            info!(hash = %self.hash, files = self.files, "content changed");
        }
    }
}

/// One action finished well.
pub struct ActionSucceeded<'a> {
    pub action: &'static str,
    pub target: &'a str,
    pub elapsed: Duration,
}

impl ActionSucceeded<'_> {
    pub fn emit(self, m: &Metrics) {
        m.actions
            .get_or_create(&[("action", self.action), ("result", "success")])
            .inc();
        info!(
            action = self.action,
            target = self.target,
            elapsed_ms = ms(self.elapsed),
            "action succeeded"
        );
    }
}

/// One action failed; it will be retried.
pub struct ActionFailed<'a> {
    pub action: &'static str,
    pub target: &'a str,
    pub error: &'a str,
    pub retry_in: Duration,
}

impl ActionFailed<'_> {
    pub fn emit(self, m: &Metrics) {
        m.actions
            .get_or_create(&[("action", self.action), ("result", "failure")])
            .inc();
        warn!(
            action = self.action,
            target = self.target,
            error = self.error,
            retry_in_ms = ms(self.retry_in),
            "action failed; will retry"
        );
    }
}

/// Validation refused the new content: no reload, the running config stays.
pub struct ValidationRejected<'a> {
    pub hash: &'a ContentHash,
    pub error: &'a str,
    pub rolled_back: usize,
}

impl ValidationRejected<'_> {
    pub fn emit(self, m: &Metrics) {
        m.actions
            .get_or_create(&[("action", "validate"), ("result", "failure")])
            .inc();
        m.reloads.get_or_create(&[("result", "rejected")]).inc();
        m.pending.set(0);
        warn!(
            hash = %self.hash,
            error = self.error,
            files_restored = self.rolled_back,
            "validation failed; reload skipped, running config left in place"
        );
    }
}

/// Every action completed for a change.
pub struct ReloadCompleted<'a> {
    pub hash: &'a ContentHash,
    pub elapsed: Duration,
    pub attempts: u32,
}

impl ReloadCompleted<'_> {
    pub fn emit(self, m: &Metrics) {
        m.reloads.get_or_create(&[("result", "success")]).inc();
        m.last_reload.set(now_seconds());
        m.applied_hash.set(self.hash.prefix_value());
        m.pending.set(0);
        info!(hash = %self.hash, elapsed_ms = ms(self.elapsed), attempts = self.attempts, "reload completed");
    }
}

/// The watch or a read of the watched set failed.
pub struct WatchError<'a> {
    pub error: &'a str,
}

impl WatchError<'_> {
    pub fn emit(self, m: &Metrics) {
        m.watch_errors.inc();
        warn!(error = self.error, "watch error");
    }
}
