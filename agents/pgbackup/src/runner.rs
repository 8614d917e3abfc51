//! One scheduled run: ask the server its version (refusing an older pg_dump), resolve `all`,
//! then back up each database in turn (globals first when asked) with a free-space check, a
//! verified dump, retention and the optional restore check. A failing database does not
//! stop the others; each has its own result and metrics. Runs are awaited by the scheduler
//! loop, so they never overlap.
use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    config::{Databases, Settings},
    disk, dump,
    events::{
        BackupCancelled, BackupFailed, BackupSucceeded, RestoreChecked, RetentionDeleted,
        RetentionKept,
    },
    freshness::Freshness,
    metrics::{db as db_label, Metrics},
    pg::{self, ServerVersion},
    restore, retention,
    store::{self, GLOBALS},
    tools::Tools,
    webhook, Error,
};

/// Runs backups.
#[derive(Debug)]
pub struct Runner {
    pub settings: Arc<Settings>,
    pub tools: Arc<Tools>,
    pub metrics: Metrics,
    pub fresh: Freshness,
    rounds_ok: u64,
}

impl Runner {
    pub fn new(
        settings: Arc<Settings>,
        tools: Arc<Tools>,
        metrics: Metrics,
        fresh: Freshness,
    ) -> Self {
        Runner {
            settings,
            tools,
            metrics,
            fresh,
            rounds_ok: 0,
        }
    }

    /// Connects to the first database that answers; returns the server version and the
    /// databases to back up. A pg_dump older than the server is an error of its own kind
    /// ([`Error::Tool`]), which stops the agent.
    pub async fn server_info(&self) -> Result<(ServerVersion, Vec<String>), Error> {
        let s = &self.settings;
        let candidates: Vec<String> = match &s.databases {
            Databases::List(l) => l.iter().cloned().chain(["postgres".to_string()]).collect(),
            Databases::All => vec!["postgres".into(), "template1".into()],
        };
        let mut last_err = None;
        for db in &candidates {
            let client = match s.conn.connect(db).await {
                Ok(c) => c,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let version = pg::server_version(&client)
                .await
                .map_err(|e| Error::Connect {
                    addr: s.conn.addr(),
                    db: db.clone(),
                    error: pg::describe(&e),
                })?;
            self.tools.check_server(&version, &s.conn.addr())?;
            let dbs = match &s.databases {
                Databases::List(l) => l.clone(),
                Databases::All => {
                    pg::list_databases(&client)
                        .await
                        .map_err(|e| Error::Connect {
                            addr: s.conn.addr(),
                            db: db.clone(),
                            error: format!("cannot list databases: {}", pg::describe(&e)),
                        })?
                }
            };
            return Ok((version, dbs));
        }
        Err(last_err.unwrap_or_else(|| Error::Connect {
            addr: s.conn.addr(),
            db: String::new(),
            error: "no database to connect to".into(),
        }))
    }

    /// One run over every database: `Ok(true)` when every database succeeded. Returns an
    /// error only for what must stop the agent.
    pub async fn round(&mut self, cancel: &CancellationToken) -> Result<bool, Error> {
        let s = self.settings.clone();
        let (server, dbs) = match self.server_info().await {
            Ok(x) => x,
            Err(e @ Error::Tool { .. }) => return Err(e),
            Err(e) => {
                let names = match &s.databases {
                    Databases::List(l) => l.clone(),
                    Databases::All => vec!["all".to_string()],
                };
                for db in &names {
                    BackupFailed {
                        database: db,
                        error: &e,
                    }
                    .emit(&self.metrics);
                }
                let failed: Vec<_> = names
                    .iter()
                    .map(|d| json!({"database": d, "error": e.to_string()}))
                    .collect();
                self.notify(&[], &failed).await;
                return Ok(false);
            }
        };
        if s.databases == Databases::All {
            self.fresh.set_expected(dbs.clone());
        }
        let targets: Vec<String> = s
            .globals
            .then(|| GLOBALS.to_string())
            .into_iter()
            .chain(dbs)
            .collect();
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for db in &targets {
            if cancel.is_cancelled() {
                break;
            }
            info!(database = %db, "backup started");
            match self.backup_one(db, &server, cancel).await {
                Ok(done) => {
                    let at = Utc::now();
                    BackupSucceeded {
                        path: &done.path,
                        manifest: &done.manifest,
                        at,
                    }
                    .emit(&self.metrics);
                    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&done.manifest.timestamp) {
                        self.fresh.record(db, t.with_timezone(&Utc));
                    }
                    self.retention(db);
                    ok.push(done);
                }
                Err(Error::Cancelled { .. }) => {
                    BackupCancelled { database: db }.emit(&self.metrics);
                    return Ok(false);
                }
                Err(e) => {
                    BackupFailed {
                        database: db,
                        error: &e,
                    }
                    .emit(&self.metrics);
                    failed.push(json!({"database": db, "error": e.to_string()}));
                }
            }
        }
        if failed.is_empty() && !ok.is_empty() {
            self.rounds_ok += 1;
            if s.verify_restore_every > 0 && self.rounds_ok % s.verify_restore_every == 0 {
                for done in ok.iter().filter(|d| d.manifest.database != GLOBALS) {
                    let r = restore::check(&self.tools, &s.conn, &done.path, &done.manifest).await;
                    RestoreChecked {
                        database: &done.manifest.database,
                        result: r.as_ref().map(|x| *x),
                    }
                    .emit(&self.metrics);
                }
            }
        }
        let ok: Vec<_> = ok
            .iter()
            .map(|d| json!({"database": d.manifest.database, "file": d.manifest.file, "size_bytes": d.manifest.size_bytes, "duration_seconds": d.manifest.duration_seconds}))
            .collect();
        let all_ok = failed.is_empty();
        self.notify(&ok, &failed).await;
        Ok(all_ok)
    }

