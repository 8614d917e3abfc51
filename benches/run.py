#!/usr/bin/env python3
"""Runs the side-by-side benchmarks and writes benches/RESULTS.md and SVG charts.

Usage: benches/run.py [--runs N] [--timeout S] [--target-dir DIR]... [SCENARIO ...]
       benches/run.py --list          (scenarios and the reference programs found)
       benches/run.py --render [SCENARIO ...]   (rewrite report and charts from saved figures)

Each scenario is a folder benches/<name>/ with an executable `run.sh`. A scenario runs its
subject (the podmates agent) and its references (fluent-bit, HAProxy, nginx, socat, the guide's
shell loops, ...) in the same run, and prints one line per figure on stdout:

    RESULT {"subject": "logship", "scenario": "raw", "metric": "lines_per_cpu_second",
            "value": 1234567, "unit": "lines/CPU-s", "better": "higher", "target": 1000000}

and, for a reference it could not find, a line

    MISSING {"subject": "fluent-bit", "reason": "fluent-bit is not installed"}

Everything else a scenario prints is passed through to stderr. The runner runs each scenario N
times (default 3) and reports, per figure, the median with min and max, the target beside it
and whether the median meets it. It never invents a figure: a missing reference is listed as
missing, a figure marked `"note"` (e.g. computed rather than measured) shows its note.

RESULTS.md has one section per scenario; running a subset (`benches/run.py logship`) rewrites
those sections and keeps the others as they were (each section says when it was measured).
The figures of each scenario's last run are kept in charts/data/<name>.json (`--render` rewrites
the report from them). Per scenario it adds the size of the agent's static binary (from
<target-dir>/x86_64-unknown-linux-musl/release/<agent>, the file is named) and of its image
(`localhost/podmates/<agent>:latest` in podman) when present, and writes bar charts of the
throughput, memory and latency figures under benches/charts/.
"""
import argparse
import datetime
import html
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
CHARTS = HERE / "charts"
AGENTS = ["logship", "log2json", "ambassador", "pgbackup", "reloader", "waitfor"]
ORDER = AGENTS + ["micro"]
MUSL = "x86_64-unknown-linux-musl/release"
MiB = 1024 * 1024

# The reference programs the scenarios compare against, with how to ask their version.
REFERENCES = OrderedDict([
    ("fluent-bit", (["fluent-bit", "/opt/fluent-bit/bin/fluent-bit"], ["--version"])),
    ("haproxy", (["haproxy", "/usr/sbin/haproxy"], ["-v"])),
    ("nginx", (["nginx", "/usr/sbin/nginx"], ["-v"])),
    ("socat", (["socat"], ["-V"])),
    ("iperf3", (["iperf3"], ["--version"])),
    ("wrk", (["wrk"], ["--version"])),
    ("pg_dump", (["pg_dump"], ["--version"])),
    ("gzip", (["gzip"], ["--version"])),
    ("nc", (["nc", "ncat", "netcat"], None)),
])

# Environment knobs of the scenarios: shown in a section when set, since they change what runs.
KNOBS = ["CARGO_TARGET_DIR", "PROFILE", "LOGSHIP_BIN", "LOG2JSON_BIN", "RELOADER_BIN", "AMBASSADOR_BIN", "BIN",
         "FLUENT_BIT", "IDLE_SECONDS", "SECS", "ROUNDS", "IDLE_CONNS", "RUNS", "LOOP_RUNS", "PGBACKUP_BENCH_SIZE_MB",
         "PGBACKUP_BENCH_DATA", "BENCH_DIR"]

# Figures charted even when only the agent has them (others need two subjects to compare).
CHART_ALWAYS = {"lines_per_cpu_second", "throughput", "peak_rss", "idle_rss"}

# Readable names of the common metrics (others: underscores become spaces).
METRIC_NAMES = {
    "lines_per_cpu_second": "lines per CPU-second",
    "cpu_seconds": "CPU-seconds",
    "wall_seconds": "wall time",
    "peak_rss": "peak RSS",
    "idle_rss": "idle RSS",
    "idle_rss_anon": "idle RSS (anonymous)",
    "idle_cpu_seconds": "idle CPU",
    "idle_cpu": "idle CPU",
    "idle_cpu_ticks": "idle CPU ticks",
    "latency_p50": "latency p50",
    "latency_p99": "latency p99",
    "latency_max": "latency max",
    "binary_size": "binary size",
    "image_size": "image size",
}


