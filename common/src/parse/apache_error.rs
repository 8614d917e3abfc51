//! Apache error log, 2.2 (`[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] msg`) and 2.4
//! (`[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 1.2.3.4:80] AH00124: msg`).
use super::{put_message, put_time, time, Ctx, Record};

pub(super) fn parse(line: &str, rec: &mut Record, ctx: &Ctx) -> Result<(), &'static str> {
    const E: &str = "apache_error: expected `[Sun Dec 04 04:47:44 2005] [level] message`";
    let s = line.strip_prefix('[').ok_or(E)?;
    let (c, n) = time::parse_ctime(s.as_bytes()).ok_or(E)?;
    let t = c
        .to_instant(None, ctx.zone)
        .ok_or("apache_error: time out of range")?;
    let mut s = s[n..].strip_prefix("] [").ok_or(E)?;
    let end = s.find(']').ok_or(E)?;
    let level = &s[..end];
    s = s[end + 1..].trim_start_matches(' ');
    put_time(rec, t);
    match level.split_once(':') {
        Some((module, level)) => {
            rec.str("module", module);
            rec.str("level", level);
        }
        None => rec.str("level", level),
    }
    loop {
        if let Some(r) = s.strip_prefix("[pid ") {
            let end = r.find(']').ok_or(E)?;
            let (pid, tid) = match r[..end].split_once(":tid ") {
                Some((p, t)) => (p, Some(t)),
                None => (&r[..end], None),
            };
            super::put_num_or_str(rec, "pid", pid);
            if let Some(tid) = tid {
                super::put_num_or_str(rec, "tid", tid);
            }
            s = r[end + 1..].trim_start_matches(' ');
        } else if let Some(r) = s.strip_prefix("[client ") {
            let end = r.find(']').ok_or(E)?;
            rec.str("client", &r[..end]);
            s = r[end + 1..].trim_start_matches(' ');
        } else {
            break;
        }
    }
    put_message(rec, s);
    Ok(())
}
