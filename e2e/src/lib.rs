//! Whole-suite test support: where the release binaries are, and the list of agents.
use std::path::PathBuf;

/// The six agents and their default admin ports (README's port table).
pub const AGENTS: [(&str, u16); 6] = [
    ("logship", 9471),
    ("log2json", 9472),
    ("ambassador", 9473),
    ("pgbackup", 9474),
    ("reloader", 9475),
    ("waitfor", 9476),
];

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The static musl release binary of `agent`, built by `scripts/build-static.sh`.
pub fn static_bin(agent: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let p = target.join("x86_64-unknown-linux-musl/release").join(agent);
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-static.sh first (README's test command does)",
        p.display()
    );
    p
}
