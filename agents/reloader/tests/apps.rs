//! reloader with the real programs it reloads: nginx (Debian nginx-light) signalled by pid file
//! and by name, with `nginx -t` as validation, and Prometheus reloaded through `/-/reload`.
mod support;

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::*;

const NGINX: &str = "/usr/sbin/nginx";

fn need(program: &str) {
    assert!(
        Path::new(program).exists(),
        "{program} is missing: apt-get install -y nginx-light prometheus"
    );
}

/// nginx's main config answering `body` on `addr`, everything it writes under `run`.
fn nginx_conf(run: &Path, addr: SocketAddr, body: &str) -> String {
    let r = run.display();
    format!(
        "worker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {r}/body;\n  proxy_temp_path {r}/proxy;\n\
           fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  scgi_temp_path {r}/scgi;\n\
           server {{ listen {addr}; location / {{ default_type text/plain; return 200 \"{body}\"; }} }}\n}}\n"
    )
}

/// nginx in the foreground, stopped (master and workers) when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    fn start(binary: &Path, run: &Path, conf: &Path, addr: SocketAddr) -> Self {
        let child = Command::new(binary)
            .args([
                "-p",
                &format!("{}/", run.display()),
                "-e",
                &format!("{}/error.log", run.display()),
            ])
            .args(["-c", conf.to_str().unwrap(), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { child, addr };
        let log = run.join("error.log");
        wait_until(LONG, "nginx to answer", || {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!(
                    "nginx exited with {status}: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            http_get(addr, "/").is_ok_and(|r| r.status == 200)
        });
        wait_until(LONG, "nginx's pid file", || run.join("nginx.pid").exists());
        n
    }

    fn body(&self) -> String {
        body(self.addr, "/")
    }
}

impl Drop for Nginx {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; SIGTERM makes nginx stop its workers and exit.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let id = self.child.id();
        let child = &mut self.child;
        wait_until(
            Duration::from_secs(10),
            &format!("nginx {id} to exit"),
            || child.try_wait().ok().flatten().is_some(),
        );
    }
}

