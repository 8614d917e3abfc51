#!/usr/bin/env bash
# Side-by-side TCP proxy benchmark on loopback: direct, ambassador, HAProxy, nginx stream, socat.
#
# Figures per target:
#   - single-stream throughput (iperf3, Gbit/s)
#   - keep-alive request/response with 32 connections (64-byte request and answer): req/s, p50, p99
#   - one connection, request/response: p50 and p99 latency (the added latency is the difference
#     to "direct")
#   - a new connection per request (8 threads): conn/s
#   - resident memory per idle open connection at N (default 5000) connections
#
# Usage: benches/ambassador/run.sh            (builds ambassador with --profile bench-fast)
#   AMBASSADOR_BIN=path  use a built binary;  SECS=3  seconds per figure;  IDLE_CONNS=5000
# Needs: iperf3, python3, rustc; optional: haproxy, nginx with the stream module
# (Debian: libnginx-mod-stream), socat. Missing references are reported, never faked.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SECS="${SECS:-3}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -z "${AMBASSADOR_BIN:-}" ]]; then
    TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
    (cd "$ROOT" && cargo build --quiet --profile bench-fast -p ambassador)
    AMBASSADOR_BIN="$TARGET/bench-fast/ambassador"
fi
rustc -O --edition 2021 -o "$WORK/loadgen" "$HERE/loadgen.rs"
LG="$WORK/loadgen"

# Backends.
IPERF_PORT=25201
RR_PORT=25202
iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 &
PIDS+=($!)
"$LG" server "127.0.0.1:$RR_PORT" &
PIDS+=($!)

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "port $1 never opened" >&2
    return 1
}
wait_port "$IPERF_PORT"
wait_port "$RR_PORT"

# Each target: a name, the port in front of iperf3 and the one in front of the rr backend,
# and the pids whose memory counts.
declare -A IPERF RR MEMPIDS
TARGETS=(direct)
IPERF[direct]=$IPERF_PORT
RR[direct]=$RR_PORT
MISSING=()

# ambassador
"$AMBASSADOR_BIN" --admin-addr none --log-level warn \
    --route "127.0.0.1:25211=127.0.0.1:$IPERF_PORT" --route "127.0.0.1:25212=127.0.0.1:$RR_PORT" &
PIDS+=($!)
MEMPIDS[ambassador]=$!
TARGETS+=(ambassador)
IPERF[ambassador]=25211
RR[ambassador]=25212

# HAProxy
if command -v haproxy >/dev/null; then
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen iperf
    bind 127.0.0.1:25221
    server s1 127.0.0.1:$IPERF_PORT
listen rr
    bind 127.0.0.1:25222
    server s1 127.0.0.1:$RR_PORT
EOF
    haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
    PIDS+=($!)
    MEMPIDS[haproxy]=$!
    TARGETS+=(haproxy)
    IPERF[haproxy]=25221
    RR[haproxy]=25222
else
    MISSING+=("haproxy (not installed)")
fi

# nginx stream
NGINX_STREAM=""
if command -v nginx >/dev/null; then
    if nginx -V 2>&1 | grep -q -- '--with-stream=dynamic'; then
        for m in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
            [[ -f "$m" ]] && NGINX_STREAM="load_module $m;"
        done
        [[ -z "$NGINX_STREAM" ]] && MISSING+=("nginx stream (module not installed: apt-get install libnginx-mod-stream)")
    elif nginx -V 2>&1 | grep -q -- '--with-stream'; then
        NGINX_STREAM=" "
    else
        MISSING+=("nginx stream (nginx built without the stream module)")
    fi
else
    MISSING+=("nginx (not installed)")
fi
if [[ -n "$NGINX_STREAM" ]]; then
    mkdir -p "$WORK/nginx/logs"
    cat >"$WORK/nginx/nginx.conf" <<EOF
$NGINX_STREAM
worker_processes 2;
worker_rlimit_nofile 19000;
error_log $WORK/nginx/logs/error.log warn;
pid $WORK/nginx/nginx.pid;
events { worker_connections 9000; }
stream {
    server { listen 127.0.0.1:25231; proxy_pass 127.0.0.1:$IPERF_PORT; }
    server { listen 127.0.0.1:25232; proxy_pass 127.0.0.1:$RR_PORT; }
}
EOF
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    MEMPIDS[nginx]="$!"
    TARGETS+=(nginx)
    IPERF[nginx]=25231
    RR[nginx]=25232
fi

# socat (one process per connection: no idle-memory figure)
if command -v socat >/dev/null; then
    socat TCP-LISTEN:25241,bind=127.0.0.1,fork,reuseaddr "TCP:127.0.0.1:$IPERF_PORT" &
    PIDS+=($!)
    socat TCP-LISTEN:25242,bind=127.0.0.1,fork,reuseaddr "TCP:127.0.0.1:$RR_PORT" &
    PIDS+=($!)
    TARGETS+=(socat)
    IPERF[socat]=25241
    RR[socat]=25242
else
    MISSING+=("socat (not installed)")
fi

for t in "${TARGETS[@]}"; do
    wait_port "${IPERF[$t]}"
    wait_port "${RR[$t]}"
done

rss_kib() { # sum of VmRSS of the given pids and their children
    local total=0 p
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
        total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

printf '%-11s %9s %10s %8s %8s %8s %8s %9s %12s\n' target "Gbit/s" "req/s(32)" "p50ms" "p99ms" "1c_p50" "1c_p99" "conn/s" "idle_B/conn"
for t in "${TARGETS[@]}"; do
    gbps=$(iperf3 -c 127.0.0.1 -p "${IPERF[$t]}" -t "$SECS" -J 2>/dev/null |
        python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' 2>/dev/null || echo "n/a")
    read -r _ rps _ p50 _ p99 _ _ < <("$LG" rr "127.0.0.1:${RR[$t]}" 32 "$SECS")
    read -r _ _ _ l50 _ l99 _ _ < <("$LG" rr "127.0.0.1:${RR[$t]}" 1 "$SECS")
    read -r _ cps _ _ _ _ _ _ < <("$LG" cps "127.0.0.1:${RR[$t]}" 8 "$SECS")
    idle="n/a"
    if [[ -n "${MEMPIDS[$t]:-}" ]]; then
        before=$(rss_kib ${MEMPIDS[$t]})
        coproc IDLE { "$LG" idle "127.0.0.1:${RR[$t]}" "$IDLE_CONNS"; }
        if read -r -t 120 line <&"${IDLE[0]}" && [[ "$line" == ready ]]; then
            after=$(rss_kib ${MEMPIDS[$t]})
            idle=$(((after - before) * 1024 / IDLE_CONNS))
        fi
        eval "exec ${IDLE[1]}>&-"
        wait "${IDLE_PID:-}" 2>/dev/null || true
    fi
    printf '%-11s %9s %10s %8s %8s %8s %8s %9s %12s\n' "$t" "$gbps" "$rps" "$p50" "$p99" "$l50" "$l99" "$cps" "$idle"
done
for m in "${MISSING[@]}"; do echo "not measured: $m"; done
echo "(${SECS}s per figure; idle memory at $IDLE_CONNS connections after one exchange each; $(nproc) cores)"
