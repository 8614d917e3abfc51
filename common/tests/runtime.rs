//! The shared runtime seen from outside, through a real agent binary (`examples/demo-agent.rs`):
//! config precedence and validation, the admin endpoints over HTTP, readiness, signals, and
//! secret redaction.
use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use testkit::{http_get, http_request, run_to_end, AgentProcess};

fn demo_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/demo-agent");
    assert!(
        p.exists(),
        "{} not built (cargo test builds examples)",
        p.display()
    );
    p
}

fn demo() -> Command {
    let mut c = demo_without_admin_addr();
    c.args(["--admin-addr", "127.0.0.1:0"]);
    c
}

fn demo_without_admin_addr() -> Command {
    let mut c = Command::new(demo_bin());
    for k in [
        "DEMO_VALUE",
        "DEMO_SECRET",
        "DEMO_SECRET_FILE",
        "DEMO_DRAIN",
        "ADMIN_ADDR",
        "LOG_LEVEL",
    ] {
        c.env_remove(k);
    }
    c
}

const T: Duration = Duration::from_secs(20);

fn configured_value(cmd: Command) -> String {
    let mut p = AgentProcess::spawn(cmd);
    let v = p.wait_for_message(T, "demo configured");
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(T).success());
    v["value"].as_str().unwrap().to_string()
}

#[test]
fn flag_beats_env_beats_default() {
    assert_eq!(configured_value(demo()), "from-default");
    let mut c = demo();
    c.env("DEMO_VALUE", "from-env");
    assert_eq!(configured_value(c), "from-env");
    let mut c = demo();
    c.env("DEMO_VALUE", "from-env")
        .args(["--demo-value", "from-flag"]);
    assert_eq!(configured_value(c), "from-flag");
}

#[test]
fn bad_values_exit_2_naming_the_option_and_the_value() {
    let mut c = demo();
    c.args(["--shutdown-timeout", "soonish"]);
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("--shutdown-timeout") && err.contains("soonish") && err.contains("5m"),
        "{err}"
    );

    // From env: same check, same exit code.
    let mut c = demo();
    c.env("SHUTDOWN_TIMEOUT", "forever");
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("forever"), "{err}");

    let mut c = demo_without_admin_addr();
    c.args(["--admin-addr", "localhost"]);
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2));
    assert!(
        err.contains("--admin-addr") && err.contains("none"),
        "{err}"
    );

    let mut c = demo();
    c.args(["--log-level", "loud"]);
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("--log-level") && err.contains("loud"), "{err}");

    // Validation in the agent's build(): also exit 2, naming the option.
    let mut c = demo();
    c.args(["--demo-workers", "0"]);
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("--demo-workers"), "{err}");

    let mut c = demo();
    c.args(["--no-such-flag"]);
    let (st, _, _) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2));
}

#[test]
fn check_config_validates_and_exits() {
    let mut c = demo();
    c.args(["--check-config", "--demo-value", "x"]);
    let (st, out, _) = run_to_end(c, T);
    assert!(st.success());
    assert!(
        out.contains("configuration is valid") && out.contains("demo_value: \"x\""),
        "{out}"
    );
}

#[test]
fn help_and_version() {
    let mut c = demo();
    c.env("DEMO_SECRET", "hunter2-in-env").arg("--help");
    let (st, out, _) = run_to_end(c, T);
    assert!(st.success());
    assert!(
        out.contains("--admin-addr") && out.contains("[env: ADMIN_ADDR]"),
        "{out}"
    );
    assert!(out.contains("[default: 0.0.0.0:9479]"), "{out}");
    assert!(out.contains("Admin and logging"), "{out}");
    assert!(
        !out.contains("hunter2"),
        "--help shows a secret from env:\n{out}"
    );

    let mut c = demo();
    c.arg("--version");
    let (st, out, _) = run_to_end(c, T);
    assert!(st.success());
    assert!(out.starts_with("demo 0.1.0 (commit "), "{out}");
}

#[test]
fn admin_endpoints_and_readiness_flipping() {
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("ready");
    let mut c = demo();
    c.arg("--demo-ready-file").arg(&ready_file);
    let mut p = AgentProcess::spawn(c);
    let addr = p.admin_addr();

    assert_eq!(http_get(addr, "/healthz").unwrap().status, 200);
    assert_eq!(
        http_get(addr, "/api/v1/health").unwrap().status,
        200,
        "alias"
    );
    let r = http_get(addr, "/readyz").unwrap();
    assert_eq!(r.status, 503);
    assert!(r.body.contains("demo: ready file absent"), "{}", r.body);

    std::fs::write(&ready_file, "").unwrap();
    testkit::wait_until(T, "ready", || {
        http_get(addr, "/readyz").unwrap().status == 200
    });
    std::fs::remove_file(&ready_file).unwrap();
    testkit::wait_until(T, "not ready", || {
        http_get(addr, "/readyz").unwrap().status == 503
    });

    let m = http_get(addr, "/metrics").unwrap();
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    for want in [
        "demo_build_info{",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "# EOF",
    ] {
        assert!(m.body.contains(want), "missing {want} in\n{}", m.body);
    }
    assert_eq!(http_get(addr, "/nope").unwrap().status, 404);
    assert_eq!(http_request(addr, "POST", "/metrics").unwrap().status, 405);
    let head = http_request(addr, "HEAD", "/healthz").unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));

    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(T).success());
}

