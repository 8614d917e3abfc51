//! What goes wrong: pg_dump failing (no such role, database, server down, killed), a pg_dump
//! older than the server, a full disk, shutdown mid-dump, and secrets in logs.
mod support;

use std::time::Duration;

use support::*;
use testkit::{run_to_end, AgentProcess};

const FAILED: &str = "backup failed; earlier backups are untouched";

/// A directory holding one good backup of a small database.
fn with_good_backup(prefix: &str) -> (Db, tempfile::TempDir, Vec<String>) {
    let db = Db::create(prefix);
    db.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x");
    let tmp = tempfile::tempdir().unwrap();
    backup_once(tmp.path(), &db.name, &[]);
    let before = files(tmp.path());
    assert_eq!(before.len(), 2, "{before:?}");
    (db, tmp, before)
}

fn run_failing(c: std::process::Command, db: &str) -> AgentProcess {
    let p = AgentProcess::spawn(c);
    wait_db_message(&p, Duration::from_secs(60), FAILED, db);
    p
}

#[test]
fn failing_pg_dump_leaves_no_partial_file_and_keeps_old_backups_and_secrets() {
    let (db, tmp, before) = with_good_backup("pgb_fail");
    let secret = format!("S3cr3t-{}", unique("pw"));

    // A role that does not exist (trust auth accepts any password, so a bad login is a bad
    // role), with a password given in PGPASSWORD.
    let mut c = agent(tmp.path(), &db.name);
    c.env("PGUSER", "no_such_role_pgb")
        .env("PGPASSWORD", &secret)
        .args(["--on-start", "--interval", "1h"]);
    let mut p = run_failing(c, &db.name);
    assert!(stop(&mut p).success());
    assert!(p.stderr().contains("no_such_role_pgb"), "{}", p.stderr());
    assert!(
        !p.stderr().contains(&secret),
        "the password leaked into the log"
    );
    assert_eq!(files(tmp.path()), before);

    // The same password inside a URL.
    let mut c = agent(tmp.path(), &db.name);
    c.env_remove("PGUSER").env(
        "PGBACKUP_URL",
        format!(
            "postgres://no_such_role_pgb:{secret}@127.0.0.1:5432/{}",
            db.name
        ),
    );
    c.args(["--on-start", "--interval", "1h", "--log-level", "debug"]);
    let mut p = run_failing(c, &db.name);
    stop(&mut p);
    assert!(
        !p.stderr().contains(&secret),
        "the password leaked into the log"
    );
    assert_eq!(files(tmp.path()), before);

    // A database that does not exist, next to one that does: the good one still succeeds.
    let mut c = agent(tmp.path(), &format!("no_such_db_pgb,{}", db.name));
    c.args(["--on-start", "--interval", "1h", "--keep-last", "5"]);
    let mut p = run_failing(c, "no_such_db_pgb");
    wait_db_message(&p, Duration::from_secs(60), "backup succeeded", &db.name);
    stop(&mut p);
    assert!(p.stderr().contains("no_such_db_pgb"));
    let after = files(tmp.path());
    assert!(before.iter().all(|f| after.contains(f)), "{after:?}");
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(
        !after
            .iter()
            .any(|f| f.starts_with("no_such_db_pgb") || f.ends_with(".tmp")),
        "{after:?}"
    );
}

#[test]
fn server_down_fails_the_run_and_leaves_old_backups() {
    let (db, tmp, before) = with_good_backup("pgb_down");
    let mut c = agent(tmp.path(), &db.name);
    c.env("PGPORT", "1")
        .args(["--on-start", "--interval", "1h"]);
    let mut p = run_failing(c, &db.name);
    assert!(stop(&mut p).success());
    assert!(
        p.stderr()
            .contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{}",
        p.stderr()
    );
    assert_eq!(files(tmp.path()), before);
}

#[test]
fn killed_pg_dump_leaves_no_partial_file() {
    let (db, tmp, before) = with_good_backup("pgb_kill");
    let real = which("pg_dump");
    // Writes part of a real dump, then dies by SIGKILL.
    let bin = fake_tools(
        tmp.path(),
        &format!(
            "[ \"$1\" = --version ] && exec {0} --version\n{0} \"$@\" | head -c 3000\nkill -9 $$",
            real.display()
        ),
    );
    let mut c = agent(tmp.path(), &db.name);
    c.arg("--pg-bin-dir")
        .arg(&bin)
        .args(["--on-start", "--interval", "1h"]);
    let mut p = run_failing(c, &db.name);
    stop(&mut p);
    assert!(p.stderr().contains("signal: 9"), "{}", p.stderr());
    let mut after = files(tmp.path());
    after.retain(|f| f != "bin");
    assert_eq!(after, before);
}

