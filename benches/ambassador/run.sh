#!/usr/bin/env bash
# Side-by-side TCP proxy benchmark on loopback: direct, ambassador, HAProxy, nginx stream, socat.
#
# Figures per target:
#   - single-stream throughput (iperf3, Gbit/s)
#   - keep-alive HTTP through the proxy to an nginx backend (wrk, 32 connections): req/s, p50, p99,
#     the proxy's CPU time per request (steadier than req/s on a loaded machine), and the whole
#     machine's (client, backend and proxy: what a proxy costs the others too, for instance
#     through how it batches their wakeups; on 2 cores the req/s figures swing with how much
#     of the run the scheduler leaves a core idle, which this figure does not see)
#   - keep-alive request/response with 32 connections (64-byte request and answer): req/s, p50, p99,
#     the machine's CPU time per request
#   - one connection, request/response: p50 and p99 latency (the added latency is the difference
#     to "direct")
#   - a new connection per request: conn/s, the issue's way (wrk with `Connection: close`
#     through the proxy to nginx, 32 connections) and with the 64-byte exchange (8 threads);
#     the server closes first in both, so the client's TIME_WAIT sockets never cap the rate
#   - resident memory per idle open connection at N (default 5000) connections
# Each round starts one target later than the one before. A human-readable table goes to stderr,
# with the rounds in which the ambassador beat each reference. stdout has one `RESULT {json}`
# line per figure and one `MISSING {json}` per reference not installed, for benches/run.py.
# The ambassador's lines carry those round counts as their note, and the issue's targets: the
# best of HAProxy and nginx stream in the same run, 70% of direct for the single stream, 16 KiB
# per idle connection.
#
# Usage: benches/ambassador/run.sh            (builds ambassador with --profile bench-fast)
#   AMBASSADOR_BIN=path  use a built binary;  SECS=3  seconds per figure;  IDLE_CONNS=5000
#   ROUNDS=3  rounds (each figure for every target in turn; medians are reported)
#   BASELINE_BIN=path  also run another ambassador build (say, the previous commit's) as the
#   target "baseline", in the same rounds
#   FIGURES="http rr"  only these groups of figures (gbps http http_cps rr l cps idle; default all)
#   TARGETS_ONLY="ambassador haproxy nginx"  only these targets (to spend many rounds on a few)
# Beside the medians, each ambassador figure gets a paired comparison with each reference: the
# median over rounds of ambassador's figure divided by the reference's in the same round, with
# a distribution-free 95% confidence interval (order statistics of the ratios, from 6 rounds
# on), and a verdict: "ahead" or "behind" when the interval excludes 1, "level" when it does not.
# Rounds move together (a busy moment slows every target of a round), so the paired ratio sees
# a difference that medians of ±20% rounds cannot; a difference of a few per cent still needs
# tens of rounds (ROUNDS=40 SECS=1 FIGURES=http TARGETS_ONLY=...) to come out of "level".
# Needs: iperf3, python3, rustc; optional: haproxy, nginx (backend for wrk, and the stream module,
# Debian: libnginx-mod-stream), wrk, socat. Missing references are reported, never faked.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SECS="${SECS:-3}"
ROUNDS="${ROUNDS:-3}"
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
HTTP_PORT=25203
iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 &
PIDS+=($!)
"$LG" server "127.0.0.1:$RR_PORT" &
PIDS+=($!)
HTTP=""
if command -v nginx >/dev/null && command -v wrk >/dev/null; then
    mkdir -p "$WORK/http/logs"
    cat >"$WORK/http/nginx.conf" <<EOF
worker_processes 2;
error_log $WORK/http/logs/error.log warn;
pid $WORK/http/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/http/body;
    proxy_temp_path $WORK/http/proxy;
    fastcgi_temp_path $WORK/http/fastcgi;
    uwsgi_temp_path $WORK/http/uwsgi;
    scgi_temp_path $WORK/http/scgi;
    keepalive_requests 100000000;
    server { listen 127.0.0.1:$HTTP_PORT; location / { return 200 "ok\n"; } }
}
EOF
    nginx -p "$WORK/http" -c "$WORK/http/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    HTTP=1
fi

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
[[ -n "$HTTP" ]] && wait_port "$HTTP_PORT"

