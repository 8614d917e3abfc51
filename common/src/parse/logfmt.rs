//! logfmt: `ts=2024-01-01T00:00:00Z level=info msg="hello world" ok`.
use super::{put_time, time, Ctx, Record};

pub(super) fn parse(line: &str, rec: &mut Record, ctx: &Ctx) -> Result<(), &'static str> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut pairs = 0;
    let mut value = String::new();
    let mut time_done = false;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b'\r') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let k0 = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[k0..i];
        if key.is_empty() {
            return Err("logfmt: expected key=value");
        }
        if b.get(i) != Some(&b'=') {
            if i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                return Err("logfmt: expected key=value");
            }
            rec.bool(key, true);
            continue;
        }
        i += 1;
        let v: &str = if b.get(i) == Some(&b'"') {
            i += 1;
            value.clear();
            let mut start = i;
            loop {
                match b.get(i) {
                    None => return Err("logfmt: unterminated quoted value"),
                    Some(b'"') => {
                        value.push_str(&line[start..i]);
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        value.push_str(&line[start..i]);
                        match b.get(i + 1) {
                            Some(b'n') => value.push('\n'),
                            Some(b't') => value.push('\t'),
                            Some(b'r') => value.push('\r'),
                            Some(&c @ (b'"' | b'\\')) => value.push(c as char),
                            _ => value.push('\\'),
                        }
                        i = (i + 2).min(b.len());
                        if b.get(i - 1).is_some_and(|c| !c.is_ascii()) {
                            // The escaped byte was not ASCII: keep it verbatim (rare).
                            i -= 1;
                        }
                        start = i;
                    }
                    Some(_) => i += 1,
                }
            }
            &value
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            &line[v0..i]
        };
        pairs += 1;
        if !time_done && matches!(key, "ts" | "time" | "timestamp" | "t") {
            if let Some(t) = time::parse_any(v, ctx.zone, ctx.now()) {
                put_time(rec, t);
                time_done = true;
            }
        }
        rec.str(key, v);
    }
    if pairs == 0 {
        return Err("logfmt: no key=value pairs");
    }
    Ok(())
}
