//! The checks: one attempt at a target, answering ready or why not.
//!
//! The simple ones live here (TCP connect, name resolves, file exists); each protocol has its
//! own module. A [`Probe`] is a target prepared for checking (its HTTP client and TLS configuration
//! built once).
pub mod amqp;
pub mod http;
pub mod mqtt;
pub mod mysql;
pub mod nats;
pub mod postgres;
pub mod redis;

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{
    outcome::{CheckResult, FailKind, Failure},
    resolve::Resolver,
    target::{Check, Target},
};

/// A target ready to be checked.
#[derive(Debug)]
pub struct Probe {
    /// The target.
    pub target: Target,
    resolver: Resolver,
    http: Option<http::HttpClient>,
}

impl Probe {
    /// Prepares `target`; fails (bad usage) when its HTTP client cannot be built (bad CA file).
    pub fn new(target: Target, resolver: Resolver) -> Result<Self, String> {
        let http = match &target.check {
            Check::Http(h) => Some(h.client(&resolver)?),
            _ => None,
        };
        Ok(Probe {
            target,
            resolver,
            http,
        })
    }

    /// One attempt.
    pub async fn check(&self) -> CheckResult {
        let r = &self.resolver;
        match &self.target.check {
            Check::Tcp(e) => r.connect(&e.host, e.port).await.map(drop),
            Check::Dns(name) => r.resolve(name, 0).await.map(drop),
            Check::File { path, nonempty } => check_file(path, *nonempty),
            Check::Http(h) => match &self.http {
                Some(client) => h.check(client).await,
                None => Err(Failure::protocol("internal: no HTTP client")),
            },
            Check::Postgres(pg) => pg.check(r).await,
            Check::Redis(e) => redis::check(r, e).await,
            Check::Mysql { endpoint, database } => {
                mysql::check(r, endpoint, database.as_deref()).await
            }
            Check::Amqp { endpoint, vhost } => amqp::check(r, endpoint, vhost).await,
            Check::Nats(e) => nats::check(r, e).await,
            Check::Mqtt(e) => mqtt::check(r, e).await,
        }
    }
}

fn check_file(path: &Path, nonempty: bool) -> CheckResult {
    let missing = |m: String| Err(Failure::new(FailKind::Missing, m));
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing(format!("{} does not exist", path.display()))
        }
        Err(e) => missing(format!("cannot read {}: {e}", path.display())),
        Ok(m) if nonempty && m.is_dir() => {
            if std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()) {
                Ok(())
            } else {
                missing(format!("directory {} is empty", path.display()))
            }
        }
        Ok(m) if nonempty && m.len() == 0 => missing(format!("{} is empty", path.display())),
        Ok(_) => Ok(()),
    }
}

/// Reads at least `want` bytes into `buf` (appending); fails if the peer closes first.
pub(crate) async fn read_at_least<R: AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut Vec<u8>,
    want: usize,
    what: &str,
) -> Result<(), Failure> {
    let mut chunk = [0u8; 4096];
    while buf.len() < want {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| Failure::io(what, &e))?;
        if n == 0 {
            return Err(Failure::protocol(format!(
                "{what}: the server closed the connection{}",
                if buf.is_empty() { "" } else { " mid-answer" }
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Reads one `\r\n`-terminated line (at most 64 KiB), without the terminator.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut Vec<u8>,
    what: &str,
) -> Result<String, Failure> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Ok(line);
        }
        if buf.len() > 64 * 1024 {
            return Err(Failure::protocol(format!("{what}: line too long")));
        }
        let want = buf.len() + 1;
        read_at_least(s, buf, want, what).await?;
    }
}

/// Printable start of unexpected bytes, for messages.
pub(crate) fn snippet(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(&b[..b.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        assert_eq!(check_file(&f, false).unwrap_err().kind, FailKind::Missing);
        std::fs::write(&f, "").unwrap();
        assert!(check_file(&f, false).is_ok());
        assert!(check_file(&f, true)
            .unwrap_err()
            .message
            .contains("is empty"));
        std::fs::write(&f, "x").unwrap();
        assert!(check_file(&f, true).is_ok());
        assert!(check_file(dir.path(), true).is_ok());
    }
}
