#!/usr/bin/env bash
# logship benchmark: 1,000,000 nginx-style lines (~148 bytes, deterministic) already in one
# file, shipped to a local `_bulk` endpoint that only counts. Measures, per shipper:
# CPU-seconds (utime+stime from /proc), lines per CPU-second, peak RSS (VmHWM), and idle RSS and
# idle CPU over IDLE_SECONDS after delivery (RSS at the end: idle means after the shipper's own
# idle timers ran; logship's HTTP keep-alive is 5 s, reaped within 10 s). Runs fluent-bit side by side when installed.
#
# Prints one `RESULT {json}` line per figure on stdout (benches/run.py collects them) and a
# `MISSING {json}` line for fluent-bit when it is not installed; everything else goes to stderr.
#
# usage: benches/logship/run.sh [LINES]
#   LOGSHIP_BIN   logship binary (default: the static release binary
#                 target/x86_64-unknown-linux-musl/release/logship under CARGO_TARGET_DIR or
#                 ./target when it exists, else target/bench-fast/logship, built if missing)
#   FLUENT_BIT    fluent-bit binary (default: found on PATH or /opt/fluent-bit/bin/fluent-bit)
#   IDLE_SECONDS  how long to watch the idle process (default 20)
# MIMALLOC_ARENA_EAGER_COMMIT=0 is set, as in the images (it only matters to the musl build).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LINES="${1:-1000000}"
IDLE_SECONDS="${IDLE_SECONDS:-20}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${LOGSHIP_BIN:-}" ]; then
  if [ -x "$TARGET/x86_64-unknown-linux-musl/release/logship" ]; then
    LOGSHIP_BIN="$TARGET/x86_64-unknown-linux-musl/release/logship"
  else
    LOGSHIP_BIN="$TARGET/bench-fast/logship"
    [ -x "$LOGSHIP_BIN" ] || (cd "$ROOT" && cargo build -q --profile bench-fast -p logship) >&2
  fi
fi
[ -x "$LOGSHIP_BIN" ] || { echo "logship binary not found at $LOGSHIP_BIN: build it with cargo build --profile bench-fast -p logship (or set LOGSHIP_BIN)" >&2; exit 2; }
export MIMALLOC_ARENA_EAGER_COMMIT=0
echo "logship binary: $LOGSHIP_BIN" >&2

WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

echo "generating $LINES lines..." >&2
python3 "$HERE/gen_nginx.py" "$LINES" "$WORK/access.log"
BYTES=$(stat -c %s "$WORK/access.log")

clk_tck=$(getconf CLK_TCK)
cpu_seconds() { awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12] + f[13]) / t }' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# Per-thread CPU nanoseconds ("tid ns" lines) from schedstat: exact, where utime/stime count
# 10 ms ticks, too coarse for an idle process.
sched_ns() { for t in /proc/"$1"/task/*; do echo "${t##*/} $(cut -d' ' -f1 "$t/schedstat" 2>/dev/null || echo 0)"; done; }
# CPU ns between two snapshots: threads alive at both, plus threads started in between (a
# thread that ended in between is not counted: its last moments are lost).
sched_delta() { awk 'NR == FNR { a[$1] = $2; next } { s += $2 - ($1 in a ? a[$1] : 0) } END { printf "%d", s }' "$1" "$2"; }

# start_counter NAME: starts a counting endpoint; sets PORT.
start_counter() {
  local portfile="$WORK/port.$1"
  python3 "$HERE/bulk_counter.py" "$portfile" >/dev/null 2>&1 & PIDS+=($!)
  for _ in $(seq 200); do [ -s "$portfile" ] && break; sleep 0.05; done
  PORT=$(cat "$portfile")
}

count() { curl -fsS "http://127.0.0.1:$1/_count" 2>/dev/null || echo 0; }