# ---------------------------------------------------------------- discovery


def scenarios():
    found = [p.name for p in HERE.iterdir() if (p / "run.sh").is_file()]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def find_program(names):
    for n in names:
        path = shutil.which(n) or (n if os.path.isabs(n) and os.access(n, os.X_OK) else None)
        if path:
            return path
    return None


def version_of(path, args):
    if args is None:
        real = os.path.realpath(path)
        return os.path.basename(real) if real != path else ""
    try:
        p = subprocess.run([path] + args, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = [t.strip() for t in (p.stdout + p.stderr).strip().splitlines() if t.strip()]
    with_number = [t for t in text if re.search(r"\d+\.\d+", t)]
    line = (with_number or text or [""])[0]
    return line if len(line) <= 70 else line[:67] + "..."


def references():
    """(name, path or None, version) of every reference program."""
    out = []
    for name, (names, vargs) in REFERENCES.items():
        path = find_program(names)
        out.append((name, path, version_of(path, vargs) if path else ""))
    return out


def target_dirs(args):
    dirs = list(args or []) + [os.environ.get("CARGO_TARGET_DIR"), str(ROOT / "target")]
    return [Path(d) for d in OrderedDict.fromkeys(d for d in dirs if d)]


def static_binary(agent, dirs):
    for d in dirs:
        p = d / MUSL / agent
        if p.is_file():
            return p
    return None


def image_size(agent):
    if not shutil.which("podman"):
        return None, "podman is not installed"
    ref = f"localhost/podmates/{agent}:latest"
    try:
        p = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", ref],
                           capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"podman image inspect failed: {e}"
    if p.returncode != 0 or not p.stdout.strip().isdigit():
        return None, f"image {ref} not built (scripts/build-images.sh builds it)"
    return int(p.stdout.strip()), ref


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "unknown"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- running


def run_once(name, timeout):
    """Runs benches/<name>/run.sh; returns (results, missing, other stdout lines, exit code,
    last stderr lines, seconds)."""
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen([str(HERE / name / "run.sh")], cwd=HERE / name, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as e:
        return [], [], [], 127, [f"could not start benches/{name}/run.sh: {e}"], 0.0
    tail = deque(maxlen=30)

    def pump_stderr():
        for line in proc.stderr:
            sys.stderr.write(f"[{name}] {line}")
            tail.append(line.rstrip("\n"))

    t = threading.Thread(target=pump_stderr, daemon=True)
    t.start()
    results, missing, raw = [], [], []
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGTERM))
    timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            kind, _, payload = line.partition(" ")
            if kind in ("RESULT", "MISSING"):
                try:
                    obj = json.loads(payload)
                except ValueError as e:
                    print(f"[{name}] unreadable {kind} line ({e}): {line}", file=sys.stderr)
                    continue
                (results if kind == "RESULT" else missing).append(obj)
            else:
                raw.append(line)
            print(f"[{name}] {line}", file=sys.stderr)
        code = proc.wait()
    finally:
        timer.cancel()
    t.join(timeout=5)
    if code != 0:
        reason = "timed out after %d s" % timeout if code == -signal.SIGTERM else f"exited with {code}"
        print(f"[{name}] {reason}", file=sys.stderr)
        tail.append(f"(run.sh {reason})")
    return results, missing, raw, code, list(tail), time.monotonic() - t0


def collect(name, runs, timeout):
    figures = OrderedDict()
    missing = OrderedDict()
    runs_info = []
    raw_last, tail_last = [], []
    for i in range(runs):
        load0 = loadavg()
        print(f"== {name}: run {i + 1}/{runs} (load {load0})", file=sys.stderr)
        results, miss, raw, code, tail, secs = run_once(name, timeout)
        runs_info.append({"code": code, "load": load0, "seconds": secs,
                          "env": {k: os.environ[k] for k in KNOBS if k in os.environ}})
        raw_last, tail_last = raw, tail
        for r in results:
            try:
                value = float(r["value"])
            except (KeyError, TypeError, ValueError):
                print(f"[{name}] RESULT without a numeric value: {r}", file=sys.stderr)
                continue
            key = (str(r.get("subject", name)), str(r.get("scenario", "")), str(r.get("metric", "value")))
            f = figures.setdefault(key, {"values": [], "unit": r.get("unit") or "", "better": r.get("better"),
                                         "target": r.get("target"), "note": r.get("note")})
            f["values"].append(value)
            # The CPU-seconds some scenarios attach to their throughput line (log2json).
            if "cpu_seconds" in r and key[2] != "cpu_seconds":
                g = figures.setdefault((key[0], key[1], "cpu_seconds"), {
                    "values": [], "unit": "s", "better": "lower", "target": None, "note": None})
                g["values"].append(float(r["cpu_seconds"]))
        for m in miss:
            missing[str(m.get("subject", "?"))] = str(m.get("reason", "not found"))
    return figures, missing, runs_info, raw_last, tail_last


