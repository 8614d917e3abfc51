//! The agent's options (flags and env) and their validation into [`Settings`].
//!
//! Defaults and why:
//! - `--debounce 25ms`: kubelet's ConfigMap update (new timestamped dir, `..data_tmp` symlink,
//!   rename to `..data`, old dir removed) is a burst of a few events inside a millisecond; 25 ms
//!   of quiet folds it into one check while keeping swap-to-reload latency well under 50 ms.
//!   Bursts that keep going are cut at `--debounce-max` (1s) so a writer that never pauses still
//!   gets reloads.
//! - `--recheck-interval 3m`: a full hash of the watched set catches what a watch missed.
//! - `--retry-initial 500ms` / `--retry-max 30s`: a failed action is retried with backoff until it
//!   succeeds or a newer change replaces it; a lost reload is the worst outcome.
use std::{path::PathBuf, time::Duration};

use common::config::{parse_bool, parse_duration};
use common::secret::redact;

use crate::{command::CommandLine, process::parse_signal, Error};

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "reloader")]
pub struct Config {
    /// Directories or files to watch (repeat, or comma-separate in env). A mounted ConfigMap or
    /// Secret: give its mount directory (or a file in it); kubelet's `..data` swap is followed.
    #[arg(
        long,
        env = "RELOADER_WATCH",
        value_name = "PATH",
        value_delimiter = ',',
        alias = "volume-dir",
        required = true
    )]
    pub watch: Vec<PathBuf>,

    /// Poll the watched set at this interval instead of using inotify (for filesystems without
    /// inotify events, such as some network mounts). Unset: inotify.
    #[arg(long, env = "RELOADER_POLL_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,

    /// Quiet time after the last filesystem event before the watched set is checked.
    #[arg(long, env = "RELOADER_DEBOUNCE", value_name = "DURATION", default_value = "25ms", value_parser = parse_duration)]
    pub debounce: Duration,

    /// Longest a burst of events may delay a check.
    #[arg(long, env = "RELOADER_DEBOUNCE_MAX", value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub debounce_max: Duration,

    /// Full re-check of the watched set at this interval, to catch changes a watch missed.
    #[arg(long, env = "RELOADER_RECHECK_INTERVAL", value_name = "DURATION", default_value = "3m", value_parser = parse_duration)]
    pub recheck_interval: Duration,

    /// Copy the watched files into this directory (each file written to a temporary name and
    /// renamed into place) before the other actions.
    #[arg(long, env = "RELOADER_SYNC_TO", value_name = "DIR")]
    pub sync_to: Option<PathBuf>,

    /// While syncing, replace `${VAR}` and `${VAR:-default}` in text files with environment
    /// values (unset variables without a default are left as written, so nginx's own `${var}`
    /// survives).
    #[arg(long, env = "RELOADER_RENDER", value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub render: bool,

    /// Command that must succeed before the reload actions run (e.g. `nginx -t`). Split into
    /// words like a shell (quotes allowed), not run through one; use `sh -c '...'` for that.
    /// When it fails the reload is skipped and synced files are put back.
    #[arg(long, env = "RELOADER_VALIDATE_COMMAND", value_name = "COMMAND")]
    pub validate_command: Option<Redacted>,

    /// Webhook to call on change (repeat, or comma-separate in env), e.g.
    /// http://127.0.0.1:9090/-/reload for Prometheus.
    #[arg(
        long,
        env = "RELOADER_WEBHOOK_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub webhook_url: Vec<Redacted>,

    /// HTTP method of the webhook.
    #[arg(
        long,
        env = "RELOADER_WEBHOOK_METHOD",
        value_name = "METHOD",
        default_value = "POST"
    )]
    pub webhook_method: String,

    /// Status the webhook must answer; unset: any 2xx.
    #[arg(
        long,
        env = "RELOADER_WEBHOOK_STATUS",
        value_name = "CODE",
        alias = "webhook-status-code"
    )]
    pub webhook_status: Option<u16>,

    /// Extra webhook header `Name: value` (repeat; newline-separated in env). Values are never logged.
    #[arg(
        long,
        env = "RELOADER_WEBHOOK_HEADER",
        value_name = "HEADER",
        value_delimiter = '\n'
    )]
    pub webhook_header: Vec<HeaderArg>,

    /// Time limit of one webhook call.
    #[arg(long, env = "RELOADER_WEBHOOK_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Send the signal to processes with this name (their /proc comm or argv[0]); only those
    /// whose parent is not also a match (nginx's master, not its workers). Needs
    /// `shareProcessNamespace: true` in the pod.
    #[arg(long, env = "RELOADER_SIGNAL_PROCESS", value_name = "NAME")]
    pub signal_process: Option<String>,

    /// Send the signal to the process whose id is in this file (read at each reload).
    #[arg(long, env = "RELOADER_SIGNAL_PIDFILE", value_name = "PATH")]
    pub signal_pidfile: Option<PathBuf>,

    /// Signal to send: HUP, USR1, USR2, TERM, INT, QUIT, WINCH or a number.
    #[arg(
        long,
        env = "RELOADER_SIGNAL",
        value_name = "SIGNAL",
        default_value = "HUP"
    )]
    pub signal: String,

    /// After signalling, poll this URL until the reload shows (see --confirm) before counting
    /// the signal a success.
    #[arg(long, env = "RELOADER_CONFIRM_URL", value_name = "URL")]
    pub confirm_url: Option<Redacted>,

    /// What confirms the reload: `change` (the answer body differs from the one before the
    /// signal) or `success` (a 2xx answer).
    #[arg(
        long,
        env = "RELOADER_CONFIRM",
        value_name = "MODE",
        default_value = "change"
    )]
    pub confirm: ConfirmMode,

    /// How long to wait for the confirmation.
    #[arg(long, env = "RELOADER_CONFIRM_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub confirm_timeout: Duration,

    /// Command to run on change (after webhooks and signals). Split like --validate-command;
    /// gets RELOADER_HASH in its environment.
    #[arg(long, env = "RELOADER_COMMAND", value_name = "COMMAND")]
    pub command: Option<Redacted>,

    /// Time limit of the validation command and of the command.
    #[arg(long, env = "RELOADER_COMMAND_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub command_timeout: Duration,

    /// First delay before retrying a failed action.
    #[arg(long, env = "RELOADER_RETRY_INITIAL", value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub retry_initial: Duration,

    /// Longest delay between retries (they go on until success or a newer change).
    #[arg(long, env = "RELOADER_RETRY_MAX", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub retry_max: Duration,

    /// Run the actions once at start too (otherwise only sync and validation run at start).
    #[arg(long, env = "RELOADER_RELOAD_ON_START", value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub reload_on_start: bool,

    /// Sync (and validate) once, then exit: for an init container.
    #[arg(long, env = "RELOADER_ONCE", value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub once: bool,
}

