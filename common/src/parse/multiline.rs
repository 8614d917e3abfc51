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
