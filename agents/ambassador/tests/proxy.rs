//! The ambassador relaying plain TCP between real sockets on loopback: bytes, half-close,
//! resets, health and ejection, re-resolution, limits, the PROXY header, shutdown.
mod support;

use std::{
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{atomic::Ordering, mpsc},
    time::Duration,
};

use support::*;
use testkit::wait_until;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn echo_roundtrip_checks(splice: &str) {
    let (echo, _) = echo_server();
    let route = format!("127.0.0.1:0={echo}");
    let amb = Amb::spawn(
        &[
            "--route",
            &route,
            "--splice",
            splice,
            "--access-log",
            "true",
        ],
        &[],
    );
    let addr = amb.listen(0);
    // 4 MiB each way, written while reading (no deadlock, nothing lost or reordered).
    let data = pattern(4 << 20);
    let mut s = connect(addr);
    let mut w = s.try_clone().expect("clone");
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&d2).expect("write");
        w.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read to EOF");
    writer.join().expect("writer");
    assert!(
        back == data,
        "echoed bytes differ ({} of {} bytes)",
        back.len(),
        data.len()
    );
    let line = amb.proc.wait_for_message(T, "connection closed");
    assert_eq!(line["reason"], "done", "{line}");
    let engine = if splice == "true" {
        "splice"
    } else {
        "buffered"
    };
    assert_eq!(line["engine"], engine, "{line}");
    assert_eq!(line["bytes_to_upstream"], 4 << 20, "{line}");
    let r = format!("route=\"{}\"", "127.0.0.1:0");
    wait_until(T, "byte counters", || {
        amb.metric("ambassador_transferred_bytes_total", &[&r, "to_client"]) == (4 << 20) as f64
    });
    assert_eq!(amb.metric("ambassador_connections_total", &[&r]), 1.0);
    assert_eq!(amb.ready_status(), 200);
}

#[test]
fn echo_with_splice_keeps_every_byte() {
    echo_roundtrip_checks("true");
}

#[test]
fn echo_with_buffers_keeps_every_byte() {
    echo_roundtrip_checks("false");
}

#[test]
fn half_close_both_ways_with_socat_as_client() {
    // The server answers only after the client's EOF, then closes.
    let (up, _) = serve_with(|mut s| {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let _ = writeln!(s, "got {} bytes", all.len());
    });
    let amb = Amb::spawn(&["--route", &format!("127.0.0.1:0={up}")], &[]);
    let addr = amb.listen(0);
    let mut child = Command::new("socat")
        .args(["-t", "10", "-", &format!("TCP:{addr}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("socat (apt package socat)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&[b'x'; 1000])
        .expect("write");
    // stdin dropped: socat half-closes the connection and waits for the answer.
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert_eq!(out, "got 1000 bytes\n");
    assert!(child.wait().expect("socat").success());

    // The other way: the upstream half-closes first, the client keeps sending.
    let (tx, rx) = mpsc::channel();
    let (up2, _) = serve_with(move |mut s| {
        s.write_all(b"hello").expect("greet");
        s.shutdown(Shutdown::Write).expect("half-close");
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let _ = tx.send(all.len());
    });
    let amb2 = Amb::spawn(&["--route", &format!("127.0.0.1:0={up2}")], &[]);
    let mut c = connect(amb2.listen(0));
    let mut got = Vec::new();
    c.read_to_end(&mut got)
        .expect("EOF from the upstream's half-close");
    assert_eq!(got, b"hello");
    c.write_all(&[1u8; 50_000])
        .expect("still writable after the peer's half-close");
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(rx.recv_timeout(T).expect("upstream read to EOF"), 50_000);
}

#[test]
fn resets_propagate_both_ways() {
    // Upstream sends a little, then dies with a reset.
    let (up, _) = serve_with(|mut s| {
        let _ = s.write_all(b"partial");
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
    });
    let amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0={up}"),
            "--access-log",
            "true",
        ],
        &[],
    );
    let addr = amb.listen(0);
    let mut c = connect(addr);
    let mut got = [0u8; 7];
    c.read_exact(&mut got).expect("bytes before the reset");
    assert_eq!(&got, b"partial");
    c.write_all(b"k").expect("trigger");
    let mut rest = Vec::new();
    let err = c
        .read_to_end(&mut rest)
        .expect_err("the upstream's reset reaches the client");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let line = amb.proc.wait_for_message(T, "connection closed");
    assert_eq!(line["reason"], "upstream_error", "{line}");

    // Client resets: the upstream sees a reset too.
    let (tx, rx) = mpsc::channel();
    let (up2, _) = serve_with(move |mut s| {
        s.set_read_timeout(Some(T)).expect("timeout");
        let mut all = Vec::new();
        let _ = tx.send(s.read_to_end(&mut all).map_err(|e| e.kind()));
    });
    let amb2 = Amb::spawn(&["--route", &format!("127.0.0.1:0={up2}")], &[]);
    let c = connect(amb2.listen(0));
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(c);
    assert_eq!(
        rx.recv_timeout(T).expect("upstream result"),
        Err(ErrorKind::ConnectionReset)
    );
}

