//! The ambassador's options (flags and env) and their validation into [`Settings`]: routes
//! from `--route`, a routes file, or the guide's `UPSTREAM_HOST` + `UPSTREAM_PORT`.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use common::config::{
    parse_bool, parse_byte_size, parse_duration, parse_host_port, parse_listen_addr,
};

use crate::Error;

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "ambassador")]
pub struct Config {
    /// A route: LISTEN=UPSTREAM[,UPSTREAM...], e.g. 127.0.0.1:5432=db.prod:5432,db.replica:5432.
    /// Repeatable; in env, separate routes with `;`.
    #[arg(
        long = "route",
        env = "AMBASSADOR_ROUTES",
        value_name = "LISTEN=HOST:PORT,...",
        value_delimiter = ';'
    )]
    pub routes: Vec<String>,

    /// A file of routes, one LISTEN=UPSTREAM,... per line (`#` starts a comment).
    #[arg(long, env = "AMBASSADOR_ROUTES_FILE", value_name = "PATH")]
    pub routes_file: Option<PathBuf>,

    /// Single-route mode (the guide's ambassador): the real upstream host.
    #[arg(long, env = "UPSTREAM_HOST", value_name = "HOST")]
    pub upstream_host: Option<String>,

    /// Single-route mode: the upstream port.
    #[arg(long, env = "UPSTREAM_PORT", value_name = "PORT")]
    pub upstream_port: Option<u16>,

    /// Single-route mode: where to listen. Default 127.0.0.1:<UPSTREAM_PORT> (the app in the pod
    /// connects to localhost); use 0.0.0.0:PORT to accept from outside the pod (TLS termination).
    #[arg(long, env = "AMBASSADOR_LISTEN", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub listen: Option<SocketAddr>,

    /// How to pick an upstream: round-robin or least-connections.
    #[arg(
        long,
        env = "AMBASSADOR_BALANCE",
        default_value = "round-robin",
        value_name = "POLICY"
    )]
    pub balance: Balance,

    /// Time limit for one TCP connect (and TLS handshake) to an upstream.
    #[arg(long, env = "AMBASSADOR_CONNECT_TIMEOUT", default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Close a connection after this long without a byte in either direction (0 = never).
    #[arg(long, env = "AMBASSADOR_IDLE_TIMEOUT", default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Maximum concurrent connections per route (0 = unlimited).
    #[arg(
        long,
        env = "AMBASSADOR_MAX_CONNECTIONS",
        default_value = "0",
        value_name = "N"
    )]
    pub max_connections: usize,

    /// What happens to a connection over --max-connections: wait for a slot, or refuse (close).
    #[arg(
        long,
        env = "AMBASSADOR_ON_LIMIT",
        default_value = "wait",
        value_name = "WAIT|REFUSE"
    )]
    pub on_limit: OnLimit,

    /// Re-resolve upstream host names this often (DNS failover, Service changes).
    #[arg(long, env = "AMBASSADOR_DNS_TTL", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub dns_ttl: Duration,

    /// A hosts file (IP NAME...) consulted before DNS, re-read at each resolution.
    #[arg(long, env = "AMBASSADOR_HOSTS_FILE", value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,

    /// Eject an upstream after this many failed connects in a row (passive health).
    #[arg(
        long,
        env = "AMBASSADOR_EJECT_AFTER",
        default_value = "3",
        value_name = "N"
    )]
    pub eject_after: u32,

    /// First ejection cool-down; doubles each time the upstream fails again, up to the max.
    #[arg(long, env = "AMBASSADOR_EJECT_COOLDOWN", default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub eject_cooldown: Duration,

    /// Longest ejection cool-down.
    #[arg(long, env = "AMBASSADOR_EJECT_COOLDOWN_MAX", default_value = "2m", value_name = "DURATION", value_parser = parse_duration)]
    pub eject_cooldown_max: Duration,

    /// Active TCP health checks this often (0 = off: passive health only).
    #[arg(long, env = "AMBASSADOR_HEALTH_CHECK_INTERVAL", default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub health_check_interval: Duration,

    /// TCP keepalive idle time on upstream sockets (0 = off).
    #[arg(long, env = "AMBASSADOR_KEEPALIVE", default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive: Duration,

    /// TCP_USER_TIMEOUT on upstream sockets: drop a connection whose sent data stays
    /// unacknowledged this long (0 = kernel default).
    #[arg(long, env = "AMBASSADOR_TCP_USER_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub tcp_user_timeout: Duration,

    /// Copy buffer per direction (buffered path, TLS).
    #[arg(long, env = "AMBASSADOR_BUFFER_SIZE", default_value = "16KiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub buffer_size: u64,

    /// Use splice(2) between plain TCP sockets (Linux).
    #[arg(long, env = "AMBASSADOR_SPLICE", default_value = "true", value_name = "BOOL", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub splice: bool,

    /// After SIGTERM keep accepting this long before closing the listeners (the app may still
    /// need new connections while it shuts down).
    #[arg(long, env = "AMBASSADOR_DRAIN_DELAY", default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// Log one line per closed connection (duration, bytes, upstream, close reason).
    #[arg(long, env = "AMBASSADOR_ACCESS_LOG", default_value = "false", value_name = "BOOL", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Send a PROXY protocol header (v1 or v2) to the upstream with the client's address.
    #[arg(
        long,
        env = "AMBASSADOR_PROXY_PROTOCOL",
        default_value = "off",
        value_name = "OFF|V1|V2"
    )]
    pub proxy_protocol: ProxyProtocol,

    /// Originate TLS to the upstreams (the app speaks plaintext to localhost).
    #[arg(long, env = "AMBASSADOR_UPSTREAM_TLS", default_value = "false", value_name = "BOOL", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub upstream_tls: bool,

    /// CA bundle to verify upstreams with (default: the Mozilla roots).
    #[arg(long, env = "AMBASSADOR_UPSTREAM_TLS_CA", value_name = "PATH")]
    pub upstream_tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS to the upstream.
    #[arg(
        long,
        env = "AMBASSADOR_UPSTREAM_TLS_CERT",
        value_name = "PATH",
        requires = "upstream_tls_key"
    )]
    pub upstream_tls_cert: Option<PathBuf>,

    /// Client key (PEM) for mutual TLS to the upstream.
    #[arg(
        long,
        env = "AMBASSADOR_UPSTREAM_TLS_KEY",
        value_name = "PATH",
        requires = "upstream_tls_cert"
    )]
    pub upstream_tls_key: Option<PathBuf>,

    /// SNI and verification name (default: the upstream's host).
    #[arg(long, env = "AMBASSADOR_UPSTREAM_TLS_SERVER_NAME", value_name = "NAME")]
    pub upstream_tls_server_name: Option<String>,

    /// Do not verify the upstream's certificate (testing only).
    #[arg(long, env = "AMBASSADOR_UPSTREAM_TLS_INSECURE_SKIP_VERIFY", default_value = "false", value_name = "BOOL", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub upstream_tls_insecure_skip_verify: bool,

    /// Terminate TLS on the listeners with this certificate chain (PEM), reloaded on change.
    #[arg(
        long,
        env = "AMBASSADOR_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Key for --tls-cert (PEM).
    #[arg(
        long,
        env = "AMBASSADOR_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by this CA on TLS listeners.
    #[arg(
        long,
        env = "AMBASSADOR_TLS_CLIENT_CA",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// How often to check --tls-cert and --tls-key for changes.
    #[arg(long, env = "AMBASSADOR_TLS_RELOAD_INTERVAL", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
}

