//! pgbackup: scheduled pg_dump backups that restore.
//!
//! Each run streams pg_dump through gzip (or takes pg_dump's custom format) into a temp file,
//! verifies it, renames it atomically to `<db>-<UTC timestamp>.sql.gz` with a JSON manifest
//! beside it, then applies GFS retention over verified backups only. `/readyz` turns 503
//! when backups go stale. Two modes:
//! - scheduled (default): `--schedule` cron or `--interval`, optional `--on-start`;
//! - once: `--once` backs up every database now and exits, 0 if all succeeded, else 1 (for
//!   a Kubernetes CronJob);
//! - restore: `--restore FILE|latest --restore-into DB` restores one backup and exits
//!   (`latest` is the newest verified backup of the first database of `--databases`).
//!
//! Modules: [`config`] (options), [`pg`] (connection, versions), [`tools`] (client tools),
//! [`schedule`], [`dump`], [`verify`], [`store`] (files, manifests), [`retention`], [`disk`],
//! [`restore`], [`runner`] (one run), [`freshness`] (readiness), [`metrics`], [`events`],
//! [`webhook`]; TLS of the control connection is `common::pg_tls` (libpq sslmode over
//! rustls, shared with waitfor).
#![allow(missing_docs)]

use std::{process::ExitCode, sync::Arc};

use chrono::Utc;
use common::{admin::Endpoint, runtime::Build, Agent, AgentInfo, Context, Flavor};
use tracing::{info, warn};

pub mod config;
pub mod disk;
pub mod dump;
pub mod events;
pub mod freshness;
pub mod metrics;
pub mod pg;
pub mod restore;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod store;
pub mod tools;
pub mod verify;
pub mod webhook;

pub use config::Config;

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid value {value:?} for {option}: expected {expected}")]
    Config {
        option: &'static str,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Common(#[from] common::Error),
    #[error("{message}")]
    Tool { message: String },
    #[error("cannot connect to PostgreSQL at {addr} (database {db:?}): {error}; check --host/PGHOST, --port, the credentials and that the server is up")]
    Connect {
        addr: String,
        db: String,
        error: String,
    },
    #[error("backup of database {db} failed: {reason}")]
    Dump { db: String, reason: String },
    #[error("backup of database {db} was stopped by shutdown; pg_dump was killed and its temp file removed")]
    Cancelled { db: String },
    #[error("not enough free space in {dir} to back up {db}: {available} available, about {needed} needed ({detail}); free space on the volume or enlarge it")]
    NoSpace {
        db: String,
        dir: String,
        available: String,
        needed: String,
        detail: String,
    },
    #[error("restore failed: {reason}")]
    Restore { reason: String },
    #[error("cannot use backup directory {dir}: {source}; check that the volume is mounted and writable")]
    BackupDir { dir: String, source: std::io::Error },
}

/// The agent.
#[derive(Debug)]
pub struct PgBackup {
    settings: Arc<config::Settings>,
    tools: Arc<tools::Tools>,
    metrics: metrics::Metrics,
    condition: common::readiness::Condition,
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

    fn build(config: Config, build: Build<'_>) -> Result<Self, Error> {
        let mut settings = config.resolve()?;
        if settings.format == config::Format::Gzip {
            // postgres-backup-local's default POSTGRES_EXTRA_OPTS is -Z1: in gzip format
            // pgbackup compresses, so pg_dump must not.
            settings.extra_opts.retain(|o| {
                let drop = o.starts_with("-Z") || o.starts_with("--compress") || o.starts_with("-F") || o.starts_with("--format");
                if drop {
                    warn!(option = %o, "ignoring pg_dump option: pgbackup sets format and compression itself (--format, --compression-level)");
                }
                !drop
            });
        }
        for (opt, url) in [
            ("--webhook-url", &settings.webhook_ok),
            ("--webhook-error-url", &settings.webhook_err),
        ] {
            if let Some(u) = url {
                webhook::validate(opt, u, settings.webhook_ca_file.as_deref())?;
            }
        }
        let tools = tools::Tools::locate(settings.pg_bin_dir.as_deref())?;
        let metrics = metrics::Metrics::register(build.registry);
        let condition = build.readiness.condition("backup", "starting");
        Ok(PgBackup {
            settings: Arc::new(settings),
            tools: Arc::new(tools),
            metrics,
            condition,
        })
    }

