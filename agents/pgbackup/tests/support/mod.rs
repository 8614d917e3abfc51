//! Shared helpers for pgbackup's integration tests: scratch databases on the local
//! PostgreSQL (dropped on drop), fake client tools, and running the agent.
#![allow(dead_code, unreachable_pub)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use testkit::AgentProcess;

pub const PGHOST: &str = "127.0.0.1";
pub const PGPORT: &str = "5432";

/// Runs SQL with psql against `db` on the local PostgreSQL; panics on failure; returns stdout.
pub fn psql(db: &str, sql: &str) -> String {
    psql_at(
        &format!("host={PGHOST} port={PGPORT} user=postgres dbname={db}"),
        None,
        sql,
    )
}

/// Runs SQL with psql on the libpq connection string `conninfo`, with `password` as
/// PGPASSWORD (none otherwise); panics on failure; returns stdout.
pub fn psql_at(conninfo: &str, password: Option<&str>, sql: &str) -> String {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
        conninfo,
    ])
    .env_remove("PGPASSWORD");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A uniquely named scratch database, dropped on drop.
pub struct Db {
    pub name: String,
}

static N: AtomicU32 = AtomicU32::new(0);

/// A unique name with `prefix`.
pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        % 1_000_000_000;
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        t
    )
}

impl Db {
    pub fn create(prefix: &str) -> Db {
        let name = unique(prefix);
        psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        Db { name }
    }

    /// A name that will be dropped on drop, without creating it.
    pub fn adopt(name: &str) -> Db {
        Db {
            name: name.to_string(),
        }
    }

    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X", "-q", "-h", PGHOST, "-p", PGPORT, "-U", "postgres", "-d", "postgres", "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Fills `db` with a few small tables of many types and one larger table.
pub fn fill(db: &Db, big_rows: u32) {
    db.sql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, born date, height numeric(5,2),
             active boolean, mood mood, tags text[], meta jsonb, photo bytea, seen timestamptz,
             uid uuid, addr inet, during interval, score double precision);
         INSERT INTO people (name, born, height, active, mood, tags, meta, photo, seen, uid, addr, during, score)
         SELECT 'person ' || g || E' with \"quotes\", commas and a\ttab', date '1970-01-01' + g,
                (g % 200)::numeric / 1.1, g % 2 = 0, (ARRAY['sad','ok','happy'])[g % 3 + 1]::mood,
                ARRAY['a' || g, 'b'], jsonb_build_object('k', g, 'nested', jsonb_build_array(g, 'x')),
                decode(md5(g::text), 'hex'), timestamptz '2026-01-01 00:00+00' + g * interval '1 hour',
                md5(g::text)::uuid, ('10.0.' || (g % 256) || '.1')::inet, g * interval '1 minute', g / 3.0
         FROM generate_series(1, 500) g;
         INSERT INTO people (name) VALUES ('nulls everywhere'), ('unicode: éè 中文 😀');
         CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id bigint PRIMARY KEY, person int REFERENCES people(id), total numeric, at timestamp);
         INSERT INTO sales.orders SELECT g, g % 500 + 1, g * 1.25, timestamp '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 2000) g;
         CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE total > 1000;
         CREATE INDEX ON sales.orders (at);
         CREATE TABLE empty_one (x int);",
    );
    db.sql(&format!(
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text, n int);
         INSERT INTO events SELECT g, md5(g::text) || repeat('x', g % 50), g % 1000 FROM generate_series(1, {big_rows}) g;"
    ));
}

/// A digest of every table's content, to compare a source with its restored copy.
pub fn digest(db: &Db) -> Vec<(String, String)> {
    let tables = db.sql(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| {
            let d = db.sql(&format!("SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"));
            (t.to_string(), d)
        })
        .collect()
}

/// The agent binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgbackup"))
}

/// A command for the agent with the test's connection and a free admin port.
pub fn agent(dir: &Path, db: &str) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGHOST", PGHOST)
        .env("PGPORT", PGPORT)
        .env("PGUSER", "postgres")
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "--databases",
            db,
            "--backup-dir",
        ])
        .arg(dir);
    c
}

/// Backups (data files) in `dir`, sorted.
pub fn backups(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql.gz") || n.ends_with(".dump"))
        .collect();
    v.sort();
    v
}

/// Every file in `dir`, sorted (temp files included).
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A bin dir with a fake `pg_dump` (the script's body) and the real psql, pg_restore and
/// pg_dumpall beside it.
pub fn fake_tools(root: &Path, pg_dump_script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("pg_dump");
    std::fs::write(&p, format!("#!/bin/sh\n{pg_dump_script}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    for t in ["psql", "pg_restore", "pg_dumpall"] {
        let real = which(t);
        let _ = std::os::unix::fs::symlink(real, dir.join(t));
    }
    dir
}

/// The real path of a tool on PATH.
pub fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not on PATH: install postgresql-client"))
}

/// Waits for a JSON log line with this message and database.
pub fn wait_db_message(
    p: &AgentProcess,
    timeout: Duration,
    message: &str,
    db: &str,
) -> serde_json::Value {
    let line = p.wait_for_log(timeout, &format!("{message} for {db}"), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["message"] == message && v["database"] == db)
    });
    serde_json::from_str(&line).unwrap()
}

/// Parsed JSON log lines.
pub fn json_lines(p: &AgentProcess) -> Vec<serde_json::Value> {
    p.stderr_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs a backup once (at start) and stops the agent; returns the stderr.
pub fn backup_once(dir: &Path, db: &str, extra: &[&str]) -> String {
    let mut c = agent(dir, db);
    c.args(["--on-start", "--interval", "1h"]).args(extra);
    let mut p = AgentProcess::spawn(c);
    let v = p.wait_for_log(Duration::from_secs(60), "backup result", |l| {
        l.contains("\"backup succeeded\"")
            || l.contains("\"backup failed; earlier backups are untouched\"")
    });
    assert!(v.contains("backup succeeded"), "{v}");
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit(Duration::from_secs(20)).success());
    // The last line: everything before it has been read from the pipe.
    p.wait_for_message(Duration::from_secs(10), "stopped");
    p.stderr()
}

/// SIGTERM, wait for the exit and for the last log line; returns the exit status.
pub fn stop(p: &mut AgentProcess) -> std::process::ExitStatus {
    p.signal(libc::SIGTERM);
    let st = p.wait_exit(Duration::from_secs(20));
    p.wait_for_message(Duration::from_secs(10), "stopped");
    st
}
