//! Shared helpers for the ambassador's integration tests: spawning the binary, learning the
//! bound listener addresses from its log, reading metrics, and small peers (echo, identify,
//! reply-after-EOF) on loopback.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use testkit::{http_get, AgentProcess};

pub const T: Duration = Duration::from_secs(20);

/// A running ambassador and its admin address.
pub struct Amb {
    pub proc: AgentProcess,
    pub admin: SocketAddr,
}

impl Amb {
    /// Spawns with `args` (plus a free admin port) and waits for the admin server.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Amb {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ambassador"));
        cmd.args(["--admin-addr", "127.0.0.1:0", "--log-level", "info"])
            .args(args);
        for k in ["UPSTREAM_HOST", "UPSTREAM_PORT", "AMBASSADOR_ROUTES"] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = AgentProcess::spawn(cmd);
        let admin = proc.admin_addr();
        Amb { proc, admin }
    }

    /// The address the `n`th route (in order of its "listening" log line) is bound to.
    pub fn listen(&self, n: usize) -> SocketAddr {
        testkit::wait_for(T, "listening lines", || {
            let lines: Vec<serde_json::Value> = self
                .proc
                .stderr_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["message"] == "listening")
                .collect();
            lines.get(n).and_then(|v| v["addr"].as_str()?.parse().ok())
        })
    }

    /// The whole `/metrics` text.
    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").expect("metrics").body
    }

    /// The value of the first metric line that starts with `name{` and contains every label.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// `/readyz` status.
    pub fn ready_status(&self) -> u16 {
        http_get(self.admin, "/readyz")
            .map(|r| r.status)
            .unwrap_or(0)
    }
}

/// Sums the values of metric lines named `name` holding every label in `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An echo server: each connection's bytes are written back; EOF is answered with EOF.
pub fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    serve_with(|mut s| {
        let mut buf = [0u8; 16384];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
    })
}

/// Serves each accepted connection with `f` on its own thread; counts accepted connections.
pub fn serve_with<F>(f: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    serve_listener(l, f)
}

/// Like [`serve_with`] on a given listener.
pub fn serve_listener<F>(l: TcpListener, f: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let addr = l.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let f = Arc::new(f);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            c2.fetch_add(1, Ordering::SeqCst);
            let f = f.clone();
            thread::spawn(move || f(s));
        }
    });
    (addr, count)
}

/// Connects with timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect("connect through the proxy");
    s.set_read_timeout(Some(T)).expect("timeout");
    s.set_write_timeout(Some(T)).expect("timeout");
    s
}

/// Sends `msg` and reads back as many bytes.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).expect("write");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("read echo");
    back
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The queue timeout [`connection_queue`] expects the route to have.
pub const QUEUE_TIMEOUT: &str = "3s";

/// `amb` serves `addr` with `--max-connections 1 --on-limit wait --queue-timeout 3s` in front
/// of an echo server. A connection over the limit waits (counted in `waiting_connections`) and
/// is closed once it waited the queue timeout (counted as `queue_timeout`); a waiting client
/// that resets leaves the queue (`client_left`); one waiting when the holder leaves is served.
pub fn connection_queue(amb: &Amb, addr: SocketAddr) {
    let waiting = || amb.metric("ambassador_waiting_connections", &[]);
    let rejected = |reason: &str| {
        amb.metric(
            "ambassador_rejected_connections_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    let mut holder = connect(addr);
    assert_eq!(roundtrip(&mut holder, b"one"), b"one");

    let started = Instant::now();
    let mut late = connect(addr);
    late.write_all(b"two").expect("write");
    testkit::wait_for(T, "a connection waiting for the slot", || {
        (waiting() == 1.0).then_some(())
    });
    let mut got = Vec::new();
    let _ = late.read_to_end(&mut got);
    let waited = started.elapsed();
    assert!(got.is_empty(), "closed without reaching the upstream");
    assert!(
        waited >= Duration::from_millis(2950),
        "closed only once it waited the queue timeout ({QUEUE_TIMEOUT}), not after {waited:?}"
    );
    assert_eq!(rejected("queue_timeout"), 1.0);
    assert_eq!(waiting(), 0.0);

    let gone = connect(addr);
    testkit::wait_for(T, "a connection waiting for the slot", || {
        (waiting() == 1.0).then_some(())
    });
    socket2::SockRef::from(&gone)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(gone);
    testkit::wait_for(T, "the client that reset to leave the queue", || {
        (rejected("client_left") == 1.0 && waiting() == 0.0).then_some(())
    });
    assert_eq!(rejected("queue_timeout"), 1.0, "left, not timed out");

    let mut next = connect(addr);
    next.write_all(b"three").expect("write");
    testkit::wait_for(T, "a connection waiting for the slot", || {
        (waiting() == 1.0).then_some(())
    });
    drop(holder);
    let mut back = [0u8; 5];
    next.read_exact(&mut back)
        .expect("the waiting connection is served once the holder leaves");
    assert_eq!(&back, b"three");
    assert_eq!(waiting(), 0.0);
}
