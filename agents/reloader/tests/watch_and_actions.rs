//! reloader against kubelet-style volumes, plain directories and a webhook receiver: what a
//! user sees in calls made, files written and `/metrics`.
mod support;

use std::{fs, os::unix::fs::PermissionsExt, time::Duration};

use support::*;

const WH: &str = r#"reloader_actions_total{action="webhook",result="success"}"#;
const WH_FAIL: &str = r#"reloader_actions_total{action="webhook",result="failure"}"#;
const RELOADS: &str = r#"reloader_reloads_total{result="success"}"#;

#[test]
fn configmap_swap_calls_the_webhook_once_with_its_headers_and_sigterm_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = Volume::configmap(&tmp.path().join("cm"), &[("app.conf", "v1")]);
    let rx = Receiver::start();
    let mut p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--webhook-url",
        &rx.url("/-/reload"),
        "--webhook-header",
        "Authorization: Bearer s3cret-token",
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");
    assert_eq!(rx.count(), 0, "no call at start without --reload-on-start");

    vol.update(&[("app.conf", "v2")]);
    wait_until(LONG, "the webhook call", || rx.count() >= 1);
    wait_settled(admin, LONG);
    let calls = rx.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/-/reload");
    assert!(calls[0]
        .headers
        .contains(&("authorization".into(), "Bearer s3cret-token".into())));
    assert_eq!(metric(admin, WH), 1.0);
    assert_eq!(metric(admin, RELOADS), 1.0);
    assert_eq!(metric(admin, "reloader_changes_total"), 1.0);
    assert_eq!(
        metric(admin, "reloader_config_hash"),
        metric(admin, "reloader_applied_config_hash")
    );
    assert!(metric(admin, "reloader_last_reload_timestamp_seconds") > 1.7e9);
    let text = body(admin, "/metrics");
    assert_eq!(
        text.matches("reloader_config_info{hash=\"").count(),
        1,
        "{text}"
    );

    // Keys added and removed are changes too.
    vol.update(&[("app.conf", "v2"), ("extra.conf", "x")]);
    wait_until(LONG, "the second call", || rx.count() >= 2);

    p.signal(libc::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(
        !p.stderr().contains("s3cret"),
        "a header value reached the log"
    );
}

#[test]
fn a_touch_or_the_same_content_again_is_not_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = Volume::configmap(&tmp.path().join("cm"), &[("app.conf", "same")]);
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("a.conf"), "a").unwrap();
    let rx = Receiver::start();
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        &format!("{},{}", vol.dir.display(), plain.display()),
        "--webhook-url",
        &rx.url("/"),
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");

    // kubelet rewrites the volume with identical data (a resync after a label change).
    vol.update(&[("app.conf", "same")]);
    wait_metric(admin, "reloader_checks_total", 1.0, LONG);
    // touch: new mtime, same bytes; and a rewrite of the same bytes.
    let checks = metric(admin, "reloader_checks_total");
    let f = fs::File::options()
        .append(true)
        .open(plain.join("a.conf"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    fs::write(plain.join("a.conf"), "a").unwrap();
    wait_metric(admin, "reloader_checks_total", checks + 1.0, LONG);
    assert_eq!(metric(admin, "reloader_changes_total"), 0.0);
    assert_eq!(rx.count(), 0);

    // A real change still goes through, once.
    fs::write(plain.join("a.conf"), "b").unwrap();
    wait_until(LONG, "the webhook call", || rx.count() >= 1);
    wait_settled(admin, LONG);
    assert_eq!(metric(admin, "reloader_changes_total"), 1.0);
    assert_eq!(rx.count(), 1);
}

#[test]
fn a_burst_of_100_changes_gives_a_handful_of_reloads_ending_on_the_last_content() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = Volume::configmap(&tmp.path().join("cm"), &[("app.conf", "0")]);
    let rx = Receiver::start();
    // 100 ms rather than the default 25 ms: the two cores this runs on are shared, and a writer
    // preempted for longer than the debounce splits its burst.
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--webhook-url",
        &rx.url("/"),
        "--debounce",
        "100ms",
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");
    for i in 1..=100 {
        vol.update(&[("app.conf", &format!("{i}"))]);
    }
    wait_until(LONG, "a call", || rx.count() >= 1);
    wait_until(LONG, "the last content applied", || {
        let applied = metric(admin, "reloader_applied_config_hash");
        metric(admin, "reloader_pending_reload") == 0.0
            && applied == metric(admin, "reloader_config_hash")
    });
    let n = rx.count();
    assert!((1..=10).contains(&n), "{n} reloads for 100 changes");
    assert_eq!(metric(admin, RELOADS), n as f64);
}