/// A value that may carry a password (a URL): `Debug` (and so `--check-config`) shows it
/// redacted.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(s.to_string()))
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

/// A `Name: value` header: `Debug` shows the name only.
#[derive(Clone)]
pub struct HeaderArg(pub String);

impl std::str::FromStr for HeaderArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(HeaderArg(s.to_string()))
    }
}

impl std::fmt::Debug for HeaderArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.0.split(':').next().unwrap_or_default().trim();
        write!(f, "\"{name}: [redacted]\"")
    }
}

/// How `--confirm-url` confirms a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfirmMode {
    /// The body differs from the one read before the signal.
    Change,
    /// The answer is 2xx.
    Success,
}

/// A webhook to call (`Debug` shows the redacted URL).
#[derive(Clone)]
pub struct Webhook {
    /// The URL.
    pub url: reqwest::Url,
    /// The URL with any password hidden, for logs.
    pub shown: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown)
    }
}

/// Where the signal goes.
#[derive(Debug, Clone)]
pub enum SignalTarget {
    /// Processes with this name.
    Name(String),
    /// The process in this pid file.
    Pidfile(PathBuf),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub watch: Vec<PathBuf>,
    pub poll_interval: Option<Duration>,
    pub debounce: Duration,
    pub debounce_max: Duration,
    pub recheck_interval: Duration,
    pub sync_to: Option<PathBuf>,
    pub render: bool,
    pub validate: Option<CommandLine>,
    pub webhooks: Vec<Webhook>,
    pub webhook_method: reqwest::Method,
    pub webhook_status: Option<u16>,
    pub webhook_headers: reqwest::header::HeaderMap,
    pub webhook_timeout: Duration,
    pub signal_targets: Vec<SignalTarget>,
    pub signal: i32,
    pub confirm_url: Option<Webhook>,
    pub confirm: ConfirmMode,
    pub confirm_timeout: Duration,
    pub command: Option<CommandLine>,
    pub command_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub reload_on_start: bool,
    pub once: bool,
}

