//! Shipping to the suite's faithful `_bulk` endpoint, with faults.
mod support;

use std::{collections::HashSet, time::Duration};

use support::*;
use testkit::{fake_es::FakeEs, http_get, wait_until};

fn today_index(prefix: &str) -> String {
    format!("{prefix}-{}", chrono_like_today())
}

/// UTC date as %Y.%m.%d without pulling chrono into the tests: from `date -u`.
fn chrono_like_today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y.%m.%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A temporary directory with `app.log` holding `n` nginx lines.
fn app_log(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, (0..n).map(nginx_line));
    (dir, app)
}

/// logship tailing `app` and shipping to `es`, with `extra` flags.
fn ship(app: &std::path::Path, es: &FakeEs, extra: &[&str]) -> std::process::Command {
    let app = app.display().to_string();
    let url = es.url();
    let mut args = vec!["--path", &app, "--es-url", &url];
    args.extend_from_slice(extra);
    logship(&args)
}

fn messages(es: &FakeEs) -> Vec<String> {
    es.docs()
        .iter()
        .map(|d| d.source["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn guide_env_ships_every_line_with_deterministic_ids() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, (0..1000).map(nginx_line));
    let data = dir.path().join("data");
    let mut cmd = logship(&[
        "--path",
        &app.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]);
    cmd.env("ELASTICSEARCH_HOST", "127.0.0.1")
        .env("ELASTICSEARCH_PORT", es.addr().port().to_string());
    let run = spawn(cmd);
    let addr = run.proc.wait_ready(LONG);
    wait_until(LONG, "1000 documents", || es.doc_count() == 1000);
    let docs = es.docs();
    assert!(
        docs.iter().all(|d| d.index == today_index("logs")),
        "{}",
        docs[0].index
    );
    let first = docs
        .iter()
        .find(|d| d.source["log"]["offset"] == 0)
        .unwrap();
    assert!(
        first.id.ends_with("-0") && first.id.len() == 18,
        "{}",
        first.id
    );
    let got: HashSet<String> = messages(&es).into_iter().collect();
    assert_eq!(got, (0..1000).map(nginx_line).collect::<HashSet<_>>());
    assert_eq!(es.stats().filter_path_requests, 0);
    wait_until(LONG, "records_sent metric", || {
        metric(addr, "logship_records_sent_total") == Some(1000.0)
    });
    wait_until(LONG, "lag to reach 0", || {
        metric(
            addr,
            &format!("logship_file_lag_bytes{{path=\"{}\"}}", app.display()),
        ) == Some(0.0)
    });
    assert_eq!(
        metric(addr, "logship_bulk_requests_total{status=\"200\"}").map(|v| v > 0.0),
        Some(true)
    );
    wait_until(LONG, "a checkpoint file", || {
        data.join("checkpoints.json").exists()
    });
    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    assert!(proc.wait_exit(LONG).success());
    assert_eq!(
        http_get(addr, "/readyz").map(|r| r.status).unwrap_or(0),
        0,
        "admin gone after exit"
    );
}

#[test]
fn retryable_items_are_retried_until_delivered() {
    let es = FakeEs::start();
    es.reject_first_attempts(2);
    let (_dir, app) = app_log(300);
    let run = spawn(ship(&app, &es, &["--retry-max-backoff", "200ms"]));
    let addr = run.proc.wait_ready(LONG);
    wait_until(LONG, "300 documents", || es.doc_count() == 300);
    assert_eq!(es.stats().rejected_429, 600);
    wait_until(LONG, "retry metrics", || {
        metric(
            addr,
            "logship_item_errors_total{type=\"es_rejected_execution_exception\"}",
        ) == Some(600.0)
            && metric(addr, "logship_retries_total").is_some_and(|v| v >= 600.0)
    });
    assert_eq!(metric(addr, "logship_dead_lettered_total"), Some(0.0));
}

#[test]
fn permanent_rejects_go_to_the_dead_letter_file_and_the_rest_is_delivered() {
    let es = FakeEs::start();
    es.reject_docs_where(|d| d["message"].as_str().is_some_and(|m| m.contains("BAD")));
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let lines: Vec<String> = (0..200)
        .map(|i| {
            if i % 50 == 7 {
                format!("BAD {i}")
            } else {
                nginx_line(i)
            }
        })
        .collect();
    append(&app, lines.clone());
    let data = dir.path().join("data");
    let run = spawn(ship(
        &app,
        &es,
        &["--data-dir", &data.display().to_string()],
    ));
    let addr = run.proc.wait_ready(LONG);
    wait_until(LONG, "196 documents", || es.doc_count() == 196);
    let dlq = data.join("dead-letter.ndjson");
    wait_until(LONG, "4 dead letters", || {
        std::fs::read_to_string(&dlq)
            .map(|t| t.lines().count())
            .unwrap_or(0)
            == 4
    });
    let text = std::fs::read_to_string(&dlq).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["error"]["type"], "document_parsing_exception");
        assert!(v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("failed to parse"));
        assert!(v["record"]["message"].as_str().unwrap().starts_with("BAD "));
        assert!(!v["_id"].as_str().unwrap().is_empty());
    }
    wait_until(LONG, "dead-letter metrics", || {
        metric(addr, "logship_dead_lettered_total") == Some(4.0)
    });
    // Rejected records are never retried: 4 items rejected once each.
    assert_eq!(es.stats().rejected_400, 4);
    // And acknowledged: nothing left to deliver.
    wait_until(LONG, "buffer empty", || {
        metric(addr, "logship_buffer_bytes") == Some(0.0)
    });
}

