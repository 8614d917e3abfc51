//! CRI container log lines (`2024-01-01T00:00:00.000000000Z stdout F msg`) and the
//! reassembly of partial (`P`) lines into whole ones.
use super::{time, Record};

/// One CRI line split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The RFC 3339 timestamp as written.
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// True for a `P` (partial) line: the runtime split a long line, more follows.
    pub partial: bool,
    /// The application's text.
    pub content: &'a str,
}

impl<'a> CriLine<'a> {
    /// Splits `line`; `None` when it is not a CRI line.
    pub fn split(line: &'a str) -> Option<CriLine<'a>> {
        let mut it = line.splitn(4, ' ');
        let time = it.next()?;
        let stream = it.next()?;
        let tags = it.next()?;
        let content = it.next().unwrap_or("");
        if time.len() < 20
            || !time.as_bytes()[0].is_ascii_digit()
            || !(stream == "stdout" || stream == "stderr")
        {
            return None;
        }
        let partial = match tags.split(':').next()? {
            "P" => true,
            "F" => false,
            _ => return None,
        };
        Some(CriLine {
            time,
            stream,
            partial,
            content: content.strip_suffix('\n').unwrap_or(content),
        })
    }
}

pub(super) fn parse(line: &str, rec: &mut Record) -> Result<(), &'static str> {
    const E: &str = "cri: expected `<RFC 3339 time> <stdout|stderr> <P|F> message`";
    let l = CriLine::split(line).ok_or(E)?;
    let (c, off, n) = time::parse_iso(l.time.as_bytes()).ok_or(E)?;
    if n != l.time.len() {
        return Err(E);
    }
    let t = c
        .to_instant(off, time::Zone::Utc)
        .ok_or("cri: time out of range")?;
    super::put_time(rec, t);
    rec.str("stream", l.stream);
    rec.str("message", l.content.strip_suffix('\r').unwrap_or(l.content));
    if l.partial {
        rec.bool("partial", true);
    }
    Ok(())
}

/// Joins CRI partial lines: `P` pieces are held until the `F` piece of the same stream, and the
/// whole line comes out as one `F` line (timestamp of the first piece). A group larger than
/// `max_bytes` comes out as it is, still marked `P` (its `partial` field says so).
#[derive(Debug)]
pub struct CriJoiner {
    max_bytes: usize,
    /// Pending text per stream (stdout, stderr): the rebuilt line so far.
    pending: [String; 2],
}

impl CriJoiner {
    /// A joiner that flushes a group at `max_bytes` of content.
    pub fn new(max_bytes: usize) -> Self {
        CriJoiner {
            max_bytes: max_bytes.max(1),
            pending: [String::new(), String::new()],
        }
    }

    /// Feeds one line; returns the lines to parse now (zero, one or two).
    pub fn push(&mut self, line: &str, out: &mut Vec<String>) {
        let Some(l) = CriLine::split(line) else {
            // Not CRI: pass it on, the parser reports it.
            out.push(line.to_string());
            return;
        };
        let slot = usize::from(l.stream == "stderr");
        let pending = &mut self.pending[slot];
        if pending.is_empty() {
            if !l.partial {
                out.push(line.to_string());
                return;
            }
            pending.reserve(line.len());
            pending.push_str(l.time);
            pending.push(' ');
            pending.push_str(l.stream);
            pending.push_str(" F ");
        }
        pending.push_str(l.content);
        if !l.partial {
            out.push(std::mem::take(pending));
        } else if pending.len() >= self.max_bytes {
            let mut s = std::mem::take(pending);
            // Mark it partial again: it never got its F.
            if let Some(i) = s.find(" F ") {
                s.replace_range(i..i + 3, " P ");
            }
            out.push(s);
        }
    }

    /// True when a partial group is held.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(|p| !p.is_empty())
    }

    /// Hands out what is held (at shutdown or on a timeout), marked partial.
    pub fn flush(&mut self, out: &mut Vec<String>) {
        for p in &mut self.pending {
            if !p.is_empty() {
                let mut s = std::mem::take(p);
                if let Some(i) = s.find(" F ") {
                    s.replace_range(i..i + 3, " P ");
                }
                out.push(s);
            }
        }
    }
}
