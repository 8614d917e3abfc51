#!/usr/bin/env bash
# Builds the six agents as static musl release binaries (LTO, one codegen unit, stripped) into
# target/x86_64-unknown-linux-musl/release/, and prints their sizes. Slow (minutes): run once.
set -euo pipefail
cd "$(dirname "$0")/.."
agents=(logship log2json ambassador pgbackup reloader waitfor)
# demo-app stands in for the main application in the pod tests (images/demo-app).
extra=(demo-app)
args=()
for a in "${agents[@]}" "${extra[@]}"; do args+=(-p "$a"); done
cargo build --release --locked --target x86_64-unknown-linux-musl "${args[@]}"
dir="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release"
for a in "${agents[@]}"; do
  printf '%-11s %8s bytes  %s\n' "$a" "$(stat -c %s "$dir/$a")" "$(file -b "$dir/$a" | grep -oE 'static(-pie)? linked|dynamically linked')"
done
