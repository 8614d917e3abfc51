//! The Elasticsearch/OpenSearch sink: batches go out as `_bulk` requests, at most
//! `--es-max-in-flight` at once, and each record is resolved from its own item in the answer.
//!
//! - Item 2xx: delivered. Item 409 on `create`: already delivered (a retry or a restart).
//! - Item 429/5xx: sent again, alone with the other retryable ones, after a backoff.
//! - Other item errors (400 mapping errors...): written to the dead-letter file with the
//!   reason, counted, and acknowledged: never retried forever, never silently dropped.
//! - No answer, or a whole-request 429/5xx (also 401/403/404, which a fix on the cluster side
//!   cures): the request is retried with backoff, failing over to the next URL.
//! - 413: the records are split in two halves and each is sent on its own; a single record
//!   still too large is dead-lettered. Other whole-request 4xx split likewise, to isolate the
//!   record the cluster refuses.
//!
//! A batch is abandoned only at the shutdown deadline; its records stay unacknowledged, so
//! they are read again on the next start (and deduplicated by their `_id`).
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use common::readiness::Condition;
use tokio::{sync::Semaphore, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    config::EsSettings,
    dlq::{DeadLetter, DeadLetters},
    events::{BulkAnswered, BulkFailed, ItemDeadLettered, ItemsRetried, RecordsSent, SinkReady},
    metrics::Metrics,
    pipeline::Batch,
    Error,
};

pub mod encoder;
pub mod request;
pub mod response;
pub mod retry;
pub mod service;

use response::ItemOutcome;
use service::EsClient;

struct Inner {
    client: EsClient,
    metrics: Metrics,
    dlq: Arc<DeadLetters>,
    abandon: CancellationToken,
    max_backoff: Duration,
    ready: Condition,
    answered: AtomicBool,
}

/// The sink.
pub struct EsSink {
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
    max_in_flight: u32,
}

impl EsSink {
    /// Builds the sink; `abandon` stops retrying (at the shutdown deadline).
    pub fn new(
        settings: &EsSettings,
        metrics: Metrics,
        dlq: Arc<DeadLetters>,
        ready: Condition,
        abandon: CancellationToken,
        max_backoff: Duration,
    ) -> Result<Self, Error> {
        let client = EsClient::new(settings)?;
        let max_in_flight = settings.max_in_flight.min(64) as u32;
        Ok(EsSink {
            inner: Arc::new(Inner {
                client,
                metrics,
                dlq,
                abandon,
                max_backoff,
                ready,
                answered: AtomicBool::new(false),
            }),
            permits: Arc::new(Semaphore::new(max_in_flight as usize)),
            max_in_flight,
        })
    }

