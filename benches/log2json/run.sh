#!/usr/bin/env bash
# log2json benchmark: 1,000,000 nginx access-log lines and 1,000,000 syslog lines parsed to JSON
# lines on stdout (redirected to /dev/null). Figures: lines per CPU-second (user+sys) and peak
# RSS, for log2json's hand-written parsers and, side by side, a straightforward
# one-regex-per-line implementation (agents/log2json/examples/naive_regex.rs, serde_json per
# line). fluent-bit (the issue's reference, ~170,000 lines/CPU-s for nginx) is run when installed.
#
# Prints `RESULT {json}` lines on stdout (benches/run.py collects them), a `MISSING` line for
# fluent-bit when it is not installed; everything else goes to stderr.
#
# Usage: benches/log2json/run.sh [LINES]   (env: CARGO_TARGET_DIR, BENCH_DIR, PROFILE, LOG2JSON_BIN)
set -euo pipefail
N=${1:-1000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROFILE=${PROFILE:-bench-fast}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DATA=${BENCH_DIR:-${TMPDIR:-/tmp}/log2json-bench}
mkdir -p "$DATA"

# The agent: LOG2JSON_BIN, else the static release binary (musl + mimalloc, what the image ships)
# when it exists, else a PROFILE build. The naive implementation is always a PROFILE build.
STATIC="$TARGET/x86_64-unknown-linux-musl/release/log2json"
if [ -z "${LOG2JSON_BIN:-}" ] && [ -x "$STATIC" ]; then LOG2JSON_BIN=$STATIC; fi
if [ -n "${LOG2JSON_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q --profile "$PROFILE" -p log2json --example naive_regex) >&2
  BIN=$LOG2JSON_BIN
else
  (cd "$ROOT" && cargo build -q --profile "$PROFILE" -p log2json --bin log2json --example naive_regex) >&2
  BIN="$TARGET/$PROFILE/log2json"
fi
NAIVE="$TARGET/$PROFILE/examples/naive_regex"
echo "log2json binary: $BIN; naive implementation: $NAIVE; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
export MIMALLOC_ARENA_EAGER_COMMIT=0  # as in the image

for kind in nginx syslog; do
  f="$DATA/$kind-$N.log"
  [ -s "$f" ] || { echo "generating $f" >&2; python3 "$HERE/gen.py" "$kind" "$N" > "$f"; }
done

# measure SUBJECT SCENARIO FILE CMD...: runs CMD <FILE >/dev/null under /usr/bin/time -v.
measure() {
  local subject=$1 scenario=$2 file=$3; shift 3
  local tv; tv=$(mktemp)
  /usr/bin/time -v "$@" < "$file" > /dev/null 2> "$tv"
  python3 - "$tv" "$subject" "$scenario" "$N" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
get = lambda k: float(re.search(re.escape(k) + r":\s*([0-9.]+)", text).group(1))
cpu = get("User time (seconds)") + get("System time (seconds)")
rss = get("Maximum resident set size (kbytes)") * 1024
subject, scenario, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
target = 1000000 if subject == "log2json" else None
print("RESULT " + json.dumps({"subject": subject, "scenario": scenario, "metric": "lines_per_cpu_second",
      "value": round(n / max(cpu, 1e-9)), "unit": "lines/CPU-s", "better": "higher", "target": target,
      "cpu_seconds": round(cpu, 2)}))
print("RESULT " + json.dumps({"subject": subject, "scenario": scenario, "metric": "peak_rss",
      "value": int(rss), "unit": "bytes", "better": "lower", "target": 10 * 1024 * 1024 if subject == "log2json" else None}))
PY
  rm -f "$tv"
}

export LOG_LEVEL=warn
measure log2json nginx "$DATA/nginx-$N.log" "$BIN" --format nginx --admin-addr none
measure log2json syslog "$DATA/syslog-$N.log" "$BIN" --format syslog --admin-addr none
measure naive-regex nginx "$DATA/nginx-$N.log" "$NAIVE" nginx
measure naive-regex syslog "$DATA/syslog-$N.log" "$NAIVE" syslog

if command -v fluent-bit >/dev/null 2>&1; then
  measure fluent-bit nginx "$DATA/nginx-$N.log" fluent-bit -q -R /etc/fluent-bit/parsers.conf \
    -i stdin -p parser=nginx -o stdout -p format=json_lines
else
  echo 'MISSING {"subject": "fluent-bit", "reason": "fluent-bit is not installed"}'
fi
