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

use std::collections::HashMap;

use bytes::Bytes;
use common::{
    parse::{Multiline, MultilineConfig},
    tail::{AckToken, Acker, Chunk, Line},
};
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
    /// Where the buffer goes back when the batch is done.
    pool: BufferPool,
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

/// Batch buffers handed back after delivery and reused: a batch buffer is about a megabyte,
/// and allocating a fresh one per batch kept several freed ones resident at any time (the
/// allocator purges lazily): peak RSS 35 MB with the pool absent, see
/// benches/logship/README.md.
#[derive(Clone, Default)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Most buffers kept (the batches that can exist at once).
    keep: usize,
}

impl BufferPool {
    fn new(keep: usize) -> Self {
        BufferPool {
            free: Arc::default(),
            keep,
        }
    }

    /// A cleared buffer of at least `capacity`.
    fn get(&self, capacity: usize) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        match reused {
            Some(buf) if buf.capacity() >= capacity => buf,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// Drops the kept buffers (when the agent goes idle, so that it holds no memory).
    pub fn clear(&self) {
        if let Ok(mut free) = self.free.lock() {
            *free = Vec::new();
        }
    }

    /// Takes a buffer back if nothing else holds it (a request body still in flight does).
    fn put(&self, buf: Bytes) {
        let Ok(mut buf) = buf.try_into_mut() else {
            return;
        };
        // Cleared first: turning a `BytesMut` back into a `Vec` moves its contents to the
        // front of the allocation (a megabyte per batch, 16% of raw CPU when it was after).
        buf.clear();
        let buf: Vec<u8> = buf.into();
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.keep && buf.capacity() > 0 {
                free.push(buf);
            }
        }
    }
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
    pool: BufferPool,
    items: Vec<Item>,
    chunks: Vec<Arc<ChunkAck>>,
    /// A parsed document before its action line is known (the index date follows the
    /// document's `@timestamp`).
    scratch: Vec<u8>,
    /// Multiline joining, if on, and the pending group of each file (by fingerprint).
    multiline: Option<MultilineConfig>,
    groups: HashMap<u64, Group>,
    /// When the oldest record of the open batch arrived.
    pub opened: Option<Instant>,
}

/// A file's multiline state: the joiner and what the pending group's record will carry.
struct Group {
    joiner: Multiline,
    pending: Option<GroupStart>,
}

/// Where a pending group started. The chunk holding its first line counts the group as one of
/// its records, so that chunk (and the checkpoint) waits until the group is delivered.
struct GroupStart {
    owner: Arc<ChunkAck>,
    offset: u64,
    path_json: Arc<str>,
    fingerprint: u64,
    truncated: bool,
    partial: bool,
    invalid_utf8: bool,
}

impl GroupStart {
    fn new(owner: &Arc<ChunkAck>, line: &Line, path_json: &Arc<str>, fingerprint: u64) -> Self {
        owner.remaining.fetch_add(1, Ordering::AcqRel);
        GroupStart {
            owner: owner.clone(),
            offset: line.offset,
            path_json: path_json.clone(),
            fingerprint,
            truncated: line.truncated,
            partial: line.partial,
            invalid_utf8: line.invalid_utf8,
        }
    }

    fn join_flags(&mut self, line: &Line) {
        self.truncated |= line.truncated;
        self.partial |= line.partial;
        self.invalid_utf8 |= line.invalid_utf8;
    }

