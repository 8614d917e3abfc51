//! `mysql://[user[:password]@]host[:port][/database]` (also `mariadb://`): the server's
//! protocol-10 greeting, and, when the URL names a user, a login (`mysql_native_password`, or
//! the fast path of `caching_sha2_password`).
//!
//! An error packet in place of the greeting ("too many connections", "host blocked because of
//! many connection errors") is "not ready" with the server's message. Errors 1045 (access
//! denied), 1044 (no access to the database) and 1130 (host not allowed) are authentication
//! failures. When `caching_sha2_password` asks for its full exchange (needs TLS or RSA, not
//! supported here), the greeting and the user's existence are taken as ready.
use sha1::{Digest, Sha1};
use sha2::Sha256;
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

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;

/// What the greeting told.
#[derive(Debug, PartialEq)]
struct Greeting {
    version: String,
    scramble: Vec<u8>,
    plugin: String,
}

async fn read_packet<R: AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(u8, Vec<u8>), Failure> {
    read_at_least(s, buf, 4, "mysql").await?;
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) as usize;
    let seq = buf[3];
    read_at_least(s, buf, 4 + len, "mysql").await?;
    let payload = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok((seq, payload))
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut out = vec![len[0], len[1], len[2], seq];
    out.extend_from_slice(payload);
    out
}

/// Classifies an error packet (`0xff`, code, optional `#SQLSTATE`, message).
fn error_packet(p: &[u8]) -> Failure {
    let code = if p.len() >= 3 {
        u16::from_le_bytes([p[1], p[2]])
    } else {
        0
    };
    let mut msg = p.get(3..).unwrap_or_default();
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        msg = &msg[6..];
    }
    let text = format!("{} (error {code})", String::from_utf8_lossy(msg));
    match code {
        1044 | 1045 | 1130 | 1698 => Failure::auth(text),
        _ => Failure::not_ready(text),
    }
}

fn cstr(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().position(|&b| b == 0) {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (p, &[]),
    }
}

/// Parses a greeting payload.
fn parse_greeting(p: &[u8]) -> Result<Greeting, Failure> {
    match p.first() {
        Some(0xff) => return Err(error_packet(p)),
        Some(10) => {}
        _ => {
            return Err(Failure::protocol(format!(
                "expected a MySQL protocol-10 greeting, got {} (is this a MySQL server?)",
                super::snippet(p)
            )))
        }
    }
    let short = || Failure::protocol("mysql: greeting too short");
    let (version, rest) = cstr(&p[1..]);
    // connection id (4), scramble part 1 (8), filler (1), caps low (2), charset (1),
    // status (2), caps high (2), scramble length (1), reserved (10)
    if rest.len() < 31 {
        return Err(short());
    }
    let mut scramble = rest[4..12].to_vec();
    let auth_len = rest[20] as usize;
    let tail = &rest[31..];
    let part2 = auth_len.saturating_sub(8).max(13).min(tail.len());
    let (s2, after) = tail.split_at(part2);
    scramble.extend_from_slice(s2.strip_suffix(&[0]).unwrap_or(s2));
    scramble.truncate(20);
    let plugin = String::from_utf8_lossy(cstr(after).0).into_owned();
    Ok(Greeting {
        version: String::from_utf8_lossy(version).into_owned(),
        scramble,
        plugin,
    })
}

