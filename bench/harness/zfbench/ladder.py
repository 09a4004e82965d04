"""Scenario 1, ladder transcode: `zerofarm transcode`, and `zerofarm serve` through HTTP, against
one ffmpeg process encoding the same ladder with the same x264 settings (split filter).

Sides run interleaved (the order rotates every round). Per side: wall seconds, CPU seconds
(user + sys of the process and every child it waited for; for serve, the server process's CPU
delta over the job), CPU seconds per source minute, frames per second (source frames / wall),
and the ratio to ffmpeg of the medians.
"""

import os

from . import media, serve
from .common import (NotAvailable, interleaved, log, median, ratio, run_timed, tail, fmt)
import time

NAME = "ladder"
TITLE = "Ladder transcode against one ffmpeg process"


def transcode_argv(zerofarm, clip, out, rungs, jobs=None):
    argv = [zerofarm, "transcode", clip, "-o", out, "--ladder", ",".join(r["name"] for r in rungs),
            "--preset", "veryfast", "--chunk-seconds", "4", "--data", out + ".data"]
    if jobs:
        argv += ["--jobs", str(jobs)]
    return argv


def run_side(ctx, side, run_index, clip, info, rungs, keep):
    """One run of one side; returns {'wall_s', 'cpu_s', 'out'} (out kept for quality)."""
    base = ctx.scratch("ladder")
    out = os.path.join(base, f"{side.replace(' ', '-')}-{run_index}")
    ctx.clean(out)
    ctx.clean(out + ".data")
    timeout = 60 * max(10, info["duration_s"])  # generous: a loaded machine is slow, not stuck
    if side == "ffmpeg":
        os.makedirs(out)
        r = run_timed(media.ffmpeg_ladder_argv(ctx.tool("ffmpeg"), clip, info, rungs, out),
                      out + ".log", timeout=timeout)
        if r.returncode != 0 or not os.path.exists(os.path.join(out, "master.m3u8")):
            raise NotAvailable(f"ffmpeg failed ({r.returncode}): {tail(out + '.log', 5)}")
        result = {"wall_s": r.wall_s, "cpu_s": r.cpu_s}
    elif side == "zerofarm transcode":
        r = run_timed(transcode_argv(ctx.tool("zerofarm"), clip, out, rungs), out + ".log",
                      timeout=timeout, env=ctx.zerofarm_env())
        if r.returncode != 0 or not os.path.exists(os.path.join(out, "master.m3u8")):
            raise NotAvailable(f"zerofarm transcode failed ({r.returncode}): "
                               f"{tail(out + '.log', 5)}")
        result = {"wall_s": r.wall_s, "cpu_s": r.cpu_s}
    else:  # zerofarm serve: upload over HTTP, wait for "ready"; server start-up not counted
        server = serve.Server(ctx.tool("zerofarm"), out + ".data", out + ".log",
                              env=ctx.zerofarm_env())
        try:
            cpu0 = server.cpu_s()
            t0 = time.monotonic()
            video = server.post_video(clip, [r["name"] for r in rungs])
            server.wait_ready(video["id"], timeout)
            wall = time.monotonic() - t0
            result = {"wall_s": wall, "cpu_s": server.cpu_s() - cpu0}
        finally:
            server.stop()
    result["out"] = out
    if not keep:
        ctx.clean(out)
        ctx.clean(out + ".data")
    log(f"ladder run {run_index} {side:20s} wall {result['wall_s']:7.2f} s  "
        f"cpu {result['cpu_s']:7.2f} s")
    return result


def run(ctx):
    clip = ctx.clips["ladder"]
    info = media.probe(ctx.tool("ffprobe"), clip)
    rungs = media.plan_ladder(info)
    zerofarm = ctx.tools.get("zerofarm")
    sides = ["ffmpeg"]
    unavailable = {}
    if zerofarm:
        sides.append("zerofarm transcode")
    else:
        unavailable["zerofarm transcode"] = "no zerofarm binary"
    why = serve.available(zerofarm)
    if why:
        unavailable["zerofarm serve"] = why
    else:
        sides.append("zerofarm serve")
    with open(clip, "rb") as f:  # the source in the page cache for every side
        while f.read(1 << 22):
            pass

    repeat = ctx.repeat

    def one(side, run_index):
        if side in unavailable:
            return None
        try:
            return run_side(ctx, side, run_index, clip, info, rungs, keep=(run_index == repeat))
        except NotAvailable as e:
            log(f"ladder: {side}: {e}")
            unavailable[side] = str(e)
            return None

    runs = interleaved(sides, repeat, one)
    ff = runs["ffmpeg"]
    if any(r is None for r in ff):
        raise NotAvailable("the ffmpeg baseline failed: " + unavailable.get("ffmpeg", "?"))
    minutes = info["duration_s"] / 60 if info["duration_s"] else None
    sides_out = {}
    ff_wall = median([r["wall_s"] for r in ff])
    ff_cpu = median([r["cpu_s"] for r in ff])
    for side in ["zerofarm transcode", "zerofarm serve", "ffmpeg"]:
        rs = [r for r in runs.get(side, []) if r is not None]
        if side in unavailable and not rs:
            sides_out[side] = {"not_available": unavailable[side]}
            continue
        wall = median([r["wall_s"] for r in rs])
        cpu = median([r["cpu_s"] for r in rs])
        sides_out[side] = {
            "wall_s": [r["wall_s"] for r in rs], "cpu_s": [r["cpu_s"] for r in rs],
            "median_wall_s": wall, "median_cpu_s": cpu,
            "cpu_s_per_source_minute": cpu / minutes if minutes else None,
            "fps": info["frames"] / wall if wall else None,
            "ratio_wall_vs_ffmpeg": ratio(wall, ff_wall),
            "ratio_cpu_vs_ffmpeg": ratio(cpu, ff_cpu),
        }
        if side in unavailable:
            sides_out[side]["error"] = unavailable[side]
    # The last run's outputs, for the quality scenario.
    keep = {}
    for side in ("ffmpeg", "zerofarm transcode"):
        rs = [r for r in runs.get(side, []) if r is not None]
        if rs and os.path.exists(rs[-1]["out"]):
            keep[side] = rs[-1]["out"]
    ctx.shared["ladder_outputs"] = {"clip": clip, "rungs": rungs, "outputs": keep}

    rows = []
    for side, s in sides_out.items():
        if "not_available" in s:
            rows.append([side, f"not available: {s['not_available']}", "", "", "", "", ""])
        else:
            rows.append([side, fmt(s["median_wall_s"], unit=" s"),
                         fmt(s["median_cpu_s"], unit=" s"),
                         fmt(s["cpu_s_per_source_minute"], unit=" s"), fmt(s["fps"], 1),
                         fmt(s["ratio_wall_vs_ffmpeg"]), fmt(s["ratio_cpu_vs_ffmpeg"])])
    return {
        "clip": clip, "source": info, "ladder": rungs, "repeat": repeat,
        "sides": sides_out,
        "ratios": {side: {"wall": s.get("ratio_wall_vs_ffmpeg"), "cpu": s.get("ratio_cpu_vs_ffmpeg")}
                   for side, s in sides_out.items() if side != "ffmpeg"},
        "table": {"header": ["side", "wall (median)", "CPU (median)", "CPU s per source min",
                             "fps", "wall / ffmpeg", "CPU / ffmpeg"], "rows": rows},
    }
