//! Internal events: one type per observable happening, whose `emit()` logs the line (and, where
//! the metric handle is at hand, bumps the metric) so names stay consistent.
use std::{io, net::SocketAddr, time::Duration};

use common::prometheus_client::metrics::gauge::Gauge;
use tracing::{debug, info, warn};

use crate::metrics::{ErrorLabels, Metrics, RejectLabels, RouteLabels};

/// Why a connect attempt failed, as a bounded metric label.
pub fn connect_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::AddrNotAvailable => "unreachable",
        io::ErrorKind::NotFound => "resolve",
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => "tls",
        _ => "other",
    }
}

/// A listener is bound.
pub struct ListenerBound<'a> {
    /// Route label.
    pub route: &'a str,
    /// The bound address (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// Upstreams, joined.
    pub upstreams: &'a str,
    /// TLS termination on.
    pub tls: bool,
}

impl ListenerBound<'_> {
    /// Logs it.
    pub fn emit(self) {
        info!(route = self.route, addr = %self.addr, upstreams = self.upstreams, tls = self.tls, "listening");
    }
}

/// One connect attempt failed.
pub struct ConnectFailed<'a> {
    /// Route label.
    pub route: &'a str,
    /// Upstream label.
    pub upstream: &'a str,
    /// Address tried (none when the name had no address).
    pub addr: Option<SocketAddr>,
    /// The error.
    pub error: &'a io::Error,
}

impl ConnectFailed<'_> {
    /// Logs and counts it.
    pub fn emit(self, metrics: &Metrics) {
        let reason = connect_reason(self.error);
        metrics
            .connect_errors
            .get_or_create(&ErrorLabels {
                route: self.route.to_string(),
                upstream: self.upstream.to_string(),
                reason,
            })
            .inc();
        let addr = self.addr.map(|a| a.to_string()).unwrap_or_default();
        warn!(route = self.route, upstream = self.upstream, addr, reason, error = %self.error, "cannot connect to upstream");
    }
}

/// An upstream was taken out of rotation.
pub struct UpstreamEjected<'a> {
    /// Route label.
    pub route: &'a str,
    /// Upstream label.
    pub upstream: &'a str,
    /// How long.
    pub cooldown: Duration,
}

impl UpstreamEjected<'_> {
    /// Logs it (the pool counts it).
    pub fn emit(self) {
        warn!(
            route = self.route,
            upstream = self.upstream,
            cooldown = %humantime_secs(self.cooldown),
            "upstream ejected after failed connects"
        );
    }
}

/// An ejected upstream accepted a connection again.
pub struct UpstreamReadmitted<'a> {
    /// Route label.
    pub route: &'a str,
    /// Upstream label.
    pub upstream: &'a str,
}

impl UpstreamReadmitted<'_> {
    /// Logs it.
    pub fn emit(self) {
        info!(
            route = self.route,
            upstream = self.upstream,
            "upstream back in rotation"
        );
    }
}

/// An upstream name resolved to new addresses.
pub struct AddressesChanged<'a> {
    /// Upstream label.
    pub upstream: &'a str,
    /// The new addresses.
    pub addrs: &'a [SocketAddr],
}

impl AddressesChanged<'_> {
    /// Logs it.
    pub fn emit(self) {
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        info!(
            upstream = self.upstream,
            addrs = addrs.join(","),
            "upstream addresses changed"
        );
    }
}

/// A name could not be resolved (the previous addresses stay in use).
pub struct ResolveFailed<'a> {
    /// Upstream label.
    pub upstream: &'a str,
    /// The error.
    pub error: &'a io::Error,
}

impl ResolveFailed<'_> {
    /// Logs it.
    pub fn emit(self) {
        warn!(upstream = self.upstream, error = %self.error, "cannot resolve upstream; keeping the previous addresses");
    }
}

/// A client connection was closed without reaching an upstream.
pub struct ConnectionRejected<'a> {
    /// Route label.
    pub route: &'a str,
    /// The client.
    pub client: SocketAddr,
    /// limit, queue_timeout, no_upstream, no_descriptors, tls_handshake.
    pub reason: &'static str,
}

impl ConnectionRejected<'_> {
    /// Logs and counts it.
    pub fn emit(self, metrics: &Metrics) {
        metrics
            .rejected
            .get_or_create(&RejectLabels {
                route: self.route.to_string(),
                reason: self.reason,
            })
            .inc();
        warn!(route = self.route, client = %self.client, reason = self.reason, "connection rejected");
    }
}

/// A client went away (reset) while its connection waited for a slot or for the upstream
/// connect: no upstream's fault, and nothing to relay.
pub struct ClientLeft<'a> {
    /// Route label.
    pub route: &'a str,
    /// The client.
    pub client: SocketAddr,
}

impl ClientLeft<'_> {
    /// Logs and counts it (as `rejected_connections_total{reason="client_left"}`).
    pub fn emit(self, metrics: &Metrics) {
        metrics
            .rejected
            .get_or_create(&RejectLabels {
                route: self.route.to_string(),
                reason: "client_left",
            })
            .inc();
        info!(route = self.route, client = %self.client, "client left before its connection reached an upstream");
    }
}

/// A connection over `--max-connections` waits for a slot (`--on-limit wait`): counted in
/// `waiting_connections` until the returned guard drops.
pub struct WaitingForSlot<'a> {
    /// Route label.
    pub route: &'a str,
    /// The client.
    pub client: SocketAddr,
}

impl WaitingForSlot<'_> {
    /// Logs it and counts it while the guard lives.
    pub fn begin(self, metrics: &Metrics) -> Waiting {
        let gauge = metrics
            .waiting
            .get_or_create(&RouteLabels {
                route: self.route.to_string(),
            })
            .clone();
        gauge.inc();
        debug!(route = self.route, client = %self.client, "connection limit reached; waiting for a free slot");
        Waiting(gauge)
    }
}

/// Counts one waiting connection; see [`WaitingForSlot`].
#[derive(Debug)]
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The access log line of a finished connection.
pub struct ConnectionClosed<'a> {
    /// Route label.
    pub route: &'a str,
    /// The client.
    pub client: SocketAddr,
    /// Upstream label.
    pub upstream: &'a str,
    /// The address connected to.
    pub upstream_addr: SocketAddr,
    /// How long the connection lasted.
    pub duration: Duration,
    /// Client to upstream bytes.
    pub bytes_to_upstream: u64,
    /// Upstream to client bytes.
    pub bytes_to_client: u64,
    /// Why it closed.
    pub reason: &'static str,
    /// splice or buffered.
    pub engine: &'static str,
}

impl ConnectionClosed<'_> {
    /// Logs it.
    pub fn emit(self) {
        info!(
            route = self.route,
            client = %self.client,
            upstream = self.upstream,
            upstream_addr = %self.upstream_addr,
            duration_seconds = self.duration.as_secs_f64(),
            bytes_to_upstream = self.bytes_to_upstream,
            bytes_to_client = self.bytes_to_client,
            reason = self.reason,
            engine = self.engine,
            "connection closed"
        );
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
