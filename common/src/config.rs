//! The options every agent has, and the value parsers all agents share.
//!
//! Every option is a flag and an environment variable. Parsers return messages that name what
//! was expected; clap adds the option and the bad value, and exits with code 2.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use clap::Args;

// Options shared by every agent, pulled into each agent's CLI with `#[command(flatten)]`.
// (Plain comments: a doc comment here would become every agent's `--help` description.)
// The default of `--admin-addr` is set per agent at start (see `AgentInfo`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Admin and logging")]
pub struct CommonArgs {
    /// Address of the admin server (/healthz, /readyz, /metrics), or `none` to turn it off.
    /// Binds all interfaces by default so kubelet probes and Prometheus reach it.
    #[arg(long, env = "ADMIN_ADDR", value_name = "ADDR", value_parser = parse_admin_addr)]
    pub admin_addr: Option<AdminAddr>,

    /// Log level: error, warn, info, debug, trace, or tracing directives (info,logship=debug).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: String,

    /// Log format on stderr: json, text, or auto (text on a terminal, JSON otherwise).
    #[arg(
        long,
        env = "LOG_FORMAT",
        default_value = "auto",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// How long a graceful shutdown (SIGTERM, SIGINT) may take before the agent gives up and
    /// exits. Keep it inside the pod's terminationGracePeriodSeconds (30s by default).
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Answer `POST /quitquitquit` on the admin server, from loopback only (a container of the
    /// same pod): it starts the graceful shutdown as SIGTERM does, so a Job's main container
    /// can stop its sidecars when it is done.
    #[arg(long, env = "QUIT_ENDPOINT", default_value = "true", value_name = "BOOL", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub quit_endpoint: bool,

    /// Validate the configuration, print a summary and exit (0 if valid, 2 if not).
    #[arg(long)]
    pub check_config: bool,
}

/// Where the admin server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAddr {
    /// Listen here.
    Listen(SocketAddr),
    /// No admin server.
    Off,
}

impl fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAddr::Listen(a) => a.fmt(f),
            AdminAddr::Off => f.write_str("none"),
        }
    }
}

/// Format of the agent's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain text on a terminal, JSON lines otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Checks a `--log-level` value (a level or tracing directives).
pub fn parse_log_level(s: &str) -> Result<String, String> {
    crate::log::filter(s)
        .map(|_| s.trim().to_string())
        .map_err(|_| {
            "expected error, warn, info, debug, trace, or directives such as info,logship=debug"
                .to_string()
        })
}

/// Parses `500ms`, `10s`, `5m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|_| "expected a duration such as 500ms, 10s, 5m or 1h30m".to_string())
}

/// Parses byte sizes: `64MiB`, `512KiB`, `50MB`, `1048576`. `K`, `M`, `G` (and `KB`, `MB`, `GB`)
/// are powers of 1000; `Ki`, `Mi`, `Gi` (and `KiB`, ...) are powers of 1024.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size such as 512KiB, 64MiB, 50MB or 1048576 (bytes)";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| EXPECTED.to_string())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        _ => return Err(EXPECTED.to_string()),
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(EXPECTED.to_string());
    }
    Ok(bytes.round() as u64)
}

/// Parses a listen address: `0.0.0.0:9471`, `127.0.0.1:0`, `[::]:9471`, or `:9471` (all IPv4
/// interfaces).
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    const EXPECTED: &str =
        "expected IP:PORT such as 0.0.0.0:9471, 127.0.0.1:9471, [::]:9471 or :9471";
    let t = s.trim();
    if let Some(port) = t.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| EXPECTED.to_string())?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    SocketAddr::from_str(t).map_err(|_| EXPECTED.to_string())
}

/// Parses `--admin-addr`: a listen address or `none`/`off`.
pub fn parse_admin_addr(s: &str) -> Result<AdminAddr, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "disabled" | "" => Ok(AdminAddr::Off),
        _ => parse_listen_addr(s)
            .map(AdminAddr::Listen)
            .map_err(|e| format!("{e}, or none to turn the admin server off")),
    }
}

/// Parses a `host:port` pair (host a name or an IP; IPv6 in brackets). Names are not resolved.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    const EXPECTED: &str =
        "expected HOST:PORT such as db.prod:5432, 10.0.0.7:5432 or [fd00::7]:5432";
    let t = s.trim();
    let (host, port) = t.rsplit_once(':').ok_or_else(|| EXPECTED.to_string())?;
    let port: u16 = port.parse().map_err(|_| EXPECTED.to_string())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(EXPECTED.to_string());
    }
    Ok((host.to_string(), port))
}

/// A static field, `KEY=VALUE` (`--field kubernetes.pod.name=web-0`): the key trimmed and
/// non-empty, with no empty level between dots; the value as given (it may contain `=`).
pub fn parse_field(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or("expected KEY=VALUE, e.g. kubernetes.pod.name=web-0")?;
    let k = k.trim();
    if k.is_empty() || k.split('.').any(str::is_empty) {
        return Err("expected a non-empty key such as service.name (dots separate levels)".into());
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses a boolean the way people write them in env: true/false, yes/no, on/off, 1/0.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" | "" => Ok(false),
        _ => Err("expected true or false (also yes/no, on/off, 1/0)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(
            parse_field(" kubernetes.pod.name =web-0=x").unwrap(),
            ("kubernetes.pod.name".into(), "web-0=x".into())
        );
        assert_eq!(parse_field("env=").unwrap(), ("env".into(), String::new()));
        for bad in ["novalue", "=x", "a..b=x", ".a=x"] {
            assert!(parse_field(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").unwrap_err().contains("500ms"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_byte_size("50MB").unwrap(), 50_000_000);
        assert_eq!(parse_byte_size("512k").unwrap(), 512_000);
        assert_eq!(parse_byte_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_byte_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_byte_size("1048576").unwrap(), 1 << 20);
        assert!(parse_byte_size("lots").unwrap_err().contains("64MiB"));
        assert!(parse_byte_size("5 parsecs").is_err());
    }

    #[test]
    fn listen_addrs() {
        assert_eq!(
            parse_listen_addr(":9471").unwrap(),
            "0.0.0.0:9471".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::]:1").unwrap(),
            "[::]:1".parse().unwrap()
        );
        assert!(parse_listen_addr("localhost:9471").is_err());
        assert_eq!(parse_admin_addr("none").unwrap(), AdminAddr::Off);
        assert!(parse_admin_addr("nowhere").unwrap_err().contains("none"));
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            parse_host_port("db.prod:5432").unwrap(),
            ("db.prod".into(), 5432)
        );
        assert_eq!(
            parse_host_port("[fd00::7]:5432").unwrap(),
            ("fd00::7".into(), 5432)
        );
        assert!(parse_host_port("db.prod").is_err());
        assert!(parse_host_port(":5432").is_err());
    }
}