# ---------------------------------------------------------------- formatting


def num(v):
    if v is None:
        return ""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if v == int(v):
        return f"{int(v)}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def show(v, unit):
    """Value with its unit, bytes shown in MiB (KiB when small)."""
    if v is None:
        return ""
    if unit == "bytes":
        if abs(v) >= MiB / 4:
            return f"{v / MiB:.1f} MiB"
        return f"{v / 1024:.0f} KiB"
    return f"{num(v)} {unit}".strip()


def show_n(v, unit, like):
    """Like show() without the unit, in the scale show() picks for `like` (the median): for the
    min, max and target columns."""
    if v is None:
        return ""
    if unit == "bytes":
        return f"{v / MiB:.1f}" if abs(like) >= MiB / 4 else f"{v / 1024:.0f}"
    return num(v)


def cell(text):
    """Text for a markdown table cell (`pg_dump | gzip` must not split the row)."""
    return str(text).replace("|", "\\|")


def metric_name(m):
    return METRIC_NAMES.get(m, m.replace("_", " "))


def verdict(value, target, better):
    if target is None or better not in ("higher", "lower"):
        return ""
    ok = value >= target if better == "higher" else value <= target
    return "✅ met" if ok else "❌ missed"


def kind_of(metric, unit):
    """Which chart a figure belongs to: throughput, memory, latency, or None."""
    u, m = (unit or "").lower(), metric.lower()
    if "rss" in m or "memory" in m:
        return "memory"
    if "/s" in u or "per_second" in m or "throughput" in m or "/cpu-s" in u:
        return "throughput"
    if "latency" in m or m.startswith("p50") or m.startswith("p99") or u in ("ms", "us", "µs"):
        return "latency"
    return None


# ---------------------------------------------------------------- charts


