//! waitfor's options, and their check into [`Settings`].
//!
//! Targets come from the command line (positional), `WAIT_FOR` (comma-separated URLs), and the
//! env of docker-compose-wait: `WAIT_HOSTS` (`host:port` list), `WAIT_PATHS` (paths),
//! `WAIT_TIMEOUT` (alias `WAIT_HOSTS_TIMEOUT`), `WAIT_SLEEP_INTERVAL` (the cap of the retry
//! interval here), `WAIT_HOST_CONNECT_TIMEOUT` (the per-attempt timeout), `WAIT_BEFORE` and
//! `WAIT_AFTER` (aliases `WAIT_BEFORE_HOSTS`, `WAIT_AFTER_HOSTS`). Bare numbers are seconds, as
//! there. The `WAITFOR_*` names win over those when both are set.
use std::{path::PathBuf, sync::Arc, time::Duration};

use common::config::{parse_bool, parse_duration};

use crate::{
    check::{
        http::{parse_regex, HttpOptions, StatusRanges},
        Probe,
    },
    resolve::Resolver,
    target, Error,
};

/// Default overall timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default per-attempt timeout (docker-compose-wait's connect timeout).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap of the retry interval early on: a dependency that becomes ready is seen within
/// ~50 ms, so "ready" to "exit" stays well under 100 ms at p99.
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_millis(50);

/// The agent's options.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "waitfor")]
pub struct Config {
    /// What to wait for: tcp://host:port, http(s)://..., postgres://..., redis://...,
    /// mysql://..., amqp://..., nats://..., mqtt://..., dns://name, file:///path, or host:port.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Command to run once everything is ready (after `--`); it replaces waitfor (exec), so
    /// its exit code and signals pass through.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// More targets, comma-separated.
    #[arg(
        long = "wait-for",
        env = "WAIT_FOR",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub wait_for: Vec<String>,

