#!/usr/bin/env python3
"""Regenerates agents/logship/link-order.txt, the order in which the linker lays out logship's
functions (lld's --symbol-ordering-file, applied by agents/logship/build.rs to the static
release binary).

Why: the kernel maps an executable's pages 64 KiB at a time around each page fault
(fault-around), so a function executed once keeps its whole 64 KiB neighbourhood resident.
With the default layout the code logship runs is spread over three quarters of its .text and
an idle logship held 3.2 MB of it; with the functions it runs laid out together, far less
(figures in benches/logship/README.md).

How: runs the static release build (scripts/build-static.sh with KEEP_SYMBOLS=1: the same
profile and packages as the shipped build, hence the same symbol names) under valgrind's
callgrind through the usual scenarios (start, 200,000 lines shipped to a counting _bulk endpoint, /metrics and /readyz
scraped, idle memory release, SIGTERM; then with --parse nginx; then NDJSON on stdout) and
lists every function executed: the first scenario's functions first, then what each further
scenario adds, each group in address order. Symbol names are the linker's (mangled); names
that no longer exist after a code change are skipped by the linker, so a stale file costs
memory, never correctness. Rerun after dependency updates or large changes:

    scripts/link-order.py && scripts/build-static.sh   # ~10 min; the second relinks and strips

Needs valgrind, python3 and the musl target (scripts/setup.sh).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benches", "logship")
OUT = os.path.join(ROOT, "agents", "logship", "link-order.txt")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
LINES = 200000
ADMIN = "127.0.0.1:19471"


def build():
    """The shipped build (scripts/build-static.sh, same profile and packages, so the same
    symbol names), left unstripped."""
    env = dict(os.environ, KEEP_SYMBOLS="1")
    binary = os.path.join(TARGET, "x86_64-unknown-linux-musl", "release", "logship")
    for attempt in range(2):
        subprocess.run([os.path.join(ROOT, "scripts", "build-static.sh")], cwd=ROOT, env=env, check=True)
        nm = subprocess.run(["nm", binary], capture_output=True, text=True)
        if nm.returncode == 0 and nm.stdout.strip():
            return binary
        # Up to date but stripped by an earlier build-static.sh: make cargo link it again.
        os.utime(OUT)
    sys.exit(f"link-order: {binary} has no symbols")


def wait_for(what, check, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"link-order: timed out waiting for {what}")


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def executed(callgrind_out):
    """Names of the functions with a cost in a callgrind output file."""
    names, costed = {}, set()
    with open(callgrind_out) as f:
        for line in f:
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name:
                    # callgrind marks recursion levels as name'2, name'3
                    names[ident] = re.sub(r"'\d+$", "", name)
                if kind == "fn":
                    costed.add(ident)
    return {names[i] for i in costed if i in names and not names[i].startswith(("0x", "("))}


def scenario(binary, work, name, args, counted, goal):
    """Runs logship under callgrind; returns the functions it executed."""
    out = os.path.join(work, f"callgrind.{name}")
    data = os.path.join(work, f"data.{name}")
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
           binary, "--data-dir", data, "--log-level", "warn", *args]
    stdout = open(os.path.join(work, f"stdout.{name}"), "wb")
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    try:
        if counted is not None:
            wait_for("delivery", lambda: int(get(counted + "/_count")) >= goal, 300)
        else:
            wait_for("NDJSON output", lambda: os.path.getsize(stdout.name) > 0, 300)
        admin = f"http://{ADMIN}"
        wait_for("readiness", lambda: get(admin + "/readyz") is not None)
        get(admin + "/metrics")
        # Idle: the memory release ticks (2 s) run, the idle HTTP connection closes.
        time.sleep(12)
        get(admin + "/metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        stdout.close()
    return executed(out)


def main():
    binary = build()
    sizes, addrs = {}, {}
    nm = subprocess.run(["nm", "-S", binary], capture_output=True, text=True, check=True).stdout
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            addrs[parts[3]] = int(parts[0], 16)
            sizes[parts[3]] = int(parts[1], 16)
    with tempfile.TemporaryDirectory() as work:
        log = os.path.join(work, "access.log")
        subprocess.run([sys.executable, os.path.join(BENCH, "gen_nginx.py"), str(LINES), log], check=True)
        port_file = os.path.join(work, "port")
        counter = subprocess.Popen([sys.executable, os.path.join(BENCH, "bulk_counter.py"), port_file],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for("the _bulk counter", lambda: os.path.getsize(port_file) > 0, 10)
            es = "http://127.0.0.1:" + open(port_file).read().strip()
            common = ["--path", log, "--admin-addr", ADMIN]
            runs = [
                ("es", [*common, "--es-url", es]),
                ("parse", [*common, "--es-url", es, "--parse", "nginx"]),
                ("stdout", common),
            ]
            order, seen = [], set()
            for name, args in runs:
                goal = int(get(es + "/_count")) + LINES
                counted = None if name == "stdout" else es
                funcs = scenario(binary, work, name, args, counted, goal) - seen
                seen |= funcs
                group = sorted(funcs, key=lambda n: addrs.get(n, 0))
                print(f"link-order: {name}: {len(group)} functions, "
                      f"{sum(sizes.get(n, 0) for n in group) // 1024} KiB", file=sys.stderr)
                order += group
        finally:
            counter.kill()
    with open(OUT, "w") as f:
        f.write("\n".join(order) + "\n")
    print(f"link-order: wrote {len(order)} symbols to {os.path.relpath(OUT, ROOT)}; "
          "run scripts/build-static.sh to relink with it", file=sys.stderr)


if __name__ == "__main__":
    main()
