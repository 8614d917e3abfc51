//! Name resolution and TCP connects for every check.
//!
//! A hosts-style override file (`--hosts-file` / `WAITFOR_HOSTS_FILE`, lines of `IP NAME...`)
//! is read at each attempt and consulted before the system resolver, so tests (and odd
//! set-ups) can make a name start resolving while waitfor runs. A name that does not resolve is
//! a [`FailKind::Resolve`] failure, retried like any other.
use std::{
    io,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use tokio::net::TcpStream;

use crate::outcome::{FailKind, Failure};

/// Resolves host names, consulting the override file first.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts_file: Option<Arc<PathBuf>>,
}

impl Resolver {
    /// A resolver with an optional hosts-style override file.
    pub fn new(hosts_file: Option<PathBuf>) -> Self {
        Resolver {
            hosts_file: hosts_file.map(Arc::new),
        }
    }

    /// The addresses of `host` (a name or an IP literal) at `port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(ips) = self.lookup_override(bare) {
            return Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect());
        }
        match tokio::net::lookup_host((bare, port)).await {
            Ok(addrs) => {
                let v: Vec<SocketAddr> = addrs.collect();
                if v.is_empty() {
                    Err(not_resolving(bare, "no addresses"))
                } else {
                    Ok(v)
                }
            }
            Err(e) => Err(not_resolving(bare, &e.to_string())),
        }
    }

    /// The override file's addresses for `name`, if it lists the name.
    fn lookup_override(&self, name: &str) -> Option<Vec<IpAddr>> {
        let path = self.hosts_file.as_ref()?;
        let text = std::fs::read_to_string(path.as_path()).ok()?;
        let ips: Vec<IpAddr> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let ip: IpAddr = words.next()?.parse().ok()?;
                words.any(|w| w.eq_ignore_ascii_case(name)).then_some(ip)
            })
            .collect();
        (!ips.is_empty()).then_some(ips)
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

/// Lets reqwest resolve through the same override.
impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let me = self.clone();
        Box::pin(async move {
            match me.resolve(name.as_str(), 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(f) => Err(Box::new(io::Error::other(f.message))
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
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
