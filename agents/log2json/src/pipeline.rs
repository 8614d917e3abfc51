//! The synchronous heart of log2json: lines in, NDJSON out. Per input (stdin, each file) it
//! reassembles CRI partial lines, joins multiline groups, parses, adds the static fields and
//! appends the record to the output buffer. It also holds the tail acknowledgements of chunks
//! whose lines are still in a pending group, so a checkpoint never passes an unwritten line.
use std::{collections::HashMap, time::Instant};

use common::{
    parse::{CriJoiner, Format, Multiline, MultilineConfig, Outcome, Parser, Record},
    tail::{AckToken, Chunk},
};

use crate::{events::ParseFailed, metrics::Metrics};

/// Flags carried from a line to its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// Bytes were replaced with U+FFFD.
    pub invalid_utf8: bool,
    /// A piece of an over-long line.
    pub truncated: bool,
}

impl Flags {
    fn or(self, o: Flags) -> Flags {
        Flags {
            invalid_utf8: self.invalid_utf8 || o.invalid_utf8,
            truncated: self.truncated || o.truncated,
        }
    }
}

/// The key of stdin in the per-input state.
pub const STDIN: u64 = 0;

#[derive(Debug)]
struct Source {
    file: Option<String>,
    cri: Option<CriJoiner>,
    cri_last: Option<Instant>,
    ml: Option<Multiline>,
    ml_flags: Flags,
    held: Vec<AckToken>,
}

impl Source {
    fn pending(&self) -> bool {
        self.ml.as_ref().is_some_and(Multiline::has_pending)
            || self.cri.as_ref().is_some_and(CriJoiner::has_pending)
    }
}

/// What the pipeline needs to know.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The parser.
    pub parser: Parser,
    /// Multiline joining, if on.
    pub multiline: Option<MultilineConfig>,
    /// Pre-encoded static members added to each record.
    pub static_fields: String,
    /// Elasticsearch `_bulk`: an action line before each record and a `@timestamp` always.
    pub bulk: bool,
    /// CRI partial groups are cut at this size.
    pub max_line_bytes: usize,
    /// CRI partial groups are flushed when nothing joined them for this long.
    pub partial_timeout: std::time::Duration,
}

/// Lines in, NDJSON out.
#[derive(Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
    format: &'static str,
    cri: bool,
    rec: Record,
    sources: HashMap<u64, Source>,
    /// The file of the lines being processed (None for stdin).
    cur_file: Option<String>,
    out: String,
    records: u64,
    ready: Vec<AckToken>,
    scratch: Vec<String>,
    metrics: Metrics,
}

impl Pipeline {
    /// A pipeline counting into `metrics`.
    pub fn new(cfg: PipelineConfig, metrics: Metrics) -> Self {
        let format = cfg.parser.format().name();
        let cri = *cfg.parser.format() == Format::Cri;
        Pipeline {
            cfg,
            format,
            cri,
            rec: Record::new(),
            sources: HashMap::new(),
            cur_file: None,
            out: String::with_capacity(1 << 16),
            records: 0,
            ready: Vec::new(),
            scratch: Vec::new(),
            metrics,
        }
    }

    fn source(&mut self, key: u64) -> &mut Source {
        let cfg = &self.cfg;
        let cri = self.cri;
        self.sources.entry(key).or_insert_with(|| Source {
            file: None,
            cri: cri.then(|| CriJoiner::new(cfg.max_line_bytes)),
            cri_last: None,
            ml: cfg.multiline.clone().map(Multiline::new),
            ml_flags: Flags::default(),
            held: Vec::new(),
        })
    }

    /// Feeds text of one or more `\n`-terminated lines from `key` (stdin).
    pub fn push_text(&mut self, key: u64, text: &str, flags: Flags) {
        self.cur_file = None;
        let mut n = 0;
        for line in text.split_terminator('\n') {
            self.push_line(key, line, flags);
            n += 1;
        }
        self.count_lines(n, flags);
    }

    fn count_lines(&self, n: u64, flags: Flags) {
        self.metrics.lines_read.inc_by(n);
        if flags.truncated {
            self.metrics.truncated_lines.inc_by(n);
        }
        if flags.invalid_utf8 {
            self.metrics.invalid_utf8_lines.inc_by(n);
        }
    }

    /// Feeds a chunk from the tailer; its ack is released once its lines are in the output.
    pub fn push_chunk(&mut self, chunk: Chunk) {
        let key = chunk.file.fingerprint;
        let path = chunk.file.path.to_string_lossy().into_owned();
        if self.cri || self.cfg.multiline.is_some() {
            self.source(key).file = Some(path.clone());
        }
        self.cur_file = Some(path);
        for line in &chunk.lines {
            let flags = Flags {
                invalid_utf8: line.invalid_utf8,
                truncated: line.truncated,
            };
            self.count_lines(1, flags);
            self.push_line(key, &line.text, flags);
        }
        match self.sources.get_mut(&key) {
            Some(src) if src.pending() => src.held.push(chunk.ack),
            Some(src) => {
                let held = std::mem::take(&mut src.held);
                self.sources.remove(&key);
                self.ready.extend(held);
                self.ready.push(chunk.ack);
            }
            None => self.ready.push(chunk.ack),
        }
    }

