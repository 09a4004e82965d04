"""Scenario 2, time to the first playable segment.

zerofarm serve: from the moment a tus upload starts (POST /v1/uploads, then PATCHes in 4 MiB
pieces, streamed by a thread) to the first 200 answer for a segment listed in a media playlist
of the video (polled every 50 ms on every rung's playlist). When tus fails, a raw POST with
chunked transfer encoding is used instead (polling then starts at its 201); the JSON says which.

Baseline: the upload ends first, then ffmpeg starts writing HLS (the same ladder and settings as
the ladder scenario, EVENT playlists so each segment is listed as soon as it is written); its
time is upload + ffmpeg's time to list its first segment in any media playlist (polled every
10 ms). The upload is a copy of the file with fsync (no network): a lower bound of a real
upload, so the baseline is favoured.
"""

import os
import subprocess
import threading
import time

from . import media, serve
from .common import NotAvailable, fmt, interleaved, log, median, ratio

NAME = "ttfs"
TITLE = "Time to the first playable segment"


def copy_upload(clip, dest):
    t0 = time.monotonic()
    with open(clip, "rb") as src, open(dest, "wb") as dst:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    return time.monotonic() - t0


def ffmpeg_first_segment(ctx, clip, info, rungs, out):
    os.makedirs(out, exist_ok=True)
    argv = media.ffmpeg_ladder_argv(ctx.tool("ffmpeg"), clip, info, rungs, out,
                                    playlist_type="event")
    playlists = [os.path.join(out, r["name"], "index.m3u8") for r in rungs]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = t0 + 60 * max(10, info["duration_s"])
        while time.monotonic() < deadline:
            for p in playlists:
                try:
                    with open(p) as f:
                        if "#EXTINF" in f.read():
                            return time.monotonic() - t0
                except OSError:
                    pass
            if proc.poll() is not None:
                raise NotAvailable(f"ffmpeg ended ({proc.returncode}) before listing a segment")
            time.sleep(0.01)
        raise NotAvailable("ffmpeg listed no segment in time")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def serve_first_segment(ctx, clip, info, rungs, data_dir, log_path, method):
    """method "tus": the video id is known before the bytes go, so polling starts with the
    upload; "post": a raw chunked POST, polling starts when it answers 201."""
    server = serve.Server(ctx.tool("zerofarm"), data_dir, log_path, env=ctx.zerofarm_env())
    try:
        upload = {}
        t0 = time.monotonic()
        if method == "tus":
            location, vid = server.tus_create(clip, [r["name"] for r in rungs])

            def push():
                try:
                    server.tus_upload(location, clip)
                    upload["done_s"] = time.monotonic() - t0
                except Exception as e:  # reported below
                    upload["error"] = str(e)
        else:
            vid = server.post_video(clip, [r["name"] for r in rungs])["id"]
            upload["done_s"] = time.monotonic() - t0

            def push():
                pass

        thread = threading.Thread(target=push, daemon=True)
        thread.start()
        deadline = t0 + 60 * max(10, info["duration_s"])
        try:
            while time.monotonic() < deadline:
                if "error" in upload:
                    raise NotAvailable(f"tus upload failed: {upload['error']}")
                for r in rungs:
                    status, _, data = server.request("GET",
                                                     f"/v1/videos/{vid}/hls/{r['name']}/index.m3u8")
                    if status != 200:
                        continue
                    segs = [l.strip() for l in data.decode(errors="replace").splitlines()
                            if l.strip() and not l.startswith("#")]
                    if not segs:
                        continue
                    seg = segs[0] if segs[0].startswith("/") else \
                        f"/v1/videos/{vid}/hls/{r['name']}/{segs[0]}"
                    s2, _, body = server.request("GET", seg)
                    if s2 == 200 and body:
                        return {"first_segment_s": time.monotonic() - t0,
                                "upload_s": upload.get("done_s"), "rung": r["name"],
                                "upload_method": method}
                v = server.video(vid)
                if v.get("status") == "failed":
                    raise NotAvailable(f"the video failed: {v.get('error')}")
                time.sleep(0.05)
            raise NotAvailable("no playable segment in time")
        finally:
            thread.join(timeout=600)
    finally:
        server.stop()


