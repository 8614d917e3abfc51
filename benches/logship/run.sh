#!/usr/bin/env bash
# logship benchmark: 1,000,000 nginx-style lines (~148 bytes, deterministic) already in one
# file, shipped to a local `_bulk` endpoint that only counts. Measures, per shipper:
# CPU-seconds (utime+stime from /proc), lines per CPU-second, peak RSS (VmHWM), and idle RSS and
# idle CPU over a few seconds after delivery. Runs fluent-bit side by side when installed.
#
# usage: benches/logship/run.sh [LINES]
#   LOGSHIP_BIN   logship binary (default: target/bench-fast/logship under CARGO_TARGET_DIR or
#                 ./target; build it with `cargo build --profile bench-fast -p logship`)
#   FLUENT_BIT    fluent-bit binary (default: found on PATH or /opt/fluent-bit/bin/fluent-bit)
#   IDLE_SECONDS  how long to watch the idle process (default 5)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LINES="${1:-1000000}"
IDLE_SECONDS="${IDLE_SECONDS:-5}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
LOGSHIP_BIN="${LOGSHIP_BIN:-$TARGET/bench-fast/logship}"
[ -x "$LOGSHIP_BIN" ] || { echo "logship binary not found at $LOGSHIP_BIN: build it with cargo build --profile bench-fast -p logship (or set LOGSHIP_BIN)" >&2; exit 2; }

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

# start_counter NAME: starts a counting endpoint; sets PORT.
start_counter() {
  local portfile="$WORK/port.$1"
  python3 "$HERE/bulk_counter.py" "$portfile" >/dev/null 2>&1 & PIDS+=($!)
  for _ in $(seq 200); do [ -s "$portfile" ] && break; sleep 0.05; done
  PORT=$(cat "$portfile")
}

count() { curl -fsS "http://127.0.0.1:$1/_count" 2>/dev/null || echo 0; }

# measure NAME PORT PID: waits for every line, then prints the figures.
measure() {
  local name="$1" port="$2" pid="$3" t0 t1 n
  t0=$(date +%s.%N)
  while :; do
    n=$(count "$port")
    [ "$n" -ge "$LINES" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "$name exited early" >&2; return 1; }
    sleep 0.05
  done
  t1=$(date +%s.%N)
  local cpu peak idle_cpu0 idle_cpu1 idle_rss
  cpu=$(cpu_seconds "$pid"); peak=$(status_kib "$pid" VmHWM)
  idle_cpu0=$cpu
  sleep "$IDLE_SECONDS"
  idle_cpu1=$(cpu_seconds "$pid"); idle_rss=$(status_kib "$pid" VmRSS)
  n=$(count "$port")
  awk -v name="$name" -v lines="$LINES" -v n="$n" -v cpu="$cpu" -v peak="$peak" -v rss="$idle_rss" \
      -v wall="$(echo "$t1 - $t0" | bc)" -v ic="$(echo "$idle_cpu1 - $idle_cpu0" | bc)" -v is="$IDLE_SECONDS" 'BEGIN {
    printf "%-28s cpu %6.2f s  %9.0f lines/cpu-s  wall %6.2f s  peak RSS %6.1f MB  idle RSS %5.1f MB  idle cpu %.2f s/%ds  delivered %d (dup %d)\n",
      name, cpu, (cpu > 0 ? lines / cpu : 0), wall, peak / 1024, rss / 1024, ic, is, n, n - lines }'
}

run_logship() {
  local name="$1"; shift
  local port data; start_counter "$name"; port=$PORT; data="$WORK/data.${name// /_}"
  "$LOGSHIP_BIN" --path "$WORK/access.log" --es-url "http://127.0.0.1:$port" --data-dir "$data" \
    --admin-addr none --log-level warn "$@" & local pid=$!; PIDS+=($pid)
  measure "$name" "$port" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "file: $LINES lines, $BYTES bytes ($(( BYTES / LINES )) bytes/line); machine: $(nproc) cores" >&2
run_logship "logship"
run_logship "logship --parse nginx" --parse nginx

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
  measure "fluent-bit ($("$FB" --version 2>/dev/null | head -1))" "$port" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
else
  echo "fluent-bit: not installed here (set FLUENT_BIT=/path/to/fluent-bit to compare); no figure for it" 
fi
