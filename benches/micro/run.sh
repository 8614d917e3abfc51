#!/usr/bin/env bash
# micro: the criterion micro-benchmarks of the hot paths (benches/hot_paths.rs): line splitting,
# JSON escaping (common's escaper beside serde_json's), record writing, every log2json format
# parser, logship's bulk encoding and gzip. Prints one `RESULT {json}` line per benchmark and
# figure on stdout (throughput in MiB/s, lines per second, ns per line); criterion's own output
# goes to stderr.
#
# usage: benches/micro/run.sh [CRITERION FILTER...]     e.g. benches/micro/run.sh parse/
#   PROFILE  cargo profile (default bench-fast: thin LTO, quick to build; `bench` is the release
#            profile with fat LTO, as `cargo bench -p micro` uses)
#   CARGO_TARGET_DIR as usual.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROFILE=${PROFILE:-bench-fast}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "micro: cargo bench -p micro --profile $PROFILE (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
(cd "$ROOT" && CRITERION_HOME="$WORK/criterion" MICRO_MANIFEST="$WORK/manifest.json" \
  cargo bench -q -p micro --profile "$PROFILE" --bench hot_paths -- "$@") >&2
python3 "$HERE/report.py" "$WORK/criterion" "$WORK/manifest.json"