def run(ctx):
    clip = ctx.clips["ttfs"]
    info = media.probe(ctx.tool("ffprobe"), clip)
    rungs = media.plan_ladder(info)
    scratch = ctx.scratch("ttfs")
    why = serve.available(ctx.tools.get("zerofarm"))
    sides = ["ffmpeg after upload"] + ([] if why else ["zerofarm serve"])

    def one(side, i):
        if side == "ffmpeg after upload":
            dest = os.path.join(scratch, f"upload-{i}" + os.path.splitext(clip)[1])
            up = copy_upload(clip, dest)
            out = os.path.join(scratch, f"ffmpeg-{i}")
            first = ffmpeg_first_segment(ctx, dest, info, rungs, out)
            ctx.clean(out)
            os.unlink(dest)
            r = {"upload_s": up, "ffmpeg_first_segment_s": first, "first_segment_s": up + first}
        else:
            r = None
            errors = []
            for method in ([] if ctx.shared.get("tus_broken") else ["tus"]) + ["post"]:
                data = os.path.join(scratch, f"serve-{i}-{method}.data")
                try:
                    r = serve_first_segment(ctx, clip, info, rungs, data,
                                            os.path.join(scratch, f"serve-{i}-{method}.log"),
                                            method)
                    ctx.clean(data)
                    break
                except NotAvailable as e:
                    errors.append(f"{method}: {e}")
                    log(f"ttfs: zerofarm serve with {method} upload: {e}")
                    if method == "tus":
                        ctx.shared["tus_broken"] = str(e)
            if r is None:
                return {"error": "; ".join(errors)}
            if ctx.shared.get("tus_broken"):
                r["tus_error"] = ctx.shared["tus_broken"]
        log(f"ttfs run {i} {side}: {r.get('first_segment_s')}")
        return r

    runs = interleaved(sides, ctx.repeat, one)
    base = runs["ffmpeg after upload"]
    out = {"clip": clip, "source": info, "ladder": rungs,
           "ffmpeg after upload": {"runs": base,
                                   "median_first_segment_s": median([r["first_segment_s"] for r in base]),
                                   "median_upload_s": median([r["upload_s"] for r in base])}}
    b = out["ffmpeg after upload"]["median_first_segment_s"]
    rows = [["ffmpeg, started after the upload (copy + fsync)", fmt(b, unit=" s"),
             fmt(out["ffmpeg after upload"]["median_upload_s"], unit=" s"), "1.00"]]
    zs = [r for r in runs.get("zerofarm serve", []) if "error" not in r]
    errors = [r["error"] for r in runs.get("zerofarm serve", []) if "error" in r]
    if why or not zs:
        reason = why or errors[0]
        out["zerofarm serve"] = {"not_available": reason}
        rows.append(["zerofarm serve", f"not available: {reason}", "", ""])
        out["ratios"] = {"zerofarm_vs_ffmpeg": None}
    else:
        z = median([r["first_segment_s"] for r in zs])
        out["zerofarm serve"] = {"runs": zs, "median_first_segment_s": z,
                                 "median_upload_s": median([r["upload_s"] for r in zs])}
        out["ratios"] = {"zerofarm_vs_ffmpeg": ratio(z, b)}
        how = "tus upload" if zs[0].get("upload_method") == "tus" else "raw chunked POST"
        rows.append([f"zerofarm serve ({how})", fmt(z, unit=" s"),
                     fmt(out["zerofarm serve"]["median_upload_s"], unit=" s"), fmt(ratio(z, b))])
    if ctx.shared.get("tus_broken"):
        out["tus_not_available"] = ctx.shared["tus_broken"]
    out["table"] = {"header": ["side", "first playable segment (median)", "upload took",
                               "ratio"], "rows": rows}
    return out
