//! The one backoff helper every agent uses to retry: exponential, with full jitter, a cap, and
//! an optional deadline.
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Exponential backoff with jitter.
///
/// Delays grow from `initial` by `multiplier` up to `max`; each delay is drawn uniformly from
/// `[delay * (1 - jitter), delay]` so many clients retrying together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    deadline: Option<Instant>,
    current: Duration,
    attempts: u32,
}

/// Why [`Backoff::wait`] did not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The deadline has passed.
    Deadline,
    /// Shutdown started while waiting.
    Shutdown,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`, jitter 0.5, no deadline.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            multiplier: 2.0,
            jitter: 0.5,
            deadline: None,
            current: initial,
            attempts: 0,
        }
    }

    /// Sets the growth factor (at least 1).
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = m.max(1.0);
        self
    }

    /// Sets the jitter fraction (0 = none, 1 = full).
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = j.clamp(0.0, 1.0);
        self
    }

    /// Gives up once `after` has passed from now.
    pub fn deadline(mut self, after: Duration) -> Self {
        self.deadline = Some(Instant::now() + after);
        self
    }

    /// How many delays have been handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
        self.attempts = 0;
    }

    /// The next delay, ignoring the deadline.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = Duration::from_secs_f64(
            (self.current.as_secs_f64() * self.multiplier).min(self.max.as_secs_f64()),
        );
        self.attempts = self.attempts.saturating_add(1);
        if self.jitter == 0.0 || base.is_zero() {
            return base;
        }
        let low = base.as_secs_f64() * (1.0 - self.jitter);
        Duration::from_secs_f64(rand::rng().random_range(low..=base.as_secs_f64()))
    }

    /// Waits for the next delay; returns early when `shutdown` is cancelled.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> Result<(), Stop> {
        let d = self.next().ok_or(Stop::Deadline)?;
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = shutdown.cancelled() => Err(Stop::Shutdown),
        }
    }
}

/// Delays until the deadline (forever without one).
impl Iterator for Backoff {
    type Item = Duration;

    /// The next delay, or `None` once the deadline has passed. The last delay is shortened to
    /// end at the deadline.
    fn next(&mut self) -> Option<Duration> {
        let d = self.next_delay();
        match self.deadline {
            None => Some(d),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| d.min(left))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_inside_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
        let ds: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ds, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));

        let mut j = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for expected_max in [100u128, 200, 400, 800, 1000] {
            let d = j.next_delay().as_millis();
            assert!(
                d >= expected_max / 2 && d <= expected_max,
                "{d} vs {expected_max}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_stops_and_shutdown_interrupts() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4))
            .jitter(0.0)
            .deadline(Duration::from_secs(5));
        let token = CancellationToken::new();
        let start = Instant::now();
        while b.wait(&token).await.is_ok() {}
        // 1 + 2 + (4 shortened to 2) = 5 seconds.
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(b.wait(&token).await, Err(Stop::Deadline));

        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        token.cancel();
        assert_eq!(b.wait(&token).await, Err(Stop::Shutdown));
    }
}
