//! `postgres://` (and `postgresql://`): log in with tokio-postgres and run `SELECT 1`; then,
//! optionally, wait for tables and for a migration version.
//!
//! waitfor's own query options (removed before the URL reaches tokio-postgres, which keeps the
//! rest: `sslmode`, `application_name`, ...):
//! - `table=schema.name` (repeatable): the table (or view) exists (`to_regclass`).
//! - `migration_table=schema.name`: the migration tool's table has a clean, applied row;
//!   `min_version=V` also asks for a version of at least V. Versions compare part by part as
//!   numbers (`20240101120000`, `1.10` > `1.9`). Rows with `dirty = true` (golang-migrate) make
//!   the target not ready; rows with `success = false` (Flyway, sqlx) are ignored.
//!   `migration_column=version_num` names another version column (Alembic).
//!
//! Without a password in the URL, `PGPASSWORD` is used; without a user, `PGUSER` or `postgres`.
//!
//! TLS: `common::pg_tls` (shared with pgbackup), libpq's `sslmode` semantics over rustls
//! (`sslmode=` in the URL, else `PGSSLMODE`; default `prefer`): `disable` never; `prefer` when
//! the server offers it, unverified; `require` always, verified against `sslrootcert` when one
//! is given; `verify-ca` the chain; `verify-full` the chain and the host name. `sslrootcert`,
//! `sslcert`, `sslkey` come from the URL or `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`.
use std::{cmp::Ordering, str::FromStr, sync::Arc};

use common::pg_tls::{self, RustlsConnect, SslFiles};
use tokio_postgres::{
    config::{Host, SslMode},
    error::SqlState,
    Config, NoTls,
};
use url::Url;

use crate::{
    outcome::{CheckResult, Failure},
    resolve::Resolver,
    target::Options,
};

/// A PostgreSQL target.
#[derive(Debug, Clone)]
pub struct PgTarget {
    config: Config,
    host: String,
    port: u16,
    tables: Vec<String>,
    migration: Option<Migration>,
    /// The TLS configuration, unless `sslmode=disable`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, Clone)]
struct Migration {
    table: String,
    column: String,
    min_version: Option<String>,
}

/// Checks `schema.name` (or `name`) so it can be quoted safely.
fn identifier(option: &str, s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split('.').count() <= 2
        && s.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "option {option}={s}: expected a table name such as public.users or users"
        ))
    }
}

