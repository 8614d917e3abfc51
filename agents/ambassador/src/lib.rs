//! TCP proxy sidecar: the app talks to localhost, the ambassador reaches the real upstream.
//!
//! # Layout
//! - [`config`]: options and their validation into routes.
//! - [`resolve`]: upstream names (IP literals, an optional hosts file, DNS).
//! - [`pool`]: a route's upstreams: addresses, balancing, passive health and ejection.
//! - [`connect`]: connecting to an upstream (timeouts, keepalive, TLS origination, PROXY header).
//! - [`proxy`]: the accept loop and one connection's life.
//! - [`relay`] and `splice`: moving the bytes (buffered, or splice(2) between plain sockets).
//! - [`tasks`]: background work: re-resolution, active health checks, readiness.
//! - [`metrics`], [`events`]: what is counted and logged.
//!
//! # Shutdown
//! On SIGTERM the agent keeps accepting for `--drain-delay`, then closes its listeners, lets
//! open connections finish until shortly before `--shutdown-timeout`, closes what is left and
//! exits 0.

use std::{process::ExitCode, sync::Arc, time::Duration};

use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

pub mod config;
pub mod connect;
pub mod events;
pub mod fdlimit;
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
use config::RouteSpec;
use connect::{Connector, UpstreamTls};
use metrics::{Metrics, ResultLabels};
use pool::{HealthPolicy, Pool};
use proxy::{Route, Shared};

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
    shared: Arc<Shared>,
    conditions: Vec<common::readiness::Condition>,
}

impl std::fmt::Debug for Ambassador {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ambassador")
            .field("specs", &self.specs)
            .finish_non_exhaustive()
    }
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

fn build_tls(
    config: &Config,
    metrics: &Metrics,
) -> Result<(Option<UpstreamTls>, Option<tokio_rustls::TlsAcceptor>), Error> {
    let upstream = if config.upstream_tls {
        let opts = common::tls::ClientOptions {
            ca_file: config.upstream_tls_ca.clone(),
            client_cert: config
                .upstream_tls_cert
                .clone()
                .zip(config.upstream_tls_key.clone()),
            insecure_skip_verify: config.upstream_tls_insecure_skip_verify,
            alpn: Vec::new(),
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
        if config.upstream_tls_ca.is_some() || config.upstream_tls_cert.is_some() {
            return Err(Error::Config(
                "--upstream-tls-ca / --upstream-tls-cert given without --upstream-tls true".into(),
            ));
        }
        None
    };
    let acceptor = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let reloads = metrics.tls_reloads.clone();
            let resolver = common::tls::ReloadingCertResolver::new(cert, key, config.tls_reload_interval)
                .map_err(|source| Error::Tls { option: "--tls-cert/--tls-key", source })?
                .on_reload(move |r| match r {
                    Ok(()) => {
                        reloads.get_or_create(&ResultLabels { result: "success" }).inc();
                        info!("listener certificate reloaded");
                    }
                    Err(error) => {
                        reloads.get_or_create(&ResultLabels { result: "failure" }).inc();
                        tracing::warn!(%error, "cannot reload the listener certificate; keeping the previous one");
                    }
                });
            let cfg =
                common::tls::server_config(Arc::new(resolver), config.tls_client_ca.as_deref())
                    .map_err(|source| Error::Tls {
                        option: "--tls-client-ca",
                        source,
                    })?;
            Some(tokio_rustls::TlsAcceptor::from(cfg))
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
        flavor: Flavor::MultiThread(2),
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let specs = config.route_specs()?;
        let metrics = Metrics::register(build.registry);
        let (upstream_tls, acceptor) = build_tls(&config, &metrics)?;
        let policy = HealthPolicy {
            eject_after: config.eject_after,
            cooldown: config.eject_cooldown,
            cooldown_max: config.eject_cooldown_max.max(config.eject_cooldown),
        };
        let pools: Vec<Arc<Pool>> = specs
            .iter()
            .map(|s| {
                Arc::new(Pool::new(
                    s.listen.to_string(),
                    &s.upstreams,
                    config.balance,
                    policy,
                    &metrics,
                ))
            })
            .collect();
        let conditions = pools
            .iter()
            .map(|p| {
                build
                    .readiness
                    .condition(&format!("route {}", p.route), "listener not bound yet")
            })
            .collect();
        let shared = Arc::new(Shared {
            connector: Connector {
                timeout: config.connect_timeout,
                keepalive: config.keepalive,
                user_timeout: config.tcp_user_timeout,
                tls: upstream_tls,
                proxy_protocol: config.proxy_protocol,
                metrics: metrics.clone(),
            },
            acceptor,
            buffer_size: config.buffer_size as usize,
            idle_timeout: (!config.idle_timeout.is_zero()).then_some(config.idle_timeout),
            splice: config.splice,
            on_limit: config.on_limit,
            access_log: config.access_log,
            metrics,
            stop_accepting: CancellationToken::new(),
            force_close: CancellationToken::new(),
            connections: TaskTracker::new(),
        });
        Ok(Ambassador {
            config,
            specs,
            pools,
            shared,
            conditions,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let Ambassador {
            config,
            specs,
            pools,
            shared,
            conditions,
        } = self;
        match fdlimit::raise() {
            Ok(limit) => tracing::debug!(limit, "open files limit"),
            Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
        }
        let mut listeners = Vec::new();
        for spec in &specs {
            let listener = TcpListener::bind(spec.listen)
                .await
                .map_err(|source| Error::Bind {
                    addr: spec.listen,
                    source,
                })?;
            listeners.push(listener);
        }
        let resolver = resolve::Resolver::new(config.hosts_file.clone());
        tasks::resolve_all(&resolver, &pools).await;
        let background = TaskTracker::new();
        for pool in &pools {
            background.spawn(tasks::re_resolve(
                pool.clone(),
                resolver.clone(),
                config.dns_ttl,
                shared.stop_accepting.clone(),
            ));
            if !config.health_check_interval.is_zero() {
                background.spawn(tasks::health_checks(
                    pool.clone(),
                    config.health_check_interval,
                    config.connect_timeout,
                    shared.stop_accepting.clone(),
                ));
            }
        }
        background.spawn(tasks::readiness(
            pools.clone(),
            conditions,
            shared.stop_accepting.clone(),
        ));
        let accepting = TaskTracker::new();
        for ((listener, pool), spec) in listeners.into_iter().zip(&pools).zip(&specs) {
            let addr = listener.local_addr().unwrap_or(spec.listen);
            let ups: Vec<&str> = pool.upstreams.iter().map(|u| u.label.as_str()).collect();
            events::ListenerBound {
                route: &pool.route,
                addr,
                upstreams: &ups.join(","),
                tls: shared.acceptor.is_some(),
            }
            .emit();
            let limit = (config.max_connections > 0)
                .then(|| Arc::new(Semaphore::new(config.max_connections)));
            accepting.spawn(proxy::serve(
                Route {
                    pool: pool.clone(),
                    limit,
                    listener,
                },
                shared.clone(),
            ));
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
        Ok(ExitCode::SUCCESS)
    }
}
