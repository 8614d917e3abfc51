//! log2json's options (each a flag and an env var) and their validation into [`Settings`].
use std::{collections::HashMap, path::PathBuf, time::Duration};

use clap::Args;
use common::{
    config::{parse_byte_size, parse_duration},
    parse::{FieldType, Format, MultilineConfig, Options, Zone},
};

use crate::Error;

// (Plain comments here: a doc comment would become the --help description.)
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "log2json")]
pub struct Config {
    /// Files to read: paths or globs (`/var/log/app/*.log`), repeat or comma-separate.
    /// `-` or none reads stdin (and exits at its end).
    #[arg(
        long = "path",
        env = "LOG2JSON_PATH",
        value_delimiter = ',',
        value_name = "GLOB"
    )]
    pub paths: Vec<String>,

    /// Globs of files to skip (`*.gz`; without '/' they match the file name).
    #[arg(
        long,
        env = "LOG2JSON_EXCLUDE",
        value_delimiter = ',',
        value_name = "GLOB"
    )]
    pub exclude: Vec<String>,

    /// Where files found at start without a checkpoint are read from: head or end.
    #[arg(long, env = "LOG2JSON_START_AT", default_value = "head", value_name = "WHERE", value_parser = ["head", "end"])]
    pub start_at: String,

    /// Directory for read checkpoints (a volume that survives restarts); none keeps no state.
    #[arg(long, env = "LOG2JSON_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Line format: syslog, syslog5424, nginx (= apache = combined), apache_error, log4j,
    /// logfmt, json, cri, raw (no parsing).
    #[arg(
        long,
        env = "LOG2JSON_FORMAT",
        default_value = "raw",
        value_name = "FORMAT"
    )]
    pub format: String,

    /// A regex with named captures, one field per capture (`(?P<level>\w+)`); a capture named
    /// `timestamp` becomes @timestamp. Replaces --format.
    #[arg(long, env = "LOG2JSON_PATTERN", value_name = "REGEX")]
    pub pattern: Option<String>,

    /// Types of pattern captures: `status=int,bytes=int,ratio=float,ok=bool`.
    #[arg(
        long = "type",
        env = "LOG2JSON_TYPES",
        value_delimiter = ',',
        value_name = "NAME=TYPE"
    )]
    pub types: Vec<String>,

    /// strftime format of the `timestamp` capture (`%d/%m/%Y %H:%M:%S`); default: known shapes.
    #[arg(long, env = "LOG2JSON_TIME_FORMAT", value_name = "STRFTIME")]
    pub time_format: Option<String>,

    /// Zone of timestamps written without one (syslog, apache_error, log4j, patterns): UTC, an
    /// offset (+02:00) or an IANA name (Europe/Berlin).
    #[arg(
        long,
        env = "LOG2JSON_TIMEZONE",
        default_value = "UTC",
        value_name = "ZONE"
    )]
    pub timezone: String,

    /// Join continuation lines: a regex that matches the FIRST line of each record
    /// (`^\d{4}-\d{2}-\d{2}`); other lines are appended to the record before them.
    #[arg(long, env = "LOG2JSON_MULTILINE_START", value_name = "REGEX")]
    pub multiline_start: Option<String>,

    /// Join continuation lines by indentation: lines starting with a space or tab (and Java's
    /// `Caused by:`) belong to the record before them.
    #[arg(long, env = "LOG2JSON_MULTILINE_INDENT", default_value = "false", value_name = "BOOL", value_parser = common::config::parse_bool, action = clap::ArgAction::Set)]
    pub multiline_indent: bool,

    /// A multiline record is cut at this many lines.
    #[arg(
        long,
        env = "LOG2JSON_MULTILINE_MAX_LINES",
        default_value = "500",
        value_name = "N"
    )]
    pub multiline_max_lines: usize,

    /// A multiline record is cut at this size.
    #[arg(long, env = "LOG2JSON_MULTILINE_MAX_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub multiline_max_bytes: u64,

    /// A pending multiline record is written when no line joined it for this long.
    #[arg(long, env = "LOG2JSON_MULTILINE_TIMEOUT", default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub multiline_timeout: Duration,

    /// Longer lines are cut into pieces of this size, each marked `"truncated": true`.
    #[arg(long, env = "LOG2JSON_MAX_LINE_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub max_line_bytes: u64,

    /// Static fields added to every record: `env=prod,team=web`.
    #[arg(
        long = "field",
        env = "LOG2JSON_FIELDS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub fields: Vec<String>,

    /// Pod name (downward API), added as field `pod`.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,

    /// Pod namespace (downward API), added as field `namespace`.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub pod_namespace: Option<String>,

    /// Where records go: `stdout` (or `-`), a file path (rotated by size), or an http(s) URL
    /// that receives NDJSON POSTs.
    #[arg(
        long,
        env = "LOG2JSON_OUTPUT",
        default_value = "stdout",
        value_name = "WHERE"
    )]
    pub output: String,

    /// Output format; json (one object per line) is the only one. Accepts the guide's
    /// OUTPUT_FORMAT=json.
    #[arg(long, env = "OUTPUT_FORMAT", default_value = "json", value_name = "FORMAT", value_parser = parse_output_format)]
    pub output_format: String,

    /// File output: rotate when the file would pass this size.
    #[arg(long, env = "LOG2JSON_OUTPUT_MAX_BYTES", default_value = "100MiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub output_max_bytes: u64,

    /// File output: rotated files kept (`out.json.1` .. `.N`).
    #[arg(
        long,
        env = "LOG2JSON_OUTPUT_MAX_FILES",
        default_value = "5",
        value_name = "N"
    )]
    pub output_max_files: usize,

    /// HTTP output: a POST is sent at this body size ...
    #[arg(long, env = "LOG2JSON_HTTP_BATCH_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = parse_byte_size)]
    pub http_batch_bytes: u64,

    /// ... or when the oldest unsent record is this old.
    #[arg(long, env = "LOG2JSON_HTTP_FLUSH_INTERVAL", default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub http_flush_interval: Duration,

    /// HTTP output (and ELASTICSEARCH_HOST): PEM file of CA certificates trusted in addition
    /// to the built-in roots, for an https endpoint with a private CA.
    #[arg(long, env = "LOG2JSON_HTTP_CA_FILE", value_name = "FILE")]
    pub http_ca_file: Option<std::path::PathBuf>,

    /// HTTP output: do not verify the server's certificate (test clusters only).
    #[arg(long, env = "LOG2JSON_HTTP_TLS_INSECURE", default_value = "false", value_name = "BOOL", value_parser = common::config::parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub http_tls_insecure: bool,

    /// HTTP output: timeout of one POST.
    #[arg(long, env = "LOG2JSON_HTTP_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub http_timeout: Duration,

    /// Elasticsearch host from the guide's adapter pod spec (`elasticsearch.logging.svc`, with
    /// optional scheme and port). When set and --output is stdout, records are POSTed to its
    /// `_bulk` API (create into --es-index) instead.
    #[arg(long, env = "ELASTICSEARCH_HOST", value_name = "HOST")]
    pub elasticsearch_host: Option<String>,

    /// Index or data stream for ELASTICSEARCH_HOST.
    #[arg(
        long,
        env = "LOG2JSON_ES_INDEX",
        default_value = "logs-log2json-default",
        value_name = "INDEX"
    )]
    pub es_index: String,
}

