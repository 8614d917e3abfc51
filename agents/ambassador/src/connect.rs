//! Connecting to an upstream: the candidates in balancing order, each of their addresses, a
//! connect timeout, TCP keepalive and `TCP_USER_TIMEOUT` (a silently dead upstream is noticed),
//! then optional TLS origination and a PROXY protocol header. A failure moves on to the next
//! address and upstream; nothing from the client has been sent yet, so retrying is safe.
//! This is the connect of the routes with TLS on either side; plain TCP routes on Linux connect
//! in [`crate::engine`], the same way (and set the upstream options after
//! [`UPSTREAM_OPTIONS_AFTER`]).
use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use common::tls::{server_name, ServerName, TlsConnector};
use socket2::{SockRef, TcpKeepalive};
#[cfg(not(target_os = "linux"))]
use tokio::net::TcpSocket;
use tokio::{
    io::{AsyncWriteExt, Interest},
    net::TcpStream,
    time::Instant,
};

use crate::{
    config::ProxyProtocol,
    events,
    metrics::Metrics,
    pool::{Pool, Upstream},
    proxy_protocol,
};

/// When a plain TCP relay sets the upstream socket's keepalive and `TCP_USER_TIMEOUT`: a
/// connection that ends sooner (one request per connection) spares those four `setsockopt`
/// calls, and one that lives on gets them long before they matter (the first keepalive probe
/// comes after `--keepalive` of silence, and the user timeout counts from the first unanswered
/// retransmission whenever it is set).
pub const UPSTREAM_OPTIONS_AFTER: Duration = Duration::from_secs(2);

/// True when a connect failed for want of a descriptor here (`EMFILE`, `ENFILE`): no
/// upstream is to blame, and trying the others would fail the same way.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Why a new connection got no upstream: a label of `ambassador_rejected_connections_total`.
pub fn rejection(e: Option<&io::Error>) -> &'static str {
    match e {
        Some(e) if out_of_descriptors(e) => "no_descriptors",
        _ => "no_upstream",
    }
}

/// The error of a connect attempt that got no answer within `timeout`.
pub fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer within {timeout:?}"),
    )
}

/// TLS origination settings.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The connector (CA, client certificate).
    pub connector: TlsConnector,
    /// A fixed server name, else each upstream's host.
    pub server_name: Option<ServerName<'static>>,
}

/// How to connect.
#[derive(Clone)]
pub struct Connector {
    /// Per-attempt time limit (connect + handshake).
    pub timeout: Duration,
    /// Keepalive idle time (zero: off).
    pub keepalive: Duration,
    /// TCP_USER_TIMEOUT (zero: kernel default).
    pub user_timeout: Duration,
    /// TLS origination.
    pub tls: Option<UpstreamTls>,
    /// PROXY protocol header.
    pub proxy_protocol: ProxyProtocol,
    /// Metrics.
    pub metrics: Metrics,
}

/// An upstream connection, plain or TLS.
pub enum UpStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A connection made: the stream, which upstream, and which address.
pub struct Connected {
    /// The stream.
    pub stream: UpStream,
    /// The upstream.
    pub upstream: Arc<Upstream>,
    /// The address connected to.
    pub addr: SocketAddr,
}

impl Connector {
    /// Tries the pool's candidates in order; when every attempt failed, why (a
    /// [`rejection`] reason). Out of descriptors, it stops at once and blames no upstream.
    pub async fn connect(
        &self,
        pool: &Pool,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Result<Connected, &'static str> {
        for up in pool.candidates() {
            let addrs = up.addrs();
            let mut ok = None;
            for addr in addrs {
                let started = Instant::now();
                let attempt =
                    tokio::time::timeout(self.timeout, self.attempt(&up, addr, client, local))
                        .await;
                let result = attempt.unwrap_or_else(|_| Err(timed_out(self.timeout)));
                match result {
                    Ok(stream) => {
                        up.metrics
                            .connect_seconds
                            .observe(started.elapsed().as_secs_f64());
                        ok = Some(Connected {
                            stream,
                            upstream: up.clone(),
                            addr,
                        });
                        break;
                    }
                    Err(error) if out_of_descriptors(&error) => {
                        return Err(rejection(Some(&error)));
                    }
                    Err(error) => events::ConnectFailed {
                        route: &pool.route,
                        upstream: &up.label,
                        addr: Some(addr),
                        error: &error,
                    }
                    .emit(&self.metrics),
                }
            }
            match ok {
                Some(c) => {
                    pool.record_success(&c.upstream);
                    return Ok(c);
                }
                None => pool.record_failure(&up),
            }
        }
        Err(rejection(None))
    }

