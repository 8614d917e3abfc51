//! A route's upstreams: their resolved addresses (refreshed on the DNS TTL), open connection
//! counts, passive health with ejection and a growing cool-down (circuit breaking), optional
//! active TCP checks, and the order in which a new connection tries them.
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use common::prometheus_client::metrics::{counter::Counter, gauge::Gauge, histogram::Histogram};
use tokio::{sync::Notify, time::Instant};

use crate::{
    config::Balance,
    events,
    metrics::{ByteLabels, Metrics, UpLabels},
};

/// Passive health settings.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Failed connects in a row before ejection.
    pub eject_after: u32,
    /// First cool-down.
    pub cooldown: Duration,
    /// Longest cool-down.
    pub cooldown_max: Duration,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// Per-upstream metric handles, fetched once.
#[derive(Debug, Clone)]
pub struct UpMetrics {
    /// Open connections.
    pub active: Gauge,
    /// Established connections.
    pub total: Counter,
    /// Connect latency.
    pub connect_seconds: Histogram,
    /// Ejections.
    pub ejections: Counter,
    /// In rotation.
    pub healthy: Gauge,
    /// Bytes relayed each way, added to as they flow.
    pub bytes: crate::relay::Counters,
}

/// One configured upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Host as configured (name or IP); also the default TLS server name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `host:port`, the metric label.
    pub label: String,
    addrs: Mutex<Arc<Vec<SocketAddr>>>,
    next_addr: AtomicUsize,
    active: AtomicUsize,
    health: Mutex<Health>,
    /// Metric handles.
    pub metrics: UpMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Upstream {
    /// The current addresses, starting at a rotating offset.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let all = lock(&self.addrs).clone();
        if all.len() <= 1 {
            return all.to_vec();
        }
        let start = self.next_addr.fetch_add(1, Ordering::Relaxed) % all.len();
        all[start..].iter().chain(&all[..start]).copied().collect()
    }

    /// Replaces the addresses; true when they changed.
    pub fn set_addrs(&self, addrs: Vec<SocketAddr>) -> bool {
        let mut cur = lock(&self.addrs);
        if **cur == addrs {
            return false;
        }
        *cur = Arc::new(addrs);
        true
    }

    fn has_addrs(&self) -> bool {
        !lock(&self.addrs).is_empty()
    }

    /// Open connections.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a connection open until the guard drops.
    pub fn open(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.metrics.active.inc();
        self.metrics.total.inc();
        ActiveGuard(self.clone())
    }

    fn in_rotation(&self, now: Instant) -> bool {
        self.has_addrs() && lock(&self.health).ejected_until.is_none_or(|t| t <= now)
    }
}

/// Decrements an upstream's open connection count on drop.
#[derive(Debug)]
pub struct ActiveGuard(Arc<Upstream>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.active.dec();
    }
}

/// A route's upstreams.
#[derive(Debug)]
pub struct Pool {
    /// The route label (listen address).
    pub route: String,
    /// Upstreams in configuration order.
    pub upstreams: Vec<Arc<Upstream>>,
    balance: Balance,
    policy: HealthPolicy,
    rr: AtomicUsize,
    /// Notified when an upstream leaves or rejoins the rotation or its addresses change.
    changed: Arc<Notify>,
}

