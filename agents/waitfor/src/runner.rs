//! The wait: every target checked in parallel, each on its own retry schedule, until all (or
//! any) are ready, the overall timeout passes, or a signal arrives.
//!
//! Schedule: the first attempt starts at once; then exponential backoff with jitter
//! (`common::retry::Backoff`) from `--interval` up to `--max-interval` (50 ms by default, so a
//! dependency that becomes ready is seen within ~50 ms); a target still not ready after
//! `--slow-after` (1 min) backs off further, up to `--slow-interval` (1 s), sparing DNS and the
//! servers when a dependency is down for long.
//!
//! Output: one line per target per change of state (ready, or a different failure), a
//! periodic "still waiting" line, and a final summary line per target (ready or not, after how
//! long, the last error).
use std::{sync::Arc, time::Duration};

use common::{readiness::Condition, retry::Backoff, Shutdown};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    check::Probe,
    config::Settings,
    events::{self, Metrics, Verdict},
    outcome::{CheckResult, FailKind, Failure},
    target::Check,
};

/// Slowest retry after an authentication failure (a Secret update takes a while anyway).
const AUTH_RETRY: Duration = Duration::from_secs(1);

/// One finished attempt, reported to the controller.
struct Report {
    index: usize,
    /// Ok when the target is where we want it (reachable, or gone with --invert).
    result: CheckResult,
}

/// What the controller knows of a target.
#[derive(Debug, Default)]
struct State {
    attempts: u32,
    ready_after: Option<Duration>,
    last: Option<Failure>,
}

/// The schedule every target loop follows.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    attempt_timeout: Duration,
    interval: Duration,
    max_interval: Duration,
    /// When the slow phase starts (None: never).
    slow_from: Option<Instant>,
    slow_interval: Duration,
    invert: bool,
}

fn scheme(c: &Check) -> &'static str {
    match c {
        Check::Tcp(_) => "tcp",
        Check::Dns(_) => "dns",
        Check::File { .. } => "file",
        Check::Http(_) => "http",
        Check::Postgres(_) => "postgres",
        Check::Redis(_) => "redis",
        Check::Mysql { .. } => "mysql",
        Check::Amqp { .. } => "amqp",
        Check::Nats(_) => "nats",
        Check::Mqtt(_) => "mqtt",
    }
}

/// The pauses of one target: fast backoff, then slow backoff after `slow_from`.
#[derive(Debug)]
struct Pacer {
    backoff: Backoff,
    slow_from: Option<Instant>,
    max_interval: Duration,
    slow_interval: Duration,
}

impl Pacer {
    fn new(s: &Schedule) -> Self {
        Pacer {
            backoff: Backoff::new(s.interval, s.max_interval),
            slow_from: s.slow_from,
            max_interval: s.max_interval,
            slow_interval: s.slow_interval,
        }
    }

    /// The pause after an attempt that ended at `now`.
    fn next_delay(&mut self, now: Instant) -> Duration {
        if self.slow_from.is_some_and(|t| now >= t) {
            self.slow_from = None;
            self.backoff = Backoff::new(self.max_interval, self.slow_interval);
        }
        self.backoff.next_delay()
    }
}

/// Checks one target until it is where we want it or `stop` trips.
async fn probe_loop(
    index: usize,
    probe: Arc<Probe>,
    s: Schedule,
    metrics: Metrics,
    tx: mpsc::UnboundedSender<Report>,
    stop: CancellationToken,
) {
    let mut pacer = Pacer::new(&s);
    let scheme = scheme(&probe.target.check);
    loop {
        let attempt = tokio::time::timeout(s.attempt_timeout, probe.check());
        let outcome = tokio::select! {
            r = attempt => r.unwrap_or_else(|_| Err(Failure::new(
                FailKind::Timeout,
                format!("no answer within {}", humantime_ms(s.attempt_timeout)),
            ))),
            _ = stop.cancelled() => return,
        };
        metrics.attempt(scheme, outcome.as_ref().map(drop).map_err(|f| f.kind));
        let result = match (s.invert, outcome) {
            (false, r) => r,
            (true, Err(f)) if f.kind != FailKind::Auth => Ok(()),
            (true, Err(f)) => Err(Failure::new(f.kind, format!("still reachable ({f})"))),
            (true, Ok(())) => Err(Failure::not_ready("still reachable")),
        };
        let done = result.is_ok();
        let auth = matches!(&result, Err(f) if f.kind == FailKind::Auth);
        if tx.send(Report { index, result }).is_err() || done {
            return;
        }
        let mut delay = pacer.next_delay(Instant::now());
        if auth {
            // A wrong password is not fixed in milliseconds; spare the server's logs.
            delay = delay.max(AUTH_RETRY);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return,
        }
    }
}

