//! The pod specs in `k8s-examples/`: valid Kubernetes, and what users were promised.
//!
//! - Every manifest validates against the Kubernetes OpenAPI schemas, strictly (unknown fields
//!   rejected), for 1.33 (native sidecars stable) and the newest version `kubernetes-validate`
//!   ships. `kubernetes-validate` (PyPI) carries its schemas, so this runs offline; install it
//!   with `scripts/setup-podman.sh` or `pip install kubernetes-validate`.
//! - Every podmates container is locked down (non-root, read-only root, all capabilities dropped,
//!   no privilege escalation, RuntimeDefault seccomp), has requests and limits, and probes on its
//!   admin port; native sidecars have a startup probe.
//! - Every guide pattern has its file, in both the classic and the native-sidecar form, there
//!   is a Deployment and a StatefulSet, and the guide's env names are kept.
//! - Every env name a podmates container sets is one its agent accepts (`<agent> --help` names
//!   it, or, for hidden compatibility names, the binary holds it), so the examples cannot drift
//!   from the binaries.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use e2e::{static_bin, workspace_root, AGENTS};
use serde_json::Value;

/// Kubernetes versions to validate against: native sidecars' stable release, and the newest
/// schemas the installed kubernetes-validate ships (its default).
const K8S_VERSIONS: [Option<&str>; 2] = [Some("1.33.0"), None];

/// The guide's patterns and examples, each with its directory and its forms.
const PATTERNS: [(&str, &[&str]); 9] = [
    (
        "log-collection-sidecar",
        &["pod.yaml", "pod-native-sidecar.yaml"],
    ),
    ("adapter", &["pod.yaml", "pod-native-sidecar.yaml"]),
    (
        "ambassador-database",
        &["pod.yaml", "pod-native-sidecar.yaml", "job.yaml"],
    ),
    (
        "ssl-termination-proxy",
        &["pod.yaml", "pod-native-sidecar.yaml"],
    ),
    (
        "database-backup-sidecar",
        &["pod.yaml", "pod-native-sidecar.yaml"],
    ),
    ("config-reloader", &["pod.yaml", "pod-native-sidecar.yaml"]),
    // Init containers run to completion: there is no sidecar to make native.
    ("dependency-wait", &["pod.yaml"]),
    (
        "webapp-logging-monitoring",
        &["deployment.yaml", "deployment-native-sidecar.yaml"],
    ),
    (
        "database-with-backup",
        &["statefulset.yaml", "statefulset-native-sidecar.yaml"],
    ),
];

fn examples_dir() -> PathBuf {
    workspace_root().join("k8s-examples")
}

/// Every YAML file under `k8s-examples/`, sorted.
fn manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read k8s-examples") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&examples_dir(), &mut out);
    out.sort();
    assert!(
        !out.is_empty(),
        "no manifests under {}",
        examples_dir().display()
    );
    out
}

/// The documents of each YAML file as JSON, parsed by PyYAML (which kubernetes-validate brings)
/// in one python3 run.
fn documents(paths: &[PathBuf]) -> Vec<Vec<Value>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps([[d for d in yaml.safe_load_all(open(p)) if d is not None] for p in sys.argv[1:]]))",
        ])
        .args(paths)
        .output()
        .expect("run python3 (needed with PyYAML: pip install kubernetes-validate brings it)");
    assert!(
        out.status.success(),
        "cannot parse the manifests: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).expect("json from python");
    assert_eq!(all.len(), paths.len());
    all
}

/// The pod spec of a Pod, Deployment, StatefulSet, DaemonSet or Job.
fn pod_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Pod" => Some(&doc["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => {
            Some(&doc["spec"]["template"]["spec"])
        }
        _ => None,
    }
}

/// A container with where it sits.
struct Container<'a> {
    file: String,
    spec: &'a Value,
    c: &'a Value,
    init: bool,
}

impl Container<'_> {
    fn name(&self) -> String {
        format!("{}: {}", self.file, self.c["name"].as_str().unwrap_or("?"))
    }
    /// The podmates agent (or demo-app) this container runs, from its image.
    fn podmates_image(&self) -> Option<&str> {
        let image = self.c["image"].as_str()?;
        let rest = image.strip_prefix("ghcr.io/podmates/")?;
        rest.split(':').next()
    }
    fn native_sidecar(&self) -> bool {
        self.init && self.c["restartPolicy"] == "Always"
    }
    fn env_names(&self) -> Vec<&str> {
        self.c["env"]
            .as_array()
            .map(|env| env.iter().filter_map(|e| e["name"].as_str()).collect())
            .unwrap_or_default()
    }
    fn env_value(&self, name: &str) -> Option<&str> {
        self.c["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)?["value"]
            .as_str()
    }
}