def bar_chart(title, rows, unit):
    """A horizontal bar chart in plain SVG. rows: (label, median, min, max, target, highlight,
    reason); a row with median None is drawn as "not measured: <reason>"."""
    width, bar_h, gap, left, right = 760, 22, 10, 300, 150
    height = 48 + len(rows) * (bar_h + gap) + 18
    scale_v = [x for r in rows for x in (r[1], r[3], r[4]) if x is not None]
    vmax = max(scale_v, default=1) or 1
    plot_w = width - left - right
    esc = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{esc(title)}</text>',
    ]
    for i, (label, med, lo, hi, target, mine, reason) in enumerate(rows):
        y = 40 + i * (bar_h + gap)
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>')
        if med is None:
            out.append(f'<text x="{left + 4}" y="{y + 15}" fill="#a33" font-style="italic">not measured: '
                       f'{esc(reason)}</text>')
            continue
        w = plot_w * med / vmax
        color = "#2b7bb9" if mine else "#9aa5b1"
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        if lo is not None and hi is not None and hi > lo:
            x0, x1 = left + plot_w * lo / vmax, left + plot_w * hi / vmax
            yc = y + bar_h / 2
            out.append(f'<line x1="{x0:.1f}" y1="{yc}" x2="{x1:.1f}" y2="{yc}" stroke="#222" stroke-width="1.2"/>')
            for x in (x0, x1):
                out.append(f'<line x1="{x:.1f}" y1="{yc - 5}" x2="{x:.1f}" y2="{yc + 5}" stroke="#222"/>')
        if target is not None:
            xt = left + plot_w * target / vmax
            out.append(f'<line x1="{xt:.1f}" y1="{y - 3}" x2="{xt:.1f}" y2="{y + bar_h + 3}" stroke="#c0392b" '
                       f'stroke-width="2" stroke-dasharray="4,2"/>')
        text_x = left + max(w, plot_w * (hi or 0) / vmax) + 6
        out.append(f'<text x="{text_x:.1f}" y="{y + 15}">{esc(show(med, unit))}</text>')
    out.append(f'<text x="10" y="{height - 8}" font-size="11" fill="#555">bar: median; whisker: min-max; '
               f'red dashes: target. Blue: podmates code; grey: references.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def charts_for(name, figures, missing, ours):
    """Writes the scenario's charts; returns [(caption, relative path)]."""
    groups = OrderedDict()
    for (subject, scen, metric), f in figures.items():
        kind = kind_of(metric, f["unit"])
        if kind is None:
            continue
        if name == "micro":
            # One chart per benchmark group, throughput only.
            if metric != "throughput":
                continue
            key = (scen.split("/")[0], metric)
            label = f"{scen.split('/', 1)[-1]}: {subject.split(' ')[0]}" if "escape" in scen else scen.split("/", 1)[-1]
        else:
            key = (metric, f["unit"])
            label = f"{subject} ({scen})" if scen else subject
        groups.setdefault(key, []).append(
            (label, statistics.median(f["values"]), min(f["values"]), max(f["values"]),
             f["target"], subject.startswith(ours) or (name == "micro" and not subject.startswith(("serde_json", "flate2"))),
             None))
    for old in CHARTS.glob(f"{name}-*.svg"):
        old.unlink()
    made = []
    for (a, b), rows in groups.items():
        subjects = {r[0].split(" (")[0] for r in rows}
        if name != "micro" and len(subjects) < 2 and a not in CHART_ALWAYS:
            continue  # one subject and not a headline figure: the table says it all
        if name == "micro":
            rows = sorted(rows, key=lambda r: r[0])
        unit = b if name != "micro" else "MiB/s"
        if name != "micro":
            kind = kind_of(a, unit)
            if kind in ("throughput", "memory"):
                rows = rows + [(s, None, None, None, None, False, reason.split(" (")[0][:70])
                               for s, reason in missing.items()]
            title = f"{name}: {metric_name(a)} ({unit if unit != 'bytes' else 'MiB'})"
            fname = f"{name}-{slug(a)}.svg"
            if any(p == f"charts/{fname}" for _, p in made):
                fname = f"{name}-{slug(a)}-{slug(unit)}.svg"
        else:
            title = f"micro: {a} throughput (MiB/s of input)"
            fname = f"micro-{slug(a)}.svg"
        (CHARTS / fname).write_text(bar_chart(title, rows, unit))
        made.append((title, f"charts/{fname}"))
    return made


# ---------------------------------------------------------------- report


def save_data(name, figures, missing, runs_info, raw_last, tail_last, measured):
    """Keeps what a scenario measured (charts/data/<name>.json), so `--render` can rewrite the
    report and charts without running it again."""
    d = CHARTS / "data"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps({
        "measured": measured, "figures": [[s, sc, m, f] for (s, sc, m), f in figures.items()],
        "missing": missing, "runs": runs_info, "stdout_last": raw_last, "stderr_tail": tail_last}, indent=1) + "\n")