    async fn notify(&self, ok: &[serde_json::Value], failed: &[serde_json::Value]) {
        let s = &self.settings;
        let body = json!({
            "agent": "pgbackup",
            "status": if failed.is_empty() { "success" } else { "failure" },
            "succeeded": ok,
            "failed": failed,
        });
        let url = if failed.is_empty() {
            &s.webhook_ok
        } else {
            &s.webhook_err
        };
        if let Some(url) = url {
            webhook::post(url, s.webhook_ca_file.as_deref(), &body).await;
        }
    }

    async fn backup_one(
        &self,
        db: &str,
        server: &ServerVersion,
        cancel: &CancellationToken,
    ) -> Result<dump::Done, Error> {
        let s = &self.settings;
        let io = |e: std::io::Error| Error::Dump {
            db: db.to_string(),
            reason: format!("cannot read {}: {e}", s.backup_dir.display()),
        };
        let all = store::list(&s.backup_dir).map_err(io)?;
        let last_size = store::of_database(&all, db)
            .first()
            .map_or(0, |b| b.manifest.size_bytes);
        let available = disk::available(&s.backup_dir).map_err(io)?;
        let needed = disk::needed(last_size, s.min_free_space);
        if available < needed {
            return Err(Error::NoSpace {
                db: db.to_string(),
                dir: s.backup_dir.display().to_string(),
                available: disk::human(available),
                needed: disk::human(needed),
                detail: format!(
                    "last backup {} + 10% + --min-free-space {}",
                    disk::human(last_size),
                    disk::human(s.min_free_space)
                ),
            });
        }
        let spec = dump::Spec {
            tools: &self.tools,
            conn: &s.conn,
            db,
            format: s.format,
            level: s.level,
            extra_opts: &s.extra_opts,
            dir: &s.backup_dir,
            timeout: s.dump_timeout,
            server_version: &server.text,
        };
        dump::run(&spec, cancel).await
    }

    /// Applies retention to the verified backups of `db`.
    fn retention(&self, db: &str) {
        let s = &self.settings;
        let all = match store::list(&s.backup_dir) {
            Ok(a) => a,
            Err(error) => {
                warn!(%error, database = %db, "cannot list backups for retention; nothing deleted");
                return;
            }
        };
        let mine = store::of_database(&all, db);
        let times: Vec<_> = mine.iter().map(|b| b.time).collect();
        let plan = retention::plan(&times, &s.policy, Utc::now());
        let mut kept = 0i64;
        for d in plan {
            let b = mine[d.index];
            let why = d.why();
            if d.keep() {
                kept += 1;
                RetentionKept {
                    database: db,
                    path: &b.path,
                    why: &why,
                }
                .emit();
                continue;
            }
            if s.retention_dry_run {
                kept += 1;
            } else if let Err(error) = store::delete(b) {
                warn!(%error, file = %b.path.display(), "cannot delete backup");
                kept += 1;
                continue;
            }
            RetentionDeleted {
                database: db,
                path: &b.path,
                why: &why,
                dry_run: s.retention_dry_run,
            }
            .emit(&self.metrics);
        }
        self.metrics.kept.get_or_create(&db_label(db)).set(kept);
    }
}
