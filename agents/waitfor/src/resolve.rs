//! Name resolution and TCP connects for every check.
//!
//! A hosts-style override file (`--hosts-file` / `WAITFOR_HOSTS_FILE`, lines of `IP NAME...`)
//! is read at each attempt and consulted before the system resolver, so tests (and odd
//! set-ups) can make a name start resolving while waitfor runs. A name that does not resolve is
//! a [`FailKind::Resolve`] failure, retried like any other.
use std::{io, net::SocketAddr, path::PathBuf};

use tokio::net::TcpStream;

use crate::outcome::{FailKind, Failure};

/// Resolves host names through `common::resolve` (override file first, then DNS), turning a
/// name that does not resolve into a retryable [`FailKind::Resolve`] failure.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    inner: common::resolve::Resolver,
}

impl Resolver {
    /// A resolver with an optional hosts-style override file.
    pub fn new(hosts_file: Option<PathBuf>) -> Self {
        Resolver {
            inner: common::resolve::Resolver::new(hosts_file),
        }
    }

    /// The addresses of `host` (a name or an IP literal) at `port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.inner
            .resolve(bare, port)
            .await
            .map_err(|e| not_resolving(bare, &e.to_string()))
    }

    /// Connects to `host:port`, trying each address in turn; the error of the last one wins.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, Failure> {
        let addrs = self.resolve(host, port).await?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, e) = last.expect("resolve returns at least one address");
        Err(connect_failure(addr, &e))
    }
}

fn not_resolving(name: &str, detail: &str) -> Failure {
    Failure::new(
        FailKind::Resolve,
        format!("name {name} does not resolve ({detail})"),
    )
}

fn connect_failure(addr: SocketAddr, e: &io::Error) -> Failure {
    let what = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::TimedOut => "connect timed out".to_string(),
        _ => e.to_string(),
    };
    Failure::new(
        FailKind::Connect,
        format!("cannot connect to {addr}: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn override_file_is_read_at_each_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "# nothing yet\n").unwrap();
        let r = Resolver::new(Some(path.clone()));
        let err = r.resolve("db.invalid", 5432).await.unwrap_err();
        assert_eq!(err.kind, FailKind::Resolve);
        std::fs::write(&path, "127.0.0.7 other db.invalid # late\n").unwrap();
        let addrs = r.resolve("db.invalid", 5432).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.7:5432".parse().unwrap()]);
        assert_eq!(
            r.resolve("[::1]", 1).await.unwrap(),
            vec!["[::1]:1".parse().unwrap()]
        );
    }
}
