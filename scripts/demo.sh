#!/usr/bin/env bash
# The main job: logship on its embedded default. With no Elasticsearch configured it ships to
# stdout as NDJSON, one record per line. An app stand-in writes nginx-style access-log lines to a
# file in a temporary folder; logship tails it (from the head) and keeps following it.
# Ctrl-C stops both; logship flushes and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p logship
work=$(mktemp -d)
trap 'kill "$writer" 2>/dev/null || true; rm -rf "$work"' EXIT
# Ctrl-C and SIGTERM reach logship too (the same process group); with these traps the shell
# runs its exit trap only once logship, in the foreground, has flushed, written its checkpoint
# into $work/data and exited (without them a SIGTERM would remove the folder under it).
trap 'exit 130' INT
trap 'exit 143' TERM

# The app: a few lines at once, then one line a second.
log="$work/app.log"
line() {
  printf '10.0.0.%d - - [%s] "GET /api/items/%d HTTP/1.1" 200 %d "-" "curl/8.5.0"\n' \
    "$((RANDOM % 250 + 1))" "$(date -u '+%d/%b/%Y:%H:%M:%S +0000')" "$((RANDOM % 1000))" "$((RANDOM % 5000 + 100))"
}
for _ in 1 2 3 4 5; do line >>"$log"; done
( while sleep 1; do line >>"$log"; done ) &
writer=$!

echo "logship is tailing $log and printing records to stdout (Ctrl-C to stop)" >&2
target/release/logship \
  --path "$work/*.log" \
  --start-at head \
  --data-dir "$work/data" \
  --parse nginx \
  --field service=demo \
  --admin-addr 127.0.0.1:9471
