//! TCP proxy sidecar: the app talks to localhost, the ambassador reaches the real upstream.
//!
//! Placeholder until the agent's own issue lands: it parses its configuration, serves the admin
//! endpoints and waits for shutdown.

use std::process::ExitCode;

use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "ambassador")]
pub struct Config {}

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

/// The agent.
#[derive(Debug)]
pub struct Ambassador {
    config: Config,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

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

    fn build(config: Config, _build: Build<'_>) -> Result<Self, Error> {
        Ok(Ambassador { config })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        tracing::debug!(config = ?self.config, "waiting for shutdown");
        ctx.shutdown.triggered().await;
        Ok(ExitCode::SUCCESS)
    }
}
