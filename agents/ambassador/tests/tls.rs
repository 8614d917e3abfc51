//! TLS through the ambassador: origination to a TLS echo server with a test CA, mutual TLS (with
//! the client certificate rotated on disk),
//! termination with the certificate swapped on disk while a connection stays open, mutual TLS on
//! the listener with its client CA rotated, and a plain-text client on the TLS listener refused
//! and counted.
mod support;

use std::{net::SocketAddr, path::Path, sync::Arc};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn make_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("ca");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate signed by `ca`: (cert PEM, key PEM, cert DER).
fn leaf(
    ca: &Ca,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
) -> (String, String, CertificateDer<'static>) {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().expect("utf8").to_string()
}

/// A TLS echo server; with `client_ca`, it requires a client certificate signed by it. Its
/// certificate files are re-read when they change (checked every 100 ms).
async fn tls_echo(cert: &str, key: &str, client_ca: Option<&str>) -> SocketAddr {
    let resolver = common::tls::ReloadingCertResolver::new(
        Path::new(cert),
        Path::new(key),
        std::time::Duration::from_millis(100),
    )
    .expect("server cert");
    let cfg = common::tls::server_config(Arc::new(resolver), client_ca.map(Path::new))
        .expect("server config");
    // No session resumption: every handshake sends (and re-reads) the certificate, so a
    // rotation shows at the next connection.
    let mut cfg = (*cfg).clone();
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

async fn plain_roundtrip(addr: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(T, s.read_exact(&mut back))
        .await
        .map_err(std::io::Error::other)??;
    Ok(back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originates_tls_with_a_custom_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("test ca");
    let (cert, key, _) = leaf(
        &ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cert, key, ca_file) = (
        write(dir.path(), "s.pem", &cert),
        write(dir.path(), "s.key", &key),
        write(dir.path(), "ca.pem", &ca.pem),
    );
    let up = tls_echo(&cert, &key, None).await;
    let route = format!("127.0.0.1:0=localhost:{}", up.port());
    let amb = Amb::spawn(
        &[
            "--route",
            &route,
            "--upstream-tls",
            "true",
            "--upstream-tls-ca",
            &ca_file,
        ],
        &[],
    );
    let addr = amb.listen(0);
    let msg = vec![7u8; 100_000];
    assert_eq!(
        plain_roundtrip(addr, &msg).await.expect("echo through TLS"),
        msg
    );

    // The wrong CA: the handshake fails, the client is closed and the error is counted as tls.
    let other = make_ca("other ca");
    let other_file = write(dir.path(), "other.pem", &other.pem);
    let amb2 = Amb::spawn(
        &[
            "--route",
            &route,
            "--upstream-tls",
            "true",
            "--upstream-tls-ca",
            &other_file,
        ],
        &[],
    );
    assert!(plain_roundtrip(amb2.listen(0), b"x").await.is_err());
    assert!(amb2.metric("ambassador_connect_errors_total", &["reason=\"tls\""]) >= 1.0);
}

/// A route that originates TLS (the tokio loops): the queue of `--on-limit wait`, the same
/// as on plain routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_connections_time_out_or_leave_on_tls_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("test ca");
    let (cert, key, _) = leaf(&ca, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (cert, key, ca_file) = (
        write(dir.path(), "s.pem", &cert),
        write(dir.path(), "s.key", &key),
        write(dir.path(), "ca.pem", &ca.pem),
    );
    let up = tls_echo(&cert, &key, None).await;
    let route = format!(
        "127.0.0.1:0=localhost:{} upstream-tls=true upstream-tls-ca={ca_file} \
         max-connections=1 queue-timeout={QUEUE_TIMEOUT}",
        up.port()
    );
    let amb = Amb::spawn(&["--route", &route], &[]);
    let addr = amb.listen(0);
    tokio::task::block_in_place(|| connection_queue(&amb, addr));
}

/// A client that resets while the upstream TLS handshake is still going (an upstream that
/// accepts and never answers) is gone: the attempt is dropped at once, not at the 60 s connect
/// timeout, and the departure is counted as `client_left`.
#[test]
fn a_client_that_resets_during_the_upstream_handshake_leaves() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = write(dir.path(), "ca.pem", &make_ca("test ca").pem);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let route = format!(
        "127.0.0.1:0=127.0.0.1:{} upstream-tls=true upstream-tls-ca={ca_file} \
         upstream-tls-server-name=db.test connect-timeout=60s",
        silent.local_addr().expect("addr").port()
    );
    let amb = Amb::spawn(&["--route", &route], &[]);
    let client = std::net::TcpStream::connect(amb.listen(0)).expect("connect");
    let (mut upstream, _) = silent.accept().expect("the ambassador connects at once");
    upstream.set_read_timeout(Some(T)).expect("timeout");
    let mut hello = [0u8; 5];
    upstream
        .read_exact(&mut hello)
        .expect("the ambassador's ClientHello");
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    socket2::SockRef::from(&client)
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("linger");
    drop(client);
    // The attempt is dropped: the upstream sees its connection end, long before the timeout.
    let mut rest = Vec::new();
    match upstream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the upstream attempt was still open after {T:?}"
        ),
    }
    testkit::wait_for(T, "the departure to be counted", || {
        (amb.metric(
            "ambassador_rejected_connections_total",
            &["reason=\"client_left\""],
        ) == 1.0)
            .then_some(())
    });
}

