//! Scheduled pg_dump backups with streaming gzip, atomic files, verification and retention.
//!
//! Placeholder until the agent's own issue lands: it parses its configuration, serves the admin
//! endpoints and waits for shutdown.

use std::process::ExitCode;

use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "pgbackup")]
pub struct Config {}

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

/// The agent.
#[derive(Debug)]
pub struct PgBackup {
    config: Config,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

impl Agent for PgBackup {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "pgbackup",
        about: "Scheduled pg_dump backups with streaming gzip, atomic files, verification and retention.",
        default_admin_port: 9474,
        flavor: Flavor::CurrentThread,
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, _build: Build<'_>) -> Result<Self, Error> {
        Ok(PgBackup { config })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        tracing::debug!(config = ?self.config, "waiting for shutdown");
        ctx.shutdown.triggered().await;
        Ok(ExitCode::SUCCESS)
    }
}
