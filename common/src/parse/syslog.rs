//! Syslog: BSD (RFC 3164, as real systems write it) and RFC 5424.
use super::{put_message, put_num_or_str, put_time, time, Ctx, Record};

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// `<PRI>` at the start: (value, bytes consumed).
fn priority(b: &[u8]) -> Option<(u32, usize)> {
    if b.first() != Some(&b'<') {
        return None;
    }
    let mut v = 0u32;
    for (i, &c) in b.iter().enumerate().skip(1).take(4) {
        if c == b'>' {
            return (i > 1 && v <= 191).then_some((v, i + 1));
        }
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    None
}

fn put_priority(rec: &mut Record, pri: u32) {
    rec.uint("priority", u64::from(pri));
    rec.str("facility", FACILITIES[(pri / 8) as usize]);
    rec.str("severity", SEVERITIES[(pri % 8) as usize]);
}

/// `Jun 14 15:16:01 combo sshd(pam_unix)[19939]: msg`, with an optional `<PRI>`, an RFC 3339
/// timestamp instead of the BSD one, and no host (`Jun 14 15:16:01 app[1]: msg`, as /dev/log).
pub(super) fn parse_3164(line: &str, rec: &mut Record, ctx: &Ctx) -> Result<(), &'static str> {
    let b = line.as_bytes();
    let mut i = 0;
    let pri = priority(b);
    if let Some((_, n)) = pri {
        i = n;
    }
    let t = if let Some((mut c, n)) = time::parse_bsd(&b[i..]) {
        i += n;
        c.year = time::infer_year(&c, ctx.zone, ctx.now());
        c.to_instant(None, ctx.zone)
    } else if let Some((c, off, n)) =
        time::parse_iso(&b[i..]).filter(|_| matches!(b.get(i + 10), Some(b'T')))
    {
        i += n;
        c.to_instant(off, ctx.zone)
    } else {
        return Err("syslog: no timestamp at the start of the line (expected `Jun 14 15:16:01` or RFC 3339)");
    };
    let t = t.ok_or("syslog: timestamp out of range")?;
    if b.get(i) != Some(&b' ') {
        return Err("syslog: no space after the timestamp");
    }
    put_time(rec, t);
    if let Some((p, _)) = pri {
        put_priority(rec, p);
    }
    let rest = line[i..].trim_start_matches(' ');
    // The first word is the host unless it already looks like the tag (`app:` or `app[1]:`).
    let word_end = rest.find(' ').unwrap_or(rest.len());
    let word = &rest[..word_end];
    let rest = if word.ends_with(':')
        || (word.contains('[') && word.contains("]:"))
        || word_end == rest.len()
    {
        rest
    } else {
        rec.str("host", word);
        rest[word_end..].trim_start_matches(' ')
    };
    // The tag runs to the first ':' that is followed by a space or ends the line, if near.
    let tag_end = memchr::memchr(b':', &rest.as_bytes()[..rest.len().min(64)])
        .filter(|&p| matches!(rest.as_bytes().get(p + 1), None | Some(b' ')));
    match tag_end {
        Some(p) if p > 0 && !rest[..p].contains([',', '"', '=']) => {
            let tag = &rest[..p];
            match tag.rfind('[') {
                Some(open) if tag.ends_with(']') => {
                    rec.str("app", tag[..open].trim());
                    put_num_or_str(rec, "pid", &tag[open + 1..tag.len() - 1]);
                }
                _ => rec.str("app", tag.trim()),
            }
            put_message(rec, rest[p + 1..].trim_start_matches(' '));
        }
        _ => put_message(rec, rest),
    }
    Ok(())
}

/// One space-delimited header field of RFC 5424; `-` is absent.
fn field<'a>(rest: &mut &'a str) -> Result<Option<&'a str>, &'static str> {
    let end = rest.find(' ').ok_or(
        "syslog5424: header ends early (expected PRI VERSION TIMESTAMP HOST APP PROCID MSGID SD)",
    )?;
    let f = &rest[..end];
    *rest = &rest[end + 1..];
    Ok((f != "-").then_some(f))
}

/// `<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 [exampleSDID@32473 iut="3"] msg`.
pub(super) fn parse_5424(line: &str, rec: &mut Record) -> Result<(), &'static str> {
    let b = line.as_bytes();
    let (pri, n) = priority(b).ok_or("syslog5424: no <PRI> at the start of the line")?;
    let mut rest = &line[n..];
    let version = field(&mut rest)?.ok_or("syslog5424: no version after <PRI>")?;
    if version.is_empty() || !version.bytes().all(|c| c.is_ascii_digit()) {
        return Err("syslog5424: version after <PRI> is not a number (is this RFC 3164 syslog?)");
    }
    let ts = field(&mut rest)?;
    let t = match ts {
        Some(ts) => {
            let (c, off, used) =
                time::parse_iso(ts.as_bytes()).ok_or("syslog5424: timestamp is not RFC 3339")?;
            if used != ts.len() {
                return Err("syslog5424: timestamp is not RFC 3339");
            }
            Some(
                c.to_instant(off, time::Zone::Utc)
                    .ok_or("syslog5424: timestamp out of range")?,
            )
        }
        None => None,
    };
    if let Some(t) = t {
        put_time(rec, t);
    }
    put_priority(rec, pri);
    put_num_or_str(rec, "version", version);
    for key in ["host", "app", "procid", "msgid"] {
        if let Some(v) = field(&mut rest)? {
            rec.str(key, v);
        }
    }
    // Structured data: `-` or one or more [id k="v" ...].
    if let Some(r) = rest.strip_prefix('-') {
        rest = r;
    } else if rest.starts_with('[') {
        rec.begin_object("structured_data");
        rest = structured_data(rest, rec)?;
        rec.end_object();
    } else {
        // A final header field without the trailing space (no SD, no MSG).
        return Err("syslog5424: no structured data (expected - or [id ...])");
    }
    let msg = rest.strip_prefix(' ').unwrap_or(rest);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    if !msg.trim_end().is_empty() {
        put_message(rec, msg);
    }
    Ok(())
}

fn structured_data<'a>(mut s: &'a str, rec: &mut Record) -> Result<&'a str, &'static str> {
    const BAD: &str = "syslog5424: malformed structured data";
    let mut value = String::new();
    while let Some(body) = s.strip_prefix('[') {
        let id_end = body.find([' ', ']']).ok_or(BAD)?;
        rec.begin_object(&body[..id_end]);
        s = &body[id_end..];
        loop {
            if let Some(r) = s.strip_prefix(']') {
                s = r;
                break;
            }
            s = s.strip_prefix(' ').ok_or(BAD)?;
            let eq = s.find('=').ok_or(BAD)?;
            let name = &s[..eq];
            s = s[eq + 1..].strip_prefix('"').ok_or(BAD)?;
            value.clear();
            let mut chars = s.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c @ ('"' | '\\' | ']'))) => value.push(c),
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(BAD),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err(BAD),
                }
            };
            rec.str(name, &value);
            s = &s[end + 1..];
        }
        rec.end_object();
    }
    Ok(s)
}
