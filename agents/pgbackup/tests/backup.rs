//! Backups against the real PostgreSQL: back up, restore into a fresh database and compare;
//! retention on disk; readiness when backups go stale; runs never overlap.
mod support;

use std::time::Duration;

use support::*;
use testkit::{http_get, run_to_end, wait_until, AgentProcess};

fn restore(
    dir: &std::path::Path,
    source: &str,
    from_db: &str,
    into: &str,
) -> (std::process::ExitStatus, String) {
    let mut c = agent(dir, from_db);
    c.args(["--restore", source, "--restore-into", into]);
    let (st, _out, err) = run_to_end(c, Duration::from_secs(120));
    (st, err)
}

#[test]
fn gzip_backup_restores_to_identical_content() {
    let src = Db::create("pgb_src");
    fill(&src, 50_000);
    let tmp = tempfile::tempdir().unwrap();
    let log = backup_once(tmp.path(), &src.name, &["--compression-level", "3"]);
    let names = backups(tmp.path());
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with(&format!("{}-", src.name)) && names[0].ends_with("Z.sql.gz"),
        "{names:?}"
    );
    // The manifest describes the file.
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join(format!("{}.json", names[0]))).unwrap(),
    )
    .unwrap();
    let size = std::fs::metadata(tmp.path().join(&names[0])).unwrap().len();
    assert_eq!(m["size_bytes"], size);
    assert_eq!(m["verified"], true);
    assert_eq!(m["verification"], "gzip-crc");
    assert_eq!(m["database"], src.name.as_str());
    assert_eq!(m["sha256"].as_str().unwrap().len(), 64);
    assert!(m["server_version"]
        .as_str()
        .unwrap()
        .starts_with(char::is_numeric));
    assert!(m["pg_dump_version"]
        .as_str()
        .unwrap()
        .starts_with(char::is_numeric));
    assert!(!files(tmp.path()).iter().any(|f| f.ends_with(".tmp")));
    assert!(log.contains("\"backup succeeded\""));

    let dst = Db::adopt(&unique("pgb_dst"));
    let (st, err) = restore(tmp.path(), "latest", &src.name, &dst.name);
    assert!(st.success(), "{err}");
    assert_eq!(digest(&dst), digest(&src));
    assert!(digest(&src)
        .iter()
        .any(|(t, d)| t == "public.events" && d.starts_with("50000:")));
}

#[test]
fn custom_format_backup_restores_to_identical_content() {
    let src = Db::create("pgb_srcc");
    fill(&src, 5_000);
    let tmp = tempfile::tempdir().unwrap();
    backup_once(tmp.path(), &src.name, &["--format", "custom"]);
    let names = backups(tmp.path());
    assert!(names.len() == 1 && names[0].ends_with(".dump"), "{names:?}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join(format!("{}.json", names[0]))).unwrap(),
    )
    .unwrap();
    assert_eq!(m["verification"], "pg_restore-list");
    let dst = Db::adopt(&unique("pgb_dstc"));
    let (st, err) = restore(tmp.path(), &names[0], &src.name, &dst.name);
    assert!(st.success(), "{err}");
    assert_eq!(digest(&dst), digest(&src));
}

#[test]
fn restore_refuses_a_damaged_backup() {
    let src = Db::create("pgb_dmg");
    src.sql("CREATE TABLE t AS SELECT generate_series(1, 100) AS x");
    let tmp = tempfile::tempdir().unwrap();
    backup_once(tmp.path(), &src.name, &[]);
    let name = &backups(tmp.path())[0];
    let path = tmp.path().join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let dst = Db::adopt(&unique("pgb_dmg_dst"));
    let (st, err) = restore(tmp.path(), "latest", &src.name, &dst.name);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("does not match its manifest's sha256"),
        "{err}"
    );
}

/// Writes a backup that looks like pgbackup's own (name and manifest) at a past date.
fn plant(dir: &std::path::Path, db: &str, ts: &str) -> String {
    let name = format!("{db}-{ts}.sql.gz");
    std::fs::write(dir.join(&name), b"old").unwrap();
    let m = serde_json::json!({
        "creator": "pgbackup", "version": "0", "database": db, "file": name, "format": "gzip",
        "timestamp": ts, "size_bytes": 3, "dump_bytes": 3, "sha256": "", "duration_seconds": 0.0,
        "compression_level": 6, "pg_dump_version": "15", "server_version": "15", "verified": true,
        "verification": "gzip-crc"
    });
    std::fs::write(dir.join(format!("{name}.json")), m.to_string()).unwrap();
    name
}

