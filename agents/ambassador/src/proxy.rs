//! One route with TLS on either side (any route elsewhere than Linux) at run time, on a tokio
//! event loop: the accept loop, the connection limit (wait or refuse), TLS termination, the
//! upstream connect (at once: server-speaks-first protocols such as MySQL's greeting never wait
//! for a client byte), the relay, reset propagation, metrics and the access log line. Plain TCP
//! routes on Linux do the same in [`crate::engine`].
use std::{net::SocketAddr, sync::Arc, time::Duration};

use common::tls::ReloadingServerConfig;
use tokio::{
    io::Interest,
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::Instant,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, warn};

use crate::{
    config::{OnLimit, ProxyProtocol},
    connect::{Connected, Connector, UpStream},
    events,
    metrics::{Metrics, RouteLabels},
    pool::Pool,
    relay::{self, set_reset_on_close, End, ForceClose, Outcome, Socket},
};

/// One route's settings at run time (from its options in the routes file, else the flags).
#[derive(Clone)]
pub struct RouteConfig {
    /// Connecting to upstreams.
    pub connector: Connector,
    /// TLS termination on the listener (the configuration in use, re-read on rotation).
    pub acceptor: Option<Arc<ReloadingServerConfig>>,
    /// Relay buffer size.
    pub buffer_size: usize,
    /// Idle timeout (None: never).
    pub idle_timeout: Option<Duration>,
    /// Use splice for bulk transfers between plain sockets.
    pub splice: bool,
    /// Over the limit.
    pub on_limit: OnLimit,
    /// With `OnLimit::Wait`: the longest a connection waits for a slot (None: no limit).
    pub queue_timeout: Option<Duration>,
    /// Access log on.
    pub access_log: bool,
}

/// What every route shares: metrics, the shutdown tokens, the connection tracker.
pub struct Shared {
    /// Metrics.
    pub metrics: Metrics,
    /// Trips to stop accepting.
    pub stop_accepting: CancellationToken,
    /// Trips to close open connections (end of the drain).
    pub force_close: ForceClose,
    /// Tracks connection tasks.
    pub connections: TaskTracker,
}

/// A route with its listener bound.
pub struct Route {
    /// Upstreams.
    pub pool: Arc<Pool>,
    /// Connection limit.
    pub limit: Option<Arc<Semaphore>>,
    /// The listening socket (non-blocking; registered with the event loop that serves it).
    pub listener: std::net::TcpListener,
    /// Its settings.
    pub config: Arc<RouteConfig>,
    /// Set `TCP_NODELAY` on each accepted socket (false when the listener has it: accepted
    /// sockets inherit it on Linux, which spares a syscall per connection).
    pub set_nodelay: bool,
}

