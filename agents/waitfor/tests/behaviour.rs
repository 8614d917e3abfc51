//! Behaviour against peers the tests control: late listeners, late names, HTTP 503 then 200,
//! timeouts, bad usage, exec, signals, invert and any.
mod support;

use std::{
    io::{Read, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use support::*;

#[test]
fn a_listener_opened_later_is_picked_up() {
    let port = reserved_port();
    let url = format!("tcp://127.0.0.1:{}", port.port);
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "30s"]);
    let mut p = AgentProcess::spawn(cmd);
    let first = first_failure(&p);
    assert_eq!(first["kind"], "connect", "{first}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{first}"
    );
    port.listen();
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
    let ready = messages(&p.stderr(), "target ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["url"], url);
}

#[test]
fn a_name_that_resolves_later_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "# empty for now\n").unwrap();
    let (_l, addr) = listener();
    let url = format!("tcp://db.waitfor-test.invalid:{}", addr.port());
    let mut cmd = waitfor();
    cmd.args([
        url.as_str(),
        "dns://cache.waitfor-test.invalid",
        "--timeout",
        "30s",
    ])
    .env("WAITFOR_HOSTS_FILE", &hosts);
    let mut p = AgentProcess::spawn(cmd);
    let first = first_failure(&p);
    assert_eq!(first["kind"], "dns", "{first}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("does not resolve"),
        "{first}"
    );
    std::fs::write(
        &hosts,
        "127.0.0.1 db.waitfor-test.invalid cache.waitfor-test.invalid\n",
    )
    .unwrap();
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
}

/// A tiny HTTP server: 503 until `healthy` is set, then 200 with body "status: ok".
fn http_server(healthy: Arc<AtomicBool>) -> u16 {
    let (l, addr) = listener();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let (status, body) = if healthy.load(Ordering::SeqCst) {
                ("200 OK", "status: ok")
            } else {
                ("503 Service Unavailable", "starting")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr.port()
}

#[test]
fn http_answering_503_then_200() {
    let healthy = Arc::new(AtomicBool::new(false));
    let port = http_server(healthy.clone());
    let url = format!("http://127.0.0.1:{port}/healthz#contains=ok");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "30s"]);
    let mut p = AgentProcess::spawn(cmd);
    let first = first_failure(&p);
    assert_eq!(first["kind"], "not_ready");
    assert!(
        first["error"].as_str().unwrap().contains("HTTP 503"),
        "{first}"
    );
    healthy.store(true, Ordering::SeqCst);
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
}

#[test]
fn http_body_and_status_options() {
    let healthy = Arc::new(AtomicBool::new(false));
    let port = http_server(healthy);
    // 503 accepted by status, but the body must say "ok": it does not.
    let url = format!("http://127.0.0.1:{port}/#status=503&contains=ok");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "500ms"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    assert!(
        summary(&err, &url)["last_error"]
            .as_str()
            .unwrap()
            .contains("does not contain \"ok\""),
        "{err}"
    );
    let url = format!("http://127.0.0.1:{port}/#status=5xx&regex=^start");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "10s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
}

