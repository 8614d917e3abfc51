#!/usr/bin/env bash
# waitfor benchmark, side by side with the guide's init-container loop
# (`until nc -z HOST PORT; do sleep 2; done`, subject "nc loop"):
#   - ready->exit: time from a dependency starting to listen to the waiter exiting (p50, p99);
#     the dependency opens 0.3-1.5 s after the waiter starts (seeded, so runs are comparable);
#   - spawn->first check: time from spawning the waiter to its first connect reaching the
#     dependency (includes fork/exec, as a pod start does), and, for waitfor, exec->first
#     connect inside the process as strace timestamps it (no Python spawn overhead);
#   - waitfor spawn->exit against a ready PostgreSQL (`SELECT 1`), when one answers on :5432;
#   - the size of the static (musl) release binary.
# Prints `RESULT {json}` lines on stdout (benches/run.py collects them); everything else goes
# to stderr.
#
# The harness and the programs it runs get SCHED_FIFO priority 10 when `chrt` is allowed
# (PRIO=normal to turn it off): they sleep almost all the time, and the priority keeps other
# work on the machine (compilers) from adding its scheduling delays to the latencies. Both
# subjects get the same treatment; the figures say which was used.
#
# Usage: benches/waitfor/run.sh      (builds the static release binary if needed: slow, fat LTO)
#        BIN=path/to/waitfor RUNS=50 LOOP_RUNS=10 PRIO=normal benches/waitfor/run.sh
# OPT_LEVEL (default z) is the opt-level of that build: waitfor is built alone with it (see
# agents/waitfor/README.md, "Size").
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-50}
LOOP_RUNS=${LOOP_RUNS:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-waitfor}
if [ -z "${BIN:-}" ]; then
  CARGO_PROFILE_RELEASE_OPT_LEVEL=${OPT_LEVEL:-z} \
    cargo build -q --release --target x86_64-unknown-linux-musl -p waitfor >&2
  BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/waitfor"
  echo "built with opt-level ${OPT_LEVEL:-z}" >&2
  export BIN_NOTE="built alone (-p waitfor) at opt-level ${OPT_LEVEL:-z}"
fi
RT=()
if [ "${PRIO:-rt}" != normal ] && chrt -f 10 true 2>/dev/null; then
  RT=(chrt -f 10)
  export BENCH_PRIO="SCHED_FIFO 10"
else
  export BENCH_PRIO="normal"
fi
{
  echo "binary: $BIN ($(file -b "$BIN" | cut -d, -f1-2))"
  echo "load average: $(cut -d" " -f1-3 /proc/loadavg) on $(nproc) cores (latencies are noisy on a busy machine)"
  echo "scheduling: $BENCH_PRIO"
} >&2

exec "${RT[@]}" python3 - "$BIN" "$RUNS" "$LOOP_RUNS" <<'PY'
import json, os, random, re, shutil, socket, subprocess, sys, tempfile, time

bin_, runs, loop_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = {k: v for k, v in os.environ.items() if not k.startswith("WAIT")}
env["LOG_LEVEL"] = "warn"
prio = os.environ.get("BENCH_PRIO", "normal")
load = open("/proc/loadavg").read().split()[0]

def log(*a):
    print(*a, file=sys.stderr, flush=True)

def result(subject, scenario, metric, value, unit, better="lower", target=None, note=None):
    r = {"subject": subject, "scenario": scenario, "metric": metric,
         "value": round(value, 3), "unit": unit, "better": better}
    if target is not None:
        r["target"] = target
    notes = [n for n in (note, f"scheduling {prio}, load {load} on {os.cpu_count()} cores") if n]
    if scenario != "binary":
        note = "; ".join(notes)
    if note:
        r["note"] = note
    print("RESULT " + json.dumps(r), flush=True)

def missing(subject, reason):
    print("MISSING " + json.dumps({"subject": subject, "reason": reason}), flush=True)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def show(name, xs):
    log(f"{name}: n={len(xs)} min={min(xs)*1000:.1f}ms p50={pct(xs,50)*1000:.1f}ms "
        f"p99={pct(xs,99)*1000:.1f}ms max={max(xs)*1000:.1f}ms")

def ready_to_exit(cmd_for_port, n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        port = free_port()
        p = subprocess.Popen(cmd_for_port(port), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))   # the dependency comes up some time later
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("127.0.0.1", port)); l.listen(16)
        t_ready = time.monotonic()
        # A blocking wait: Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which
        # would add up to 50 ms to every figure.
        p.wait()
        out.append(time.monotonic() - t_ready)
        l.close()
    return out

