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

/// Accepts one HTTP request and answers 200; returns the request.
fn one_request(listener: TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
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
        String::from_utf8_lossy(&req).into_owned()
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

    // https is refused at start with a clear message.
    let mut c = agent(tmp.path(), &db.name);
    c.args(["--once", "--webhook-url", "https://hooks.example/x"]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(30));
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("--webhook-url") && err.contains("https is not supported"),
        "{err}"
    );
}
