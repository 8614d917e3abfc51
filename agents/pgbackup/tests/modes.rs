//! One-shot runs (`--once`), roles with the globals dump, the scheduled restore check and
//! the webhooks.
mod support;

use std::{
    io::{Read, Write},
    net::TcpListener,
    time::Duration,
};

use support::*;
use testkit::run_to_end;

#[test]
fn once_backs_up_globals_and_databases_and_exits_with_the_result() {
    let db = Db::create("pgb_once");
    db.sql("CREATE TABLE t AS SELECT generate_series(1, 10) AS x");
    let tmp = tempfile::tempdir().unwrap();
    let mut c = agent(tmp.path(), &db.name);
    c.args(["--once", "--globals"]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    let names = backups(tmp.path());
    assert_eq!(names.len(), 2, "{names:?}");
    let globals = names
        .iter()
        .find(|n| n.starts_with("_globals-"))
        .expect("globals backup");
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(tmp.path().join(globals))
        .output()
        .unwrap();
    let sql = String::from_utf8_lossy(&out.stdout);
    assert!(sql.contains("CREATE ROLE postgres"), "{sql}");

    // One database fails: the run's exit code says so.
    let mut c = agent(tmp.path(), &format!("{},no_such_db_once", db.name));
    c.args(["--once", "--keep-last", "5"]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("no_such_db_once"), "{err}");
    assert_eq!(backups(tmp.path()).len(), 3);
}

#[test]
fn scheduled_restore_check_restores_into_a_scratch_database_and_drops_it() {
    let src = Db::create("pgb_vr");
    fill(&src, 1_000);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = agent(tmp.path(), &src.name);
    c.args(["--once", "--verify-restore-every", "1"]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(120));
    assert!(st.success(), "{err}");
    let line = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "restore check passed")
        .unwrap_or_else(|| panic!("no restore check in {err}"));
    assert_eq!(line["tables"], 4, "{line}");
    // 502 people + 2000 orders + 1000 events.
    assert_eq!(line["rows"], 3502, "{line}");
    let scratch = format!("pgbackup_verify_{}", src.name);
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'")
        ),
        "0"
    );
}

/// Reads one HTTP request from `s` and answers 200; returns the request.
fn answer_one<S: Read + Write>(s: &mut S) -> String {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        req.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&req);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.flush().unwrap();
    String::from_utf8_lossy(&req).into_owned()
}

/// A stream whose first byte was already read.
struct ChainFirst<'a, S>(Option<u8>, &'a mut S);

impl<S: Read + Write> Read for ChainFirst<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(b) if !buf.is_empty() => {
                buf[0] = b;
                Ok(1)
            }
            _ => self.1.read(buf),
        }
    }
}

impl<S: Read + Write> Write for ChainFirst<'_, S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.1.flush()
    }
}

/// Accepts one HTTP request and answers 200; returns the request.
fn one_request(listener: TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        answer_one(&mut s)
    })
}

/// Accepts one HTTPS request (certificate and key in DER) and answers 200.
fn one_https_request(
    listener: TcpListener,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
) -> std::thread::JoinHandle<String> {
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert],
        rustls::pki_types::PrivatePkcs8KeyDer::from(key).into(),
    )
    .unwrap();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        // A client that rejects the certificate ends the handshake: no request.
        let mut first = [0u8; 1];
        match tls.read(&mut first) {
            Ok(1) => {}
            _ => return String::new(),
        }
        let mut rest = ChainFirst(Some(first[0]), &mut tls);
        let req = answer_one(&mut rest);
        tls.conn.send_close_notify();
        let _ = tls.conn.complete_io(&mut tls.sock);
        req
    })
}

#[test]
fn webhooks_report_success_and_failure() {
    let db = Db::create("pgb_hook");
    db.sql("CREATE TABLE t AS SELECT 1 AS x");
    let tmp = tempfile::tempdir().unwrap();
    let ok = TcpListener::bind("127.0.0.1:0").unwrap();
    let bad = TcpListener::bind("127.0.0.1:0").unwrap();
    let ok_url = format!("http://{}/done?token=hooksecret", ok.local_addr().unwrap());
    let bad_url = format!("http://{}/failed", bad.local_addr().unwrap());
    let got = one_request(ok);
    let mut c = agent(tmp.path(), &db.name);
    c.args([
        "--once",
        "--webhook-url",
        &ok_url,
        "--webhook-error-url",
        &bad_url,
    ]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    let req = got.join().unwrap();
    assert!(
        req.starts_with("POST /done?token=hooksecret HTTP/1.1"),
        "{req}"
    );
    assert!(
        req.contains("\"status\":\"success\"") && req.contains(&db.name),
        "{req}"
    );
    assert!(!err.contains("hooksecret"), "{err}");

    let got = one_request(bad);
    let mut c = agent(tmp.path(), "no_such_db_hook");
    c.args([
        "--once",
        "--webhook-url",
        &ok_url,
        "--webhook-error-url",
        &bad_url,
    ]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert_eq!(st.code(), Some(1), "{err}");
    let req = got.join().unwrap();
    assert!(req.starts_with("POST /failed HTTP/1.1"), "{req}");
    assert!(
        req.contains("\"status\":\"failure\"") && req.contains("no_such_db_hook"),
        "{req}"
    );

    // An unknown scheme is refused at start with a clear message.
    let mut c = agent(tmp.path(), &db.name);
    c.args(["--once", "--webhook-url", "ftp://hooks.example/x"]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(30));
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("--webhook-url") && err.contains("unsupported scheme ftp"),
        "{err}"
    );
}

#[test]
fn https_webhook_is_verified_and_sent() {
    let db = Db::create("pgb_hooks");
    db.sql("CREATE TABLE t AS SELECT 1 AS x");
    let tmp = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = tmp.path().join("hook-ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = one_https_request(
        listener,
        ck.cert.der().clone(),
        ck.signing_key.serialize_der(),
    );
    let url = format!("https://localhost:{port}/hook?token=tlssecret");
    let mut c = agent(tmp.path(), &db.name);
    c.args(["--once", "--webhook-url", &url, "--webhook-ca-file"])
        .arg(&ca);
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    let req = got.join().unwrap();
    assert!(
        req.starts_with("POST /hook?token=tlssecret HTTP/1.1"),
        "{req}"
    );
    assert!(req.contains("\"status\":\"success\""), "{req}");
    assert!(!err.contains("cannot send webhook"), "{err}");
    assert!(!err.contains("tlssecret"), "{err}");

    // Without the CA, the server is not trusted: the webhook fails (logged), the backup not.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = one_https_request(
        listener,
        ck.cert.der().clone(),
        ck.signing_key.serialize_der(),
    );
    let mut c = agent(tmp.path(), &db.name);
    c.args([
        "--once",
        "--webhook-url",
        &format!("https://localhost:{port}/hook"),
    ]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert!(st.success(), "{err}");
    assert!(
        err.contains("cannot send webhook") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(
        server.join().unwrap(),
        "",
        "no request may reach an untrusted server"
    );

    // A CA file that does not exist is refused at start.
    let mut c = agent(tmp.path(), &db.name);
    c.args([
        "--once",
        "--webhook-url",
        &url,
        "--webhook-ca-file",
        "/nonexistent/ca.pem",
    ]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(30));
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("--webhook-ca-file") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
