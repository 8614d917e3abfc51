//! Targets: what the user asks waitfor to wait for, parsed from URLs.
//!
//! A target is a URL (`tcp://db:5432`, `postgres://app@db/app?table=public.users`), a bare
//! `host:port` (TCP) or a bare absolute path (a file). Per-target options live in the query
//! (all schemes but http/https, whose query belongs to the request) or in the fragment
//! (`http://api/healthz#status=200-399&contains=ok`). An unknown option is an error, so a typo
//! fails at start (exit 2) instead of waiting forever.
use std::{collections::BTreeMap, path::PathBuf};

use common::Secret;
use url::Url;

use crate::check::{
    http::{HttpOptions, HttpTarget},
    postgres::PgTarget,
};

/// A host, a port and optional credentials from a URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name, percent-decoded.
    pub user: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<Secret>,
}

/// What to check.
#[derive(Debug, Clone)]
pub enum Check {
    /// A TCP connect.
    Tcp(Endpoint),
    /// The name resolves.
    Dns(String),
    /// The file exists (and is not empty).
    File {
        /// Path.
        path: PathBuf,
        /// Require a non-empty file.
        nonempty: bool,
    },
    /// An HTTP(S) request.
    Http(Box<HttpTarget>),
    /// `SELECT 1` and optional tables and migrations.
    Postgres(Box<PgTarget>),
    /// `PING` answered with `PONG`.
    Redis(Endpoint),
    /// The server greeting, and the login when the URL names a user.
    Mysql {
        /// Where and who.
        endpoint: Endpoint,
        /// Database to log in to.
        database: Option<String>,
    },
    /// `Connection.Start`, and the login and vhost when the URL carries credentials.
    Amqp {
        /// Where and who.
        endpoint: Endpoint,
        /// Virtual host.
        vhost: String,
    },
    /// `INFO`, then `CONNECT`/`PING` answered with `PONG`.
    Nats(Endpoint),
    /// `CONNECT` answered by `CONNACK` 0.
    Mqtt(Endpoint),
}

/// One target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given, password redacted: what logs show.
    pub name: String,
    /// What to check.
    pub check: Check,
}

/// Options given in a URL's query and fragment.
#[derive(Debug, Default)]
pub struct Options {
    pairs: BTreeMap<String, String>,
}

impl Options {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `k=v&k2` pairs.
    pub fn add(&mut self, s: &str) {
        for (k, v) in url::form_urlencoded::parse(s.as_bytes()) {
            self.pairs.insert(k.into_owned(), v.into_owned());
        }
    }

    /// Takes an option's value.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.pairs.remove(key)
    }

    /// Takes a boolean option: present without a value means true.
    pub fn take_flag(&mut self, key: &str) -> Result<Option<bool>, String> {
        match self.pairs.remove(key) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(Some(true)),
            Some(v) => common::config::parse_bool(&v)
                .map(Some)
                .map_err(|e| format!("option {key}={v}: {e}")),
        }
    }

    /// Fails on any option left over.
    pub fn finish(self, scheme: &str, known: &str) -> Result<(), String> {
        match self.pairs.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!(
                "unknown option {k:?} for {scheme} (known: {known})"
            )),
        }
    }
}