#[test]
fn server_speaks_first_mariadb_greeting() {
    let amb = Amb::spawn(&["--route", "127.0.0.1:0=127.0.0.1:3306"], &[]);
    let mut c = connect(amb.listen(0));
    // Never write: the greeting must arrive on its own.
    let mut head = [0u8; 5];
    c.read_exact(&mut head)
        .expect("MariaDB greeting through the proxy");
    assert_eq!(head[4], 10, "protocol version 10 handshake");
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut body = vec![0u8; len - 1];
    c.read_exact(&mut body).expect("rest of the greeting");
    let version = String::from_utf8_lossy(&body[..body.iter().position(|&b| b == 0).unwrap_or(0)])
        .to_string();
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version}"
    );
}

#[test]
fn redis_ping_set_get() {
    let amb = Amb::spawn(
        &[],
        &[
            ("UPSTREAM_HOST", "127.0.0.1"),
            ("UPSTREAM_PORT", "6379"),
            ("AMBASSADOR_LISTEN", "127.0.0.1:0"),
        ],
    );
    let c = connect(amb.listen(0));
    let mut r = BufReader::new(c.try_clone().expect("clone"));
    let mut w = c;
    let mut cmd = |parts: &[&str]| -> String {
        let mut m = format!("*{}\r\n", parts.len());
        for p in parts {
            m.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        w.write_all(m.as_bytes()).expect("write");
        let mut line = String::new();
        r.read_line(&mut line).expect("answer");
        if let Some(n) = line
            .strip_prefix('$')
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            let mut v = vec![0u8; n + 2];
            r.read_exact(&mut v).expect("bulk");
            return String::from_utf8_lossy(&v[..n]).into_owned();
        }
        line.trim_end().to_string()
    };
    assert_eq!(cmd(&["PING"]), "+PONG");
    let key = format!("ambassador-test-{}", std::process::id());
    assert_eq!(cmd(&["SET", &key, "through the proxy"]), "+OK");
    assert_eq!(cmd(&["GET", &key]), "through the proxy");
    assert_eq!(cmd(&["DEL", &key]), ":1");
}