fn quote(ident: &str) -> String {
    ident
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

impl PgTarget {
    /// Splits waitfor's options from the connection string and parses the rest.
    pub fn parse(url: &Url, mut o: Options) -> Result<Self, String> {
        let mut conn = url.clone();
        conn.set_fragment(None);
        let mut tables = Vec::new();
        let mut mig_table = None;
        let mut column = None;
        let mut min_version = None;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut sslmode = None;
        let mut files = SslFiles {
            rootcert: env("PGSSLROOTCERT"),
            cert: env("PGSSLCERT").map(Into::into),
            key: env("PGSSLKEY").map(Into::into),
        };
        let mut rest = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => sslmode = Some(v.into_owned()),
                "sslrootcert" => files.rootcert = Some(v.into_owned()),
                "sslcert" => files.cert = Some(v.as_ref().into()),
                "sslkey" => files.key = Some(v.as_ref().into()),
                "table" => tables.push(identifier("table", &v)?),
                "migration_table" => mig_table = Some(identifier("migration_table", &v)?),
                "migration_column" => column = Some(identifier("migration_column", &v)?),
                "min_version" => min_version = Some(v.into_owned()),
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        if let Some(t) = o.take("table") {
            tables.push(identifier("table", &t)?);
        }
        o.finish(
            "postgres",
            "table, migration_table, migration_column, min_version",
        )?;
        if mig_table.is_none() && (min_version.is_some() || column.is_some()) {
            return Err(
                "min_version and migration_column need migration_table=schema.table".to_string(),
            );
        }
        if rest.is_empty() {
            conn.set_query(None);
        } else {
            conn.query_pairs_mut().clear().extend_pairs(rest);
        }
        let mut config = Config::from_str(conn.as_str()).map_err(|e| {
            format!(
                "not a valid PostgreSQL URL: {}",
                common::secret::redact(&e.to_string())
            )
        })?;
        let sslmode = sslmode.or_else(|| env("PGSSLMODE"));
        let (mode, verify) = pg_tls::plan(sslmode.as_deref(), &files).map_err(|e| {
            format!("{e}: expected disable, allow, prefer, require, verify-ca or verify-full")
        })?;
        config.ssl_mode(mode);
        let tls = match mode {
            SslMode::Disable => None,
            _ => Some(pg_tls::client_config(verify, &files)?),
        };
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(_) => {
                return Err("unix socket hosts are not supported; give a TCP host".to_string())
            }
            None => std::env::var("PGHOST").unwrap_or_else(|_| "localhost".to_string()),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        if config.get_user().is_none() {
            config.user(std::env::var("PGUSER").unwrap_or_else(|_| "postgres".to_string()));
        }
        if config.get_password().is_none() {
            if let Ok(pw) = std::env::var("PGPASSWORD") {
                config.password(pw);
            }
        }
        Ok(PgTarget {
            config,
            host,
            port,
            tables,
            migration: mig_table.map(|table| Migration {
                table,
                column: column.unwrap_or_else(|| "version".to_string()),
                min_version,
            }),
            tls,
        })
    }

    /// Connects, logs in, runs the queries.
    pub async fn check(&self, resolver: &Resolver) -> CheckResult {
        let stream = resolver.connect(&self.host, self.port).await?;
        let (client, driver) = match &self.tls {
            None => {
                let (client, conn) = self
                    .config
                    .connect_raw(stream, NoTls)
                    .await
                    .map_err(|e| pg_failure(&e))?;
                (client, tokio::spawn(async move { drop(conn.await) }))
            }
            Some(config) => {
                let tls = RustlsConnect::new(config.clone(), &self.host)
                    .map_err(|e| Failure::not_ready(format!("TLS: {e}")))?;
                let (client, conn) = self
                    .config
                    .connect_raw(stream, tls)
                    .await
                    .map_err(|e| pg_failure(&e))?;
                (client, tokio::spawn(async move { drop(conn.await) }))
            }
        };
        let result = self.queries(&client).await;
        drop(client);
        let _ = driver.await;
        result
    }

    async fn queries(&self, client: &tokio_postgres::Client) -> CheckResult {
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| pg_failure(&e))?;
        for t in &self.tables {
            let row = client
                .query_one("SELECT to_regclass($1::text)::text", &[t])
                .await
                .map_err(|e| pg_failure(&e))?;
            let found: Option<String> = row.get(0);
            if found.is_none() {
                return Err(Failure::not_ready(format!("table {t} does not exist yet")));
            }
        }
        if let Some(m) = &self.migration {
            let sql = format!("SELECT row_to_json(m)::text FROM {} m", quote(&m.table));
            let rows = client.query(&sql, &[]).await.map_err(|e| pg_failure(&e))?;
            let rows: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            migration_state(&rows, m)?;
        }
        Ok(())
    }
}

/// Decides from the migration table's rows (as JSON) whether the wanted version is applied.
fn migration_state(rows: &[String], m: &Migration) -> CheckResult {
    let mut best: Option<String> = None;
    for r in rows {
        let v: serde_json::Value = serde_json::from_str(r).unwrap_or_default();
        let version = match &v[&m.column] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => continue,
            other => other.to_string(),
        };
        if v["dirty"] == serde_json::Value::Bool(true) {
            return Err(Failure::not_ready(format!(
                "migration {version} in {} is dirty (failed or still running)",
                m.table
            )));
        }
        if v["success"] == serde_json::Value::Bool(false) {
            continue;
        }
        if best
            .as_deref()
            .is_none_or(|b| version_cmp(&version, b) == Ordering::Greater)
        {
            best = Some(version);
        }
    }
    match (best, &m.min_version) {
        (None, _) => Err(Failure::not_ready(format!(
            "no migration applied in {} yet",
            m.table
        ))),
        (Some(have), Some(want)) if version_cmp(&have, want) == Ordering::Less => Err(
            Failure::not_ready(format!("migration version {have} is older than {want}")),
        ),
        _ => Ok(()),
    }
}

