//! TLS on the control connection against the local PostgreSQL: sslmode require, verify-ca and
//! verify-full with the server's certificate as root, a name mismatch and an unknown CA are
//! refused with rustls's reason. When the server has ssl off, `require` must fail clearly and
//! `prefer` must fall back to plain TCP.
mod support;

use std::{path::Path, time::Duration};

use support::*;
use testkit::run_to_end;

/// The server's certificate file, when it has ssl on and the file is readable here.
fn server_cert() -> Option<String> {
    if psql("postgres", "SHOW ssl") != "on" {
        return None;
    }
    let path = psql("postgres", "SHOW ssl_cert_file");
    std::fs::metadata(&path).ok().map(|_| path)
}

fn once(dir: &Path, db: &str, host: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = agent(dir, db);
    c.env("PGHOST", host).arg("--once");
    for (k, v) in env {
        c.env(k, v);
    }
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    (st.code(), err)
}

#[test]
fn sslmodes_on_the_control_connection() {
    let db = Db::create("pgb_tls");
    db.sql("CREATE TABLE t AS SELECT 1 AS x");
    let tmp = tempfile::tempdir().unwrap();
    let Some(cert) = server_cert() else {
        // ssl off: require is refused with the reason, prefer falls back.
        let (code, err) = once(tmp.path(), &db.name, PGHOST, &[("PGSSLMODE", "require")]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("needs TLS"), "{err}");
        let (code, err) = once(tmp.path(), &db.name, PGHOST, &[("PGSSLMODE", "prefer")]);
        assert_eq!(code, Some(0), "{err}");
        return;
    };
    // The server's certificate names the host it was made for (Debian's snakeoil: the
    // machine's name, or localhost); it is self-signed, so it is its own root.
    let (code, err) = once(tmp.path(), &db.name, PGHOST, &[("PGSSLMODE", "require")]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = once(
        tmp.path(),
        &db.name,
        PGHOST,
        &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", &cert)],
    );
    assert_eq!(code, Some(0), "{err}");
    // (retention keeps the newest backup of the day)
    let kept = backups(tmp.path());
    assert!(!kept.is_empty());

    // verify-full checks the name: 127.0.0.1 is not in the certificate.
    let (code, err) = once(
        tmp.path(),
        &db.name,
        PGHOST,
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &cert)],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot connect to PostgreSQL")
            && err.contains("not valid for name")
            && err.contains("--sslrootcert"),
        "{err}"
    );
    if err.contains("DnsName(\"localhost\")") {
        // ... and passes when the host is the name in the certificate.
        let (code, err) = once(
            tmp.path(),
            &db.name,
            "localhost",
            &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &cert)],
        );
        assert_eq!(code, Some(0), "{err}");
    }

    // An unknown CA is refused by verify-ca (and by require with a root certificate).
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_ca = tmp.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let other_ca = other_ca.to_str().unwrap();
    for mode in ["verify-ca", "require"] {
        let (code, err) = once(
            tmp.path(),
            &db.name,
            PGHOST,
            &[("PGSSLMODE", mode), ("PGSSLROOTCERT", other_ca)],
        );
        assert_eq!(code, Some(1), "{mode}: {err}");
        assert!(err.contains("UnknownIssuer"), "{mode}: {err}");
    }

    // verify-ca without any root certificate says what to do.
    let (code, err) = once(
        tmp.path(),
        &db.name,
        PGHOST,
        &[
            ("PGSSLMODE", "verify-ca"),
            ("HOME", tmp.path().to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("root.crt does not exist") && err.contains("PGSSLROOTCERT"),
        "{err}"
    );
    assert_eq!(backups(tmp.path()), kept, "failed runs changed nothing");
}

/// A server that refuses TLS: answers every SSLRequest with 'N', as a server with ssl off
/// does, and counts them. (The thread stays blocked in accept when the test ends.)
fn no_tls_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::{
        io::{Read, Write},
        sync::{atomic::Ordering, Arc},
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = refused.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut req = [0u8; 8];
            if s.read_exact(&mut req).is_err() {
                continue;
            }
            // Length 8, code 80877103: SSLRequest.
            if req == [0, 0, 0, 8, 4, 210, 22, 47] && s.write_all(b"N").is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
                let mut rest = [0u8; 64];
                while matches!(s.read(&mut rest), Ok(n) if n > 0) {}
            }
        }
    });
    (port, refused)
}

#[test]
fn require_against_a_server_without_tls_says_so() {
    let (port, refused) = no_tls_server();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = agent(tmp.path(), "anydb");
    c.env("PGPORT", port.to_string())
        .env("PGSSLMODE", "require")
        .arg("--once");
    let (st, _, err) = run_to_end(c, Duration::from_secs(60));
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("server does not support TLS") && err.contains("sslmode require needs TLS"),
        "{err}"
    );
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(backups(tmp.path()).is_empty());
}
