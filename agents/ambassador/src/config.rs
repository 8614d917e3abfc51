//! The ambassador's options (flags and env) and their validation into [`RouteSpec`]s: routes
//! from `--route`, a routes file, or the guide's `UPSTREAM_HOST` + `UPSTREAM_PORT`, each with
//! its [`RouteOptions`] (the flags' values, overridden by `key=value` words after the route).
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use common::config::{
    parse_bool, parse_byte_size, parse_duration, parse_host_port, parse_listen_addr,
};

use crate::Error;

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "ambassador")]
pub struct Config {
    /// A route: LISTEN=UPSTREAM[,UPSTREAM...], e.g. 127.0.0.1:5432=db.prod:5432,db.replica:5432,
    /// optionally followed by per-route `key=value` settings. Repeatable; in env, separate
    /// routes with `;`.
    #[arg(
        long = "route",
        env = "AMBASSADOR_ROUTES",
        value_name = "LISTEN=HOST:PORT,...",
        value_delimiter = ';'
    )]
    pub routes: Vec<String>,

    /// A file of routes, one `LISTEN=UPSTREAM,... [key=value ...]` per line (`#` starts a
    /// comment); the keys are the per-route flags without `--` (see the README).
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

    /// With --on-limit wait: close a connection that waited this long for a slot (0 = wait as
    /// long as it takes).
    #[arg(long, env = "AMBASSADOR_QUEUE_TIMEOUT", default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub queue_timeout: Duration,

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

    /// Read size per direction; between plain sockets a read that fills it switches the
    /// direction to splice(2) (bulk transfer). Held only while bytes wait for a slow writer.
    #[arg(long, env = "AMBASSADOR_BUFFER_SIZE", default_value = "16KiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub buffer_size: u64,

    /// Use splice(2) for bulk transfers between plain TCP sockets (Linux); small messages
    /// always take the cheaper read/write path.
    #[arg(long, env = "AMBASSADOR_SPLICE", default_value = "true", value_name = "BOOL", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub splice: bool,

    /// Relay threads, each an event loop of its own accepting and relaying its connections
    /// (0 = one per CPU available to the process, cgroup quota included, at most 4).
    #[arg(
        long,
        env = "AMBASSADOR_WORKERS",
        default_value = "0",
        value_name = "N"
    )]
    pub workers: usize,

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

    /// How often to check the certificate files for changes (--tls-cert/--tls-key,
    /// --tls-client-ca, --upstream-tls-cert/--upstream-tls-key, --upstream-tls-ca), during
    /// handshakes: a rotated Secret is picked up without a restart.
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

/// Settings a route can set for itself in the routes file (or after its `--route`), each as
/// `key=value` with the name of the flag that gives its default: `balance`, `connect-timeout`,
/// `idle-timeout`, `max-connections`, `on-limit`, `queue-timeout`, `proxy-protocol`, `eject-after`,
/// `eject-cooldown`, `eject-cooldown-max`, `health-check-interval`, `keepalive`,
/// `tcp-user-timeout`, `buffer-size`, `splice`, `access-log`, `upstream-tls`,
/// `upstream-tls-ca`, `upstream-tls-cert`, `upstream-tls-key`, `upstream-tls-server-name`,
/// `upstream-tls-insecure-skip-verify`, `tls-cert`, `tls-key`, `tls-client-ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOptions {
    /// `balance`.
    pub balance: Balance,
    /// `connect-timeout`.
    pub connect_timeout: Duration,
    /// `idle-timeout` (zero: never).
    pub idle_timeout: Duration,
    /// `max-connections` (zero: unlimited).
    pub max_connections: usize,
    /// `on-limit`.
    pub on_limit: OnLimit,
    /// `queue-timeout` (zero: none).
    pub queue_timeout: Duration,
    /// `proxy-protocol`.
    pub proxy_protocol: ProxyProtocol,
    /// `eject-after`.
    pub eject_after: u32,
    /// `eject-cooldown`.
    pub eject_cooldown: Duration,
    /// `eject-cooldown-max`.
    pub eject_cooldown_max: Duration,
    /// `health-check-interval` (zero: off).
    pub health_check_interval: Duration,
    /// `keepalive` (zero: off).
    pub keepalive: Duration,
    /// `tcp-user-timeout` (zero: kernel default).
    pub tcp_user_timeout: Duration,
    /// `buffer-size`.
    pub buffer_size: u64,
    /// `splice`.
    pub splice: bool,
    /// `access-log`.
    pub access_log: bool,
    /// `upstream-tls`.
    pub upstream_tls: bool,
    /// `upstream-tls-ca`.
    pub upstream_tls_ca: Option<PathBuf>,
    /// `upstream-tls-cert`.
    pub upstream_tls_cert: Option<PathBuf>,
    /// `upstream-tls-key`.
    pub upstream_tls_key: Option<PathBuf>,
    /// `upstream-tls-server-name`.
    pub upstream_tls_server_name: Option<String>,
    /// `upstream-tls-insecure-skip-verify`.
    pub upstream_tls_insecure_skip_verify: bool,
    /// `tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `tls-client-ca`.
    pub tls_client_ca: Option<PathBuf>,
}