/// Compares versions part by part: runs of digits as numbers, the rest as text.
fn version_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out.into_iter()
            .filter(|(d, p)| *d || p.chars().any(char::is_alphanumeric))
            .collect()
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Classifies a tokio-postgres error.
fn pg_failure(e: &tokio_postgres::Error) -> Failure {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let msg = format!("{} ({})", db.message(), code.code());
        return if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Failure::auth(msg)
        } else if *code == SqlState::UNDEFINED_TABLE {
            Failure::not_ready(format!("migration table missing: {msg}"))
        } else {
            // Starting up (57P03), too many connections (53300), no such database (3D000)...
            Failure::not_ready(msg)
        };
    }
    let text = common::secret::redact(&e.to_string());
    if text.contains("password missing") {
        return Failure::auth(
            "the server asks for a password and none was given (URL or PGPASSWORD)",
        );
    }
    match std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) => Failure::io("postgres", io),
        None => Failure::protocol(format!("postgres: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> Result<PgTarget, String> {
        let url = Url::parse(s).unwrap();
        let mut o = Options::new();
        if let Some(f) = url.fragment() {
            o.add(f);
        }
        PgTarget::parse(&url, o)
    }

    #[test]
    fn parses_own_options_and_keeps_the_rest() {
        let t = target("postgres://app:pw@db:6543/app?sslmode=disable&table=public.users&migration_table=schema_migrations&min_version=42").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("db", 6543));
        assert_eq!(t.tables, vec!["public.users"]);
        assert_eq!(t.migration.unwrap().min_version.as_deref(), Some("42"));
        assert_eq!(t.config.get_dbname(), Some("app"));
        assert!(target("postgres://db/x?table=users;drop")
            .unwrap_err()
            .contains("table=users;drop"));
        assert!(target("postgres://db/x?min_version=3")
            .unwrap_err()
            .contains("migration_table"));
        let t = target("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert!(t.tls.is_some());
        assert!(target("postgres://db/x?sslmode=disable")
            .unwrap()
            .tls
            .is_none());
        // As libpq: a root certificate is used by require, verify-ca and verify-full only.
        assert!(target("postgres://db/x?sslrootcert=/nonexistent/root.crt").is_ok());
        let e = target("postgres://db/x?sslmode=verify-ca&sslrootcert=/nonexistent/root.crt")
            .unwrap_err();
        assert!(e.contains("/nonexistent/root.crt"), "{e}");
        assert!(target("postgres://db/x?sslmode=verify-full").is_err());
        assert!(target("postgres://db/x?bogus=1").is_err());
    }

    #[test]
    fn versions_and_migration_rows() {
        assert_eq!(version_cmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(
            version_cmp("20240101120000", "20231231000000"),
            Ordering::Greater
        );
        assert_eq!(version_cmp("007", "7"), Ordering::Equal);
        let m = Migration {
            table: "schema_migrations".into(),
            column: "version".into(),
            min_version: Some("3".into()),
        };
        assert!(migration_state(&[r#"{"version":3,"dirty":false}"#.into()], &m).is_ok());
        let e = migration_state(&[r#"{"version":2,"dirty":false}"#.into()], &m).unwrap_err();
        assert!(e.message.contains("older than 3"), "{e}");
        let e = migration_state(&[r#"{"version":3,"dirty":true}"#.into()], &m).unwrap_err();
        assert!(e.message.contains("dirty"), "{e}");
        let rows = [
            r#"{"version":"4","success":false}"#.into(),
            r#"{"version":"2","success":true}"#.into(),
        ];
        assert!(migration_state(&rows, &m).is_err());
        assert!(migration_state(&[], &m)
            .unwrap_err()
            .message
            .contains("no migration"));
    }
}