#[test]
fn too_large_requests_are_split() {
    let es = FakeEs::start();
    es.set_max_content_length(64 * 1024);
    let (_dir, app) = app_log(2000);
    let run = spawn(ship(&app, &es, &["--batch-max-bytes", "1MiB"]));
    run.proc.wait_ready(LONG);
    wait_until(LONG, "2000 documents", || es.doc_count() == 2000);
    let st = es.stats();
    assert!(st.bulk_statuses.contains(&413), "{:?}", st.bulk_statuses);
    assert!(st.max_body_bytes <= 1 << 20);
}

#[test]
fn elasticsearch_down_then_back_loses_nothing_and_memory_stays_flat() {
    let es = FakeEs::start();
    es.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let run = spawn(ship(
        &app,
        &es,
        &["--max-buffer", "1MiB", "--retry-max-backoff", "300ms"],
    ));
    let addr = run.proc.admin_addr();
    // Not ready while the sink never answered.
    assert_eq!(http_get(addr, "/readyz").unwrap().status, 503);
    let n = 24_000u64; // ~3.6 MB of lines, far more than --max-buffer
    append(&app, (0..n / 2).map(nginx_line));
    wait_until(LONG, "reading to pause at the buffer bound", || {
        metric(addr, "logship_buffer_bytes").is_some_and(|b| b > 0.0)
    });
    let rss1 = rss_kib(run.proc.pid());
    append(&app, (n / 2..n).map(nginx_line));
    std::thread::sleep(Duration::from_millis(1500)); // let it try to read more (it must not)
    let rss2 = rss_kib(run.proc.pid());
    let buffered = metric(addr, "logship_buffer_bytes").unwrap();
    assert!(
        buffered <= 2.0 * 1024.0 * 1024.0,
        "buffer {buffered} above the bound"
    );
    assert!(
        rss2 < rss1 + 8 * 1024,
        "memory grew while elasticsearch was down: {rss1} KiB -> {rss2} KiB"
    );
    assert!(es.stats().bulk_statuses.is_empty());
    es.set_down(false);
    run.proc.wait_ready(LONG);
    wait_until(Duration::from_secs(120), "every line delivered", || {
        es.doc_count() == n as usize
    });
    assert!(
        metric(addr, "logship_bulk_requests_total{status=\"error\"}").is_some_and(|v| v >= 1.0)
    );
}