fn containers(docs: &[(String, Vec<Value>)]) -> Vec<Container<'_>> {
    let mut out = Vec::new();
    for (file, docs) in docs {
        for doc in docs {
            let Some(spec) = pod_spec(doc) else { continue };
            for (key, init) in [("initContainers", true), ("containers", false)] {
                for c in spec[key].as_array().into_iter().flatten() {
                    out.push(Container {
                        file: file.clone(),
                        spec,
                        c,
                        init,
                    });
                }
            }
        }
    }
    out
}

fn all_documents() -> Vec<(String, Vec<Value>)> {
    let root = examples_dir();
    let paths = manifests();
    let docs = documents(&paths);
    paths
        .iter()
        .zip(docs)
        .map(|(p, d)| (p.strip_prefix(&root).unwrap_or(p).display().to_string(), d))
        .collect()
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    for version in K8S_VERSIONS {
        let mut cmd = Command::new("kubernetes-validate");
        cmd.arg("--strict");
        if let Some(v) = version {
            cmd.args(["--kubernetes-version", v]);
        }
        cmd.args(&files);
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run kubernetes-validate ({e}): install it with scripts/setup-podman.sh \
                 or `pip install kubernetes-validate`"
            )
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = format!("{stdout}{stderr}");
        let version = version.unwrap_or("its newest");
        assert!(
            out.status.success() && !report.contains("ERROR"),
            "kubernetes-validate (Kubernetes {version}) rejected manifests:\n{report}"
        );
        // Every file was checked, each resource passed (a file it skipped would be a hole).
        for f in &files {
            assert!(
                report.contains(&format!("{} passed", f.display())),
                "kubernetes-validate (Kubernetes {version}) did not check {}:\n{report}",
                f.display()
            );
        }
    }
}

