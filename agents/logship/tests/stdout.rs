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
    assert_eq!(
        recs[0]["message"],
        nginx_line(7),
        "access logs keep the line as message"
    );
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

/// A Java application's log: records that start with a date, stack traces below them.
fn java_log() -> Vec<String> {
    [
        "2026-11-26 10:00:00,001 ERROR [main] c.e.Shop - checkout failed",
        "java.lang.IllegalStateException: cart is empty",
        "\tat com.example.Shop.checkout(Shop.java:42)",
        "\tat com.example.Main.main(Main.java:7)",
        "Caused by: java.io.IOException: disk",
        "\t... 2 more",
        "2026-11-26 10:00:01,002 INFO [main] c.e.Shop - retrying",
        "2026-11-26 10:00:02,003 WARN [main] c.e.Shop - slow",
        "\tat com.example.Shop.slow(Shop.java:9)",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn multiline_groups_stack_traces_into_one_record_each_and_parses_them() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let lines = java_log();
    append(&app, lines.clone());
    let run = spawn(logship(&[
        "--path",
        &app.display().to_string(),
        "--multiline-start",
        r"^\d{4}-\d{2}-\d{2} ",
        "--multiline-timeout",
        "200ms",
        "--parse",
        "log4j",
    ]));
    run.proc.wait_ready(LONG);
    // The last group has no successor line: it goes out after the multiline timeout.
    let recs = run.wait_records(3);
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs[0]["level"], "ERROR");
    let first = recs[0]["message"].as_str().unwrap();
    assert!(
        first.starts_with("checkout failed\njava.lang.IllegalStateException"),
        "{first}"
    );
    assert!(first.ends_with("\t... 2 more"), "{first}");
    assert_eq!(recs[0]["log"]["offset"], 0);
    assert_eq!(recs[1]["level"], "INFO");
    let second_offset: usize = lines[..6].iter().map(|l| l.len() + 1).sum();
    assert_eq!(recs[1]["log"]["offset"], second_offset);
    assert_eq!(
        recs[2]["message"],
        "slow\n\tat com.example.Shop.slow(Shop.java:9)"
    );
    assert_eq!(recs[2]["@timestamp"], "2026-11-26T10:00:02.003Z");

    // A continuation written later, after the group went out, is its own record (the
    // timeout decided); a new group then starts normally.
    append(
        &app,
        ["2026-11-26 10:00:03,004 INFO [main] c.e.Shop - done".to_string()],
    );
    let recs = run.wait_records(4);
    assert_eq!(recs[3]["message"], "done");
}

#[test]
fn sigterm_ships_a_pending_multiline_group() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, java_log());
    let run = spawn(logship(&[
        "--path",
        &app.display().to_string(),
        "--multiline-indent",
        "--multiline-timeout",
        "1h",
    ]));
    let addr = run.proc.wait_ready(LONG);
    wait_until(LONG, "every line read", || {
        metric(addr, "logship_lines_read_total") == Some(9.0)
    });
    // Indentation mode: the exception line is not indented, so it starts its own group.
    let recs = run.wait_records(3);
    assert_eq!(recs[1]["message"].as_str().unwrap().lines().count(), 5);
    run.proc.signal(libc::SIGTERM);
    let recs = run.wait_records(4);
    let mut proc = run.proc;
    assert!(proc.wait_exit(LONG).success());
    assert_eq!(recs.len(), 4, "{recs:?}");
    assert_eq!(
        recs[3]["message"],
        "2026-11-26 10:00:02,003 WARN [main] c.e.Shop - slow\n\tat com.example.Shop.slow(Shop.java:9)"
    );
}

#[test]
fn parse_pattern_and_multiline_options_are_checked_at_start() {
    for (args, option) in [
        (vec!["--parse-pattern", "(?P<broken"], "--parse-pattern"),
        (vec!["--multiline-start", "[a-"], "--multiline-start"),
        (
            vec!["--multiline-start", "^x", "--multiline-indent"],
            "--multiline-indent",
        ),
        (vec!["--timezone", "Mars/Olympus"], "--timezone"),
        (vec!["--parse", "nginx", "--parse-pattern", "x"], "--parse"),
    ] {
        let mut all = vec!["--path", "/tmp/x.log"];
        all.extend(args);
        let (status, _, err) = testkit::run_to_end(logship(&all), Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(option), "{all:?}: {err}");
    }
}