fn parse_output_format(s: &str) -> Result<String, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "json" | "ndjson" | "jsonl" | "json_lines" => Ok("json".to_string()),
        _ => Err("log2json writes JSON lines only: expected json".to_string()),
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// Standard output.
    Stdout,
    /// A file, rotated by size.
    File(PathBuf),
    /// NDJSON POSTs to a URL; `bulk` adds Elasticsearch `create` action lines.
    Http {
        /// The URL.
        url: String,
        /// Elasticsearch `_bulk` body.
        bulk: bool,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Globs; empty = stdin.
    pub paths: Vec<String>,
    /// Excluded globs.
    pub exclude: Vec<String>,
    /// Start at the end of files found at start.
    pub start_at_end: bool,
    /// Checkpoint dir.
    pub data_dir: Option<PathBuf>,
    /// The format.
    pub format: Format,
    /// Parser options.
    pub options: Options,
    /// Multiline, if on.
    pub multiline: Option<MultilineConfig>,
    /// Max line size.
    pub max_line_bytes: usize,
    /// Pre-encoded static members (`"pod":"x","env":"prod"`).
    pub static_fields: String,
    /// Output.
    pub output: OutputTarget,
    /// File rotation size.
    pub output_max_bytes: u64,
    /// Rotated files kept.
    pub output_max_files: usize,
    /// HTTP batch size.
    pub http_batch_bytes: usize,
    /// HTTP flush interval.
    pub http_flush_interval: Duration,
    /// HTTP request timeout.
    pub http_timeout: Duration,
    /// TLS of the HTTP output.
    pub http_tls: common::http_client::ClientTls,
    /// Elasticsearch index for bulk.
    pub es_index: String,
}

