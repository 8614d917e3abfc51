//! Against the real servers on this machine: PostgreSQL 5432 (trust), Redis 6379 (no
//! password), MariaDB 3306 (root, empty password), RabbitMQ 5672 (guest/guest), NATS 4222,
//! Mosquitto 1883.
mod support;

use std::{process::Command, time::Duration};

use support::*;

#[test]
fn every_server_becomes_ready_in_one_parallel_wait() {
    let targets = [
        "postgres://postgres@127.0.0.1:5432/test",
        "redis://127.0.0.1:6379",
        "mysql://127.0.0.1:3306",
        "mysql://root@127.0.0.1:3306/mysql",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "nats://127.0.0.1:4222",
        "mqtt://127.0.0.1:1883",
    ];
    let mut cmd = waitfor();
    cmd.args(targets).args(["--timeout", "20s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");
    for t in targets {
        let s = summary(&err, &common::secret::redact(t));
        assert_eq!(s["ready"], true, "{t}: {s}");
    }
    assert!(!err.contains("guest:guest"), "password printed:\n{err}");
    assert_eq!(messages(&err, "ready").len(), 1, "{err}");
}

#[test]
fn wrong_passwords_are_reported_as_authentication_failures() {
    let targets = [
        ("amqp://guest:wrongpass@127.0.0.1:5672/", "ACCESS_REFUSED"),
        ("mysql://root:wrongpass@127.0.0.1:3306/", "Access denied"),
        // No password is configured on this Redis: sending one is a misconfiguration the
        // application would hit too.
        (
            "redis://:wrongpass@127.0.0.1:6379",
            "without any password configured",
        ),
        (
            "postgres://nosuchrole:wrongpass@127.0.0.1:5432/test",
            "nosuchrole",
        ),
    ];
    let mut cmd = waitfor();
    cmd.args(targets.map(|t| t.0)).args(["--timeout", "1500ms"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    for (t, detail) in targets {
        let s = summary(&err, &common::secret::redact(t));
        let last = s["last_error"].as_str().unwrap_or_default();
        assert!(last.starts_with("authentication failed"), "{t}: {s}");
        assert!(last.contains(detail), "{t}: {s}");
    }
    let alerts = messages(&err, "target authentication failed");
    assert_eq!(
        alerts.len(),
        targets.len(),
        "one line per target, not per attempt:\n{err}"
    );
    assert!(!err.contains("wrongpass"), "password printed:\n{err}");
}

#[test]
fn fail_on_auth_exits_at_once() {
    let mut cmd = waitfor();
    cmd.args([
        "amqp://guest:wrongpass@127.0.0.1:5672/",
        "--fail-on-auth",
        "--timeout",
        "30s",
    ]);
    let started = std::time::Instant::now();
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(1), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{err}");
    assert_eq!(
        messages(
            &err,
            "authentication failed for amqp://guest:***@127.0.0.1:5672/"
        )
        .len(),
        1,
        "{err}"
    );
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn postgres_waits_for_a_table_and_a_migration_version() {
    let t = format!("waitfor_mig_{}", std::process::id());
    psql(&format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (version bigint, dirty boolean); INSERT INTO {t} VALUES (2, false)"));
    let url = format!("postgres://postgres@127.0.0.1:5432/test?migration_table=public.{t}&min_version=3&table=pg_catalog.pg_class");
    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "30s"]);
    let p = AgentProcess::spawn(cmd);
    let first = first_failure(&p);
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("migration version 2 is older than 3"),
        "{first}"
    );
    psql(&format!("UPDATE {t} SET version = 3, dirty = true"));
    p.wait_for_log(Duration::from_secs(20), "dirty state", |l| {
        l.contains("is dirty")
    });
    psql(&format!("UPDATE {t} SET dirty = false"));
    let mut p = p;
    let status = p.wait_exit(Duration::from_secs(20));
    psql(&format!("DROP TABLE {t}"));
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
}

#[test]
fn postgres_over_tls() {
    // This PostgreSQL has ssl=on with a self-signed (snakeoil) certificate: `require` encrypts
    // without checking it, as libpq does; with a root certificate, `require` checks the chain
    // (libpq's rule), and roots that did not sign it are refused.
    let require = "postgres://postgres@127.0.0.1:5432/test?sslmode=require";
    let wrong_ca = "postgres://postgres@127.0.0.1:5432/test?sslmode=require&sslrootcert=/etc/ssl/certs/ca-certificates.crt";
    let mut cmd = waitfor();
    cmd.args([require, "--timeout", "20s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");

    let mut cmd = waitfor();
    cmd.args([wrong_ca, "--timeout", "1s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    let last = summary(&err, wrong_ca)["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("certificate"), "{last}");
}
