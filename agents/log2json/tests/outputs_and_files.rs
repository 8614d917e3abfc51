//! File input through the shared tailer (checkpoints, multiline groups split across reads,
//! restart without duplicates), and the file and HTTP outputs (retries, Elasticsearch _bulk).
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use testkit::{http_get, run_to_end, wait_until, AgentProcess};

const T: Duration = Duration::from_secs(30);

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_log2json"));
    c.env_remove("ELASTICSEARCH_HOST")
        .env_remove("OUTPUT_FORMAT");
    c
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn metric(agent: &AgentProcess, name: &str) -> f64 {
    let body = http_get(agent.admin_addr(), "/metrics").unwrap().body;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn read_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn tails_files_with_multiline_and_resumes_from_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.json");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    append(&log, "2015-10-18 18:01:47,978 ERROR [main] a.B: boom\n");
    let start = || {
        let mut c = bin();
        c.args([
            "--format",
            "log4j",
            "--multiline-start",
            r"^\d{4}-",
            "--multiline-timeout",
            "1h",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .arg("--path")
        .arg(dir.path().join("*.log"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--output")
        .arg(&out);
        AgentProcess::spawn(c)
    };
    let mut agent = start();
    agent.wait_ready(T);
    wait_until(T, "first line read", || {
        metric(&agent, "log2json_lines_read_total") == 1.0
    });
    // The rest of the group arrives in a later read.
    append(&log, "java.lang.RuntimeException: x\n\tat a.B(B.java:1)\n2015-10-18 18:01:48,000 INFO [main] a.B: second\n");
    wait_until(T, "first record", || read_records(&out).len() == 1);
    let recs = read_records(&out);
    assert_eq!(
        recs[0]["message"],
        "boom\njava.lang.RuntimeException: x\n\tat a.B(B.java:1)"
    );
    assert_eq!(recs[0]["file"], log.to_str().unwrap());
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(T).success());
    assert_eq!(
        read_records(&out).len(),
        2,
        "SIGTERM wrote the pending group"
    );

    // Restart: only new lines come out.
    append(&log, "2015-10-18 18:01:49,000 WARN [main] a.B: third\n");
    let mut agent = start();
    agent.wait_ready(T);
    wait_until(T, "third line read", || {
        metric(&agent, "log2json_lines_read_total") == 1.0
    });
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(T).success());
    let recs = read_records(&out);
    let msgs: Vec<&str> = recs
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            "boom\njava.lang.RuntimeException: x\n\tat a.B(B.java:1)",
            "second",
            "third"
        ]
    );
}

/// (path, body) of each request the test server accepted.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// A tiny HTTP server: answers the first `fail` requests 503, then 200 with `body`.
fn http_server(fail: usize, body: &'static str) -> (u16, Requests) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).unwrap();
            n += 1;
            let (status, reply) = if n <= fail {
                ("503 Service Unavailable", "busy")
            } else {
                ("200 OK", body)
            };
            if n > fail {
                seen.lock()
                    .unwrap()
                    .push((path, String::from_utf8(b).unwrap()));
            }
            let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}", reply.len());
        }
    });
    (port, got)
}

fn run_with_input(mut c: Command, input: &str) -> (bool, String) {
    c.args(["--admin-addr", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn http_output_retries_then_delivers_ndjson() {
    let (port, got) = http_server(2, "{}");
    let mut c = bin();
    c.args([
        "--format",
        "logfmt",
        "--output",
        &format!("http://127.0.0.1:{port}/ingest"),
    ]);
    let (ok, stderr) = run_with_input(c, "a=1\nb=2\n");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "/ingest");
    assert_eq!(got[0].1, "{\"a\":\"1\"}\n{\"b\":\"2\"}\n");
}

#[test]
fn elasticsearch_host_posts_to_bulk() {
    let (port, got) = http_server(0, r#"{"errors":false,"items":[]}"#);
    let mut c = bin();
    c.env("ELASTICSEARCH_HOST", format!("127.0.0.1:{port}"))
        .env("OUTPUT_FORMAT", "json")
        .args(["--format", "raw"]);
    let (ok, stderr) = run_with_input(c, "hello\n");
    assert!(ok, "{stderr}");
    let got = got.lock().unwrap();
    assert_eq!(got[0].0, "/logs-log2json-default/_bulk");
    let lines: Vec<&str> = got[0].1.lines().collect();
    assert_eq!(lines[0], "{\"create\":{}}");
    let doc: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(doc["message"], "hello");
    assert!(
        doc["@timestamp"].is_string(),
        "data streams need @timestamp"
    );
}

#[test]
fn file_output_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut c = bin();
    c.args([
        "--output-max-bytes",
        "100",
        "--output-max-files",
        "2",
        "--admin-addr",
        "none",
    ])
    .arg("--output")
    .arg(&out);
    c.stdin(
        std::fs::File::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/loghub/Linux_2k.log"
        ))
        .unwrap(),
    );
    let (status, _, stderr) = run_to_end(c, T);
    assert!(status.success(), "{stderr}");
    let cur = read_records(&out);
    let one = read_records(&dir.path().join("out.json.1"));
    assert!(!cur.is_empty() && !one.is_empty());
    assert!(!dir.path().join("out.json.3").exists());
    assert_eq!(
        cur.last().unwrap()["message"].as_str().unwrap(),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/loghub/Linux_2k.log"
        ))
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim_end()
    );
}

/// An HTTPS server with a self-signed certificate for `localhost`: answers every request 200
/// and keeps the bodies. Returns the port, the certificate (PEM) and what arrived.
fn https_server() -> (u16, String, Requests) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![ck.cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
        )
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut r = BufReader::new(rustls::StreamOwned::new(conn, s));
            let mut line = String::new();
            // A client that refuses the certificate ends the handshake: no request.
            if r.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).unwrap();
            seen.lock()
                .unwrap()
                .push((path, String::from_utf8(b).unwrap()));
            let tls = r.get_mut();
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, ck.cert.pem(), got)
}

#[test]
fn https_output_with_a_private_ca() {
    let (port, ca_pem, got) = https_server();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let mut c = bin();
    c.args([
        "--format",
        "logfmt",
        "--output",
        &format!("https://localhost:{port}/ingest"),
        "--http-ca-file",
    ])
    .arg(&ca);
    let (ok, stderr) = run_with_input(c, "a=1\n");
    assert!(ok, "{stderr}");
    let got = got.lock().unwrap();
    assert_eq!(got[0].1, "{\"a\":\"1\"}\n");

    // A CA file that is not there stops start-up (exit 2), naming the option and the file.
    let mut c = bin();
    c.args([
        "--output",
        "https://localhost:1/x",
        "--http-ca-file",
        "/nonexistent/ca.pem",
    ]);
    let (status, _, err) = run_to_end(c, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("--http-ca-file") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