    /// Pings the cluster until it answers once (readiness), in the background.
    pub fn start_ping(&self, stop: CancellationToken) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut backoff = retry::backoff(inner.max_backoff.min(Duration::from_secs(5)));
            while !inner.answered.load(Ordering::Relaxed) {
                let (i, res) = inner.client.ping().await;
                match res {
                    // 403: authenticated, only without the `monitor` privilege GET / needs (a
                    // key limited to writing documents): the cluster did answer.
                    Ok(a) if (200..300).contains(&a.status) || a.status == 403 => inner.answered(),
                    Ok(a) => {
                        let reason = format!(
                            "elasticsearch answered {} at {}",
                            a.status,
                            inner.client.url_at(i)
                        );
                        tracing::warn!(
                            status = a.status,
                            "elasticsearch ping failed; check the URL and credentials"
                        );
                        inner.ready.set_not_ready(reason);
                        inner.client.fail_over(i);
                    }
                    Err(e) => {
                        tracing::warn!(url = %e.url, error = %e.error, "cannot reach elasticsearch; retrying");
                        inner.ready.set_not_ready(format!(
                            "cannot reach elasticsearch at {}: {}",
                            e.url, e.error
                        ));
                        inner.client.fail_over(i);
                    }
                }
                if inner.answered.load(Ordering::Relaxed) {
                    break;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    r = backoff.wait(&inner.abandon) => if r.is_err() { break },
                }
            }
        });
    }

    /// Waits for a free in-flight slot.
    pub async fn reserve(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // The semaphore is never closed.
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Delivers `batch` in the background, holding `permit` (an in-flight slot) until done.
    pub fn dispatch(&self, batch: Batch, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.deliver(batch).await;
            drop(permit);
        });
    }

    /// Waits for every in-flight batch, at most until `deadline`.
    pub async fn drain(&self, deadline: Instant) -> bool {
        tokio::time::timeout_at(deadline, self.permits.acquire_many(self.max_in_flight))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Inner {
    fn answered(&self) {
        if !self.answered.swap(true, Ordering::Relaxed) {
            self.ready.set_ready();
            SinkReady {
                sink: "elasticsearch",
            }
            .emit();
        }
    }

    /// Sends the batch until every record is resolved or the batch is abandoned.
    async fn deliver(&self, batch: Batch) {
        let mut backoff = retry::backoff(self.max_backoff);
        // Groups of records still to send; a 413 splits a group in two.
        let mut work: Vec<Vec<usize>> = vec![(0..batch.items.len()).collect()];
        while let Some(mut group) = work.pop() {
            loop {
                if self.abandon.is_cancelled() {
                    return;
                }
                let body = request::body(&batch, &group);
                let started = Instant::now();
                let (url_idx, res) = self.client.bulk(body).await;
                let answer = match res {
                    Ok(a) => a,
                    Err(e) => {
                        BulkFailed {
                            url: &e.url,
                            status: None,
                            error: &e.error,
                            records: group.len(),
                        }
                        .emit(&self.metrics);
                        self.client.fail_over(url_idx);
                        if backoff.wait(&self.abandon).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                BulkAnswered {
                    status: answer.status,
                    records: group.len(),
                    elapsed: started.elapsed(),
                }
                .emit(&self.metrics);
                match answer.status {
                    200..=299 => {
                        self.answered();
                        match response::parse(&answer.body, group.len()) {
                            Ok(None) => {
                                RecordsSent {
                                    count: group.len() as u64,
                                    already_present: 0,
                                }
                                .emit(&self.metrics);
                                batch.resolve(group.iter().copied());
                                backoff.reset();
                                break;
                            }
                            Ok(Some(outcomes)) => {
                                let retry = self.resolve_items(&batch, &group, outcomes);
                                if retry.is_empty() {
                                    backoff.reset();
                                    break;
                                }
                                group = retry;
                            }
                            Err(error) => {
                                BulkFailed {
                                    url: self.client.url_at(url_idx).as_str(),
                                    status: Some(answer.status),
                                    error: &error,
                                    records: group.len(),
                                }
                                .emit(&self.metrics);
                            }
                        }
                    }
                    413 => {
                        if group.len() > 1 {
                            tracing::info!(
                                records = group.len(),
                                "bulk request too large (413); splitting it"
                            );
                            let second = group.split_off(group.len() / 2);
                            work.push(second);
                            work.push(group);
                        } else {
                            self.dead_letter(&batch, &group, 413, "request_entity_too_large", "the record alone is larger than the cluster's http.max_content_length");
                        }
                        break;
                    }
                    s if retry::request_retryable(s) => {
                        let error = summary(&answer.body);
                        BulkFailed {
                            url: self.client.url_at(url_idx).as_str(),
                            status: Some(s),
                            error: &error,
                            records: group.len(),
                        }
                        .emit(&self.metrics);
                        if matches!(s, 502..=504) {
                            self.client.fail_over(url_idx);
                        }
                    }
                    s => {
                        // A request refused as a whole: isolate the records it objects to.
                        let error = summary(&answer.body);
                        if group.len() > 1 {
                            tracing::warn!(status = s, error = %error, records = group.len(), "bulk request refused; splitting it to find the records at fault");
                            let second = group.split_off(group.len() / 2);
                            work.push(second);
                            work.push(group);
                        } else {
                            self.dead_letter(&batch, &group, s, "request_refused", &error);
                        }
                        break;
                    }
                }
                if backoff.wait(&self.abandon).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Resolves delivered, present and rejected records; returns those to send again.
    fn resolve_items(
        &self,
        batch: &Batch,
        group: &[usize],
        outcomes: Vec<ItemOutcome>,
    ) -> Vec<usize> {
        let mut done = Vec::with_capacity(group.len());
        let mut retry = Vec::new();
        let mut rejects = Vec::new();
        let (mut created, mut present) = (0u64, 0u64);
        let mut retry_types: Vec<(String, u64)> = Vec::new();
        for (&i, outcome) in group.iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Created => {
                    created += 1;
                    done.push(i);
                }
                ItemOutcome::AlreadyPresent => {
                    present += 1;
                    done.push(i);
                }
                ItemOutcome::Retry { error_type } => {
                    match retry_types.iter_mut().find(|(t, _)| *t == error_type) {
                        Some((_, n)) => *n += 1,
                        None => retry_types.push((error_type, 1)),
                    }
                    retry.push(i);
                }
                ItemOutcome::Reject {
                    status,
                    error_type,
                    reason,
                } => rejects.push((i, status, error_type, reason)),
            }
        }
        RecordsSent {
            count: created,
            already_present: present,
        }
        .emit(&self.metrics);
        batch.resolve(done);
        for (t, n) in retry_types {
            ItemsRetried {
                error_type: &t,
                count: n,
            }
            .emit(&self.metrics);
        }
        if !rejects.is_empty() {
            let letters: Vec<DeadLetter<'_>> = rejects
                .iter()
                .map(|(i, status, t, reason)| DeadLetter {
                    action: batch.action(*i),
                    doc: batch.doc(*i),
                    status: *status,
                    error_type: t,
                    reason,
                })
                .collect();
            self.write_dead_letters(&letters);
            batch.resolve(rejects.iter().map(|r| r.0));
        }
        retry
    }

    fn dead_letter(
        &self,
        batch: &Batch,
        group: &[usize],
        status: u16,
        error_type: &str,
        reason: &str,
    ) {
        let letters: Vec<DeadLetter<'_>> = group
            .iter()
            .map(|&i| DeadLetter {
                action: batch.action(i),
                doc: batch.doc(i),
                status,
                error_type,
                reason,
            })
            .collect();
        self.write_dead_letters(&letters);
        batch.resolve(group.iter().copied());
    }

    fn write_dead_letters(&self, letters: &[DeadLetter<'_>]) {
        for l in letters {
            ItemDeadLettered {
                id: encoder::id_of(l.action),
                status: l.status,
                error_type: l.error_type,
                reason: l.reason,
            }
            .emit(&self.metrics);
        }
        self.dlq.write(letters);
    }
}

/// A short, secret-free summary of an error body.
fn summary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    common::secret::redact(text.trim())
}