/// The upstream client certificate is re-read when its files change (a rotated Secret): new
/// upstream connections present the new one, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_upstream_client_certificate_is_used_for_new_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = make_ca("test ca");
    let untrusted = make_ca("other ca");
    let (scert, skey, _) = leaf(&ca, &["db.test"], ExtendedKeyUsagePurpose::ServerAuth);
    let ca_file = write(d, "ca.pem", &ca.pem);
    let up = tls_echo(
        &write(d, "s.pem", &scert),
        &write(d, "s.key", &skey),
        Some(&ca_file),
    )
    .await;
    // At first a client certificate the upstream does not trust.
    let (old_cert, old_key, _) = leaf(
        &untrusted,
        &["ambassador"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (cc, ck) = (write(d, "c.pem", &old_cert), write(d, "c.key", &old_key));
    let route = format!("127.0.0.1:0=127.0.0.1:{}", up.port());
    let amb = Amb::spawn(
        &originating(
            &route,
            &ca_file,
            &[
                "--upstream-tls-cert",
                &cc,
                "--upstream-tls-key",
                &ck,
                "--tls-reload-interval",
                "100ms",
            ],
        ),
        &[],
    );
    let addr = amb.listen(0);
    assert!(
        plain_roundtrip(addr, b"old").await.is_err(),
        "the upstream refuses the untrusted client certificate"
    );
    // Rotation: new files renamed into place, as a Secret update swaps them.
    let (new_cert, new_key, _) = leaf(&ca, &["ambassador"], ExtendedKeyUsagePurpose::ClientAuth);
    swap(d, "c.pem", &new_cert);
    swap(d, "c.key", &new_key);
    until_roundtrip(addr, true, "the rotated client certificate to be used").await;
    assert!(
        amb.metric(
            "ambassador_tls_reloads_total",
            &["certificate=\"upstream_client\"", "result=\"success\""]
        ) >= 1.0
    );
}

/// Arguments for one route, `route`, originating TLS to the upstream as `db.test`, verified
/// against `ca_file`; then `extra`.
fn originating<'a>(route: &'a str, ca_file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--route",
        route,
        "--upstream-tls",
        "true",
        "--upstream-tls-ca",
        ca_file,
        "--upstream-tls-server-name",
        "db.test",
    ];
    args.extend_from_slice(extra);
    args
}

/// Swaps `text` into `dir/name` by rename, as a Secret or ConfigMap update does.
fn swap(dir: &Path, name: &str, text: &str) {
    let tmp = write(dir, &format!("{name}.new"), text);
    std::fs::rename(tmp, dir.join(name)).expect("swap");
}

