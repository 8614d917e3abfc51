//! Restoring: a chosen backup (a file, or the newest verified one of a database) into a
//! database, created if missing; plain dumps are decompressed on a blocking thread and piped
//! into `psql -v ON_ERROR_STOP=1`, custom dumps go to `pg_restore --exit-on-error`. Also the
//! scheduled restore check: restore into a scratch database, compare its tables with the
//! source's, count rows, drop it.
use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Stdio,
};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use tokio::{io::AsyncWriteExt, process::Command, sync::mpsc};

use crate::{
    config::Format,
    pg::{quote_ident, ConnParams},
    store::{self, Manifest},
    tools::Tools,
    Error,
};

fn fail(reason: String) -> Error {
    Error::Restore { reason }
}

/// Finds the backup to restore: `latest` (newest verified backup of `db`) or a path.
pub fn choose(
    dir: &Path,
    source: &str,
    db: Option<&str>,
) -> Result<(PathBuf, Format, Option<Manifest>), Error> {
    if source == "latest" {
        let all =
            store::list(dir).map_err(|e| fail(format!("cannot list {}: {e}", dir.display())))?;
        let b = all
            .iter()
            .find(|b| b.manifest.verified && db.is_none_or(|d| b.manifest.database == d))
            .ok_or_else(|| {
                fail(format!(
                    "no verified backup{} in {}",
                    db.map(|d| format!(" of database {d}")).unwrap_or_default(),
                    dir.display()
                ))
            })?;
        return Ok((b.path.clone(), b.manifest.format, Some(b.manifest.clone())));
    }
    let p = PathBuf::from(source);
    let p = if p.is_absolute() || p.exists() {
        p
    } else {
        dir.join(source)
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let format = if name.ends_with(".dump") {
        Format::Custom
    } else if name.ends_with(".gz") {
        Format::Gzip
    } else {
        return Err(fail(format!(
            "{}: expected a .sql.gz or .dump backup",
            p.display()
        )));
    };
    if !p.is_file() {
        return Err(fail(format!("backup {} not found", p.display())));
    }
    let manifest = std::fs::read_to_string(store::manifest_path(&p))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok((p, format, manifest))
}

fn sha256_file(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `db` unless it exists.
pub async fn ensure_database(conn: &ConnParams, db: &str) -> Result<(), Error> {
    let c = conn.connect("postgres").await?;
    let exists = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .map_err(|e| {
            fail(format!(
                "cannot look up database {db}: {}",
                crate::pg::describe(&e)
            ))
        })?
        .is_some();
    if !exists {
        c.batch_execute(&format!("CREATE DATABASE {}", quote_ident(db)))
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot create database {db}: {}",
                    crate::pg::describe(&e)
                ))
            })?;
    }
    Ok(())
}

/// Restores `path` into `into`.
pub async fn restore(
    tools: &Tools,
    conn: &ConnParams,
    path: &Path,
    format: Format,
    manifest: Option<&Manifest>,
    into: &str,
) -> Result<(), Error> {
    if let Some(m) = manifest {
        let p = path.to_path_buf();
        let sum = tokio::task::spawn_blocking(move || sha256_file(&p))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        if sum != m.sha256 {
            return Err(fail(format!(
                "{} does not match its manifest's sha256: the file is damaged",
                path.display()
            )));
        }
    }
    ensure_database(conn, into).await?;
    let mut cmd = match format {
        Format::Custom => {
            let mut c = Command::new(&tools.pg_restore);
            let dbname = format!(
                "dbname='{}'",
                into.replace('\\', "\\\\").replace('\'', "\\'")
            );
            c.args(["--no-password", "--exit-on-error", "--no-owner", "--dbname"])
                .arg(dbname)
                .arg(path);
            c.stdin(Stdio::null());
            c
        }
        Format::Gzip => {
            let mut c = Command::new(&tools.psql);
            c.args(["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1"]);
            c.stdin(Stdio::piped());
            c
        }
    };
    cmd.envs(conn.child_env(into))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let tool = if format == Format::Custom {
        "pg_restore"
    } else {
        "psql"
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start {tool}: {e}")))?;
    let stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut s).await;
        }
        s
    });
    if let Some(mut stdin) = child.stdin.take() {
        let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        let p = path.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            let send = |r| tx.blocking_send(r).is_ok();
            let f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) => return send(Err(e)),
            };
            let mut dec = MultiGzDecoder::new(std::io::BufReader::new(f));
            loop {
                let mut buf = vec![0u8; 64 * 1024];
                match dec.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(n) => {
                        buf.truncate(n);
                        if !send(Ok(buf)) {
                            return false;
                        }
                    }
                    Err(e) => return send(Err(e)),
                }
            }
        });
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            if stdin.write_all(&chunk).await.is_err() {
                break; // psql stopped: its exit status and stderr say why.
            }
        }
        drop(stdin);
        let _ = reader.await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| fail(format!("cannot wait for {tool}: {e}")))?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(fail(format!(
            "{tool} failed restoring {} into {into} ({status}): {}",
            path.display(),
            common::secret::redact(last)
        )));
    }
    Ok(())
}

const TABLES: &str = "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2";

/// Lists the user tables of `db` with their exact row counts.
pub async fn table_counts(conn: &ConnParams, db: &str) -> Result<Vec<(String, i64)>, Error> {
    let c = conn.connect(db).await?;
    let rows = c.query(TABLES, &[]).await.map_err(|e| {
        fail(format!(
            "cannot list tables of {db}: {}",
            crate::pg::describe(&e)
        ))
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (s, t): (String, String) = (r.get(0), r.get(1));
        let q = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&s),
            quote_ident(&t)
        );
        let n: i64 = c
            .query_one(&q, &[])
            .await
            .map_err(|e| fail(format!("cannot count {s}.{t} in {db}: {e}")))?
            .get(0);
        out.push((format!("{s}.{t}"), n));
    }
    Ok(out)
}

/// Drops `db` if it exists.
pub async fn drop_database(conn: &ConnParams, db: &str) -> Result<(), Error> {
    let c = conn.connect("postgres").await?;
    c.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(db)
    ))
    .await
    .map_err(|e| {
        fail(format!(
            "cannot drop database {db}: {}",
            crate::pg::describe(&e)
        ))
    })
}

/// The restore check: restores the backup into a scratch database, compares table names with
/// the source database, returns (tables, rows).
pub async fn check(
    tools: &Tools,
    conn: &ConnParams,
    backup: &Path,
    m: &Manifest,
) -> Result<(usize, i64), Error> {
    let scratch = format!("pgbackup_verify_{}", store::file_prefix(&m.database));
    drop_database(conn, &scratch).await?;
    let result = async {
        restore(tools, conn, backup, m.format, Some(m), &scratch).await?;
        let got = table_counts(conn, &scratch).await?;
        let src = table_counts(conn, &m.database).await?;
        let names = |v: &[(String, i64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let (g, s) = (names(&got), names(&src));
        if let Some(missing) = s.iter().find(|t| !g.contains(t)) {
            return Err(fail(format!(
                "restored copy of {} lacks table {missing} ({} tables restored, {} in the source)",
                m.database,
                g.len(),
                s.len()
            )));
        }
        Ok((got.len(), got.iter().map(|(_, n)| n).sum()))
    }
    .await;
    let _ = drop_database(conn, &scratch).await;
    result
}
