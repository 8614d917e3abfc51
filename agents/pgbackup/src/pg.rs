//! Talking to PostgreSQL: the connection parameters (libpq env, URL, password file, .pgpass),
//! the environment handed to pg_dump and friends (the password travels there, never on a
//! command line), the control connection (server version, database list, scratch databases)
//! and the client tools' versions.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::Secret;

use common::pg_tls as tls;

use crate::Error;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    pub sslmode: Option<String>,
    /// sslrootcert, sslcert, sslkey (from the URL, overridden by explicit options).
    pub ssl: tls::SslFiles,
    /// The database named in the URL, if any.
    pub url_dbname: Option<String>,
}

impl ConnParams {
    /// Merges explicit values over the URL's, then defaults.
    pub fn resolve(
        url: Option<&Secret>,
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        password: Option<Secret>,
        passfile: Option<PathBuf>,
        sslmode: Option<String>,
    ) -> Result<Self, Error> {
        let mut p = ConnParams {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            passfile,
            sslmode: None,
            ssl: tls::SslFiles::default(),
            url_dbname: None,
        };
        if let Some(url) = url {
            let bad = |why: &str| Error::Config {
                option: "--url",
                value: common::secret::redact(url.expose()),
                expected: format!("a URL such as postgres://user:password@host:5432/db ({why})"),
            };
            let u = url::Url::parse(url.expose()).map_err(|e| bad(&e.to_string()))?;
            if u.scheme() != "postgres" && u.scheme() != "postgresql" {
                return Err(bad("the scheme must be postgres or postgresql"));
            }
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if let Some(h) = u.host_str().filter(|h| !h.is_empty()) {
                p.host = h.trim_start_matches('[').trim_end_matches(']').to_string();
            }
            if let Some(port) = u.port() {
                p.port = port;
            }
            if !u.username().is_empty() {
                p.user = dec(u.username());
            }
            if let Some(pw) = u.password() {
                p.password = Some(Secret::new(dec(pw)));
            }
            let db = u.path().trim_start_matches('/');
            if !db.is_empty() {
                p.url_dbname = Some(dec(db));
            }
            for (k, v) in u.query_pairs() {
                match &*k {
                    "sslmode" => p.sslmode = Some(v.into_owned()),
                    "sslrootcert" => p.ssl.rootcert = Some(v.into_owned()),
                    "sslcert" => p.ssl.cert = Some(PathBuf::from(&*v)),
                    "sslkey" => p.ssl.key = Some(PathBuf::from(&*v)),
                    _ => {}
                }
            }
        }
        if let Some(h) = host.filter(|h| !h.is_empty()) {
            p.host = h;
        }
        if let Some(port) = port {
            p.port = port;
        }
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            p.user = u;
        }
        if password.is_some() {
            p.password = password;
        }
        if sslmode.is_some() {
            p.sslmode = sslmode;
        }
        if let Some(m) = &p.sslmode {
            const MODES: [&str; 6] = [
                "disable",
                "allow",
                "prefer",
                "require",
                "verify-ca",
                "verify-full",
            ];
            if !MODES.contains(&m.as_str()) {
                return Err(Error::Config {
                    option: "--sslmode",
                    value: m.clone(),
                    expected: "disable, allow, prefer, require, verify-ca or verify-full".into(),
                });
            }
        }
        Ok(p)
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The password: given, or looked up in the password file.
    pub fn effective_password(&self, db: &str) -> Option<Secret> {
        if self.password.is_some() {
            return self.password.clone();
        }
        let path = self
            .passfile
            .clone()
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
        let text = std::fs::read_to_string(path).ok()?;
        pgpass_lookup(&text, &self.host, self.port, db, &self.user).map(Secret::new)
    }

