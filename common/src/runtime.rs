//! The agent runtime: the [`Agent`] trait every agent implements and [`main`], which every
//! agent's `main.rs` calls.
//!
//! [`main`] parses flags and env (exit 2 on a bad value), installs logging, builds the agent
//! (exit 2 when [`Agent::build`] rejects the configuration), serves the admin endpoints, runs
//! the agent until it returns or a signal starts the graceful shutdown, and waits at most
//! `--shutdown-timeout` for it to drain. Exit codes: what the agent returns (0 after a clean
//! drain), 1 when it fails or the drain overruns, 2 for bad configuration, 128+N after a second
//! signal N.
use std::{fmt::Debug, future::Future, process::ExitCode, sync::Arc, time::Duration};

use clap::{Args, CommandFactory, FromArgMatches, Parser};
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use crate::{
    admin::{self, AdminState, Endpoint},
    config::{AdminAddr, CommonArgs},
    metrics::Metrics,
    readiness::Readiness,
    shutdown::{listen_for_signals, Shutdown},
};

/// The threads an agent runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One thread: the smallest footprint, for agents that mostly wait.
    CurrentThread,
    /// A pool of this many worker threads, for agents with a hot path.
    MultiThread(usize),
}

/// What the runtime needs to know about an agent before parsing its flags.
#[derive(Debug, Clone, Copy)]
pub struct AgentInfo {
    /// The binary name, also the metrics prefix (`logship`).
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The agent's default admin port (each agent has its own: see README's port table).
    pub default_admin_port: u16,
    /// Threads.
    pub flavor: Flavor,
    /// Extra admin paths, for drop-in compatibility with the programs the agent replaces.
    pub admin_aliases: &'static [(&'static str, Endpoint)],
}

/// What [`Agent::build`] gets: where to register metrics and readiness conditions.
#[derive(Debug)]
pub struct Build<'a> {
    /// The agent's registry; names get the agent's prefix.
    pub registry: &'a mut Registry,
    /// Readiness: add a condition for each thing that must hold before `/readyz` says ok.
    pub readiness: &'a Readiness,
}

/// What [`Agent::run`] gets.
#[derive(Debug, Clone)]
pub struct Context {
    /// Trips on SIGTERM/SIGINT; spawn long-lived tasks through it so the runtime waits for them.
    pub shutdown: Shutdown,
    /// Readiness, to add conditions after start.
    pub readiness: Readiness,
    /// `--shutdown-timeout`: how long the drain may take from the signal on.
    pub shutdown_timeout: Duration,
}

/// An agent: a configuration it is built from, and a run that lasts until shutdown.
pub trait Agent: Sized {
    /// The agent's own flags (clap derive, each with `env`).
    type Config: Args + Debug;
    /// The agent crate's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Name, default admin port, threads.
    const INFO: AgentInfo;

    /// Validates the configuration and builds the agent; an error here exits with code 2, so
    /// it should name the option, the bad value and what is expected. Runs inside the tokio
    /// runtime, before the admin server starts.
    fn build(config: Self::Config, build: Build<'_>) -> Result<Self, Self::Error>;

    /// Runs until the work is done or `ctx.shutdown` trips, then drains and returns the exit
    /// code (normally 0). An error exits with code 1.
    fn run(self, ctx: Context) -> impl Future<Output = Result<ExitCode, Self::Error>>;
}

#[derive(Parser, Debug)]
struct Cli<C: Args> {
    #[command(flatten)]
    agent: C,
    #[command(flatten)]
    common: CommonArgs,
}

/// The version line for `--version`: version and git commit.
pub fn version_line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| format!("{} (commit {})", crate::VERSION, crate::GIT_COMMIT))
}

/// Builds the clap command for agent `A`, with its name, version and default admin address.
pub fn command<A: Agent>() -> clap::Command {
    let info = A::INFO;
    let default_admin: &'static str =
        Box::leak(format!("0.0.0.0:{}", info.default_admin_port).into_boxed_str());
    Cli::<A::Config>::command()
        .name(info.name)
        .bin_name(info.name)
        .about(info.about)
        .long_about(None)
        .version(version_line())
        .mut_arg("admin_addr", |a| a.default_value(default_admin))
        // Env values can be secrets: never show them in --help.
        .mut_args(|a| a.hide_env_values(true))
}

