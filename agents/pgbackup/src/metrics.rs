//! The agent's metrics, all labelled by database: last success time, last duration, last
//! size, runs by result, bytes written, backups kept and deleted, restore checks.
use std::sync::atomic::AtomicU64;

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

/// Label pairs.
pub type Labels = Vec<(String, String)>;
type FGauge = Family<Labels, Gauge<f64, AtomicU64>>;

/// Every metric pgbackup exports (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub last_success: FGauge,
    pub last_duration: FGauge,
    pub last_size: Family<Labels, Gauge>,
    pub runs: Family<Labels, Counter>,
    pub written: Family<Labels, Counter>,
    pub kept: Family<Labels, Gauge>,
    pub deleted: Family<Labels, Counter>,
    pub restore_checks: Family<Labels, Counter>,
    pub skipped_ticks: Counter,
}

/// `database="x"`.
pub fn db(database: &str) -> Labels {
    vec![("database".into(), database.into())]
}

/// `database="x",result="y"`.
pub fn db_result(database: &str, result: &str) -> Labels {
    vec![
        ("database".into(), database.into()),
        ("result".into(), result.into()),
    ]
}

impl Metrics {
    /// Registers everything on the agent's registry.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register_with_unit(
            "last_success_timestamp",
            "Unix time of the last successful, verified backup",
            Unit::Seconds,
            m.last_success.clone(),
        );
        registry.register_with_unit(
            "last_duration",
            "Duration of the last successful backup",
            Unit::Seconds,
            m.last_duration.clone(),
        );
        registry.register_with_unit(
            "last_size",
            "Size of the last successful backup file",
            Unit::Bytes,
            m.last_size.clone(),
        );
        registry.register(
            "runs",
            "Backup runs by result (success, failure, cancelled)",
            m.runs.clone(),
        );
        registry.register_with_unit(
            "written",
            "Bytes of backup files written",
            Unit::Bytes,
            m.written.clone(),
        );
        registry.register(
            "backups_kept",
            "Verified backups on disk after retention",
            m.kept.clone(),
        );
        registry.register(
            "backups_deleted",
            "Backups deleted by retention",
            m.deleted.clone(),
        );
        registry.register(
            "restore_checks",
            "Scheduled restore checks by result",
            m.restore_checks.clone(),
        );
        registry.register(
            "skipped_ticks",
            "Schedule ticks skipped because a run was still going",
            m.skipped_ticks.clone(),
        );
        m
    }
}
