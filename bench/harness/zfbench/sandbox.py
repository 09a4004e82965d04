"""Scenario 4, sandbox: spawn latency p50/p99 of a no-op static program in the zerofarm sandbox,
with plain fork+exec and with bwrap (comparable isolation), interleaved in one process
(bench/sandbox_bench.cc); the validator's MB/s on the static worker and its cached-verdict time,
against GNU objdump disassembling the same file (a linear sweep that checks nothing) as a
reference point.
"""

import json
import os

from .common import NotAvailable, fmt, log, median, ratio, run_timed, tail

NAME = "sandbox"
TITLE = "Sandbox spawn latency and validator throughput"


def run(ctx):
    bench = ctx.tool("zerofarm-sandbox-bench", "build the target zerofarm-sandbox-bench")
    scratch = ctx.scratch("sandbox")
    spawns = 20 if ctx.quick else ctx.args.spawns
    argv = [bench, f"--spawns={spawns}", f"--validate-reps={1 if ctx.quick else 3}",
            f"--cache-hits={5 if ctx.quick else 20}"]
    worker = ctx.tools.get("worker-static")
    if worker:
        argv.append(f"--validate={worker}")
    if ctx.tools.get("bwrap"):
        argv.append(f"--bwrap={ctx.tools['bwrap']}")
    out_path = os.path.join(scratch, "sandbox-bench.json")
    r = run_timed(argv, os.path.join(scratch, "sandbox-bench.log"), stdout_path=out_path,
                  timeout=1800)
    if r.returncode != 0:
        raise NotAvailable(f"zerofarm-sandbox-bench failed: {tail(r.log_path, 5)}")
    data = json.load(open(out_path))
    spawn = data.get("spawn", {})
    methods = spawn.get("methods", {})
    rows = []
    fe = methods.get("fork_exec", {})
    for key, label in (("zerofarm", "zerofarm sandbox (RunSandboxed)"),
                       ("fork_exec", "fork+exec"), ("bwrap", "bwrap (unshare-all, tmpfs root)")):
        m = methods.get(key, {})
        if m.get("not_available") or not m.get("n"):
            rows.append([label, f"not available: {m.get('not_available', 'no samples')}",
                         "", "", ""])
            continue
        rows.append([label, str(m["n"]), fmt(m["p50_ms"], unit=" ms"), fmt(m["p99_ms"], unit=" ms"),
                     fmt(ratio(m["p50_ms"], fe.get("p50_ms")), 1) + "x"])
    zf = methods.get("zerofarm", {})
    bw = methods.get("bwrap", {})
    ratios = {
        "zerofarm_p50_vs_fork_exec": ratio(zf.get("p50_ms"), fe.get("p50_ms")),
        "zerofarm_p50_vs_bwrap": ratio(zf.get("p50_ms"), bw.get("p50_ms")),
        "zerofarm_p99_vs_bwrap": ratio(zf.get("p99_ms"), bw.get("p99_ms")),
    }

    validator = data.get("validator", {})
    vrows = []
    if worker and not validator.get("not_available"):
        objdump = ctx.tools.get("objdump")
        if objdump and not ctx.quick:
            times = []
            for i in range(3):
                o = run_timed([objdump, "-d", "--no-show-raw-insn", worker],
                              os.path.join(scratch, "objdump.log"), stdout_path=os.devnull)
                if o.returncode == 0:
                    times.append(o.wall_s)
            if times:
                validator["objdump_wall_s"] = times
                validator["objdump_mb_per_s_program"] = (validator["program_bytes"] / 1e6 /
                                                         median(times))
                ratios["validator_vs_objdump_mb_per_s"] = ratio(
                    validator["mb_per_s_program"], validator["objdump_mb_per_s_program"])
        cache = validator.get("cache", {})
        vrows = [
            ["validator, fresh", fmt(validator.get("median_validate_ms"), unit=" ms"),
             fmt(validator.get("mb_per_s_program"), unit=" MB/s"),
             fmt(validator.get("mb_per_s_executable"), unit=" MB/s")],
            ["verdict cache, memory hit (p50)", fmt(cache.get("memory_hit", {}).get("p50_ms"), unit=" ms"), "", ""],
            ["verdict cache, disk hit (p50)", fmt(cache.get("disk_hit", {}).get("p50_ms"), unit=" ms"), "", ""],
            ["verdict cache, sealed program already validated (p50)",
             fmt(cache.get("sealed_hit", {}).get("p50_ms"), unit=" ms"), "", ""],
        ]
        if "objdump_mb_per_s_program" in validator:
            vrows.append(["objdump -d (reference)", fmt(median(validator["objdump_wall_s"]) * 1000, unit=" ms"),
                          fmt(validator["objdump_mb_per_s_program"], unit=" MB/s"), ""])
        log(f"sandbox: validator {validator.get('mb_per_s_program', 0):.1f} MB/s on {worker}")
    else:
        why = validator.get("not_available") or "no static worker found (build-static/bin/zerofarm-worker-static)"
        validator["not_available"] = why
        vrows = [["validator", f"not available: {why}", "", ""]]
    return {
        "spawn": spawn, "validator": validator, "noop_build": data.get("noop_build"),
        "ratios": ratios,
        "table": {"header": ["spawn of a no-op static program", "runs", "p50", "p99",
                             "p50 vs fork+exec"], "rows": rows},
        "table2": {"header": ["validator on " + (os.path.basename(worker) if worker else "?") +
                              (f" ({validator['program_bytes'] / 1e6:.1f} MB)" if validator.get("program_bytes") else ""),
                              "time (median)", "MB/s of the file", "MB/s of executable bytes"],
                   "rows": vrows},
    }
