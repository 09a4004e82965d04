"""Scenario 6, scale: the same job on one node and on several node processes on this machine,
with the machine's core count stated, and what limits the speed-up, measured.

Within one node (always available): `zerofarm transcode --jobs 1` against `--jobs N` for N up
to the core count, interleaved. The speed-up is wall(1) / wall(N); what limits it is read from
the same runs: CPU utilisation (CPU seconds / wall seconds / cores: near 1.0 means the cores
are the limit) and the serial share (the wall time not covered by N workers in parallel).

Across node processes (`zerofarm ring build`, `zerofarm node`, `zerofarm proxy`): 1, 2 and 3
nodes behind a proxy on this machine, the cores shared out as task slots (2 replicas from 2
nodes on), the same upload; reported as not available where those commands do not exist.
"""

import os
import time

from . import farm, ladder, media
from .common import NotAvailable, fmt, interleaved, log, median, ratio

NAME = "scale"
TITLE = "Scale: one node, more workers, more node processes"


def cluster_run(ctx, zerofarm, clip, info, rungs, nodes, tag):
    """K node processes + a proxy on 127.0.0.1, the machine's cores shared out as task slots;
    wall and CPU of one upload-to-ready job, all the farm's processes counted. With more than
    one node, 2 replicas: with one, a task can run only where the ring put its chunk, and the
    hash's uneven split of a few chunks decides the wall time (measured: 2 nodes 0.76x of 1)."""
    cores = os.cpu_count() or 1
    f = farm.Farm(ctx, zerofarm, ctx.scratch("scale", tag), nodes,
                  replicas=min(2, nodes), task_slots=max(1, cores // nodes))
    try:
        cpu0 = f.cpu_s()
        t0 = time.monotonic()
        v = f.proxy.post_video(clip, [r["name"] for r in rungs])
        f.proxy.wait_ready(v["id"], 60 * max(10, info["duration_s"]))
        return {"wall_s": time.monotonic() - t0, "cpu_s": f.cpu_s() - cpu0,
                "task_slots_per_node": max(1, cores // nodes)}
    finally:
        f.stop()


def task_profile(report_path, jobs):
    """What the job's report says about parallelism: tasks, their wall times, the longest one,
    and how full the `jobs` worker slots were over the whole run."""
    import json
    try:
        report = json.load(open(report_path))
    except (OSError, ValueError):
        return {}
    tasks = [c.get("wall_seconds", 0.0) for c in report.get("chunks", [])]
    audio = report.get("audio", {}).get("wall_seconds", 0.0)
    total = report.get("timing", {}).get("total_seconds") or 0.0
    busy = sum(tasks) + audio
    return {"tasks": len(tasks), "task_wall_s": tasks, "audio_task_wall_s": audio,
            "ingest_s": report.get("timing", {}).get("ingest_seconds"),
            "job_total_s": total,
            "longest_task_share": max(tasks) / total if tasks and total else None,
            "worker_slot_occupancy": busy / (jobs * total) if total else None}


def run(ctx):
    zerofarm = ctx.tool("zerofarm")
    clip = ctx.clips["scale"]
    info = media.probe(ctx.tool("ffprobe"), clip)
    rungs = media.plan_ladder(info)
    cores = os.cpu_count() or 1
    job_counts = sorted({1, cores}) if cores > 1 else [1]
    sides = [f"jobs={j}" for j in job_counts]

    def one(side, i):
        jobs = int(side.split("=")[1])
        out = os.path.join(ctx.scratch("scale"), f"jobs{jobs}-{i}")
        ctx.clean(out)
        ctx.clean(out + ".data")
        load0 = os.getloadavg()[0]
        from .common import run_timed, tail
        r = run_timed(ladder.transcode_argv(zerofarm, clip, out, rungs, jobs=jobs), out + ".log",
                      timeout=60 * max(10, info["duration_s"]), env=ctx.zerofarm_env())
        if r.returncode != 0:
            raise NotAvailable(f"zerofarm transcode --jobs {jobs} failed: {tail(out + '.log', 5)}")
        detail = task_profile(os.path.join(out, "report.json"), jobs)
        ctx.clean(out)
        ctx.clean(out + ".data")
        log(f"scale run {i} {side}: wall {r.wall_s:.1f} s cpu {r.cpu_s:.1f} s")
        return {"wall_s": r.wall_s, "cpu_s": r.cpu_s, "loadavg_1m_before": load0,
                "loadavg_1m_after": os.getloadavg()[0], **detail}

    runs = interleaved(sides, ctx.repeat, one)
    within = {}
    w1 = median([r["wall_s"] for r in runs["jobs=1"]])
    rows = []
    for side in sides:
        jobs = int(side.split("=")[1])
        wall = median([r["wall_s"] for r in runs[side]])
        cpu = median([r["cpu_s"] for r in runs[side]])
        speedup = ratio(w1, wall)
        util = cpu / wall / jobs if wall else None
        occupancy = median([r.get("worker_slot_occupancy") for r in runs[side]])
        longest = median([r.get("longest_task_share") for r in runs[side]])
        load = median([r.get("loadavg_1m_before") for r in runs[side]])
        within[side] = {"jobs": jobs, "runs": runs[side], "median_wall_s": wall,
                        "median_cpu_s": cpu, "speedup_vs_jobs1": speedup,
                        "cpu_utilisation_of_jobs_cores": util,
                        "median_worker_slot_occupancy": occupancy,
                        "median_longest_task_share": longest,
                        "median_loadavg_1m_before": load,
                        "parallel_efficiency": speedup / jobs if speedup else None}
        rows.append([f"one node, `transcode --jobs {jobs}`", str(jobs), fmt(wall, unit=" s"),
                     fmt(cpu, unit=" s"), fmt(speedup) + "x", fmt(util), fmt(occupancy),
                     fmt(longest), fmt(load)])
    # Amdahl: with speed-up S on N workers, the serial share s = (N/S - 1) / (N - 1).
    limits = {}
    if cores > 1:
        top = within[f"jobs={cores}"]
        s = top["speedup_vs_jobs1"]
        if s:
            limits["amdahl_serial_share"] = (cores / s - 1) / (cores - 1)
        limits["cpu_utilisation_at_all_cores"] = top["cpu_utilisation_of_jobs_cores"]
        limits["cpu_overhead_jobsN_vs_jobs1"] = ratio(top["median_cpu_s"],
                                                      within["jobs=1"]["median_cpu_s"])
        limits["worker_slot_occupancy_at_all_cores"] = top["median_worker_slot_occupancy"]
        limits["longest_task_share_at_all_cores"] = top["median_longest_task_share"]
        limits["loadavg_1m_before_runs"] = top["median_loadavg_1m_before"]
    why = farm.available(zerofarm)
    cluster = {}
    if why:
        cluster = {"not_available": why}
        rows.append(["node processes (`zerofarm node` + `proxy`)", "–",
                     f"not available: {why}", "", "", "", "", "", ""])
    else:
        base = None
        for k in sorted({1, 3, cores}):
            try:
                rs = [cluster_run(ctx, zerofarm, clip, info, rungs, k, f"nodes{k}-{i}")
                      for i in range(ctx.repeat)]
            except (NotAvailable, OSError, Exception) as e:  # a new command: report, never crash
                cluster = {"not_available": f"the cluster run failed: {e}"}
                break
            wall = median([r["wall_s"] for r in rs])
            cpu = median([r["cpu_s"] for r in rs])
            base = base or wall
            cluster[f"nodes={k}"] = {"runs": rs, "median_wall_s": wall, "median_cpu_s": cpu,
                                     "speedup_vs_1_node": ratio(base, wall)}
            rows.append([f"{k} node processes + proxy", str(k), fmt(wall, unit=" s"),
                         fmt(cpu, unit=" s"), fmt(ratio(base, wall)) + "x", fmt(cpu / wall / cores),
                         "", "", ""])
    return {"clip": clip, "source": info, "cores": cores,
            "cpu_model": ctx.shared.get("machine", {}).get("cpu_model"),
            "within_one_node": within, "limits": limits, "node_processes": cluster,
            "ratios": {"speedup_all_cores": within[sides[-1]]["speedup_vs_jobs1"]},
            "table": {"header": ["setup", "workers", "wall (median)", "CPU (median)",
                                 "speed-up", "CPU utilisation", "worker-slot occupancy",
                                 "longest task / job wall", "load avg before"], "rows": rows}}
