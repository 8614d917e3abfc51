//! The pipeline: chunks of lines from the tailer become records, records become batches
//! (bounded by bytes, count and linger time), batches go to the sink, and each chunk is
//! acknowledged to the tailer only once every one of its records is resolved (delivered,
//! already present, or dead-lettered). Checkpoints therefore never run ahead of delivery.
use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use common::tail::{AckToken, Acker, Chunk};
use tokio::{sync::mpsc::Receiver, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    events::{BufferReleased, LinesRead},
    metrics::Metrics,
    record::{self, RecordEncoder},
    sink::{elasticsearch::encoder::ActionEncoder, Sink},
};

/// What acknowledging needs: the tailer's acker and the metrics.
#[derive(Clone)]
pub struct AckCtx {
    pub acker: Acker,
    pub metrics: Metrics,
    /// Line bytes read and not yet acknowledged (what the tailer's budget counts).
    pub unacked: Arc<AtomicU64>,
}

/// One chunk's acknowledgement, released when its last record is resolved.
pub struct ChunkAck {
    remaining: AtomicUsize,
    token: Mutex<Option<AckToken>>,
    bytes: u64,
    ctx: AckCtx,
}

impl ChunkAck {
    fn resolve(&self, n: usize) {
        if n == 0 {
            return;
        }
        if self.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            let token = self.token.lock().ok().and_then(|mut t| t.take());
            if let Some(token) = token {
                self.ctx.acker.ack(token);
            }
            self.ctx.unacked.fetch_sub(self.bytes, Ordering::AcqRel);
            BufferReleased { bytes: self.bytes }.emit(&self.ctx.metrics);
        }
    }
}

/// One record inside a batch's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// Start of the record (its action line for Elasticsearch).
    pub start: usize,
    /// Start of the document itself.
    pub doc: usize,
    /// End, after the document's newline.
    pub end: usize,
    /// Index into the batch's chunks.
    chunk: u32,
}

/// Records ready to send: one buffer of NDJSON plus where each record lies in it.
pub struct Batch {
    pub buf: Bytes,
    pub items: Vec<Item>,
    chunks: Vec<Arc<ChunkAck>>,
}

impl Batch {
    /// Marks the records at `idx` resolved; chunks whose records are all resolved are acked.
    pub fn resolve(&self, idx: impl IntoIterator<Item = usize>) {
        let mut counts = vec![0usize; self.chunks.len()];
        for i in idx {
            counts[self.items[i].chunk as usize] += 1;
        }
        for (c, n) in self.chunks.iter().zip(counts) {
            c.resolve(n);
        }
    }

    /// Marks every record resolved.
    pub fn resolve_all(&self) {
        self.resolve(0..self.items.len());
    }

    /// The record's bytes (action and document lines).
    pub fn record(&self, i: usize) -> &[u8] {
        let it = self.items[i];
        &self.buf[it.start..it.end]
    }

    /// The document alone (no newline).
    pub fn doc(&self, i: usize) -> &[u8] {
        let it = self.items[i];
        &self.buf[it.doc..it.end - 1]
    }

    /// The action line alone (no newline; empty for stdout).
    pub fn action(&self, i: usize) -> &[u8] {
        let it = self.items[i];
        &self.buf[it.start..it.doc.saturating_sub(1).max(it.start)]
    }
}

/// Builds batches from chunks.
pub struct Batcher {
    encoder: RecordEncoder,
    actions: Option<ActionEncoder>,
    max_bytes: usize,
    max_records: usize,
    ctx: AckCtx,
    buf: Vec<u8>,
    items: Vec<Item>,
    chunks: Vec<Arc<ChunkAck>>,
    /// When the oldest record of the open batch arrived.
    pub opened: Option<Instant>,
}

impl Batcher {
    pub fn new(
        encoder: RecordEncoder,
        actions: Option<ActionEncoder>,
        max_bytes: usize,
        max_records: usize,
        ctx: AckCtx,
    ) -> Self {
        Batcher {
            encoder,
            actions,
            max_bytes,
            max_records,
            ctx,
            buf: Vec::with_capacity(capacity(max_bytes)),
            items: Vec::new(),
            chunks: Vec::new(),
            opened: None,
        }
    }

