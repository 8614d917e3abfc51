//! nginx and Apache access logs: common and combined (the same format in both servers).
//!
//! `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "http://ref/" "Mozilla/5.0"`
use super::{time, Record};

const E: &str = "combined: line does not match `addr ident user [time] \"request\" status size \"referer\" \"agent\"`";

/// Splits the next space-delimited word off `s`.
fn word<'a>(s: &mut &'a str) -> Option<&'a str> {
    let end = memchr::memchr(b' ', s.as_bytes())?;
    let w = &s[..end];
    *s = &s[end + 1..];
    Some(w)
}

/// Reads a `"quoted"` value at the start of `s` (backslash escapes kept as written).
fn quoted<'a>(s: &mut &'a str) -> Option<&'a str> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    loop {
        let j = i + memchr::memchr2(b'"', b'\\', &b[i..])?;
        if b[j] == b'\\' {
            i = j + 2;
            if i > b.len() {
                return None;
            }
            continue;
        }
        let v = &s[1..j];
        *s = &s[j + 1..];
        return Some(v);
    }
}

fn opt(rec: &mut Record, key: &str, v: &str) {
    if v != "-" && !v.is_empty() {
        rec.str(key, v);
    }
}

fn number(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `"GET /a HTTP/1.1"` split at its first two spaces (what `splitn(3, ' ')` gives, by memchr).
fn split3(r: &str) -> Option<(&str, &str, &str)> {
    let a = memchr::memchr(b' ', r.as_bytes())?;
    let b = a + 1 + memchr::memchr(b' ', &r.as_bytes()[a + 1..])?;
    Some((&r[..a], &r[a + 1..b], &r[b + 1..]))
}

pub(super) fn parse(line: &str, rec: &mut Record) -> Result<(), &'static str> {
    let mut s = line.trim_end();
    let addr = word(&mut s).ok_or(E)?;
    let ident = word(&mut s).ok_or(E)?;
    // The user may contain spaces in odd setups; it ends at " [".
    let user_end = s.find(" [").ok_or(E)?;
    let user = &s[..user_end];
    s = &s[user_end + 2..];
    let (c, off, n) = time::parse_clf(s.as_bytes())
        .ok_or("combined: time is not `[10/Oct/2000:13:55:36 -0700]`")?;
    s = s[n..].strip_prefix("] ").ok_or(E)?;
    let t = c
        .to_instant(off, time::Zone::Utc)
        .ok_or("combined: time out of range")?;
    let request = quoted(&mut s).ok_or(E)?;
    s = s.strip_prefix(' ').ok_or(E)?;
    let status = word(&mut s)
        .or_else(|| Some(std::mem::take(&mut s)))
        .ok_or(E)?;
    let status = number(status)
        .filter(|v| *v < 1000)
        .ok_or("combined: status is not a number")?;
    let size_str = word(&mut s).unwrap_or_else(|| std::mem::take(&mut s));
    let size = if size_str == "-" {
        Some(0)
    } else {
        number(size_str)
    };
    let size = size.ok_or("combined: size is not a number or -")?;

    super::put_time(rec, t);
    rec.str("remote_addr", addr);
    opt(rec, "ident", ident);
    opt(rec, "remote_user", user);
    match split3(request) {
        Some((m, p, proto))
            if !m.is_empty()
                && !p.is_empty()
                && memchr::memchr(b' ', proto.as_bytes()).is_none() =>
        {
            rec.str("method", m);
            rec.str("path", p);
            rec.str("protocol", proto);
        }
        _ => opt(rec, "request", request),
    }
    rec.uint("status", status);
    rec.uint("size", size);
    if !s.is_empty() {
        if let Some(referer) = quoted(&mut s) {
            opt(rec, "referer", referer);
            s = s.strip_prefix(' ').unwrap_or(s);
            if let Some(agent) = quoted(&mut s) {
                opt(rec, "user_agent", agent);
            }
        }
        let extra = s.trim();
        if !extra.is_empty() {
            rec.str("extra", extra);
        }
    }
    Ok(())
}
