#!/usr/bin/env python3
"""Checks a results folder of the benchmark harness: every scenario wrote its JSON, with the
fields its readers (BENCHMARKS.md, plots, CI) rely on. Asserts that the harness works, never a
timing: a scenario may be "not available" (its command does not exist yet, a tool is missing)
as long as it says why; a harness error fails the check.

    check_results.py DIR                     check DIR
    check_results.py --run ZEROFARM DIR      run `ZEROFARM bench --quick --out DIR` first (CTest)
"""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zerofarm_bench import BY_NAME, REQUIRED_FIELDS  # noqa: E402

# Fields each available scenario must carry (dotted paths), beyond REQUIRED_FIELDS.
SCENARIO_FIELDS = {
    "ladder": ["sides.ffmpeg.median_wall_s", "sides.ffmpeg.median_cpu_s",
               "sides.ffmpeg.cpu_s_per_source_minute", "sides.ffmpeg.fps", "ratios", "source",
               "ladder"],
    "ttfs": ["ffmpeg after upload.median_first_segment_s", "zerofarm serve", "ratios"],
    "publish": ["lengths", "ratios", "mux_median_s"],
    "quality": ["rungs", "ratios"],
    "sandbox": ["spawn.methods.fork_exec.p50_ms", "spawn.methods.fork_exec.p99_ms",
                "spawn.methods.zerofarm", "spawn.methods.bwrap", "validator", "ratios"],
    "store": ["ingest", "serving", "ratios"],
    "serve": ["kinds", "connections", "ratios"],
    "upload": ["bytes", "sides.zerofarm serve.median_mb_per_s",
               "sides.nginx + fsync.median_mb_per_s", "ratios"],
    "scale": ["cores", "within_one_node", "limits", "node_processes", "ratios"],
    "grep": ["expected_count", "sides.local grep.median_wall_s", "sides.job on serve.mb_per_s",
             "overhead.median_overhead_ms", "ratios"],
}
# A side that cannot run says why: it carries numbers or a "not_available" string.
SIDES = {
    "ladder": ["sides.zerofarm transcode", "sides.zerofarm serve"],
    "ttfs": ["zerofarm serve"],
    "sandbox": ["spawn.methods.zerofarm", "spawn.methods.bwrap", "validator"],
    "store": ["ingest", "serving"],
    "scale": ["node_processes"],
    "grep": ["farm"],
}


def get(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(dotted)
        obj = obj[part]
    return obj


def check(out_dir):
    problems = []
    for name in BY_NAME:
        path = os.path.join(out_dir, f"{name}.json")
        if not os.path.exists(path):
            problems.append(f"{name}: no {path}")
            continue
        try:
            data = json.load(open(path))
        except ValueError as e:
            problems.append(f"{name}: invalid JSON: {e}")
            continue
        for field in REQUIRED_FIELDS:
            if field not in data:
                problems.append(f"{name}: no field {field}")
        table = data.get("table", {})
        if not table.get("header") or not table.get("rows"):
            problems.append(f"{name}: empty table")
        if not data.get("available"):
            why = data.get("not_available")
            if not isinstance(why, str) or not why:
                problems.append(f"{name}: not available without a reason")
            elif why.startswith("harness error"):
                problems.append(f"{name}: {why}")
            continue
        for field in SCENARIO_FIELDS.get(name, []):
            try:
                get(data, field)
            except KeyError:
                problems.append(f"{name}: no field {field}")
        for side in SIDES.get(name, []):
            try:
                value = get(data, side)
            except KeyError:
                continue  # reported above when required
            if isinstance(value, dict) and "not_available" in value:
                if not isinstance(value["not_available"], str) or not value["not_available"]:
                    problems.append(f"{name}: {side} not available without a reason")
    if not os.path.exists(os.path.join(out_dir, "summary.json")):
        problems.append("no summary.json")
    # The baseline of the first scenario always runs: the harness itself works end to end.
    try:
        ladder = json.load(open(os.path.join(out_dir, "ladder.json")))
        if not ladder.get("available") or not isinstance(
                get(ladder, "sides.ffmpeg.median_wall_s"), (int, float)):
            problems.append("ladder: the ffmpeg baseline gave no figure")
    except (OSError, ValueError, KeyError):
        pass
    return problems


def main(argv):
    if len(argv) == 3 and argv[0] == "--run":
        zerofarm, out_dir = argv[1], argv[2]
        shutil.rmtree(out_dir, ignore_errors=True)
        rc = subprocess.run([zerofarm, "bench", "--quick", "--out", out_dir]).returncode
        if rc != 0:
            print(f"check_results: zerofarm bench --quick exited {rc}", file=sys.stderr)
            return 1
    elif len(argv) == 1:
        out_dir = argv[0]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(out_dir)
    for p in problems:
        print(f"check_results: {p}", file=sys.stderr)
    if not problems:
        print(f"check_results: {out_dir}: every scenario's JSON is complete")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