impl Pool {
    /// A pool with no addresses resolved yet.
    pub fn new(
        route: String,
        specs: &[(String, u16)],
        balance: Balance,
        policy: HealthPolicy,
        metrics: &Metrics,
    ) -> Self {
        let upstreams = specs
            .iter()
            .map(|(host, port)| {
                let label = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                let l = UpLabels {
                    route: route.clone(),
                    upstream: label.clone(),
                };
                let byte_labels = |direction| ByteLabels {
                    route: route.clone(),
                    upstream: label.clone(),
                    direction,
                };
                // One statement per lookup: a family's read guard lives to the end of its
                // statement, and a second lookup that creates a series would wait on it.
                let to_upstream = metrics
                    .bytes
                    .get_or_create(&byte_labels("to_upstream"))
                    .clone();
                let to_client = metrics
                    .bytes
                    .get_or_create(&byte_labels("to_client"))
                    .clone();
                let m = UpMetrics {
                    active: metrics.active.get_or_create(&l).clone(),
                    total: metrics.total.get_or_create(&l).clone(),
                    connect_seconds: metrics.connect_seconds.get_or_create(&l).clone(),
                    ejections: metrics.ejections.get_or_create(&l).clone(),
                    healthy: metrics.healthy.get_or_create(&l).clone(),
                    bytes: crate::relay::Counters {
                        to_upstream,
                        to_client,
                    },
                };
                Arc::new(Upstream {
                    host: host.clone(),
                    port: *port,
                    label,
                    addrs: Mutex::new(Arc::new(Vec::new())),
                    next_addr: AtomicUsize::new(0),
                    active: AtomicUsize::new(0),
                    health: Mutex::new(Health::default()),
                    metrics: m,
                })
            })
            .collect();
        Pool {
            route,
            upstreams,
            balance,
            policy,
            rr: AtomicUsize::new(0),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Notifies `changed` (shared by every pool, say) instead of a notifier of its own.
    pub fn with_changes(mut self, changed: Arc<Notify>) -> Self {
        self.changed = changed;
        self
    }

    /// Tells whoever waits on the notifier that the rotation may have changed.
    pub fn notify_changed(&self) {
        self.changed.notify_one();
    }

    /// When the first cool-down in progress ends (an upstream may rejoin the rotation then:
    /// no event marks it).
    pub fn next_readmission(&self) -> Option<Instant> {
        let now = Instant::now();
        self.upstreams
            .iter()
            .filter_map(|u| lock(&u.health).ejected_until.filter(|t| *t > now))
            .min()
    }

    /// The upstreams a new connection tries, in order: those in rotation by the balancing
    /// policy; when none is, every upstream with addresses (fail open rather than refuse).
    pub fn candidates(&self) -> Vec<Arc<Upstream>> {
        let n = self.upstreams.len();
        if n == 1 {
            // In rotation or not, a single upstream is tried when it has addresses.
            let up = &self.upstreams[0];
            return if up.has_addrs() {
                vec![up.clone()]
            } else {
                Vec::new()
            };
        }
        let now = Instant::now();
        let start = self.rr.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut order: Vec<Arc<Upstream>> = (0..n)
            .map(|i| self.upstreams[(start + i) % n].clone())
            .collect();
        if self.balance == Balance::LeastConnections {
            // Stable sort keeps the round-robin order among ties.
            order.sort_by_key(|u| u.active());
        }
        let healthy: Vec<_> = order
            .iter()
            .filter(|u| u.in_rotation(now))
            .cloned()
            .collect();
        if healthy.is_empty() {
            order.retain(|u| u.has_addrs());
            order
        } else {
            healthy
        }
    }

    /// True when at least one upstream is in rotation.
    pub fn any_healthy(&self) -> bool {
        let now = Instant::now();
        self.upstreams.iter().any(|u| u.in_rotation(now))
    }

    /// A connect to `up` succeeded: it is back in rotation.
    pub fn record_success(&self, up: &Upstream) {
        let mut h = lock(&up.health);
        if h.failures == 0 && h.ejections == 0 && h.ejected_until.is_none() {
            // Healthy already (the usual case): nothing to reset, the gauge is current.
            return;
        }
        let was_ejected = h.ejected_until.is_some();
        *h = Health::default();
        drop(h);
        if was_ejected {
            events::UpstreamReadmitted {
                route: &self.route,
                upstream: &up.label,
            }
            .emit();
        }
        up.metrics.healthy.set(i64::from(up.has_addrs()));
        self.changed.notify_one();
    }

    /// A connect to `up` failed; ejects it after too many in a row. An upstream back from a
    /// cool-down is ejected again on its first failure, for twice as long.
    pub fn record_failure(&self, up: &Upstream) {
        let mut h = lock(&up.health);
        h.failures = h.failures.saturating_add(1);
        let now = Instant::now();
        let on_probation = h.ejections > 0 && h.ejected_until.is_some_and(|t| t <= now);
        if h.failures >= self.policy.eject_after || on_probation {
            let factor = 2u32.saturating_pow(h.ejections.min(16));
            let cooldown = self
                .policy
                .cooldown
                .saturating_mul(factor)
                .min(self.policy.cooldown_max);
            h.ejections = h.ejections.saturating_add(1);
            h.ejected_until = Some(now + cooldown);
            h.failures = 0;
            drop(h);
            up.metrics.ejections.inc();
            up.metrics.healthy.set(0);
            self.changed.notify_one();
            events::UpstreamEjected {
                route: &self.route,
                upstream: &up.label,
                cooldown,
            }
            .emit();
        }
    }

    /// Refreshes the gauge of upstreams in rotation (after a cool-down ends or addresses change).
    pub fn refresh_gauges(&self) {
        let now = Instant::now();
        for u in &self.upstreams {
            u.metrics.healthy.set(i64::from(u.in_rotation(now)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::prometheus_client::registry::Registry;

    fn pool(balance: Balance) -> Pool {
        let m = Metrics::register(&mut Registry::default());
        let policy = HealthPolicy {
            eject_after: 2,
            cooldown: Duration::from_secs(5),
            cooldown_max: Duration::from_secs(60),
        };
        let p = Pool::new(
            "r".into(),
            &[("a".into(), 1), ("b".into(), 2)],
            balance,
            policy,
            &m,
        );
        for (i, u) in p.upstreams.iter().enumerate() {
            u.set_addrs(vec![SocketAddr::from(([127, 0, 0, 1], i as u16 + 1))]);
        }
        p
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_grows_and_readmits() {
        let p = pool(Balance::RoundRobin);
        let a = p.upstreams[0].clone();
        p.record_failure(&a);
        assert_eq!(p.candidates().len(), 2);
        p.record_failure(&a);
        assert!(p.candidates().iter().all(|u| u.label == "b:2"));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(p.candidates().len(), 2);
        // Back from cool-down, one failure ejects again for twice as long.
        p.record_failure(&a);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(p.candidates().len(), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(p.candidates().len(), 2);
        p.record_success(&a);
        p.record_failure(&a);
        assert_eq!(p.candidates().len(), 2, "a success resets the count");
    }

    #[tokio::test]
    async fn least_connections_prefers_idle() {
        let p = pool(Balance::LeastConnections);
        let _g = p.upstreams[0].open();
        for _ in 0..4 {
            assert_eq!(p.candidates()[0].label, "b:2");
        }
    }

    #[tokio::test]
    async fn round_robin_alternates() {
        let p = pool(Balance::RoundRobin);
        let first: Vec<_> = (0..4).map(|_| p.candidates()[0].label.clone()).collect();
        assert_eq!(first, ["a:1", "b:2", "a:1", "b:2"]);
    }
}
