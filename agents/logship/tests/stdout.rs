//! The embedded default: no Elasticsearch configured, records as NDJSON on stdout.
mod support;

use std::time::Duration;

use support::*;
use testkit::{http_get, wait_until};

#[test]
fn stdout_default_ships_lines_new_files_and_answers_fluent_bit_probes() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(
        &app,
        [
            "first line".to_string(),
            "second \"quoted\" line".to_string(),
        ],
    );
    // Invalid UTF-8 is kept (replaced and marked), never dropped.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&app).unwrap();
        f.write_all(b"bad \xff\xfe bytes\n").unwrap();
    }
    let glob = format!("{}/*.log", dir.path().display());
    let run = spawn(logship(&[
        "--path",
        &glob,
        "--field",
        "kubernetes.pod.name=web-0",
    ]));
    let addr = run.proc.wait_ready(LONG);
    let recs = run.wait_records(3);
    assert_eq!(recs[0]["message"], "first line");
    assert_eq!(recs[1]["message"], "second \"quoted\" line");
    assert_eq!(recs[0]["log"]["file"]["path"], app.display().to_string());
    assert_eq!(recs[0]["log"]["offset"], 0);
    assert_eq!(recs[1]["log"]["offset"], 11);
    assert_eq!(recs[0]["kubernetes"]["pod"]["name"], "web-0");
    assert!(recs[0]["@timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(recs[2]["message"], "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(recs[2]["log"]["flags"], serde_json::json!(["invalid_utf8"]));

    // Appended lines and a new file matching the glob are picked up while running.
    append(&app, ["third".to_string()]);
    let other = dir.path().join("other.log");
    append(&other, ["from the new file".to_string()]);
    let recs = run.wait_records(5);
    let msgs: Vec<&str> = recs
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert!(
        msgs.contains(&"third") && msgs.contains(&"from the new file"),
        "{msgs:?}"
    );

    // fluent-bit's probe paths answer, so pod specs keep working after the image swap.
    assert_eq!(http_get(addr, "/api/v1/health").unwrap().status, 200);
    let m = http_get(addr, "/api/v2/metrics/prometheus").unwrap();
    assert_eq!(m.status, 200);
    assert!(m.body.contains("logship_lines_read_total 5"), "{}", m.body);
    assert!(
        m.body.contains("logship_records_sent_total 5"),
        "{}",
        m.body
    );
    assert!(m.body.contains("logship_files_watched 2"), "{}", m.body);
    assert!(
        m.body.contains("logship_file_lag_bytes{path="),
        "{}",
        m.body
    );
    assert_eq!(
        http_get(addr, "/api/v1/metrics/prometheus").unwrap().status,
        200
    );

    // A deleted file is let go; the agent keeps running and reading the others.
    std::fs::remove_file(&other).unwrap();
    wait_until(LONG, "the deleted file to be let go", || {
        metric(addr, "logship_files_watched") == Some(1.0)
    });
    append(&app, ["after delete".to_string()]);
    let recs = run.wait_records(6);
    assert_eq!(recs[5]["message"], "after delete");

    let mut proc = run.proc;
    proc.signal(libc::SIGTERM);
    assert!(proc.wait_exit(LONG).success());
}

#[test]
fn a_ten_mib_line_is_split_into_marked_pieces_and_partial_lines_are_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("big.log");
    let big = "x".repeat(10 << 20);
    append(&app, [big, "after the big one".to_string()]);
    // A last line without a newline is shipped after the partial-line timeout.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&app).unwrap();
        f.write_all(b"no newline yet").unwrap();
    }
    let run = spawn(logship(&[
        "--path",
        &app.display().to_string(),
        "--max-line-bytes",
        "1MiB",
        "--partial-line-timeout",
        "300ms",
    ]));
    run.proc.wait_ready(LONG);
    let recs = run.wait_records(12);
    let pieces: Vec<_> = recs
        .iter()
        .filter(|r| r["log"]["flags"].to_string().contains("truncated"))
        .collect();
    let total: usize = pieces
        .iter()
        .map(|r| r["message"].as_str().unwrap().len())
        .sum();
    assert_eq!(total, 10 << 20, "every byte of the long line is kept");
    assert!(pieces.len() >= 10, "{} pieces", pieces.len());
    let after = recs
        .iter()
        .find(|r| r["message"] == "after the big one")
        .expect("line after the long one");
    assert_eq!(after["log"]["offset"], (10 << 20) + 1);
    let partial = recs
        .iter()
        .find(|r| r["message"] == "no newline yet")
        .expect("partial line");
    assert_eq!(partial["log"]["flags"], serde_json::json!(["partial"]));
}

#[test]
fn parse_nginx_lines_with_log2json_formats() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("access.log");
    append(&app, [nginx_line(7), "not an access log line".to_string()]);
    let run = spawn(logship(&[
        "--path",
        &app.display().to_string(),
        "--parse",
        "nginx",
    ]));
    let recs = run.wait_records(2);
    assert_eq!(recs[0]["status"], 200);
    assert_eq!(recs[0]["method"], "GET");
    assert_eq!(recs[0]["path"], "/api/items/7");
    assert_eq!(recs[0]["@timestamp"], "2026-11-26T15:04:05Z");
    assert_eq!(recs[0]["log"]["file"]["path"], app.display().to_string());
    assert_eq!(recs[1]["message"], "not an access log line");
    assert!(recs[1]["parse_error"].is_string());
}

#[test]
fn bad_configuration_exits_2_naming_the_option() {
    let (status, _, err) = testkit::run_to_end(logship(&[]), Duration::from_secs(20));
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--path"), "{err}");
    let (status, _, err) = testkit::run_to_end(
        logship(&["--path", "/tmp/x.log", "--parse", "klingon"]),
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--parse"), "{err}");
    let (status, _, err) = testkit::run_to_end(
        logship(&["--path", "/tmp/x.log", "--field", "message=x"]),
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--field"), "{err}");
}