#[test]
fn retention_deletes_only_its_own_old_backups_and_dry_run_only_says_so() {
    let src = Db::create("pgb_ret");
    src.sql("CREATE TABLE t AS SELECT generate_series(1, 10) AS x");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old1 = plant(d, &src.name, "20240101T000000Z");
    let old2 = plant(d, &src.name, "20240102T000000Z");
    // Not ours: no manifest; a manifest from another tool; another database's backup.
    let foreign = format!("{}-20230101T000000Z.sql.gz", src.name);
    std::fs::write(d.join(&foreign), b"x").unwrap();
    std::fs::write(d.join("notes.txt"), b"x").unwrap();
    let other = plant(d, "otherdb", "20240101T000000Z");
    let keep = [
        "--keep-last",
        "1",
        "--keep-days",
        "0",
        "--keep-weeks",
        "0",
        "--keep-months",
        "0",
    ];

    let log = backup_once(
        d,
        &src.name,
        &[&keep[..], &["--retention-dry-run"]].concat(),
    );
    assert!(
        log.contains("retention dry run: would delete backup"),
        "{log}"
    );
    assert!(log.contains("matches no keep rule"), "{log}");
    assert_eq!(backups(d).len(), 5);

    let log = backup_once(d, &src.name, &keep);
    let left = backups(d);
    assert!(!left.contains(&old1) && !left.contains(&old2), "{left:?}");
    assert!(left.contains(&foreign) && left.contains(&other), "{left:?}");
    assert!(d.join("notes.txt").exists());
    // The first run's backup went too (keep-last 1); the newest stays.
    assert_eq!(
        left.iter()
            .filter(|n| n.starts_with(&src.name) && !n.starts_with(&foreign))
            .count(),
        1,
        "{left:?}"
    );
    assert!(log.contains("\"retention deleted backup\""), "{log}");
    assert!(!d.join(format!("{old1}.json")).exists());
}

#[test]
fn readyz_fails_with_the_reason_when_no_backup_succeeds_within_max_age() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = agent(tmp.path(), "nowhere");
    // Nothing listens on port 1: every run fails.
    c.env("PGPORT", "1")
        .args(["--on-start", "--interval", "1h", "--max-age", "2s"]);
    let p = AgentProcess::spawn(c);
    let addr = p.admin_addr();
    p.wait_for_message(
        Duration::from_secs(30),
        "backup failed; earlier backups are untouched",
    );
    wait_until(Duration::from_secs(20), "readyz to fail", || {
        http_get(addr, "/readyz").is_ok_and(|r| {
            r.status == 503
                && r.body
                    .contains("no backup of nowhere has succeeded within --max-age 2s of start")
        })
    });
    let m = http_get(addr, "/metrics").unwrap().body;
    assert!(
        m.contains("pgbackup_runs_total{database=\"nowhere\",result=\"failure\"} 1"),
        "{m}"
    );
}

#[test]
fn readyz_is_ok_after_a_success_and_fails_when_it_gets_old() {
    let src = Db::create("pgb_ready");
    src.sql("CREATE TABLE t AS SELECT 1 AS x");
    let tmp = tempfile::tempdir().unwrap();
    let mut c = agent(tmp.path(), &src.name);
    c.args(["--on-start", "--interval", "1h", "--max-age", "3s"]);
    let p = AgentProcess::spawn(c);
    let addr = p.admin_addr();
    wait_db_message(&p, Duration::from_secs(60), "backup succeeded", &src.name);
    wait_until(Duration::from_secs(10), "ready", || {
        http_get(addr, "/readyz").is_ok_and(|r| r.status == 200)
    });
    let m = http_get(addr, "/metrics").unwrap().body;
    for name in [
        "pgbackup_last_success_timestamp_seconds",
        "pgbackup_last_duration_seconds",
        "pgbackup_last_size_bytes",
        "pgbackup_written_bytes_total",
        "pgbackup_backups_kept",
    ] {
        assert!(
            m.contains(&format!("{name}{{database=\"{}\"}}", src.name)),
            "{name} in {m}"
        );
    }
    wait_until(
        Duration::from_secs(20),
        "readyz to report the stale backup",
        || {
            http_get(addr, "/readyz").is_ok_and(|r| {
                r.status == 503
                    && r.body
                        .contains(&format!("the newest backup of {} is", src.name))
                    && r.body.contains("older than --max-age 3s")
            })
        },
    );
}

#[test]
fn overlapping_ticks_do_not_overlap_runs() {
    let src = Db::create("pgb_overlap");
    src.sql("CREATE TABLE t AS SELECT 1 AS x");
    let tmp = tempfile::tempdir().unwrap();
    // A pg_dump that takes about a second: longer than the 200ms interval.
    let real = which("pg_dump");
    let bin = fake_tools(
        tmp.path(),
        &format!(
            "[ \"$1\" = --version ] && exec {0} --version\nsleep 1\nexec {0} \"$@\"",
            real.display()
        ),
    );
    let out = tmp.path().join("out");
    let mut c = agent(&out, &src.name);
    c.arg("--pg-bin-dir").arg(&bin).args([
        "--on-start",
        "--interval",
        "200ms",
        "--keep-last",
        "100",
    ]);
    let mut p = AgentProcess::spawn(c);
    wait_until(Duration::from_secs(60), "three backups", || {
        json_lines(&p)
            .iter()
            .filter(|v| v["message"] == "backup succeeded")
            .count()
            >= 3
    });
    assert!(stop(&mut p).success());
    // Started and finished strictly alternate: never two runs at once.
    let mut running = false;
    for v in json_lines(&p) {
        match v["message"].as_str() {
            Some("backup started") => {
                assert!(!running, "a run started while another was going");
                running = true;
            }
            Some("backup succeeded")
            | Some("backup failed; earlier backups are untouched")
            | Some("backup stopped by shutdown; pg_dump killed and the temp file removed") => {
                running = false
            }
            _ => {}
        }
    }
    assert!(
        p.stderr().contains("skipped ticks (runs never overlap)"),
        "{}",
        p.stderr()
    );
    let names = backups(&out);
    assert!(names.len() >= 3, "{names:?}");
    let mut unique_names = names.clone();
    unique_names.dedup();
    assert_eq!(unique_names, names);
}
