#!/usr/bin/env bash
# waitfor benchmark: time from a dependency becoming ready to waitfor exiting (p50/p99),
# start-up to first check, one real PostgreSQL check end to end, binary size; and the same
# latency for the guide's `until nc -z HOST PORT; do sleep 2; done` loop.
#
# Usage: benches/waitfor/run.sh            (builds with the bench-fast profile)
#        BIN=path/to/waitfor RUNS=50 LOOP_RUNS=10 benches/waitfor/run.sh
# Deterministic: the delays before the dependency opens come from a seeded generator.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-50}
LOOP_RUNS=${LOOP_RUNS:-10}
PROFILE=${PROFILE:-bench-fast}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-waitfor}
if [ -z "${BIN:-}" ]; then
  cargo build -q --profile "$PROFILE" -p waitfor
  BIN="$CARGO_TARGET_DIR/$PROFILE/waitfor"
fi
echo "binary: $BIN"
echo "load average: $(cut -d" " -f1-3 /proc/loadavg) on $(nproc) cores (figures are noisy on a busy machine)"
echo "size: $(stat -c %s "$BIN") bytes ($(file -b "$BIN" | cut -d, -f1-2))"

python3 - "$BIN" "$RUNS" "$LOOP_RUNS" <<'PY'
import os, random, shutil, socket, subprocess, sys, time

bin_, runs, loop_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
env = {k: v for k, v in os.environ.items() if not k.startswith("WAIT")}
env["LOG_LEVEL"] = "warn"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def show(name, xs):
    print(f"{name}: n={len(xs)} min={min(xs)*1000:.1f}ms p50={pct(xs,50)*1000:.1f}ms p99={pct(xs,99)*1000:.1f}ms max={max(xs)*1000:.1f}ms")

def ready_to_exit(cmd_for_port, n):
    out = []
    for _ in range(n):
        port = free_port()
        p = subprocess.Popen(cmd_for_port(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))   # the dependency comes up some time later
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("127.0.0.1", port)); l.listen(16)
        t_ready = time.monotonic()
        p.wait(timeout=30)
        out.append(time.monotonic() - t_ready)
        l.close()
    return out

def startup_to_first_check(n):
    out = []
    for _ in range(n):
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(16)
        port = l.getsockname()[1]
        t0 = time.monotonic()
        p = subprocess.Popen([bin_, "--admin-addr", "127.0.0.1:0", f"tcp://127.0.0.1:{port}"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c, _ = l.accept()
        out.append(time.monotonic() - t0)
        c.close(); p.wait(timeout=10); l.close()
    return out

def end_to_end(url, n):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = subprocess.run([bin_, "--admin-addr", "127.0.0.1:0", url], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.monotonic() - t0)
        if r.returncode != 0:
            return None
    return out

print(f"-- waitfor (default settings), {runs} runs, dependency opens 0.3-1.5 s after start")
show("waitfor ready->exit", ready_to_exit(
    lambda port: [bin_, "--admin-addr", "127.0.0.1:0", f"tcp://127.0.0.1:{port}"], runs))
show("waitfor spawn->first check (connect seen by the dependency)", startup_to_first_check(runs))
pg = end_to_end("postgres://postgres@127.0.0.1:5432/postgres", min(runs, 20))
if pg is None:
    print("waitfor spawn->exit against PostgreSQL 127.0.0.1:5432: not measured (no server answering)")
else:
    show("waitfor spawn->exit against a ready PostgreSQL (SELECT 1)", pg)

print(f"-- guide loop, {loop_runs} runs")
if shutil.which("nc"):
    loop = lambda port: ["sh", "-c", f"until nc -z 127.0.0.1 {port}; do sleep 2; done"]
    show("guide `until nc -z; do sleep 2; done` ready->exit", ready_to_exit(loop, loop_runs))
elif shutil.which("bash"):
    print("nc not found: running the same loop with bash's /dev/tcp as the probe")
    loop = lambda port: ["bash", "-c", f"until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 2; done"]
    show("guide loop (bash /dev/tcp probe, sleep 2) ready->exit", ready_to_exit(loop, loop_runs))
else:
    print("neither nc nor bash found: guide loop not measured")
PY