#[test]
fn refusing_upstream_is_ejected_then_readmitted() {
    let port = dead_port();
    let (echo, _) = echo_server();
    let route = format!("127.0.0.1:0=127.0.0.1:{port},{echo}");
    let amb = Amb::spawn(
        &[
            "--route",
            &route,
            "--eject-after",
            "2",
            "--eject-cooldown",
            "300ms",
        ],
        &[],
    );
    let addr = amb.listen(0);
    // Every connection works: a refused connect moves on to the next upstream.
    for i in 0..6u8 {
        let mut c = connect(addr);
        assert_eq!(roundtrip(&mut c, &[i; 10]), [i; 10]);
    }
    let dead = format!("upstream=\"127.0.0.1:{port}\"");
    assert!(amb.metric("ambassador_ejections_total", &[&dead]) >= 1.0);
    assert!(
        amb.metric(
            "ambassador_connect_errors_total",
            &[&dead, "reason=\"refused\""]
        ) >= 2.0
    );
    amb.proc
        .wait_for_message(T, "upstream ejected after failed connects");
    // The upstream comes back: after its cool-down it gets connections again.
    let l = TcpListener::bind(("127.0.0.1", port)).expect("rebind the dead port");
    let (_, revived) = serve_listener(l, |mut s| {
        let mut b = [0u8; 64];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 || s.write_all(&b[..n]).is_err() {
                break;
            }
        }
    });
    wait_until(T, "the revived upstream to get a connection", || {
        let mut c = connect(addr);
        assert_eq!(roundtrip(&mut c, b"ping"), b"ping");
        revived.load(Ordering::SeqCst) > 0
    });
    amb.proc.wait_for_message(T, "upstream back in rotation");
    assert_eq!(amb.ready_status(), 200);
}

/// An upstream whose connects hang (its accept queue is full, so the kernel drops the SYNs)
/// costs one connect timeout, then the next upstream serves the connection.
#[test]
fn a_connect_that_hangs_times_out_then_the_next_upstream_serves() {
    let full =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    full.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    full.listen(0).expect("listen");
    let hung = full
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    // One connection that is never accepted fills the queue.
    let _filler = TcpStream::connect(hung).expect("the one queued connection");
    let (echo, _) = echo_server();
    let route = format!("127.0.0.1:0={hung},{echo}");
    let amb = Amb::spawn(&["--route", &route, "--connect-timeout", "300ms"], &[]);
    let addr = amb.listen(0);
    // Round robin starts at the first upstream: the hanging one.
    let started = std::time::Instant::now();
    let mut c = connect(addr);
    assert_eq!(roundtrip(&mut c, b"ping"), b"ping");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served before the connect timeout: the hanging upstream was not tried first"
    );
    let up = format!("upstream=\"{hung}\"");
    assert_eq!(
        amb.metric(
            "ambassador_connect_errors_total",
            &[&up, "reason=\"timeout\""]
        ),
        1.0
    );
}

/// Out of file descriptors (a 64-descriptor limit, more clients than it allows): the agent
/// neither dies nor spins, and serves again once the clients are gone.
#[test]
fn out_of_file_descriptors_then_serves_again() {
    let (echo, _) = echo_server();
    let route = format!("127.0.0.1:0={echo}");
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=64:64", "--", env!("CARGO_BIN_EXE_ambassador")])
        .args(["--admin-addr", "127.0.0.1:0", "--log-level", "info"])
        .args(["--route", &route, "--workers", "2"]);
    let proc = testkit::AgentProcess::spawn(cmd);
    let admin = proc.admin_addr();
    let amb = Amb { proc, admin };
    let addr = amb.listen(0);
    // Each proxied connection takes two descriptors: 60 clients are more than the limit allows.
    // (Which ones get served is up to the race between the two loops for the last descriptors.)
    let clients: Vec<TcpStream> = (0..60).map(|_| connect(addr)).collect();
    // Out of descriptors at accept (a warning, then a pause) or at the upstream socket (the
    // client turned away as "no_descriptors"), whichever came first.
    amb.proc
        .wait_for_log(T, "the agent out of descriptors", |l| {
            l.contains("Too many open files") || l.contains("no_descriptors")
        });
    drop(clients);
    wait_until(T, "a new connection served after the others closed", || {
        let mut c = connect(addr);
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        c.write_all(b"again").is_ok() && {
            let mut back = [0u8; 5];
            c.read_exact(&mut back).is_ok() && &back == b"again"
        }
    });
    assert_eq!(amb.ready_status(), 200);
    // Running out of descriptors was not the upstream's fault.
    assert_eq!(amb.metric("ambassador_connect_errors_total", &[]), 0.0);
    assert_eq!(amb.metric("ambassador_ejections_total", &[]), 0.0);
}

