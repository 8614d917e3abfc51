//! Multiline: joins continuation lines (Java stack traces, Python tracebacks, indented lines)
//! to the line that starts their group, with limits on lines and bytes and a flush timeout.
use std::time::{Duration, Instant};

use regex::Regex;

/// How a line is recognised as the start of a group; every other line continues the group.
#[derive(Debug, Clone)]
pub enum MultilineMode {
    /// A line matching the regex starts a group (`^\d{4}-\d{2}-\d{2}` for timestamped logs).
    Start(Regex),
    /// A line that begins with a space or a tab continues the previous group; so do lines that
    /// begin with `Caused by:` or `... N more` (Java).
    Indent,
}

/// Multiline settings.
#[derive(Debug, Clone)]
pub struct MultilineConfig {
    /// What starts a group.
    pub mode: MultilineMode,
    /// A group is emitted when it reaches this many lines.
    pub max_lines: usize,
    /// A group is emitted when it reaches this many bytes.
    pub max_bytes: usize,
    /// A pending group is emitted when no line has joined it for this long.
    pub timeout: Duration,
}

impl MultilineConfig {
    /// Builds the settings from the agents' options (`--multiline-start REGEX` or
    /// `--multiline-indent`, plus limits); `Ok(None)` when joining is off. The error names the
    /// option, its value and what is expected.
    pub fn from_options(
        start: Option<&str>,
        indent: bool,
        max_lines: usize,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Option<Self>, MultilineOptionError> {
        let bad = |option: &'static str, value: &str, expected: String| MultilineOptionError {
            option,
            value: value.to_string(),
            expected,
        };
        let mode = match (start, indent) {
            (Some(_), true) => {
                return Err(bad(
                    "--multiline-indent",
                    "true",
                    "either --multiline-start or --multiline-indent, not both".into(),
                ))
            }
            (Some(re), false) => MultilineMode::Start(Regex::new(re).map_err(|e| {
                bad(
                    "--multiline-start",
                    re,
                    format!("a regex matching the first line of each record ({e})"),
                )
            })?),
            (None, true) => MultilineMode::Indent,
            (None, false) => return Ok(None),
        };
        if max_lines == 0 {
            return Err(bad("--multiline-max-lines", "0", "at least 1".into()));
        }
        if max_bytes == 0 {
            return Err(bad("--multiline-max-bytes", "0", "at least 1 byte".into()));
        }
        Ok(Some(MultilineConfig {
            mode,
            max_lines,
            max_bytes,
            timeout,
        }))
    }
}

/// A multiline option that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value \"{value}\" for {option}: expected {expected}")]
pub struct MultilineOptionError {
    /// The option (`--multiline-start`).
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What is expected.
    pub expected: String,
}

/// The joining state of one input (one per file).
#[derive(Debug)]
pub struct Multiline {
    config: MultilineConfig,
    buf: String,
    lines: usize,
    last: Option<Instant>,
}

impl Multiline {
    /// An empty joiner.
    pub fn new(config: MultilineConfig) -> Self {
        Multiline {
            config,
            buf: String::new(),
            lines: 0,
            last: None,
        }
    }

    /// True when `line` starts a group.
    pub fn is_start(&self, line: &str) -> bool {
        match &self.config.mode {
            MultilineMode::Start(re) => re.is_match(line),
            MultilineMode::Indent => {
                !(line.starts_with([' ', '\t'])
                    || line.starts_with("Caused by:")
                    || line.is_empty())
            }
        }
    }

    /// Feeds a line; returns a finished group when this line closes one (it starts the next
    /// group, or the group reached its limits).
    pub fn push(&mut self, line: &str) -> Option<String> {
        let mut done = None;
        if self.lines > 0 && self.is_start(line) {
            done = Some(self.take());
        }
        if self.lines > 0 {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
        self.lines += 1;
        self.last = Some(Instant::now());
        if done.is_none()
            && (self.lines >= self.config.max_lines || self.buf.len() >= self.config.max_bytes)
        {
            done = Some(self.take());
        }
        done
    }

    fn take(&mut self) -> String {
        self.lines = 0;
        self.last = None;
        std::mem::take(&mut self.buf)
    }

    /// When the pending group times out, if one is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.last.map(|t| t + self.config.timeout)
    }

    /// True when lines are held.
    pub fn has_pending(&self) -> bool {
        self.lines > 0
    }

    /// Hands out the pending group (at a timeout, end of input or shutdown).
    pub fn flush(&mut self) -> Option<String> {
        (self.lines > 0).then(|| self.take())
    }
}