    fn line(&self, text: String) -> Line {
        Line {
            offset: self.offset,
            text,
            invalid_utf8: self.invalid_utf8,
            truncated: self.truncated,
            partial: self.partial,
        }
    }
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
            buf: Vec::new(),
            pool: BufferPool::default(),
            items: Vec::new(),
            chunks: Vec::new(),
            scratch: Vec::new(),
            multiline: None,
            groups: HashMap::new(),
            opened: None,
        }
    }

    /// Keeps up to `keep` batch buffers for reuse (the batches that can exist at once: in
    /// flight, waiting, open).
    pub fn with_buffer_reuse(mut self, keep: usize) -> Self {
        self.pool = BufferPool::new(keep);
        self
    }

    /// The pool of batch buffers (to empty it when idle).
    pub fn buffer_pool(&self) -> BufferPool {
        self.pool.clone()
    }

    /// Joins continuation lines into one record per group.
    pub fn with_multiline(mut self, multiline: Option<MultilineConfig>) -> Self {
        self.multiline = multiline;
        self
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
        // One count held while the chunk is being split into records, so that a batch
        // resolved meanwhile cannot release the chunk early.
        let ack = Arc::new(ChunkAck {
            remaining: AtomicUsize::new(1),
            token: Mutex::new(Some(chunk.ack)),
            bytes,
            ctx: self.ctx.clone(),
        });
        let mut full = Vec::new();
        let timestamp = record::now_timestamp();
        let mut path_json = Vec::new();
        record::write_json_str(&mut path_json, &chunk.file.path.to_string_lossy());
        let path_json: Arc<str> = String::from_utf8_lossy(&path_json).into();
        let fingerprint = chunk.file.fingerprint;
        if self.multiline.is_some() {
            for line in &chunk.lines {
                if let Some((start, text)) = self.join(line, &ack, &path_json, fingerprint) {
                    self.add_group(start, text, &timestamp, &mut full);
                }
            }
            self.groups.retain(|_, g| g.pending.is_some());
        } else {
            ack.remaining.fetch_add(chunk.lines.len(), Ordering::AcqRel);
            for line in &chunk.lines {
                self.add(&ack, line, &timestamp, &path_json, fingerprint, &mut full);
            }
        }
        ack.resolve(1);
        full
    }

    /// Feeds one line to its file's joiner; returns the group it completed, if any.
    fn join(
        &mut self,
        line: &Line,
        ack: &Arc<ChunkAck>,
        path_json: &Arc<str>,
        fingerprint: u64,
    ) -> Option<(GroupStart, String)> {
        let config = self.multiline.as_ref()?;
        let group = self.groups.entry(fingerprint).or_insert_with(|| Group {
            joiner: Multiline::new(config.clone()),
            pending: None,
        });
        let had = group.joiner.has_pending();
        let splits = had && group.joiner.is_start(&line.text);
        let closed = if splits || !had {
            let start = GroupStart::new(ack, line, path_json, fingerprint);
            group.pending.replace(start)
        } else {
            if let Some(p) = &mut group.pending {
                p.join_flags(line);
            }
            None
        };
        let text = group.joiner.push(&line.text)?;
        // Either the line started a new group and `text` is the previous one, or the group
        // (this line included) reached its limits.
        let start = match closed {
            Some(prev) => prev,
            None => group.pending.take()?,
        };
        Some((start, text))
    }

    /// Ships pending multiline groups: those idle past their timeout (`now`), or all of them
    /// (`None`: end of input, shutdown). Returns the batches this filled.
    pub fn flush_groups(&mut self, now: Option<std::time::Instant>) -> Vec<Batch> {
        let mut due = Vec::new();
        for group in self.groups.values_mut() {
            let expired = match (now, group.joiner.deadline()) {
                (None, _) => true,
                (Some(now), Some(deadline)) => deadline <= now,
                (Some(_), None) => false,
            };
            if expired {
                if let (Some(text), Some(start)) = (group.joiner.flush(), group.pending.take()) {
                    due.push((start, text));
                }
            }
        }
        self.groups.retain(|_, g| g.pending.is_some());
        let timestamp = record::now_timestamp();
        let mut full = Vec::new();
        for (start, text) in due {
            self.add_group(start, text, &timestamp, &mut full);
        }
        full
    }

    /// When the next pending multiline group times out.
    pub fn next_group_deadline(&self) -> Option<Instant> {
        self.groups
            .values()
            .filter_map(|g| g.joiner.deadline())
            .min()
            .map(Instant::from_std)
    }

    fn add_group(
        &mut self,
        start: GroupStart,
        text: String,
        timestamp: &str,
        full: &mut Vec<Batch>,
    ) {
        let line = start.line(text);
        self.add(
            &start.owner,
            &line,
            timestamp,
            &start.path_json,
            start.fingerprint,
            full,
        );
    }

    /// Appends one record (counted already in `owner`); a batch it fills goes to `full`.
    fn add(
        &mut self,
        owner: &Arc<ChunkAck>,
        line: &Line,
        timestamp: &str,
        path_json: &str,
        fingerprint: u64,
        full: &mut Vec<Batch>,
    ) {
        let chunk = self.attach(owner);
        if self.buf.capacity() == 0 {
            self.buf = self.pool.get(capacity(self.max_bytes));
        }
        let start = self.buf.len();
        let doc;
        match &mut self.actions {
            Some(actions) if self.encoder.parses() => {
                // The index date follows the parsed `@timestamp`: encode the document first.
                self.scratch.clear();
                self.encoder
                    .encode(&mut self.scratch, timestamp, path_json, line);
                let stamp = record::timestamp_of(&self.scratch).unwrap_or(timestamp);
                actions.encode(&mut self.buf, stamp, fingerprint, line.offset);
                doc = self.buf.len();
                self.buf.extend_from_slice(&self.scratch);
            }
            Some(actions) => {
                actions.encode(&mut self.buf, timestamp, fingerprint, line.offset);
                doc = self.buf.len();
                self.encoder
                    .encode(&mut self.buf, timestamp, path_json, line);
            }
            None => {
                doc = start;
                self.encoder
                    .encode(&mut self.buf, timestamp, path_json, line);
            }
        }
        self.buf.push(b'\n');
        self.items.push(Item {
            start,
            doc,
            end: self.buf.len(),
            chunk,
        });
        self.opened.get_or_insert_with(Instant::now);
        if self.buf.len() >= self.max_bytes || self.items.len() >= self.max_records {
            full.extend(self.take());
        }
    }

    /// The batch's index of `owner`'s acknowledgement (one entry per run of consecutive
    /// records of the same chunk; a chunk may appear twice when multiline groups interleave).
    fn attach(&mut self, owner: &Arc<ChunkAck>) -> u32 {
        if !self
            .chunks
            .last()
            .is_some_and(|last| Arc::ptr_eq(last, owner))
        {
            self.chunks.push(owner.clone());
        }
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
        // The next batch takes a buffer when its first record comes: an idle agent holds none.
        let buf = std::mem::take(&mut self.buf);
        Some(Batch {
            buf: Bytes::from(buf),
            items: std::mem::take(&mut self.items),
            chunks: std::mem::take(&mut self.chunks),
            pool: self.pool.clone(),
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
/// queued, pending multiline groups, and batches that were waiting for an in-flight slot) and
/// waits for the sink for at most `pacing.drain`; after it, `abandon` stops the sink's retries
/// and undelivered records stay unacknowledged: they are read again on the next start.
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
    // Batches that shutdown kept from being handed over: shipped during the drain.
    let mut held: Vec<Batch> = Vec::new();
    'run: loop {
        let linger_at = batcher.opened.map(|t| t + linger);
        let group_at = batcher.next_group_deadline();
        let ready = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            chunk = rx.recv() => match chunk {
                Some(chunk) => {
                    let mut ready = batcher.push(chunk);
                    if batcher.under_pressure(budget) {
                        ready.extend(batcher.take());
                    }
                    ready
                }
                None => break,
            },
            _ = sleep_until(group_at) => batcher.flush_groups(Some(std::time::Instant::now())),
            _ = sleep_until(linger_at) => batcher.take().into_iter().collect(),
        };
        let mut ready = ready.into_iter();
        while let Some(batch) = ready.next() {
            if let Err(batch) = send_unless(&sink, batch, &shutdown).await {
                held.push(batch);
                held.extend(ready);
                break 'run;
            }
        }
    }
    let deadline = Instant::now() + drain;
    for batch in held {
        send_until(&sink, batch, deadline).await;
    }
    // Reading stopped with the shutdown token; ship what is already queued.
    while let Ok(chunk) = rx.try_recv() {
        for batch in batcher.push(chunk) {
            send_until(&sink, batch, deadline).await;
        }
    }
    // A pod that is shutting down does not come back to finish its groups: ship them.
    for batch in batcher.flush_groups(None) {
        send_until(&sink, batch, deadline).await;
    }
    if let Some(batch) = batcher.take() {
        send_until(&sink, batch, deadline).await;
    }
    if !sink.drain(deadline).await {
        tracing::warn!("shutdown deadline reached with records undelivered; they will be read again on the next start");
    }
    abandon.cancel();
}

