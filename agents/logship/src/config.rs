//! logship's options (flags and env) and their validation into [`Settings`], the checked form
//! the pipeline and sinks are built from.
//!
//! Precedence: flags and env win; a `--fluent-bit-config` file fills what they leave unset.
use std::{path::PathBuf, time::Duration};

use common::{
    config::{parse_bool, parse_byte_size, parse_duration},
    parse::{Format, MultilineConfig, Options, Zone},
    Secret,
};

use crate::{fluentbit, Error};

/// The agent's options.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "logship")]
pub struct Config {
    /// Glob of files to tail (repeatable, or comma-separated in env), e.g. '/var/log/app/*.log'.
    #[arg(
        long = "path",
        env = "LOGSHIP_PATH",
        value_delimiter = ',',
        value_name = "GLOB"
    )]
    pub paths: Vec<String>,

    /// Glob of paths to skip (repeatable, or comma-separated in env).
    #[arg(
        long = "exclude",
        env = "LOGSHIP_EXCLUDE",
        value_delimiter = ',',
        value_name = "GLOB"
    )]
    pub excludes: Vec<String>,

    /// Where a file found at start with no checkpoint is read from: head (default: nothing
    /// written before logship started is lost) or end. Files appearing later are read from
    /// their head.
    #[arg(long, env = "LOGSHIP_START_AT", value_name = "head|end")]
    pub start_at: Option<StartAt>,

    /// Directory for checkpoints and the dead-letter file (an emptyDir or a volume). Without it
    /// nothing is persisted: a restart reads the files again (IDs keep Elasticsearch free of
    /// duplicates).
    #[arg(long, env = "LOGSHIP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Longest line kept whole; longer lines are split into pieces marked `truncated`.
    #[arg(long, env = "LOGSHIP_MAX_LINE_BYTES", value_name = "SIZE", value_parser = parse_byte_size)]
    pub max_line_bytes: Option<u64>,

    /// How long a last line without a newline is held before it is shipped (marked `partial`).
    #[arg(long, env = "LOGSHIP_PARTIAL_LINE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub partial_line_timeout: Option<Duration>,

    /// Polling fallback: how often globs are rescanned and files stat'ed (inotify is the fast path).
    #[arg(long, env = "LOGSHIP_RESCAN_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub rescan_interval: Option<Duration>,

    /// Memory bound: reading pauses while this much line text is read and not yet delivered
    /// (the files are the buffer). Records take about twice this in memory (default 2MiB).
    #[arg(long, env = "LOGSHIP_MAX_BUFFER", value_name = "SIZE", value_parser = parse_byte_size)]
    pub max_buffer: Option<u64>,

    /// How often delivered offsets are written to the data dir (and once at shutdown).
    #[arg(long, env = "LOGSHIP_CHECKPOINT_INTERVAL", default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,

    /// Static field added to every record, KEY=VALUE with dotted keys (repeatable, or
    /// comma-separated in env), e.g. kubernetes.pod.name=$(POD_NAME).
    #[arg(
        long = "field",
        env = "LOGSHIP_FIELDS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub fields: Vec<String>,

    /// Parse each line with one of log2json's formats; parsed fields go under the record's
    /// root and a parsed timestamp becomes `@timestamp`.
    #[arg(long, env = "LOGSHIP_PARSE", value_name = "FORMAT")]
    pub parse: Option<String>,

    /// Parse each line with a regex with named captures (`(?P<level>\w+)`), one field per
    /// capture; a capture named `timestamp` becomes `@timestamp`, one named `message` the
    /// message. Instead of --parse.
    #[arg(long, env = "LOGSHIP_PARSE_PATTERN", value_name = "REGEX")]
    pub parse_pattern: Option<String>,

    /// Zone of parsed timestamps written without one (syslog, log4j, patterns): UTC, an
    /// offset (+02:00) or an IANA name (Europe/Berlin).
    #[arg(long, env = "LOGSHIP_TIMEZONE", value_name = "ZONE")]
    pub timezone: Option<String>,

    /// Join continuation lines into one record: a regex matching the FIRST line of each
    /// record (`^\d{4}-\d{2}-\d{2}`); other lines are appended to the record before them.
    #[arg(long, env = "LOGSHIP_MULTILINE_START", value_name = "REGEX")]
    pub multiline_start: Option<String>,

    /// Join continuation lines by indentation: lines starting with a space or a tab (and
    /// Java's `Caused by:`) belong to the record before them.
    #[arg(long, env = "LOGSHIP_MULTILINE_INDENT", value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub multiline_indent: Option<bool>,

    /// A multiline record is cut after this many lines.
    #[arg(
        long,
        env = "LOGSHIP_MULTILINE_MAX_LINES",
        default_value = "500",
        value_name = "N"
    )]
    pub multiline_max_lines: usize,

    /// A multiline record is cut at this size.
    #[arg(long, env = "LOGSHIP_MULTILINE_MAX_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub multiline_max_bytes: u64,

    /// A pending multiline record is shipped when no line joined it for this long.
    #[arg(long, env = "LOGSHIP_MULTILINE_TIMEOUT", default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub multiline_timeout: Duration,

    /// Elasticsearch/OpenSearch URL (repeatable, or comma-separated in env; tried in order,
    /// failing over). Without any, records go to stdout as NDJSON.
    #[arg(
        long = "es-url",
        env = "LOGSHIP_ES_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub es_urls: Vec<String>,

    /// Elasticsearch host as the guide's pods set it (a name, host:port, or a URL).
    #[arg(long, env = "ELASTICSEARCH_HOST", value_name = "HOST")]
    pub es_host: Option<String>,

    /// Elasticsearch port for --es-host (default 9200).
    #[arg(long, env = "ELASTICSEARCH_PORT", value_name = "PORT")]
    pub es_port: Option<u16>,

    /// Index name; strftime patterns (%Y.%m.%d) use the record's date (default logs-%Y.%m.%d).
    #[arg(long, env = "LOGSHIP_ES_INDEX", value_name = "INDEX")]
    pub es_index: Option<String>,

    /// Write to this data stream instead of an index (needs an index template in Elasticsearch).
    #[arg(long, env = "LOGSHIP_ES_DATA_STREAM", value_name = "NAME")]
    pub es_data_stream: Option<String>,

    /// Basic-auth user.
    #[arg(long, env = "LOGSHIP_ES_USER", value_name = "USER")]
    pub es_user: Option<String>,

    /// Basic-auth password.
    #[arg(long, env = "LOGSHIP_ES_PASSWORD", value_name = "PASSWORD")]
    pub es_password: Option<Secret>,

    /// File holding the basic-auth password.
    #[arg(long, env = "LOGSHIP_ES_PASSWORD_FILE", value_name = "FILE")]
    pub es_password_file: Option<PathBuf>,

    /// API key (the base64 `id:key` Elasticsearch hands out), sent as `Authorization: ApiKey`.
    #[arg(long, env = "LOGSHIP_ES_API_KEY", value_name = "KEY")]
    pub es_api_key: Option<Secret>,

    /// File holding the API key.
    #[arg(long, env = "LOGSHIP_ES_API_KEY_FILE", value_name = "FILE")]
    pub es_api_key_file: Option<PathBuf>,

    /// Bearer token, sent as `Authorization: Bearer`.
    #[arg(long, env = "LOGSHIP_ES_BEARER_TOKEN", value_name = "TOKEN")]
    pub es_bearer_token: Option<Secret>,

    /// File holding the bearer token.
    #[arg(long, env = "LOGSHIP_ES_BEARER_TOKEN_FILE", value_name = "FILE")]
    pub es_bearer_token_file: Option<PathBuf>,

    /// PEM file of CA certificates trusted in addition to the built-in roots.
    #[arg(long, env = "LOGSHIP_ES_CA_FILE", value_name = "FILE")]
    pub es_ca_file: Option<PathBuf>,

    /// Do not verify the server's certificate (test clusters only).
    #[arg(long, env = "LOGSHIP_ES_TLS_INSECURE", value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub es_tls_insecure: Option<bool>,

    /// Compress request bodies with gzip.
    #[arg(long, env = "LOGSHIP_ES_GZIP", value_name = "BOOL", value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub es_gzip: Option<bool>,

    /// Most bytes of records in one bulk request (default 1MiB).
    #[arg(long, env = "LOGSHIP_BATCH_MAX_BYTES", value_name = "SIZE", value_parser = parse_byte_size)]
    pub batch_max_bytes: Option<u64>,

    /// Most records in one bulk request.
    #[arg(
        long,
        env = "LOGSHIP_BATCH_MAX_RECORDS",
        default_value = "10000",
        value_name = "N"
    )]
    pub batch_max_records: usize,

    /// How long a batch waits to fill before it is sent (default 1s).
    #[arg(long, env = "LOGSHIP_BATCH_LINGER", value_name = "DURATION", value_parser = parse_duration)]
    pub batch_linger: Option<Duration>,

    /// Bulk requests in flight at once.
    #[arg(
        long,
        env = "LOGSHIP_ES_MAX_IN_FLIGHT",
        default_value = "2",
        value_name = "N"
    )]
    pub es_max_in_flight: usize,

    /// Timeout of one bulk request.
    #[arg(long, env = "LOGSHIP_ES_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub es_timeout: Duration,

    /// Longest pause between retries.
    #[arg(long, env = "LOGSHIP_RETRY_MAX_BACKOFF", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub retry_max_backoff: Duration,

    /// Read a fluent-bit classic config (one tail input, one es output) and use its settings
    /// where flags and env leave them unset.
    #[arg(long, env = "LOGSHIP_FLUENT_BIT_CONFIG", value_name = "FILE")]
    pub fluent_bit_config: Option<PathBuf>,
}

