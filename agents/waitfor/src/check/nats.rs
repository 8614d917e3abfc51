//! `nats://[user:password@ | token@]host[:port]`: the server's `INFO` line, then `CONNECT`
//! with the credentials and `PING` answered with `PONG`. `-ERR 'Authorization Violation'` (or
//! `auth_required` with no credentials) is an authentication failure.
use tokio::io::AsyncWriteExt;

use super::read_line;
use crate::{
    outcome::{CheckResult, Failure},
    resolve::Resolver,
    target::Endpoint,
};

fn connect_line(e: &Endpoint) -> String {
    let mut o = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "name": "waitfor",
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 0,
    });
    match (&e.user, &e.password) {
        (Some(u), Some(p)) => {
            o["user"] = u.clone().into();
            o["pass"] = p.expose().into();
        }
        (Some(token), None) => o["auth_token"] = token.clone().into(),
        (None, Some(p)) => o["auth_token"] = p.expose().into(),
        (None, None) => {}
    }
    format!("CONNECT {o}\r\nPING\r\n")
}

/// One attempt.
pub async fn check(r: &Resolver, e: &Endpoint) -> CheckResult {
    let mut s = r.connect(&e.host, e.port).await?;
    let mut buf = Vec::new();
    let info = read_line(&mut s, &mut buf, "nats").await?;
    let Some(json) = info.strip_prefix("INFO ") else {
        return Err(Failure::protocol(format!(
            "expected INFO, got {} (is this a NATS server?)",
            super::snippet(info.as_bytes())
        )));
    };
    let info: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    if info["auth_required"] == true && e.user.is_none() && e.password.is_none() {
        return Err(Failure::auth(
            "the server requires credentials and the URL has none",
        ));
    }
    s.write_all(connect_line(e).as_bytes())
        .await
        .map_err(|err| Failure::io("nats", &err))?;
    loop {
        let line = read_line(&mut s, &mut buf, "nats").await?;
        match line.as_str() {
            "PONG" => return Ok(()),
            "+OK" | "PING" => continue,
            l if l.starts_with("INFO ") => continue,
            l if l.starts_with("-ERR") => {
                let msg = l.trim_start_matches("-ERR").trim().trim_matches('\'');
                let lower = msg.to_ascii_lowercase();
                return Err(
                    if lower.contains("authorization") || lower.contains("authentication") {
                        Failure::auth(msg)
                    } else {
                        Failure::not_ready(format!("nats: {msg}"))
                    },
                );
            }
            l => {
                return Err(Failure::protocol(format!(
                    "nats: unexpected {}",
                    super::snippet(l.as_bytes())
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_carries_credentials() {
        let e = Endpoint {
            host: "n".into(),
            port: 4222,
            user: Some("a".into()),
            password: Some(common::Secret::new("b\"c")),
        };
        let l = connect_line(&e);
        assert!(
            l.contains(r#""user":"a""#) && l.contains(r#""pass":"b\"c""#),
            "{l}"
        );
        assert!(l.ends_with("\r\nPING\r\n"));
    }
}