    /// The libpq environment for a client tool connecting to `db`.
    pub fn child_env(&self, db: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", db.to_string()),
            ("PGAPPNAME", "pgbackup".to_string()),
        ];
        if let Some(pw) = &self.password {
            env.push(("PGPASSWORD", pw.expose().to_string()));
        }
        if let Some(pf) = &self.passfile {
            env.push(("PGPASSFILE", pf.display().to_string()));
        }
        if let Some(m) = &self.sslmode {
            env.push(("PGSSLMODE", m.clone()));
        }
        if let Some(f) = &self.ssl.rootcert {
            env.push(("PGSSLROOTCERT", f.clone()));
        }
        if let Some(f) = &self.ssl.cert {
            env.push(("PGSSLCERT", f.display().to_string()));
        }
        if let Some(f) = &self.ssl.key {
            env.push(("PGSSLKEY", f.display().to_string()));
        }
        env
    }

    /// Opens a control connection to `db`, with TLS as sslmode says (see [`tls`]).
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, Error> {
        let connect_error = |error: String| Error::Connect {
            addr: self.addr(),
            db: db.to_string(),
            error,
        };
        let mode = self.sslmode.as_deref().unwrap_or("prefer");
        let (ssl_mode, verify) = tls::plan(Some(mode), &self.ssl).map_err(connect_error)?;
        let config = tls::client_config(verify, &self.ssl)
            .map_err(|e| connect_error(format!("cannot set up TLS for sslmode {mode}: {e}")))?;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(db)
            .application_name("pgbackup")
            .connect_timeout(Duration::from_secs(10))
            .ssl_mode(ssl_mode);
        if let Some(pw) = self.effective_password(db) {
            cfg.password(pw.expose());
        }
        let (client, conn) = cfg.connect(tls::MakeRustls(config)).await.map_err(|e| {
            let mut error = common::secret::redact(&describe(&e));
            if ssl_mode == tokio_postgres::config::SslMode::Require
                && error.contains("server does not support TLS")
            {
                error.push_str(&format!(
                    " (sslmode {mode} needs TLS: enable ssl on the server, or use sslmode prefer)"
                ));
            } else if error.contains("invalid peer certificate") {
                error.push_str(&format!(
                    " (sslmode {mode}: the server's certificate was refused; check --sslrootcert / PGSSLROOTCERT, and for verify-full that --host is a name in the certificate)"
                ));
            }
            connect_error(error)
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

/// An error with the server's message when there is one (tokio-postgres says "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// Finds the password in `.pgpass` text (`host:port:db:user:password`, `*` wildcards,
/// `\:` and `\\` escapes).
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let port = port.to_string();
        let ok = |f: &str, v: &str| f == "*" || f == v;
        if ok(&fields[0], host)
            && ok(&fields[1], &port)
            && ok(&fields[2], db)
            && ok(&fields[3], user)
        {
            return fields.pop();
        }
    }
    None
}

/// The server's version: number (150020) and text (15.20).
#[derive(Debug, Clone)]
pub struct ServerVersion {
    pub num: u32,
    pub text: String,
}

impl ServerVersion {
    /// The major version, comparable across numbering schemes (15 as 1500, 9.6 as 906).
    pub fn major(&self) -> u32 {
        if self.num >= 100_000 {
            self.num / 10_000 * 100
        } else {
            self.num / 100
        }
    }
}

/// Asks the server for its version.
pub async fn server_version(
    client: &tokio_postgres::Client,
) -> Result<ServerVersion, tokio_postgres::Error> {
    let num: String = client
        .query_one("SHOW server_version_num", &[])
        .await?
        .get(0);
    let text: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    Ok(ServerVersion {
        num: num.trim().parse().unwrap_or(0),
        text: text.split_whitespace().next().unwrap_or("").to_string(),
    })
}

/// Every database that accepts connections (templates excluded).
pub async fn list_databases(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A client tool's version from its `--version` line (`pg_dump (PostgreSQL) 15.20 (Debian)`):
/// the text and the major number (1500 for 15, 906 for 9.6).
pub fn parse_tool_version(line: &str) -> Option<(String, u32)> {
    let v = line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    let major = parts.next()??;
    let major = if major >= 10 {
        major * 100
    } else {
        major * 100 + parts.next().flatten().unwrap_or(0)
    };
    Some((v.to_string(), major))
}

/// Formats a major number the way PostgreSQL writes it (15, 9.6).
pub fn major_text(major: u32) -> String {
    if major % 100 == 0 {
        (major / 100).to_string()
    } else {
        format!("{}.{}", major / 100, major % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_versions() {
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(("15.20".into(), 1500))
        );
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 9.6.24"),
            Some(("9.6.24".into(), 906))
        );
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 17beta1"),
            Some(("17beta1".into(), 1700))
        );
        assert_eq!(parse_tool_version("nonsense"), None);
        let v = ServerVersion {
            num: 150020,
            text: "15.20".into(),
        };
        assert_eq!(v.major(), 1500);
        assert_eq!(major_text(1500), "15");
        assert_eq!(
            ServerVersion {
                num: 90624,
                text: String::new()
            }
            .major(),
            906
        );
        assert_eq!(major_text(906), "9.6");
    }

    #[test]
    fn urls_and_overrides() {
        let url = Secret::new("postgres://app:p%40ss@db.prod:6543/myapp?sslmode=require");
        let p = ConnParams::resolve(Some(&url), None, None, None, None, None, None).unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.user.as_str()),
            ("db.prod", 6543, "app")
        );
        assert_eq!(p.password.unwrap().expose(), "p@ss");
        assert_eq!(p.url_dbname.as_deref(), Some("myapp"));
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        let p = ConnParams::resolve(
            Some(&url),
            Some("other".into()),
            Some(5432),
            None,
            None,
            None,
            Some("disable".into()),
        )
        .unwrap();
        assert_eq!((p.host.as_str(), p.port), ("other", 5432));
        let err = ConnParams::resolve(
            Some(&Secret::new("mysql://u:topsecret@h/x")),
            None,
            None,
            None,
            None,
            None,
            None,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        assert!(
            ConnParams::resolve(None, None, None, None, None, None, Some("maybe".into())).is_err()
        );
    }

    #[test]
    fn pgpass() {
        let text = "# comment\nother:5432:*:app:nope\ndb:*:*:app:s3\\:cret\n";
        assert_eq!(
            pgpass_lookup(text, "db", 5432, "x", "app").as_deref(),
            Some("s3:cret")
        );
        assert_eq!(pgpass_lookup(text, "db", 5432, "x", "bob"), None);
    }
}
