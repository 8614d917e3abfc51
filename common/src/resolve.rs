//! Name resolution for agents that connect out (ambassador, waitfor): IP literals as they are,
//! then an optional hosts-style file (`IP NAME...` lines, re-read at each resolution, so tests and
//! operators can move a name while the agent runs), then the system resolver.
//!
//! Agents re-resolve on their own schedule (a DNS TTL, each attempt); nothing is cached here, so
//! DNS-based failover and Kubernetes Service changes are seen.
use std::{
    io,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

/// Resolves host names: IP literals, then the hosts file, then the system resolver.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts_file: Option<PathBuf>,
}

impl Resolver {
    /// A resolver that looks in `hosts_file` (if any) before DNS.
    pub fn new(hosts_file: Option<PathBuf>) -> Self {
        Resolver { hosts_file }
    }

    /// The addresses of `host:port`, in the order the source gave them.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(path) = &self.hosts_file {
            let ips = lookup_hosts_file(path, host).await?;
            if !ips.is_empty() {
                return Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect());
            }
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolved to no address"),
            ));
        }
        Ok(addrs)
    }
}

/// The addresses `path` lists for `host` (empty when the file is missing or does not list it).
async fn lookup_hosts_file(path: &Path, host: &str) -> io::Result<Vec<IpAddr>> {
    let path = path.to_path_buf();
    let host = host.to_ascii_lowercase();
    let text = match tokio::task::spawn_blocking(move || std::fs::read_to_string(&path))
        .await
        .map_err(io::Error::other)?
    {
        Ok(text) => text,
        // The override is optional: a file not there (yet) lists nothing.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse_hosts(&text, &host))
}

/// The addresses a hosts-format `text` lists for `host` (case-insensitive), in file order.
pub fn parse_hosts(text: &str, host: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(|f| f.parse::<IpAddr>().ok()) else {
            continue;
        };
        if fields.any(|name| name.eq_ignore_ascii_case(host)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines() {
        let text = "# comment\n127.0.0.1 localhost db\n10.0.0.7  db.prod DB2 # x\nbad line\n";
        assert_eq!(
            parse_hosts(text, "db"),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            parse_hosts(text, "db2"),
            vec!["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
        assert!(parse_hosts(text, "nope").is_empty());
    }

    #[tokio::test]
    async fn literals_and_hosts_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.9 moving.test\n").unwrap();
        let r = Resolver::new(Some(path.clone()));
        assert_eq!(
            r.resolve("::1", 5).await.unwrap(),
            vec!["[::1]:5".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("moving.test", 5).await.unwrap(),
            vec!["127.0.0.9:5".parse().unwrap()]
        );
        std::fs::write(&path, "127.0.0.10 moving.test\n").unwrap();
        assert_eq!(
            r.resolve("moving.test", 5).await.unwrap(),
            vec!["127.0.0.10:5".parse().unwrap()]
        );
    }
}
