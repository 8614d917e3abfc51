//! log4j and logback layouts: a timestamp, then the level and the thread in either order, then
//! the logger and the message: `2015-10-18 18:01:47,978 INFO [main] org.x.Y: msg` (log4j
//! `%d %p [%t] %c: %m`) and `2015-10-18 18:01:47.978 [main] INFO org.x.Y - msg` (logback).
use super::{put_message, put_time, time, Ctx, Record};

const LEVELS: [&str; 11] = [
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "SEVERE", "CRITICAL", "FINE",
    "NOTICE",
];

fn level_word(s: &str) -> Option<(&str, &str)> {
    let end = s.find(' ').unwrap_or(s.len());
    let w = &s[..end];
    LEVELS
        .iter()
        .any(|l| w.eq_ignore_ascii_case(l))
        .then(|| (w, s[end..].trim_start_matches(' ')))
}

fn thread(s: &str) -> Option<(&str, &str)> {
    let r = s.strip_prefix('[')?;
    let end = r
        .find("] ")
        .or_else(|| r.ends_with(']').then(|| r.len() - 1))?;
    Some((&r[..end], r[end + 1..].trim_start_matches(' ')))
}

pub(super) fn parse(line: &str, rec: &mut Record, ctx: &Ctx) -> Result<(), &'static str> {
    let (c, off, n) = time::parse_iso(line.as_bytes())
        .ok_or("log4j: no timestamp at the start of the line (expected 2015-10-18 18:01:47,978)")?;
    let t = c
        .to_instant(off, ctx.zone)
        .ok_or("log4j: timestamp out of range")?;
    let mut s = line[n..]
        .strip_prefix(' ')
        .ok_or("log4j: no space after the timestamp")?;
    s = s.trim_start_matches(' ');
    let (level, thread_name);
    if let Some((l, r)) = level_word(s) {
        level = l;
        match thread(r) {
            Some((th, r2)) => {
                thread_name = Some(th);
                s = r2;
            }
            None => {
                thread_name = None;
                s = r;
            }
        }
    } else if let Some((th, r)) = thread(s) {
        let (l, r2) = level_word(r).ok_or("log4j: no level (INFO, WARN, ...) after the thread")?;
        thread_name = Some(th);
        level = l;
        s = r2;
    } else {
        return Err("log4j: no level (INFO, WARN, ...) after the timestamp");
    }
    put_time(rec, t);
    rec.str("level", level);
    if let Some(th) = thread_name {
        rec.str("thread", th);
    }
    // The logger: one word ending in ':' or followed by ' - '.
    let end = s.find(' ').unwrap_or(s.len());
    let w = &s[..end];
    if let Some(logger) = w.strip_suffix(':').filter(|l| !l.is_empty()) {
        rec.str("logger", logger);
        s = s[end..].trim_start_matches(' ');
    } else if s[end..].starts_with(" - ") || (s[end..].trim_end() == " -") {
        rec.str("logger", w);
        s = s[end..]
            .trim_start_matches(' ')
            .trim_start_matches('-')
            .trim_start_matches(' ');
    }
    put_message(rec, s);
    Ok(())
}