#[test]
fn nginx_reads_a_configmap_volume_and_reloads_on_sighup_by_pidfile_confirmed_over_http() {
    need(NGINX);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fs::create_dir(&run).unwrap();
    let addr = free_addr([127, 0, 0, 11]);
    let mut vol = Volume::configmap(
        &tmp.path().join("nginx-config"),
        &[("nginx.conf", &nginx_conf(&run, addr, "version-1"))],
    );
    let nginx = Nginx::start(Path::new(NGINX), &run, &vol.path("nginx.conf"), addr);
    assert_eq!(nginx.body(), "version-1");
    let pidfile = run.join("nginx.pid");
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--signal-pidfile",
        pidfile.to_str().unwrap(),
        "--confirm-url",
        &format!("http://{}/", nginx.addr),
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");

    vol.update(&[("nginx.conf", &nginx_conf(&run, addr, "version-2"))]);
    wait_until(LONG, "nginx to serve version-2", || {
        nginx.body() == "version-2"
    });
    wait_settled(admin, LONG);
    assert_eq!(
        metric(
            admin,
            r#"reloader_actions_total{action="signal",result="success"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(admin, r#"reloader_reloads_total{result="success"}"#),
        1.0
    );
}

#[test]
fn nginx_found_by_name_is_not_reloaded_with_a_config_nginx_t_rejects() {
    need(NGINX);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fs::create_dir(&run).unwrap();
    // A name no other nginx on this machine has: the kernel names the process after the link.
    let name = format!("rlngx{}", std::process::id() % 1_000_000);
    let binary: PathBuf = tmp.path().join(&name);
    std::os::unix::fs::symlink(NGINX, &binary).unwrap();
    let addr = free_addr([127, 0, 0, 12]);
    let mut vol = Volume::configmap(
        &tmp.path().join("source"),
        &[("nginx.conf", &nginx_conf(&run, addr, "version-1"))],
    );
    let conf_dir = tmp.path().join("conf");
    let conf = conf_dir.join("nginx.conf");
    let validate = format!(
        "{} -t -q -p {}/ -e {}/test-error.log -c {}",
        binary.display(),
        run.display(),
        run.display(),
        conf.display()
    );
    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--sync-to",
        conf_dir.to_str().unwrap(),
        "--validate-command",
        &validate,
        "--signal-process",
        &name,
    ]));
    let admin = p.wait_ready(LONG);
    // The start sync writes the config nginx is then started with (as an init step would).
    wait_until(LONG, "the start sync", || conf.exists());
    let nginx = Nginx::start(&binary, &run, &conf, addr);
    p.wait_for_message(LONG, "watching");

    // A config nginx -t refuses: reload skipped, the synced file put back, nginx unchanged.
    vol.update(&[("nginx.conf", "this is not an nginx config;")]);
    wait_metric(
        admin,
        r#"reloader_reloads_total{result="rejected"}"#,
        1.0,
        LONG,
    );
    assert_eq!(
        metric(
            admin,
            r#"reloader_actions_total{action="validate",result="failure"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            admin,
            r#"reloader_actions_total{action="signal",result="success"}"#
        ),
        0.0
    );
    assert!(fs::read_to_string(&conf).unwrap().contains("version-1"));
    assert_eq!(nginx.body(), "version-1");
    let line = p.wait_for_message(
        LONG,
        "validation failed; reload skipped, running config left in place",
    );
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("unknown directive"),
        "{line}"
    );

    // A good one: validated, synced, the master (not its worker) signalled.
    vol.update(&[("nginx.conf", &nginx_conf(&run, addr, "version-3"))]);
    wait_until(LONG, "nginx to serve version-3", || {
        nginx.body() == "version-3"
    });
    wait_settled(admin, LONG);
    assert_eq!(
        metric(
            admin,
            r#"reloader_actions_total{action="signal",result="success"}"#
        ),
        1.0
    );
    let signalled = p.wait_for_message(LONG, "action succeeded");
    assert!(signalled.to_string().contains("sync"), "{signalled}");
}

#[test]
fn prometheus_reloads_through_its_lifecycle_webhook() {
    need("/usr/bin/prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let prom_conf = |job: &str| {
        format!("global:\n  scrape_interval: 1m\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")
    };
    let mut vol = Volume::configmap(
        &tmp.path().join("prometheus-config"),
        &[("prometheus.yml", &prom_conf("job-v1"))],
    );
    let addr = free_addr([127, 0, 0, 13]);
    let mut prom = Command::new("/usr/bin/prometheus")
        .arg(format!(
            "--config.file={}",
            vol.path("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .args(["--web.enable-lifecycle", "--log.level=warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut prom);
    wait_until(Duration::from_secs(60), "prometheus to be ready", || {
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("prometheus exited with {status}");
        }
        http_get(addr, "/-/ready").is_ok_and(|r| r.status == 200)
    });
    let config = http_get(addr, "/api/v1/status/config");
    assert!(
        config.as_ref().is_ok_and(|r| r.body.contains("job-v1")),
        "{config:?}"
    );

    let p = AgentProcess::spawn(reloader(&[
        "--watch",
        vol.dir.to_str().unwrap(),
        "--webhook-url",
        &format!("http://{addr}/-/reload"),
    ]));
    let admin = p.wait_ready(LONG);
    p.wait_for_message(LONG, "watching");
    vol.update(&[("prometheus.yml", &prom_conf("job-v2"))]);
    wait_until(LONG, "prometheus to load job-v2", || {
        body(addr, "/api/v1/status/config").contains("job-v2")
    });
    wait_settled(admin, LONG);
    assert_eq!(
        metric(
            admin,
            r#"reloader_actions_total{action="webhook",result="success"}"#
        ),
        1.0
    );
    let prom_metrics = body(addr, "/metrics");
    assert!(
        prom_metrics.contains("prometheus_config_last_reload_successful 1"),
        "{prom_metrics}"
    );
}