    /// host:port pairs to connect to, comma-separated (docker-compose-wait).
    #[arg(
        long,
        env = "WAIT_HOSTS",
        value_delimiter = ',',
        value_name = "HOST:PORT,..."
    )]
    pub wait_hosts: Vec<String>,

    /// Paths that must exist, comma-separated (docker-compose-wait).
    #[arg(
        long,
        env = "WAIT_PATHS",
        value_delimiter = ',',
        value_name = "PATH,..."
    )]
    pub wait_paths: Vec<String>,

    /// Give up after this long (exit 124); 0 waits forever. [default: 5m]
    #[arg(long, env = "WAITFOR_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[arg(long, env = "WAIT_TIMEOUT", hide = true, value_parser = parse_duration)]
    wait_timeout: Option<Duration>,
    #[arg(long, env = "WAIT_HOSTS_TIMEOUT", hide = true, value_parser = parse_duration)]
    wait_hosts_timeout: Option<Duration>,

    /// Longest a single attempt may take (connect and protocol exchange). [default: 5s]
    #[arg(long, env = "WAITFOR_ATTEMPT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub attempt_timeout: Option<Duration>,
    #[arg(long, env = "WAIT_HOST_CONNECT_TIMEOUT", hide = true, value_parser = parse_duration)]
    wait_host_connect_timeout: Option<Duration>,

    /// First pause between attempts (the first attempt starts at once); doubles (with jitter)
    /// up to --max-interval.
    #[arg(long, env = "WAITFOR_INTERVAL", default_value = "10ms", value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Duration,

    /// Longest pause between attempts during the first --slow-after. [default: 50ms]
    #[arg(long, env = "WAITFOR_MAX_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub max_interval: Option<Duration>,

    /// After this long without being ready, a target's pause grows (doubling) up to
    /// --slow-interval; 0 never slows down.
    #[arg(long, env = "WAITFOR_SLOW_AFTER", default_value = "1m", value_name = "DURATION", value_parser = parse_duration)]
    pub slow_after: Duration,

    /// Longest pause between attempts after --slow-after (never below --max-interval).
    #[arg(long, env = "WAITFOR_SLOW_INTERVAL", default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub slow_interval: Duration,
    #[arg(long, env = "WAIT_SLEEP_INTERVAL", hide = true, value_parser = parse_duration)]
    wait_sleep_interval: Option<Duration>,

    /// Done when any one target is ready (default: all of them).
    #[arg(long, env = "WAITFOR_ANY", value_name = "BOOL", value_parser = parse_bool, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub any: bool,

    /// Wait until the targets are NOT reachable (drains); an authentication failure still
    /// counts as reachable.
    #[arg(long, env = "WAITFOR_INVERT", value_name = "BOOL", value_parser = parse_bool, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub invert: bool,

    /// Exit 1 at the first authentication failure instead of retrying until the timeout (a
    /// Secret may still be updated, so the default retries).
    #[arg(long, env = "WAITFOR_FAIL_ON_AUTH", value_name = "BOOL", value_parser = parse_bool, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub fail_on_auth: bool,

    /// How often to log which targets are still not ready.
    #[arg(long, env = "WAITFOR_SUMMARY_INTERVAL", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub summary_interval: Duration,

    /// Sleep this long before the first check.
    #[arg(long, env = "WAITFOR_DELAY_BEFORE", value_name = "DURATION", value_parser = parse_duration)]
    pub delay_before: Option<Duration>,
    #[arg(long, env = "WAIT_BEFORE", hide = true, value_parser = parse_duration)]
    wait_before: Option<Duration>,
    #[arg(long, env = "WAIT_BEFORE_HOSTS", hide = true, value_parser = parse_duration)]
    wait_before_hosts: Option<Duration>,

    /// Sleep this long once ready, before exiting or running the command.
    #[arg(long, env = "WAITFOR_DELAY_AFTER", value_name = "DURATION", value_parser = parse_duration)]
    pub delay_after: Option<Duration>,
    #[arg(long, env = "WAIT_AFTER", hide = true, value_parser = parse_duration)]
    wait_after: Option<Duration>,
    #[arg(long, env = "WAIT_AFTER_HOSTS", hide = true, value_parser = parse_duration)]
    wait_after_hosts: Option<Duration>,

    /// HTTP statuses that mean ready (per target: #status=...). [default: 200-299]
    #[arg(long, env = "WAITFOR_HTTP_STATUS", value_name = "CODES", value_parser = StatusRanges::parse)]
    pub http_status: Option<StatusRanges>,

    /// The HTTP body must contain this text (per target: #contains=...).
    #[arg(long, env = "WAITFOR_HTTP_CONTAINS", value_name = "TEXT")]
    pub http_contains: Option<String>,

    /// The HTTP body must match this regex (per target: #regex=...).
    #[arg(long, env = "WAITFOR_HTTP_REGEX", value_name = "REGEX", value_parser = parse_regex)]
    pub http_regex: Option<regex::Regex>,

    /// Extra CA certificates (PEM) for https targets (per target: #ca=/path).
    #[arg(long, env = "WAITFOR_HTTP_CA_FILE", value_name = "PATH")]
    pub http_ca_file: Option<PathBuf>,

    /// Skip TLS certificate verification for https targets (per target: #insecure).
    #[arg(long, env = "WAITFOR_HTTP_INSECURE", value_name = "BOOL", value_parser = parse_bool, default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub http_insecure: bool,

    /// A hosts-style file (IP NAME...) consulted before DNS and re-read at each attempt
    /// (tests, and names DNS does not know).
    #[arg(long, env = "WAITFOR_HOSTS_FILE", value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,
}

/// `--check-config` prints this: URLs with their passwords redacted.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r =
            |v: &[String]| -> Vec<String> { v.iter().map(|s| common::secret::redact(s)).collect() };
        f.debug_struct("Config")
            .field("targets", &r(&self.targets))
            .field("wait_for", &r(&self.wait_for))
            .field("wait_hosts", &r(&self.wait_hosts))
            .field("wait_paths", &self.wait_paths)
            .field("command", &r(&self.command))
            .field(
                "timeout",
                &self
                    .timeout
                    .or(self.wait_timeout)
                    .or(self.wait_hosts_timeout),
            )
            .field(
                "attempt_timeout",
                &self.attempt_timeout.or(self.wait_host_connect_timeout),
            )
            .field("interval", &self.interval)
            .field(
                "max_interval",
                &self.max_interval.or(self.wait_sleep_interval),
            )
            .field("slow_after", &self.slow_after)
            .field("slow_interval", &self.slow_interval)
            .field("any", &self.any)
            .field("invert", &self.invert)
            .field("fail_on_auth", &self.fail_on_auth)
            .field("summary_interval", &self.summary_interval)
            .field(
                "delay_before",
                &self
                    .delay_before
                    .or(self.wait_before)
                    .or(self.wait_before_hosts),
            )
            .field(
                "delay_after",
                &self
                    .delay_after
                    .or(self.wait_after)
                    .or(self.wait_after_hosts),
            )
            .field("http_status", &self.http_status)
            .field("http_contains", &self.http_contains)
            .field("http_regex", &self.http_regex)
            .field("http_ca_file", &self.http_ca_file)
            .field("http_insecure", &self.http_insecure)
            .field("hosts_file", &self.hosts_file)
            .finish()
    }
}

