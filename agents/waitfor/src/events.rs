//! waitfor's internal events: each one logs its line and bumps its metric, so the names stay
//! consistent. Metrics: `waitfor_attempts_total{scheme,result}`, `waitfor_targets`,
//! `waitfor_targets_ready`, `waitfor_wait_duration_seconds`.
use std::time::Duration;

use common::prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};
use tracing::{error, info, warn};

use crate::outcome::{FailKind, Failure};

type Labels = Vec<(&'static str, &'static str)>;

/// The metrics, registered once in `build`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    attempts: Family<Labels, Counter>,
    targets: Gauge,
    ready: Gauge,
    waited: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    /// Registers on the agent's registry.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "attempts",
            "Check attempts by scheme and result",
            m.attempts.clone(),
        );
        registry.register("targets", "Targets waited for", m.targets.clone());
        registry.register(
            "targets_ready",
            "Targets ready (or gone, with --invert)",
            m.ready.clone(),
        );
        registry.register_with_unit(
            "wait_duration",
            "How long the wait lasted, set when it ends",
            Unit::Seconds,
            m.waited.clone(),
        );
        m
    }

    /// Sets the number of targets.
    pub fn targets(&self, n: usize) {
        self.targets.set(n as i64);
    }

    /// One attempt finished.
    pub fn attempt(&self, scheme: &'static str, result: Result<(), FailKind>) {
        let r = match result {
            Ok(()) => "ready",
            Err(k) => k.as_str(),
        };
        self.attempts
            .get_or_create(&vec![("scheme", scheme), ("result", r)])
            .inc();
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A target became ready (or, inverted, unreachable).
pub fn target_ready(m: &Metrics, target: &str, after: Duration, attempts: u32, invert: bool) {
    m.ready.inc();
    let message = if invert {
        "target gone"
    } else {
        "target ready"
    };
    info!(url = target, after = %secs(after), attempts, "{message}");
}

/// A target is not ready, for a new reason (logged once per change of reason).
pub fn target_not_ready(target: &str, failure: &Failure, attempts: u32) {
    let kind = failure.kind.as_str();
    let error = failure.message.as_str();
    if failure.kind == FailKind::Auth {
        warn!(
            url = target,
            kind, error, attempts, "target authentication failed"
        );
    } else {
        info!(url = target, kind, error, attempts, "target not ready");
    }
}

/// The periodic line: how many are ready, and why the others are not.
pub fn still_waiting(elapsed: Duration, ready: usize, total: usize, waiting: &str) {
    info!(elapsed = %secs(elapsed), ready, total, waiting, "still waiting");
}

/// One line per target in the final summary.
pub fn summary_line(
    target: &str,
    ready: bool,
    after: Option<Duration>,
    attempts: u32,
    last_error: Option<&str>,
) {
    match (ready, after) {
        (true, Some(a)) => info!(url = target, ready, after = %secs(a), attempts, "summary"),
        _ => warn!(
            url = target,
            ready,
            attempts,
            last_error = last_error.unwrap_or("no attempt finished yet"),
            "summary"
        ),
    }
}

/// How the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything (or any one) ready.
    Ready,
    /// The overall timeout passed.
    TimedOut,
    /// SIGTERM/SIGINT while waiting.
    Interrupted,
    /// An authentication failure with --fail-on-auth.
    AuthFailed,
}

/// The last line of the wait.
pub fn finished(m: &Metrics, verdict: Verdict, elapsed: Duration, culprits: &str) {
    m.waited.set(elapsed.as_secs_f64());
    let elapsed = secs(elapsed);
    match verdict {
        Verdict::Ready => info!(elapsed, "ready"),
        Verdict::TimedOut => error!(
            elapsed,
            not_ready = culprits,
            "timed out waiting for {culprits}"
        ),
        Verdict::Interrupted => warn!(
            elapsed,
            not_ready = culprits,
            "interrupted while waiting for {culprits}"
        ),
        Verdict::AuthFailed => error!(
            elapsed,
            not_ready = culprits,
            "authentication failed for {culprits}"
        ),
    }
}