#[test]
fn a_webhook_that_is_down_then_failing_then_up_is_retried_until_it_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = Volume::configmap(&tmp.path().join("cm"), &[("app.conf", "v1")]);
    let addr = free_addr([127, 0, 0, 14]);
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--webhook-url",
        &format!("http://{addr}/-/reload"),
        "--retry-initial",
        "50ms",
        "--retry-max",
        "200ms",
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");
    vol.update(&[("app.conf", "v2")]);
    // Nothing listens: connection refused, retried.
    wait_metric(admin, WH_FAIL, 2.0, LONG);
    assert_eq!(metric(admin, "reloader_pending_reload"), 1.0);
    // Up, but answering 503: still a failure.
    let rx = Receiver::on(std::net::TcpListener::bind(addr).unwrap());
    rx.status.store(503, std::sync::atomic::Ordering::SeqCst);
    wait_until(LONG, "a call answered 503", || rx.count() >= 1);
    let failures = metric(admin, WH_FAIL);
    wait_metric(admin, WH_FAIL, failures + 1.0, LONG);
    rx.status.store(200, std::sync::atomic::Ordering::SeqCst);
    wait_metric(admin, WH, 1.0, LONG);
    wait_settled(admin, LONG);
    assert_eq!(metric(admin, RELOADS), 1.0);
    p.wait_for_log(LONG, "the retry log line", |l| {
        l.contains("action failed; will retry")
    });
}

#[test]
fn a_secret_volume_watched_by_file_is_synced_with_its_modes_and_runs_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = Volume::secret(
        &tmp.path().join("tls"),
        &[("tls.crt", "cert-1"), ("tls.key", "key-1")],
    );
    let target = tmp.path().join("certs");
    let out = tmp.path().join("seen");
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        &format!(
            "{},{}",
            vol.path("tls.crt").display(),
            vol.path("tls.key").display()
        ),
        "--sync-to",
        target.to_str().unwrap(),
        "--command",
        &format!(
            "sh -c 'cat {}/tls.crt > {}'",
            target.display(),
            out.display()
        ),
    ]));
    let admin = p.wait_ready(LONG);
    // Synced at start, without running the command.
    wait_until(LONG, "the start sync", || {
        fs::read_to_string(target.join("tls.key")).is_ok_and(|s| s == "key-1")
    });
    let mode = fs::metadata(target.join("tls.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400);
    wait_metric(admin, RELOADS, 1.0, LONG);
    assert!(!out.exists());

    vol.update(&[("tls.crt", "cert-2"), ("tls.key", "key-2")]);
    wait_until(LONG, "the command to see the new certificate", || {
        fs::read_to_string(&out).is_ok_and(|s| s == "cert-2")
    });
    assert_eq!(fs::read_to_string(target.join("tls.key")).unwrap(), "key-2");
    assert_eq!(
        fs::metadata(target.join("tls.crt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o400
    );
    wait_settled(admin, LONG);
    assert_eq!(
        metric(
            admin,
            r#"reloader_actions_total{action="command",result="success"}"#
        ),
        1.0
    );
}

#[test]
fn plain_directories_work_with_inotify_and_with_polling() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.conf"), "1").unwrap();
    let rx = Receiver::start();
    let rx_poll = Receiver::start();
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        dir.to_str().unwrap(),
        "--webhook-url",
        &rx.url("/"),
    ]));
    let polled = AgentProcess::spawn(reloader(&[
        "--watch",
        dir.to_str().unwrap(),
        "--webhook-url",
        &rx_poll.url("/"),
        "--poll-interval",
        "100ms",
    ]));
    p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");
    let v = polled.wait_for_message(LONG, "watching");
    assert_eq!(v["mode"], "poll");
    // In-place write.
    fs::write(dir.join("a.conf"), "2").unwrap();
    wait_until(LONG, "the inotify reloader's call", || rx.count() >= 1);
    wait_until(LONG, "the polling reloader's call", || rx_poll.count() >= 1);
    // A new file in a new subdirectory (recursive watch).
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/b.conf"), "b").unwrap();
    wait_until(LONG, "the second call", || rx.count() >= 2);
}