/// `/readyz` turns 503 while every upstream is ejected, and 200 again when the cool-down ends,
/// with no traffic in between (no connection has to fail or succeed for it to be seen).
#[test]
fn not_ready_while_every_upstream_is_ejected() {
    let port = dead_port();
    let amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0=127.0.0.1:{port}"),
            "--eject-after",
            "1",
            "--eject-cooldown",
            "3s",
        ],
        &[],
    );
    let addr = amb.listen(0);
    wait_until(T, "ready before any failure", || amb.ready_status() == 200);
    let mut c = connect(addr);
    let mut b = Vec::new();
    // No upstream: the client is closed.
    let _ = c.read_to_end(&mut b);
    assert!(b.is_empty());
    wait_until(T, "/readyz to turn 503", || amb.ready_status() == 503);
    assert_eq!(
        amb.metric(
            "ambassador_rejected_connections_total",
            &["reason=\"no_upstream\""]
        ),
        1.0
    );
    assert_eq!(amb.metric("ambassador_upstream_healthy", &[]), 0.0);
    wait_until(T, "/readyz to turn 200 once the cool-down ends", || {
        amb.ready_status() == 200
    });
    assert_eq!(amb.metric("ambassador_upstream_healthy", &[]), 1.0);
}

#[test]
fn follows_a_name_whose_address_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    let a = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let port = a.local_addr().expect("addr").port();
    let b = TcpListener::bind(("127.0.0.3", port)).expect("bind 127.0.0.3 on the same port");
    serve_listener(a, |mut s| drop(s.write_all(b"A")));
    serve_listener(b, |mut s| drop(s.write_all(b"B")));
    std::fs::write(&hosts, "127.0.0.2 moving.test\n").expect("hosts");
    let route = format!("127.0.0.1:0=moving.test:{port}");
    let amb = Amb::spawn(
        &["--route", &route, "--dns-ttl", "100ms"],
        &[("AMBASSADOR_HOSTS_FILE", hosts.to_str().expect("utf8"))],
    );
    let addr = amb.listen(0);
    let who = || {
        let mut c = connect(addr);
        let mut v = Vec::new();
        let _ = c.read_to_end(&mut v);
        v
    };
    assert_eq!(who(), b"A");
    let tmp = dir.path().join("hosts.new");
    std::fs::write(&tmp, "127.0.0.3 moving.test\n").expect("hosts");
    std::fs::rename(&tmp, &hosts).expect("swap");
    wait_until(T, "connections to reach the new address", || who() == b"B");
    amb.proc.wait_for_message(T, "upstream addresses changed");
}

/// `--on-limit refuse`; `wait` is [`connection_queue`]'s.
#[test]
fn connection_limit_refuses() {
    let (echo, _) = echo_server();
    let route = format!("127.0.0.1:0={echo}");
    let amb = Amb::spawn(
        &[
            "--route",
            &route,
            "--max-connections",
            "1",
            "--on-limit",
            "refuse",
        ],
        &[],
    );
    let addr = amb.listen(0);
    let mut first = connect(addr);
    assert_eq!(roundtrip(&mut first, b"one"), b"one");
    let mut second = connect(addr);
    let mut b = Vec::new();
    let _ = second.read_to_end(&mut b);
    assert!(b.is_empty(), "over the limit: closed");
    assert_eq!(
        amb.metric(
            "ambassador_rejected_connections_total",
            &["reason=\"limit\""]
        ),
        1.0
    );
    drop(first);
}