/// An HTTP server routing by path: `/old` redirects (relative) to `/new`, `/away` redirects
/// to another origin (the same server under `localhost`), `/loop` redirects to itself, `/new`
/// answers 200 "arrived" only with the Basic credentials `app:s3cr@t` (else 401); every request
/// head is recorded.
fn redirecting_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let (l, addr) = listener();
    let port = addr.port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            log.lock().unwrap().push(head.clone());
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            // "app:s3cr@t" in base64.
            let authed = head.contains("Authorization: Basic YXBwOnMzY3JAdA==")
                || head.contains("authorization: Basic YXBwOnMzY3JAdA==");
            let (status, extra, body) = match path.as_str() {
                "/old" => ("302 Found", "Location: new?x=1\r\n".to_string(), ""),
                "/away" => (
                    "301 Moved Permanently",
                    format!("Location: http://localhost:{port}/new\r\n"),
                    "",
                ),
                "/loop" => ("307 Temporary Redirect", "Location: /loop\r\n".into(), ""),
                p if p.starts_with("/new") && authed => ("200 OK", String::new(), "arrived"),
                _ => ("401 Unauthorized", String::new(), "who are you"),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn http_redirects_and_basic_auth_from_the_url() {
    let (port, seen) = redirecting_server();
    // Relative redirect on the same origin: the credentials follow, the body is checked at the
    // end of the chain, and the password is never printed.
    let url = format!("http://app:s3cr%40t@127.0.0.1:{port}/old#contains=arrived");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "10s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("s3cr"), "{err}");
    let heads = seen.lock().unwrap().clone();
    assert!(heads[0].starts_with("GET /old HTTP/1.1\r\n"), "{heads:?}");
    assert!(
        heads[1].starts_with("GET /new?x=1 HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{heads:?}"
    );

    // Another origin does not get the credentials: 401, an authentication failure.
    let url = format!("http://app:s3cr%40t@127.0.0.1:{port}/away");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "300ms"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    let last = summary(&err, &common::secret::redact(&url))["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        last.starts_with("authentication failed: HTTP 401"),
        "{last}"
    );
    assert!(!err.contains("s3cr"), "{err}");

    // A loop is reported as such.
    let url = format!("http://127.0.0.1:{port}/loop");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "300ms"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    let s = summary(&err, &url);
    assert!(
        s["last_error"].as_str().unwrap().contains("redirect loop"),
        "{s}"
    );
}

#[test]
fn retry_schedule_options_are_checked() {
    let (_l, addr) = listener();
    let mut cmd = waitfor();
    cmd.args([&format!("tcp://{addr}"), "--slow-interval", "0"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--slow-interval"), "{err}");
    // The slow phase from the start (slow-after 1ms) still gets a listener that is there.
    let mut cmd = waitfor();
    cmd.args([
        &format!("tcp://{addr}"),
        "--slow-after",
        "1ms",
        "--timeout",
        "10s",
    ]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn timeout_exits_124_and_names_the_culprit() {
    let (_l, ok) = listener();
    let refusing = reserved_port();
    let closed = format!("tcp://127.0.0.1:{}", refusing.port);
    let ok = format!("tcp://{ok}");
    let mut cmd = waitfor();
    cmd.args([
        ok.as_str(),
        closed.as_str(),
        "--timeout",
        "1s",
        "--summary-interval",
        "200ms",
    ]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    assert_eq!(
        messages(&err, &format!("timed out waiting for {closed}")).len(),
        1,
        "{err}"
    );
    assert_eq!(summary(&err, &ok)["ready"], true);
    let s = summary(&err, &closed);
    assert_eq!(s["ready"], false);
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{s}"
    );
    let periodic = messages(&err, "still waiting");
    assert!(!periodic.is_empty(), "{err}");
    assert!(periodic[0]["waiting"].as_str().unwrap().contains(&closed));
}

#[test]
fn bad_usage_exits_2_and_says_which_and_why() {
    let cases = [
        ("ftp://files:21", "unsupported scheme"),
        ("tcp://db", "needs a port"),
        ("db-without-port", "HOST:PORT"),
        (
            "postgres://app:s3cret@db/app?table=users;drop",
            "expected a table name",
        ),
        ("redis://cache?tls=yes", "unknown option"),
        ("http://api/#status=ok", "status codes"),
    ];
    for (target, why) in cases {
        let mut cmd = waitfor();
        cmd.arg(target);
        let (code, _, err) = run(cmd);
        assert_eq!(code, Some(2), "{target}: {err}");
        let line = messages(&err, "invalid configuration");
        assert_eq!(line.len(), 1, "{err}");
        let e = line[0]["error"].as_str().unwrap();
        assert!(e.contains(why), "{target}: {e}");
        assert!(e.contains(&common::secret::redact(target)), "{target}: {e}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    let (code, _, err) = run(waitfor());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no targets"), "{err}");
}

#[test]
fn check_config_never_prints_passwords() {
    let mut cmd = waitfor();
    cmd.args([
        "--check-config",
        "postgres://app:s3cret@db/app",
        "--",
        "app",
        "--db=redis://:s3cret@r",
    ])
    .env("WAIT_FOR", "amqp://guest:s3cret@mq/");
    let (code, out, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("postgres://app:***@db/app"), "{out}");
    assert!(
        !out.contains("s3cret") && !err.contains("s3cret"),
        "{out}{err}"
    );
}

#[test]
fn exec_runs_the_command_with_its_arguments_and_exit_code() {
    let (_l, addr) = listener();
    let mut cmd = waitfor();
    cmd.arg(format!("tcp://{addr}")).args([
        "--",
        "sh",
        "-c",
        "echo \"args: $0 $1\"; exit 7",
        "first",
        "second arg",
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, Some(7), "{err}");
    assert_eq!(out.trim(), "args: first second arg");
    assert_eq!(messages(&err, "running command").len(), 1, "{err}");

    let mut cmd = waitfor();
    cmd.arg(format!("tcp://{addr}"))
        .args(["--", "/nonexistent/waitfor-test-command"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(127), "{err}");
    assert!(err.contains("cannot run the command"), "{err}");
}

#[test]
fn exec_does_not_run_when_the_wait_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let mut cmd = waitfor();
    let refusing = reserved_port();
    cmd.arg(format!("tcp://127.0.0.1:{}", refusing.port))
        .args(["--timeout", "300ms", "--", "touch"])
        .arg(&marker);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    assert!(!marker.exists());
}

#[test]
fn sigterm_while_waiting_exits_promptly_with_a_summary() {
    let refusing = reserved_port();
    let url = format!("tcp://127.0.0.1:{}", refusing.port);
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "60s"]);
    let mut p = AgentProcess::spawn(cmd);
    first_failure(&p);
    let sent = Instant::now();
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(5));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(143), "{}", p.stderr());
    let err = p.stderr();
    assert_eq!(
        messages(&err, &format!("interrupted while waiting for {url}")).len(),
        1,
        "{err}"
    );
    assert_eq!(summary(&err, &url)["ready"], false);
}

#[test]
fn invert_waits_until_the_target_is_gone() {
    let (l, addr) = listener();
    let url = format!("tcp://{addr}");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--invert", "--timeout", "30s"]);
    let mut p = AgentProcess::spawn(cmd);
    let first = first_failure(&p);
    assert!(
        first["error"].as_str().unwrap().contains("still reachable"),
        "{first}"
    );
    drop(l);
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
    assert_eq!(messages(&p.stderr(), "target gone").len(), 1);
}

#[test]
fn any_is_done_with_one_target() {
    let (_l, addr) = listener();
    let mut cmd = waitfor();
    let refusing = reserved_port();
    cmd.arg(format!("tcp://127.0.0.1:{}", refusing.port))
        .arg(format!("{addr}"))
        .args(["--any", "--timeout", "10s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn docker_compose_wait_env_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ready");
    std::fs::write(&file, "x").unwrap();
    let (_l, addr) = listener();
    let mut cmd = waitfor();
    let refusing = reserved_port();
    cmd.env("WAIT_HOSTS", format!("{addr}, 127.0.0.1:{}", refusing.port))
        .env("WAIT_PATHS", &file)
        .env("WAIT_TIMEOUT", "1")
        .env("WAIT_SLEEP_INTERVAL", "1")
        .env("WAIT_HOST_CONNECT_TIMEOUT", "1");
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    assert_eq!(
        summary(&err, &format!("tcp://{addr}"))["ready"],
        true,
        "{err}"
    );
    assert_eq!(
        summary(&err, &file.display().to_string())["ready"],
        true,
        "{err}"
    );
    // WAIT_FOR adds URLs.
    let mut cmd = waitfor();
    cmd.env(
        "WAIT_FOR",
        format!("tcp://{addr},file://{}", file.display()),
    );
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
}

/// A fake MQTT broker refusing every CONNECT with `code`.
fn mqtt_refusing(code: u8) -> u16 {
    let (l, addr) = listener();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&[0x20, 0x02, 0x00, code]);
        }
    });
    addr.port()
}

#[test]
fn mqtt_bad_credentials_are_named() {
    let port = mqtt_refusing(4);
    let url = format!("mqtt://app:wrongpass@127.0.0.1:{port}");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "500ms"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    let s = summary(&err, &common::secret::redact(&url));
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("authentication failed: bad user name or password"),
        "{s}"
    );
    assert!(!err.contains("wrongpass"));
}

#[test]
fn a_port_that_speaks_another_protocol_is_not_ready() {
    // A "Redis" that is really an HTTP server: open port, wrong protocol.
    let port = http_server(Arc::new(AtomicBool::new(true)));
    let url = format!("redis://127.0.0.1:{port}");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "500ms"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    assert_eq!(
        messages(&err, "target not ready")[0]["kind"],
        "protocol",
        "{err}"
    );
}