#[test]
fn sigterm_drains_within_the_deadline_and_exits_0() {
    let mut c = demo();
    c.args(["--demo-drain", "300ms", "--shutdown-timeout", "5s"]);
    let mut p = AgentProcess::spawn(c);
    let addr = p.wait_ready(T);
    p.signal(libc::SIGTERM);
    p.wait_for_message(T, "draining");
    // While draining, readiness already says no (so the Service stops sending traffic).
    let r = http_get(addr, "/readyz").unwrap();
    assert_eq!((r.status, r.body.trim()), (503, "not ready: shutting down"));
    let st = p.wait_exit(T);
    assert_eq!(st.code(), Some(0));
    assert!(p.stderr().contains("\"drained\""));
}

/// A Job's main container stops its sidecars with `POST /quitquitquit` (from localhost): the
/// same graceful shutdown as SIGTERM, exit 0.
#[test]
fn post_quitquitquit_drains_and_exits_0() {
    let mut c = demo();
    c.args(["--demo-drain", "300ms", "--shutdown-timeout", "5s"]);
    let mut p = AgentProcess::spawn(c);
    let addr = p.wait_ready(T);
    let get = http_get(addr, "/quitquitquit").unwrap();
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    assert_eq!(
        http_get(addr, "/readyz").unwrap().status,
        200,
        "a GET shuts nothing down"
    );
    let r = http_request(addr, "POST", "/quitquitquit").unwrap();
    assert_eq!((r.status, r.body.trim()), (200, "shutting down"));
    p.wait_for_message(T, "draining");
    assert_eq!(http_get(addr, "/readyz").unwrap().status, 503);
    assert_eq!(p.wait_exit(T).code(), Some(0));
    let err = p.stderr();
    assert!(
        err.contains("shutdown started by POST /quitquitquit"),
        "{err}"
    );
    assert!(err.contains("\"drained\""), "{err}");
}

#[test]
fn quit_endpoint_off() {
    let mut c = demo();
    c.args(["--quit-endpoint", "false"]);
    let mut p = AgentProcess::spawn(c);
    let addr = p.wait_ready(T);
    assert_eq!(
        http_request(addr, "POST", "/quitquitquit").unwrap().status,
        404
    );
    assert_eq!(http_get(addr, "/readyz").unwrap().status, 200);
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(T).success());
}

#[test]
fn a_drain_longer_than_the_deadline_exits_1_at_the_deadline() {
    let mut c = demo();
    c.args(["--demo-drain", "60s", "--shutdown-timeout", "500ms"]);
    let mut p = AgentProcess::spawn(c);
    p.wait_ready(T);
    let start = Instant::now();
    p.signal(libc::SIGTERM);
    let st = p.wait_exit(T);
    assert_eq!(st.code(), Some(1));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(p.stderr().contains("shutdown deadline exceeded"));
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut c = demo();
    c.args(["--demo-drain", "60s", "--shutdown-timeout", "60s"]);
    let mut p = AgentProcess::spawn(c);
    p.wait_ready(T);
    p.signal(libc::SIGTERM);
    p.wait_for_message(T, "draining");
    p.signal(libc::SIGINT);
    let st = p.wait_exit(T);
    assert_eq!(st.code(), Some(128 + libc::SIGINT));
    assert!(!p.stderr().contains("\"drained\""));
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "s3cr3t-from-file\n").unwrap();
    let mut c = demo();
    c.args(["--log-level", "trace"])
        .env("DEMO_SECRET", "s3cr3t-from-env");
    let mut p = AgentProcess::spawn(c);
    let v = p.wait_for_message(T, "demo configured");
    assert_eq!(v["secret"], "Some([redacted])");
    p.signal(libc::SIGTERM);
    p.wait_exit(T);
    assert!(!p.stderr().contains("s3cr3t"), "{}", p.stderr());

    let mut c = demo();
    c.args(["--log-level", "trace"])
        .arg("--demo-secret-file")
        .arg(&f);
    let mut p = AgentProcess::spawn(c);
    let v = p.wait_for_message(T, "demo configured");
    assert_eq!(v["secret"], "Some([redacted])");
    p.signal(libc::SIGTERM);
    p.wait_exit(T);
    assert!(!p.stderr().contains("s3cr3t"));

    // A value and a file for the same secret: refused at start.
    let mut c = demo();
    c.arg("--demo-secret-file")
        .arg(&f)
        .args(["--demo-secret", "x"]);
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(2));
    assert!(
        err.contains("--demo-secret") && err.contains("only one"),
        "{err}"
    );
}

#[test]
fn admin_port_taken_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = demo_without_admin_addr();
    c.args(["--admin-addr", &addr.to_string()]);
    let (st, _, err) = run_to_end(c, T);
    assert_eq!(st.code(), Some(1));
    assert!(
        err.contains("cannot listen on admin address") && err.contains("--admin-addr"),
        "{err}"
    );
}

#[test]
fn admin_off() {
    let mut c = demo_without_admin_addr();
    c.args(["--admin-addr", "none"]);
    let mut p = AgentProcess::spawn(c);
    p.wait_for_message(T, "demo configured");
    assert!(!p.stderr().contains("admin server listening"));
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(T).success());
}