fn parse_url(option: &'static str, s: &str) -> Result<Webhook, Error> {
    let shown = redact(s);
    let url = reqwest::Url::parse(s.trim()).map_err(|e| {
        Error::config(
            option,
            shown.clone(),
            format!("{e}; expected an http:// or https:// URL"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(
            option,
            shown,
            "expected an http:// or https:// URL",
        ));
    }
    Ok(Webhook { url, shown })
}

fn positive(option: &'static str, d: Duration) -> Result<Duration, Error> {
    if d.is_zero() {
        return Err(Error::config(
            option,
            "0",
            "expected a duration above zero, such as 100ms",
        ));
    }
    Ok(d)
}

impl Config {
    /// Checks every option and resolves paths; errors name the option and the value.
    pub fn validate(self) -> Result<Settings, Error> {
        let mut watch = Vec::with_capacity(self.watch.len());
        for p in self.watch {
            let p = std::path::absolute(&p).map_err(|source| Error::WatchPath {
                path: p.clone(),
                source,
            })?;
            std::fs::metadata(&p).map_err(|source| Error::WatchPath {
                path: p.clone(),
                source,
            })?;
            watch.push(p);
        }
        if let Some(target) = &self.sync_to {
            let target = std::path::absolute(target).unwrap_or_else(|_| target.clone());
            if let Some(w) = watch
                .iter()
                .find(|w| target.starts_with(w) || w.starts_with(&target))
            {
                return Err(Error::config(
                    "--sync-to",
                    target.display().to_string(),
                    format!("a directory outside the watched path {} (syncing into it would trigger itself)", w.display()),
                ));
            }
        }
        let webhooks = self
            .webhook_url
            .iter()
            .filter(|u| !u.0.trim().is_empty())
            .map(|u| parse_url("--webhook-url", &u.0))
            .collect::<Result<Vec<_>, _>>()?;
        let webhook_method =
            reqwest::Method::from_bytes(self.webhook_method.trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| {
                    Error::config(
                        "--webhook-method",
                        self.webhook_method.clone(),
                        "an HTTP method such as POST, PUT or GET",
                    )
                })?;
        if let Some(code) = self.webhook_status {
            if !(100..=599).contains(&code) {
                return Err(Error::config(
                    "--webhook-status",
                    code.to_string(),
                    "an HTTP status code (100-599)",
                ));
            }
        }
        let mut webhook_headers = reqwest::header::HeaderMap::new();
        for HeaderArg(h) in self
            .webhook_header
            .iter()
            .filter(|h| !h.0.trim().is_empty())
        {
            let bad = |why: &str| {
                let name = h.split(':').next().unwrap_or_default().trim().to_string();
                Error::config(
                    "--webhook-header",
                    format!("{name}: [redacted]"),
                    format!("{why}; expected `Name: value`"),
                )
            };
            let (name, value) = h.split_once(':').ok_or_else(|| bad("no colon"))?;
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad("bad header name"))?;
            let mut value = reqwest::header::HeaderValue::from_str(value.trim())
                .map_err(|_| bad("bad header value"))?;
            value.set_sensitive(true);
            webhook_headers.append(name, value);
        }
        let mut signal_targets = Vec::new();
        if let Some(name) = self
            .signal_process
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if name.contains('/') {
                return Err(Error::config(
                    "--signal-process",
                    name,
                    "a process name such as nginx, not a path",
                ));
            }
            signal_targets.push(SignalTarget::Name(name.to_string()));
        }
        if let Some(p) = self.signal_pidfile {
            signal_targets.push(SignalTarget::Pidfile(p));
        }
        let signal = parse_signal(&self.signal).ok_or_else(|| {
            Error::config(
                "--signal",
                self.signal.clone(),
                "HUP, USR1, USR2, TERM, INT, QUIT, WINCH or a signal number",
            )
        })?;
        let confirm_url = self
            .confirm_url
            .as_ref()
            .map(|u| parse_url("--confirm-url", &u.0))
            .transpose()?;
        if confirm_url.is_some() && signal_targets.is_empty() {
            return Err(Error::config(
                "--confirm-url",
                confirm_url.as_ref().map(|u| u.shown.clone()).unwrap_or_default(),
                "to be used with --signal-process or --signal-pidfile (it confirms the signal took effect)",
            ));
        }
        let validate = self
            .validate_command
            .as_ref()
            .map(|Redacted(c)| {
                CommandLine::parse(c).map_err(|e| Error::config("--validate-command", redact(c), e))
            })
            .transpose()?;
        let command = self
            .command
            .as_ref()
            .map(|Redacted(c)| {
                CommandLine::parse(c).map_err(|e| Error::config("--command", redact(c), e))
            })
            .transpose()?;
        if let Some(p) = self.poll_interval {
            positive("--poll-interval", p)?;
        }
        if self.debounce_max < self.debounce {
            return Err(Error::config(
                "--debounce-max",
                humantime::format_duration(self.debounce_max).to_string(),
                format!(
                    "at least --debounce ({})",
                    humantime::format_duration(self.debounce)
                ),
            ));
        }
        Ok(Settings {
            watch,
            poll_interval: self.poll_interval,
            debounce: self.debounce,
            debounce_max: self.debounce_max,
            recheck_interval: positive("--recheck-interval", self.recheck_interval)?,
            sync_to: self.sync_to.map(|t| std::path::absolute(&t).unwrap_or(t)),
            render: self.render,
            validate,
            webhooks,
            webhook_method,
            webhook_status: self.webhook_status,
            webhook_headers,
            webhook_timeout: positive("--webhook-timeout", self.webhook_timeout)?,
            signal_targets,
            signal,
            confirm_url,
            confirm: self.confirm,
            confirm_timeout: positive("--confirm-timeout", self.confirm_timeout)?,
            command,
            command_timeout: positive("--command-timeout", self.command_timeout)?,
            retry_initial: positive("--retry-initial", self.retry_initial)?,
            retry_max: self.retry_max.max(self.retry_initial),
            reload_on_start: self.reload_on_start,
            once: self.once,
        })
    }
}

impl Settings {
    /// Whether any action besides sync and validation is configured.
    pub fn has_reload_actions(&self) -> bool {
        !self.webhooks.is_empty() || !self.signal_targets.is_empty() || self.command.is_some()
    }

    /// Whether an HTTP client is needed.
    pub fn needs_http(&self) -> bool {
        !self.webhooks.is_empty() || self.confirm_url.is_some()
    }
}