# Each target: a name, the port in front of iperf3 and the one in front of the rr backend,
# and the pids whose memory counts.
FIGURES=" ${FIGURES:-gbps http http_cps rr l cps idle} "
want() { [[ "$FIGURES" == *" $1 "* ]]; }
declare -A IPERF RR WEB MEMPIDS
TARGETS=(direct)
IPERF[direct]=$IPERF_PORT
RR[direct]=$RR_PORT
WEB[direct]=$HTTP_PORT
MISSING=()

# start_ambassador NAME BINARY BASE_PORT: an ambassador build as target NAME, on ports
# BASE_PORT+1 (iperf3), +2 (rr backend), +3 (HTTP backend)
start_ambassador() {
    local name=$1 bin=$2 base=$3
    "$bin" --admin-addr none --log-level warn \
        --route "127.0.0.1:$((base + 1))=127.0.0.1:$IPERF_PORT" \
        --route "127.0.0.1:$((base + 2))=127.0.0.1:$RR_PORT" \
        --route "127.0.0.1:$((base + 3))=127.0.0.1:$HTTP_PORT" &
    PIDS+=($!)
    MEMPIDS[$name]=$!
    TARGETS+=("$name")
    IPERF[$name]=$((base + 1))
    RR[$name]=$((base + 2))
    WEB[$name]=$((base + 3))
}
start_ambassador ambassador "$AMBASSADOR_BIN" 25210
# another ambassador build, to compare a change in the same rounds
if [[ -n "${BASELINE_BIN:-}" ]]; then
    start_ambassador baseline "$BASELINE_BIN" 25250
fi

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
listen web
    bind 127.0.0.1:25223
    server s1 127.0.0.1:$HTTP_PORT
EOF
    haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
    PIDS+=($!)
    MEMPIDS[haproxy]=$!
    TARGETS+=(haproxy)
    IPERF[haproxy]=25221
    RR[haproxy]=25222
    WEB[haproxy]=25223
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
    server { listen 127.0.0.1:25233; proxy_pass 127.0.0.1:$HTTP_PORT; }
}
EOF
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    MEMPIDS[nginx]="$!"
    TARGETS+=(nginx)
    IPERF[nginx]=25231
    RR[nginx]=25232
    WEB[nginx]=25233
fi

# socat (one process per connection: no idle-memory figure)
if command -v socat >/dev/null; then
    socat TCP-LISTEN:25241,bind=127.0.0.1,fork,reuseaddr "TCP:127.0.0.1:$IPERF_PORT" &
    PIDS+=($!)
    socat TCP-LISTEN:25242,bind=127.0.0.1,fork,reuseaddr "TCP:127.0.0.1:$RR_PORT" &
    PIDS+=($!)
    socat TCP-LISTEN:25243,bind=127.0.0.1,fork,reuseaddr "TCP:127.0.0.1:$HTTP_PORT" &
    PIDS+=($!)
    TARGETS+=(socat)
    IPERF[socat]=25241
    RR[socat]=25242
    WEB[socat]=25243
else
    MISSING+=("socat (not installed)")
fi

if [[ -n "${TARGETS_ONLY:-}" ]]; then
    KEEP=()
    for t in "${TARGETS[@]}"; do
        [[ " $TARGETS_ONLY " == *" $t "* ]] && KEEP+=("$t")
    done
    TARGETS=("${KEEP[@]}")
fi
for t in "${TARGETS[@]}"; do
    wait_port "${IPERF[$t]}"
    wait_port "${RR[$t]}"
    [[ -n "$HTTP" ]] && wait_port "${WEB[$t]}"
done
[[ -z "$HTTP" ]] && MISSING+=("wrk (wrk or nginx not installed: no HTTP figure)")

rss_kib() { # sum of VmRSS of the given pids and their children
    local total=0 p
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
        total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
cpu_ticks() { # utime+stime in clock ticks of the given pids and their children
    local total=0 p
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)
machine_ticks() { # busy clock ticks of the whole machine (user, nice, system, irq, softirq)
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat
}
# per_request TICKS REQUESTS_PER_SECOND: microseconds of CPU per request over one figure
per_request() {
    if [[ "$2" == nan ]]; then echo nan; return; fi
    python3 -c "print('%.2f' % ($1 / $HZ * 1e6 / ($2 * $SECS)))"
}

# wrk's summary as "req/s p50_ms p99_ms"
wrk_figures() {
    python3 -c '
import re, sys
t = sys.stdin.read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M)
p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
print("%.0f %.3f %.3f" % (float(rps.group(1)) if rps else float("nan"),
      ms(p50.group(1)) if p50 else float("nan"), ms(p99.group(1)) if p99 else float("nan")))'
}

