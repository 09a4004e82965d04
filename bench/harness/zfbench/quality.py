"""Scenario 3, quality: per rung, PSNR and SSIM against the source (libavfilter's psnr and ssim
filters through the ffmpeg CLI) and the video bitrate, for zerofarm's stitched rendition against
the same rung encoded in one pass by one ffmpeg process with the same x264 settings. The cost of
chunking is the delta zerofarm - ffmpeg.

Both sides are compared at the rung's size against the same reference: the source scaled with
bicubic to the rung's size. Both sides are read from their HLS media playlists (video-only
MPEG-TS segments on both sides), so the bitrate (segment bytes x 8 / duration) carries the
same container overhead.
"""

import os
import re
import subprocess

from . import ladder, media
from .common import NotAvailable, fmt, log, run_timed, tail

NAME = "quality"
TITLE = "Quality of the stitched renditions against one-pass encodes"

PSNR_RE = re.compile(r"PSNR y:([\d.]+|inf) u:([\d.]+|inf) v:([\d.]+|inf) average:([\d.]+|inf)")
SSIM_RE = re.compile(r"SSIM Y:([\d.]+) \([^)]*\) U:([\d.]+) \([^)]*\) V:([\d.]+) \([^)]*\) "
                     r"All:([\d.]+) \(([\d.]+|inf)\)")


def compare(ffmpeg, distorted, source, rung, log_path, seconds=None):
    """PSNR (dB, average of all planes and Y) and SSIM (All, Y) of distorted against the source."""
    w, h = rung["width"], rung["height"]
    graph = (f"[0:v]setpts=PTS-STARTPTS,setsar=1,format=yuv420p,split[d1][d2];"
             f"[1:v]setpts=PTS-STARTPTS,scale={w}:{h}:flags=bicubic,setsar=1,format=yuv420p,"
             f"split[r1][r2];[d1][r1]psnr[p];[d2][r2]ssim[s]")
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "info"]
    limit = ["-t", str(seconds)] if seconds else []
    argv += limit + ["-i", distorted] + limit + ["-i", source]
    argv += ["-filter_complex", graph, "-map", "[p]", "-map", "[s]", "-f", "null", "-"]
    r = run_timed(argv, log_path)
    text = open(log_path, errors="replace").read()
    p = PSNR_RE.search(text)
    s = SSIM_RE.search(text)
    if r.returncode != 0 or not p or not s:
        raise NotAvailable(f"psnr/ssim of {distorted} failed: {tail(log_path, 5)}")
    to_f = (lambda v: None if v == "inf" else float(v))
    return {"psnr_y_db": to_f(p.group(1)), "psnr_avg_db": to_f(p.group(4)),
            "ssim_y": float(s.group(1)), "ssim_all": float(s.group(4)),
            "ssim_all_db": to_f(s.group(5))}


def playlist_stats(playlist):
    """Segment bytes and duration of an HLS media playlist."""
    base = os.path.dirname(playlist)
    total_bytes, duration = 0, 0.0
    for line in open(playlist):
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration += float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            total_bytes += os.path.getsize(os.path.join(base, line))
    return total_bytes, duration


def run(ctx):
    ffmpeg = ctx.tool("ffmpeg")
    shared = ctx.shared.get("ladder_outputs")
    clip = ctx.clips["quality"]
    outputs = {}
    if shared and shared["clip"] == clip and len(shared["outputs"]) == 2:
        outputs = shared["outputs"]
        rungs = shared["rungs"]
        info = media.probe(ctx.tool("ffprobe"), clip)
        origin = "the last run of the ladder scenario"
    else:
        # Encode both sides once here.
        info = media.probe(ctx.tool("ffprobe"), clip)
        rungs = media.plan_ladder(info)
        for side in ("ffmpeg", "zerofarm transcode"):
            r = ladder.run_side(ctx, side, 0, clip, info, rungs, keep=True)
            outputs[side] = r["out"]
        origin = "one encode of each side made by this scenario"
    rows, per_rung = [], []
    for rung in rungs:
        entry = {"rung": rung["name"], "width": rung["width"], "height": rung["height"]}
        for side, key in (("zerofarm transcode", "zerofarm"), ("ffmpeg", "ffmpeg")):
            playlist = os.path.join(outputs[side], rung["name"], "index.m3u8")
            if not os.path.exists(playlist):
                raise NotAvailable(f"{side} wrote no {rung['name']}/index.m3u8")
            nbytes, seconds = playlist_stats(playlist)
            m = compare(ffmpeg, playlist, clip, rung,
                        os.path.join(ctx.scratch("quality"), f"{key}-{rung['name']}.log"))
            m["bitrate_kbps"] = nbytes * 8 / seconds / 1000 if seconds else None
            m["duration_s"] = seconds
            entry[key] = m
            log(f"quality {rung['name']:6s} {key:9s} PSNR {m['psnr_avg_db']} dB  "
                f"SSIM {m['ssim_all']}  {m['bitrate_kbps']:.0f} kb/s")
        z, f = entry["zerofarm"], entry["ffmpeg"]
        entry["delta"] = {
            "psnr_avg_db": None if z["psnr_avg_db"] is None or f["psnr_avg_db"] is None
            else z["psnr_avg_db"] - f["psnr_avg_db"],
            "ssim_all": z["ssim_all"] - f["ssim_all"],
            "bitrate_ratio": z["bitrate_kbps"] / f["bitrate_kbps"] if f["bitrate_kbps"] else None,
        }
        per_rung.append(entry)
        rows.append([rung["name"], fmt(z["psnr_avg_db"]), fmt(f["psnr_avg_db"]),
                     f"{entry['delta']['psnr_avg_db']:+.2f}" if entry["delta"]["psnr_avg_db"] is not None else "–",
                     f"{z['ssim_all']:.4f}", f"{f['ssim_all']:.4f}",
                     f"{entry['delta']['ssim_all']:+.4f}",
                     fmt(z["bitrate_kbps"]), fmt(f["bitrate_kbps"]),
                     fmt(entry["delta"]["bitrate_ratio"], 3)])
    # The outputs stay for the store scenario's serving part (same segments); the scratch
    # folder goes at the end of the run.
    return {
        "clip": clip, "source": info, "encodes": origin, "rungs": per_rung,
        "ratios": {e["rung"]: e["delta"] for e in per_rung},
        "table": {"header": ["rung", "PSNR zerofarm (dB)", "PSNR one pass (dB)", "Δ PSNR",
                             "SSIM zerofarm", "SSIM one pass", "Δ SSIM", "kb/s zerofarm",
                             "kb/s one pass", "bitrate ratio"], "rows": rows},
    }
