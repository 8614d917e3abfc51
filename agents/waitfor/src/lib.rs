//! waitfor: an init container that waits until its pod's dependencies are really ready (a
//! database that answers `SELECT 1`, a broker that completes its handshake, an HTTP endpoint
//! that says 200), then exits 0 or execs the command given after `--`.
//!
//! # Layout
//! - [`config`]: options (flags, `WAITFOR_*`, `WAIT_FOR`, docker-compose-wait's `WAIT_*`).
//! - [`target`]: target URLs and their per-target options.
//! - [`check`]: one attempt per target kind (tcp, http, postgres, redis, mysql, amqp, nats,
//!   mqtt, dns, file).
//! - [`resolve`]: name resolution (with the hosts-file override) and connects.
//! - [`runner`]: the parallel wait, backoff, timeout, any/all, invert, summaries.
//! - [`events`]: log lines and metrics. [`exec`]: running the command.
//!
//! Exit codes: 0 ready, 124 timed out, 2 bad usage (a bad target says which and why), 1 an
//! authentication failure with `--fail-on-auth`, 143 interrupted by SIGTERM/SIGINT while
//! waiting, 126/127 the command cannot be run; otherwise the command's own.
use std::process::ExitCode;

use common::{
    admin::Endpoint, readiness::Condition, runtime::Build, Agent, AgentInfo, Context, Flavor,
};

pub mod check;
pub mod config;
pub mod events;
pub mod exec;
pub mod outcome;
pub mod resolve;
pub mod runner;
pub mod target;

pub use config::Config;
use config::Settings;
use events::Verdict;

/// Exit code when the timeout passes (as wait-for-it, wait4x and GNU timeout).
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit code when a signal interrupts the wait (128 + SIGTERM).
pub const EXIT_INTERRUPTED: u8 = 143;

/// The agent's errors (all configuration errors: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target that cannot be parsed.
    #[error("invalid target {target}: {reason}")]
    Target {
        /// The target as given, password redacted.
        target: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// Nothing to wait for.
    #[error("no targets: give URLs as arguments (waitfor tcp://db:5432 http://api/healthz) or in WAIT_FOR, WAIT_HOSTS or WAIT_PATHS")]
    NoTargets,
    /// A bad option value.
    #[error("invalid value {value:?} for {option}: expected {expected}")]
    Option {
        /// The option.
        option: String,
        /// The value.
        value: String,
        /// What is expected.
        expected: String,
    },
}

/// The agent.
#[derive(Debug)]
pub struct WaitFor {
    settings: Settings,
    metrics: events::Metrics,
    condition: Condition,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

impl Agent for WaitFor {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "waitfor",
        about: "Init container: waits until TCP ports, URLs and databases are really ready.",
        default_admin_port: 9476,
        flavor: Flavor::CurrentThread,
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let settings = config.settings()?;
        let metrics = events::Metrics::register(build.registry);
        metrics.targets(settings.probes.len());
        let condition = build
            .readiness
            .condition("targets", "waiting for the targets");
        Ok(WaitFor {
            settings,
            metrics,
            condition,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let s = &self.settings;
        if !s.delay_before.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(s.delay_before) => {}
                _ = ctx.shutdown.triggered() => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
            }
        }
        let verdict = runner::wait(s, &self.metrics, &ctx.shutdown, &self.condition).await;
        match verdict {
            Verdict::Ready => {}
            Verdict::TimedOut => return Ok(ExitCode::from(EXIT_TIMEOUT)),
            Verdict::Interrupted => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
            Verdict::AuthFailed => return Ok(ExitCode::FAILURE),
        }
        if !s.delay_after.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(s.delay_after) => {}
                _ = ctx.shutdown.triggered() => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
            }
        }
        if s.command.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        Ok(exec::exec(&s.command))
    }
}
