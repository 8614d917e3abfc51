//! log2json's metrics, registered once in `build()` under the `log2json_` prefix.
use common::prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Labels of a per-format or per-output counter.
pub type Labels = Vec<(&'static str, String)>;

/// The counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Lines read from the input (before multiline joining).
    pub lines_read: Counter,
    /// Records written to the output.
    pub records_written: Counter,
    /// Bytes written to the output.
    pub output_bytes: Counter,
    /// Lines that did not parse, by format.
    pub parse_errors: Family<Labels, Counter>,
    /// Multiline records made of more than one line.
    pub multiline_groups: Counter,
    /// Lines longer than --max-line-bytes (cut into pieces).
    pub truncated_lines: Counter,
    /// Lines with invalid UTF-8 (bytes replaced with U+FFFD).
    pub invalid_utf8_lines: Counter,
    /// Failed writes or POSTs, by output.
    pub output_errors: Family<Labels, Counter>,
}

impl Metrics {
    /// Registers every counter on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "lines_read",
            "Lines read from the input, before multiline joining",
            m.lines_read.clone(),
        );
        registry.register(
            "records_written",
            "JSON records written to the output",
            m.records_written.clone(),
        );
        registry.register_with_unit(
            "output",
            "Bytes of JSON written to the output",
            common::prometheus_client::registry::Unit::Bytes,
            m.output_bytes.clone(),
        );
        registry.register(
            "parse_errors",
            "Lines that did not parse (emitted with parse_error), by format",
            m.parse_errors.clone(),
        );
        registry.register(
            "multiline_groups",
            "Records joined from more than one line",
            m.multiline_groups.clone(),
        );
        registry.register(
            "truncated_lines",
            "Pieces of lines longer than --max-line-bytes",
            m.truncated_lines.clone(),
        );
        registry.register(
            "invalid_utf8_lines",
            "Lines whose invalid UTF-8 was replaced with U+FFFD",
            m.invalid_utf8_lines.clone(),
        );
        registry.register(
            "output_errors",
            "Failed writes or POSTs to the output, by output",
            m.output_errors.clone(),
        );
        m
    }
}
