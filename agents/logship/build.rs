//! Lays out the static release binary's functions in the order of `link-order.txt`: what
//! logship executes first and together, so the pages an idle logship keeps resident are few
//! (the kernel maps 64 KiB of code around each page fault). Applied only where it matters and
//! is available: release builds for x86_64 musl (the shipped binary), linked with lld.
//! `scripts/link-order.py` regenerates the file; see benches/logship/README.md for figures.
use std::{env, path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    let target = env::var("TARGET").unwrap_or_default();
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    if target != "x86_64-unknown-linux-musl" || !release {
        return;
    }
    let lld = Command::new("ld.lld")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !lld {
        println!(
            "cargo:warning=ld.lld not found: logship is linked without its function order \
             (more resident memory when idle); install lld (scripts/setup.sh does)"
        );
        return;
    }
    let order = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("link-order.txt");
    println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // Names gone after a code change are skipped (a stale order costs memory, not
    // correctness).
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