/// Upstream selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Balance {
    /// Each upstream in turn.
    RoundRobin,
    /// The upstream with the fewest open connections.
    LeastConnections,
}

/// Over the connection limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnLimit {
    /// Hold the client until a slot frees.
    Wait,
    /// Close the client at once.
    Refuse,
}

/// PROXY protocol header towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyProtocol {
    /// None.
    Off,
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// One route: a listener and its upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Where the app connects.
    pub listen: SocketAddr,
    /// Upstreams as (host, port); the host is re-resolved on the DNS TTL.
    pub upstreams: Vec<(String, u16)>,
}

/// Parses `LISTEN=HOST:PORT[,HOST:PORT...]`.
pub fn parse_route(s: &str) -> Result<RouteSpec, String> {
    let (listen, ups) = s
        .split_once('=')
        .ok_or_else(|| format!("route {s:?}: expected LISTEN=HOST:PORT[,HOST:PORT...], e.g. 127.0.0.1:5432=db.prod:5432"))?;
    let listen =
        parse_listen_addr(listen).map_err(|e| format!("route {s:?}: listen address: {e}"))?;
    let mut upstreams = Vec::new();
    for u in ups.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let hp = parse_host_port(u).map_err(|e| format!("route {s:?}: upstream {u:?}: {e}"))?;
        if !upstreams.contains(&hp) {
            upstreams.push(hp);
        }
    }
    if upstreams.is_empty() {
        return Err(format!(
            "route {s:?}: no upstream after '=' (expected HOST:PORT[,HOST:PORT...])"
        ));
    }
    Ok(RouteSpec { listen, upstreams })
}

