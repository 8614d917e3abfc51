//! logship's metrics, registered once in `build()`; bumped only through the events in
//! [`crate::events`] so names and log lines stay consistent.
//!
//! Names as scraped (prefix `logship_`): `lines_read_total`, `read_bytes_total`,
//! `records_sent_total`, `records_already_present_total`, `bulk_requests_total{status}`,
//! `item_errors_total{type}`, `retries_total`, `dead_lettered_total`, `buffer_bytes`,
//! `files_watched`, `file_lag_bytes{path}` (what remains to deliver of each watched file; the
//! label set is bounded by the files being watched).
use std::sync::{Arc, Mutex};

use common::{
    prometheus_client::{
        collector::Collector,
        encoding::{DescriptorEncoder, EncodeMetric},
        metrics::{counter::Counter, family::Family, gauge::ConstGauge, gauge::Gauge},
        registry::{Registry, Unit},
    },
    tail::FileStats,
};

/// One label, bounded in its values.
pub type Label = [(&'static str, String); 1];

/// Where per-file figures come from (the tailer, once started).
pub type StatsSource = Arc<Mutex<Option<Box<dyn Fn() -> Vec<FileStats> + Send + Sync>>>>;

/// The agent's metrics.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub records_sent: Counter,
    pub records_already_present: Counter,
    pub bulk_requests: Family<Label, Counter>,
    pub item_errors: Family<Label, Counter>,
    pub retries: Counter,
    pub dead_lettered: Counter,
    pub buffer_bytes: Gauge,
}

impl Metrics {
    /// Registers everything on `registry`; `stats` feeds `files_watched` and `file_lag_bytes`.
    pub fn register(registry: &mut Registry, stats: StatsSource) -> Self {
        let m = Metrics::default();
        registry.register("lines_read", "Lines read from files", m.lines_read.clone());
        registry.register_with_unit(
            "read",
            "Bytes of line text read from files",
            Unit::Bytes,
            m.bytes_read.clone(),
        );
        registry.register(
            "records_sent",
            "Records delivered to the sink",
            m.records_sent.clone(),
        );
        registry.register(
            "records_already_present",
            "Records Elasticsearch already had (409 on create after a retry or restart), counted as delivered",
            m.records_already_present.clone(),
        );
        registry.register(
            "bulk_requests",
            "Bulk requests by HTTP status (error: no answer)",
            m.bulk_requests.clone(),
        );
        registry.register(
            "item_errors",
            "Bulk items that failed, by Elasticsearch error type",
            m.item_errors.clone(),
        );
        registry.register(
            "retries",
            "Bulk requests and items sent again",
            m.retries.clone(),
        );
        registry.register(
            "dead_lettered",
            "Records Elasticsearch rejected for good, written to the dead-letter file",
            m.dead_lettered.clone(),
        );
        registry.register_with_unit(
            "buffer",
            "Bytes read and not yet delivered",
            Unit::Bytes,
            m.buffer_bytes.clone(),
        );
        registry.register_collector(Box::new(FileCollector { stats }));
        m
    }
}

struct FileCollector {
    stats: StatsSource,
}

impl std::fmt::Debug for FileCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileCollector")
    }
}

impl Collector for FileCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = match self.stats.lock() {
            Ok(g) => g.as_ref().map(|f| f()).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let watched = ConstGauge::new(stats.len() as i64);
        watched.encode(encoder.encode_descriptor(
            "files_watched",
            "Files being tailed",
            None,
            watched.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "file_lag",
            "Bytes of each watched file not yet delivered (size minus delivered offset)",
            Some(&Unit::Bytes),
            common::prometheus_client::metrics::MetricType::Gauge,
        )?;
        for s in &stats {
            let label: Label = [("path", s.path.display().to_string())];
            let g = ConstGauge::new(s.lag_bytes as i64);
            g.encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