fn bad(option: &str, value: &str, expected: impl Into<String>) -> Error {
    Error::Config {
        option: option.to_string(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

impl Config {
    /// Validates and resolves the options.
    pub fn settings(self) -> Result<Settings, Error> {
        let format = match &self.pattern {
            Some(p) => Format::Regex(p.clone()),
            None => self
                .format
                .parse::<Format>()
                .map_err(|e| bad("--format", &self.format, e))?,
        };
        let zone: Zone = self
            .timezone
            .parse()
            .map_err(|e| bad("--timezone", &self.timezone, e))?;
        let mut types = HashMap::new();
        for t in &self.types {
            let (name, ty) = t
                .split_once('=')
                .ok_or_else(|| bad("--type", t, "NAME=TYPE such as status=int"))?;
            let ty: FieldType = ty.parse().map_err(|e| bad("--type", t, e))?;
            types.insert(name.trim().to_string(), ty);
        }
        if !types.is_empty() && self.pattern.is_none() {
            return Err(bad(
                "--type",
                &self.types.join(","),
                "it only applies to --pattern captures",
            ));
        }
        let options = Options {
            zone,
            time_format: self.time_format.clone(),
            types,
            now: None,
        };
        // Build once here so a bad pattern or time format exits 2 at start.
        common::parse::Parser::new(format.clone(), options.clone())
            .map_err(|e| Error::Parser(e.to_string()))?;

        let multiline = MultilineConfig::from_options(
            self.multiline_start.as_deref(),
            self.multiline_indent,
            self.multiline_max_lines,
            self.multiline_max_bytes as usize,
            self.multiline_timeout,
        )
        .map_err(|e| bad(e.option, &e.value, e.expected))?;
        if self.max_line_bytes < 64 {
            return Err(bad(
                "--max-line-bytes",
                &self.max_line_bytes.to_string(),
                "at least 64 bytes",
            ));
        }

        let mut rec = common::parse::Record::new();
        rec.begin();
        for f in &self.fields {
            let (k, v) = common::config::parse_field(f).map_err(|e| bad("--field", f, e))?;
            rec.str(&k, &v);
        }
        if let Some(p) = self.pod_name.as_deref().filter(|p| !p.is_empty()) {
            rec.str("pod", p);
        }
        if let Some(n) = self.pod_namespace.as_deref().filter(|n| !n.is_empty()) {
            rec.str("namespace", n);
        }
        let static_fields = rec.as_str()[1..].to_string();

        let out = self.output.trim();
        let output = if out == "stdout" || out == "-" {
            match self
                .elasticsearch_host
                .as_deref()
                .map(str::trim)
                .filter(|h| !h.is_empty())
            {
                Some(host) => OutputTarget::Http {
                    url: es_bulk_url(host, &self.es_index)
                        .map_err(|e| bad("ELASTICSEARCH_HOST", host, e))?,
                    bulk: true,
                },
                None => OutputTarget::Stdout,
            }
        } else if out.starts_with("http://") || out.starts_with("https://") {
            reqwest::Url::parse(out)
                .map_err(|e| bad("--output", out, format!("a valid URL ({e})")))?;
            OutputTarget::Http {
                url: out.to_string(),
                bulk: out.contains("/_bulk"),
            }
        } else if out.is_empty() {
            return Err(bad(
                "--output",
                out,
                "stdout, a file path or an http(s) URL",
            ));
        } else {
            OutputTarget::File(PathBuf::from(out))
        };
        let paths: Vec<String> = self
            .paths
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let stdin = paths.is_empty() || paths == ["-"];
        if !stdin && paths.iter().any(|p| p == "-") {
            return Err(bad(
                "--path",
                &paths.join(","),
                "either - (stdin) or file globs, not both",
            ));
        }
        Ok(Settings {
            paths: if stdin { Vec::new() } else { paths },
            exclude: self.exclude,
            start_at_end: self.start_at == "end",
            data_dir: self.data_dir,
            format,
            options,
            multiline,
            max_line_bytes: self.max_line_bytes as usize,
            static_fields,
            output,
            output_max_bytes: self.output_max_bytes.max(1),
            output_max_files: self.output_max_files,
            http_batch_bytes: (self.http_batch_bytes as usize).max(1),
            http_flush_interval: self.http_flush_interval,
            http_timeout: self.http_timeout,
            http_tls: common::http_client::ClientTls {
                ca_file: self.http_ca_file.clone(),
                insecure: self.http_tls_insecure,
            },
            es_index: self.es_index,
        })
    }
}

/// `elasticsearch.logging.svc` -> `http://elasticsearch.logging.svc:9200/<index>/_bulk`.
fn es_bulk_url(host: &str, index: &str) -> Result<String, String> {
    let with_scheme = if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| format!("a host name, host:port or URL ({e})"))?;
    if url.port().is_none() && !host.contains("://") {
        url.set_port(Some(9200))
            .map_err(|_| "a host name, host:port or URL".to_string())?;
    }
    let base = url.as_str().trim_end_matches('/').to_string();
    Ok(format!("{base}/{index}/_bulk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es_urls() {
        assert_eq!(
            es_bulk_url("elasticsearch.logging.svc.cluster.local", "logs-a-b").unwrap(),
            "http://elasticsearch.logging.svc.cluster.local:9200/logs-a-b/_bulk"
        );
        assert_eq!(
            es_bulk_url("https://es:9243", "x").unwrap(),
            "https://es:9243/x/_bulk"
        );
        assert_eq!(
            es_bulk_url("es:9201", "x").unwrap(),
            "http://es:9201/x/_bulk"
        );
    }

    #[test]
    fn output_formats() {
        assert_eq!(parse_output_format("JSON").unwrap(), "json");
        assert!(parse_output_format("text").unwrap_err().contains("json"));
    }
}
