//! Test support: a ConfigMap/Secret volume written the way kubelet's atomic writer does it, a
//! webhook receiver that records each call, metric scraping, and the reloader binary.
#![allow(dead_code, unreachable_pub)]

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU16, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

pub use testkit::{http_get, wait_until, AgentProcess};

/// The reloader binary with a free admin port and JSON logs.
pub fn reloader(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reloader"));
    cmd.args([
        "--admin-addr",
        "127.0.0.1:0",
        "--log-level",
        "info,reloader=debug",
    ]);
    cmd.args(args);
    cmd
}

/// A volume laid out as kubelet lays out ConfigMap and Secret volumes:
/// `key -> ..data/key`, `..data -> ..<timestamp>`, updated by writing a new timestamped
/// directory, pointing `..data_tmp` at it, renaming `..data_tmp` over `..data`, then removing
/// the old directory.
pub struct Volume {
    pub dir: PathBuf,
    mode: u32,
    n: u32,
    keys: Vec<String>,
    current: Option<String>,
}

impl Volume {
    /// A ConfigMap volume (files 0644) at `dir` with `files`.
    pub fn configmap(dir: &Path, files: &[(&str, &str)]) -> Self {
        Self::with_mode(dir, 0o644, files)
    }

    /// A Secret volume (files 0400, as with `defaultMode: 0400`).
    pub fn secret(dir: &Path, files: &[(&str, &str)]) -> Self {
        Self::with_mode(dir, 0o400, files)
    }

    fn with_mode(dir: &Path, mode: u32, files: &[(&str, &str)]) -> Self {
        fs::create_dir_all(dir).unwrap();
        let mut v = Volume {
            dir: dir.to_path_buf(),
            mode,
            n: 0,
            keys: Vec::new(),
            current: None,
        };
        v.update(files);
        v
    }

    /// Path of a key as the app sees it.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Replaces the volume's contents the way kubelet does.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        self.n += 1;
        let ts = format!("..2026_11_26_15_00_00.{:09}", 100_000_000 + self.n);
        let tsdir = self.dir.join(&ts);
        fs::create_dir(&tsdir).unwrap();
        for (k, v) in files {
            let p = tsdir.join(k);
            fs::write(&p, v).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(self.mode)).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&ts, &tmp).unwrap();
        fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (k, _) in files {
            let link = self.dir.join(k);
            if fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{k}"), &link).unwrap();
            }
        }
        for old in &self.keys {
            if !files.iter().any(|(k, _)| k == old) {
                fs::remove_file(self.dir.join(old)).unwrap();
            }
        }
        if let Some(old) = self.current.replace(ts) {
            fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
        self.keys = files.iter().map(|(k, _)| k.to_string()).collect();
    }
}

/// One webhook call.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// An HTTP server recording calls and answering with a settable status.
pub struct Receiver {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Serves on `listener`.
    pub fn on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s, st) = (calls.clone(), status.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (c, s) = (c.clone(), s.clone());
                thread::spawn(move || serve(conn, &c, &s));
            }
        });
        Receiver {
            addr,
            calls,
            status,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, calls: &Mutex<Vec<Call>>, status: &AtomicU16) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let at = Instant::now();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_string());
                if n == "content-length" {
                    len = v.parse().unwrap_or(0);
                }
                headers.push((n, v));
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        calls.lock().unwrap().push(Call {
            at,
            method,
            path,
            headers,
        });
        let code = status.load(Ordering::SeqCst);
        let _ = write!(w, "HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok");
    }
}

/// A loopback address with a port nothing listens on right now. Each test passes its own
/// address in 127.0.0.0/8, so tests running in parallel never get the same address and port.
pub fn free_addr(ip: [u8; 4]) -> SocketAddr {
    TcpListener::bind((std::net::Ipv4Addr::from(ip), 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The value of metric `name` (with its labels exactly as printed, e.g.
/// `reloader_actions_total{action="webhook",result="success"}`), 0 when absent.
pub fn metric(admin: SocketAddr, series: &str) -> f64 {
    let text = http_get(admin, "/metrics")
        .map(|r| r.body)
        .unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Waits until metric `series` is at least `min`.
pub fn wait_metric(admin: SocketAddr, series: &str, min: f64, timeout: Duration) {
    wait_until(timeout, &format!("{series} >= {min}"), || {
        metric(admin, series) >= min
    });
}

/// Waits until the loop is idle: the change seen has been carried through (or refused).
pub fn wait_settled(admin: SocketAddr, timeout: Duration) {
    wait_until(timeout, "no pending reload", || {
        metric(admin, "reloader_pending_reload") == 0.0
            && metric(admin, "reloader_checks_total") > 0.0
    });
}

/// `HTTP GET` body, or "" on error.
pub fn body(addr: SocketAddr, path: &str) -> String {
    http_get(addr, path).map(|r| r.body).unwrap_or_default()
}

pub const LONG: Duration = Duration::from_secs(20);