fn humantime_ms(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Waits; returns the verdict after logging the final summary.
pub async fn wait(
    settings: &Settings,
    metrics: &Metrics,
    shutdown: &Shutdown,
    condition: &Condition,
) -> Verdict {
    let start = Instant::now();
    let deadline = settings.timeout.map(|t| start + t);
    let stop = shutdown.child_token();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let schedule = Schedule {
        attempt_timeout: settings.attempt_timeout,
        interval: settings.interval,
        max_interval: settings.max_interval,
        slow_from: settings.slow_after.map(|a| start + a),
        slow_interval: settings.slow_interval,
        invert: settings.invert,
    };
    let names: Vec<&str> = settings
        .probes
        .iter()
        .map(|p| p.target.name.as_str())
        .collect();
    for (index, probe) in settings.probes.iter().enumerate() {
        tokio::spawn(probe_loop(
            index,
            probe.clone(),
            schedule,
            metrics.clone(),
            tx.clone(),
            stop.clone(),
        ));
    }
    drop(tx);
    let mut states: Vec<State> = names.iter().map(|_| State::default()).collect();
    let mut summary =
        tokio::time::interval_at(start + settings.summary_interval, settings.summary_interval);
    let far = start + Duration::from_secs(100 * 365 * 24 * 3600);
    let verdict = loop {
        tokio::select! {
            biased;
            _ = shutdown.triggered() => break Verdict::Interrupted,
            report = rx.recv() => {
                // The loops end only once ready or stopped: no sender left means a shutdown.
                let Some(Report { index, result }) = report else { break Verdict::Interrupted };
                let st = &mut states[index];
                st.attempts += 1;
                match result {
                    Ok(()) => {
                        let after = start.elapsed();
                        st.ready_after = Some(after);
                        events::target_ready(metrics, names[index], after, st.attempts, settings.invert);
                    }
                    Err(f) => {
                        if st.last.as_ref() != Some(&f) {
                            events::target_not_ready(names[index], &f, st.attempts);
                        }
                        let fatal = f.kind == FailKind::Auth && settings.fail_on_auth;
                        st.last = Some(f);
                        if fatal {
                            break Verdict::AuthFailed;
                        }
                    }
                }
                let ready = states.iter().filter(|s| s.ready_after.is_some()).count();
                if (settings.any && ready > 0) || ready == states.len() {
                    break Verdict::Ready;
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => break Verdict::TimedOut,
            _ = summary.tick() => {
                let ready = states.iter().filter(|s| s.ready_after.is_some()).count();
                events::still_waiting(start.elapsed(), ready, states.len(), &waiting_list(&names, &states));
            }
        }
    };
    stop.cancel();
    if verdict == Verdict::Ready {
        condition.set_ready();
    }
    for (name, st) in names.iter().zip(&states) {
        events::summary_line(
            name,
            st.ready_after.is_some(),
            st.ready_after,
            st.attempts,
            st.last.as_ref().map(|f| f.message.as_str()),
        );
    }
    let culprits: Vec<&str> = names
        .iter()
        .zip(&states)
        .filter(|(_, s)| s.ready_after.is_none())
        .map(|(n, _)| *n)
        .collect();
    events::finished(metrics, verdict, start.elapsed(), &culprits.join(", "));
    verdict
}

/// `name (last error); ...` for the targets not ready yet.
fn waiting_list(names: &[&str], states: &[State]) -> String {
    names
        .iter()
        .zip(states)
        .filter(|(_, s)| s.ready_after.is_none())
        .map(|(n, s)| match &s.last {
            Some(f) => format!("{n} ({f})"),
            None => format!("{n} (first attempt still running)"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_short_then_grow_after_slow_after() {
        let start = Instant::now();
        let s = Schedule {
            attempt_timeout: Duration::from_secs(5),
            interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(50),
            slow_from: Some(start + Duration::from_secs(60)),
            slow_interval: Duration::from_secs(1),
            invert: false,
        };
        let mut p = Pacer::new(&s);
        let fast: Vec<Duration> = (0..200).map(|_| p.next_delay(start)).collect();
        assert!(fast[0] <= Duration::from_millis(10), "{fast:?}");
        assert!(
            fast.iter().all(|d| *d <= Duration::from_millis(50)),
            "{fast:?}"
        );
        let later = start + Duration::from_secs(61);
        let slow: Vec<Duration> = (0..20).map(|_| p.next_delay(later)).collect();
        assert!(
            slow.iter().all(|d| *d <= Duration::from_secs(1)),
            "{slow:?}"
        );
        assert!(
            slow.iter().any(|d| *d > Duration::from_millis(500)),
            "{slow:?}"
        );

        let never = Schedule {
            slow_from: None,
            ..s
        };
        let mut p = Pacer::new(&never);
        let far = start + Duration::from_secs(3600);
        assert!((0..50).all(|_| p.next_delay(far) <= Duration::from_millis(50)));
    }
}
