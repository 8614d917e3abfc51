//! `redis://[user][:password]@host[:port]`: `AUTH` when the URL carries a password, then `PING`
//! answered with `PONG`.
//!
//! `-LOADING` (dataset still loading) and `-MASTERDOWN` are "not ready". `-NOAUTH`,
//! `-WRONGPASS` and `-ERR invalid password` are authentication failures; so is a password sent
//! to a server that has none configured (`AUTH ... called without any password configured`):
//! the application would get the same error from its own `AUTH`.
use tokio::io::AsyncWriteExt;

use super::read_line;
use crate::{
    outcome::{CheckResult, Failure},
    resolve::Resolver,
    target::Endpoint,
};

/// Encodes a command as a RESP array of bulk strings.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Classifies an error reply.
fn error_reply(line: &str) -> Failure {
    let text = line.trim_start_matches('-');
    let code = text.split_whitespace().next().unwrap_or("");
    match code {
        "NOAUTH" | "WRONGPASS" => Failure::auth(text),
        "LOADING" | "MASTERDOWN" | "BUSY" | "TRYAGAIN" => Failure::not_ready(text),
        _ if text.contains("password") || text.contains("AUTH") => Failure::auth(text),
        _ => Failure::not_ready(format!("redis answered {text}")),
    }
}

/// One attempt.
pub async fn check(r: &Resolver, e: &Endpoint) -> CheckResult {
    let mut s = r.connect(&e.host, e.port).await?;
    let mut req = Vec::new();
    let mut replies = 1;
    if let Some(pw) = &e.password {
        req = match &e.user {
            Some(u) => command(&["AUTH", u, pw.expose()]),
            None => command(&["AUTH", pw.expose()]),
        };
        replies = 2;
    }
    req.extend_from_slice(&command(&["PING"]));
    s.write_all(&req)
        .await
        .map_err(|err| Failure::io("redis", &err))?;
    let mut buf = Vec::new();
    for i in 0..replies {
        let line = read_line(&mut s, &mut buf, "redis").await?;
        if line.starts_with('-') {
            return Err(error_reply(&line));
        }
        let last = i + 1 == replies;
        if last && line != "+PONG" {
            return Err(Failure::protocol(format!(
                "expected +PONG, got {} (is this a Redis server?)",
                super::snippet(line.as_bytes())
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailKind;

    #[test]
    fn replies() {
        assert_eq!(command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            error_reply("-WRONGPASS invalid username-password pair").kind,
            FailKind::Auth
        );
        assert_eq!(
            error_reply("-NOAUTH Authentication required.").kind,
            FailKind::Auth
        );
        assert_eq!(
            error_reply(
                "-ERR AUTH <password> called without any password configured for the default user."
            )
            .kind,
            FailKind::Auth
        );
        let l = error_reply("-LOADING Redis is loading the dataset in memory");
        assert_eq!(l.kind, FailKind::NotReady);
    }
}