#[test]
fn once_renders_into_the_target_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = Volume::configmap(
        &tmp.path().join("cm"),
        &[(
            "default.conf",
            "proxy_pass http://${UPSTREAM_HOST}; set $a ${host}; ${MISSING:-fallback}",
        )],
    );
    let target = tmp.path().join("conf.d");
    let mut cmd = reloader(&[
        "--once",
        "--watch",
        vol.dir.to_str().unwrap(),
        "--sync-to",
        target.to_str().unwrap(),
        "--render",
    ]);
    cmd.env("UPSTREAM_HOST", "app:8080");
    let (status, _, err) = testkit::run_to_end(cmd, LONG);
    assert!(status.success(), "{err}");
    assert_eq!(
        fs::read_to_string(target.join("default.conf")).unwrap(),
        "proxy_pass http://app:8080; set $a ${host}; fallback"
    );

    // A validation that fails: exit 1, nothing left in the target.
    let target2 = tmp.path().join("conf2");
    let cmd = reloader(&[
        "--once",
        "--watch",
        vol.dir.to_str().unwrap(),
        "--sync-to",
        target2.to_str().unwrap(),
        "--validate-command",
        "sh -c 'echo bad config >&2; exit 1'",
    ]);
    let (status, _, err) = testkit::run_to_end(cmd, LONG);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("bad config"), "{err}");
    assert!(!target2.join("default.conf").exists());
}

#[test]
fn bad_configuration_exits_2_naming_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--watch", "/nonexistent/podmates"],
            "/nonexistent/podmates",
        ),
        (
            &["--watch", "/tmp", "--webhook-url", "ftp://x/"],
            "--webhook-url",
        ),
        (
            &[
                "--watch",
                tmp.path().to_str().unwrap(),
                "--sync-to",
                out.to_str().unwrap(),
            ],
            "--sync-to",
        ),
        (&["--watch", "/tmp", "--signal", "RELOAD"], "--signal"),
    ];
    for (args, needle) in cases {
        let (status, _, err) = testkit::run_to_end(reloader(args), LONG);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn reload_on_start_calls_the_webhook_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = Volume::configmap(&tmp.path().join("cm"), &[("app.conf", "v1")]);
    let rx = Receiver::start();
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--webhook-url",
        &rx.url("/start"),
        "--reload-on-start",
    ]));
    let admin = p.wait_ready(LONG);
    wait_until(LONG, "the start call", || rx.count() >= 1);
    wait_metric(admin, RELOADS, 1.0, LONG);
    assert_eq!(rx.calls()[0].path, "/start");
}

#[test]
fn a_replaced_directory_is_found_by_the_recheck_and_watched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.conf"), "1").unwrap();
    let rx = Receiver::start();
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        dir.to_str().unwrap(),
        "--webhook-url",
        &rx.url("/"),
        "--recheck-interval",
        "200ms",
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");
    fs::remove_dir_all(&dir).unwrap();
    wait_metric(admin, "reloader_watch_errors_total", 1.0, LONG);
    // The removal itself is a change (the content is gone).
    wait_until(LONG, "the call for the removal", || rx.count() >= 1);
    // Created again: no watch sees it, the re-check does, and watches it again.
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.conf"), "2").unwrap();
    wait_until(LONG, "the call for the new directory", || rx.count() >= 2);
    p.wait_for_message(LONG, "watched directory was replaced; watching the new one");
    let events = metric(admin, "reloader_fs_events_total");
    fs::write(dir.join("a.conf"), "3").unwrap();
    wait_until(LONG, "the call for a write in the new directory", || {
        rx.count() >= 3
    });
    assert!(
        metric(admin, "reloader_fs_events_total") > events,
        "seen by inotify, not only by the re-check"
    );
}

#[test]
fn check_config_shows_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (status, out, err) = testkit::run_to_end(
        reloader(&[
            "--check-config",
            "--watch",
            tmp.path().to_str().unwrap(),
            "--webhook-url",
            "http://admin:hunter2@127.0.0.1:9090/-/reload",
            "--webhook-header",
            "Authorization: Bearer s3cret-token",
        ]),
        LONG,
    );
    assert!(status.success(), "{err}");
    assert!(
        out.contains("configuration is valid") && out.contains("Authorization"),
        "{out}"
    );
    assert!(!out.contains("hunter2") && !out.contains("s3cret"), "{out}");
}