/// Parses flags and env for agent `A`; prints help, version or the error and exits as clap
/// does (0 for help and version, 2 for a bad value).
fn parse<A: Agent>() -> Cli<A::Config> {
    let matches = command::<A>().get_matches();
    Cli::<A::Config>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs agent `A` as a process: the whole of an agent's `main`.
pub fn main<A: Agent>() -> ExitCode {
    let cli = parse::<A>();
    let info = A::INFO;
    if let Err(e) = crate::log::init(&cli.common.log_level, cli.common.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = match info.flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Flavor::MultiThread(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(error) => {
            error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let mut metrics = Metrics::new(info.name);
    let readiness = Readiness::new();
    let check_config = cli.common.check_config;
    let summary = check_config.then(|| format!("{:#?}", cli.agent));
    let built = {
        let _guard = rt.enter();
        A::build(
            cli.agent,
            Build {
                registry: metrics.agent_registry(info.name),
                readiness: &readiness,
            },
        )
    };
    let agent = match built {
        Ok(agent) => agent,
        Err(error) => {
            error!(error = %error, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    if let Some(summary) = summary {
        println!("configuration is valid\n{summary}");
        return ExitCode::SUCCESS;
    }
    let code = rt.block_on(run(agent, cli.common, metrics, readiness));
    // Blocking threads (stdin readers, child waits) must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn run<A: Agent>(
    agent: A,
    common: CommonArgs,
    metrics: Metrics,
    readiness: Readiness,
) -> ExitCode {
    let info = A::INFO;
    let shutdown = Shutdown::new();
    if let Err(error) = listen_for_signals(shutdown.clone(), readiness.clone()) {
        error!(%error, "cannot start");
        return ExitCode::FAILURE;
    }
    if let Some(AdminAddr::Listen(addr)) = common.admin_addr {
        match admin::bind(addr).await {
            Ok(listener) => {
                let local = listener.local_addr().map_or(addr, |a| a);
                info!(addr = %local, "admin server listening");
                tokio::spawn(admin::serve(
                    listener,
                    AdminState {
                        readiness: readiness.clone(),
                        metrics: Arc::new(metrics),
                        aliases: info.admin_aliases,
                        quit: common.quit_endpoint.then(|| shutdown.clone()),
                    },
                ));
            }
            Err(error) => {
                error!(%error, "cannot start");
                return ExitCode::FAILURE;
            }
        }
    }
    info!(
        agent = info.name,
        version = crate::VERSION,
        commit = crate::GIT_COMMIT,
        "started"
    );
    let timeout = common.shutdown_timeout;
    let ctx = Context {
        shutdown: shutdown.clone(),
        readiness,
        shutdown_timeout: timeout,
    };
    let run = agent.run(ctx);
    tokio::pin!(run);
    let finished = tokio::select! {
        r = &mut run => Some(r),
        _ = shutdown.triggered() => None,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let result = match finished {
        Some(r) => {
            // The agent returned on its own: stop whatever it left running.
            shutdown.trigger();
            r
        }
        None => match tokio::time::timeout_at(deadline, &mut run).await {
            Ok(r) => r,
            Err(_) => {
                error!(
                    timeout = %humantime::format_duration(timeout),
                    "shutdown deadline exceeded; exiting with work unfinished (raise --shutdown-timeout)"
                );
                return ExitCode::FAILURE;
            }
        },
    };
    shutdown.close();
    if tokio::time::timeout_at(deadline, shutdown.wait())
        .await
        .is_err()
    {
        warn!("shutdown deadline exceeded while background tasks were finishing");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(code) => {
            info!("stopped");
            code
        }
        Err(error) => {
            error!(error = %error, "failed");
            ExitCode::FAILURE
        }
    }
}
