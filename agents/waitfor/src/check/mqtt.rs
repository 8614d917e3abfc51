//! `mqtt://[user[:password]@]host[:port]`: an MQTT 3.1.1 `CONNECT` answered by a `CONNACK`
//! with return code 0, then `DISCONNECT`. Codes 4 (bad user name or password) and 5 (not
//! authorised) are authentication failures; 3 (server unavailable) is "not ready".
use tokio::io::AsyncWriteExt;

use super::read_at_least;
use crate::{
    outcome::{CheckResult, Failure},
    resolve::Resolver,
    target::Endpoint,
};

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&s[..s.len().min(u16::MAX as usize)]);
}

/// The CONNECT packet.
fn connect_packet(e: &Endpoint, client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    let mut flags = 0x02; // clean session
    if e.user.is_some() {
        flags |= 0x80;
    }
    if e.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes()); // keep-alive seconds
    put_str(&mut body, client_id.as_bytes());
    if let Some(u) = &e.user {
        put_str(&mut body, u.as_bytes());
    }
    if let Some(p) = &e.password {
        put_str(&mut body, p.expose().as_bytes());
    }
    let mut out = vec![0x10];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&body);
    out
}

/// One attempt.
pub async fn check(r: &Resolver, e: &Endpoint) -> CheckResult {
    let mut s = r.connect(&e.host, e.port).await?;
    let id = format!(
        "waitfor-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    s.write_all(&connect_packet(e, &id))
        .await
        .map_err(|err| Failure::io("mqtt", &err))?;
    let mut buf = Vec::new();
    read_at_least(&mut s, &mut buf, 4, "mqtt").await?;
    if buf[0] != 0x20 || buf[1] != 2 {
        return Err(Failure::protocol(format!(
            "expected CONNACK, got {} (is this an MQTT broker?)",
            super::snippet(&buf)
        )));
    }
    let result = match buf[3] {
        0 => Ok(()),
        1 => Err(Failure::protocol("the broker refused MQTT 3.1.1 (code 1)")),
        2 => Err(Failure::not_ready(
            "the broker rejected the client id (code 2)",
        )),
        3 => Err(Failure::not_ready(
            "the broker says the server is unavailable (code 3)",
        )),
        4 => Err(Failure::auth("bad user name or password (CONNACK code 4)")),
        5 => Err(Failure::auth("not authorized (CONNACK code 5)")),
        c => Err(Failure::protocol(format!("CONNACK with unknown code {c}"))),
    };
    if result.is_ok() {
        let _ = s.write_all(&[0xe0, 0x00]).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packet_layout() {
        let e = Endpoint {
            host: "b".into(),
            port: 1883,
            user: Some("u".into()),
            password: Some(common::Secret::new("p")),
        };
        let p = connect_packet(&e, "id");
        assert_eq!(p[0], 0x10);
        assert_eq!(p[1] as usize, p.len() - 2);
        assert_eq!(&p[2..8], b"\0\x04MQTT");
        assert_eq!(p[8], 4);
        assert_eq!(p[9], 0xc2);
        assert!(p.ends_with(b"\0\x02id\0\x01u\0\x01p"));
    }
}
