//! https targets against `openssl s_server` with a throw-away self-signed certificate: not
//! trusted by default, trusted with the CA file, or with verification skipped.
mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use support::*;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `openssl s_server -www` on an ephemeral port with a leaf certificate for 127.0.0.1
/// signed by a throw-away CA; returns it and the CA certificate's path.
fn tls_server(dir: &std::path::Path) -> (Server, std::path::PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"],
        &ec[..],
        &["-days", "2", "-subj", "/CN=waitfor test CA"],
    ]
    .concat();
    openssl(
        &[&ca[..], &["-keyout", "ca.key", "-out", "ca.pem"]].concat(),
        dir,
    );
    let csr = [
        &["req"],
        &ec[..],
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
    ]
    .concat();
    openssl(&csr, dir);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
        dir,
    );
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let port = loop {
        let line = lines.next().expect("s_server output").unwrap();
        if let Some(addr) = line.strip_prefix("ACCEPT ") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Server { child, port }, dir.join("ca.pem"))
}

#[test]
fn https_with_custom_ca_or_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cert) = tls_server(dir.path());
    let url = format!("https://127.0.0.1:{}/", server.port);

    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "1s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(124), "{err}");
    let last = summary(&err, &url)["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("certificate"), "{last}");

    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--timeout", "10s", "--http-ca-file"])
        .arg(&cert);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");

    let mut cmd = waitfor();
    cmd.arg(format!("{url}#insecure&contains=s_server"))
        .args(["--timeout", "10s"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(0), "{err}");

    let mut cmd = waitfor();
    cmd.args([url.as_str(), "--http-ca-file", "/nonexistent/ca.pem"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot read CA file /nonexistent/ca.pem"),
        "{err}"
    );
}
