//! reloader's metrics, registered once in `build()`; bumped only through the events in
//! [`crate::events`] so names and log lines stay consistent.
//!
//! Names as scraped (prefix `reloader_`):
//! - `actions_total{action, result}`: action is sync, validate, webhook, signal, command;
//!   result is success or failure (a failed validation is `validate`/`failure`).
//! - `reloads_total{result}`: changes carried through every action (`success`) or refused by
//!   validation (`rejected`).
//! - `checks_total`: hashes of the watched set taken; `changes_total`: content changes seen
//!   (a touch is a check, not a change).
//! - `last_reload_timestamp_seconds`, `last_change_timestamp_seconds`.
//! - `config_info{hash}` (always one series: the first 12 hex digits of the content hash now
//!   watched) and `config_hash` (the same 48 bits as a number, to compare across pods).
//! - `applied_config_hash`: the hash the actions last completed for.
//! - `pending_reload`: 1 while a change waits for its actions to succeed.
//! - `watch_errors_total`, `fs_events_total`.
use std::sync::atomic::AtomicU64;

use common::prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

/// Two bounded labels.
pub type Labels2 = [(&'static str, &'static str); 2];
/// One bounded label.
pub type Label1 = [(&'static str, &'static str); 1];
/// The hash label (one series at a time).
pub type HashLabel = [(&'static str, String); 1];

/// The agent's metrics.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub actions: Family<Labels2, Counter>,
    pub reloads: Family<Label1, Counter>,
    pub checks: Counter,
    pub changes: Counter,
    pub last_reload: Gauge<f64, AtomicU64>,
    pub last_change: Gauge<f64, AtomicU64>,
    pub config_info: Family<HashLabel, Gauge>,
    pub config_hash: Gauge<f64, AtomicU64>,
    pub applied_hash: Gauge<f64, AtomicU64>,
    pub pending: Gauge,
    pub watch_errors: Counter,
    pub fs_events: Counter,
}

impl Metrics {
    /// Registers everything on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "actions",
            "Actions run, by action and result",
            m.actions.clone(),
        );
        registry.register(
            "reloads",
            "Changes carried through all actions (success) or refused by validation (rejected)",
            m.reloads.clone(),
        );
        registry.register(
            "checks",
            "Hashes of the watched set taken (after events, polls and re-checks)",
            m.checks.clone(),
        );
        registry.register(
            "changes",
            "Content changes of the watched set",
            m.changes.clone(),
        );
        registry.register_with_unit(
            "last_reload_timestamp",
            "When the actions last completed, unix time",
            Unit::Seconds,
            m.last_reload.clone(),
        );
        registry.register_with_unit(
            "last_change_timestamp",
            "When the watched content last changed, unix time",
            Unit::Seconds,
            m.last_change.clone(),
        );
        registry.register(
            "config_info",
            "The content hash now watched (first 12 hex digits)",
            m.config_info.clone(),
        );
        registry.register(
            "config_hash",
            "The first 48 bits of the content hash now watched",
            m.config_hash.clone(),
        );
        registry.register(
            "applied_config_hash",
            "The first 48 bits of the content hash the actions last completed for",
            m.applied_hash.clone(),
        );
        registry.register(
            "pending_reload",
            "1 while a change waits for its actions to succeed",
            m.pending.clone(),
        );
        registry.register(
            "watch_errors",
            "Errors from the filesystem watch or from reading the watched files",
            m.watch_errors.clone(),
        );
        registry.register(
            "fs_events",
            "Filesystem events received",
            m.fs_events.clone(),
        );
        m
    }
}