#[test]
fn kill_9_mid_stream_then_restart_delivers_every_line_exactly_once() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let data = dir.path().join("data");
    let args = |_: ()| {
        logship(&[
            "--path",
            &app.display().to_string(),
            "--es-url",
            &es.url(),
            "--data-dir",
            &data.display().to_string(),
            "--batch-max-records",
            "500",
            "--batch-linger",
            "50ms",
            "--checkpoint-interval",
            "100ms",
        ])
    };
    let n = 15_000u64;
    let writer = {
        let app = app.clone();
        std::thread::spawn(move || {
            for k in 0..60 {
                append(&app, (k * n / 60..(k + 1) * n / 60).map(nginx_line));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let run = spawn(args(()));
    wait_until(LONG, "some documents", || es.doc_count() > 2000);
    run.proc.signal(libc::SIGKILL);
    drop(run);
    let before = es.doc_count();
    writer.join().unwrap();
    let run = spawn(args(()));
    wait_until(Duration::from_secs(120), "every line", || {
        es.doc_count() >= n as usize
    });
    let msgs = messages(&es);
    assert_eq!(
        msgs.len(),
        n as usize,
        "no duplicates: one document per line"
    );
    let set: HashSet<&String> = msgs.iter().collect();
    assert_eq!(set.len(), n as usize);
    assert!(before < n as usize, "the kill happened mid-stream");
    drop(run);
}

#[test]
fn sigterm_flushes_buffered_records_and_checkpoints_them() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let data = dir.path().join("data");
    append(&app, (0..100).map(nginx_line));
    let args = [
        "--path",
        &app.display().to_string(),
        "--es-url",
        &es.url(),
        "--data-dir",
        &data.display().to_string(),
        "--batch-linger",
        "10m",
    ];
    let run = spawn(logship(&args));
    let addr = run.proc.wait_ready(LONG);
    wait_until(LONG, "lines read", || {
        metric(addr, "logship_lines_read_total") == Some(100.0)
    });
    assert_eq!(es.doc_count(), 0, "held by the linger time");
    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    assert!(proc.wait_exit(LONG).success());
    assert_eq!(es.doc_count(), 100);
    // The final checkpoint covers them: a restart sends nothing again.
    let items = es.stats().items;
    let run = spawn(logship(&args));
    let addr = run.proc.wait_ready(LONG);
    append(&app, ["one more".to_string()]);
    wait_until(LONG, "the new line", || {
        metric(addr, "logship_lines_read_total") == Some(1.0)
    });
    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    assert!(proc.wait_exit(LONG).success());
    assert_eq!(es.stats().items, items + 1);
    assert_eq!(es.doc_count(), 101);
}

#[test]
fn rotation_both_ways_while_a_writer_is_busy() {
    use std::io::Write;
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let run = spawn(ship(
        &app,
        &es,
        &["--batch-linger", "50ms", "--rescan-interval", "200ms"],
    ));
    run.proc.wait_ready(LONG);
    let n = 9000u64;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&app)
        .unwrap();
    for i in 0..n {
        writeln!(f, "{}", nginx_line(i)).unwrap();
        if i == 3000 {
            // logrotate's default: rename, create, the app reopens. Lines written to the old
            // descriptor in between go to the renamed file and must be read too.
            std::fs::rename(&app, dir.path().join("app.log.1")).unwrap();
            for j in 0..50 {
                writeln!(f, "late {j}").unwrap();
            }
            f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&app)
                .unwrap();
        }
        if i == 6000 {
            // copytruncate: what was not read before the truncation is lost by design (that is
            // the method's race), so wait for delivery, then copy and truncate in place.
            f.flush().unwrap();
            wait_until(LONG, "delivery before copytruncate", || {
                es.doc_count() == 6051
            });
            std::fs::copy(&app, dir.path().join("app.log.2")).unwrap();
            f.set_len(0).unwrap();
        }
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    wait_until(LONG, "every line", || es.doc_count() >= n as usize + 50);
    let msgs = messages(&es);
    let set: HashSet<&String> = msgs.iter().collect();
    assert_eq!(msgs.len(), n as usize + 50);
    assert_eq!(set.len(), n as usize + 50);
}

#[test]
fn gzip_data_stream_and_basic_auth_from_a_file_never_logging_the_secret() {
    let es = FakeEs::start();
    es.add_data_stream("logs-app-default");
    es.require_basic_auth("elastic", "s3cr3t-Pa55");
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, (0..50).map(nginx_line));
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cr3t-Pa55\n").unwrap();
    let run = spawn(ship(
        &app,
        &es,
        &[
            "--es-data-stream",
            "logs-app-default",
            "--es-gzip",
            "--es-user",
            "elastic",
            "--es-password-file",
            &pw.display().to_string(),
            "--log-level",
            "debug",
        ],
    ));
    run.proc.wait_ready(LONG);
    wait_until(LONG, "50 documents", || es.doc_count() == 50);
    assert!(es
        .docs()
        .iter()
        .all(|d| d.index == "logs-app-default" && d.source["@timestamp"].is_string()));
    assert!(es.stats().gzip_requests > 0);
    assert!(!run.proc.stderr().contains("s3cr3t"), "secret in the log");

    // Wrong credentials: retried, reported, and the secret still never printed.
    let es2 = FakeEs::start();
    es2.require_basic_auth("elastic", "other");
    let run2 = spawn(logship(&[
        "--path",
        &app.display().to_string(),
        "--es-url",
        &es2.url(),
        "--es-user",
        "elastic",
        "--es-password",
        "s3cr3t-Pa55",
        "--log-level",
        "debug",
    ]));
    run2.proc
        .wait_for_log(LONG, "a 401 warning", |l| l.contains("401"));
    let addr = run2.proc.admin_addr();
    assert_eq!(http_get(addr, "/readyz").unwrap().status, 503);
    assert!(!run2.proc.stderr().contains("s3cr3t"), "secret in the log");
    let (status, out, err) = testkit::run_to_end(
        logship(&[
            "--path",
            "/tmp/x.log",
            "--es-url",
            &es2.url(),
            "--es-user",
            "u",
            "--es-password",
            "s3cr3t-Pa55",
            "--check-config",
        ]),
        Duration::from_secs(20),
    );
    assert!(status.success(), "{err}");
    assert!(
        !out.contains("s3cr3t") && !err.contains("s3cr3t"),
        "{out}{err}"
    );
    let (status, _, err) = testkit::run_to_end(
        logship(&[
            "--path",
            "/tmp/x.log",
            "--es-url",
            "http://elastic:s3cr3t-Pa55@es:9200",
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2));
    assert!(!err.contains("s3cr3t") && err.contains("--es-url"), "{err}");
}

#[test]
fn parsed_timestamps_choose_the_daily_index_and_multiline_groups_get_stable_ids() {
    let es = FakeEs::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(
        &app,
        [
            "2025-01-02T23:59:59Z ERROR boom",
            "  at frame one",
            "2025-01-03T00:00:01+01:00 INFO an hour before midnight UTC",
            "2025-01-03T00:00:01Z INFO new day",
        ]
        .map(String::from),
    );
    let data = dir.path().join("data");
    let args = [
        "--path",
        &app.display().to_string(),
        "--es-url",
        &es.url(),
        "--data-dir",
        &data.display().to_string(),
        "--parse-pattern",
        // (?s): the message of a joined group spans lines.
        r"(?s)^(?P<timestamp>\S+) (?P<level>\w+) (?P<message>.*)$",
        "--multiline-indent",
        "--multiline-timeout",
        "200ms",
    ];
    let run = spawn(logship(&args));
    run.proc.wait_ready(LONG);
    wait_until(LONG, "3 documents", || es.doc_count() == 3);
    let mut docs = es.docs();
    docs.sort_by_key(|d| d.source["log"]["offset"].as_u64());
    let indices: Vec<&str> = docs.iter().map(|d| d.index.as_str()).collect();
    assert_eq!(
        indices,
        ["logs-2025.01.02", "logs-2025.01.02", "logs-2025.01.03"],
        "the index date is the record's own time, in UTC"
    );
    assert_eq!(docs[0].source["message"], "boom\n  at frame one");
    assert_eq!(docs[0].source["level"], "ERROR");
    assert!(docs[0].id.ends_with("-0"), "{}", docs[0].id);
    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    assert!(proc.wait_exit(LONG).success());

    // Without the checkpoint, the same groups are read again and get the same ids: `create`
    // answers 409 and nothing is stored twice.
    std::fs::remove_dir_all(&data).unwrap();
    let items = es.stats().items;
    let run = spawn(logship(&args));
    run.proc.wait_ready(LONG);
    wait_until(LONG, "the groups sent again", || {
        es.stats().items == items + 3
    });
    assert_eq!(es.doc_count(), 3);
    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    assert!(proc.wait_exit(LONG).success());
}

#[test]
fn sigterm_while_batches_wait_for_an_in_flight_slot_delivers_them_all() {
    let es = FakeEs::start();
    es.set_down(true);
    let (_dir, app) = app_log(100);
    let run = spawn(ship(
        &app,
        &es,
        &[
            "--batch-max-records",
            "10",
            "--es-max-in-flight",
            "1",
            "--retry-max-backoff",
            "200ms",
        ],
    ));
    let addr = run.proc.admin_addr();
    // Elasticsearch is down: one batch is retried in the only slot, the others wait for it.
    wait_until(LONG, "every line read", || {
        metric(addr, "logship_lines_read_total") == Some(100.0)
    });
    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    es.set_down(false);
    assert!(proc.wait_exit(LONG).success());
    assert_eq!(
        es.doc_count(),
        100,
        "batches waiting at shutdown are delivered in the drain"
    );
}