    async fn run(self, ctx: Context) -> Result<ExitCode, Error> {
        let s = self.settings.clone();
        if let Some(req) = &s.restore {
            self.condition.set_ready();
            let db = match &s.databases {
                config::Databases::List(l) => l.first().map(String::as_str),
                config::Databases::All => None,
            };
            let (path, format, manifest) = restore::choose(&s.backup_dir, &req.source, db)?;
            info!(file = %path.display(), into = %req.into, "restore started");
            tokio::select! {
                r = restore::restore(&self.tools, &s.conn, &path, format, manifest.as_ref(), &req.into) => r?,
                _ = ctx.shutdown.triggered() => {
                    warn!("restore interrupted by shutdown");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            info!(file = %path.display(), into = %req.into, "restore finished");
            return Ok(ExitCode::SUCCESS);
        }
        let dir_err = |source| Error::BackupDir {
            dir: s.backup_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&s.backup_dir).map_err(dir_err)?;
        let stale = store::remove_stale_temps(&s.backup_dir).map_err(dir_err)?;
        if stale > 0 {
            info!(
                count = stale,
                "removed temp files left by an interrupted run"
            );
        }
        let expected = match &s.databases {
            config::Databases::List(l) => l.clone(),
            config::Databases::All => Vec::new(),
        };
        let fresh = freshness::Freshness::new(Utc::now(), expected, s.max_age);
        for b in store::list(&s.backup_dir).map_err(dir_err)? {
            if b.manifest.verified {
                fresh.record(&b.manifest.database, b.time);
            }
        }
        ctx.shutdown.spawn(freshness::watch(
            fresh.clone(),
            self.condition.clone(),
            ctx.shutdown.clone(),
        ));
        let mut runner =
            runner::Runner::new(s.clone(), self.tools.clone(), self.metrics.clone(), fresh);
        // Start-up check: an older pg_dump is refused at once; an unreachable server is not
        // fatal (it may still be starting): each run checks again.
        match runner.server_info().await {
            Ok((v, _)) => {
                info!(server = %v.text, pg_dump = %self.tools.dump_version, "server version checked")
            }
            Err(e @ Error::Tool { .. }) => return Err(e),
            Err(error) => warn!(%error, "cannot reach the server at start; will try at each run"),
        }
        info!(schedule = %s.schedule.describe(), dir = %s.backup_dir.display(), max_age = %humantime::format_duration(s.max_age), "scheduler started");
        let cancel = ctx.shutdown.token().clone();
        let mut tick = if s.on_start || s.once {
            Utc::now()
        } else {
            next_tick(&s.schedule, Utc::now())
        };
        loop {
            let delay =
                (tick - Utc::now()).to_std().unwrap_or_default() + schedule::jitter(s.jitter);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.shutdown.triggered() => break,
            }
            let all_ok = runner.round(&cancel).await?;
            if s.once {
                return Ok(if all_ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            if ctx.shutdown.is_triggered() {
                break;
            }
            let now = Utc::now();
            let mut next = next_tick(&s.schedule, tick);
            let mut skipped = 0;
            while next <= now {
                skipped += 1;
                next = next_tick(&s.schedule, next);
            }
            if skipped > 0 {
                events::TicksSkipped { count: skipped }.emit(&self.metrics);
            }
            tick = next;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn next_tick(s: &schedule::Schedule, after: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    s.next_after(after)
        .unwrap_or(after + chrono::Duration::days(1))
}
