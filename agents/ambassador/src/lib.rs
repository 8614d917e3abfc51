//! TCP proxy sidecar: the app talks to localhost, the ambassador reaches the real upstream.
//!
//! # Layout
//! - [`config`]: options and their validation into routes, each with its own settings
//!   (`key=value` after a route in the routes file, else the flags).
//! - [`resolve`]: upstream names (IP literals, an optional hosts file, DNS).
//! - [`pool`]: a route's upstreams: addresses, balancing, passive health and ejection.
//! - [`connect`]: connecting to an upstream (timeouts, keepalive, TLS origination, PROXY header).
//! - `engine` (Linux): plain TCP routes, on epoll loops of their own: accept, limit, connect,
//!   PROXY header, relay (read/write through one buffer for small messages, splice(2) through
//!   the pipes of `splice` for bulk), timeouts, drain.
//! - Routes with TLS on either side (and every route elsewhere than Linux) run on tokio:
//!   [`listen`], the listening sockets, one per event loop; [`proxy`], the accept loop and one
//!   connection's life; [`heartbeat`] keeps arming a connect timeout from interrupting an event
//!   loop's wait; [`relay`], the buffered relay.
//! - [`tasks`]: background work: re-resolution, active health checks, readiness.
//! - [`metrics`], [`events`]: what is counted and logged.
//!
//! # Shutdown
//! On SIGTERM the agent keeps accepting for `--drain-delay`, then closes its listeners, lets
//! open connections finish until shortly before `--shutdown-timeout`, closes what is left and
//! exits 0.

use std::{process::ExitCode, sync::Arc, time::Duration};

use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

pub mod config;
pub mod connect;
#[cfg(target_os = "linux")]
pub mod engine;
pub mod events;
pub mod fdlimit;
pub mod heartbeat;
pub mod listen;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod proxy_protocol;
pub mod relay;
pub mod resolve;
#[cfg(target_os = "linux")]
pub mod splice;
pub mod tasks;

