//! Pods run for real with `podman kube play`, from test copies of the `k8s-examples/` specs,
//! and the tests check outcomes, not just that containers started:
//!
//! - the log collection pod's lines arrive at the `_bulk` endpoint, each exactly once (logship,
//!   against `testkit::fake_es`);
//! - the dependency-wait init container holds the app until PostgreSQL answers (waitfor);
//! - the ambassador pod's app reaches PostgreSQL through localhost (ambassador); in the Job
//!   form the app then stops the sidecar with `POST /quitquitquit`, and the pod completes;
//! - the config reloader pod's nginx serves the new config after a kubelet-style `..data`
//!   swap on the shared volume (reloader, shared process namespace, SIGHUP);
//! - the SSL termination proxy pod serves the app over TLS with a certificate from a volume
//!   (ambassador terminating TLS);
//! - the backup sidecar writes a complete backup of the real PostgreSQL (pgbackup).
//!
//! Also: every image is non-root, labelled, has the binary as entrypoint and runs read-only.
//!
//! The copies differ from the examples only where this machine needs it: local images
//! (`localhost/podmates/<name>:latest`, built by `scripts/build-images.sh`), `hostNetwork: true`
//! so the pods reach the test's peers on the host's loopback (all traffic stays on 127.0.0.1),
//! free ports for every listener, and hostPath volumes the test can see. Each test is
//! independent: its own pod, named after the test and the process, removed at the end even when
//! the test fails (a guard's Drop), with every container's log printed on failure.
use std::{
    io::Read,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    thread,
    time::Duration,
};

use e2e::{static_bin, workspace_root, AGENTS};
use serde_json::Value;
use testkit::{
    fake_es::{Doc, FakeEs},
    http_get, wait_until,
};

/// Where the tests' images live: scripts/build-images.sh's prefix (`PODMATES_IMAGE_PREFIX`,
/// default `localhost/podmates`).
fn prefix() -> String {
    std::env::var("PODMATES_IMAGE_PREFIX").unwrap_or_else(|_| "localhost/podmates".into())
}

/// PostgreSQL on this machine (trust auth).
const POSTGRES: &str = "127.0.0.1:5432";

fn image(name: &str) -> String {
    format!("{}/{name}:latest", prefix())
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman ({e}): run scripts/setup-podman.sh"))
}

/// Builds the images once per test process; the script's lock and input stamp make the calls
/// from the other test processes cheap. The agents' binaries must exist (README's test command
/// builds them with scripts/build-static.sh); the script builds demo-app if it is missing.
fn ensure_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        for (agent, _) in AGENTS {
            static_bin(agent);
        }
        let out = Command::new(workspace_root().join("scripts/build-images.sh"))
            .env("PODMATES_NO_CARGO", "1")
            .output()
            .expect("run scripts/build-images.sh");
        assert!(
            out.status.success(),
            "scripts/build-images.sh failed (run scripts/setup-podman.sh first):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A free TCP port on 127.0.0.1 (the pods share the host's network).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// [`wait_until`] for conditions that run podman: each check costs a process, so check every
/// 200 ms rather than every 10 ms (the machine's two cores are shared with the other tests).
fn poll_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let mut first = true;
    wait_until(timeout, what, || {
        if !std::mem::take(&mut first) {
            thread::sleep(Duration::from_millis(200));
        }
        cond()
    });
}