/// The auth token for `plugin`.
fn token(plugin: &str, password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    if plugin == "caching_sha2_password" {
        let p1 = Sha256::digest(password.as_bytes());
        let p2 = Sha256::digest(p1);
        let mut h = Sha256::new();
        h.update(p2);
        h.update(scramble);
        let p3 = h.finalize();
        return p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect();
    }
    let p1 = Sha1::digest(password.as_bytes());
    let p2 = Sha1::digest(p1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(p2);
    let p3 = h.finalize();
    p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
}

/// One attempt.
pub async fn check(r: &Resolver, e: &Endpoint, database: Option<&str>) -> CheckResult {
    let mut s = r.connect(&e.host, e.port).await?;
    let mut buf = Vec::new();
    let (_, p) = read_packet(&mut s, &mut buf).await?;
    let g = parse_greeting(&p)?;
    let Some(user) = &e.user else {
        return Ok(());
    };
    let password = e.password.as_ref().map_or("", |p| p.expose());
    login(&mut s, &mut buf, &g, user, password, database).await?;
    let _ = s.write_all(&packet(0, &[0x01])).await; // COM_QUIT
    Ok(())
}

async fn login(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    g: &Greeting,
    user: &str,
    password: &str,
    database: Option<&str>,
) -> CheckResult {
    let plugin = match g.plugin.as_str() {
        "caching_sha2_password" => "caching_sha2_password",
        _ => "mysql_native_password",
    };
    let mut flags = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH;
    if database.is_some() {
        flags |= CLIENT_CONNECT_WITH_DB;
    }
    let mut p = Vec::new();
    p.extend_from_slice(&flags.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45); // utf8mb4
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    let t = token(plugin, password, &g.scramble);
    p.push(t.len() as u8);
    p.extend_from_slice(&t);
    if let Some(db) = database {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    let io = |err: std::io::Error| Failure::io("mysql", &err);
    s.write_all(&packet(1, &p)).await.map_err(io)?;
    let mut current = plugin.to_string();
    for _ in 0..4 {
        let (seq, reply) = read_packet(s, buf).await?;
        match reply.first() {
            Some(0x00) => return Ok(()),
            Some(0xff) => return Err(error_packet(&reply)),
            Some(0xfe) => {
                // Auth switch: another plugin, a new scramble.
                let (name, data) = cstr(&reply[1..]);
                current = String::from_utf8_lossy(name).into_owned();
                if current != "mysql_native_password" && current != "caching_sha2_password" {
                    return Err(Failure::protocol(format!(
                        "mysql: the server wants auth plugin {current}, which waitfor does not speak"
                    )));
                }
                let scramble = data.strip_suffix(&[0]).unwrap_or(data);
                let t = token(&current, password, scramble);
                s.write_all(&packet(seq.wrapping_add(1), &t))
                    .await
                    .map_err(io)?;
            }
            Some(0x01) if current == "caching_sha2_password" => match reply.get(1) {
                Some(3) => continue, // fast auth ok; the OK packet follows
                // Full authentication needs TLS or RSA: the server is up and answered.
                Some(4) => return Ok(()),
                _ => return Err(Failure::protocol("mysql: unexpected auth data")),
            },
            _ => {
                return Err(Failure::protocol(format!(
                    "mysql: unexpected reply {}",
                    super::snippet(&reply)
                )))
            }
        }
    }
    Err(Failure::protocol("mysql: authentication did not finish"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailKind;

    #[test]
    fn greeting_and_errors() {
        let mut p = vec![10];
        p.extend_from_slice(b"10.11.6-MariaDB\0");
        p.extend_from_slice(&[1, 0, 0, 0]);
        p.extend_from_slice(b"abcdefgh");
        p.push(0);
        p.extend_from_slice(&[0xff, 0xf7, 45, 2, 0, 0xff, 0x81, 21]);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
        let g = parse_greeting(&p).unwrap();
        assert_eq!(g.version, "10.11.6-MariaDB");
        assert_eq!(g.scramble, b"abcdefghijklmnopqrst");
        assert_eq!(g.plugin, "mysql_native_password");

        let mut err = vec![0xff, 0x10, 0x04];
        err.extend_from_slice(b"Too many connections");
        let f = parse_greeting(&err).unwrap_err();
        assert_eq!(f.kind, FailKind::NotReady);
        assert!(
            f.message.contains("Too many connections (error 1040)"),
            "{f}"
        );
        let mut denied = vec![0xff, 0x15, 0x04];
        denied.extend_from_slice(b"#28000Access denied for user 'root'");
        let f = error_packet(&denied);
        assert_eq!(f.kind, FailKind::Auth);
        assert!(
            f.message
                .starts_with("authentication failed: Access denied"),
            "{f}"
        );
        assert_eq!(
            parse_greeting(b"SSH-2.0").unwrap_err().kind,
            FailKind::Protocol
        );
    }

    #[test]
    fn tokens() {
        assert!(token("mysql_native_password", "", b"x").is_empty());
        assert_eq!(token("mysql_native_password", "pw", &[7; 20]).len(), 20);
        assert_eq!(token("caching_sha2_password", "pw", &[7; 20]).len(), 32);
    }
}