pub use config::Config;
use config::{RouteOptions, RouteSpec};
use connect::{Connector, UpstreamTls};
use metrics::{Metrics, ResultLabels};
use pool::{HealthPolicy, Pool};
use proxy::{Route, RouteConfig, Shared};

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option.
    #[error("{0}")]
    Config(String),
    /// TLS material that cannot be used.
    #[error("{option}: {source}")]
    Tls {
        /// The option that named the file.
        option: &'static str,
        /// The cause.
        source: common::tls::TlsError,
    },
    /// The relay event loop could not start.
    #[error("cannot start the relay event loop: {0} (is the process out of file descriptors?)")]
    Engine(std::io::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The agent.
pub struct Ambassador {
    config: Config,
    specs: Vec<RouteSpec>,
    pools: Vec<Arc<Pool>>,
    routes: Vec<Arc<RouteConfig>>,
    shared: Arc<Shared>,
    conditions: Vec<common::readiness::Condition>,
    /// Notified by every pool when its rotation may have changed (readiness looks again).
    changed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Ambassador {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ambassador")
            .field("specs", &self.specs)
            .finish_non_exhaustive()
    }
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

type TlsPair = (
    Option<UpstreamTls>,
    Option<Arc<common::tls::ReloadingServerConfig>>,
);

/// Logs and counts (`tls_reloads_total{certificate, result}`) each reload attempt of a
/// certificate file: "listener", "listener_client_ca", "upstream_client" or "upstream_ca".
fn reload_hook(
    metrics: &Metrics,
    certificate: &'static str,
) -> impl Fn(Result<(), &common::tls::TlsError>) + Send + Sync + 'static {
    let reloads = metrics.tls_reloads.clone();
    move |r| {
        let result = if r.is_ok() { "success" } else { "failure" };
        reloads
            .get_or_create(&ResultLabels {
                certificate,
                result,
            })
            .inc();
        match r {
            Ok(()) => info!(certificate, "certificate reloaded"),
            Err(error) => tracing::warn!(
                certificate,
                %error,
                "cannot reload the certificate; keeping the previous one"
            ),
        }
    }
}

fn build_tls(
    config: &RouteOptions,
    reload_interval: Duration,
    metrics: &Metrics,
) -> Result<TlsPair, Error> {
    let upstream = if config.upstream_tls {
        // The client certificate and the CA bundle are re-read when their files change, as the
        // listener's certificate is: a rotated Secret reaches new upstream connections without
        // a restart.
        let client_cert_resolver = match (&config.upstream_tls_cert, &config.upstream_tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(
                common::tls::ReloadingCertResolver::new(cert, key, reload_interval)
                    .map_err(|source| Error::Tls {
                        option: "--upstream-tls-cert/--upstream-tls-key",
                        source,
                    })?
                    .on_reload(reload_hook(metrics, "upstream_client")),
            )),
            _ => None,
        };
        let ca_verifier = match &config.upstream_tls_ca {
            Some(ca) if !config.upstream_tls_insecure_skip_verify => Some(Arc::new(
                common::tls::ReloadingRoots::new(ca, reload_interval)
                    .map_err(|source| Error::Tls {
                        option: "--upstream-tls-ca",
                        source,
                    })?
                    .on_reload(reload_hook(metrics, "upstream_ca")),
            )),
            _ => None,
        };
        let opts = common::tls::ClientOptions {
            ca_verifier,
            client_cert_resolver,
            insecure_skip_verify: config.upstream_tls_insecure_skip_verify,
            ..Default::default()
        };
        let cfg = common::tls::client_config(&opts).map_err(|source| Error::Tls {
            option: "--upstream-tls-*",
            source,
        })?;
        let server_name = match &config.upstream_tls_server_name {
            Some(n) => Some(common::tls::server_name(n).map_err(|source| Error::Tls {
                option: "--upstream-tls-server-name",
                source,
            })?),
            None => None,
        };
        Some(UpstreamTls {
            connector: tokio_rustls::TlsConnector::from(cfg),
            server_name,
        })
    } else {
        None
    };
    let acceptor = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let resolver = common::tls::ReloadingCertResolver::new(cert, key, reload_interval)
                .map_err(|source| Error::Tls {
                    option: "--tls-cert/--tls-key",
                    source,
                })?
                .on_reload(reload_hook(metrics, "listener"));
            // Rebuilt when the client CA file changes (the certificate reloads on its own).
            let cfg = common::tls::ReloadingServerConfig::new(
                Arc::new(resolver),
                config.tls_client_ca.as_deref(),
                reload_interval,
            )
            .map_err(|source| Error::Tls {
                option: "--tls-client-ca",
                source,
            })?
            .on_reload(reload_hook(metrics, "listener_client_ca"));
            Some(Arc::new(cfg))
        }
        _ => None,
    };
    Ok((upstream, acceptor))
}

