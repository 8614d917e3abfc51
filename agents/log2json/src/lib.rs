//! Turns text logs (syslog, nginx/apache, log4j, logfmt, CRI, regex) into JSON lines.
//!
//! Placeholder until the agent's own issue lands: it parses its configuration, serves the admin
//! endpoints and waits for shutdown.

use std::process::ExitCode;

use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "log2json")]
pub struct Config {}

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

/// The agent.
#[derive(Debug)]
pub struct Log2Json {
    config: Config,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

impl Agent for Log2Json {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "log2json",
        about: "Turns text logs (syslog, nginx/apache, log4j, logfmt, CRI, regex) into JSON lines.",
        default_admin_port: 9472,
        flavor: Flavor::CurrentThread,
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, _build: Build<'_>) -> Result<Self, Error> {
        Ok(Log2Json { config })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        tracing::debug!(config = ?self.config, "waiting for shutdown");
        ctx.shutdown.triggered().await;
        Ok(ExitCode::SUCCESS)
    }
}
