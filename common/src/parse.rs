//! Log line formats: one fast parser per format, shared by log2json and logship.
//!
//! A [`Parser`] is built once from a [`Format`] and [`Options`]; [`Parser::parse`] writes the
//! fields of one line into a reusable [`Record`] (a JSON object writer: no `serde_json::Value`
//! per line). The fixed formats are hand-written byte scanners; only [`Format::Regex`] uses a
//! regex. [`Multiline`] joins continuation lines (stack traces) before parsing and
//! [`CriJoiner`] reassembles CRI partial (`P`) lines.
//!
//! # Record shape
//! Every record has `message` (the line's free text, trailing whitespace removed) unless the
//! format says otherwise. Timestamps become `@timestamp`, RFC 3339 in UTC
//! (`2015-10-18T18:01:47.978Z`), keeping the input's fraction precision (rounded up to 3, 6 or 9
//! digits). Times written without a zone are read in [`Options::zone`] (UTC by default). Fields
//! that are absent or `-` in the line are left out.
//!
//! | format | fields |
//! |---|---|
//! | `syslog` (RFC 3164) | `@timestamp`, `priority` (number), `facility`, `severity` (names; only with a `<PRI>`), `host`, `app`, `pid` (number when numeric), `message` |
//! | `syslog5424` | `@timestamp`, `priority`, `facility`, `severity`, `version`, `host`, `app`, `procid`, `msgid`, `structured_data` (object: SD-ID to object of params), `message` |
//! | `combined` (nginx and Apache access logs, common or combined) | `@timestamp`, `remote_addr`, `ident`, `remote_user`, `method`, `path`, `protocol` (or `request` when the request line is not three words), `status` (number), `size` (number; `-` is 0), `referer`, `user_agent`, `extra` (anything after the user agent) |
//! | `apache_error` (2.2 and 2.4) | `@timestamp`, `module`, `level`, `pid` and `tid` (numbers), `client`, `message` |
//! | `log4j` (log4j/logback patterns) | `@timestamp`, `level`, `thread`, `logger`, `message` |
//! | `logfmt` | every `key=value` as a string field (a bare `key` is `true`); `@timestamp` too when `ts`, `time` or `timestamp` holds a time |
//! | `json` | the object's members, passed through after validation (must be one object) |
//! | `cri` | `@timestamp`, `stream`, `message` (partial lines joined by [`CriJoiner`]) |
//! | `raw` | `message` only (no parsing; the default of log2json) |
//! | `regex` | one field per named capture that matched; a capture named `timestamp` becomes `@timestamp` (read with [`Options::time_format`], or the known shapes); [`Options::types`] makes captures numbers or booleans |
//!
//! A line that does not parse is never dropped: its record is `{"message": <the raw line>,
//! "parse_error": <why>}` and [`Parser::parse`] returns [`Outcome::Failed`] so the caller counts
//! it. syslog's missing year follows the rule in [`time`] (current year in the zone; a line more
//! than 31 days in the future is from last year; a January line read in December is next year's).
mod access;
mod apache_error;
mod cri;
mod json;
mod log4j;
mod logfmt;
mod multiline;
mod pattern;
mod record;
mod strftime;
mod syslog;
pub mod time;

use std::{collections::HashMap, fmt, str::FromStr};

pub use cri::{CriJoiner, CriLine};
pub use multiline::{Multiline, MultilineConfig, MultilineMode, MultilineOptionError};
pub use record::{escape_into, escape_into_bytes, Mark, Record};
pub use time::{TimeFormat, Zone};

/// A line format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// BSD syslog, RFC 3164 (`Jun 14 15:16:01 host app[pid]: msg`, optional `<PRI>`, also
    /// with an RFC 3339 timestamp as rsyslog writes it).
    Syslog3164,
    /// RFC 5424 syslog (`<34>1 2003-10-11T22:14:15.003Z host app procid msgid [sd] msg`).
    Syslog5424,
    /// nginx and Apache access logs (common and combined, same format).
    Combined,
    /// Apache error log (2.2 and 2.4 layouts).
    ApacheError,
    /// log4j/logback style (`2015-10-18 18:01:47,978 INFO [main] org.x.Y: msg`).
    Log4j,
    /// logfmt (`level=info msg="hello world"`).
    Logfmt,
    /// One JSON object per line, validated and passed through.
    Json,
    /// CRI container runtime log lines (`2024-01-01T00:00:00.000000000Z stdout F msg`).
    Cri,
    /// A user's regex with named captures.
    Regex(String),
    /// No parsing: the line becomes `message` (never fails).
    Raw,
}

impl Format {
    /// The names [`Format::from_str`] accepts (regex is given as a pattern instead).
    pub const NAMES: &'static str =
        "syslog (rfc3164), syslog5424 (rfc5424), nginx/apache/combined, apache_error, log4j, logfmt, json, cri, raw";

