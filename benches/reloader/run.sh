#!/bin/sh
# reloader benchmark: latency from kubelet's `..data` swap to the action completed (a webhook
# call timestamped by the receiver), p50/p99 over many swaps; CPU ticks and RSS while idle.
# Compares with the guide's shell loop (computed: it cannot be measured faster than it sleeps).
#
# Usage: benches/reloader/run.sh [SWAPS] [IDLE_SECONDS]
#   SWAPS         number of ..data swaps (default 200)
#   IDLE_SECONDS  idle window for the CPU/RSS figures (default 10)
# Env: RELOADER_BIN to use a prebuilt binary; PROFILE (default bench-fast) otherwise.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
swaps=${1:-200}
idle=${2:-10}
if [ -z "${RELOADER_BIN:-}" ]; then
    profile=${PROFILE:-bench-fast}
    target=${CARGO_TARGET_DIR:-$root/target}
    (cd "$root" && cargo build -q --profile "$profile" -p reloader)
    RELOADER_BIN="$target/$profile/reloader"
fi
echo "reloader binary: $RELOADER_BIN ($(du -h "$RELOADER_BIN" | cut -f1))"
for ref in configmap-reload prometheus-config-reloader; do
    if command -v "$ref" >/dev/null 2>&1; then
        echo "reference $ref found but not wired in: compare by hand"
    else
        echo "reference $ref: not installed here, not measured"
    fi
done
exec python3 "$here/bench.py" "$RELOADER_BIN" "$swaps" "$idle"