def load_data(name):
    try:
        d = json.loads((CHARTS / "data" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    figures = OrderedDict(((s, sc, m), f) for s, sc, m, f in d["figures"])
    return (figures, OrderedDict(d["missing"]), d["runs"], d["stdout_last"], d["stderr_tail"],
            d["measured"])


def section(name, figures, missing, runs_info, raw_last, tail_last, dirs, refs_line, measured=None):
    ours = name if name in AGENTS else "common"
    codes = [r["code"] for r in runs_info]
    lines = [f"<!-- section: {name} -->", f"## {name}", ""]
    loads = ", ".join(r["load"].split()[0] for r in runs_info)
    secs = sum(r["seconds"] for r in runs_info)
    lines.append(f"Measured {measured or now_utc()} with `benches/{name}/run.sh`, {len(runs_info)} run(s) "
                 f"({secs:.0f} s in all); 1-minute load average at the start of each run: {loads} "
                 f"on {os.cpu_count()} cores. Exit status: {', '.join(map(str, codes))}.")
    env = runs_info[-1].get("env") if runs_info else None
    if env:
        lines.append("Environment: " + ", ".join(f"`{k}={v}`" for k, v in env.items()) + ".")
    lines.append("")
    # Sizes of the agent's static binary and image.
    size_notes = []
    if name in AGENTS:
        b = static_binary(name, dirs)
        if b:
            figures[(name, "static musl binary", "binary_size")] = {
                "values": [float(b.stat().st_size)], "unit": "bytes", "better": "lower", "target": None,
                "note": None}
            size_notes.append(f"binary size: `{b}`")
        else:
            size_notes.append(f"binary size: no static binary under {' or '.join(str(d / MUSL) for d in dirs)} "
                              f"(`cargo build --release --target x86_64-unknown-linux-musl -p {name}`)")
        size, where = image_size(name)
        if size is not None:
            figures[(name, "image", "image_size")] = {"values": [float(size)], "unit": "bytes", "better": "lower",
                                                       "target": None, "note": None}
            size_notes.append(f"image size: `{where}` (podman)")
        else:
            size_notes.append(f"image size: {where}")
    if figures and name == "micro":
        lines += pivot_table(figures)
        lines += ["Median over the runs (min-max when more than one run); each run's figure is criterion's median "
                  "time per iteration over 20 samples, turned into MiB/s of input, lines per second and ns per line.",
                  ""]
    elif figures:
        lines += ["| subject | scenario | figure | median | min | max | target | |",
                  "|---|---|---|---|---|---|---|---|"]
        for (subject, scen, metric), f in figures.items():
            vs = f["values"]
            med = statistics.median(vs)
            unit = f["unit"]
            tgt = f["target"]
            mark = verdict(med, tgt, f["better"])
            if f.get("note"):
                mark = (mark + " " if mark else "") + f"({f['note']})"
            same = len(vs) == 1
            lines.append(
                f"| {cell(subject)} | {cell(scen)} | {cell(metric_name(metric))} | **{cell(show(med, unit))}** | "
                f"{'' if same else show_n(min(vs), unit, med)} | {'' if same else show_n(max(vs), unit, med)} | "
                f"{show_n(tgt, unit, med) if tgt is not None else ''} | {cell(mark)} |")
        for subject, reason in missing.items():
            lines.append(f"| {cell(subject)} | | not measured | | | | | {cell(reason)} |")
        lines.append("")
        lines.append(f"Figures: median of the runs, min and max beside it (left empty for a single value: "
                     f"sizes are measured once). " + "; ".join(size_notes) + ("." if size_notes else ""))
        lines.append("")
    else:
        if missing:
            lines += [f"- {s}: not measured ({r})" for s, r in missing.items()] + [""]
        lines += ["This scenario printed no `RESULT` lines; the output of its last run follows as it was.", "",
                  "```"] + (raw_last or ["(no output on stdout)"]) + ["```", ""]
        if size_notes:
            lines += ["; ".join(size_notes) + ".", ""]
    if any(c != 0 for c in codes):
        lines += ["<details><summary>last lines on stderr of the last run (a run failed)</summary>", "", "```"]
        lines += tail_last + ["```", "", "</details>", ""]
    charts = charts_for(name, figures, missing, ours) if figures else []
    for caption, path in charts:
        lines.append(f"![{caption}]({path})")
    if charts:
        lines.append("")
    lines.append(f"<!-- end: {name} -->")
    return "\n".join(lines)


def pivot_table(figures):
    """One row per (subject, scenario), one column per metric: for the micro-benchmarks."""
    metrics = list(OrderedDict.fromkeys(m for _, _, m in figures))
    rows = OrderedDict()
    for (subject, scen, metric), f in figures.items():
        rows.setdefault((scen, subject), {})[metric] = f
    units = {m: next(f["unit"] for (_, _, mm), f in figures.items() if mm == m) for m in metrics}
    out = ["| benchmark | code measured | " + " | ".join(units[m] or metric_name(m) for m in metrics) + " |",
           "|---|---|" + "---:|" * len(metrics)]
    groups = list(OrderedDict.fromkeys(scen.split("/")[0] for scen, _ in rows))
    order = sorted(rows, key=lambda k: (groups.index(k[0].split("/")[0]), k[0], k[1]))
    for scen, subject in order:
        fs = rows[(scen, subject)]
        cells = []
        for m in metrics:
            f = fs.get(m)
            if not f:
                cells.append("")
                continue
            vs = f["values"]
            cell = num(statistics.median(vs))
            if len(vs) > 1:
                cell += f" ({num(min(vs))}-{num(max(vs))})"
            cells.append(cell)
        out.append(f"| {cell(scen)} | {cell(subject)} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def old_sections():
    """The sections of the existing RESULTS.md, by scenario name."""
    try:
        text = RESULTS.read_text()
    except OSError:
        return {}
    return {m.group(1): m.group(0) for m in
            re.finditer(r"<!-- section: ([\w-]+) -->.*?<!-- end: \1 -->", text, re.S)}


def write_report(sections, refs, args_line):
    found = [f"`{n}` ({v or p})" for n, p, v in refs if p]
    lost = [f"`{n}`" for n, p, _ in refs if not p]
    head = [
        "# Benchmark results",
        "",
        f"Last written by `{args_line}` on {now_utc()}.",
        "",
        f"- Machine: {machine()}; load average when the report was written: {loadavg()}.",
        "- The machine is a shared 2-core development box: other sessions were compiling while these ran, so "
        "absolute figures are noisy (see each section's load average). Compare subjects within one section: they ran "
        "side by side in the same run.",
        f"- Reference programs found: {', '.join(found) or 'none'}.",
        f"- Reference programs not found: {', '.join(lost) or 'none'}; no figure is given for them.",
        "- Each section is rewritten only when its scenario runs; it says when it was measured.",
        "- ✅/❌: the median meets or misses the target from the agent's issue.",
        "",
    ]
    order = sorted(sections, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    toc = ["## Summary", "", "| section | measured | targets met | targets missed | not measured |",
           "|---|---|---|---|---|"]
    for n in order:
        text = sections[n]
        when = re.search(r"Measured (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text)
        met = text.count("✅ met")
        c = r"((?:\\\||[^|])*)"  # a cell: anything but an unescaped |
        missed = [f"{r[0]} {r[1]} {r[2]}".replace("  ", " ") for r in
                  re.findall(rf"^\| {c} \| {c} \| {c} \|.*❌ missed", text, re.M)]
        absent = re.findall(rf"^\| {c} \| \| not measured \|", text, re.M)
        toc.append(f"| [{n}](#{n}) | {when.group(1) if when else ''} | {met} | "
                   f"{len(missed)}{': ' + '; '.join(missed) if missed else ''} | {', '.join(absent)} |")
    toc.append("")
    body = []
    for n in order:
        body += [sections[n], ""]
    RESULTS.write_text("\n".join(head + toc + body).rstrip() + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per run before it is stopped (default 1800)")
    ap.add_argument("--target-dir", action="append", help="cargo target dir holding the static binaries, searched "
                    "before $CARGO_TARGET_DIR and ./target (repeatable)")
    ap.add_argument("--list", action="store_true", help="list scenarios and reference programs, run nothing")
    ap.add_argument("--render", action="store_true", help="run nothing: rewrite the sections and charts of the "
                    "scenarios named (default: all) from the figures their last run saved under charts/data/")
    ap.add_argument("names", nargs="*", metavar="SCENARIO")
    args = ap.parse_args()
    refs = references()
    all_names = scenarios()
    for n, p, v in refs:
        print(f"reference {n}: " + (f"{p} ({v})" if p else "NOT FOUND: no figure for it"), file=sys.stderr)
    if args.list:
        print("scenarios: " + " ".join(all_names))
        for n, p, v in refs:
            print(f"{n}: {p} {v}" if p else f"{n}: not found")
        return
    names = args.names or all_names
    unknown = [n for n in names if n not in all_names]
    if unknown:
        sys.exit(f"unknown scenario(s) {unknown}: choose from {all_names}")
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    CHARTS.mkdir(exist_ok=True)
    dirs = target_dirs(args.target_dir)
    mine = {}
    failed = []
    args_line = " ".join(["benches/run.py", f"--runs {args.runs}"] + args.names)
    if args.render:
        args_line = " ".join(["benches/run.py --render"] + args.names)
    for name in names:
        if args.render:
            data = load_data(name)
            if data is None:
                print(f"{name}: no saved figures in {CHARTS / 'data'}: run it first", file=sys.stderr)
                continue
            figures, missing, runs_info, raw_last, tail_last, measured = data
        else:
            figures, missing, runs_info, raw_last, tail_last = collect(name, args.runs, args.timeout)
            measured = now_utc()
            save_data(name, figures, missing, runs_info, raw_last, tail_last, measured)
        if any(r["code"] != 0 for r in runs_info):
            failed.append(name)
        mine[name] = section(name, figures, missing, runs_info, raw_last, tail_last, dirs, refs, measured)
        # Written after every scenario, so a long run that is interrupted keeps what it measured;
        # the other sections are read again just before, in case another run wrote them meanwhile.
        write_report(dict(old_sections(), **mine), refs, args_line)
        print(f"wrote {RESULTS} ({name})", file=sys.stderr)
    if failed:
        print(f"scenarios with a failed run: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
