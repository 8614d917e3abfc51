//! SCRAM-SHA-256 over TLS, the way managed PostgreSQL (RDS, Cloud SQL, Azure) is reached: a
//! private cluster the test creates and removes (initdb as the `postgres` OS user, `hostssl` and
//! `scram-sha-256` only, a server certificate from a test CA, its own port and socket
//! directory), backed up with `sslmode=verify-full`. The control connection (tokio-postgres over
//! rustls) and pg_dump (libpq) both authenticate; the password never reaches the log; a plain
//! connection is refused with the server's reason.
mod support;

use std::{
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use support::*;
use testkit::run_to_end;

const PASSWORD: &str = "s3cret-Scram-pw";

/// The newest PostgreSQL server binaries of the machine (Debian's layout).
fn server_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql (the machine runs PostgreSQL)",
        )
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

/// Runs `program` of the server binaries as the `postgres` OS user (initdb refuses root).
fn as_postgres(bin: &Path, program: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .output()
        .expect("run runuser");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown {}", path.display());
}

/// A cluster of its own, stopped and removed on drop.
struct Cluster {
    root: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    ca: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = server_bin();
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let pwfile = root.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("write password file");
        chown_postgres(root.path());
        let data = root.path().join("data");
        let (data_s, pw_s) = (data.to_str().unwrap(), pwfile.to_str().unwrap());
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data_s,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                pw_s,
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );

        // A test CA and a server certificate for localhost and 127.0.0.1.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pgbackup test ca");
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(data.join("server.crt"), cert.pem()).expect("write cert");
        std::fs::write(data.join("server.key"), key.serialize_pem()).expect("write key");
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod key");
        let ca = root.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).expect("write ca");

        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str(&format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\npassword_encryption = 'scram-sha-256'\nfsync = off\nlog_connections = on\n",
            root.path().display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).expect("write conf");
        // TLS and SCRAM only: no plain `host` line, no trust.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write hba");
        chown_postgres(root.path());
        let log = root.path().join("server.log");
        as_postgres(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data_s,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        Cluster {
            root,
            bin,
            port,
            ca,
        }
    }

    /// The server's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// Runs SQL as postgres over TLS with the password.
    fn sql(&self, db: &str, sql: &str) -> String {
        psql_at(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=require",
                self.port
            ),
            Some(PASSWORD),
            sql,
        )
    }

    /// One `--once` run of the agent against database `db` with `env`.
    fn backup(&self, dir: &Path, db: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let mut c = agent(dir, db);
        c.env("PGPORT", self.port.to_string()).arg("--once");
        for (k, v) in env {
            c.env(k, v);
        }
        let (st, _, err) = run_to_end(c, Duration::from_secs(120));
        (st.code(), err)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.root.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn backs_up_over_tls_with_scram_and_verify_full() {
    let pg = Cluster::start();
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql(
        "shop",
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref FROM generate_series(1, 1000) g",
    );
    let out = tempfile::tempdir().expect("tempdir");
    let ca = pg.ca.to_str().unwrap();

    // verify-full against 127.0.0.1 (in the certificate), the password from PGPASSWORD.
    let (code, err) = pg.backup(
        out.path(),
        "shop",
        &[
            ("PGPASSWORD", PASSWORD),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", ca),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(backups(out.path()).len(), 1, "{:?}", files(out.path()));
    assert!(
        !err.contains(PASSWORD),
        "the password reached the log:\n{err}"
    );
    // Both the control connection and pg_dump came in over TLS and SCRAM (hba line 2).
    let log = pg.log();
    let shop: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("connection authorized: user=postgres database=shop")
                && l.contains("application_name=pgbackup")
        })
        .collect();
    assert!(shop.len() >= 2, "{log}");
    assert!(shop.iter().all(|l| l.contains("SSL enabled")), "{log}");
    assert!(
        log.contains("method=scram-sha-256 (") && log.contains("pg_hba.conf:2)"),
        "{log}"
    );

    // The same with the password in a file (PGPASSFILE, the Secret volume way).
    let passfile = out.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:postgres:{PASSWORD}\n", pg.port),
    )
    .expect("write pgpass");
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (code, err) = pg.backup(
        dir2.path(),
        "shop",
        &[
            ("PGPASSFILE", passfile.to_str().unwrap()),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", ca),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(backups(dir2.path()).len(), 1);

    // A wrong password fails with the server's reason, naming no secret.
    let dir3 = tempfile::tempdir().expect("tempdir");
    let (code, err) = pg.backup(
        dir3.path(),
        "shop",
        &[
            ("PGPASSWORD", "not-the-password"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", ca),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(backups(dir3.path()).is_empty());

    // Without TLS the server has no pg_hba line for the connection, and says so.
    let (code, err) = pg.backup(
        dir3.path(),
        "shop",
        &[("PGPASSWORD", PASSWORD), ("PGSSLMODE", "disable")],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no encryption"), "{err}");
}
