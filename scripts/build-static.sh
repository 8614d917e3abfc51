#!/usr/bin/env bash
# Builds the six agents as static musl release binaries (LTO, one codegen unit, stripped) into
# target/x86_64-unknown-linux-musl/release/, and prints their sizes. Slow (minutes): run once.
#
# Two cargo invocations: waitfor is built on its own at opt-level "s". It sits in front of
# every pod start, where size beats speed (its checks cost microseconds either way), and built
# alone it does not get the regex Unicode tables that logship's and log2json's parsers switch
# on through cargo's feature unification (5.0 MB -> under 4 MB, agents/waitfor/README.md).
# The rest are built at the release profile's opt-level 3.
# Plain static executables, not static-pie: see .cargo/config.toml.
# The binaries are stripped here, not by the cargo profile (see Cargo.toml); KEEP_SYMBOLS=1
# leaves them unstripped (scripts/link-order.py profiles them).
set -euo pipefail
cd "$(dirname "$0")/.."
agents=(logship log2json ambassador pgbackup reloader waitfor)
# demo-app stands in for the main application in the pod tests (images/demo-app).
extra=(demo-app)
args=()
for a in "${agents[@]}" "${extra[@]}"; do
  [ "$a" = waitfor ] || args+=(-p "$a")
done
cargo build --release --locked --target x86_64-unknown-linux-musl "${args[@]}"
CARGO_PROFILE_RELEASE_OPT_LEVEL=s cargo build --release --locked --target x86_64-unknown-linux-musl -p waitfor
dir="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release"
# logship's function order (agents/logship/build.rs) names symbols of this very build: say so
# when most of them are gone (after a dependency or toolchain update), as memory then grows.
# (A binary stripped by an earlier run and not relinked since has no names to check.)
syms=$(nm "$dir/logship" 2>/dev/null | awk '{print $NF}' | sort -u || true)
if [ -s agents/logship/link-order.txt ] && [ -n "$syms" ]; then
  total=$(grep -c . agents/logship/link-order.txt)
  found=$(grep -cxFf <(printf '%s\n' "$syms") agents/logship/link-order.txt || true)
  echo "logship link order: $found of $total functions found" >&2
  if [ $((found * 10)) -lt $((total * 8)) ]; then
    echo "warning: agents/logship/link-order.txt is stale; regenerate it: scripts/link-order.py && scripts/build-static.sh" >&2
  fi
fi
if [ -z "${KEEP_SYMBOLS:-}" ]; then
  for a in "${agents[@]}" "${extra[@]}"; do strip --strip-all "$dir/$a"; done
fi
for a in "${agents[@]}"; do
  printf '%-11s %8s bytes  %s\n' "$a" "$(stat -c %s "$dir/$a")" "$(file -b "$dir/$a" | grep -oE 'static(-pie)? linked|statically linked|dynamically linked')"
done