# measure SUBJECT SCENARIO PORT PID [TARGET_LINES_PER_CPU_S]: waits for every line, then prints
# the figures (RESULT lines on stdout, a summary on stderr).
measure() {
  local subject="$1" scenario="$2" port="$3" pid="$4" target="${5:-}" t0 t1 n
  t0=$(date +%s.%N)
  while :; do
    n=$(count "$port")
    [ "$n" -ge "$LINES" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "$subject ($scenario) exited before delivering every line ($n of $LINES)" >&2; return 1; }
    sleep 0.05
  done
  t1=$(date +%s.%N)
  local cpu peak idle_rss
  cpu=$(cpu_seconds "$pid"); peak=$(status_kib "$pid" VmHWM); sched_ns "$pid" >"$WORK/sched0"
  sleep "$IDLE_SECONDS"
  sched_ns "$pid" >"$WORK/sched1"; idle_rss=$(status_kib "$pid" VmRSS)
  n=$(count "$port")
  python3 - "$subject" "$scenario" "$LINES" "$n" "$cpu" "$(echo "$t1 - $t0" | bc)" "$peak" "$idle_rss" \
      "$(sched_delta "$WORK/sched0" "$WORK/sched1")" "$IDLE_SECONDS" "$target" <<'PY'
import json, sys
subject, scenario = sys.argv[1], sys.argv[2]
lines, n = int(sys.argv[3]), int(sys.argv[4])
cpu, wall = float(sys.argv[5]), float(sys.argv[6])
peak, idle_rss = int(sys.argv[7]) * 1024, int(sys.argv[8]) * 1024
idle_s = float(sys.argv[10])
idle_ms_per_s = int(sys.argv[9]) / 1e6 / idle_s
ours = subject == "logship"
target = float(sys.argv[11]) if sys.argv[11] else None
MiB = 1024 * 1024
def result(metric, value, unit, better, target=None):
    print("RESULT " + json.dumps({"subject": subject, "scenario": scenario, "metric": metric,
          "value": value, "unit": unit, "better": better, "target": target}))
result("lines_per_cpu_second", round(lines / max(cpu, 0.01)), "lines/CPU-s", "higher", target)
result("cpu_seconds", cpu, "s", "lower")
result("wall_seconds", round(wall, 2), "s", "lower")
result("peak_rss", peak, "bytes", "lower", 23 * MiB if ours else None)
result("idle_rss", idle_rss, "bytes", "lower", 5 * MiB if ours else None)
# "No measurable CPU": under 1 ms per second (0.1% of a core; kubectl top shows 0-1m).
result("idle_cpu", round(idle_ms_per_s, 3), "ms/s", "lower", 1 if ours else None)
result("duplicates", n - lines, "documents", "lower", 0 if ours else None)
print("%s (%s): cpu %.2f s, %.0f lines/CPU-s, wall %.2f s, peak RSS %.1f MiB, idle RSS %.1f MiB, "
      "idle cpu %.3f ms/s over %g s, delivered %d (dup %d)" % (subject, scenario, cpu, lines / max(cpu, 0.01),
      wall, peak / MiB, idle_rss / MiB, idle_ms_per_s, idle_s, n, n - lines), file=sys.stderr)
PY
}

# run_logship SCENARIO TARGET [FLAGS...]
run_logship() {
  local name="$1" target="$2"; shift 2
  local port data; start_counter "$name"; port=$PORT; data="$WORK/data.${name// /_}"
  "$LOGSHIP_BIN" --path "$WORK/access.log" --es-url "http://127.0.0.1:$port" --data-dir "$data" \
    --admin-addr none --log-level warn "$@" & local pid=$!; PIDS+=($pid)
  measure logship "$name" "$port" "$pid" "$target"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "file: $LINES lines, $BYTES bytes ($(( BYTES / LINES )) bytes/line); machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run_logship "raw" 1000000
run_logship "parse nginx" 500000 --parse nginx

FB="${FLUENT_BIT:-$(command -v fluent-bit || true)}"
[ -z "$FB" ] && [ -x /opt/fluent-bit/bin/fluent-bit ] && FB=/opt/fluent-bit/bin/fluent-bit
if [ -n "$FB" ]; then
  start_counter fb; port=$PORT
  cat > "$WORK/fb.conf" <<CONF
[SERVICE]
    Flush 1
    Log_Level warn
[INPUT]
    Name tail
    Path $WORK/access.log
    Read_from_Head true
    Mem_Buf_Limit 50MB
    DB $WORK/fb.db
[OUTPUT]
    Name es
    Match *
    Host 127.0.0.1
    Port $port
    Index logs
    Suppress_Type_Name On
    Buffer_Size False
CONF
  "$FB" -c "$WORK/fb.conf" >/dev/null 2>&1 & pid=$!; PIDS+=($pid)
  echo "fluent-bit: $FB ($("$FB" --version 2>/dev/null | head -1))" >&2
  measure fluent-bit raw "$port" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
else
  echo 'MISSING {"subject": "fluent-bit", "reason": "fluent-bit is not installed (set FLUENT_BIT=/path/to/fluent-bit to compare)"}'
fi
