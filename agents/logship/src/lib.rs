//! Tails log files and ships them to Elasticsearch or OpenSearch (stdout NDJSON when none is given).
//!
//! Placeholder until the agent's own issue lands: it parses its configuration, serves the admin
//! endpoints and waits for shutdown.

use std::process::ExitCode;

use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "logship")]
pub struct Config {}

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

/// The agent.
#[derive(Debug)]
pub struct Logship {
    config: Config,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

impl Agent for Logship {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "logship",
        about: "Tails log files and ships them to Elasticsearch or OpenSearch (stdout NDJSON when none is given).",
        default_admin_port: 9471,
        flavor: Flavor::MultiThread(2),
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, _build: Build<'_>) -> Result<Self, Error> {
        Ok(Logship { config })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        tracing::debug!(config = ?self.config, "waiting for shutdown");
        ctx.shutdown.triggered().await;
        Ok(ExitCode::SUCCESS)
    }
}
