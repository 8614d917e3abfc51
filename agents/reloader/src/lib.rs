//! Watches mounted ConfigMaps and Secrets and makes the app reload.
//!
//! # Layout
//! - [`config`]: options and their validation.
//! - [`watch`]: inotify watches (kubelet's `..data` swap included) that wake the loop.
//! - [`snapshot`]: the content hash of the watched set (and its files, for sync).
//! - [`reload`]: debounce, change detection, the actions in order, retries, re-checks.
//! - [`actions`]: sync, validate, webhook, signal (+ confirmation), command.
//! - [`sync`], [`render`]: atomic copies into `--sync-to`, `${VAR}` substitution.
//! - [`process`]: finding a process by name or pid file and signalling it.
//! - [`command`]: commands given as one string.
//! - [`metrics`], [`events`]: what `/metrics` shows and the log lines that go with it.

use std::process::ExitCode;

use common::{
    admin::Endpoint, readiness::Condition, runtime::Build, Agent, AgentInfo, Context, Flavor,
};

pub mod actions;
pub mod command;
pub mod config;
mod error;
pub mod events;
pub mod metrics;
pub mod process;
pub mod reload;
pub mod render;
pub mod snapshot;
pub mod sync;
pub mod watch;

pub use config::Config;
pub use error::Error;

/// The agent.
#[derive(Debug)]
pub struct Reloader {
    actions: actions::Actions,
    metrics: metrics::Metrics,
    ready: Condition,
    once: bool,
}

const NO_ALIASES: &[(&str, Endpoint)] = &[];

impl Agent for Reloader {
    type Config = Config;
    type Error = Error;
    const INFO: AgentInfo = AgentInfo {
        name: "reloader",
        about: "Watches mounted ConfigMaps and Secrets and makes the app reload.",
        default_admin_port: 9475,
        flavor: Flavor::CurrentThread,
        admin_aliases: NO_ALIASES,
    };

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let settings = config.validate()?;
        if !settings.once && settings.sync_to.is_none() && !settings.has_reload_actions() {
            tracing::warn!("no action configured (--sync-to, --webhook-url, --signal-process, --signal-pidfile, --command): changes are only logged and counted");
        }
        let once = settings.once;
        let metrics = metrics::Metrics::register(build.registry);
        let ready = build
            .readiness
            .condition("watch", "setting up the filesystem watch");
        Ok(Reloader {
            actions: actions::Actions::new(settings)?,
            metrics,
            ready,
            once,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let lp = reload::Reload::new(self.actions, self.metrics);
        if self.once {
            lp.once(&ctx.shutdown).await.map_err(Error::Once)?;
            return Ok(ExitCode::SUCCESS);
        }
        lp.run(ctx.shutdown.clone(), self.ready).await;
        Ok(ExitCode::SUCCESS)
    }
}