    fn push_line(&mut self, key: u64, line: &str, flags: Flags) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if self.cri || self.cfg.multiline.is_some() {
            return self.push_slow(key, line, flags);
        }
        self.emit(line, flags);
    }

    fn push_slow(&mut self, key: u64, line: &str, flags: Flags) {
        let mut lines = std::mem::take(&mut self.scratch);
        let src = self.source(key);
        if let Some(j) = &mut src.cri {
            j.push(line, &mut lines);
            src.cri_last = j.has_pending().then(Instant::now);
        } else {
            lines.push(line.to_string());
        }
        for l in lines.drain(..) {
            self.join(key, &l, flags);
        }
        self.scratch = lines;
    }

    fn join(&mut self, key: u64, line: &str, flags: Flags) {
        let src = self.source(key);
        let Some(ml) = &mut src.ml else {
            return self.emit(line, flags);
        };
        match ml.push(line) {
            None => src.ml_flags = src.ml_flags.or(flags),
            Some(group) => {
                let gf = if ml.has_pending() {
                    // The line started the next group.
                    std::mem::replace(&mut src.ml_flags, flags)
                } else {
                    std::mem::take(&mut src.ml_flags).or(flags)
                };
                self.emit_group(&group, gf);
            }
        }
    }

    fn emit_group(&mut self, group: &str, flags: Flags) {
        if memchr::memchr(b'\n', group.as_bytes()).is_some() {
            self.metrics.multiline_groups.inc();
        }
        self.emit(group, flags);
    }

    fn emit(&mut self, text: &str, flags: Flags) {
        let rec = &mut self.rec;
        rec.begin();
        if let Outcome::Failed(reason) = self.cfg.parser.parse(text, rec) {
            ParseFailed {
                format: self.format,
                reason,
            }
            .emit(&self.metrics);
        }
        if flags.truncated {
            rec.bool("truncated", true);
        }
        if flags.invalid_utf8 {
            rec.bool("invalid_utf8", true);
        }
        if let Some(f) = &self.cur_file {
            rec.str("file", f);
        }
        rec.members(&self.cfg.static_fields);
        if self.cfg.bulk {
            if !rec.as_str().contains("\"@timestamp\":") {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let mut ts = String::with_capacity(32);
                common::parse::time::write_rfc3339(
                    &mut ts,
                    common::parse::time::Instant {
                        secs: now.as_secs() as i64,
                        nanos: now.subsec_nanos(),
                        frac_digits: 3,
                    },
                );
                rec.str("@timestamp", &ts);
            }
            self.out.push_str("{\"create\":{}}\n");
        }
        self.out.push_str(rec.finish());
        self.out.push('\n');
        self.records += 1;
    }

    /// Writes out pending groups whose timeout passed (all of them when `all`).
    pub fn flush_pending(&mut self, now: Instant, all: bool) {
        let keys: Vec<u64> = self.sources.keys().copied().collect();
        let timeout = self.cfg.partial_timeout;
        for key in keys {
            let Some(src) = self.sources.get_mut(&key) else {
                continue;
            };
            self.cur_file = src.file.clone();
            let mut lines = Vec::new();
            if let Some(j) = &mut src.cri {
                if j.has_pending() && (all || src.cri_last.is_some_and(|t| t + timeout <= now)) {
                    j.flush(&mut lines);
                    src.cri_last = None;
                }
            }
            for l in lines {
                self.join(key, &l, Flags::default());
            }
            let Some(src) = self.sources.get_mut(&key) else {
                continue;
            };
            if let Some(ml) = &mut src.ml {
                if all || ml.deadline().is_some_and(|d| d <= now) {
                    if let Some(group) = ml.flush() {
                        let flags = std::mem::take(&mut src.ml_flags);
                        self.emit_group(&group, flags);
                    }
                }
            }
            if let Some(src) = self.sources.get_mut(&key) {
                if !src.pending() {
                    let held = std::mem::take(&mut src.held);
                    self.ready.extend(held);
                }
            }
        }
    }

    /// The earliest time a pending group times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.cfg.partial_timeout;
        self.sources
            .values()
            .flat_map(|s| {
                [
                    s.ml.as_ref().and_then(Multiline::deadline),
                    s.cri_last.map(|t| t + timeout),
                ]
            })
            .flatten()
            .min()
    }

    /// The NDJSON written since the last [`Pipeline::clear_output`].
    pub fn output(&self) -> &str {
        &self.out
    }

    /// Records in [`Pipeline::output`].
    pub fn pending_records(&self) -> u64 {
        self.records
    }

    /// After the output was delivered: empties it and hands out the acks it covers.
    pub fn clear_output(&mut self) -> Vec<AckToken> {
        self.out.clear();
        self.records = 0;
        if self.out.capacity() > 4 << 20 {
            self.out.shrink_to(1 << 16);
        }
        std::mem::take(&mut self.ready)
    }
}