    /// The format's name, for metric labels and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Syslog3164 => "syslog",
            Format::Syslog5424 => "syslog5424",
            Format::Combined => "combined",
            Format::ApacheError => "apache_error",
            Format::Log4j => "log4j",
            Format::Logfmt => "logfmt",
            Format::Json => "json",
            Format::Cri => "cri",
            Format::Regex(_) => "regex",
            Format::Raw => "raw",
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(
            match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "syslog" | "syslog3164" | "rfc3164" | "bsd" => Format::Syslog3164,
                "syslog5424" | "rfc5424" => Format::Syslog5424,
                "nginx" | "apache" | "combined" | "common" | "clf" | "nginx_combined"
                | "apache_combined" => Format::Combined,
                "apache_error" | "apacheerror" => Format::ApacheError,
                "log4j" | "logback" | "java" => Format::Log4j,
                "logfmt" => Format::Logfmt,
                "json" | "ndjson" => Format::Json,
                "cri" | "containerd" | "crio" => Format::Cri,
                "raw" | "text" | "none" => Format::Raw,
                _ => {
                    return Err(format!(
                        "unknown format {s:?}: expected one of {}, or give --pattern",
                        Format::NAMES
                    ))
                }
            },
        )
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type a regex capture is converted to ([`Options::types`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Left as a string.
    String,
    /// An integer (left a string when it does not parse).
    Int,
    /// A number (left a string when it does not parse).
    Float,
    /// `true`/`false` (left a string otherwise).
    Bool,
}

impl FromStr for FieldType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "string" | "str" => Ok(FieldType::String),
            "int" | "integer" | "long" => Ok(FieldType::Int),
            "float" | "double" | "number" => Ok(FieldType::Float),
            "bool" | "boolean" => Ok(FieldType::Bool),
            _ => Err(format!(
                "unknown field type {s:?}: expected int, float, bool or string"
            )),
        }
    }
}

/// How a [`Parser`] reads what the lines leave implicit.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The zone of timestamps written without an offset (syslog, apache_error, log4j, regex).
    pub zone: Zone,
    /// strftime format of the `timestamp` capture of [`Format::Regex`]; `None` tries the known
    /// shapes (ISO 8601, syslog, ctime, CLF, Unix seconds/milliseconds).
    pub time_format: Option<String>,
    /// Types for regex captures by name (`status` -> Int); others stay strings.
    pub types: HashMap<String, FieldType>,
    /// "Now" in seconds since the epoch, for the syslog year rule; `None` reads the clock
    /// (tests set it).
    pub now: Option<i64>,
}

/// Why a [`Parser`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The regex does not compile.
    #[error("invalid --pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// The time format is not strftime.
    #[error("{0}")]
    TimeFormat(String),
}

/// What [`Parser::parse`] did with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The fields were written.
    Parsed,
    /// The line did not parse: `message` (raw line) and `parse_error` (this reason) were written.
    Failed(&'static str),
}

/// A built parser: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Parser {
    format: Format,
    kind: Kind,
    ctx: Ctx,
}

#[derive(Debug, Clone)]
enum Kind {
    Fixed,
    Regex(pattern::Pattern),
}

/// What the format scanners need from the options.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) zone: Zone,
    pub(crate) now: Option<i64>,
    pub(crate) time_format: Option<TimeFormat>,
}

impl Ctx {
    pub(crate) fn now(&self) -> i64 {
        self.now.unwrap_or_else(time::now_secs)
    }
}

impl Parser {
    /// Builds a parser; fails on a bad regex or time format.
    pub fn new(format: Format, options: Options) -> Result<Parser, ParseError> {
        let time_format = options
            .time_format
            .as_deref()
            .map(TimeFormat::new)
            .transpose()
            .map_err(ParseError::TimeFormat)?;
        let ctx = Ctx {
            zone: options.zone,
            now: options.now,
            time_format,
        };
        let kind = match &format {
            Format::Regex(p) => Kind::Regex(pattern::Pattern::new(p, &options.types)?),
            _ => Kind::Fixed,
        };
        Ok(Parser { format, kind, ctx })
    }

    /// The format.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Writes the fields of `line` into `rec`, an object opened with [`Record::begin`] (the
    /// caller adds its own fields before or after, then calls [`Record::finish`]). A line that
    /// does not parse gets `message` and `parse_error` instead, and [`Outcome::Failed`].
    pub fn parse(&self, line: &str, rec: &mut Record) -> Outcome {
        let mark = rec.mark();
        let r = match (&self.kind, &self.format) {
            (Kind::Regex(p), _) => p.parse(line, rec, &self.ctx),
            (_, Format::Syslog3164) => syslog::parse_3164(line, rec, &self.ctx),
            (_, Format::Syslog5424) => syslog::parse_5424(line, rec),
            (_, Format::Combined) => access::parse(line, rec),
            (_, Format::ApacheError) => apache_error::parse(line, rec, &self.ctx),
            (_, Format::Log4j) => log4j::parse(line, rec, &self.ctx),
            (_, Format::Logfmt) => logfmt::parse(line, rec, &self.ctx),
            (_, Format::Json) => json::parse(line, rec),
            (_, Format::Cri) => cri::parse(line, rec),
            (_, Format::Raw) => {
                put_message(rec, line);
                Ok(())
            }
            (_, Format::Regex(_)) => Err("regex parser not built"),
        };
        match r {
            Ok(()) => Outcome::Parsed,
            Err(reason) => {
                rec.rewind(mark);
                rec.str("message", line);
                rec.str("parse_error", reason);
                Outcome::Failed(reason)
            }
        }
    }
}

/// Writes `@timestamp` for `t`.
pub(crate) fn put_time(rec: &mut Record, t: time::Instant) {
    let buf = rec.value_buf("@timestamp");
    buf.push('"');
    time::write_rfc3339(buf, t);
    buf.push('"');
}

/// Writes `key` as a number when `v` is all digits (no leading zeros beyond one), else a string.
pub(crate) fn put_num_or_str(rec: &mut Record, key: &str, v: &str) {
    let b = v.as_bytes();
    if !b.is_empty()
        && b.len() <= 18
        && b.iter().all(u8::is_ascii_digit)
        && (b[0] != b'0' || b.len() == 1)
    {
        let mut n = 0u64;
        for &c in b {
            n = n * 10 + u64::from(c - b'0');
        }
        rec.uint(key, n);
    } else {
        rec.str(key, v);
    }
}

/// The message part: trailing whitespace (spaces, `\r`) removed.
pub(crate) fn put_message(rec: &mut Record, msg: &str) {
    rec.str("message", msg.trim_end());
}

#[cfg(test)]
mod tests;