/// Every per-route key, for error messages.
pub const ROUTE_KEYS: &[&str] = &[
    "balance",
    "connect-timeout",
    "idle-timeout",
    "max-connections",
    "on-limit",
    "queue-timeout",
    "proxy-protocol",
    "eject-after",
    "eject-cooldown",
    "eject-cooldown-max",
    "health-check-interval",
    "keepalive",
    "tcp-user-timeout",
    "buffer-size",
    "splice",
    "access-log",
    "upstream-tls",
    "upstream-tls-ca",
    "upstream-tls-cert",
    "upstream-tls-key",
    "upstream-tls-server-name",
    "upstream-tls-insecure-skip-verify",
    "tls-cert",
    "tls-key",
    "tls-client-ca",
];

fn value_enum<T: clap::ValueEnum>(v: &str) -> Result<T, String> {
    T::from_str(v, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|x| Some(x.to_possible_value()?.get_name().to_string()))
            .collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn path(v: &str) -> Result<Option<PathBuf>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        Ok(Some(PathBuf::from(v)))
    }
}

impl RouteOptions {
    /// Sets `key` to `value`; the error says what was expected.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let count = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| "expected a whole number".to_string())
        };
        match key {
            "balance" => self.balance = value_enum(value)?,
            "connect-timeout" => self.connect_timeout = parse_duration(value)?,
            "idle-timeout" => self.idle_timeout = parse_duration(value)?,
            "max-connections" => self.max_connections = count(value)? as usize,
            "on-limit" => self.on_limit = value_enum(value)?,
            "queue-timeout" => self.queue_timeout = parse_duration(value)?,
            "proxy-protocol" => self.proxy_protocol = value_enum(value)?,
            "eject-after" => {
                self.eject_after =
                    u32::try_from(count(value)?).map_err(|_| "too large".to_string())?
            }
            "eject-cooldown" => self.eject_cooldown = parse_duration(value)?,
            "eject-cooldown-max" => self.eject_cooldown_max = parse_duration(value)?,
            "health-check-interval" => self.health_check_interval = parse_duration(value)?,
            "keepalive" => self.keepalive = parse_duration(value)?,
            "tcp-user-timeout" => self.tcp_user_timeout = parse_duration(value)?,
            "buffer-size" => self.buffer_size = parse_byte_size(value)?,
            "splice" => self.splice = parse_bool(value)?,
            "access-log" => self.access_log = parse_bool(value)?,
            "upstream-tls" => self.upstream_tls = parse_bool(value)?,
            "upstream-tls-ca" => self.upstream_tls_ca = path(value)?,
            "upstream-tls-cert" => self.upstream_tls_cert = path(value)?,
            "upstream-tls-key" => self.upstream_tls_key = path(value)?,
            "upstream-tls-server-name" => {
                self.upstream_tls_server_name = (!value.is_empty()).then(|| value.to_string())
            }
            "upstream-tls-insecure-skip-verify" => {
                self.upstream_tls_insecure_skip_verify = parse_bool(value)?
            }
            "tls-cert" => self.tls_cert = path(value)?,
            "tls-key" => self.tls_key = path(value)?,
            "tls-client-ca" => self.tls_client_ca = path(value)?,
            _ => {
                return Err(format!(
                    "unknown route option (known: {})",
                    ROUTE_KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Checks values that parse but cannot work; the error names the key (without `--`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.buffer_size < 1024 || self.buffer_size > 16 << 20 {
            return Err((
                "buffer-size",
                format!("{} bytes: expected 1KiB to 16MiB", self.buffer_size),
            ));
        }
        if self.eject_after == 0 {
            return Err((
                "eject-after",
                "0: expected at least 1 failed connect".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err((
                "connect-timeout",
                "0: expected a duration such as 5s".into(),
            ));
        }
        if self.upstream_tls_cert.is_some() != self.upstream_tls_key.is_some() {
            return Err((
                "upstream-tls-cert",
                "upstream-tls-cert and upstream-tls-key go together".into(),
            ));
        }
        if !self.upstream_tls
            && (self.upstream_tls_ca.is_some() || self.upstream_tls_cert.is_some())
        {
            return Err((
                "upstream-tls",
                "upstream-tls-ca / upstream-tls-cert given without upstream-tls=true".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(("tls-cert", "tls-cert and tls-key go together".into()));
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err((
                "tls-client-ca",
                "needs tls-cert and tls-key (TLS termination)".into(),
            ));
        }
        Ok(())
    }
}

/// One route: a listener, its upstreams and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Where the app connects.
    pub listen: SocketAddr,
    /// Upstreams as (host, port); the host is re-resolved on the DNS TTL.
    pub upstreams: Vec<(String, u16)>,
    /// Its settings (the flags' values unless the route sets its own).
    pub options: RouteOptions,
}

/// Parses `LISTEN=HOST:PORT[,HOST:PORT...]` (settings are the given defaults).
pub fn parse_route(s: &str, defaults: &RouteOptions) -> Result<RouteSpec, String> {
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
    Ok(RouteSpec {
        listen,
        upstreams,
        options: defaults.clone(),
    })
}

/// True when `token` is a `key=value` route option rather than the start of a route.
fn is_option(token: &str) -> bool {
    token.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    })
}

/// Parses whitespace-separated routes, each `LISTEN=UPSTREAMS` followed by its `key=value`
/// options (one routes-file line, or the value of `--route`).
pub fn parse_routes(text: &str, defaults: &RouteOptions) -> Result<Vec<RouteSpec>, String> {
    // `a:1, b:1` is one upstream list: drop the blanks around commas before splitting words.
    let joined = text.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    let mut specs: Vec<RouteSpec> = Vec::new();
    for token in joined.split_whitespace() {
        if is_option(token) {
            let (k, v) = token.split_once('=').unwrap_or((token, ""));
            let Some(spec) = specs.last_mut() else {
                return Err(format!(
                    "option {token:?} before any route: write LISTEN=HOST:PORT first, then {k}=..."
                ));
            };
            spec.options
                .set(k, v)
                .map_err(|e| format!("route {}: {k}={v:?}: {e}", spec.listen))?;
        } else {
            specs.push(parse_route(token, defaults)?);
        }
    }
    for spec in &specs {
        spec.options
            .validate()
            .map_err(|(k, e)| format!("route {}: {k}: {e}", spec.listen))?;
    }
    Ok(specs)
}

impl Config {
    /// The route settings the flags give (every route starts from these).
    pub fn defaults(&self) -> RouteOptions {
        RouteOptions {
            balance: self.balance,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            on_limit: self.on_limit,
            queue_timeout: self.queue_timeout,
            proxy_protocol: self.proxy_protocol,
            eject_after: self.eject_after,
            eject_cooldown: self.eject_cooldown,
            eject_cooldown_max: self.eject_cooldown_max,
            health_check_interval: self.health_check_interval,
            keepalive: self.keepalive,
            tcp_user_timeout: self.tcp_user_timeout,
            buffer_size: self.buffer_size,
            splice: self.splice,
            access_log: self.access_log,
            upstream_tls: self.upstream_tls,
            upstream_tls_ca: self.upstream_tls_ca.clone(),
            upstream_tls_cert: self.upstream_tls_cert.clone(),
            upstream_tls_key: self.upstream_tls_key.clone(),
            upstream_tls_server_name: self.upstream_tls_server_name.clone(),
            upstream_tls_insecure_skip_verify: self.upstream_tls_insecure_skip_verify,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
        }
    }

    /// All routes, from every source; an error names the option and the bad value.
    pub fn route_specs(&self) -> Result<Vec<RouteSpec>, Error> {
        let bad = |option: &str, msg: String| Error::Config(format!("{option}: {msg}"));
        let defaults = self.defaults();
        defaults
            .validate()
            .map_err(|(k, e)| bad(&format!("--{k}"), e))?;
        if self.dns_ttl.is_zero() {
            return Err(bad(
                "--dns-ttl",
                "0: expected a duration such as 30s".into(),
            ));
        }
        let mut specs = Vec::new();
        for r in &self.routes {
            specs.extend(parse_routes(r, &defaults).map_err(|e| bad("--route", e))?);
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
                let line_specs = parse_routes(line, &defaults).map_err(|e| {
                    bad(
                        "--routes-file",
                        format!("{} line {}: {e}", path.display(), n + 1),
                    )
                })?;
                specs.extend(line_specs);
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
                    options: defaults.clone(),
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
        Ok(specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn config(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("ambassador").chain(args.iter().copied()))
            .expect("flags parse")
            .config
    }

    fn defaults() -> RouteOptions {
        config(&[]).defaults()
    }

    #[test]
    fn routes_parse() {
        let d = defaults();
        let r = parse_route("127.0.0.1:5432=db.prod:5432,db.replica:5432", &d).unwrap();
        assert_eq!(r.listen, "127.0.0.1:5432".parse().unwrap());
        assert_eq!(
            r.upstreams,
            vec![("db.prod".into(), 5432), ("db.replica".into(), 5432)]
        );
        assert_eq!(
            parse_route(":80=[::1]:8080", &d).unwrap().upstreams,
            vec![("::1".into(), 8080)]
        );
        assert!(parse_route("127.0.0.1:5432", &d)
            .unwrap_err()
            .contains("LISTEN=HOST:PORT"));
        assert!(parse_route("127.0.0.1:5432=", &d)
            .unwrap_err()
            .contains("no upstream"));
        assert!(parse_route("localhost:1=a:1", &d)
            .unwrap_err()
            .contains("listen address"));
        assert!(parse_route("127.0.0.1:1=a", &d)
            .unwrap_err()
            .contains("upstream \"a\""));
    }

    #[test]
    fn per_route_options_override_the_flags() {
        let c = config(&["--connect-timeout", "3s", "--balance", "least-connections"]);
        let d = c.defaults();
        let spaced = parse_routes("127.0.0.1:1=a:1 , b:1 max-connections=2", &d).unwrap();
        assert_eq!(spaced[0].upstreams, vec![("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(spaced[0].options.max_connections, 2);
        let specs = parse_routes(
            "127.0.0.1:1=a:1,b:1 balance=round-robin connect-timeout=250ms idle-timeout=0s \
             max-connections=7 on-limit=refuse queue-timeout=2s proxy-protocol=v2 eject-after=5 \
             eject-cooldown=1s eject-cooldown-max=9s health-check-interval=2s keepalive=0s \
             tcp-user-timeout=4s buffer-size=64KiB splice=false access-log=true \
             upstream-tls=true upstream-tls-ca=/ca.pem upstream-tls-cert=/c.pem \
             upstream-tls-key=/c.key upstream-tls-server-name=db.internal \
             upstream-tls-insecure-skip-verify=true tls-cert=/s.pem tls-key=/s.key \
             tls-client-ca=/cca.pem 127.0.0.1:2=c:2",
            &d,
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        let o = &specs[0].options;
        let want = RouteOptions {
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_millis(250),
            idle_timeout: Duration::ZERO,
            max_connections: 7,
            on_limit: OnLimit::Refuse,
            queue_timeout: Duration::from_secs(2),
            proxy_protocol: ProxyProtocol::V2,
            eject_after: 5,
            eject_cooldown: Duration::from_secs(1),
            eject_cooldown_max: Duration::from_secs(9),
            health_check_interval: Duration::from_secs(2),
            keepalive: Duration::ZERO,
            tcp_user_timeout: Duration::from_secs(4),
            buffer_size: 64 * 1024,
            splice: false,
            access_log: true,
            upstream_tls: true,
            upstream_tls_ca: Some("/ca.pem".into()),
            upstream_tls_cert: Some("/c.pem".into()),
            upstream_tls_key: Some("/c.key".into()),
            upstream_tls_server_name: Some("db.internal".into()),
            upstream_tls_insecure_skip_verify: true,
            tls_cert: Some("/s.pem".into()),
            tls_key: Some("/s.key".into()),
            tls_client_ca: Some("/cca.pem".into()),
        };
        assert_eq!(o, &want);
        // Every key is covered above.
        assert_eq!(ROUTE_KEYS.len(), 25);
        // The second route keeps the flags' values.
        assert_eq!(specs[1].options, d);
        assert_eq!(specs[1].options.balance, Balance::LeastConnections);
        assert_eq!(specs[1].options.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_route_options_name_the_route_and_key() {
        let d = defaults();
        let e = parse_routes("127.0.0.1:1=a:1 balance=random", &d).unwrap_err();
        assert!(
            e.contains("route 127.0.0.1:1: balance=\"random\"") && e.contains("round-robin"),
            "{e}"
        );
        let e = parse_routes("127.0.0.1:1=a:1 colour=red", &d).unwrap_err();
        assert!(
            e.contains("unknown route option") && e.contains("max-connections"),
            "{e}"
        );
        let e = parse_routes("balance=round-robin 127.0.0.1:1=a:1", &d).unwrap_err();
        assert!(e.contains("before any route"), "{e}");
        let e = parse_routes("127.0.0.1:1=a:1 buffer-size=10", &d).unwrap_err();
        assert!(e.contains("route 127.0.0.1:1: buffer-size"), "{e}");
        let e = parse_routes("127.0.0.1:1=a:1 tls-cert=/x.pem", &d).unwrap_err();
        assert!(e.contains("tls-key"), "{e}");
        let e = parse_routes("127.0.0.1:1=a:1 upstream-tls-ca=/ca.pem", &d).unwrap_err();
        assert!(e.contains("upstream-tls=true"), "{e}");
    }

    #[test]
    fn routes_file_lines_carry_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes");
        std::fs::write(
            &file,
            "# db\n127.0.0.1:5432=db:5432 max-connections=10 # at most 10\n\n127.0.0.1:6379=redis:6379\n",
        )
        .unwrap();
        let c = config(&["--routes-file", file.to_str().unwrap()]);
        let specs = c.route_specs().unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].options.max_connections, 10);
        assert_eq!(specs[1].options.max_connections, 0);
        std::fs::write(&file, "127.0.0.1:5432=db:5432 on-limit=maybe\n").unwrap();
        let e = c.route_specs().unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("on-limit"), "{e}");
    }
}