/// Hands `batch` over unless shutdown starts while the sink is full; then the batch comes back
/// (waiting for a slot is cancel-safe, so nothing is lost).
async fn send_unless(sink: &Sink, batch: Batch, shutdown: &CancellationToken) -> Result<(), Batch> {
    tokio::select! {
        slot = sink.reserve() => {
            sink.dispatch(batch, slot);
            Ok(())
        }
        () = shutdown.cancelled() => Err(batch),
    }
}

async fn send_until(sink: &Sink, batch: Batch, deadline: Instant) {
    if let Ok(slot) = tokio::time::timeout_at(deadline, sink.reserve()).await {
        sink.dispatch(batch, slot);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_buffers_are_reused_once_nothing_else_holds_them() {
        let pool = BufferPool::new(2);
        let mut buf = pool.get(4096);
        buf.extend_from_slice(b"{\"message\":\"x\"}\n");
        let ptr = buf.as_ptr();
        let body = Bytes::from(buf);
        let in_flight = body.clone();
        pool.put(body);
        assert!(
            pool.free.lock().unwrap().is_empty(),
            "a request body in flight keeps its buffer"
        );
        pool.put(in_flight);
        let again = pool.get(4096);
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        assert!(again.is_empty() && again.capacity() >= 4096);
        pool.put(Bytes::from(again));
        pool.clear();
        assert!(pool.free.lock().unwrap().is_empty());
    }
}
