//! `demo-app`: the main app of the pod tests and examples, standing in for the guide's `myapp`.
//!
//! std only (plus `libc` for the SIGTERM handler), so its static musl build is quick and its
//! image tiny. Everything it does is optional and chosen by flags:
//!
//! - `--log-file PATH --log-lines N [--log-interval-ms MS]`: appends N access-log style lines to
//!   PATH (the guide's app writing to `/var/log/app/app.log` on a shared volume);
//! - `--http ADDR`: serves `GET /` (a greeting naming the config, see `--config`) and `/healthz`;
//! - `--config PATH`: a file whose first line the greeting repeats (read at every request);
//! - `--pg HOST:PORT [--pg-user U] [--pg-db D] [--pg-query Q]`: runs one query over the
//!   PostgreSQL wire protocol (trust or cleartext password from `PGPASSWORD`), retrying until the
//!   server answers, and prints `postgres answered: <values>`: the guide's app reaching its
//!   database through the ambassador on localhost.
//!
//! It prints `demo-app started` first and exits 0 on SIGTERM or SIGINT, even as PID 1; with
//! `--exit` it exits 0 once its log lines are written and its query answered (an init
//! container or a Job). `--quit URL` (repeatable, with `--exit`): before exiting it POSTs to
//! each URL, a sidecar's `http://localhost:PORT/quitquitquit`, as a Job's main container does
//! so the pod can complete (`curl -X POST` in a real app).
use std::{
    fs::OpenOptions,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::ExitCode,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

mod pg;

/// The parsed flags.
#[derive(Debug, Default)]
struct Options {
    log_file: Option<String>,
    log_lines: u64,
    log_interval: Duration,
    http: Option<String>,
    config: Option<String>,
    pg: Option<String>,
    pg_user: String,
    pg_db: String,
    pg_query: String,
    exit_when_done: bool,
    quit: Vec<String>,
}

const USAGE: &str = "usage: demo-app [--log-file PATH --log-lines N [--log-interval-ms MS]] \
[--http ADDR] [--config PATH] [--pg HOST:PORT [--pg-user U] [--pg-db D] [--pg-query Q]] [--exit [--quit URL]...]";

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        log_interval: Duration::from_millis(100),
        pg_user: "postgres".into(),
        pg_db: "postgres".into(),
        pg_query: "SELECT current_database(), current_user".into(),
        ..Options::default()
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        if flag == "--exit" {
            o.exit_when_done = true;
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|e| format!("{flag} {v:?}: expected a whole number ({e})"))
        };
        match flag.as_str() {
            "--log-file" => o.log_file = Some(value),
            "--log-lines" => o.log_lines = number(&value)?,
            "--log-interval-ms" => o.log_interval = Duration::from_millis(number(&value)?),
            "--http" => o.http = Some(value),
            "--config" => o.config = Some(value),
            "--pg" => o.pg = Some(value),
            "--pg-user" => o.pg_user = value,
            "--pg-db" => o.pg_db = value,
            "--pg-query" => o.pg_query = value,
            "--quit" => {
                if !value.starts_with("http://") {
                    return Err(format!("--quit {value:?}: expected an http:// URL"));
                }
                o.quit.push(value)
            }
            other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

extern "C" fn exit_now(_signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    #[allow(unsafe_code)]
    unsafe {
        libc::_exit(0)
    }
}

#[allow(unsafe_code)]
fn exit_on_termination_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that only calls the async-signal-safe `_exit`.
        unsafe {
            libc::signal(sig, exit_now as *const () as libc::sighandler_t);
        }
    }
}

fn write_logs(path: &str, lines: u64, interval: Duration) {
    let mut file = match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("demo-app: cannot open log file {path}: {e}");
            return;
        }
    };
    for i in 1..=lines {
        let line = format!(
            "127.0.0.1 - - [{}] \"GET /items/{i} HTTP/1.1\" 200 {} \"-\" \"demo-app\" demo-line-{i}\n",
            now_millis(),
            100 + i
        );
        if let Err(e) = file.write_all(line.as_bytes()) {
            eprintln!("demo-app: cannot write to {path}: {e}");
            return;
        }
        thread::sleep(interval);
    }
    println!("demo-app wrote {lines} log lines to {path}");
}