/// Where a file found at start with no checkpoint is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartAt {
    /// From its first byte.
    Head,
    /// From its current end.
    End,
}

/// How records are authenticated to Elasticsearch.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Basic`.
    Basic { user: String, password: Secret },
    /// `Authorization: ApiKey`.
    ApiKey(Secret),
    /// `Authorization: Bearer`.
    Bearer(Secret),
}

/// The Elasticsearch sink's checked settings.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// Base URLs, in failover order, without a trailing slash.
    pub urls: Vec<url::Url>,
    /// Index pattern or data stream name.
    pub index: String,
    /// True for a data stream (a fixed name).
    pub data_stream: bool,
    pub auth: Option<Auth>,
    pub ca_file: Option<PathBuf>,
    pub tls_insecure: bool,
    pub gzip: bool,
    pub max_in_flight: usize,
    pub timeout: Duration,
}

/// A line format and its options (`--parse`, `--parse-pattern`, `--timezone`).
#[derive(Debug, Clone)]
pub struct ParseSpec {
    pub format: Format,
    pub options: Options,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub paths: Vec<String>,
    pub excludes: Vec<String>,
    pub start_at: StartAt,
    pub data_dir: Option<PathBuf>,
    pub max_line_bytes: usize,
    pub partial_line_timeout: Duration,
    pub rescan_interval: Duration,
    pub max_buffer: usize,
    pub checkpoint_interval: Duration,
    /// Static fields as (dotted key, value).
    pub fields: Vec<(String, String)>,
    /// `--parse`/`--parse-pattern`, checked.
    pub parse: Option<ParseSpec>,
    /// `--multiline-*`, checked.
    pub multiline: Option<MultilineConfig>,
    pub batch_max_bytes: usize,
    pub batch_max_records: usize,
    pub batch_linger: Duration,
    pub retry_max_backoff: Duration,
    /// None: stdout.
    pub es: Option<EsSettings>,
}