impl Config {
    /// All routes, from every source; an error names the option and the bad value.
    pub fn route_specs(&self) -> Result<Vec<RouteSpec>, Error> {
        let bad = |option: &str, msg: String| Error::Config(format!("{option}: {msg}"));
        let mut specs = Vec::new();
        for r in self.routes.iter().flat_map(|r| r.split_whitespace()) {
            specs.push(parse_route(r).map_err(|e| bad("--route", e))?);
        }
        if let Some(path) = &self.routes_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "--routes-file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let spec = parse_route(line).map_err(|e| {
                    bad(
                        "--routes-file",
                        format!("{} line {}: {e}", path.display(), n + 1),
                    )
                })?;
                specs.push(spec);
            }
        }
        match (&self.upstream_host, self.upstream_port) {
            (Some(host), Some(port)) => {
                let host = host.trim();
                if host.is_empty() || host.contains(char::is_whitespace) {
                    return Err(bad(
                        "--upstream-host (UPSTREAM_HOST)",
                        format!("{host:?} is not a host name or IP"),
                    ));
                }
                if port == 0 {
                    return Err(bad(
                        "--upstream-port (UPSTREAM_PORT)",
                        "0 is not a usable port".into(),
                    ));
                }
                let listen = self
                    .listen
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
                specs.push(RouteSpec {
                    listen,
                    upstreams: vec![(host.to_string(), port)],
                });
            }
            (Some(_), None) => {
                return Err(bad(
                    "--upstream-port (UPSTREAM_PORT)",
                    "missing: UPSTREAM_HOST needs UPSTREAM_PORT".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "--upstream-host (UPSTREAM_HOST)",
                    "missing: UPSTREAM_PORT needs UPSTREAM_HOST".into(),
                ))
            }
            (None, None) => {
                if self.listen.is_some() {
                    return Err(bad("--listen (AMBASSADOR_LISTEN)", "only applies with UPSTREAM_HOST and UPSTREAM_PORT; give --route LISTEN=... instead".into()));
                }
            }
        }
        if specs.is_empty() {
            return Err(Error::Config(
                "no route: give --route LISTEN=HOST:PORT (AMBASSADOR_ROUTES), --routes-file, or UPSTREAM_HOST and UPSTREAM_PORT".into(),
            ));
        }
        for (i, a) in specs.iter().enumerate() {
            if a.listen.port() != 0 && specs[..i].iter().any(|b| b.listen == a.listen) {
                return Err(bad(
                    "--route",
                    format!("listen address {} used by two routes", a.listen),
                ));
            }
        }
        if self.buffer_size < 1024 || self.buffer_size > 16 << 20 {
            return Err(bad(
                "--buffer-size",
                format!("{} bytes: expected 1KiB to 16MiB", self.buffer_size),
            ));
        }
        if self.eject_after == 0 {
            return Err(bad(
                "--eject-after",
                "0: expected at least 1 failed connect".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(bad(
                "--connect-timeout",
                "0: expected a duration such as 5s".into(),
            ));
        }
        if self.dns_ttl.is_zero() {
            return Err(bad(
                "--dns-ttl",
                "0: expected a duration such as 30s".into(),
            ));
        }
        Ok(specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let r = parse_route("127.0.0.1:5432=db.prod:5432, db.replica:5432").unwrap();
        assert_eq!(r.listen, "127.0.0.1:5432".parse().unwrap());
        assert_eq!(
            r.upstreams,
            vec![("db.prod".into(), 5432), ("db.replica".into(), 5432)]
        );
        assert_eq!(
            parse_route(":80=[::1]:8080").unwrap().upstreams,
            vec![("::1".into(), 8080)]
        );
        assert!(parse_route("127.0.0.1:5432")
            .unwrap_err()
            .contains("LISTEN=HOST:PORT"));
        assert!(parse_route("127.0.0.1:5432=")
            .unwrap_err()
            .contains("no upstream"));
        assert!(parse_route("localhost:1=a:1")
            .unwrap_err()
            .contains("listen address"));
        assert!(parse_route("127.0.0.1:1=a")
            .unwrap_err()
            .contains("upstream \"a\""));
    }
}