/// Accepts until `stop_accepting` trips; connections run on the calling event loop.
pub async fn serve(route: Route, shared: Arc<Shared>) {
    let listener = match TcpListener::from_std(route.listener) {
        Ok(l) => l,
        Err(error) => {
            warn!(route = %route.pool.route, %error, "cannot register the listener");
            return;
        }
    };
    let accepted = shared
        .metrics
        .accepted
        .get_or_create(&RouteLabels {
            route: route.pool.route.clone(),
        })
        .clone();
    // One child of the forced-close token per event loop: each connection polls it on every
    // wakeup, and a token of its own keeps that lock on this thread's cache.
    let force_close = shared.force_close.child();
    let stop = shared.stop_accepting.cancelled();
    tokio::pin!(stop);
    let set_nodelay = route.set_nodelay;
    crate::heartbeat::start();
    loop {
        let (client, peer) = tokio::select! {
            biased;
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(route = %route.pool.route, %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        accepted.inc();
        if set_nodelay {
            let _ = client.set_nodelay(true);
        }
        let permit = match &route.limit {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) if route.config.on_limit == OnLimit::Refuse => {
                    events::ConnectionRejected {
                        route: &route.pool.route,
                        client: peer,
                        reason: "limit",
                    }
                    .emit(&shared.metrics);
                    continue;
                }
                Err(_) => None,
            },
        };
        let (pool, rc, shared2, limit, close) = (
            route.pool.clone(),
            route.config.clone(),
            shared.clone(),
            route.limit.clone(),
            force_close.clone(),
        );
        shared.connections.spawn(async move {
            let _open = crate::heartbeat::Open::new();
            let _permit = match (permit, limit) {
                (Some(p), _) => p,
                (None, Some(sem)) => {
                    let waiting = events::WaitingForSlot {
                        route: &pool.route,
                        client: peer,
                    }
                    .begin(&shared2.metrics);
                    let queue_timeout = async {
                        match rc.queue_timeout {
                            Some(d) => tokio::time::sleep(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        p = sem.acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                        _ = close.cancelled() => return,
                        // Out of the waiting count before the rejection is counted and the
                        // client's socket closes.
                        _ = queue_timeout => {
                            drop(waiting);
                            events::ConnectionRejected {
                                route: &pool.route,
                                client: peer,
                                reason: "queue_timeout",
                            }
                            .emit(&shared2.metrics);
                            return;
                        }
                        // A reset: the client is gone (a FIN alone may be a half-close after
                        // its request, which is still served).
                        _ = client.ready(Interest::ERROR) => {
                            drop(waiting);
                            events::ClientLeft { route: &pool.route, client: peer }
                                .emit(&shared2.metrics);
                            return;
                        }
                    }
                }
                (None, None) => {
                    handle(client, peer, &pool, &rc, &shared2, &close).await;
                    return;
                }
            };
            handle(client, peer, &pool, &rc, &shared2, &close).await;
        });
    }
    debug!(route = %route.pool.route, "stopped accepting");
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    pool: &Pool,
    rc: &RouteConfig,
    shared: &Shared,
    force_close: &ForceClose,
) {
    // Only the access log uses it.
    let started = rc.access_log.then(Instant::now);
    // The local address only goes into a PROXY header: spare the syscall otherwise.
    let local = match rc.connector.proxy_protocol {
        ProxyProtocol::Off => peer,
        _ => client.local_addr().unwrap_or(peer),
    };
    match &rc.acceptor {
        None => {
            let Some(up) = connect(&client, pool, rc, shared, peer, local).await else {
                return;
            };
            finish(client, up, peer, pool, rc, force_close, started).await;
        }
        // Boxed: the TLS states are large, and a connection's task is as big as its largest
        // state, plain connections included (spawn copies it, an idle connection holds it).
        Some(acceptor) => Box::pin(async move {
            let timeout = rc.connector.timeout;
            let handshake = TlsAcceptor::from(acceptor.current())
                .accept(client)
                .into_fallible();
            let tls = match tokio::time::timeout(timeout, handshake).await {
                Ok(Ok(s)) => s,
                failed => {
                    if let Ok(Err((error, _))) = &failed {
                        debug!(route = %pool.route, client = %peer, %error, "TLS handshake failed");
                    }
                    events::ConnectionRejected {
                        route: &pool.route,
                        client: peer,
                        reason: "tls_handshake",
                    }
                    .emit(&shared.metrics);
                    // A failed handshake hands the socket back: it is closed only now, so a
                    // client that sees the close also sees the rejection counted.
                    drop(failed);
                    return;
                }
            };
            let Some(up) = connect(tls.get_ref().0, pool, rc, shared, peer, local).await else {
                return;
            };
            finish(tls, up, peer, pool, rc, force_close, started).await;
        })
        .await,
    }
}

/// The upstream connect (with its TLS handshake, retries and timeouts); a client that resets
/// meanwhile is gone: the attempt is dropped and the departure counted as `client_left` (a FIN
/// alone may be a half-close after a request, which is still served).
async fn connect(
    client: &TcpStream,
    pool: &Pool,
    rc: &RouteConfig,
    shared: &Shared,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<Connected> {
    let attempt = tokio::select! {
        a = rc.connector.connect(pool, peer, local) => a,
        _ = client.ready(Interest::ERROR) => {
            events::ClientLeft { route: &pool.route, client: peer }.emit(&shared.metrics);
            return None;
        }
    };
    match attempt {
        Ok(c) => Some(c),
        Err(reason) => {
            events::ConnectionRejected {
                route: &pool.route,
                client: peer,
                reason,
            }
            .emit(&shared.metrics);
            None
        }
    }
}

trait ClientStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Socket + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Socket + Unpin + Send> ClientStream for T {}

async fn finish<C: ClientStream>(
    mut client: C,
    up: Connected,
    peer: SocketAddr,
    pool: &Pool,
    rc: &RouteConfig,
    cancel: &ForceClose,
    started: Option<Instant>,
) {
    let _active = up.upstream.open();
    let counters = &up.upstream.metrics.bytes;
    let outcome: Outcome = match up.stream {
        UpStream::Plain(mut u) => {
            if let Err(error) = rc.connector.set_upstream_options(&u) {
                debug!(route = %pool.route, %error, "cannot set keepalive on the upstream socket");
            }
            let out = Box::pin(relay::relay(
                &mut client,
                &mut u,
                rc.buffer_size,
                rc.idle_timeout,
                cancel,
                counters,
            ))
            .await;
            reset_side(&out.end, client.tcp(), &u);
            out
        }
        UpStream::Tls(mut u) => {
            let out = Box::pin(relay::relay(
                &mut client,
                &mut *u,
                rc.buffer_size,
                rc.idle_timeout,
                cancel,
                counters,
            ))
            .await;
            reset_side(&out.end, client.tcp(), u.tcp());
            out
        }
    };
    if rc.access_log {
        events::ConnectionClosed {
            route: &pool.route,
            client: peer,
            upstream: &up.upstream.label,
            upstream_addr: up.addr,
            duration: started.map(|t| t.elapsed()).unwrap_or_default(),
            bytes_to_upstream: outcome.to_upstream,
            bytes_to_client: outcome.to_client,
            reason: outcome.end.reason(),
            engine: "buffered",
        }
        .emit();
    }
}

/// When one side failed, the other is closed with a reset rather than a clean EOF, so the
/// peer knows the stream was cut.
fn reset_side(end: &End, client: &TcpStream, upstream: &TcpStream) {
    match end {
        End::Client(_) => set_reset_on_close(upstream),
        End::Upstream(_) => set_reset_on_close(client),
        _ => {}
    }
}