impl Config {
    /// `--parse`, `--parse-pattern` and `--timezone` as a checked format (the parser is built
    /// once here so a bad pattern exits 2 at start).
    fn parse_spec(&self) -> Result<Option<ParseSpec>, Error> {
        let format = match (&self.parse, &self.parse_pattern) {
            (Some(name), Some(_)) if !name.eq_ignore_ascii_case("regex") => {
                return Err(invalid(
                    "--parse",
                    name,
                    "either --parse FORMAT or --parse-pattern REGEX, not both",
                ))
            }
            (_, Some(p)) => Format::Regex(p.clone()),
            (Some(name), None) => name.parse::<Format>().map_err(|e| {
                invalid(
                    "--parse",
                    name,
                    &e.replace("give --pattern", "give --parse-pattern"),
                )
            })?,
            (None, None) => {
                if let Some(z) = &self.timezone {
                    return Err(invalid(
                        "--timezone",
                        z,
                        "it applies to parsed timestamps: give --parse or --parse-pattern too",
                    ));
                }
                return Ok(None);
            }
        };
        let zone: Zone = match &self.timezone {
            Some(z) => z
                .parse()
                .map_err(|e: String| invalid("--timezone", z, &e))?,
            None => Zone::default(),
        };
        let options = Options {
            zone,
            ..Options::default()
        };
        common::parse::Parser::new(format.clone(), options.clone()).map_err(|e| {
            let option = if self.parse_pattern.is_some() {
                "--parse-pattern"
            } else {
                "--parse"
            };
            Error::Config(format!("invalid {option}: {e}"))
        })?;
        Ok(Some(ParseSpec { format, options }))
    }
}

