"""The source clip and the ladder: probing, zerofarm's rung plan, and the ffmpeg baseline.

The rung plan is zerofarm's (transcode/src/ladder.cc): a rung names the short side, the display
aspect is kept, dimensions are even, rungs above the source's short side are skipped. The x264
settings are the worker's: -preset veryfast -profile:v high, CRF 23 under a VBV cap (1080p
6000k L4.0, 720p 3500k L3.1, 480p 1500k L3.0, 360p 800k L3.0; x1.5 above 31 fps; bufsize 2x),
scenecut=0:open-gop=0, yuv420p, every source frame kept, AAC-LC 128k 48 kHz stereo once.
"""

import json
import subprocess
from fractions import Fraction

DEFAULT_LADDER = ["1080p", "720p", "480p", "360p"]


def probe(ffprobe, clip):
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries",
         "stream=index,codec_type,width,height,sample_aspect_ratio,avg_frame_rate,r_frame_rate,"
         "nb_frames:stream_side_data=rotation:format=duration,size",
         "-of", "json", clip], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    video = next((s for s in data.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise ValueError(f"{clip} has no video stream")
    audio = any(s.get("codec_type") == "audio" for s in data.get("streams", []))
    w, h = int(video["width"]), int(video["height"])
    sar = video.get("sample_aspect_ratio", "1:1")
    try:
        num, den = (int(x) for x in sar.split(":"))
        if num <= 0 or den <= 0:
            raise ValueError
    except ValueError:
        num, den = 1, 1
    dw, dh = int(w * num / den + 0.5), h
    rotation = 0
    for sd in video.get("side_data_list", []) or []:
        if "rotation" in sd:
            rotation = int(sd["rotation"])
    if rotation % 180 in (90, -90):
        dw, dh = dh, dw

    def rate(s):
        try:
            f = Fraction(s)
            return float(f) if f > 0 else 0.0
        except (ValueError, ZeroDivisionError):
            return 0.0

    fps = rate(video.get("avg_frame_rate", "0/1"))
    if fps <= 0 or fps > 240:
        fps = rate(video.get("r_frame_rate", "0/1"))
    duration = float(data.get("format", {}).get("duration") or 0)
    frames = video.get("nb_frames")
    frames = int(frames) if frames not in (None, "N/A") else int(round(duration * fps))
    return {"display_width": dw, "display_height": dh, "fps": fps, "duration_s": duration,
            "frames": frames, "audio": audio, "bytes": int(data["format"].get("size") or 0)}


def even(v):
    r = int(v / 2 + 0.5) * 2
    return max(r, 2)


def plan_rung(short, info):
    dw, dh = info["display_width"], info["display_height"]
    src_short, src_long = min(dw, dh), max(dw, dh)
    e = short - short % 2
    long_side = even(e * src_long / src_short)
    if short >= 1080:
        level, maxrate = "4.0", 6000
    elif short >= 720:
        level, maxrate = "3.1", 3500
    elif short >= 480:
        level, maxrate = "3.0", 1500
    else:
        level, maxrate = "3.0", 800
    if info["fps"] > 31:
        maxrate = maxrate * 3 // 2
    w, h = (e, long_side) if dw < dh else (long_side, e)
    return {"name": f"{short}p", "width": w, "height": h, "level": level, "maxrate_kbps": maxrate}


def plan_ladder(info, names=None):
    names = names or DEFAULT_LADDER
    src_short = min(info["display_width"], info["display_height"])
    rungs = [plan_rung(int(n.rstrip("p")), info) for n in names if int(n.rstrip("p")) <= src_short]
    if not rungs:
        rungs = [plan_rung(src_short - src_short % 2, info)]
    return rungs


def x264_rung_args(i, rung):
    """Per-output-stream options of rung i (stream specifier v:i)."""
    return [f"-level:v:{i}", rung["level"], f"-maxrate:v:{i}", f"{rung['maxrate_kbps']}k",
            f"-bufsize:v:{i}", f"{rung['maxrate_kbps'] * 2}k"]


X264_COMMON = ["-c:v", "libx264", "-preset:v", "veryfast", "-profile:v", "high", "-crf:v", "23",
               "-x264-params", "scenecut=0:open-gop=0",
               "-force_key_frames:v", "expr:gte(t,n_forced*4)", "-fps_mode:v", "passthrough"]


def ffmpeg_ladder_argv(ffmpeg, clip, info, rungs, out_dir, playlist_type="vod", threads=None):
    """One ffmpeg process: decode once, split, encode every rung, HLS with 4 s segments."""
    n = len(rungs)
    graph = f"[0:v:0]split={n}" + "".join(f"[s{i}]" for i in range(n))
    for i, r in enumerate(rungs):
        graph += f";[s{i}]scale={r['width']}:{r['height']},setsar=1,format=yuv420p[v{i}]"
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", clip,
            "-filter_complex", graph]
    var_map = []
    for i, r in enumerate(rungs):
        argv += ["-map", f"[v{i}]"] + x264_rung_args(i, r)
        var_map.append(f"v:{i},name:{r['name']}" + (",agroup:aac" if info["audio"] else ""))
    argv += X264_COMMON
    if threads:
        argv += ["-threads", str(threads)]
    if info["audio"]:
        argv += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]
        var_map.append("a:0,agroup:aac,name:audio")
    argv += ["-f", "hls", "-hls_time", "4", "-hls_playlist_type", playlist_type,
             "-hls_flags", "independent_segments", "-master_pl_name", "master.m3u8",
             "-var_stream_map", " ".join(var_map),
             "-hls_segment_filename", f"{out_dir}/%v/seg%05d.ts", f"{out_dir}/%v/index.m3u8"]
    return argv
