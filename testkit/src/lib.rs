//! Test support shared by every agent's integration tests.
//!
//! - [`cargo_bin`]: the path of a workspace binary built next to the running test.
//! - [`AgentProcess`]: a running agent binary with its stderr collected, its admin address
//!   learned from its log, signals, and a bounded wait for its exit.
//! - [`wait_until`]: polls a condition until it holds or a deadline passes (never a bare sleep).
//! - [`http_get`]: a minimal blocking HTTP/1.1 GET for admin endpoints.
//! - [`fake_es`]: a faithful Elasticsearch `_bulk` endpoint with fault injection.
pub mod fake_es;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

/// The path of workspace binary `name` (built by `cargo test`/`nextest` for the workspace).
pub fn cargo_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not found: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// Polls `cond` every 10 ms until it returns true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Like [`wait_until`], returning the first `Some` value.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut out = None;
    wait_until(timeout, what, || {
        out = f();
        out.is_some()
    });
    out.expect("set by wait_until")
}

/// A minimal HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers as lowercase name and value.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy).
    pub body: String,
}

impl HttpResponse {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole answer.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer: {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// `GET path`.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    http_request(addr, "GET", path)
}

/// A running agent binary. Killed when dropped.
pub struct AgentProcess {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_closed: Arc<std::sync::atomic::AtomicBool>,
    name: String,
}

impl AgentProcess {
    /// Spawns `cmd` with stderr captured (JSON logs) and stdout piped unless the caller set it.
    /// Add `--admin-addr 127.0.0.1:0` to learn a free admin port through [`Self::admin_addr`].
    pub fn spawn(mut cmd: Command) -> Self {
        let name = cmd.get_program().to_string_lossy().into_owned();
        cmd.stderr(Stdio::piped()).env("LOG_FORMAT", "json");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        let stderr_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closed = stderr_closed.clone();
        let tag = PathBuf::from(&name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                sink.lock().expect("stderr lock").push(line);
            }
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        AgentProcess {
            child,
            stderr,
            stderr_closed,
            name,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child, to take its stdin or stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Every stderr line so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// All of stderr so far, joined.
    pub fn stderr(&self) -> String {
        self.stderr_lines().join("\n")
    }

    /// Waits for a stderr line for which `pred` holds; returns it.
    pub fn wait_for_log(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        wait_for(timeout, what, || {
            self.stderr
                .lock()
                .expect("stderr lock")
                .iter()
                .find(|l| pred(l))
                .cloned()
        })
    }

    /// Waits for a JSON log line whose `message` equals `message`; returns it parsed.
    pub fn wait_for_message(&self, timeout: Duration, message: &str) -> serde_json::Value {
        let line = self.wait_for_log(timeout, &format!("log message {message:?}"), |l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .is_some_and(|v| v["message"] == message)
        });
        serde_json::from_str(&line).expect("json")
    }

    /// The admin address the agent logged at start.
    pub fn admin_addr(&self) -> SocketAddr {
        let v = self.wait_for_message(Duration::from_secs(20), "admin server listening");
        v["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("addr field in the admin log line")
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> SocketAddr {
        let addr = self.admin_addr();
        wait_until(timeout, &format!("{} to become ready", self.name), || {
            http_get(addr, "/readyz").is_ok_and(|r| r.status == 200)
        });
        addr
    }

    /// Sends signal `sig` (libc::SIGTERM, ...).
    #[allow(unsafe_code)]
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    /// Waits for the process to exit, at most `timeout`; panics if it does not. Then waits
    /// (briefly) until its stderr is read to the end, so its last log lines are in
    /// [`Self::stderr`].
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let name = self.name.clone();
        let child = &mut self.child;
        let status = wait_for(timeout, &format!("{name} to exit"), || {
            child.try_wait().expect("try_wait")
        });
        // A grandchild may still hold the pipe open: do not wait for it for long.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.stderr_closed.load(std::sync::atomic::Ordering::SeqCst)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(5));
        }
        status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a binary to completion with a time limit; returns (status, stdout, stderr).
pub fn run_to_end(mut cmd: Command, timeout: Duration) -> (ExitStatus, String, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_for(timeout, "command to finish", || {
        child.try_wait().expect("try_wait")
    });
    (
        status,
        t_out.join().expect("stdout"),
        t_err.join().expect("stderr"),
    )
}