    /// Adds a chunk's records; returns the batches it filled.
    pub fn push(&mut self, chunk: Chunk) -> Vec<Batch> {
        let bytes: u64 = chunk.lines.iter().map(|l| l.text.len() as u64).sum();
        LinesRead {
            lines: chunk.lines.len() as u64,
            bytes,
        }
        .emit(&self.ctx.metrics);
        self.ctx.unacked.fetch_add(bytes, Ordering::AcqRel);
        let ack = Arc::new(ChunkAck {
            remaining: AtomicUsize::new(chunk.lines.len()),
            token: Mutex::new(Some(chunk.ack)),
            bytes,
            ctx: self.ctx.clone(),
        });
        let mut full = Vec::new();
        if chunk.lines.is_empty() {
            // Nothing to deliver: the chunk is done now.
            ack.remaining.store(1, Ordering::Release);
            ack.resolve(1);
            return full;
        }
        let timestamp = record::now_timestamp();
        let mut path_json = Vec::new();
        record::write_json_str(&mut path_json, &chunk.file.path.to_string_lossy());
        let path_json = String::from_utf8_lossy(&path_json).into_owned();
        let mut chunk_idx = self.attach(&ack);
        for line in &chunk.lines {
            let start = self.buf.len();
            if let Some(a) = &mut self.actions {
                a.encode(
                    &mut self.buf,
                    &timestamp,
                    chunk.file.fingerprint,
                    line.offset,
                );
            }
            let doc = self.buf.len();
            self.encoder
                .encode(&mut self.buf, &timestamp, &path_json, line);
            self.buf.push(b'\n');
            self.items.push(Item {
                start,
                doc,
                end: self.buf.len(),
                chunk: chunk_idx,
            });
            self.opened.get_or_insert_with(Instant::now);
            if self.buf.len() >= self.max_bytes || self.items.len() >= self.max_records {
                full.extend(self.take());
                chunk_idx = self.attach(&ack);
            }
        }
        full
    }

    fn attach(&mut self, ack: &Arc<ChunkAck>) -> u32 {
        self.chunks.push(ack.clone());
        (self.chunks.len() - 1) as u32
    }

    /// True when the read-but-unacknowledged bytes are close to the tailer's budget: reading
    /// is about to pause, so the open batch must go now rather than wait for its linger time.
    pub fn under_pressure(&self, budget: u64) -> bool {
        !self.items.is_empty() && self.ctx.unacked.load(Ordering::Acquire) >= budget / 2
    }

    /// Closes the open batch, if it has records.
    pub fn take(&mut self) -> Option<Batch> {
        self.opened = None;
        if self.items.is_empty() {
            self.chunks.clear();
            return None;
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity(self.max_bytes)));
        Some(Batch {
            buf: Bytes::from(buf),
            items: std::mem::take(&mut self.items),
            chunks: std::mem::take(&mut self.chunks),
        })
    }
}

/// A batch buffer's capacity: the bound plus room for the record that crosses it, so the
/// buffer is allocated once instead of doubling past the bound (pages are only touched as
/// they are written).
fn capacity(max_bytes: usize) -> usize {
    max_bytes + (64 << 10)
}

/// How the pipeline paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How long an open batch waits to fill.
    pub linger: Duration,
    /// The tailer's in-flight budget (`--max-buffer`).
    pub budget: u64,
    /// How long the sink may take to deliver what is left once shutdown starts.
    pub drain: Duration,
}

/// Runs the pipeline until shutdown, then ships what was read (including chunks already
/// queued) and waits for the sink for at most `pacing.drain`; after it, `abandon` stops the
/// sink's retries and undelivered records stay unacknowledged: they are read again on the
/// next start.
pub async fn run(
    mut rx: Receiver<Chunk>,
    mut batcher: Batcher,
    sink: Sink,
    shutdown: CancellationToken,
    pacing: Pacing,
    abandon: CancellationToken,
) {
    let Pacing {
        linger,
        budget,
        drain,
    } = pacing;
    loop {
        let linger_at = batcher.opened.map(|t| t + linger);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            chunk = rx.recv() => match chunk {
                Some(chunk) => {
                    let mut ready = batcher.push(chunk);
                    if batcher.under_pressure(budget) {
                        ready.extend(batcher.take());
                    }
                    for batch in ready {
                        if !send_unless(&sink, batch, &shutdown).await {
                            break;
                        }
                    }
                }
                None => break,
            },
            _ = sleep_until(linger_at) => {
                if let Some(batch) = batcher.take() {
                    send_unless(&sink, batch, &shutdown).await;
                }
            }
        }
    }
    let deadline = Instant::now() + drain;
    // Stop reading happened with the shutdown token; ship what is already queued.
    while let Ok(chunk) = rx.try_recv() {
        for batch in batcher.push(chunk) {
            send_until(&sink, batch, deadline).await;
        }
    }
    if let Some(batch) = batcher.take() {
        send_until(&sink, batch, deadline).await;
    }
    if !sink.drain(deadline).await {
        tracing::warn!("shutdown deadline reached with records undelivered; they will be read again on the next start");
    }
    abandon.cancel();
}

/// Sends unless shutdown starts while the sink is full (the batch stays unacknowledged and is
/// read again on the next start). False when shutdown interrupted.
async fn send_unless(sink: &Sink, batch: Batch, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = sink.send(batch) => true,
        () = shutdown.cancelled() => false,
    }
}

async fn send_until(sink: &Sink, batch: Batch, deadline: Instant) {
    let _ = tokio::time::timeout_at(deadline, sink.send(batch)).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
