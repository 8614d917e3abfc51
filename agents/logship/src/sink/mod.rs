//! Sinks: where batches go. stdout (NDJSON, the embedded default) or Elasticsearch/OpenSearch
//! `_bulk`. A sink resolves every record of a batch it accepts (delivered, already present or
//! dead-lettered), which acknowledges the lines to the tailer.
use tokio::time::Instant;

use crate::pipeline::Batch;

pub mod elasticsearch;
pub mod stdout;

/// Room for one batch in the sink (an in-flight request slot for Elasticsearch).
pub struct Slot(Option<tokio::sync::OwnedSemaphorePermit>);

/// The configured sink.
pub enum Sink {
    /// NDJSON on stdout.
    Stdout(stdout::StdoutSink),
    /// Elasticsearch or OpenSearch.
    Elasticsearch(elasticsearch::EsSink),
}

impl Sink {
    /// Hands a batch over; waits while the sink has as many batches in flight as allowed.
    pub async fn send(&self, batch: Batch) {
        let slot = self.reserve().await;
        self.dispatch(batch, slot);
    }

    /// Waits for room for one more batch (cancel-safe: no batch is involved yet, so a
    /// shutdown that interrupts the wait loses nothing).
    pub async fn reserve(&self) -> Slot {
        match self {
            Sink::Stdout(_) => Slot(None),
            Sink::Elasticsearch(s) => Slot(s.reserve().await),
        }
    }

    /// Hands a batch over in a reserved slot.
    pub fn dispatch(&self, batch: Batch, slot: Slot) {
        match self {
            Sink::Stdout(s) => s.send(batch),
            Sink::Elasticsearch(s) => s.dispatch(batch, slot.0),
        }
    }

    /// Waits until every accepted batch is resolved or `deadline` passes; true when all were.
    pub async fn drain(&self, deadline: Instant) -> bool {
        match self {
            Sink::Stdout(_) => true,
            Sink::Elasticsearch(s) => s.drain(deadline).await,
        }
    }
}