fn greeting(config: Option<&str>) -> String {
    match config {
        None => "hello from demo-app\n".to_string(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => format!(
                "hello from demo-app, config: {}\n",
                text.lines().next().unwrap_or("")
            ),
            Err(e) => format!("hello from demo-app, config {path} unreadable: {e}\n"),
        },
    }
}

fn serve(addr: &str, config: Option<String>) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-app: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("demo-app serving http on {addr}");
    for conn in listener.incoming().flatten() {
        let config = config.clone();
        thread::spawn(move || answer(conn, config.as_deref()));
    }
}

fn answer(mut conn: TcpStream, config: Option<&str>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let path = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let (status, body) = match path.as_str() {
        "/healthz" => ("200 OK", "ok\n".to_string()),
        "/" => ("200 OK", greeting(config)),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn query_until_answered(o: &Options, addr: &str) {
    let password = std::env::var("PGPASSWORD").ok();
    loop {
        match pg::query(addr, &o.pg_user, &o.pg_db, password.as_deref(), &o.pg_query) {
            Ok(rows) => {
                let rows: Vec<String> = rows.iter().map(|r| r.join("|")).collect();
                println!("postgres answered: {}", rows.join(";"));
                return;
            }
            Err(e) => {
                println!("postgres at {addr} not answering yet: {e}");
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// POSTs to `url` (plain http) and returns the status line; retried for a while, as the
/// sidecar may still be starting.
fn post(url: &str) -> Result<String, String> {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut last = String::new();
    for _ in 0..50 {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(host)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                s,
                "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer.lines().next().unwrap_or("").to_string())
        })();
        match attempt {
            Ok(status) => return Ok(status),
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

fn main() -> ExitCode {
    exit_on_termination_signals();
    let o = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    println!("demo-app started at {}", now_millis());
    let mut tasks = Vec::new();
    if let Some(path) = o.log_file.clone() {
        let (lines, interval) = (o.log_lines, o.log_interval);
        tasks.push(thread::spawn(move || write_logs(&path, lines, interval)));
    }
    if let Some(addr) = o.http.clone() {
        let config = o.config.clone();
        thread::spawn(move || serve(&addr, config));
    }
    if let Some(addr) = o.pg.clone() {
        query_until_answered(&o, &addr);
    }
    for t in tasks {
        let _ = t.join();
    }
    let _ = std::io::stdout().flush();
    if o.exit_when_done {
        let mut code = ExitCode::SUCCESS;
        for url in &o.quit {
            match post(url) {
                Ok(status) => println!("asked {url} to quit: {status}"),
                Err(e) => {
                    eprintln!("demo-app: cannot POST {url}: {e}");
                    code = ExitCode::FAILURE;
                }
            }
        }
        let _ = std::io::stdout().flush();
        return code;
    }
    loop {
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn parses_flags_and_rejects_unknown_ones() {
        let o = parse(args(&[
            "--log-file",
            "/x",
            "--log-lines",
            "3",
            "--pg",
            "h:1",
        ]))
        .unwrap();
        assert_eq!(o.log_file.as_deref(), Some("/x"));
        assert_eq!(o.log_lines, 3);
        assert_eq!(o.pg.as_deref(), Some("h:1"));
        assert!(parse(args(&["--nope", "1"]))
            .unwrap_err()
            .contains("unknown flag"));
        assert!(parse(args(&["--log-lines", "x"]))
            .unwrap_err()
            .contains("whole number"));
        assert!(parse(args(&["--http"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(
            parse(args(&["--exit", "--http", "x"]))
                .unwrap()
                .exit_when_done
        );
        let o = parse(args(&[
            "--exit",
            "--quit",
            "http://127.0.0.1:1/quitquitquit",
        ]))
        .unwrap();
        assert_eq!(o.quit, ["http://127.0.0.1:1/quitquitquit"]);
        assert!(parse(args(&["--quit", "localhost:1"]))
            .unwrap_err()
            .contains("http://"));
    }
}