impl Agent for Ambassador {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "ambassador",
        about: "TCP proxy sidecar: the app talks to localhost, the ambassador reaches the real upstream.",
        default_admin_port: 9473,
        // The control plane (admin, signals, resolution, health) runs on one thread; the relay
        // runs on `--workers` event loops of its own (see `spawn_worker`).
        flavor: Flavor::CurrentThread,
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let specs = config.route_specs()?;
        let metrics = Metrics::register(build.registry);
        let mut pools = Vec::new();
        let mut routes = Vec::new();
        let changed = Arc::new(tokio::sync::Notify::new());
        for s in &specs {
            let o = &s.options;
            let (upstream_tls, acceptor) = build_tls(o, config.tls_reload_interval, &metrics)
                .map_err(|e| match e {
                    Error::Tls { option, source } if specs.len() > 1 => {
                        Error::Config(format!("route {}: {option}: {source}", s.listen))
                    }
                    e => e,
                })?;
            let policy = HealthPolicy {
                eject_after: o.eject_after,
                cooldown: o.eject_cooldown,
                cooldown_max: o.eject_cooldown_max.max(o.eject_cooldown),
            };
            pools.push(Arc::new(
                Pool::new(
                    s.listen.to_string(),
                    &s.upstreams,
                    o.balance,
                    policy,
                    &metrics,
                )
                .with_changes(changed.clone()),
            ));
            routes.push(Arc::new(RouteConfig {
                connector: Connector {
                    timeout: o.connect_timeout,
                    keepalive: o.keepalive,
                    user_timeout: o.tcp_user_timeout,
                    tls: upstream_tls,
                    proxy_protocol: o.proxy_protocol,
                    metrics: metrics.clone(),
                },
                acceptor,
                buffer_size: o.buffer_size as usize,
                idle_timeout: (!o.idle_timeout.is_zero()).then_some(o.idle_timeout),
                splice: o.splice,
                on_limit: o.on_limit,
                queue_timeout: (!o.queue_timeout.is_zero()).then_some(o.queue_timeout),
                access_log: o.access_log,
            }));
        }
        let conditions = pools
            .iter()
            .map(|p| {
                build
                    .readiness
                    .condition(&format!("route {}", p.route), "listener not bound yet")
            })
            .collect();
        let shared = Arc::new(Shared {
            metrics,
            stop_accepting: CancellationToken::new(),
            force_close: relay::ForceClose::new(),
            connections: TaskTracker::new(),
        });
        Ok(Ambassador {
            config,
            specs,
            pools,
            routes,
            shared,
            conditions,
            changed,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let Ambassador {
            config,
            specs,
            pools,
            routes,
            shared,
            conditions,
            changed,
        } = self;
        match fdlimit::raise() {
            Ok(limit) => tracing::debug!(limit, "open files limit"),
            Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
        }
        let mut listeners = Vec::new();
        for spec in &specs {
            let listener = listen::bind(spec.listen).map_err(|source| Error::Bind {
                addr: spec.listen,
                source,
            })?;
            listeners.push(listener);
        }
        let resolver = resolve::Resolver::new(config.hosts_file.clone());
        tasks::resolve_all(&resolver, &pools).await;
        let background = TaskTracker::new();
        for (pool, spec) in pools.iter().zip(&specs) {
            background.spawn(tasks::re_resolve(
                pool.clone(),
                resolver.clone(),
                config.dns_ttl,
                shared.stop_accepting.clone(),
            ));
            let o = &spec.options;
            if !o.health_check_interval.is_zero() {
                background.spawn(tasks::health_checks(
                    pool.clone(),
                    o.health_check_interval,
                    o.connect_timeout,
                    shared.stop_accepting.clone(),
                ));
            }
        }
        background.spawn(tasks::readiness(
            pools.clone(),
            conditions,
            changed,
            shared.stop_accepting.clone(),
        ));
        let workers = match config.workers {
            // A sidecar: no more than 4 threads unless asked (a pod without CPU limits on a big
            // node would otherwise get one per node CPU).
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            n => n,
        };
        // Plain TCP routes run on the epoll loops of `engine`; routes with TLS on either side
        // on tokio event loops (the control plane's own, plus `workers - 1` more).
        let on_engine = |rc: &RouteConfig| {
            cfg!(target_os = "linux") && rc.acceptor.is_none() && rc.connector.tls.is_none()
        };
        let relay_stop = CancellationToken::new();
        let mut loops = vec![tokio::runtime::Handle::current()];
        if !routes.iter().all(|rc| on_engine(rc)) {
            for i in 1..workers {
                match spawn_worker(i, relay_stop.clone()) {
                    Ok(h) => loops.push(h),
                    Err(error) => {
                        tracing::warn!(%error, "cannot start a relay thread; using fewer");
                        break;
                    }
                }
            }
        }
        tracing::debug!(workers, "relay event loops");
        let accepting = TaskTracker::new();
        #[cfg(target_os = "linux")]
        let mut engine_routes = Vec::new();
        for (((listener, pool), spec), rc) in
            listeners.into_iter().zip(&pools).zip(&specs).zip(&routes)
        {
            let addr = listener.local_addr().unwrap_or(spec.listen);
            let ups: Vec<&str> = pool.upstreams.iter().map(|u| u.label.as_str()).collect();
            events::ListenerBound {
                route: &pool.route,
                addr,
                upstreams: &ups.join(","),
                tls: rc.acceptor.is_some(),
            }
            .emit();
            let max = spec.options.max_connections;
            let limit = (max > 0).then(|| Arc::new(Semaphore::new(max)));
            #[cfg(target_os = "linux")]
            if on_engine(rc) {
                // Accepted sockets inherit TCP_NODELAY from the listener.
                let set_nodelay = socket2::SockRef::from(&listener)
                    .set_tcp_nodelay(true)
                    .is_err();
                engine_routes.push(engine::EngineRoute {
                    pool: pool.clone(),
                    config: rc.clone(),
                    limit,
                    listener: Arc::new(listener),
                    set_nodelay,
                });
                continue;
            }
            // Every event loop accepts on a listening socket of its own (or, failing that, its
            // own registration of a shared one), then relays what it accepted: no hand-off
            // between threads.
            let listen::Listeners {
                sockets,
                set_nodelay,
            } = listen::per_loop(listener, loops.len()).map_err(|source| Error::Bind {
                addr: spec.listen,
                source,
            })?;
            for (handle, listener) in loops.iter().zip(sockets) {
                accepting.spawn_on(
                    proxy::serve(
                        Route {
                            pool: pool.clone(),
                            limit: limit.clone(),
                            listener,
                            config: rc.clone(),
                            set_nodelay,
                        },
                        shared.clone(),
                    ),
                    handle,
                );
            }
        }
        #[cfg(target_os = "linux")]
        if !engine_routes.is_empty() {
            let mut wakers = Vec::new();
            let peers = engine::Peers::new(workers, engine_routes.len());
            for i in 0..workers {
                match engine::spawn(i, &engine_routes, shared.clone(), accepting.token(), &peers) {
                    Ok(w) => wakers.push(w),
                    Err(source) if wakers.is_empty() => return Err(Error::Engine(source)),
                    Err(error) => {
                        tracing::warn!(%error, "cannot start a relay thread; using fewer");
                        break;
                    }
                }
            }
            // The loops hold the listening sockets from here on (closed when they stop).
            drop(engine_routes);
            let (stop, close) = (shared.stop_accepting.clone(), shared.force_close.clone());
            tokio::spawn(async move {
                stop.cancelled().await;
                wakers.iter().for_each(engine::Waker::wake);
                close.cancelled().await;
                wakers.iter().for_each(engine::Waker::wake);
            });
        }

        ctx.shutdown.triggered().await;
        let started = tokio::time::Instant::now();
        let budget = ctx.shutdown_timeout;
        // Leave a margin to close what is left before the runtime's deadline.
        let margin = (budget / 10).min(Duration::from_secs(1));
        let drain_deadline = started + budget.saturating_sub(margin);
        if !config.drain_delay.is_zero() {
            info!(delay = ?config.drain_delay, "still accepting connections during the drain delay");
            tokio::time::sleep_until((started + config.drain_delay).min(drain_deadline)).await;
        }
        shared.stop_accepting.cancel();
        accepting.close();
        accepting.wait().await;
        background.close();
        background.wait().await;
        shared.connections.close();
        let open = shared.connections.len();
        info!(
            open,
            "listeners closed; waiting for open connections to finish"
        );
        if tokio::time::timeout_at(drain_deadline, shared.connections.wait())
            .await
            .is_err()
        {
            info!(
                open = shared.connections.len(),
                "drain deadline reached; closing the remaining connections"
            );
            shared.force_close.cancel();
            shared.connections.wait().await;
        }
        relay_stop.cancel();
        Ok(ExitCode::SUCCESS)
    }
}

/// Starts a relay thread: a single-threaded runtime with its own event loop (epoll, timers), so
/// each thread waits for and handles the events of its own connections, like HAProxy's threads.
/// Runs until `stop` trips.
fn spawn_worker(i: usize, stop: CancellationToken) -> std::io::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name(format!("relay-tls-{i}"))
        .spawn(move || rt.block_on(stop.cancelled_owned()))?;
    Ok(handle)
}
