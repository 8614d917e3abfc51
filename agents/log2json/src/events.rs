//! Internal events: one type per observable happening; `emit()` logs it and bumps its metric,
//! so log lines and metric names stay consistent.
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// A line did not parse; it is written with its raw text and `parse_error`.
pub struct ParseFailed<'a> {
    /// The format's name.
    pub format: &'static str,
    /// Why.
    pub reason: &'a str,
}

impl ParseFailed<'_> {
    /// Counts it (debug log only: a wrong --format would flood the log).
    pub fn emit(&self, m: &Metrics) {
        debug!(
            format = self.format,
            reason = self.reason,
            "line did not parse; written with parse_error"
        );
        m.parse_errors
            .get_or_create(&vec![("format", self.format.to_string())])
            .inc();
    }
}

/// A write or POST to the output failed.
pub struct OutputFailed<'a> {
    /// `stdout`, `file` or `http`.
    pub output: &'static str,
    /// The error.
    pub error: &'a dyn std::fmt::Display,
    /// What happens next (`retrying`, `dropping the batch`).
    pub action: &'static str,
}

impl OutputFailed<'_> {
    /// Logs and counts it.
    pub fn emit(&self, m: &Metrics) {
        warn!(output = self.output, error = %self.error, action = self.action, "cannot write to the output");
        m.output_errors
            .get_or_create(&vec![("output", self.output.to_string())])
            .inc();
    }
}

/// Records written.
pub struct RecordsWritten {
    /// How many.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

impl RecordsWritten {
    /// Counts them.
    pub fn emit(&self, m: &Metrics) {
        m.records_written.inc_by(self.count);
        m.output_bytes.inc_by(self.bytes);
    }
}
