"""Scenario publish: time from upload to the first playable moment.

The first playable moment: the master playlist answers, every media playlist it names (each
rung and the audio) lists at least one segment, and the first segment of each answers 200
(polled every 20 ms over one keep-alive connection). Measured from the end of the upload (a
raw chunked POST: its 201 comes once the last byte is in) and from its start, for 1080p30
sources of several lengths (30 s, 2 min, 10 min; --quick: the smoke clip only), through
`zerofarm serve` and through `zerofarm proxy` over three storage nodes on this machine.

Baseline: `ffmpeg -f hls` with the same ladder and settings (the ladder scenario's command,
EVENT playlists) started on the same file when its upload ends (a copy with fsync): its time
to list its first segment. Mux's published medians (upload to playable, "How to transcode
video 100x faster", 2023) are the outside reference: 2.0 s under a minute, 3.3 s for 1-5
minutes, 9.0 s for 5-20 minutes.
"""

import os
import subprocess
import time

from . import farm, media, serve
from .common import NotAvailable, fmt, interleaved, log, median, ratio
from .ttfs import copy_upload, ffmpeg_first_segment

NAME = "publish"
TITLE = "Upload to playable: first playable moment while the farm transcodes"

LENGTHS = [30, 120, 600]  # seconds of 1080p30
MUX_MEDIAN_S = {30: 2.0, 120: 3.3, 600: 9.0}


def make_source(ctx, seconds):
    """A 1080p30 testsrc2 + sine clip of `seconds`, kept beside the sample clips."""
    media_dir = ctx.args.media_dir or os.path.join(ctx.args.source_dir, "sample-media", "out")
    os.makedirs(media_dir, exist_ok=True)
    path = os.path.join(media_dir, f"publish-1080p30-{seconds}s.mp4")
    if os.path.exists(path):
        return path
    log(f"publish: making {path}")
    tmp = path + ".part.mp4"
    r = subprocess.run([ctx.tool("ffmpeg"), "-nostdin", "-v", "error", "-y",
                        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
                        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-g", "60",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
                        "-movflags", "+faststart", tmp], capture_output=True, text=True)
    if r.returncode != 0:
        raise NotAvailable(f"ffmpeg could not make the {seconds} s source: {r.stderr[-300:]}")
    os.rename(tmp, path)
    return path


def playable(server, vid):
    """True once the master, every media playlist it names and each one's first segment answer."""
    status, _, data = server.request("GET", f"/v1/videos/{vid}/hls/master.m3u8")
    if status != 200:
        return False
    text = data.decode(errors="replace")
    uris = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")]
    uris += [part.split('"')[1] for part in text.split("URI=")[1:]]
    if not uris:
        return False
    for uri in uris:
        rung = uri.rsplit("/", 1)[0]
        s, _, body = server.request("GET", f"/v1/videos/{vid}/hls/{uri}")
        if s != 200:
            return False
        segs = [l.strip() for l in body.decode(errors="replace").splitlines()
                if l.strip() and not l.startswith("#")]
        if not segs:
            return False
        s2, _, seg = server.request("GET", f"/v1/videos/{vid}/hls/{rung}/{segs[0]}")
        if s2 != 200 or not seg:
            return False
    return True


def first_playable(server, clip, info, rungs):
    t0 = time.monotonic()
    vid = server.post_video(clip, [r["name"] for r in rungs])["id"]
    t_end = time.monotonic()
    deadline = t_end + 60 * max(10, info["duration_s"])
    while time.monotonic() < deadline:
        if playable(server, vid):
            t = time.monotonic()
            return {"from_upload_end_s": t - t_end, "from_upload_start_s": t - t0,
                    "upload_s": t_end - t0, "video": vid}
        v = server.video(vid)
        if v.get("status") == "failed":
            raise NotAvailable(f"the video failed: {v.get('error')}")
        time.sleep(0.02)
    raise NotAvailable("never playable in time")