/// The securityContext of every container: the examples' restrictive one.
const LOCKED_DOWN: &str = "
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: [\"ALL\"]";

/// A pod started with `podman kube play`, removed on drop.
struct Pod {
    name: String,
    /// Where pod.yaml is (kept until the pod is gone).
    _dir: tempfile::TempDir,
    play: Option<Child>,
}

impl Pod {
    /// Writes `yaml` into a fresh temp dir (holding nothing named like an image, so kube play
    /// builds nothing) and starts `podman kube play` on it without waiting: with init containers
    /// it returns only once they have completed.
    fn play(name: &str, yaml: &str) -> Pod {
        ensure_images();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pod.yaml"), yaml).expect("write pod.yaml");
        let _ = podman(&["pod", "rm", "-f", "-t", "0", name]);
        let play = Command::new("podman")
            .args(["kube", "play", "pod.yaml"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run podman kube play");
        Pod {
            name: name.to_string(),
            _dir: dir,
            play: Some(play),
        }
    }

    /// Waits for `podman kube play` to finish and asserts it succeeded.
    fn wait_played(&mut self, timeout: Duration) {
        let Some(mut child) = self.play.take() else {
            return;
        };
        let status = testkit::wait_for(timeout, "podman kube play to finish", || {
            child.try_wait().expect("try_wait")
        });
        let mut out = String::new();
        let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
        let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut out));
        assert!(status.success(), "podman kube play failed: {out}");
    }

    /// Whether `podman kube play` is still running (init containers not done).
    fn still_playing(&mut self) -> bool {
        self.play
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    fn container(&self, c: &str) -> String {
        format!("{}-{}", self.name, c)
    }

    /// The container's state (`created`, `running`, `exited`, ...), None before it exists.
    fn state(&self, c: &str) -> Option<String> {
        let out = podman(&[
            "inspect",
            "--format",
            "{{.State.Status}}",
            &self.container(c),
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn inspect(&self, c: &str, format: &str) -> String {
        let out = podman(&["inspect", "--format", format, &self.container(c)]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The container's stdout and stderr so far.
    fn logs(&self, c: &str) -> String {
        let out = podman(&["logs", &self.container(c)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn wait_running(&self, c: &str, timeout: Duration) {
        poll_until(timeout, &format!("container {c} to run"), || {
            self.state(c).as_deref() == Some("running")
        });
    }

    fn wait_log(&self, c: &str, needle: &str, timeout: Duration) {
        poll_until(timeout, &format!("{needle:?} in the logs of {c}"), || {
            self.logs(c).contains(needle)
        });
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if thread::panicking() {
            let out = podman(&[
                "ps",
                "-a",
                "--filter",
                &format!("pod={}", self.name),
                "--format",
                "{{.Names}}",
            ]);
            for c in String::from_utf8_lossy(&out.stdout).lines() {
                if c.ends_with("-infra") {
                    continue;
                }
                let logs = podman(&["logs", c]);
                eprintln!(
                    "---- logs of {c} ----\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
        }
        if let Some(mut child) = self.play.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = podman(&["pod", "rm", "-f", "-t", "0", &self.name]);
    }
}

fn pod_name(test: &str) -> String {
    format!("pm-{test}-{}", std::process::id())
}

/// A TCP listener on 127.0.0.1 that forwards to `upstream` once `forward` is set; before that
/// it accepts and closes at once (an open port, but no database). Counts connections.
struct Gate {
    forward: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
}

impl Gate {
    fn start(listener: TcpListener, upstream: &'static str) -> Gate {
        let forward = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (f, a, fw) = (forward.clone(), accepted.clone(), forwarded.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                if !f.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                fw.fetch_add(1, Ordering::SeqCst);
                pipe(client, server);
            }
        });
        Gate {
            forward,
            accepted,
            forwarded,
        }
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        copy(a, b2);
        copy(b, a2);
    }
}

#[test]
fn images_are_static_nonroot_labelled_and_run_read_only() {
    ensure_images();
    for (agent, port) in AGENTS {
        let img = image(agent);
        let out = podman(&[
            "image", "inspect", "--format",
            "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Labels}}|{{json .Config.ExposedPorts}}",
            &img,
        ]);
        assert!(
            out.status.success(),
            "{img} is missing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let parts: Vec<&str> = text.splitn(4, '|').collect();
        assert_eq!(parts[0], "65532:65532", "{img} user");
        assert_eq!(
            parts[1],
            format!("[\"/usr/local/bin/{agent}\"]"),
            "{img} entrypoint"
        );
        let labels: Value = serde_json::from_str(parts[2]).expect("labels json");
        for key in [
            "source",
            "version",
            "description",
            "title",
            "revision",
            "licenses",
        ] {
            let v = labels[format!("org.opencontainers.image.{key}")]
                .as_str()
                .unwrap_or("");
            assert!(
                !v.is_empty(),
                "{img} has no org.opencontainers.image.{key} label"
            );
        }
        assert!(
            parts[3].contains(&format!("{port}/tcp")),
            "{img} exposes {}",
            parts[3]
        );
        // The binary runs in the image as built: read-only root, no capabilities.
        let out = podman(&[
            "run",
            "--rm",
            "--read-only",
            "--cap-drop",
            "ALL",
            &img,
            "--help",
        ]);
        assert!(
            out.status.success(),
            "{img} --help failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The pgbackup test image carries a pg_dump that runs (its libraries were all copied).
    let out = podman(&[
        "run",
        "--rm",
        "--read-only",
        "--entrypoint",
        "pg_dump",
        &image("pgbackup"),
        "--version",
    ]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && version.contains("pg_dump (PostgreSQL)"),
        "pg_dump in the pgbackup image: {version} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dependency_wait_init_container_holds_the_app_until_postgres_answers() {
    let name = pod_name("waitfor");
    // The "database" the init container waits for: nothing listens on this port at first.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let db_port = listener.local_addr().expect("addr").port();
    drop(listener);
    let app_port = free_port();
    let admin = free_port();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  # podman 4.3 gives init containers the pod's restart policy: with the default Always it
  # restarts waitfor after its exit 0 and then fails to remove it.
  restartPolicy: OnFailure
  initContainers:
    - name: wait-for-database
      image: {waitfor}
      env:
        - name: WAIT_FOR
          value: \"postgres://postgres@127.0.0.1:{db_port}/test\"
        - name: WAITFOR_TIMEOUT
          value: \"120s\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"{LOCKED_DOWN}
  containers:
    - name: web-app
      image: {app}
      args: [\"--http\", \"127.0.0.1:{app_port}\"]{LOCKED_DOWN}
",
        waitfor = image("waitfor"),
        app = image("demo-app"),
    );
    let mut pod = Pod::play(&name, &yaml);
    pod.wait_running("wait-for-database", Duration::from_secs(60));

    // Phase 1: nothing listens. The app must not start.
    let app_not_started = |pod: &mut Pod, phase: &str| {
        assert!(
            pod.still_playing(),
            "{phase}: kube play finished: the init container gave up"
        );
        let state = pod.state("web-app");
        assert!(
            state.as_deref() != Some("running") && state.as_deref() != Some("exited"),
            "{phase}: the app started ({state:?}) before PostgreSQL answered"
        );
    };
    poll_until(Duration::from_secs(30), "waitfor to log its target", || {
        pod.logs("wait-for-database").contains(&db_port.to_string())
    });
    app_not_started(&mut pod, "port closed");

    // Phase 2: the port is open but no database answers: still held.
    let gate = Gate::start(
        TcpListener::bind(loopback(db_port)).expect("bind the database port again"),
        POSTGRES,
    );
    wait_until(
        Duration::from_secs(30),
        "waitfor to try the open port twice",
        || gate.accepted.load(Ordering::SeqCst) >= 2,
    );
    app_not_started(&mut pod, "port open, no database");

    // Phase 3: PostgreSQL answers through the gate: the app starts.
    gate.forward.store(true, Ordering::SeqCst);
    pod.wait_played(Duration::from_secs(60));
    assert!(
        gate.forwarded.load(Ordering::SeqCst) >= 1,
        "waitfor never reached PostgreSQL"
    );
    pod.wait_running("web-app", Duration::from_secs(30));
    pod.wait_log("web-app", "demo-app started", Duration::from_secs(30));
    let body = http_get(loopback(app_port), "/").expect("the app answers");
    assert_eq!(body.status, 200);
}

#[test]
fn ambassador_pod_reaches_postgres_through_localhost() {
    let name = pod_name("ambassador");
    let listen = free_port();
    let admin = free_port();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  containers:
    - name: database-ambassador
      image: {ambassador}
      env:
        - name: UPSTREAM_HOST
          value: \"127.0.0.1\"
        - name: UPSTREAM_PORT
          value: \"5432\"
        - name: AMBASSADOR_LISTEN
          value: \"127.0.0.1:{listen}\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"{LOCKED_DOWN}
    - name: main-app
      image: {app}
      args: [\"--pg\", \"127.0.0.1:{listen}\", \"--pg-db\", \"test\", \"--pg-query\", \"SELECT current_database(), 'via-' || 'ambassador'\"]{LOCKED_DOWN}
",
        ambassador = image("ambassador"),
        app = image("demo-app"),
    );
    let mut pod = Pod::play(&name, &yaml);
    pod.wait_played(Duration::from_secs(60));
    pod.wait_log(
        "main-app",
        "postgres answered: test|via-ambassador",
        Duration::from_secs(60),
    );
    let ready = http_get(loopback(admin), "/readyz").expect("ambassador admin endpoint");
    assert_eq!(ready.status, 200, "ambassador /readyz: {}", ready.body);
    let metrics = http_get(loopback(admin), "/metrics").expect("ambassador metrics");
    assert!(
        metrics.body.contains("ambassador_"),
        "ambassador /metrics: {}",
        metrics.body
    );
    assert_eq!(
        pod.inspect("database-ambassador", "{{.HostConfig.ReadonlyRootfs}}"),
        "true"
    );
}

/// The Job form (k8s-examples/ambassador-database/job.yaml): the app queries through the
/// ambassador, then POSTs its `/quitquitquit` over localhost; the ambassador drains and exits 0,
/// so every container of the pod has exited 0 and a Job would complete.
#[test]
fn ambassador_job_completes_when_the_app_asks_the_sidecar_to_quit() {
    let name = pod_name("ambassador-job");
    let listen = free_port();
    let admin = free_port();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
    - name: report
      image: {app}
      args: [\"--pg\", \"127.0.0.1:{listen}\", \"--pg-db\", \"test\", \"--exit\", \"--quit\", \"http://127.0.0.1:{admin}/quitquitquit\"]{LOCKED_DOWN}
    - name: database-ambassador
      image: {ambassador}
      env:
        - name: UPSTREAM_HOST
          value: \"127.0.0.1\"
        - name: UPSTREAM_PORT
          value: \"5432\"
        - name: AMBASSADOR_LISTEN
          value: \"127.0.0.1:{listen}\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"{LOCKED_DOWN}
",
        ambassador = image("ambassador"),
        app = image("demo-app"),
    );
    let mut pod = Pod::play(&name, &yaml);
    pod.wait_played(Duration::from_secs(60));
    for c in ["report", "database-ambassador"] {
        poll_until(Duration::from_secs(60), &format!("{c} to exit"), || {
            pod.state(c).as_deref() == Some("exited")
        });
        assert_eq!(pod.inspect(c, "{{.State.ExitCode}}"), "0", "{c} exit code");
    }
    let report = pod.logs("report");
    assert!(
        report.contains("postgres answered: test|postgres"),
        "{report}"
    );
    assert!(report.contains("to quit: HTTP/1.1 200 OK"), "{report}");
    let ambassador = pod.logs("database-ambassador");
    assert!(
        ambassador.contains("shutdown started by POST /quitquitquit"),
        "{ambassador}"
    );
    assert!(ambassador.contains("\"stopped\""), "{ambassador}");
}

#[test]
fn log_collection_pod_ships_the_apps_lines_to_bulk() {
    let name = pod_name("logship");
    let es = FakeEs::start();
    let admin = free_port();
    const LINES: usize = 50;
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  securityContext:
    fsGroup: 65532
  containers:
    - name: web-app
      image: {app}
      args: [\"--log-file\", \"/var/log/app/app.log\", \"--log-lines\", \"{LINES}\", \"--log-interval-ms\", \"20\"]
      volumeMounts:
        - name: app-logs
          mountPath: /var/log/app{LOCKED_DOWN}
    - name: log-collector
      image: {logship}
      env:
        - name: ELASTICSEARCH_HOST
          value: \"127.0.0.1\"
        - name: ELASTICSEARCH_PORT
          value: \"{es_port}\"
        - name: LOGSHIP_PATH
          value: \"/var/log/app/*.log\"
        - name: LOGSHIP_DATA_DIR
          value: \"/var/lib/logship\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"
      volumeMounts:
        - name: app-logs
          mountPath: /var/log/app
          readOnly: true
        - name: logship-data
          mountPath: /var/lib/logship{LOCKED_DOWN}
  volumes:
    - name: app-logs
      emptyDir: {{}}
    - name: logship-data
      emptyDir: {{}}
",
        app = image("demo-app"),
        logship = image("logship"),
        es_port = es.addr().port(),
    );
    let mut pod = Pod::play(&name, &yaml);
    pod.wait_played(Duration::from_secs(60));
    let has_line = |docs: &[Doc], i: usize| {
        let tag = format!("demo-line-{i}");
        docs.iter()
            .filter(|d| {
                d.source["message"]
                    .as_str()
                    .is_some_and(|m| m.split_whitespace().any(|w| w == tag))
            })
            .count()
    };
    wait_until(
        Duration::from_secs(90),
        "every app line at the _bulk endpoint",
        || {
            let docs = es.docs();
            (1..=LINES).all(|i| has_line(&docs, i) > 0)
        },
    );
    // Each line exactly once (deterministic IDs: a retry reuses the same ID).
    let docs = es.docs();
    for i in 1..=LINES {
        assert_eq!(
            has_line(&docs, i),
            1,
            "line {i} stored {} times",
            has_line(&docs, i)
        );
    }
    assert_eq!(
        docs.len(),
        LINES,
        "documents beyond the app's lines: {docs:?}"
    );
    let health = http_get(loopback(admin), "/healthz").expect("logship admin endpoint");
    assert_eq!(health.status, 200);
}

/// Lays out `dir` the way kubelet lays out a ConfigMap volume: `nginx.conf -> ..data/nginx.conf`,
/// `..data -> ..<version>`; a later call swaps `..data` atomically, as kubelet does on update.
fn write_configmap(dir: &Path, version: u32, conf: &str) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let ts = format!("..2026_01_01_00_00_0{version}.{version}");
    let ts_dir = dir.join(&ts);
    std::fs::create_dir_all(&ts_dir).expect("mkdir");
    std::fs::write(ts_dir.join("nginx.conf"), conf).expect("write conf");
    for p in [&ts_dir, &ts_dir.join("nginx.conf")] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&ts, &tmp).expect("symlink ..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    if !dir.join("nginx.conf").exists() {
        symlink("..data/nginx.conf", dir.join("nginx.conf")).expect("symlink nginx.conf");
    }
}

fn nginx_conf(port: u16, version: u32) -> String {
    format!(
        "worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 \"config version {version}\\n\"; }}
    }}
}}
"
    )
}

#[test]
fn config_reloader_pod_reloads_nginx_after_a_configmap_swap() {
    let name = pod_name("reloader");
    let port = free_port();
    let admin = free_port();
    let yaml_for = |config: &Path| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  shareProcessNamespace: true
  containers:
    - name: web-server
      image: {nginx}
      args: [\"-c\", \"/etc/nginx-config/nginx.conf\"]
      volumeMounts:
        - name: nginx-config
          mountPath: /etc/nginx-config
          readOnly: true
        - name: nginx-tmp
          mountPath: /tmp{LOCKED_DOWN}
    - name: config-reloader
      image: {reloader}
      env:
        - name: RELOADER_WATCH
          value: \"/etc/nginx-config\"
        - name: RELOADER_SIGNAL_PROCESS
          value: \"nginx\"
        - name: RELOADER_SIGNAL
          value: \"HUP\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"
      volumeMounts:
        - name: nginx-config
          mountPath: /etc/nginx-config
          readOnly: true{LOCKED_DOWN}
  volumes:
    - name: nginx-config
      hostPath:
        path: {config}
        type: Directory
    - name: nginx-tmp
      emptyDir: {{}}
",
            nginx = image("test-nginx"),
            reloader = image("reloader"),
            config = config.display(),
        )
    };
    // The pod's temp dir holds its config volume, so the Pod is created in two steps.
    let config_root = tempfile::tempdir().expect("tempdir");
    let config = config_root.path().join("nginx-config");
    std::fs::create_dir(&config).expect("mkdir");
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [config_root.path(), config.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    write_configmap(&config, 1, &nginx_conf(port, 1));
    let mut pod = Pod::play(&name, &yaml_for(&config));
    pod.wait_played(Duration::from_secs(60));

    let get = || {
        http_get(loopback(port), "/")
            .map(|r| r.body)
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(30), "nginx to serve version 1", || {
        get().contains("config version 1")
    });
    wait_until(
        Duration::from_secs(30),
        "reloader to be ready (watching)",
        || http_get(loopback(admin), "/readyz").is_ok_and(|r| r.status == 200),
    );
    let started = pod.inspect("web-server", "{{.State.StartedAt}}");

    write_configmap(&config, 2, &nginx_conf(port, 2));
    wait_until(
        Duration::from_secs(30),
        "nginx to serve version 2 after the swap",
        || get().contains("config version 2"),
    );
    // Reloaded, not restarted.
    assert_eq!(pod.inspect("web-server", "{{.State.StartedAt}}"), started);
    assert_eq!(pod.state("web-server").as_deref(), Some("running"));
}

#[test]
fn database_backup_sidecar_writes_a_backup_of_postgres() {
    let name = pod_name("pgbackup");
    let admin = free_port();
    let db = format!("podmates_pods_{}", std::process::id());
    let psql = |sql: &str| {
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
                "-c",
                sql,
            ])
            .output()
            .expect("run psql (apt-get install postgresql-client)");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    struct DropDb(String);
    impl Drop for DropDb {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
                .output();
        }
    }
    let _drop_db = DropDb(db.clone());
    let yaml_for = |backups: &Path| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  containers:
    - name: backup-agent
      image: {pgbackup}
      env:
        - name: PGHOST
          value: \"127.0.0.1\"
        - name: PGUSER
          value: \"postgres\"
        - name: POSTGRES_DB
          value: \"{db}\"
        - name: SCHEDULE
          value: \"0 */6 * * *\"
        - name: BACKUP_ON_START
          value: \"true\"
        - name: PGBACKUP_DIR
          value: \"/backup\"
        - name: PGBACKUP_MAX_AGE
          value: \"1h\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"
      volumeMounts:
        - name: backup-storage
          mountPath: /backup
        - name: tmp
          mountPath: /tmp{LOCKED_DOWN}
  volumes:
    - name: backup-storage
      hostPath:
        path: {backups}
        type: Directory
    - name: tmp
      emptyDir: {{}}
",
            pgbackup = image("pgbackup"),
            backups = backups.display(),
        )
    };
    let backups_root = tempfile::tempdir().expect("tempdir");
    let backups = backups_root.path().join("backup");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir(&backups).expect("mkdir");
        std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let mut pod = Pod::play(&name, &yaml_for(&backups));
    pod.wait_played(Duration::from_secs(60));
    let backup = testkit::wait_for(
        Duration::from_secs(90),
        "a backup file of the database",
        || {
            std::fs::read_dir(&backups)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    n.starts_with(&db) && n.ends_with(".sql.gz")
                })
        },
    );
    // A complete gzip stream holding a dump of that database.
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(&backup)
        .output()
        .expect("gzip");
    assert!(
        out.status.success(),
        "{} is not a complete gzip stream",
        backup.display()
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.contains("PostgreSQL database dump complete"),
        "dump: {dump:.300}"
    );
    wait_until(
        Duration::from_secs(30),
        "pgbackup to be ready after its backup",
        || http_get(loopback(admin), "/readyz").is_ok_and(|r| r.status == 200),
    );
}

#[test]
fn ssl_termination_proxy_pod_serves_the_app_over_tls() {
    use std::os::unix::fs::PermissionsExt;
    let name = pod_name("tls");
    let app_port = free_port();
    let tls_port = free_port();
    let admin = free_port();
    // A self-signed certificate for 127.0.0.1, as a Secret volume would hold it.
    let certs_root = tempfile::tempdir().expect("tempdir");
    let certs = certs_root.path().join("tls");
    std::fs::create_dir(&certs).expect("mkdir");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(certs.join("tls.key"))
        .arg("-out")
        .arg(certs.join("tls.crt"))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (p, mode) in [
        (certs.clone(), 0o755),
        (certs.join("tls.key"), 0o644),
        (certs.join("tls.crt"), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  containers:
    - name: web-app
      image: {app}
      args: [\"--http\", \"127.0.0.1:{app_port}\"]{LOCKED_DOWN}
    - name: ssl-proxy
      image: {ambassador}
      env:
        - name: AMBASSADOR_LISTEN
          value: \"127.0.0.1:{tls_port}\"
        - name: UPSTREAM_HOST
          value: \"127.0.0.1\"
        - name: UPSTREAM_PORT
          value: \"{app_port}\"
        - name: AMBASSADOR_TLS_CERT
          value: \"/etc/tls/tls.crt\"
        - name: AMBASSADOR_TLS_KEY
          value: \"/etc/tls/tls.key\"
        - name: ADMIN_ADDR
          value: \"127.0.0.1:{admin}\"
      volumeMounts:
        - name: ssl-certificates
          mountPath: /etc/tls
          readOnly: true{LOCKED_DOWN}
  volumes:
    - name: ssl-certificates
      hostPath:
        path: {certs}
        type: Directory
",
        app = image("demo-app"),
        ambassador = image("ambassador"),
        certs = certs.display(),
    );
    let mut pod = Pod::play(&name, &yaml);
    pod.wait_played(Duration::from_secs(60));
    let https = || {
        Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(certs.join("tls.crt"))
            .arg(format!("https://127.0.0.1:{tls_port}/"))
            .output()
            .expect("run curl")
    };
    poll_until(
        Duration::from_secs(60),
        "the app through the TLS proxy",
        || String::from_utf8_lossy(&https().stdout).contains("hello from demo-app"),
    );
    // Plain HTTP to the TLS port gets no answer from the app.
    let plain = http_get(loopback(tls_port), "/")
        .map(|r| r.body)
        .unwrap_or_default();
    assert!(
        !plain.contains("hello from demo-app"),
        "plain HTTP went through: {plain}"
    );
}
