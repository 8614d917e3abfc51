//! Internal events (Vector style): one small type per observable happening, whose `emit()`
//! logs the line and bumps the metric, so log messages and metric names stay consistent.
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;

/// Lines handed over by the tailer (hot path: metrics only).
pub struct LinesRead {
    pub lines: u64,
    pub bytes: u64,
}
impl LinesRead {
    pub fn emit(self, m: &Metrics) {
        m.lines_read.inc_by(self.lines);
        m.bytes_read.inc_by(self.bytes);
        m.buffer_bytes.inc_by(self.bytes as i64);
    }
}

/// Read data acknowledged (delivered, dead-lettered or already present): no longer buffered.
pub struct BufferReleased {
    pub bytes: u64,
}
impl BufferReleased {
    pub fn emit(self, m: &Metrics) {
        m.buffer_bytes.dec_by(self.bytes as i64);
    }
}

/// Records delivered by the sink.
pub struct RecordsSent {
    pub count: u64,
    pub already_present: u64,
}
impl RecordsSent {
    pub fn emit(self, m: &Metrics) {
        m.records_sent.inc_by(self.count + self.already_present);
        m.records_already_present.inc_by(self.already_present);
        if self.already_present > 0 {
            debug!(
                count = self.already_present,
                "records already present in elasticsearch (409), counted as delivered"
            );
        }
    }
}

/// A bulk request got an HTTP answer.
pub struct BulkAnswered {
    pub status: u16,
    pub records: usize,
    pub elapsed: std::time::Duration,
}
impl BulkAnswered {
    pub fn emit(self, m: &Metrics) {
        debug!(
            status = self.status,
            records = self.records,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "bulk request answered"
        );
        m.bulk_requests
            .get_or_create(&[("status", self.status.to_string())])
            .inc();
    }
}

/// A bulk request failed as a whole and will be sent again.
pub struct BulkFailed<'a> {
    pub url: &'a str,
    pub status: Option<u16>,
    pub error: &'a str,
    pub records: usize,
}
impl BulkFailed<'_> {
    pub fn emit(self, m: &Metrics) {
        if self.status.is_none() {
            m.bulk_requests
                .get_or_create(&[("status", "error".to_string())])
                .inc();
        }
        m.retries.inc();
        let url = common::secret::redact(self.url);
        match self.status {
            Some(status) => {
                warn!(%url, status, error = self.error, records = self.records, "bulk request failed; retrying")
            }
            None => {
                warn!(%url, error = self.error, records = self.records, "cannot reach elasticsearch; retrying")
            }
        }
    }
}

/// Items answered with a retryable error (429, 5xx): sent again.
pub struct ItemsRetried<'a> {
    pub error_type: &'a str,
    pub count: u64,
}
impl ItemsRetried<'_> {
    pub fn emit(self, m: &Metrics) {
        m.item_errors
            .get_or_create(&[("type", bounded(self.error_type))])
            .inc_by(self.count);
        m.retries.inc_by(self.count);
        debug!(
            error_type = self.error_type,
            count = self.count,
            "bulk items failed with a retryable error; retrying"
        );
    }
}

/// An item rejected for good, written to the dead-letter file.
pub struct ItemDeadLettered<'a> {
    pub id: &'a str,
    pub status: u16,
    pub error_type: &'a str,
    pub reason: &'a str,
}
impl ItemDeadLettered<'_> {
    pub fn emit(self, m: &Metrics) {
        m.item_errors
            .get_or_create(&[("type", bounded(self.error_type))])
            .inc();
        m.dead_lettered.inc();
        warn!(
            id = self.id,
            status = self.status,
            error_type = self.error_type,
            reason = self.reason,
            "record rejected by elasticsearch; written to the dead-letter file"
        );
    }
}

/// The dead-letter file could not be written: the record is logged instead.
pub struct DeadLetterWriteFailed<'a> {
    pub error: &'a std::io::Error,
    pub record: &'a str,
}
impl DeadLetterWriteFailed<'_> {
    pub fn emit(self) {
        error!(error = %self.error, record = self.record, "cannot write the dead-letter file; the rejected record is in this log line");
    }
}

/// The sink answered for the first time (or again after failing).
pub struct SinkReady<'a> {
    pub sink: &'a str,
}
impl SinkReady<'_> {
    pub fn emit(self) {
        info!(sink = self.sink, "sink ready");
    }
}

/// Elasticsearch error types are a closed set in practice; cap the label anyway.
fn bounded(t: &str) -> String {
    let t = if t.is_empty() { "unknown" } else { t };
    t.chars().take(64).collect()
}
