//! Shared helpers for waitfor's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::{SocketAddr, TcpListener},
    process::{Command, ExitStatus},
    time::Duration,
};

pub use testkit::{run_to_end, AgentProcess};

/// The binary, with the admin server on an ephemeral port, JSON logs, and no inherited
/// WAIT_* / WAITFOR_* env.
pub fn waitfor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waitfor"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WAIT") || k.starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--admin-addr", "127.0.0.1:0"])
        .env("LOG_FORMAT", "json");
    cmd
}

/// Runs to the end (at most 60 s); returns (exit code, stdout, stderr).
pub fn run(cmd: Command) -> (Option<i32>, String, String) {
    let (status, out, err): (ExitStatus, String, String) = run_to_end(cmd, Duration::from_secs(60));
    (status.code(), out, err)
}

/// A loopback port that refuses connections until [`Reserved::listen`]: bound but not
/// listening, so no other socket (nor an outgoing connection's source port) can take it.
pub struct Reserved {
    socket: socket2::Socket,
    /// The port.
    pub port: u16,
}

impl Reserved {
    /// Starts accepting connections (they stay in the backlog, unanswered).
    pub fn listen(&self) {
        self.socket.listen(16).expect("listen");
    }
}

/// Reserves a refusing loopback port.
pub fn reserved_port() -> Reserved {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&addr.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    Reserved { socket, port }
}

/// A listener on an ephemeral loopback port.
pub fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// The parsed JSON log lines whose message is `message`.
pub fn messages(stderr: &str, message: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

/// The final summary line of `url`.
pub fn summary(stderr: &str, url: &str) -> serde_json::Value {
    messages(stderr, "summary")
        .into_iter()
        .find(|v| v["url"] == url)
        .unwrap_or_else(|| panic!("no summary line for {url} in:\n{stderr}"))
}

/// Waits for a "target not ready" line (any target) and returns it.
pub fn first_failure(p: &AgentProcess) -> serde_json::Value {
    p.wait_for_message(Duration::from_secs(20), "target not ready")
}
