#!/bin/sh
# reloader benchmark: latency from kubelet's `..data` swap to the action completed (a webhook
# call timestamped by the receiver), p50/p99 over many swaps; CPU ticks and RSS while idle.
# Compares with the guide's shell loop (computed: it cannot be measured faster than it sleeps).
# Figures go to stdout as `RESULT {json}` lines (benches/run.py collects them), references
# that are not installed as `MISSING {json}` lines; everything else goes to stderr.
#
# Usage: benches/reloader/run.sh [SWAPS] [IDLE_SECONDS]
#   SWAPS         number of ..data swaps (default 200)
#   IDLE_SECONDS  idle window for the CPU/RSS figures (default 10)
# Env: RELOADER_BIN to use a given binary. Otherwise the static release binary
# target/x86_64-unknown-linux-musl/release/reloader (under CARGO_TARGET_DIR or ./target) when
# it exists, the one the image ships; else a PROFILE (default bench-fast) build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
swaps=${1:-200}
idle=${2:-10}
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${RELOADER_BIN:-}" ]; then
    if [ -x "$target/x86_64-unknown-linux-musl/release/reloader" ]; then
        RELOADER_BIN="$target/x86_64-unknown-linux-musl/release/reloader"
    else
        profile=${PROFILE:-bench-fast}
        (cd "$root" && cargo build -q --profile "$profile" -p reloader) >&2
        RELOADER_BIN="$target/$profile/reloader"
    fi
fi
echo "reloader binary: $RELOADER_BIN ($(du -h "$RELOADER_BIN" | cut -f1))" >&2
for ref in configmap-reload prometheus-config-reloader; do
    if command -v "$ref" >/dev/null 2>&1; then
        echo "reference $ref found at $(command -v "$ref") but no scenario drives it yet: not measured" >&2
        echo "MISSING {\"subject\": \"$ref\", \"reason\": \"installed, but this scenario does not drive it yet\"}"
    else
        echo "MISSING {\"subject\": \"$ref\", \"reason\": \"$ref is not installed\"}"
    fi
done
exec python3 "$here/bench.py" "$RELOADER_BIN" "$swaps" "$idle"