# Figures are taken in rounds: each figure for every target one after the other, ROUNDS times,
# and the median kept, so a burst of load from elsewhere hits every target alike.
declare -A V # V[target:figure] = "value value ..." (one per round)
add() { V[$1]="${V[$1]:-} ${2:-nan}"; }
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    # Each round starts at the next target, so no target always runs right after the same one
    # (TIME_WAIT sockets, a neighbour's leftover work and cache state follow the order).
    k=$(((round - 1) % ${#TARGETS[@]}))
    ORDER=("${TARGETS[@]:k}" "${TARGETS[@]:0:k}")
    want gbps && for t in "${ORDER[@]}"; do
        add "$t:gbps" "$(iperf3 -c 127.0.0.1 -p "${IPERF[$t]}" -t "$SECS" -J 2>/dev/null |
            python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' 2>/dev/null || echo nan)"
    done
    if [[ -n "$HTTP" ]] && want http; then
        for t in "${ORDER[@]}"; do
            c0=$(cpu_ticks ${MEMPIDS[$t]:-})
            m0=$(machine_ticks)
            read -r hrps h50 h99 < <(wrk -t2 -c32 -d"${SECS}s" --latency "http://127.0.0.1:${WEB[$t]}/" 2>/dev/null | wrk_figures)
            m1=$(machine_ticks)
            c1=$(cpu_ticks ${MEMPIDS[$t]:-})
            add "$t:http_mcpu" "$(per_request $((m1 - m0)) "$hrps")"
            add "$t:http_rps" "$hrps"
            add "$t:http_p50" "$h50"
            add "$t:http_p99" "$h99"
            if [[ -n "${MEMPIDS[$t]:-}" && "$hrps" != nan ]]; then
                add "$t:cpu_us" "$(python3 -c "print('%.2f' % (($c1 - $c0) / $HZ * 1e6 / ($hrps * $SECS)))")"
            elif [[ -n "${MEMPIDS[$t]:-}" ]]; then
                add "$t:cpu_us" nan # keeps the rounds paired
            fi
        done
    fi
    if [[ -n "$HTTP" ]] && want http_cps; then
        # The issue's connections-per-second figure: wrk asking for `Connection: close`, so the
        # nginx backend closes after each answer and every request is a new connection.
        for t in "${ORDER[@]}"; do
            read -r crps _ _ < <(wrk -t2 -c32 -d"${SECS}s" -H 'Connection: close' "http://127.0.0.1:${WEB[$t]}/" 2>/dev/null | wrk_figures)
            add "$t:http_cps" "$crps"
        done
    fi
    want rr && for t in "${ORDER[@]}"; do
        m0=$(machine_ticks)
        read -r _ rps _ p50 _ p99 _ _ < <("$LG" rr "127.0.0.1:${RR[$t]}" 32 "$SECS")
        m1=$(machine_ticks)
        add "$t:rr_mcpu" "$(per_request $((m1 - m0)) "$rps")"
        add "$t:rr_rps" "$rps"
        add "$t:rr_p50" "$p50"
        add "$t:rr_p99" "$p99"
    done
    want l && for t in "${ORDER[@]}"; do
        read -r _ _ _ l50 _ l99 _ _ < <("$LG" rr "127.0.0.1:${RR[$t]}" 1 "$SECS")
        add "$t:l50" "$l50"
        add "$t:l99" "$l99"
    done
    want cps && for t in "${ORDER[@]}"; do
        read -r _ cps _ _ _ _ _ _ < <("$LG" cps "127.0.0.1:${RR[$t]}" 8 "$SECS")
        add "$t:cps" "$cps"
    done
done
want idle && for t in "${TARGETS[@]}"; do
    if [[ -n "${MEMPIDS[$t]:-}" ]]; then
        before=$(rss_kib ${MEMPIDS[$t]})
        coproc IDLE { "$LG" idle "127.0.0.1:${RR[$t]}" "$IDLE_CONNS"; }
        if read -r -t 120 line <&"${IDLE[0]}" && [[ "$line" == ready ]]; then
            after=$(rss_kib ${MEMPIDS[$t]})
            add "$t:idle" "$(((after - before) * 1024 / IDLE_CONNS))"
        fi
        eval "exec ${IDLE[1]}>&-"
        wait "${IDLE_PID:-}" 2>/dev/null || true
    fi
done

# RESULT lines: every target's figures; the ambassador's with its target (the best reference).
VALUES=""
for k in "${!V[@]}"; do VALUES+="$k=${V[$k]}"$'\n'; done
TARGET_LIST="${TARGETS[*]}" IDLE_CONNS="$IDLE_CONNS" ROUNDS="$ROUNDS" python3 -c '
import json, math, os, sys
import statistics
v, spread, raw = {}, {}, {}
for line in sys.stdin.read().splitlines():
    k, _, xs = line.partition("=")
    raw[k] = []
    for x in xs.split():
        try:
            raw[k].append(float(x))
        except ValueError:
            raw[k].append(float("nan"))
    vals = [f for f in raw[k] if not math.isnan(f)]
    if vals:
        v[k] = round(statistics.median(vals), 3)
        spread[k] = (min(vals), max(vals))
targets = os.environ["TARGET_LIST"].split()
cols = [("gbps", "Gbit/s"), ("http_rps", "http_rps"), ("http_p50", "http_p50"), ("http_p99", "http_p99"),
        ("cpu_us", "cpu_us/req"), ("http_mcpu", "m_us/req"), ("rr_rps", "req/s(32)"), ("rr_mcpu", "m_us/rr"), ("rr_p50", "p50ms"), ("rr_p99", "p99ms"),
        ("l50", "1c_p50"), ("l99", "1c_p99"), ("http_cps", "http_conn/s"), ("cps", "conn/s"),
        ("idle", "idle_B/conn")]
print("medians of %s rounds" % os.environ["ROUNDS"], file=sys.stderr)
print("%-11s" % "target" + "".join("%12s" % c for _, c in cols), file=sys.stderr)
for t in targets:
    print("%-11s" % t + "".join("%12s" % (("%g" % v[t + ":" + k]) if t + ":" + k in v else "n/a") for k, _ in cols), file=sys.stderr)
for t in targets:
    for k, c in cols:
        if t + ":" + k in spread and os.environ["ROUNDS"] != "1":
            lo, hi = spread[t + ":" + k]
            print("  %s %s: min %g max %g" % (t, c, lo, hi), file=sys.stderr)
refs = [t for t in ("haproxy", "nginx") if t in targets]
subject = {"direct": "direct", "ambassador": "ambassador", "haproxy": "haproxy",
           "nginx": "nginx stream", "socat": "socat", "baseline": "ambassador (baseline build)"}
figures = [
    # key, scenario, metric, unit, better
    ("gbps", "iperf3 single stream", "throughput", "Gbit/s", "higher"),
    ("http_rps", "wrk HTTP keep-alive, 32 connections", "requests_per_second", "req/s", "higher"),
    ("http_p50", "wrk HTTP keep-alive, 32 connections", "p50_latency", "ms", "lower"),
    ("http_p99", "wrk HTTP keep-alive, 32 connections", "p99_latency", "ms", "lower"),
    ("cpu_us", "wrk HTTP keep-alive, 32 connections", "proxy_cpu_per_request", "us", "lower"),
    ("http_mcpu", "wrk HTTP keep-alive, 32 connections", "machine_cpu_per_request", "us", "lower"),
    ("rr_rps", "64 B request/response, 32 connections", "requests_per_second", "req/s", "higher"),
    ("rr_mcpu", "64 B request/response, 32 connections", "machine_cpu_per_request", "us", "lower"),
    ("rr_p99", "64 B request/response, 32 connections", "p99_latency", "ms", "lower"),
    ("l50", "64 B request/response, 1 connection", "p50_latency", "ms", "lower"),
    ("l99", "64 B request/response, 1 connection", "p99_latency", "ms", "lower"),
    ("http_cps", "wrk HTTP, new connection per request, 32 connections", "connections_per_second", "conn/s", "higher"),
    ("cps", "new connection per request, 8 threads", "connections_per_second", "conn/s", "higher"),
    ("idle", "%s idle connections" % os.environ["IDLE_CONNS"], "rss_per_connection", "bytes", "lower"),
]
def pairs(key, ref):
    """(ambassador, ref) figures of the rounds where both were measured."""
    a, b = raw.get("ambassador:" + key, []), raw.get(ref + ":" + key, [])
    return [(x, y) for x, y in zip(a, b) if not (math.isnan(x) or math.isnan(y))]
def rounds_ahead(key, ref, better):
    """Rounds in which the ambassador beat `ref` on `key` (same round: same conditions)."""
    ps = pairs(key, ref)
    won = sum(1 for x, y in ps if (x > y if better == "higher" else x < y))
    return "%d/%d" % (won, len(ps))
def paired(key, ref, better):
    """Median over rounds of ambassador/ref in the same round, its distribution-free 95%
    confidence interval (order statistics d and n-d+1 of the sorted ratios, d the largest with
    P(Binomial(n, 1/2) < d) <= 2.5%), and the verdict; None below 6 rounds."""
    rs = sorted(x / y for x, y in pairs(key, ref) if y > 0)
    n = len(rs)
    d, cum = 0, 0.0
    while cum + math.comb(n, d) / 2 ** n <= 0.025:
        cum += math.comb(n, d) / 2 ** n
        d += 1
    if d == 0:
        return None
    lo, hi = rs[d - 1], rs[n - d]
    if (lo > 1) if better == "higher" else (hi < 1):
        verdict = "ahead"
    elif (hi < 1) if better == "higher" else (lo > 1):
        verdict = "behind"
    else:
        verdict = "level"
    return statistics.median(rs), lo, hi, verdict
def paired_text(key, ref, better):
    p = paired(key, ref, better)
    return "" if p is None else "ratio %.3f [%.3f, %.3f] %s" % p
if int(os.environ["ROUNDS"]) > 1 and "ambassador" in targets:
    print("rounds in which ambassador was ahead; paired ratio ambassador/reference, median over "
          "rounds [95% CI], verdict:", file=sys.stderr)
    for key, _, metric, _, better in figures:
        if key != "idle" and "ambassador:" + key in raw:
            print("  %-9s %-23s %s" % (key, metric, "  ".join(
                "%s %s %s" % (r, rounds_ahead(key, r, better), paired_text(key, r, better))
                for r in refs + [t for t in targets if t == "baseline"])), file=sys.stderr)
for key, scenario, metric, unit, better in figures:
    for t in targets:
        if t + ":" + key not in v:
            continue
        r = {"subject": subject[t], "scenario": scenario, "metric": metric,
             "value": v[t + ":" + key], "unit": unit, "better": better}
        if t == "ambassador":
            best = [v[x + ":" + key] for x in refs if x + ":" + key in v]
            if key == "idle":
                r["target"] = 16384
            elif best:
                r["target"] = max(best) if better == "higher" else min(best)
                if int(os.environ["ROUNDS"]) > 1:
                    r["note"] = "ahead in " + ", ".join(
                        "%s of the rounds against %s" % (rounds_ahead(key, x, better), subject[x]) for x in refs)
                    verdicts = [(x, paired(key, x, better)) for x in refs]
                    if all(p is not None for _, p in verdicts):
                        r["note"] += "; paired (same-round ratio, 95% CI): " + ", ".join(
                            "%s against %s (%.3f, %.3f-%.3f)" % (p[3], subject[x], p[0], p[1], p[2])
                            for x, p in verdicts)
        print("RESULT " + json.dumps(r))
if v.get("direct:gbps", 0) > 0 and "ambassador:gbps" in v:
    print("RESULT " + json.dumps({"subject": "ambassador", "scenario": "iperf3 single stream",
        "metric": "share_of_direct", "value": round(100 * v["ambassador:gbps"] / v["direct:gbps"], 1),
        "unit": "%", "better": "higher", "target": 70}))
' <<<"$VALUES"
for m in "${MISSING[@]}"; do
    echo "not measured: $m" >&2
    python3 -c 'import json,sys; print("MISSING " + json.dumps({"subject": sys.argv[1].split(" (")[0], "reason": sys.argv[1]}))' "$m"
done
echo "(${SECS}s per figure, median of $ROUNDS rounds; idle memory at $IDLE_CONNS connections after one exchange each; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
