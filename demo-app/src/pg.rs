//! The smallest PostgreSQL client that runs one simple query: startup, trust or cleartext
//! password authentication, `Query`, rows as text. Enough for the demo app to show that it
//! reached a real database through the ambassador.
use std::{
    io::{self, Read, Write},
    net::TcpStream,
    time::Duration,
};

fn message(kind: Option<u8>, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.extend(kind);
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn read_message(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if !(4..=64 << 20).contains(&len) {
        return Err(io::Error::other(format!("bad message length {len}")));
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

fn server_error(body: &[u8]) -> io::Error {
    // Fields: a type byte then a C string; 'M' is the human-readable message.
    let text = body
        .split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'M'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_else(|| "unknown error".into());
    io::Error::other(format!("server error: {text}"))
}

fn be_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn parse_row(body: &[u8]) -> Option<Vec<String>> {
    let n = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut at = 2;
    let mut row = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = be_i32(body.get(at..)?)?;
        at += 4;
        if len < 0 {
            row.push("NULL".into());
        } else {
            let end = at + len as usize;
            row.push(String::from_utf8_lossy(body.get(at..end)?).into_owned());
            at = end;
        }
    }
    Some(row)
}

/// Connects to `addr`, authenticates as `user` on `db`, runs `sql`, returns the rows as text.
pub(crate) fn query(
    addr: &str,
    user: &str,
    db: &str,
    password: Option<&str>,
    sql: &str,
) -> io::Result<Vec<Vec<String>>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut startup = 196_608u32.to_be_bytes().to_vec();
    cstr(&mut startup, "user");
    cstr(&mut startup, user);
    cstr(&mut startup, "database");
    cstr(&mut startup, db);
    startup.push(0);
    s.write_all(&message(None, &startup))?;
    let mut rows = Vec::new();
    let mut sent_query = false;
    loop {
        let (kind, body) = read_message(&mut s)?;
        match kind {
            b'R' => match be_i32(&body) {
                Some(0) => {}
                Some(3) => {
                    let pw = password.ok_or_else(|| {
                        io::Error::other("server asks for a password: set PGPASSWORD")
                    })?;
                    let mut p = Vec::new();
                    cstr(&mut p, pw);
                    s.write_all(&message(Some(b'p'), &p))?;
                }
                other => {
                    return Err(io::Error::other(format!(
                        "unsupported authentication method {other:?} (demo-app speaks trust and cleartext)"
                    )))
                }
            },
            b'E' => return Err(server_error(&body)),
            b'D' => rows.extend(parse_row(&body)),
            b'Z' if !sent_query => {
                let mut q = Vec::new();
                cstr(&mut q, sql);
                s.write_all(&message(Some(b'Q'), &q))?;
                sent_query = true;
            }
            b'Z' => {
                let _ = s.write_all(&message(Some(b'X'), &[]));
                return Ok(rows);
            }
            _ => {}
        }
    }
}