def spawn_to_first_check(cmd_for_port, n):
    out = []
    for _ in range(n):
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(16)
        port = l.getsockname()[1]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd_for_port(port), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        c, _ = l.accept()
        out.append(time.monotonic() - t0)
        c.close(); p.wait(); l.close()
    return out

def exec_to_first_connect(n):
    """execve -> first connect() of waitfor, from strace timestamps (only those two syscalls
    are traced, through seccomp-bpf, so the tracing itself costs little)."""
    if not shutil.which("strace"):
        return None
    out = []
    for _ in range(n):
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(16)
        port = l.getsockname()[1]
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as f:
            r = subprocess.run(["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=execve,connect",
                                "-o", f.name, bin_, "--admin-addr", "127.0.0.1:0",
                                f"tcp://127.0.0.1:{port}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            text = f.read()
        l.close()
        ex = re.search(r"^\d+\s+([\d.]+) execve\(", text, re.M)
        co = re.search(r"^\d+\s+([\d.]+) connect\(", text, re.M)
        if r.returncode != 0 or not ex or not co:
            return None
        out.append(float(co.group(1)) - float(ex.group(1)))
    return out

def end_to_end(url, n):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = subprocess.run([bin_, "--admin-addr", "127.0.0.1:0", "--timeout", "5s", url], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.monotonic() - t0)
        if r.returncode != 0:
            return None
    return out

W = "waitfor"
waitfor_cmd = lambda port: [bin_, "--admin-addr", "127.0.0.1:0", "--timeout", "30s",
                             f"tcp://127.0.0.1:{port}"]

# Size of the static binary.
info = subprocess.run(["file", "-b", bin_], capture_output=True, text=True).stdout
size = os.path.getsize(bin_)
if "statically linked" in info or "static-pie" in info:
    result(W, "binary", "static_binary_size", size / 1e6, "MB", target=4,
           note=os.environ.get("BIN_NOTE", f"{bin_} as given"))
else:
    log(f"{bin_} is not a static binary ({info.strip()}): size not reported")

log(f"-- waitfor (default settings), {runs} runs, dependency opens 0.3-1.5 s after start")
xs = ready_to_exit(waitfor_cmd, runs, 42)
show("waitfor ready->exit", xs)
result(W, "ready_to_exit", "p50", pct(xs, 50) * 1000, "ms")
result(W, "ready_to_exit", "p99", pct(xs, 99) * 1000, "ms", target=100)

xs = spawn_to_first_check(waitfor_cmd, runs)
show("waitfor spawn->first check (connect seen by the dependency)", xs)
result(W, "start_to_first_check", "p50", pct(xs, 50) * 1000, "ms", target=5)
result(W, "start_to_first_check", "min", min(xs) * 1000, "ms")
xs = exec_to_first_connect(min(runs, 20))
if xs is None:
    log("exec->first connect not measured (strace missing or failed)")
else:
    show("waitfor exec->first connect (strace -ttt)", xs)
    result(W, "start_to_first_check", "exec_to_connect_p50", pct(xs, 50) * 1000, "ms", target=5,
           note="strace timestamps of execve and the first connect")

pg = end_to_end("postgres://postgres@127.0.0.1:5432/postgres", min(runs, 20))
if pg is None:
    log("waitfor spawn->exit against PostgreSQL 127.0.0.1:5432: not measured (no server answering)")
else:
    show("waitfor spawn->exit against a ready PostgreSQL (SELECT 1)", pg)
    result(W, "postgres_ready", "spawn_to_exit_p50", pct(pg, 50) * 1000, "ms")

log(f"-- guide loop, {loop_runs} runs")
if shutil.which("nc"):
    loop = lambda port: ["sh", "-c", f"until nc -z 127.0.0.1 {port}; do sleep 2; done"]
    xs = ready_to_exit(loop, loop_runs, 42)
    show("nc loop ready->exit", xs)
    result("nc loop", "ready_to_exit", "p50", pct(xs, 50) * 1000, "ms")
    result("nc loop", "ready_to_exit", "p99", pct(xs, 99) * 1000, "ms")
    xs = spawn_to_first_check(lambda port: ["sh", "-c", f"until nc -z 127.0.0.1 {port}; do sleep 2; done"],
                              min(runs, 20))
    show("nc loop spawn->first check", xs)
    result("nc loop", "start_to_first_check", "p50", pct(xs, 50) * 1000, "ms")
else:
    missing("nc loop", "nc is not installed")
PY
