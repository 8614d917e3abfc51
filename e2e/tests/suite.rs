//! The suite as a whole: the six static release binaries, and the six agents running at once on
//! their default admin ports (one pod's shared network namespace), then stopping on SIGTERM.
use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use e2e::{static_bin, AGENTS};
use testkit::{http_get, run_to_end, wait_until, AgentProcess};

const T: Duration = Duration::from_secs(30);

#[test]
fn release_binaries_are_static_and_answer_help_and_version() {
    for (agent, port) in AGENTS {
        let bin = static_bin(agent);
        let out = Command::new("file")
            .arg("-b")
            .arg(&bin)
            .output()
            .expect("file(1)");
        let kind = String::from_utf8_lossy(&out.stdout);
        assert!(
            kind.contains("statically linked") || kind.contains("static-pie linked"),
            "{agent} is not static: {kind}"
        );
        let (st, help, _) = run_to_end(
            {
                let mut c = Command::new(&bin);
                c.arg("--help");
                c
            },
            T,
        );
        assert!(st.success(), "{agent} --help failed");
        assert!(
            help.contains(&format!("[default: 0.0.0.0:{port}]")),
            "{agent} --help:\n{help}"
        );
        let (st, version, _) = run_to_end(
            {
                let mut c = Command::new(&bin);
                c.arg("--version");
                c
            },
            T,
        );
        assert!(st.success());
        assert!(
            version.starts_with(&format!("{agent} {} (commit ", env!("CARGO_PKG_VERSION"))),
            "{version}"
        );
        let size = std::fs::metadata(&bin).unwrap().len();
        eprintln!("{agent}: {size} bytes, {}", kind.trim());
    }
}

/// The smallest configuration each agent needs to start and keep running.
fn minimal_args(agent: &str, dir: &std::path::Path) -> Vec<String> {
    let d = |name: &str| {
        let p = dir.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    };
    match agent {
        "logship" => vec![
            "--path".into(),
            format!("{}/*.log", d("logs")),
            "--data-dir".into(),
            d("logship-data"),
        ],
        "log2json" => vec![
            "--path".into(),
            format!("{}/*.log", d("logs")),
            "--data-dir".into(),
            d("log2json-data"),
        ],
        "ambassador" => vec!["--route".into(), "127.0.0.1:0=127.0.0.1:5432".into()],
        "pgbackup" => vec![
            "--databases".into(),
            "test".into(),
            "--backup-dir".into(),
            d("backups"),
            "--schedule".into(),
            "0 3 * * *".into(),
        ],
        "reloader" => vec![
            "--watch".into(),
            d("config"),
            "--webhook-url".into(),
            "http://127.0.0.1:9/-/reload".into(),
        ],
        // An init container that waits for something that never comes, for as long as we need.
        "waitfor" => vec!["--timeout".into(), "10m".into(), "tcp://127.0.0.1:9".into()],
        _ => unreachable!(),
    }
}

#[test]
fn six_agents_run_at_once_on_their_default_ports_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut procs: Vec<(&str, u16, AgentProcess)> = AGENTS
        .iter()
        .map(|&(agent, port)| {
            let mut c = Command::new(testkit::cargo_bin(agent));
            c.args(minimal_args(agent, dir.path()))
                .env_remove("ADMIN_ADDR")
                .env("PGHOST", "127.0.0.1")
                .env("PGUSER", "postgres");
            (agent, port, AgentProcess::spawn(c))
        })
        .collect();
    for (agent, port, p) in &procs {
        let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
        assert_eq!(p.admin_addr().port(), *port, "{agent}");
        wait_until(T, &format!("{agent} /healthz"), || {
            http_get(addr, "/healthz").is_ok_and(|r| r.status == 200)
        });
        let ready = http_get(addr, "/readyz").unwrap();
        assert!(
            ready.status == 200 || ready.status == 503,
            "{agent} /readyz: {ready:?}"
        );
        let metrics = http_get(addr, "/metrics").unwrap();
        assert_eq!(metrics.status, 200, "{agent}");
        assert!(
            metrics.body.contains(&format!("{agent}_build_info{{")),
            "{agent}: {}",
            metrics.body
        );
    }
    for (_, _, p) in &procs {
        p.signal(libc::SIGTERM);
    }
    let start = Instant::now();
    for (agent, _, p) in &mut procs {
        let st = p.wait_exit(T);
        // waitfor is the one exception, by design: a wait cut short by SIGTERM exits 143, so a
        // script running `waitfor ... && app` never takes an interrupted wait for success.
        let expected = if *agent == "waitfor" {
            128 + libc::SIGTERM
        } else {
            0
        };
        assert_eq!(
            st.code(),
            Some(expected),
            "{agent} exit status after SIGTERM; stderr:\n{}",
            p.stderr()
        );
    }
    // The default --shutdown-timeout is 20s; idle agents drain at once.
    assert!(start.elapsed() < Duration::from_secs(20));
}