/// Plain TCP (the epoll loops): the queue of `--on-limit wait` (the default).
#[test]
fn waiting_connections_time_out_or_leave() {
    let (echo, _) = echo_server();
    let route = format!("127.0.0.1:0={echo}");
    let amb = Amb::spawn(
        &[
            "--route",
            &route,
            "--max-connections",
            "1",
            "--queue-timeout",
            QUEUE_TIMEOUT,
        ],
        &[],
    );
    connection_queue(&amb, amb.listen(0));
}

#[test]
fn proxy_protocol_v1_header_first() {
    let (tx, rx) = mpsc::channel();
    let (up, _) = serve_with(move |s| {
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        let _ = tx.send(line);
    });
    let amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0={up}"),
            "--proxy-protocol",
            "v1",
        ],
        &[],
    );
    let addr = amb.listen(0);
    let c = connect(addr);
    let local = c.local_addr().expect("addr");
    let line = rx.recv_timeout(T).expect("header");
    assert_eq!(
        line,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            local.port(),
            addr.port()
        )
    );
}

#[test]
fn a_thousand_concurrent_connections() {
    let (echo, _) = echo_server();
    let amb = Amb::spawn(&["--route", &format!("127.0.0.1:0={echo}")], &[]);
    let addr = amb.listen(0);
    let started = std::time::Instant::now();
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(&(i as u32).to_be_bytes()).expect("write");
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut b = [0u8; 4];
        c.read_exact(&mut b).expect("echo");
        assert_eq!(u32::from_be_bytes(b), i as u32);
    }
    wait_until(T, "1000 active connections", || {
        amb.metric("ambassador_connections_active", &[]) == 1000.0
    });
    drop(conns);
    wait_until(T, "0 active connections", || {
        amb.metric("ambassador_connections_active", &[]) == 0.0
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn sigterm_drains_then_closes_and_exits_zero() {
    let (echo, _) = echo_server();
    let mut amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0={echo}"),
            "--shutdown-timeout",
            "3s",
        ],
        &[],
    );
    let addr = amb.listen(0);
    let mut a = connect(addr);
    let mut b = connect(addr);
    assert_eq!(roundtrip(&mut a, b"a"), b"a");
    assert_eq!(roundtrip(&mut b, b"b"), b"b");
    amb.proc.signal(libc::SIGTERM);
    amb.proc.wait_for_message(
        T,
        "listeners closed; waiting for open connections to finish",
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "no new connections"
    );
    assert_ne!(amb.ready_status(), 200);
    // Open connections keep working during the drain.
    assert_eq!(roundtrip(&mut a, b"still"), b"still");
    drop(a);
    // b stays open: closed at the deadline, and the process exits 0.
    let status = amb.proc.wait_exit(T);
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    let _ = b.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn bad_configuration_exits_2_naming_the_option() {
    for (args, needle) in [
        (vec!["--route", "127.0.0.1:1"], "--route"),
        (vec!["--route", "127.0.0.1:1=db"], "expected HOST:PORT"),
        (
            vec!["--route", "127.0.0.1:1=db:1", "--buffer-size", "10"],
            "--buffer-size",
        ),
        (vec![], "no route"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ambassador"));
        cmd.args(&args)
            .env_remove("UPSTREAM_HOST")
            .env_remove("UPSTREAM_PORT");
        let (status, _, err) = testkit::run_to_end(cmd, T);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn postgres_queries_through_the_proxy() {
    let amb = Amb::spawn(&["--route", "127.0.0.1:0=localhost:5432"], &[]);
    let addr = amb.listen(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let conn_str = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            addr.port()
        );
        let (client, conn) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
            .await
            .expect("connect through the proxy");
        let task = tokio::spawn(conn);
        let row = client
            .query_one("select $1::int4 + 1, current_user", &[&41i32])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(0), 42);
        assert_eq!(row.get::<_, String>(1), "postgres");
        // A larger answer, to move more than one buffer's worth.
        let rows = client
            .query(
                "select repeat('x', 1000) from generate_series(1, 2000)",
                &[],
            )
            .await
            .expect("query");
        assert_eq!(rows.len(), 2000);
        drop(client);
        let _ = task.await;
    });
}

#[test]
fn drain_delay_keeps_accepting_after_sigterm() {
    let (echo, _) = echo_server();
    let mut amb = Amb::spawn(
        &[
            "--route",
            &format!("127.0.0.1:0={echo}"),
            "--drain-delay",
            "5s",
            "--shutdown-timeout",
            "10s",
        ],
        &[],
    );
    let addr = amb.listen(0);
    amb.proc.signal(libc::SIGTERM);
    amb.proc
        .wait_for_message(T, "still accepting connections during the drain delay");
    let mut c = connect(addr);
    assert_eq!(
        roundtrip(&mut c, b"late"),
        b"late",
        "a new connection during the delay works"
    );
    drop(c);
    amb.proc.wait_for_message(
        T,
        "listeners closed; waiting for open connections to finish",
    );
    assert!(amb.proc.wait_exit(T).success());
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

fn backpressure_with(splice: &str) {
    const TOTAL: usize = 128 << 20;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w2 = written.clone();
    let (tx, rx) = mpsc::channel();
    let (up, _) = serve_with(move |mut s| {
        let chunk = vec![0x5au8; 64 << 10];
        let mut sent = 0;
        while sent < TOTAL {
            if s.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len();
            w2.store(sent, Ordering::SeqCst);
        }
        let _ = tx.send(());
    });
    let amb = Amb::spawn(
        &["--route", &format!("127.0.0.1:0={up}"), "--splice", splice],
        &[],
    );
    let addr = amb.listen(0);
    let base = rss_bytes(amb.proc.pid());
    let mut c = connect(addr);
    // The client reads nothing: the upstream must stall once the socket buffers are full.
    wait_until(T, "the upstream to start sending", || {
        written.load(Ordering::SeqCst) >= 1 << 20
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the whole stream was absorbed while nobody read"
    );
    let grown = rss_bytes(amb.proc.pid()).saturating_sub(base);
    assert!(
        grown < 16 << 20,
        "the proxy grew by {grown} bytes while the client did not read"
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < TOTAL {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "EOF after {got} bytes");
        assert!(buf[..n].iter().all(|&b| b == 0x5a));
        got += n;
    }
    rx.recv_timeout(T)
        .expect("the upstream finished once the client read");
}

#[test]
fn slow_reader_applies_backpressure_with_splice() {
    backpressure_with("true");
}

#[test]
fn slow_reader_applies_backpressure_with_buffers() {
    backpressure_with("false");
}

#[test]
fn byte_counters_move_while_the_connection_is_open() {
    for splice in ["true", "false"] {
        let (echo, _) = echo_server();
        let amb = Amb::spawn(
            &[
                "--route",
                &format!("127.0.0.1:0={echo}"),
                "--splice",
                splice,
            ],
            &[],
        );
        let mut s = connect(amb.listen(0));
        // Small messages (buffered path), then a bulk one (splice path when on).
        for _ in 0..10 {
            assert_eq!(roundtrip(&mut s, b"ping"), b"ping");
        }
        let bulk = pattern(1 << 20);
        let mut w = s.try_clone().expect("clone");
        let b2 = bulk.clone();
        let writer = std::thread::spawn(move || w.write_all(&b2).expect("write"));
        let mut back = vec![0u8; bulk.len()];
        s.read_exact(&mut back).expect("read echo");
        writer.join().expect("writer");
        assert!(back == bulk, "echoed bytes differ");
        let want = (40 + (1 << 20)) as f64;
        wait_until(T, "byte counters of an open connection", || {
            amb.metric("ambassador_transferred_bytes_total", &["to_upstream"]) == want
                && amb.metric("ambassador_transferred_bytes_total", &["to_client"]) == want
        });
        assert_eq!(
            amb.metric("ambassador_connections_active", &[]),
            1.0,
            "still open"
        );
    }
}

#[test]
fn routes_file_options_apply_per_route() {
    let (echo, _) = echo_server();
    let (tx, rx) = mpsc::channel();
    let (header_up, _) = serve_with(move |s| {
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        let _ = tx.send(line);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("routes");
    std::fs::write(
        &file,
        format!(
            "# a limited route and one that sends a PROXY header\n\
             127.0.0.1:0={echo} max-connections=1 on-limit=refuse\n\
             127.0.0.1:0={header_up} proxy-protocol=v1 # only this one\n"
        ),
    )
    .expect("write routes");
    let amb = Amb::spawn(&["--routes-file", file.to_str().expect("utf-8")], &[]);
    let (limited, with_header) = (amb.listen(0), amb.listen(1));

    // Route 1: no PROXY header (the echo returns exactly our bytes), one connection at most.
    let mut first = connect(limited);
    assert_eq!(roundtrip(&mut first, b"hello"), b"hello");
    let mut second = connect(limited);
    let mut b = Vec::new();
    let _ = second.read_to_end(&mut b);
    assert!(b.is_empty(), "over the route's limit: closed");
    let r = format!("route=\"{}\"", "127.0.0.1:0");
    assert_eq!(
        amb.metric(
            "ambassador_rejected_connections_total",
            &[&r, "reason=\"limit\""]
        ),
        1.0
    );

    // Route 2: a PROXY v1 header first, and no limit (two connections at once).
    let _both_open = [connect(with_header), connect(with_header)];
    for _ in 0..2 {
        let line = rx.recv_timeout(T).expect("header");
        assert!(
            line.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 "),
            "{line}"
        );
    }
    drop(first);
}

#[test]
fn relays_with_one_or_several_event_loops() {
    for workers in ["1", "3"] {
        let (echo, _) = echo_server();
        let amb = Amb::spawn(
            &[
                "--route",
                &format!("127.0.0.1:0={echo}"),
                "--workers",
                workers,
            ],
            &[],
        );
        let addr = amb.listen(0);
        // Several connections open at once, whichever loop accepted each.
        let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
        for (i, c) in conns.iter_mut().enumerate() {
            let msg = format!("workers {workers} conn {i}");
            assert_eq!(roundtrip(c, msg.as_bytes()), msg.as_bytes());
        }
        let r = format!("route=\"{}\"", "127.0.0.1:0");
        wait_until(T, "all 20 counted", || {
            amb.metric("ambassador_connections_active", &[&r]) == 20.0
        });
    }
}

#[test]
fn an_address_in_use_is_an_error_even_for_a_second_ambassador() {
    // The event loops' listeners share their address (SO_REUSEPORT); another process on it,
    // a second ambassador included, is still refused.
    let (echo, _) = echo_server();
    let amb = Amb::spawn(
        &["--route", &format!("127.0.0.1:0={echo}"), "--workers", "2"],
        &[],
    );
    let taken_by_amb = amb.listen(0);
    let other = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_by_other = other.local_addr().expect("addr");
    for addr in [taken_by_amb, taken_by_other] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ambassador"));
        cmd.args(["--admin-addr", "none", "--route", &format!("{addr}={echo}")])
            .env_remove("UPSTREAM_HOST")
            .env_remove("UPSTREAM_PORT")
            .env_remove("AMBASSADOR_ROUTES");
        let (status, _, err) = testkit::run_to_end(cmd, T);
        assert!(!status.success(), "{addr}: {err}");
        assert!(
            err.contains(&format!("cannot listen on {addr}")),
            "{addr}: {err}"
        );
    }
    // The first one still relays.
    let mut c = connect(taken_by_amb);
    assert_eq!(roundtrip(&mut c, b"still here"), b"still here");
}
