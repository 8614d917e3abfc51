//! `amqp://[user:password@]host[:port][/vhost]`: the AMQP 0-9-1 protocol header answered by
//! `Connection.Start`; with credentials in the URL, also the PLAIN login (`Start-Ok`, `Tune`),
//! `Connection.Open` of the vhost (`%2f` is `/`, the default), then a clean `Connection.Close`.
//!
//! The client announces `authentication_failure_close`, so RabbitMQ answers a wrong password
//! with `Connection.Close` 403 ACCESS_REFUSED (an authentication failure) instead of dropping
//! the connection. 530 NOT_ALLOWED for the vhost is "not ready" (it may be created later).
use tokio::{
    io::{AsyncRead, AsyncWriteExt},
    net::TcpStream,
};

use super::read_at_least;
use crate::{
    outcome::{CheckResult, Failure},
    resolve::Resolver,
    target::Endpoint,
};

const HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
const FRAME_END: u8 = 0xce;

struct Frame {
    kind: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn method(&self) -> Option<(u16, u16)> {
        (self.kind == 1 && self.payload.len() >= 4).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                u16::from_be_bytes([self.payload[2], self.payload[3]]),
            )
        })
    }
}

async fn read_frame<R: AsyncRead + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> Result<Frame, Failure> {
    read_at_least(s, buf, 7, "amqp").await?;
    if buf.starts_with(b"AMQP") {
        return Err(Failure::protocol(
            "the server does not speak AMQP 0-9-1 (it answered with its own protocol header)",
        ));
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if size > 1 << 20 {
        return Err(Failure::protocol(format!(
            "expected an AMQP frame, got {} (is this an AMQP server?)",
            super::snippet(buf)
        )));
    }
    read_at_least(s, buf, 8 + size, "amqp").await?;
    if buf[7 + size] != FRAME_END {
        return Err(Failure::protocol("amqp: bad frame end"));
    }
    let f = Frame {
        kind: buf[0],
        payload: buf[7..7 + size].to_vec(),
    };
    buf.drain(..8 + size);
    Ok(f)
}

fn frame(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let size = (4 + args.len()) as u32;
    let mut out = vec![1, 0, 0];
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&method.to_be_bytes());
    out.extend_from_slice(args);
    out.push(FRAME_END);
    out
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn long_str(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn start_ok(user: &str, password: &str) -> Vec<u8> {
    // client-properties: {product: "waitfor", capabilities: {authentication_failure_close: true}}
    let mut caps = Vec::new();
    short_str(&mut caps, "authentication_failure_close");
    caps.extend_from_slice(b"t\x01");
    let mut props = Vec::new();
    short_str(&mut props, "product");
    props.push(b'S');
    long_str(&mut props, b"podmates-waitfor");
    short_str(&mut props, "capabilities");
    props.push(b'F');
    long_str(&mut props, &caps);
    let mut args = Vec::new();
    long_str(&mut args, &props);
    short_str(&mut args, "PLAIN");
    let mut resp = vec![0];
    resp.extend_from_slice(user.as_bytes());
    resp.push(0);
    resp.extend_from_slice(password.as_bytes());
    long_str(&mut args, &resp);
    short_str(&mut args, "en_US");
    frame(10, 11, &args)
}

/// Connection.Close from the server: reply code and text.
fn close_failure(payload: &[u8]) -> Failure {
    let code = payload
        .get(4..6)
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    let len = payload.get(6).copied().unwrap_or(0) as usize;
    let text = payload
        .get(7..7 + len)
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let msg = format!("{text} (reply {code})");
    match code {
        403 => Failure::auth(msg),
        _ => Failure::not_ready(format!("amqp: {msg}")),
    }
}

/// One attempt.
pub async fn check(r: &Resolver, e: &Endpoint, vhost: &str) -> CheckResult {
    let mut s = r.connect(&e.host, e.port).await?;
    let io = |err: std::io::Error| Failure::io("amqp", &err);
    s.write_all(HEADER).await.map_err(io)?;
    let mut buf = Vec::new();
    let f = read_frame(&mut s, &mut buf).await?;
    if f.method() != Some((10, 10)) {
        return Err(Failure::protocol("amqp: expected Connection.Start"));
    }
    let Some(user) = &e.user else {
        return Ok(());
    };
    let password = e.password.as_ref().map_or("", |p| p.expose());
    s.write_all(&start_ok(user, password)).await.map_err(io)?;
    login(&mut s, &mut buf, vhost).await
}

async fn login(s: &mut TcpStream, buf: &mut Vec<u8>, vhost: &str) -> CheckResult {
    let io = |err: std::io::Error| Failure::io("amqp", &err);
    loop {
        let f = match read_frame(s, buf).await {
            Ok(f) => f,
            Err(f) if f.message.contains("closed the connection") => {
                return Err(Failure::auth(
                    "the server closed the connection after the login (wrong user or password?)",
                ))
            }
            Err(f) => return Err(f),
        };
        match f.method() {
            Some((10, 30)) => {
                // Tune: echo the limits back, then open the vhost.
                let tune = f.payload.get(4..12).unwrap_or(&[0; 8]).to_vec();
                let mut out = frame(10, 31, &tune);
                let mut open = Vec::new();
                short_str(&mut open, vhost);
                short_str(&mut open, "");
                open.push(0);
                out.extend_from_slice(&frame(10, 40, &open));
                s.write_all(&out).await.map_err(io)?;
            }
            Some((10, 41)) => {
                let mut close = 200u16.to_be_bytes().to_vec();
                short_str(&mut close, "waitfor: ready");
                close.extend_from_slice(&[0, 0, 0, 0]);
                let _ = s.write_all(&frame(10, 50, &close)).await;
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(100), read_frame(s, buf))
                        .await;
                return Ok(());
            }
            Some((10, 50)) => {
                let _ = s.write_all(&frame(10, 51, &[])).await;
                return Err(close_failure(&f.payload));
            }
            _ if f.kind == 8 => continue, // heartbeat
            _ => return Err(Failure::protocol("amqp: unexpected frame during login")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailKind;

    #[test]
    fn frames() {
        let f = frame(10, 51, &[]);
        assert_eq!(f, [1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51, 0xce]);
        let so = start_ok("guest", "pw");
        assert!(so.windows(9).any(|w| w == b"\0guest\0pw"), "PLAIN response");
        let mut close = vec![0, 10, 0, 50, 0x01, 0x93];
        short_str(&mut close, "ACCESS_REFUSED - Login was refused");
        let f = close_failure(&close);
        assert_eq!(f.kind, FailKind::Auth);
        assert!(f.message.contains("reply 403"), "{f}");
    }
}