fn invalid(option: &str, value: impl std::fmt::Display, expected: &str) -> Error {
    Error::Config(format!(
        "invalid value \"{value}\" for {option}: {expected}"
    ))
}

impl Config {
    /// Validates the options (after filling unset ones from a fluent-bit config).
    pub fn validate(mut self) -> Result<Settings, Error> {
        if let Some(file) = self.fluent_bit_config.clone() {
            fluentbit::apply(&file, &mut self)?;
        }
        if self.paths.iter().all(|p| p.trim().is_empty()) {
            return Err(Error::Config(
                "no files to tail: give --path GLOB (or LOGSHIP_PATH), e.g. --path '/var/log/app/*.log'".into(),
            ));
        }
        let mut fields = Vec::new();
        for f in &self.fields {
            let (k, v) = common::config::parse_field(f).map_err(|e| invalid("--field", f, &e))?;
            let first = k.split('.').next().unwrap_or("");
            if matches!(first, "@timestamp" | "message" | "log") {
                return Err(invalid(
                    "--field",
                    f,
                    "@timestamp, message and log.* are set by logship; choose another key",
                ));
            }
            fields.push((k, v));
        }
        let parse = self.parse_spec()?;
        let multiline = MultilineConfig::from_options(
            self.multiline_start.as_deref(),
            self.multiline_indent.unwrap_or(false),
            self.multiline_max_lines,
            self.multiline_max_bytes.min(usize::MAX as u64) as usize,
            self.multiline_timeout,
        )
        .map_err(|e| invalid(e.option, e.value, &format!("expected {}", e.expected)))?;
        let es = self.es_settings()?;
        let max_buffer = self.max_buffer.unwrap_or(2 << 20).max(64 << 10) as usize;
        let batch_max_bytes = self.batch_max_bytes.unwrap_or(1 << 20).max(1024) as usize;
        if self.batch_max_records == 0 {
            return Err(invalid("--batch-max-records", 0, "expected at least 1"));
        }
        Ok(Settings {
            paths: self
                .paths
                .into_iter()
                .filter(|p| !p.trim().is_empty())
                .collect(),
            excludes: self
                .excludes
                .into_iter()
                .filter(|p| !p.trim().is_empty())
                .collect(),
            start_at: self.start_at.unwrap_or(StartAt::Head),
            data_dir: self.data_dir,
            max_line_bytes: self.max_line_bytes.unwrap_or(1 << 20).max(256) as usize,
            partial_line_timeout: self.partial_line_timeout.unwrap_or(Duration::from_secs(5)),
            rescan_interval: self.rescan_interval.unwrap_or(Duration::from_secs(1)),
            max_buffer,
            checkpoint_interval: self.checkpoint_interval,
            fields,
            parse,
            multiline,
            batch_max_bytes: batch_max_bytes.min(max_buffer),
            batch_max_records: self.batch_max_records,
            batch_linger: self.batch_linger.unwrap_or(Duration::from_secs(1)),
            retry_max_backoff: self.retry_max_backoff.max(Duration::from_millis(100)),
            es,
        })
    }

