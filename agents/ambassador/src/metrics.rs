//! The ambassador's metrics. Labels are bounded by the configuration: `route` is a listen
//! address, `upstream` a configured `host:port`, `reason` and `direction` small fixed sets.
use common::prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// Labels of per-upstream series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpLabels {
    /// The route's listen address.
    pub route: String,
    /// The configured upstream `host:port`.
    pub upstream: String,
}

/// Labels of byte counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByteLabels {
    /// The route's listen address.
    pub route: String,
    /// The configured upstream `host:port`.
    pub upstream: String,
    /// `to_upstream` or `to_client`.
    pub direction: &'static str,
}

/// Labels of connect errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The route's listen address.
    pub route: String,
    /// The configured upstream `host:port`.
    pub upstream: String,
    /// refused, timeout, unreachable, resolve, tls, other.
    pub reason: &'static str,
}

/// Labels of per-route series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's listen address.
    pub route: String,
}

/// Labels of rejected client connections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The route's listen address.
    pub route: String,
    /// limit, queue_timeout, client_left, no_upstream, no_descriptors, tls_handshake.
    pub reason: &'static str,
}

/// Labels of TLS reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// listener (--tls-cert), upstream_client (--upstream-tls-cert), upstream_ca
    /// (--upstream-tls-ca).
    pub certificate: &'static str,
    /// success or failure.
    pub result: &'static str,
}

fn connect_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

/// Every metric family the agent updates.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Connections open to each upstream.
    pub active: Family<UpLabels, Gauge>,
    /// Connections established to each upstream.
    pub total: Family<UpLabels, Counter>,
    /// Client connections accepted per route.
    pub accepted: Family<RouteLabels, Counter>,
    /// Client connections closed without reaching an upstream.
    pub rejected: Family<RejectLabels, Counter>,
    /// Client connections waiting for a slot (`--max-connections` with `--on-limit wait`).
    pub waiting: Family<RouteLabels, Gauge>,
    /// Bytes relayed.
    pub bytes: Family<ByteLabels, Counter>,
    /// Failed connects by reason.
    pub connect_errors: Family<ErrorLabels, Counter>,
    /// Time to connect (and handshake).
    pub connect_seconds: Family<UpLabels, Histogram, fn() -> Histogram>,
    /// Ejections by passive health.
    pub ejections: Family<UpLabels, Counter>,
    /// 1 while an upstream is not ejected and has addresses.
    pub healthy: Family<UpLabels, Gauge>,
    /// Certificate reloads (the listener's, the upstream client's).
    pub tls_reloads: Family<ResultLabels, Counter>,
}

impl Metrics {
    /// Registers every family on the agent's registry.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            active: Family::default(),
            total: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            waiting: Family::default(),
            bytes: Family::default(),
            connect_errors: Family::default(),
            connect_seconds: Family::new_with_constructor(connect_histogram),
            ejections: Family::default(),
            healthy: Family::default(),
            tls_reloads: Family::default(),
        };
        registry.register(
            "connections_active",
            "Connections open to each upstream",
            m.active.clone(),
        );
        registry.register(
            "connections",
            "Connections established to each upstream",
            m.total.clone(),
        );
        registry.register(
            "accepted_connections",
            "Client connections accepted per route",
            m.accepted.clone(),
        );
        registry.register(
            "rejected_connections",
            "Client connections closed without reaching an upstream (limit, queue_timeout, client_left, no_upstream, no_descriptors, tls_handshake)",
            m.rejected.clone(),
        );
        registry.register(
            "waiting_connections",
            "Client connections waiting for a slot under --max-connections (--on-limit wait)",
            m.waiting.clone(),
        );
        registry.register_with_unit(
            "transferred",
            "Bytes relayed, by direction (counted as they flow)",
            Unit::Bytes,
            m.bytes.clone(),
        );
        registry.register(
            "connect_errors",
            "Failed upstream connects by reason",
            m.connect_errors.clone(),
        );
        registry.register_with_unit(
            "connect_duration",
            "Time to connect to an upstream (and finish the TLS handshake)",
            Unit::Seconds,
            m.connect_seconds.clone(),
        );
        registry.register(
            "ejections",
            "Upstreams ejected by passive health checks",
            m.ejections.clone(),
        );
        registry.register(
            "upstream_healthy",
            "1 while an upstream is in rotation",
            m.healthy.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate reloads from changed files, by certificate (listener, upstream_client, upstream_ca) and result",
            m.tls_reloads.clone(),
        );
        m
    }
}
