//! The embedded default sink: records as NDJSON on stdout, acknowledged once written and
//! flushed (so `logship --path x.log | jq` just works and checkpoints follow what was printed).
use std::io::Write;

use crate::{events::RecordsSent, metrics::Metrics, pipeline::Batch};

/// Writes batches to stdout.
pub struct StdoutSink {
    metrics: Metrics,
}

impl StdoutSink {
    /// A stdout sink.
    pub fn new(metrics: Metrics) -> Self {
        StdoutSink { metrics }
    }

    /// Writes and flushes the batch, then acknowledges it. A closed stdout (the reader went
    /// away) leaves the batch unacknowledged: it is read again on the next start.
    pub fn send(&self, batch: Batch) {
        let mut out = std::io::stdout().lock();
        match out.write_all(&batch.buf).and_then(|()| out.flush()) {
            Ok(()) => {
                RecordsSent {
                    count: batch.items.len() as u64,
                    already_present: 0,
                }
                .emit(&self.metrics);
                batch.resolve_all();
            }
            Err(error) => {
                tracing::error!(%error, records = batch.items.len(), "cannot write records to stdout");
            }
        }
    }
}
