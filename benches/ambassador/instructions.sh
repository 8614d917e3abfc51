#!/usr/bin/env bash
# User-space instructions per proxied keep-alive request and per new connection, counted by
# valgrind's callgrind (repeatable whatever else the machine does), for ambassador and, when
# installed, nginx stream (one worker, no master process).
#
# Each figure is the difference between a short and a long run through one connection (or one
# connecting thread) of loadgen, divided by the difference in requests, so start-up and shutdown
# cancel out. Usage: benches/ambassador/instructions.sh [AMBASSADOR_BINARY]
# Needs: valgrind, rustc; optional: nginx with the stream module.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:-$ROOT/target/x86_64-unknown-linux-musl/release/ambassador}"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
rustc -O --edition 2021 -o "$WORK/loadgen" "$HERE/loadgen.rs"
"$WORK/loadgen" server 127.0.0.1:25602 >/dev/null 2>&1 &

NGINX_MODULE=""
for m in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
    [[ -f "$m" ]] && NGINX_MODULE="load_module $m;"
done
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<CONF
$NGINX_MODULE
master_process off;
daemon off;
worker_processes 1;
error_log $WORK/nginx/logs/error.log warn;
pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
stream { server { listen 127.0.0.1:25612; proxy_pass 127.0.0.1:25602; } }
CONF

# count TARGET MODE SECS: "<requests> <instructions>" for one run
count() {
    local out="$WORK/cg.out" stop
    case "$1" in
    ambassador)
        valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --admin-addr none \
            --log-level warn --workers 1 --route 127.0.0.1:25612=127.0.0.1:25602 >/dev/null 2>&1 &
        stop=INT ;;
    nginx)
        valgrind --tool=callgrind --callgrind-out-file="$out" nginx -p "$WORK/nginx" \
            -c "$WORK/nginx/nginx.conf" >/dev/null 2>&1 &
        stop=TERM ;;
    esac
    local pid=$!
    for _ in $(seq 1 200); do
        (exec 3<>/dev/tcp/127.0.0.1/25612) 2>/dev/null && break
        sleep 0.1
    done
    local rate
    read -r _ rate _ < <("$WORK/loadgen" "$2" 127.0.0.1:25612 1 "$3")
    # Asked again each second: a signal that reaches nginx under valgrind while it is still
    # starting can be lost (seen once: the script waited for ever).
    for _ in $(seq 1 30); do
        kill "-$stop" "$pid" 2>/dev/null || break
        for _ in $(seq 1 10); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.1
        done
    done
    wait "$pid" 2>/dev/null || true
    echo "$(python3 -c "print(round($rate * $3))") $(awk '/^(summary|totals):/ {print $2; exit}' "$out")"
}

targets=(ambassador)
if [[ -n "$NGINX_MODULE" ]] || nginx -V 2>&1 | grep -q -- '--with-stream '; then
    targets+=(nginx)
else
    echo "nginx stream not installed: ambassador only" >&2
fi
for t in "${targets[@]}"; do
    for mode in rr cps; do
        read -r n1 i1 < <(count "$t" "$mode" 2)
        read -r n2 i2 < <(count "$t" "$mode" 5)
        what=$([[ $mode == rr ]] && echo "keep-alive request" || echo "new connection")
        printf '%-11s %8.0f user-space instructions per %s\n' "$t" \
            "$(python3 -c "print(($i2 - $i1) / ($n2 - $n1))")" "$what"
    done
done
