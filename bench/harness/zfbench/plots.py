"""PNG plots of a results folder with gnuplot (Debian's gnuplot-nox is enough): one small bar
chart per scenario that has figures. Data files and scripts are written next to the PNGs'
scratch so a plot can be redrawn by hand.
"""

import json
import os
import subprocess
import tempfile

from .common import log

STYLE = """\
set terminal pngcairo size 720,400 font "DejaVu Sans,10"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key below horizontal noenhanced
set yrange [0:*]
set xtics noenhanced
"""


def load(out_dir, name):
    path = os.path.join(out_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    data = json.load(open(path))
    return data if data.get("available") else None


def q(s):
    return '"' + str(s).replace('"', "'") + '"'


def bars(gnuplot, png, title, ylabel, columns, rows, tmp, extra=""):
    """rows: [(label, v1, v2, ...)]; columns: the series names."""
    data = os.path.join(tmp, os.path.basename(png) + ".dat")
    with open(data, "w") as f:
        for row in rows:
            f.write(q(row[0]) + " " + " ".join("NaN" if v is None else f"{v:.6g}" for v in row[1:]) + "\n")
    plot = ", ".join(f"{q(data)} using {i + 2}:xtic(1) title {q(c)}" for i, c in enumerate(columns))
    script = STYLE + extra + f"set output {q(png)}\nset title {q(title)} noenhanced\n" \
                             f"set ylabel {q(ylabel)}\nplot {plot}\n"
    subprocess.run([gnuplot], input=script, text=True, check=True, capture_output=True)
    return png


def draw(out_dir, plots_dir, gnuplot):
    if not gnuplot:
        log("plots: gnuplot not found (Debian package gnuplot-nox); no PNGs")
        return []
    os.makedirs(plots_dir, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        d = load(out_dir, "ladder")
        if d:
            rows = [(side, s.get("median_wall_s"), s.get("median_cpu_s"))
                    for side, s in d["sides"].items() if "median_wall_s" in s]
            made.append(bars(gnuplot, os.path.join(plots_dir, "ladder.png"),
                             f"Ladder, {os.path.basename(d['clip'])}: median of {d['repeat']} runs",
                             "seconds", ["wall", "CPU (user+sys)"], rows, tmp))
        d = load(out_dir, "ttfs")
        if d:
            rows = [("ffmpeg after upload", d["ffmpeg after upload"]["median_first_segment_s"])]
            z = d.get("zerofarm serve", {})
            if "median_first_segment_s" in z:
                rows.append(("zerofarm serve", z["median_first_segment_s"]))
            made.append(bars(gnuplot, os.path.join(plots_dir, "ttfs.png"),
                             "Time from upload start to the first playable segment",
                             "seconds", ["median"], rows, tmp))
        d = load(out_dir, "quality")
        if d:
            rows = [(e["rung"], e["zerofarm"]["psnr_avg_db"], e["ffmpeg"]["psnr_avg_db"])
                    for e in d["rungs"]]
            made.append(bars(gnuplot, os.path.join(plots_dir, "quality-psnr.png"),
                             "PSNR against the source, per rung", "dB",
                             ["zerofarm (chunked, stitched)", "ffmpeg (one pass)"], rows, tmp,
                             "set yrange [20:*]\n"))
            rows = [(e["rung"], e["zerofarm"]["bitrate_kbps"], e["ffmpeg"]["bitrate_kbps"])
                    for e in d["rungs"]]
            made.append(bars(gnuplot, os.path.join(plots_dir, "quality-bitrate.png"),
                             "Video bitrate per rung", "kbit/s",
                             ["zerofarm (chunked, stitched)", "ffmpeg (one pass)"], rows, tmp))
        d = load(out_dir, "sandbox")
        if d:
            m = d["spawn"].get("methods", {})
            rows = [(label, m.get(k, {}).get("p50_ms"), m.get(k, {}).get("p99_ms"))
                    for k, label in (("fork_exec", "fork+exec"), ("zerofarm", "zerofarm sandbox"),
                                     ("bwrap", "bwrap"))
                    if m.get(k, {}).get("n")]
            made.append(bars(gnuplot, os.path.join(plots_dir, "sandbox-spawn.png"),
                             f"Spawn + run + reap of a no-op static program "
                             f"({d['spawn'].get('spawns_per_method')} runs each)", "ms",
                             ["p50", "p99"], rows, tmp))
        d = load(out_dir, "store")
        if d and "nginx" in d.get("serving", {}):
            s = d["serving"]
            rows = [("nginx", s["nginx"]["median_requests_per_s"])]
            if "median_requests_per_s" in s.get("zerofarm serve", {}):
                rows.append(("zerofarm serve", s["zerofarm serve"]["median_requests_per_s"]))
            made.append(bars(gnuplot, os.path.join(plots_dir, "serving.png"),
                             "Segment GETs with wrk", "requests/s", ["median"], rows, tmp))
        d = load(out_dir, "scale")
        if d:
            rows = [(f"--jobs {w['jobs']}", w["median_wall_s"], w["median_cpu_s"])
                    for w in d["within_one_node"].values()]
            made.append(bars(gnuplot, os.path.join(plots_dir, "scale.png"),
                             f"One node, {os.path.basename(d['clip'])}, {d['cores']} cores",
                             "seconds", ["wall", "CPU"], rows, tmp))
    return made