    fn es_settings(&self) -> Result<Option<EsSettings>, Error> {
        let mut urls = Vec::new();
        for u in self.es_urls.iter().filter(|u| !u.trim().is_empty()) {
            urls.push(parse_url("--es-url", u.trim())?);
        }
        if let Some(host) = self
            .es_host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            urls.push(host_url(host, self.es_port)?);
        }
        if urls.is_empty() {
            return Ok(None);
        }
        let (index, data_stream) = match (&self.es_index, &self.es_data_stream) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "--es-index and --es-data-stream were both given; use only one".into(),
                ))
            }
            (_, Some(ds)) => (ds.clone(), true),
            (Some(i), None) => (i.clone(), false),
            (None, None) => ("logs-%Y.%m.%d".to_string(), false),
        };
        check_index(&index, data_stream)?;
        let password = common::secret::resolve(
            "--es-password",
            self.es_password.clone(),
            self.es_password_file.as_deref(),
        )
        .map_err(Error::Common)?;
        let api_key = common::secret::resolve(
            "--es-api-key",
            self.es_api_key.clone(),
            self.es_api_key_file.as_deref(),
        )
        .map_err(Error::Common)?;
        let bearer = common::secret::resolve(
            "--es-bearer-token",
            self.es_bearer_token.clone(),
            self.es_bearer_token_file.as_deref(),
        )
        .map_err(Error::Common)?;
        let auth = match (self.es_user.clone(), password, api_key, bearer) {
            (None, None, None, None) => None,
            (Some(user), password, None, None) => Some(Auth::Basic {
                user,
                password: password.unwrap_or_else(|| Secret::new("")),
            }),
            (None, Some(_), None, None) => {
                return Err(Error::Config("--es-password was given without --es-user".into()))
            }
            (None, None, Some(k), None) => Some(Auth::ApiKey(k)),
            (None, None, None, Some(t)) => Some(Auth::Bearer(t)),
            _ => {
                return Err(Error::Config(
                    "give only one kind of Elasticsearch credentials: --es-user/--es-password, --es-api-key or --es-bearer-token".into(),
                ))
            }
        };
        if let Some(ca) = &self.es_ca_file {
            if !ca.is_file() {
                return Err(invalid(
                    "--es-ca-file",
                    ca.display(),
                    "expected a readable PEM file",
                ));
            }
        }
        if self.es_max_in_flight == 0 {
            return Err(invalid("--es-max-in-flight", 0, "expected at least 1"));
        }
        Ok(Some(EsSettings {
            urls,
            index,
            data_stream,
            auth,
            ca_file: self.es_ca_file.clone(),
            tls_insecure: self.es_tls_insecure.unwrap_or(false),
            gzip: self.es_gzip.unwrap_or(false),
            max_in_flight: self.es_max_in_flight,
            timeout: self.es_timeout,
        }))
    }
}