/// Waits until a round trip through `addr` succeeds (`ok`) or fails (`!ok`).
async fn until_roundtrip(addr: SocketAddr, ok: bool, what: &str) {
    let deadline = std::time::Instant::now() + T;
    while (plain_roundtrip(addr, b"ping").await.ok().as_deref() == Some(b"ping".as_slice())) != ok {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {T:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The upstream's CA rotates: its new certificate fails against the old bundle, and once the
/// bundle file is swapped too, new connections verify against the new CA, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_upstream_ca_bundle_is_used_for_new_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (old_ca, new_ca) = (make_ca("old ca"), make_ca("new ca"));
    let (scert, skey, _) = leaf(&old_ca, &["db.test"], ExtendedKeyUsagePurpose::ServerAuth);
    let (sc, sk) = (write(d, "s.pem", &scert), write(d, "s.key", &skey));
    let up = tls_echo(&sc, &sk, None).await;
    let ca_file = write(d, "ca.pem", &old_ca.pem);
    let route = format!("127.0.0.1:0=127.0.0.1:{}", up.port());
    let amb = Amb::spawn(
        &originating(&route, &ca_file, &["--tls-reload-interval", "100ms"]),
        &[],
    );
    let addr = amb.listen(0);
    until_roundtrip(addr, true, "a first round trip").await;
    let (scert, skey, _) = leaf(&new_ca, &["db.test"], ExtendedKeyUsagePurpose::ServerAuth);
    swap(d, "s.key", &skey);
    swap(d, "s.pem", &scert);
    until_roundtrip(
        addr,
        false,
        "the old bundle to refuse the new CA's certificate",
    )
    .await;
    swap(d, "ca.pem", &new_ca.pem);
    until_roundtrip(addr, true, "the new bundle to be used").await;
    assert!(
        amb.metric(
            "ambassador_tls_reloads_total",
            &["certificate=\"upstream_ca\"", "result=\"success\""]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_to_the_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("test ca");
    let (scert, skey, _) = leaf(&ca, &["db.test"], ExtendedKeyUsagePurpose::ServerAuth);
    let (ccert, ckey, _) = leaf(&ca, &["ambassador"], ExtendedKeyUsagePurpose::ClientAuth);
    let d = dir.path();
    let ca_file = write(d, "ca.pem", &ca.pem);
    let up = tls_echo(
        &write(d, "s.pem", &scert),
        &write(d, "s.key", &skey),
        Some(&ca_file),
    )
    .await;
    let route = format!("127.0.0.1:0=127.0.0.1:{}", up.port());
    let (cc, ck) = (write(d, "c.pem", &ccert), write(d, "c.key", &ckey));
    let with_cert = originating(
        &route,
        &ca_file,
        &["--upstream-tls-cert", &cc, "--upstream-tls-key", &ck],
    );
    let amb = Amb::spawn(&with_cert, &[]);
    assert_eq!(
        plain_roundtrip(amb.listen(0), b"mtls")
            .await
            .expect("echo with a client cert"),
        b"mtls"
    );
    // Without a client certificate the upstream refuses.
    let amb2 = Amb::spawn(&originating(&route, &ca_file, &[]), &[]);
    assert!(plain_roundtrip(amb2.listen(0), b"mtls").await.is_err());
}

async fn tls_client(
    addr: SocketAddr,
    ca_pem: &str,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    try_tls_client(addr, ca_pem, None)
        .await
        .expect("handshake with the ambassador")
}

/// A TLS client of `addr` (verified against `ca_pem`, presenting `client`'s certificate and key
/// if given) and the certificate the server showed.
async fn try_tls_client(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&(String, String, CertificateDer<'static>)>,
) -> Result<
    (
        tokio_rustls::client::TlsStream<TcpStream>,
        CertificateDer<'static>,
    ),
    String,
> {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let opts = common::tls::ClientOptions {
        ca_file: Some(write(d, "ca.pem", ca_pem).into()),
        client_cert: client.map(|(c, k, _)| {
            (
                write(d, "client.pem", c).into(),
                write(d, "client.key", k).into(),
            )
        }),
        ..Default::default()
    };
    let connector = TlsConnector::from(common::tls::client_config(&opts).expect("client config"));
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = connector
        .connect(common::tls::server_name("app.test").expect("name"), s)
        .await
        .map_err(|e| e.to_string())?;
    let cert = tls.get_ref().1.peer_certificates().expect("peer cert")[0].clone();
    Ok((tls, cert))
}

async fn tls_roundtrip(s: &mut tokio_rustls::client::TlsStream<TcpStream>, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(T, s.read_exact(&mut back))
        .await
        .expect("in time")
        .expect("read");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminates_tls_and_picks_up_a_rotated_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = make_ca("test ca");
    let (c1, k1, der1) = leaf(&ca, &["app.test"], ExtendedKeyUsagePurpose::ServerAuth);
    let (c2, k2, der2) = leaf(&ca, &["app.test"], ExtendedKeyUsagePurpose::ServerAuth);
    let (cert, key) = (write(d, "tls.crt", &c1), write(d, "tls.key", &k1));
    let (echo, _) = echo_server();
    let amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0={echo}"),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-reload-interval",
            "50ms",
        ],
        &[],
    );
    let addr = amb.listen(0);
    let (mut open, seen) = tls_client(addr, &ca.pem).await;
    assert_eq!(seen, der1);
    assert_eq!(tls_roundtrip(&mut open, b"before").await, b"before");
    // Rotate the way a Secret update does: new files, then an atomic swap.
    write(d, "tls.crt.new", &c2);
    write(d, "tls.key.new", &k2);
    std::fs::rename(d.join("tls.key.new"), d.join("tls.key")).expect("swap key");
    std::fs::rename(d.join("tls.crt.new"), d.join("tls.crt")).expect("swap cert");
    let mut rotated = false;
    for _ in 0..400 {
        let (mut s, seen) = tls_client(addr, &ca.pem).await;
        assert_eq!(tls_roundtrip(&mut s, b"x").await, b"x");
        if seen == der2 {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(rotated, "new connections never saw the new certificate");
    // The connection opened before the swap still works.
    assert_eq!(tls_roundtrip(&mut open, b"after").await, b"after");
    assert!(amb.metric("ambassador_tls_reloads_total", &["result=\"success\""]) >= 1.0);

    // A client speaking plain text to the TLS listener: the handshake fails, the connection is
    // closed (after the rejection is counted) and nothing reaches the upstream.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !answer.starts_with(b"GET"),
        "the plain text was echoed back"
    );
    assert_eq!(
        amb.metric(
            "ambassador_rejected_connections_total",
            &["reason=\"tls_handshake\""]
        ),
        1.0
    );
}

/// A round trip over TLS to `addr` (verified against `ca_pem`, presenting `client`'s certificate
/// and key if given); any failure, the server's refusal of the client certificate included
/// (under TLS 1.3 it shows at the first read), is an error.
async fn mtls_roundtrip(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&(String, String, CertificateDer<'static>)>,
) -> Result<(), String> {
    let (mut tls, _) = try_tls_client(addr, ca_pem, client).await?;
    tls.write_all(b"mtls").await.map_err(|e| e.to_string())?;
    let mut back = [0u8; 4];
    match tokio::time::timeout(T, tls.read_exact(&mut back)).await {
        Ok(Ok(_)) if &back == b"mtls" => Ok(()),
        Ok(Ok(_)) => Err(format!("echoed {back:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// Mutual TLS on the listener (`--tls-client-ca`): clients without a certificate, or with one
/// from another CA, are refused and counted; when the client CA file rotates (a Secret update),
/// the new CA's clients get in and the old CA's no longer do, without a restart, and a
/// connection opened before the rotation stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_mutual_tls_follows_a_rotated_client_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (server_ca, old_ca, new_ca) = (
        make_ca("server ca"),
        make_ca("old client ca"),
        make_ca("new client ca"),
    );
    let (c, k, _) = leaf(
        &server_ca,
        &["app.test"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cert, key) = (write(d, "tls.crt", &c), write(d, "tls.key", &k));
    let client_ca = write(d, "ca.crt", &old_ca.pem);
    let old_client = leaf(&old_ca, &["app"], ExtendedKeyUsagePurpose::ClientAuth);
    let new_client = leaf(&new_ca, &["app"], ExtendedKeyUsagePurpose::ClientAuth);
    let (echo, _) = echo_server();
    let amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0={echo}"),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca,
            "--tls-reload-interval",
            "50ms",
        ],
        &[],
    );
    let addr = amb.listen(0);
    let try_client = |client| mtls_roundtrip(addr, &server_ca.pem, client);

    try_client(Some(&old_client))
        .await
        .expect("a client of the trusted CA gets through");
    let (mut open, _) = try_tls_client(addr, &server_ca.pem, Some(&old_client))
        .await
        .expect("handshake with a client certificate");
    assert_eq!(tls_roundtrip(&mut open, b"before").await, b"before");
    assert!(
        try_client(None).await.is_err(),
        "a client without a certificate got through"
    );
    assert!(
        try_client(Some(&new_client)).await.is_err(),
        "a client of an untrusted CA got through"
    );
    let refused = amb.metric(
        "ambassador_rejected_connections_total",
        &["reason=\"tls_handshake\""],
    );
    assert!(refused >= 2.0, "refusals counted: {refused}");

    swap(d, "ca.crt", &new_ca.pem);
    let deadline = std::time::Instant::now() + T;
    while try_client(Some(&new_client)).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated client CA was not used within {T:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        try_client(Some(&old_client)).await.is_err(),
        "the old CA's client still got through after the rotation"
    );
    assert_eq!(tls_roundtrip(&mut open, b"after").await, b"after");
    assert!(
        amb.metric(
            "ambassador_tls_reloads_total",
            &["certificate=\"listener_client_ca\"", "result=\"success\""]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_per_route_in_the_routes_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = make_ca("test ca");
    // A TLS upstream (origination on route 2) and a listener certificate (termination on route 1).
    let (up_cert, up_key, _) = leaf(
        &ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let up = tls_echo(
        &write(d, "up.crt", &up_cert),
        &write(d, "up.key", &up_key),
        None,
    )
    .await;
    let (c, k, der) = leaf(&ca, &["app.test"], ExtendedKeyUsagePurpose::ServerAuth);
    let (cert, key, ca_file) = (
        write(d, "tls.crt", &c),
        write(d, "tls.key", &k),
        write(d, "ca.pem", &ca.pem),
    );
    let (echo, _) = echo_server();
    let routes = write(
        d,
        "routes",
        &format!(
            "127.0.0.1:0={echo} tls-cert={cert} tls-key={key}\n\
             127.0.0.1:0=localhost:{} upstream-tls=true upstream-tls-ca={ca_file}\n\
             127.0.0.1:0={echo}\n",
            up.port()
        ),
    );
    let amb = Amb::spawn(&["--routes-file", &routes], &[]);
    let (terminating, originating, plain) = (amb.listen(0), amb.listen(1), amb.listen(2));

    let (mut s, seen) = tls_client(terminating, &ca.pem).await;
    assert_eq!(seen, der, "route 1 terminates TLS with its own certificate");
    assert_eq!(tls_roundtrip(&mut s, b"terminated").await, b"terminated");
    assert_eq!(
        plain_roundtrip(originating, b"originated")
            .await
            .expect("route 2 speaks TLS to its upstream"),
        b"originated"
    );
    assert_eq!(
        plain_roundtrip(plain, b"plain")
            .await
            .expect("route 3 is plain both sides"),
        b"plain"
    );
}