#[test]
fn truncated_output_with_success_status_is_not_a_backup() {
    let (db, tmp, before) = with_good_backup("pgb_trunc");
    let real = which("pg_dump");
    // Exits 0 but its output stops short: verification catches it.
    let bin = fake_tools(
        tmp.path(),
        &format!(
            "[ \"$1\" = --version ] && exec {0} --version\n{0} \"$@\" | head -c 3000\nexit 0",
            real.display()
        ),
    );
    let mut c = agent(tmp.path(), &db.name);
    c.arg("--pg-bin-dir")
        .arg(&bin)
        .args(["--on-start", "--interval", "1h"]);
    let mut p = run_failing(c, &db.name);
    stop(&mut p);
    assert!(p.stderr().contains("truncated"), "{}", p.stderr());
    let mut after = files(tmp.path());
    after.retain(|f| f != "bin");
    assert_eq!(after, before);
}

#[test]
fn older_pg_dump_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = fake_tools(tmp.path(), "echo 'pg_dump (PostgreSQL) 12.3'");
    let mut c = agent(&tmp.path().join("out"), "postgres");
    c.arg("--pg-bin-dir")
        .arg(&bin)
        .args(["--on-start", "--interval", "1h"]);
    let (st, _, err) = run_to_end(c, Duration::from_secs(30));
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("pg_dump 12.3") && err.contains("is older than the server at 127.0.0.1:5432"),
        "{err}"
    );
    assert!(
        err.contains("major version must be at least the server's (12 < "),
        "{err}"
    );

    // No pg_dump at all: a configuration error (exit 2) that says so.
    let empty = tempfile::tempdir().unwrap();
    let mut c = agent(&tmp.path().join("out"), "postgres");
    c.arg("--pg-bin-dir").arg(empty.path());
    let (st, _, err) = run_to_end(c, Duration::from_secs(30));
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("pg_dump not found in"), "{err}");
}

#[test]
fn sigterm_during_a_dump_kills_it_removes_the_temp_file_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let real = which("pg_dump");
    // Writes some output, then hangs like a dump of a huge table.
    let bin = fake_tools(tmp.path(), &format!("[ \"$1\" = --version ] && exec {0} --version\nhead -c 200000 /dev/urandom\nexec sleep 60", real.display()));
    let out = tmp.path().join("out");
    let mut c = agent(&out, "postgres");
    c.arg("--pg-bin-dir").arg(&bin).args([
        "--on-start",
        "--interval",
        "1h",
        "--shutdown-timeout",
        "5s",
    ]);
    let mut p = AgentProcess::spawn(c);
    wait_db_message(&p, Duration::from_secs(30), "backup started", "postgres");
    testkit::wait_until(Duration::from_secs(20), "the temp file", || {
        files(&out).iter().any(|f| f.ends_with(".tmp"))
    });
    let t = std::time::Instant::now();
    p.signal(libc::SIGTERM);
    let st = p.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{st:?}: {}", p.stderr());
    assert!(t.elapsed() < Duration::from_secs(5));
    p.wait_for_message(Duration::from_secs(10), "stopped");
    assert!(
        p.stderr().contains("backup stopped by shutdown"),
        "{}",
        p.stderr()
    );
    assert!(files(&out).is_empty(), "{:?}", files(&out));
}

/// A tmpfs mounted under a temp dir, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs (the tests run as root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn not_enough_disk_is_a_clear_failure_and_no_partial_file() {
    let db = Db::create("pgb_disk");
    // About 2 MB of incompressible text.
    db.sql("CREATE TABLE noise AS SELECT g, md5(random()::text) || md5(random()::text) AS a FROM generate_series(1, 30000) g");
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    let _fs = Tmpfs::mount(&mnt, "512k");

    // Checked before the run: the reserve asked for is not there.
    let mut c = agent(&mnt, &db.name);
    c.args(["--on-start", "--interval", "1h", "--min-free-space", "1MiB"]);
    let mut p = run_failing(c, &db.name);
    stop(&mut p);
    assert!(
        p.stderr().contains(&format!(
            "not enough free space in {} to back up {}",
            mnt.display(),
            db.name
        )),
        "{}",
        p.stderr()
    );
    assert!(files(&mnt).is_empty());

    // Found while writing: the disk fills up; the temp file goes, the error says so.
    let mut c = agent(&mnt, &db.name);
    c.args(["--on-start", "--interval", "1h", "--compression-level", "1"]);
    let mut p = run_failing(c, &db.name);
    stop(&mut p);
    assert!(
        p.stderr().contains("No space left on device")
            && p.stderr()
                .contains("free space on the volume or enlarge it"),
        "{}",
        p.stderr()
    );
    assert!(files(&mnt).is_empty(), "{:?}", files(&mnt));
}
