//! Internal events: one type per observable happening, whose `emit()` writes the log line and
//! updates the metrics, so the two never disagree.
use std::path::Path;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::{
    disk::human,
    metrics::{db, db_result, Metrics},
    store::Manifest,
};

/// A backup was written, verified and renamed.
pub struct BackupSucceeded<'a> {
    pub path: &'a Path,
    pub manifest: &'a Manifest,
    pub at: DateTime<Utc>,
}

impl BackupSucceeded<'_> {
    pub fn emit(&self, m: &Metrics) {
        let d = &self.manifest.database;
        info!(
            database = %d,
            file = %self.path.display(),
            size_bytes = self.manifest.size_bytes,
            size = %human(self.manifest.size_bytes),
            duration_seconds = self.manifest.duration_seconds,
            sha256 = %self.manifest.sha256,
            verification = %self.manifest.verification,
            "backup succeeded"
        );
        m.last_success
            .get_or_create(&db(d))
            .set(self.at.timestamp() as f64);
        m.last_duration
            .get_or_create(&db(d))
            .set(self.manifest.duration_seconds);
        m.last_size
            .get_or_create(&db(d))
            .set(self.manifest.size_bytes as i64);
        m.runs.get_or_create(&db_result(d, "success")).inc();
        m.written
            .get_or_create(&db(d))
            .inc_by(self.manifest.size_bytes);
    }
}

/// A backup run failed; earlier backups are untouched.
pub struct BackupFailed<'a> {
    pub database: &'a str,
    pub error: &'a crate::Error,
}

impl BackupFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        error!(database = %self.database, error = %self.error, "backup failed; earlier backups are untouched");
        m.runs
            .get_or_create(&db_result(self.database, "failure"))
            .inc();
    }
}

/// Shutdown stopped a backup; its temp file was removed.
pub struct BackupCancelled<'a> {
    pub database: &'a str,
}

impl BackupCancelled<'_> {
    pub fn emit(&self, m: &Metrics) {
        warn!(database = %self.database, "backup stopped by shutdown; pg_dump killed and the temp file removed");
        m.runs
            .get_or_create(&db_result(self.database, "cancelled"))
            .inc();
    }
}

/// Retention deleted (or, in dry-run, would delete) a backup.
pub struct RetentionDeleted<'a> {
    pub database: &'a str,
    pub path: &'a Path,
    pub why: &'a str,
    pub dry_run: bool,
}

impl RetentionDeleted<'_> {
    pub fn emit(&self, m: &Metrics) {
        if self.dry_run {
            info!(database = %self.database, file = %self.path.display(), reason = %self.why, "retention dry run: would delete backup");
        } else {
            info!(database = %self.database, file = %self.path.display(), reason = %self.why, "retention deleted backup");
            m.deleted.get_or_create(&db(self.database)).inc();
        }
    }
}

/// Retention kept a backup (logged at debug, counted in the gauge by the caller).
pub struct RetentionKept<'a> {
    pub database: &'a str,
    pub path: &'a Path,
    pub why: &'a str,
}

impl RetentionKept<'_> {
    pub fn emit(&self) {
        tracing::debug!(database = %self.database, file = %self.path.display(), reason = %self.why, "retention keeps backup");
    }
}

/// A schedule tick came while a run was still going: it is skipped, runs never overlap.
pub struct TicksSkipped {
    pub count: u64,
}

impl TicksSkipped {
    pub fn emit(&self, m: &Metrics) {
        warn!(
            skipped = self.count,
            "the previous run outlasted the schedule: skipped ticks (runs never overlap)"
        );
        m.skipped_ticks.inc_by(self.count);
    }
}

/// A scheduled restore check finished.
pub struct RestoreChecked<'a> {
    pub database: &'a str,
    pub result: Result<(usize, i64), &'a crate::Error>,
}

impl RestoreChecked<'_> {
    pub fn emit(&self, m: &Metrics) {
        match self.result {
            Ok((tables, rows)) => {
                info!(database = %self.database, tables, rows, "restore check passed");
                m.restore_checks
                    .get_or_create(&db_result(self.database, "success"))
                    .inc();
            }
            Err(error) => {
                error!(database = %self.database, %error, "restore check failed");
                m.restore_checks
                    .get_or_create(&db_result(self.database, "failure"))
                    .inc();
            }
        }
    }
}