def run(ctx):
    zerofarm = ctx.tools.get("zerofarm")
    why_serve = serve.available(zerofarm)
    why_farm = why_serve or farm.available(zerofarm)
    if ctx.args.quick:
        sources = {"smoke": ctx.clips["ttfs"]}
    else:
        lengths = [int(x) for x in ctx.args.publish_lengths.split(",") if x.strip()] or LENGTHS
        sources = {f"{s}s": make_source(ctx, s) for s in lengths}
    scratch = ctx.scratch("publish")
    out = {"lengths": {}, "mux_median_s": MUX_MEDIAN_S}
    rows = []
    for label, clip in sources.items():
        info = media.probe(ctx.tool("ffprobe"), clip)
        rungs = media.plan_ladder(info)
        sides = ["ffmpeg after upload"] + ([] if why_serve else ["zerofarm serve"]) + \
            ([] if why_farm else ["zerofarm proxy, 3 nodes"])

        def one(side, i):
            tag = f"{label}-{i}"
            try:
                if side == "ffmpeg after upload":
                    dest = os.path.join(scratch, f"upload-{tag}" + os.path.splitext(clip)[1])
                    up = copy_upload(clip, dest)
                    work = os.path.join(scratch, f"ffmpeg-{tag}")
                    first = ffmpeg_first_segment(ctx, dest, info, rungs, work)
                    ctx.clean(work)
                    os.unlink(dest)
                    r = {"upload_s": up, "from_upload_end_s": first,
                         "from_upload_start_s": up + first}
                elif side == "zerofarm serve":
                    data = os.path.join(scratch, f"serve-{tag}.data")
                    server = serve.Server(zerofarm, data, os.path.join(scratch, f"serve-{tag}.log"),
                                          env=ctx.zerofarm_env())
                    try:
                        r = first_playable(server, clip, info, rungs)
                    finally:
                        server.stop()
                    ctx.clean(data)
                else:
                    f = farm.Farm(ctx, zerofarm, os.path.join(scratch, f"farm-{tag}"), 3, 2,
                                  task_slots=1)
                    try:
                        r = first_playable(f.proxy, clip, info, rungs)
                    finally:
                        f.stop()
                    ctx.clean(os.path.join(scratch, f"farm-{tag}"))
            except NotAvailable as e:
                r = {"error": str(e)}
            log(f"publish {label} run {i} {side}: {r.get('from_upload_end_s', r.get('error'))}")
            return r

        runs = interleaved(sides, ctx.repeat, one)
        entry = {"clip": clip, "source": info, "ladder": rungs}
        base = [r for r in runs["ffmpeg after upload"] if "error" not in r]
        b = median([r["from_upload_end_s"] for r in base]) if base else None
        for side in sides:
            good = [r for r in runs[side] if "error" not in r]
            if not good:
                entry[side] = {"not_available": runs[side][0]["error"] if runs[side] else "not run"}
                rows.append([label, side, "not available", "", "", ""])
                continue
            end = median([r["from_upload_end_s"] for r in good])
            start = median([r["from_upload_start_s"] for r in good])
            entry[side] = {"runs": good, "median_from_upload_end_s": end,
                           "median_from_upload_start_s": start,
                           "vs_ffmpeg": ratio(end, b) if b else None}
            rows.append([label, side, fmt(end, unit=" s"), fmt(start, unit=" s"),
                         fmt(ratio(end, b)) if b else "", fmt(MUX_MEDIAN_S.get(int(label[:-1]))
                                                              if label[:-1].isdigit() else None,
                                                              unit=" s")])
        out["lengths"][label] = entry
    # Flat in length: the longest source's time over the shortest's, per side.
    labels = list(out["lengths"])
    out["ratios"] = {}
    for side in ("zerofarm serve", "zerofarm proxy, 3 nodes"):
        first = out["lengths"][labels[0]].get(side, {}).get("median_from_upload_end_s")
        last = out["lengths"][labels[-1]].get(side, {}).get("median_from_upload_end_s")
        out["ratios"][f"{side}: longest vs shortest"] = ratio(last, first) if first and last else None
    out["table"] = {"header": ["source", "side", "playable after upload end (median)",
                               "after upload start", "vs ffmpeg", "Mux median"],
                    "rows": rows}
    return out
