//! Helpers for logship's integration tests: spawning the real binary, reading its stdout,
//! scraping its metrics, writing log files.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use testkit::{http_get, wait_until, AgentProcess};

/// Generous bound for waits (debug builds on a shared 2-core machine).
pub const LONG: Duration = Duration::from_secs(60);

/// `logship` with a free admin port and no inherited Elasticsearch env.
pub fn logship(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logship"));
    c.args(["--admin-addr", "127.0.0.1:0"]).args(args);
    for k in [
        "ELASTICSEARCH_HOST",
        "ELASTICSEARCH_PORT",
        "LOGSHIP_PATH",
        "LOGSHIP_ES_URL",
        "LOG_LEVEL",
    ] {
        c.env_remove(k);
    }
    c
}

/// A running logship with its stdout lines collected.
pub struct Running {
    pub proc: AgentProcess,
    pub stdout: Arc<Mutex<Vec<String>>>,
}

pub fn spawn(mut cmd: Command) -> Running {
    cmd.stdout(Stdio::piped());
    let mut proc = AgentProcess::spawn(cmd);
    let out = proc.child_mut().stdout.take().expect("stdout piped");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let sink = stdout.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Running { proc, stdout }
}

impl Running {
    /// Stdout lines parsed as JSON.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits until at least `n` records were printed; returns them.
    pub fn wait_records(&self, n: usize) -> Vec<serde_json::Value> {
        wait_until(LONG, &format!("{n} records on stdout"), || {
            self.stdout.lock().unwrap().len() >= n
        });
        self.records()
    }
}

/// The value of metric sample `name` (exact name including labels), if present.
pub fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let body = http_get(addr, "/metrics").ok()?.body;
    body.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Appends lines to a file.
pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// A deterministic nginx-style access log line number `i` (~150 bytes).
pub fn nginx_line(i: u64) -> String {
    format!(
        "10.0.{}.{} - - [26/Nov/2026:15:04:05 +0000] \"GET /api/items/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) test/{i}\"",
        (i / 256) % 256,
        i % 256,
        1000 + i % 9000
    )
}