/// The checked configuration.
#[derive(Debug)]
pub struct Settings {
    /// The targets, prepared.
    pub probes: Vec<Arc<Probe>>,
    /// What to exec once ready.
    pub command: Vec<String>,
    /// Overall timeout (None: forever).
    pub timeout: Option<Duration>,
    /// Per attempt.
    pub attempt_timeout: Duration,
    /// First pause.
    pub interval: Duration,
    /// Cap of the pause during the first `slow_after`.
    pub max_interval: Duration,
    /// When the pause may grow past `max_interval` (None: never).
    pub slow_after: Option<Duration>,
    /// Cap of the pause after `slow_after` (at least `max_interval`).
    pub slow_interval: Duration,
    /// Any instead of all.
    pub any: bool,
    /// Wait for unreachable.
    pub invert: bool,
    /// Exit at the first authentication failure.
    pub fail_on_auth: bool,
    /// Periodic summary.
    pub summary_interval: Duration,
    /// Before the first check.
    pub delay_before: Duration,
    /// After ready.
    pub delay_after: Duration,
}

fn nonzero(option: &str, d: Duration) -> Result<Duration, Error> {
    if d.is_zero() {
        return Err(Error::Option {
            option: option.to_string(),
            value: "0".to_string(),
            expected: "a duration above zero, such as 500ms or 5s".to_string(),
        });
    }
    Ok(d)
}

impl Config {
    /// Checks everything and parses every target (errors name the target and the reason).
    pub fn settings(self) -> Result<Settings, Error> {
        let timeout = self
            .timeout
            .or(self.wait_timeout)
            .or(self.wait_hosts_timeout);
        let timeout = match timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        };
        let attempt_timeout = nonzero(
            "--attempt-timeout",
            self.attempt_timeout
                .or(self.wait_host_connect_timeout)
                .unwrap_or(DEFAULT_ATTEMPT_TIMEOUT),
        )?;
        let interval = nonzero("--interval", self.interval)?;
        let max_interval = self
            .max_interval
            .or(self.wait_sleep_interval)
            .unwrap_or(DEFAULT_MAX_INTERVAL)
            .max(interval);
        let slow_after = (!self.slow_after.is_zero()).then_some(self.slow_after);
        let slow_interval = nonzero("--slow-interval", self.slow_interval)?.max(max_interval);
        let summary_interval = nonzero("--summary-interval", self.summary_interval)?;
        let http = HttpOptions {
            status: self.http_status.map(|s| s.0).unwrap_or_default(),
            contains: self.http_contains,
            regex: self.http_regex,
            ca_file: self.http_ca_file,
            insecure: self.http_insecure,
        };
        let mut raw: Vec<String> = Vec::new();
        raw.extend(self.targets);
        raw.extend(self.wait_for.into_iter().filter(|t| !t.trim().is_empty()));
        for h in self
            .wait_hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
        {
            raw.push(if h.contains("://") {
                h.to_string()
            } else {
                format!("tcp://{h}")
            });
        }
        for p in self
            .wait_paths
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            if !p.starts_with('/') {
                return Err(Error::Target {
                    target: p.to_string(),
                    reason: "WAIT_PATHS entries must be absolute paths".to_string(),
                });
            }
            raw.push(p.to_string());
        }
        if raw.is_empty() {
            return Err(Error::NoTargets);
        }
        let resolver = Resolver::new(self.hosts_file);
        let mut probes = Vec::with_capacity(raw.len());
        for r in &raw {
            let bad = |reason: String| Error::Target {
                target: common::secret::redact(r.trim()),
                reason,
            };
            let t = target::parse(r, &http).map_err(bad)?;
            probes.push(Arc::new(Probe::new(t, resolver.clone()).map_err(bad)?));
        }
        Ok(Settings {
            probes,
            command: self.command,
            timeout,
            attempt_timeout,
            interval,
            max_interval,
            slow_after,
            slow_interval,
            any: self.any,
            invert: self.invert,
            fail_on_auth: self.fail_on_auth,
            summary_interval,
            delay_before: self
                .delay_before
                .or(self.wait_before)
                .or(self.wait_before_hosts)
                .unwrap_or_default(),
            delay_after: self
                .delay_after
                .or(self.wait_after)
                .or(self.wait_after_hosts)
                .unwrap_or_default(),
        })
    }
}