#[test]
fn the_validator_rejects_a_broken_manifest() {
    // Guards the check above: a typo'd field and a missing required one must fail.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n    - name: x\n      imagePullPolicyy: Never\n",
    )
    .expect("write");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&bad)
        .output()
        .expect("run kubernetes-validate (scripts/setup-podman.sh installs it)");
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted an unknown field: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_guide_pattern_has_its_files_and_there_is_a_deployment_and_a_statefulset() {
    let root = examples_dir();
    for (dir, files) in PATTERNS {
        for f in files {
            let p = root.join(dir).join(f);
            assert!(p.exists(), "{} is missing", p.display());
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("k8s-examples/README.md");
    for (dir, files) in PATTERNS {
        for f in files {
            assert!(
                readme.contains(&format!("{dir}/{f}")),
                "k8s-examples/README.md does not map {dir}/{f}"
            );
        }
    }
    let docs = all_documents();
    let kinds: BTreeSet<&str> = docs
        .iter()
        .flat_map(|(_, d)| d.iter().filter_map(|d| d["kind"].as_str()))
        .collect();
    for kind in ["Pod", "Deployment", "StatefulSet"] {
        assert!(
            kinds.contains(kind),
            "no {kind} among the examples: {kinds:?}"
        );
    }
    // Every native-sidecar file really has one.
    for c in containers(&docs) {
        if c.file.contains("native-sidecar") {
            let spec = c.spec;
            let has = spec["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|i| i["restartPolicy"] == "Always");
            assert!(
                has,
                "{} has no initContainer with restartPolicy: Always",
                c.file
            );
        }
    }
}

fn check_locked_down(c: &Container<'_>, errors: &mut Vec<String>) {
    let sc = &c.c["securityContext"];
    let pod_sc = &c.spec["securityContext"];
    let name = c.name();
    if sc["runAsNonRoot"] != true {
        errors.push(format!("{name}: securityContext.runAsNonRoot is not true"));
    }
    if sc["readOnlyRootFilesystem"] != true {
        errors.push(format!("{name}: readOnlyRootFilesystem is not true"));
    }
    if sc["allowPrivilegeEscalation"] != false {
        errors.push(format!("{name}: allowPrivilegeEscalation is not false"));
    }
    let drops_all = sc["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if !drops_all {
        errors.push(format!("{name}: capabilities.drop lacks ALL"));
    }
    if !sc["capabilities"]["add"].is_null() {
        errors.push(format!("{name}: adds capabilities"));
    }
    let seccomp = if sc["seccompProfile"].is_null() {
        &pod_sc["seccompProfile"]
    } else {
        &sc["seccompProfile"]
    };
    if seccomp["type"] != "RuntimeDefault" {
        errors.push(format!("{name}: seccompProfile is not RuntimeDefault"));
    }
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            if c.c["resources"][kind][res].is_null() {
                errors.push(format!("{name}: resources.{kind}.{res} missing"));
            }
        }
    }
}

/// The admin port of `agent`, or the port an ADMIN_ADDR env moves it to.
fn admin_port(c: &Container<'_>, agent: &str) -> Option<u64> {
    if let Some(addr) = c.env_value("ADMIN_ADDR") {
        return addr.rsplit(':').next()?.parse().ok();
    }
    AGENTS
        .iter()
        .find(|(a, _)| *a == agent)
        .map(|(_, p)| u64::from(*p))
}

fn check_probes(c: &Container<'_>, agent: &str, errors: &mut Vec<String>) {
    let name = c.name();
    let run_to_completion = c.init && !c.native_sidecar();
    if run_to_completion {
        // waitfor as a plain init container: probes are not allowed there.
        return;
    }
    let Some(admin) = admin_port(c, agent) else {
        errors.push(format!("{name}: unknown agent {agent}"));
        return;
    };
    // Named ports resolve through the container's ports.
    let resolve = |port: &Value| -> Option<u64> {
        match port {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => c.c["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == s.as_str())?["containerPort"]
                .as_u64(),
            _ => None,
        }
    };
    let mut probes = vec!["livenessProbe"];
    if c.native_sidecar() {
        probes.push("startupProbe");
    }
    // logship and pgbackup have no readinessProbe on purpose (pod-wide readiness: see README).
    if !matches!(agent, "logship" | "pgbackup") {
        probes.push("readinessProbe");
    }
    for probe in probes {
        let p = &c.c[probe];
        if p.is_null() {
            errors.push(format!("{name}: no {probe}"));
            continue;
        }
        let path = p["httpGet"]["path"].as_str().unwrap_or("");
        if !["/healthz", "/readyz"].contains(&path) {
            errors.push(format!("{name}: {probe} does not GET /healthz or /readyz"));
        }
        if resolve(&p["httpGet"]["port"]) != Some(admin) {
            errors.push(format!("{name}: {probe} is not on the admin port {admin}"));
        }
    }
}

#[test]
fn podmates_containers_are_locked_down_sized_and_probed() {
    let docs = all_documents();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for c in containers(&docs) {
        let Some(image) = c.podmates_image() else {
            continue;
        };
        seen.insert(image.to_string());
        check_locked_down(&c, &mut errors);
        if image != "demo-app" {
            check_probes(&c, image, &mut errors);
        }
    }
    assert!(
        errors.is_empty(),
        "manifest problems:\n{}",
        errors.join("\n")
    );
    for (agent, _) in AGENTS {
        assert!(seen.contains(agent), "no example uses the {agent} image");
    }
}

#[test]
fn the_guides_env_names_are_kept() {
    let docs = all_documents();
    // (agent, an env name from the guide or its incumbent that must appear on that agent)
    let expected = [
        ("logship", "ELASTICSEARCH_HOST"),
        ("log2json", "OUTPUT_FORMAT"),
        ("ambassador", "UPSTREAM_HOST"),
        ("ambassador", "UPSTREAM_PORT"),
        ("pgbackup", "PGPASSWORD"),
        ("waitfor", "WAIT_FOR"),
    ];
    let cs = containers(&docs);
    for (agent, env) in expected {
        assert!(
            cs.iter()
                .any(|c| c.podmates_image() == Some(agent) && c.env_names().contains(&env)),
            "no {agent} container sets the guide's {env}"
        );
    }
}

#[test]
fn every_env_name_in_the_examples_is_one_the_agent_accepts() {
    let docs = all_documents();
    let mut help = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for c in containers(&docs) {
        let Some(agent) = c.podmates_image() else {
            continue;
        };
        if agent == "demo-app" {
            continue;
        }
        let (text, binary) = help.entry(agent.to_string()).or_insert_with(|| {
            let bin = static_bin(agent);
            let out = Command::new(&bin)
                .arg("--help")
                .output()
                .expect("run agent --help");
            let binary = std::fs::read(&bin).expect("read the agent binary");
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&binary).into_owned(),
            )
        });
        // Names only used to build another value ($(NAME)) are Kubernetes', not the agent's.
        let env = c.c["env"].as_array().cloned().unwrap_or_default();
        let referenced = |n: &str| {
            env.iter().any(|e| {
                e["value"]
                    .as_str()
                    .is_some_and(|v| v.contains(&format!("$({n})")))
            })
        };
        for name in c.env_names() {
            if referenced(name) {
                continue;
            }
            // Shown in --help, or a hidden compatibility name (POSTGRES_DB, WAIT_TIMEOUT, ...)
            // that clap still reads: its name is then in the binary's strings (which rustc
            // packs without separators, so this is a substring search).
            if !text.contains(&format!("[env: {name}")) && !binary.contains(name) {
                errors.push(format!("{}: {agent} --help names no env {name}", c.name()));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "env names the agents do not accept:\n{}",
        errors.join("\n")
    );
}