fn parse_url(option: &str, s: &str) -> Result<url::Url, Error> {
    let u = url::Url::parse(s).map_err(|_| {
        invalid(
            option,
            common::secret::redact(s),
            "expected a URL such as http://elasticsearch:9200",
        )
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(invalid(
            option,
            common::secret::redact(s),
            "expected an http:// or https:// URL with a host",
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            option,
            common::secret::redact(s),
            "put credentials in --es-user/--es-password(-file), not in the URL",
        ));
    }
    Ok(u)
}

/// `ELASTICSEARCH_HOST` as pods set it: a bare name (`elasticsearch.logging.svc.cluster.local`),
/// `host:port`, or a full URL; `ELASTICSEARCH_PORT` applies to the first two (default 9200).
pub fn host_url(host: &str, port: Option<u16>) -> Result<url::Url, Error> {
    if host.contains("://") {
        return parse_url("ELASTICSEARCH_HOST", host);
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(h, p)| p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')));
    let s = if has_port {
        format!("http://{host}")
    } else {
        format!("http://{host}:{}", port.unwrap_or(9200))
    };
    parse_url("ELASTICSEARCH_HOST", &s)
}

fn check_index(index: &str, data_stream: bool) -> Result<(), Error> {
    let option = if data_stream {
        "--es-data-stream"
    } else {
        "--es-index"
    };
    if data_stream && index.contains('%') {
        return Err(invalid(
            option,
            index,
            "a data stream has a fixed name; use --es-index for date patterns",
        ));
    }
    // Check the name as it will be sent (a bad strftime pattern fails here, not at run time).
    let mut name = String::new();
    use std::fmt::Write as _;
    if write!(name, "{}", chrono::Utc::now().format(index)).is_err() {
        return Err(invalid(
            option,
            index,
            "expected a valid strftime pattern such as logs-%Y.%m.%d",
        ));
    }
    let bad = name.is_empty()
        || name.starts_with(['-', '_', '+'])
        || name.chars().any(|c| {
            c.is_ascii_uppercase()
                || matches!(
                    c,
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                )
        });
    if bad {
        return Err(invalid(option, index, "expected a lowercase index name without spaces or \\/*?\"<>|,#: (strftime patterns such as %Y.%m.%d allowed)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elasticsearch_host_forms() {
        let u = host_url("elasticsearch.logging.svc.cluster.local", None).unwrap();
        assert_eq!(
            u.as_str(),
            "http://elasticsearch.logging.svc.cluster.local:9200/"
        );
        assert_eq!(
            host_url("es", Some(9201)).unwrap().as_str(),
            "http://es:9201/"
        );
        assert_eq!(
            host_url("es:9300", Some(9201)).unwrap().as_str(),
            "http://es:9300/"
        );
        assert_eq!(
            host_url("https://es.example:443", None).unwrap().as_str(),
            "https://es.example/"
        );
        assert!(host_url("http://u:pw@es", None)
            .unwrap_err()
            .to_string()
            .contains("***"));
    }

    fn base() -> Config {
        Config {
            paths: vec!["/x/*.log".into()],
            checkpoint_interval: Duration::from_secs(1),
            batch_max_records: 10,
            es_max_in_flight: 1,
            es_timeout: Duration::from_secs(1),
            retry_max_backoff: Duration::from_secs(1),
            ..Config::default()
        }
    }

    #[test]
    fn validation_names_the_option() {
        assert!(base().validate().unwrap().es.is_none());
        let mut c = base();
        c.paths.clear();
        assert!(c.validate().unwrap_err().to_string().contains("--path"));
        let mut c = base();
        c.fields = vec!["message=x".into()];
        assert!(c.validate().unwrap_err().to_string().contains("--field"));
        let mut c = base();
        c.es_host = Some("es".into());
        c.es_index = Some("Logs".into());
        assert!(c.validate().unwrap_err().to_string().contains("--es-index"));
        let mut c = base();
        c.es_host = Some("es".into());
        c.es_password = Some(Secret::new("pw"));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--es-user"), "{e}");
        let mut c = base();
        c.es_host = Some("es".into());
        let s = c.validate().unwrap().es.unwrap();
        assert_eq!(s.index, "logs-%Y.%m.%d");
    }
}
