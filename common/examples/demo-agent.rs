//! A minimal agent built on `common`, used by common's integration tests (and as the smallest
//! example of the agent shape): it logs its configuration, turns ready while a file exists, and
//! takes `--demo-drain` to finish after a shutdown signal.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use common::{
    admin::Endpoint, config::parse_duration, runtime::Build, Agent, AgentInfo, Context, Flavor,
    Secret,
};

/// The demo's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Demo")]
struct Config {
    /// A plain value, to test precedence (flag over env over default).
    #[arg(long, env = "DEMO_VALUE", default_value = "from-default")]
    demo_value: String,
    /// A secret, to test redaction.
    #[arg(long, env = "DEMO_SECRET")]
    demo_secret: Option<Secret>,
    /// The secret from a file (Kubernetes Secret volume).
    #[arg(long, env = "DEMO_SECRET_FILE")]
    demo_secret_file: Option<PathBuf>,
    /// Ready while this file exists.
    #[arg(long, env = "DEMO_READY_FILE")]
    demo_ready_file: Option<PathBuf>,
    /// How long draining takes after the shutdown signal.
    #[arg(long, env = "DEMO_DRAIN", default_value = "0s", value_parser = parse_duration)]
    demo_drain: Duration,
    /// Must be at least 1 (tests validation in build()).
    #[arg(long, env = "DEMO_WORKERS", default_value_t = 1)]
    demo_workers: u32,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("invalid value {0} for --demo-workers: expected at least 1")]
    Workers(u32),
    #[error(transparent)]
    Common(#[from] common::Error),
}

#[derive(Debug)]
struct Demo {
    config: Config,
    secret: Option<Secret>,
    ready: common::readiness::Condition,
}

impl Agent for Demo {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "demo",
        about: "A demo agent for common's tests.",
        default_admin_port: 9479,
        flavor: Flavor::CurrentThread,
        admin_aliases: &[("/api/v1/health", Endpoint::Health)],
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        if config.demo_workers == 0 {
            return Err(Error::Workers(config.demo_workers));
        }
        let secret = common::secret::resolve(
            "--demo-secret",
            config.demo_secret.clone(),
            config.demo_secret_file.as_deref(),
        )?;
        let ready = build.readiness.condition("demo", "ready file absent");
        Ok(Demo {
            config,
            secret,
            ready,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        tracing::info!(
            value = %self.config.demo_value,
            secret = ?self.secret,
            config = ?self.config,
            "demo configured"
        );
        if self.config.demo_ready_file.is_none() {
            self.ready.set_ready();
        }
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = ctx.shutdown.triggered() => break,
                _ = tick.tick() => {
                    if let Some(f) = &self.config.demo_ready_file {
                        if f.exists() { self.ready.set_ready() } else { self.ready.set_not_ready("ready file absent") }
                    }
                }
            }
        }
        tracing::info!(drain = ?self.config.demo_drain, "draining");
        tokio::time::sleep(self.config.demo_drain).await;
        tracing::info!("drained");
        Ok(ExitCode::SUCCESS)
    }
}

fn main() -> ExitCode {
    common::main::<Demo>()
}