/// Parses one target. `http` holds the defaults from the `--http-*` flags.
pub fn parse(raw: &str, http: &HttpOptions) -> Result<Target, String> {
    let raw = raw.trim();
    let name = common::secret::redact(raw);
    if raw.is_empty() {
        return Err("empty target".to_string());
    }
    if !raw.contains("://") {
        if raw.starts_with('/') {
            let check = Check::File {
                path: PathBuf::from(raw),
                nonempty: false,
            };
            return Ok(Target { name, check });
        }
        let (host, port) = common::config::parse_host_port(raw).map_err(|e| {
            format!(
                "{e}, or a URL such as tcp://db:5432, postgres://user@db/app, http://api/healthz"
            )
        })?;
        let check = Check::Tcp(Endpoint {
            host,
            port,
            user: None,
            password: None,
        });
        return Ok(Target {
            name: format!("tcp://{name}"),
            check,
        });
    }
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    let scheme = url.scheme().to_ascii_lowercase();
    let mut opts = Options::new();
    if let Some(f) = url.fragment() {
        opts.add(f);
    }
    if !matches!(
        scheme.as_str(),
        "http" | "https" | "postgres" | "postgresql"
    ) {
        if let Some(q) = url.query() {
            opts.add(q);
        }
    }
    let check = match scheme.as_str() {
        "tcp" => {
            opts.finish("tcp", "none")?;
            Check::Tcp(endpoint(&url, None)?)
        }
        "dns" => {
            opts.finish("dns", "none")?;
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or("dns:// needs a name, as in dns://db.prod.svc.cluster.local")?;
            Check::Dns(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
        }
        "file" => {
            let nonempty = opts.take_flag("nonempty")?.unwrap_or(false);
            opts.finish("file", "nonempty")?;
            let path = url.to_file_path().map_err(|()| {
                "file:// needs an absolute path, as in file:///run/ready".to_string()
            })?;
            Check::File { path, nonempty }
        }
        "http" | "https" => Check::Http(Box::new(HttpTarget::parse(url, opts, http)?)),
        "postgres" | "postgresql" => Check::Postgres(Box::new(PgTarget::parse(&url, opts)?)),
        "redis" => {
            opts.finish("redis", "none")?;
            Check::Redis(endpoint(&url, Some(6379))?)
        }
        "mysql" | "mariadb" => {
            opts.finish("mysql", "none")?;
            let database = url
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .filter(|d| !d.is_empty())
                .map(percent_decode);
            Check::Mysql {
                endpoint: endpoint(&url, Some(3306))?,
                database,
            }
        }
        "amqp" => {
            opts.finish("amqp", "none")?;
            let path = url.path();
            let vhost = match path.strip_prefix('/') {
                None | Some("") => "/".to_string(),
                Some(v) => percent_decode(v),
            };
            Check::Amqp {
                endpoint: endpoint(&url, Some(5672))?,
                vhost,
            }
        }
        "nats" => {
            opts.finish("nats", "none")?;
            Check::Nats(endpoint(&url, Some(4222))?)
        }
        "mqtt" => {
            opts.finish("mqtt", "none")?;
            Check::Mqtt(endpoint(&url, Some(1883))?)
        }
        other => {
            return Err(format!(
                "unsupported scheme {other:?} (supported: tcp, http, https, postgres, redis, \
                 mysql, amqp, nats, mqtt, dns, file)"
            ))
        }
    };
    Ok(Target { name, check })
}

/// Host, port and credentials of `url`; `default_port` when the URL has none.
pub fn endpoint(url: &Url, default_port: Option<u16>) -> Result<Endpoint, String> {
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        format!(
            "{}:// needs a host, as in {}://db:1234",
            url.scheme(),
            url.scheme()
        )
    })?;
    let port = url.port().or(default_port).ok_or_else(|| {
        format!(
            "{}:// needs a port, as in {}://{host}:5432",
            url.scheme(),
            url.scheme()
        )
    })?;
    let user = Some(percent_decode(url.username())).filter(|u| !u.is_empty());
    let password = url.password().map(|p| Secret::new(percent_decode(p)));
    Ok(Endpoint {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        user,
        password,
    })
}

/// Decodes `%XX` escapes (not `+`: this is for URL user info and paths).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Target, String> {
        parse(s, &HttpOptions::default())
    }

    #[test]
    fn bare_forms_and_schemes() {
        let t = p("db:5432").unwrap();
        assert_eq!(t.name, "tcp://db:5432");
        assert!(matches!(t.check, Check::Tcp(ref e) if e.host == "db" && e.port == 5432));
        assert!(matches!(
            p("/run/ready").unwrap().check,
            Check::File {
                nonempty: false,
                ..
            }
        ));
        assert!(matches!(
            p("file:///run/ready?nonempty").unwrap().check,
            Check::File { nonempty: true, .. }
        ));
        assert!(matches!(p("dns://db.svc").unwrap().check, Check::Dns(ref h) if h == "db.svc"));
        let t = p("redis://:s%40cret@cache").unwrap();
        assert_eq!(t.name, "redis://:***@cache");
        match t.check {
            Check::Redis(e) => {
                assert_eq!(e.port, 6379);
                assert_eq!(e.password.unwrap().expose(), "s@cret");
            }
            other => panic!("{other:?}"),
        }
        match p("amqp://guest:guest@mq/%2f").unwrap().check {
            Check::Amqp { vhost, .. } => assert_eq!(vhost, "/"),
            other => panic!("{other:?}"),
        }
        match p("amqp://mq").unwrap().check {
            Check::Amqp { vhost, .. } => assert_eq!(vhost, "/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_targets_say_why() {
        assert!(p("db").unwrap_err().contains("HOST:PORT"));
        assert!(p("tcp://db").unwrap_err().contains("needs a port"));
        assert!(p("ftp://x:21").unwrap_err().contains("unsupported scheme"));
        assert!(p("redis://cache?tls=1")
            .unwrap_err()
            .contains("unknown option \"tls\""));
        assert!(p("file:///x?nonempty=maybe")
            .unwrap_err()
            .contains("nonempty"));
        assert!(p("http://[::1").unwrap_err().contains("not a valid URL"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
