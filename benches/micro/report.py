#!/usr/bin/env python3
"""Turns criterion's estimates into RESULT lines (see run.sh).

usage: report.py CRITERION_DIR MANIFEST_JSON

For each benchmark (CRITERION_DIR/<group>/<bench>/new/{benchmark,estimates}.json) it prints
the median time per iteration as throughput (MiB/s of input), lines per second and ns per
line, using the lines and bytes per iteration that the benchmark wrote to MANIFEST_JSON.
"""
import json
import sys
from pathlib import Path

# Which code each benchmark measures: (group, name prefix) -> (subject, scenario label).
SUBJECTS = [
    ("split_lines", "", "common::tail line splitter"),
    ("json_escape", "common_", "common::parse::escape_into"),
    ("json_escape", "serde_json_", "serde_json (logship's write_json_str)"),
    ("record_write", "", "common::parse::Record"),
    ("parse", "", "common::parse::Parser"),
    ("bulk_encode", "gzip", "flate2 gzip (logship request body)"),
    ("bulk_encode", "", "logship bulk encoder"),
]


def subject_and_scenario(group, name):
    for g, prefix, subject in SUBJECTS:
        if g == group and name.startswith(prefix):
            # Benchmarks that compare implementations share a scenario (the input).
            return subject, f"{group}/{name[len(prefix):]}" if prefix and group == "json_escape" else f"{group}/{name}"
    return "micro", f"{group}/{name}"


def main():
    root, manifest_path = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"micro: no benchmark manifest at {manifest_path} ({e}): did the benchmarks run?")
    found = 0
    groups = [g for g, _, _ in SUBJECTS]
    rank = lambda p: (groups.index(p.parts[-4]) if p.parts[-4] in groups else len(groups), str(p))
    for bench in sorted(root.glob("**/new/benchmark.json"), key=rank):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        group, name = meta["group_id"], meta["function_id"]
        bench_id = f"{group}/{name}"
        if bench_id not in manifest:
            print(f"micro: {bench_id} is not in the manifest; skipped", file=sys.stderr)
            continue
        lines, nbytes = manifest[bench_id]["lines"], manifest[bench_id]["bytes"]
        ns = est["median"]["point_estimate"]
        lo = est["median"]["confidence_interval"]["lower_bound"]
        hi = est["median"]["confidence_interval"]["upper_bound"]
        subject, scenario = subject_and_scenario(group, name)
        base = {"subject": subject, "scenario": scenario, "better": "higher"}
        mib_s = nbytes / (ns / 1e9) / (1024 * 1024)
        ci = [round(nbytes / (hi / 1e9) / (1024 * 1024), 1), round(nbytes / (lo / 1e9) / (1024 * 1024), 1)]
        for metric, value, unit, better, extra in [
            ("throughput", round(mib_s, 1), "MiB/s", "higher", {"ci95": ci}),
            ("lines_per_second", round(lines / (ns / 1e9)), "lines/s", "higher", {}),
            ("ns_per_line", round(ns / lines, 1), "ns/line", "lower", {}),
        ]:
            print("RESULT " + json.dumps(dict(base, metric=metric, value=value, unit=unit, better=better, **extra)))
        found += 1
    if not found:
        sys.exit(f"micro: no criterion results under {root}")


if __name__ == "__main__":
    main()