    /// TCP keepalive and `TCP_USER_TIMEOUT` on an upstream socket, so a silently dead
    /// upstream is noticed.
    pub fn set_upstream_options(&self, socket: &impl std::os::fd::AsFd) -> io::Result<()> {
        let s = SockRef::from(socket);
        if !self.keepalive.is_zero() {
            let mut ka = TcpKeepalive::new()
                .with_time(self.keepalive)
                .with_interval(Duration::from_secs(10).min(self.keepalive));
            // With TCP_USER_TIMEOUT set, Linux ends a connection whose probes go unanswered
            // for that long and ignores the probe count: spare that setsockopt.
            if self.user_timeout.is_zero() || !cfg!(target_os = "linux") {
                ka = ka.with_retries(3);
            }
            s.set_tcp_keepalive(&ka)?;
        }
        if !self.user_timeout.is_zero() {
            s.set_tcp_user_timeout(Some(self.user_timeout))?;
        }
        Ok(())
    }

    /// A TCP connection with `TCP_NODELAY` (and, under TLS, the upstream options; a plain
    /// upstream gets them in `finish` in `proxy`).
    #[cfg(target_os = "linux")]
    async fn tcp_connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
        if self.tls.is_some() {
            self.set_upstream_options(&socket)?;
        }
        socket.set_tcp_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(socket.into())?;
        // tokio's own connect asks every new socket for its error (`getsockopt(SO_ERROR)`);
        // the readiness already tells a failed connect (error or hang-up) from one that
        // worked, so the error is only fetched for a failure: one syscall less per connection.
        let ready = stream.ready(Interest::WRITABLE | Interest::ERROR).await?;
        if ready.is_error() || ready.is_write_closed() || !ready.is_writable() {
            return Err(stream
                .take_error()?
                .unwrap_or_else(|| io::ErrorKind::NotConnected.into()));
        }
        Ok(stream)
    }

    #[cfg(not(target_os = "linux"))]
    async fn tcp_connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if self.tls.is_some() {
            self.set_upstream_options(&socket)?;
        }
        socket.set_nodelay(true)?;
        socket.connect(addr).await
    }

    async fn attempt(
        &self,
        up: &Upstream,
        addr: SocketAddr,
        client: SocketAddr,
        local: SocketAddr,
    ) -> io::Result<UpStream> {
        let mut stream = self.tcp_connect(addr).await?;
        let header = proxy_protocol::header(self.proxy_protocol, client, local);
        if !header.is_empty() {
            stream.write_all(&header).await?;
        }
        match &self.tls {
            None => Ok(UpStream::Plain(stream)),
            Some(tls) => {
                let name = match &tls.server_name {
                    Some(n) => n.clone(),
                    None => server_name(&up.host)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                };
                // Boxed: the handshake's state is large, and would size every connection's
                // task (plain ones included) otherwise.
                let s = Box::pin(tls.connector.connect(name, stream))
                    .await
                    .map_err(|e| {
                        // Handshake failures are reported as InvalidData so they count as "tls".
                        if e.kind() == io::ErrorKind::InvalidData {
                            e
                        } else {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("TLS handshake: {e}"),
                            )
                        }
                    })?;
                Ok(UpStream::Tls(Box::new(s)))
            }
        }
    }
}
