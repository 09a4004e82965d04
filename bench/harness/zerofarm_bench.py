#!/usr/bin/env python3
"""zerofarm's benchmark harness: every scenario against what one would use instead, measured in
the same run (interleaved), reported as medians and ratios.

    zerofarm bench [--quick] [--scenario NAME]... [--out DIR] [--repeat N] [--plots]
    python3 bench/harness/zerofarm_bench.py --zerofarm build/bin/zerofarm [same options]

Scenarios: ladder, ttfs, publish, quality, sandbox, store, serve, scale, cluster, grep (see
BENCHMARKS.md). Each prints a table on stdout and writes DIR/<scenario>.json; DIR/summary.json
and DIR/tables.md gather them.
A scenario whose command does not exist yet (serve, the cluster) is reported as "not
available: <why>", never with made-up numbers. Python 3 standard library only.
"""

import argparse
import datetime
import os
import shutil
import struct
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from zfbench import (cluster, common, grep, ladder, plots, publish, quality, sandbox,  # noqa: E402
                     scale, serving, store, ttfs, upload)
from zfbench.common import NotAvailable, log  # noqa: E402

SCENARIOS = [ladder, ttfs, publish, quality, sandbox, store, serving, upload, scale, cluster,
             grep]
BY_NAME = {m.NAME: m for m in SCENARIOS}

# What every scenario's JSON carries (checked by bench/harness/check_results.py and CTest).
REQUIRED_FIELDS = ["scenario", "title", "available", "date_utc", "machine", "quick", "repeat",
                   "seconds", "table"]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="zerofarm bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: a 6 s clip, one repeat, small sizes (about two minutes); "
                        "asserts the harness works, its timings mean little")
    p.add_argument("--scenario", action="append", choices=list(BY_NAME),
                   help="run only this scenario (repeatable; default: all)")
    p.add_argument("--out", help="results folder (default: bench-results/<UTC date-time>)")
    p.add_argument("--repeat", type=int, help="runs of each side (default 3; --quick: 1)")
    p.add_argument("--plots", action="store_true", help="also draw PNG plots with gnuplot")
    p.add_argument("--plots-dir", help="where the PNGs go (default: OUT/plots)")
    p.add_argument("--replot", metavar="RESULTS",
                   help="only redraw the plots (and tables.md) of an earlier results folder")
    p.add_argument("--clip", help="source clip of the ladder, quality, ttfs and store scenarios "
                                  "(default: sample-media/out/1080p30-60s.mp4)")
    p.add_argument("--scale-clip", help="source clip of the scale scenario "
                                        "(default: sample-media/out/720p60-30s.mp4)")
    p.add_argument("--spawns", type=int, default=200,
                   help="sandbox spawns per method (default 200; --quick: 20)")
    p.add_argument("--upload-mib", type=int,
                   help="MiB the upload scenario sends (default: $ZEROFARM_BENCH_UPLOAD_MIB, "
                        "else 1024; --quick: 128)")
    p.add_argument("--grep-gib", type=float,
                   help="GiB of log lines the grep scenario searches (default: "
                        "$ZEROFARM_BENCH_GREP_GIB, else 1; --quick: 1/16)")
    p.add_argument("--grep-split",
                   help="split.bytes of the grep job on serve (default 64M; --quick: 16M)")
    p.add_argument("--publish-lengths", default="30,120,600",
                   help="seconds of the publish scenario's 1080p30 sources, comma-separated "
                        "(default 30,120,600; --quick: the smoke clip only)")
    p.add_argument("--zerofarm", help="the zerofarm binary (default: $ZEROFARM_BIN, then "
                                      "--bin-dir/zerofarm)")
    p.add_argument("--bin-dir", help="where zerofarm-worker, zerofarm-sandbox-bench and "
                                     "zerofarm-store-bench are (default: next to --zerofarm)")
    p.add_argument("--source-dir", default=os.path.dirname(os.path.dirname(HERE)),
                   help="the zerofarm source tree (for sample-media/)")
    p.add_argument("--media-dir", help="where the sample clips are (default: "
                                       "SOURCE/sample-media/out)")
    p.add_argument("--work", help="scratch folder (default: a new folder under $TMPDIR)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat needs a positive number")
    return args


def is_static_elf(path):
    """True for an ELF executable without a PT_INTERP program header (statically linked)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
        return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))
    except (OSError, struct.error):
        return False


def find_tools(args):
    tools = {}
    zf = args.zerofarm or os.environ.get("ZEROFARM_BIN")
    if not zf and args.bin_dir:
        zf = os.path.join(args.bin_dir, "zerofarm")
    if not zf:
        for cand in ("build/bin/zerofarm", "build-bench/bin/zerofarm"):
            path = os.path.join(args.source_dir, cand)
            if os.access(path, os.X_OK):
                zf = path
                break
    if zf and os.access(zf, os.X_OK):
        tools["zerofarm"] = os.path.abspath(zf)
    bin_dir = args.bin_dir or (os.path.dirname(tools["zerofarm"]) if "zerofarm" in tools else None)
    for name in ("zerofarm-worker", "zerofarm-sandbox-bench", "zerofarm-store-bench"):
        path = os.path.join(bin_dir, name) if bin_dir else None
        tools[name] = path if path and os.access(path, os.X_OK) else shutil.which(name)
    # The static worker: the one the sandbox runs (zerofarm-worker once it is static).
    candidates = []
    if bin_dir:
        candidates += [os.path.join(bin_dir, "zerofarm-worker-static"),
                       os.path.join(bin_dir, "zerofarm-worker")]
    candidates += [os.path.join(args.source_dir, "build-static/bin/zerofarm-worker-static")]
    tools["worker-static"] = next((c for c in candidates if os.access(c, os.X_OK)
                                   and is_static_elf(c)), None)
    for name in ("ffmpeg", "ffprobe", "bwrap", "wrk", "nginx", "gnuplot", "objdump", "cc",
                 "curl"):
        tools[name] = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    return tools


def find_clips(args, tools, work_dir):
    media = args.media_dir or os.path.join(args.source_dir, "sample-media", "out")
    if args.quick:
        clip = args.clip or os.path.join(media, "720p30-6s.mp4")
        if not os.path.exists(clip):
            gen = os.path.join(args.source_dir, "sample-media", "generate.sh")
            log(f"making the smoke clip with {gen} --smoke")
            os.makedirs(media, exist_ok=True)
            rc = os.spawnv(os.P_WAIT, "/bin/bash", ["bash", gen, "--smoke", "--out", media])
            if rc != 0 or not os.path.exists(clip):
                raise SystemExit("zerofarm bench: could not make the smoke clip")
        return {k: clip for k in ("ladder", "quality", "ttfs", "serving", "scale", "cluster")}
    clip = args.clip or os.path.join(media, "1080p30-60s.mp4")
    scale_clip = args.scale_clip or os.path.join(media, "720p60-30s.mp4")
    if args.clip and not args.scale_clip and not os.path.exists(scale_clip):
        # A fresh machine without the samples: the given clip serves every scenario.
        log(f"no {scale_clip}: the serving, scale and cluster scenarios use --clip too")
        scale_clip = clip
    for c in {clip, scale_clip}:
        if not os.path.exists(c):
            raise SystemExit(f"zerofarm bench: no clip at {c}: make the samples with "
                             f"sample-media/generate.sh (or pass --clip)")
    # Serving needs one finished job's segments: the shorter clip's are enough for wrk.
    return {"ladder": clip, "quality": clip, "ttfs": clip, "serving": scale_clip,
            "scale": scale_clip, "cluster": scale_clip}


def print_table(title, table):
    print(f"\n## {title}\n")
    print(common.markdown_table(table["header"], table["rows"]))


def replot(args):
    results = args.replot
    tables = []
    for module in SCENARIOS:
        path = os.path.join(results, f"{module.NAME}.json")
        if os.path.exists(path):
            import json
            record = json.load(open(path))
            tables.append(f"### {record['title']}\n\n" + common.markdown_table(
                record["table"]["header"], record["table"]["rows"]))
            if "table2" in record:
                tables.append(common.markdown_table(record["table2"]["header"],
                                                    record["table2"]["rows"]))
    with open(os.path.join(results, "tables.md"), "w") as f:
        f.write("\n\n".join(tables) + "\n")
    for p in plots.draw(results, args.plots_dir or os.path.join(results, "plots"),
                        shutil.which("gnuplot")):
        log(f"plot {p}")
    return 0


def main(argv):
    args = parse_args(argv)
    if args.replot:
        return replot(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    out_dir = args.out or os.path.join("bench-results", started.strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    work_dir = args.work or tempfile.mkdtemp(prefix="zerofarm-bench-")
    os.makedirs(work_dir, exist_ok=True)
    tools = find_tools(args)
    if not tools.get("ffmpeg") or not tools.get("ffprobe"):
        raise SystemExit("zerofarm bench: ffmpeg and ffprobe are needed (Debian package ffmpeg)")
    names = args.scenario or [m.NAME for m in SCENARIOS]
    # Only scenarios that transcode need the sample clips (NEEDS_CLIPS, true unless said).
    needs_clips = any(getattr(BY_NAME[n], "NEEDS_CLIPS", True) for n in names)
    clips = find_clips(args, tools, work_dir) if needs_clips else {}
    ctx = common.Context(args, tools, clips, work_dir, out_dir)
    machine = common.machine()
    ctx.shared["machine"] = machine
    versions = {"ffmpeg": common.tool_version([tools["ffmpeg"], "-version"]),
                "wrk": common.tool_version([tools["wrk"], "-v"]) if tools.get("wrk") else None,
                "nginx": common.tool_version([tools["nginx"], "-v"]) if tools.get("nginx") else None,
                "bwrap": common.tool_version([tools["bwrap"], "--version"]) if tools.get("bwrap") else None}
    # Two machines benchmark the same bytes when the clips match sample-media/SHA256SUMS.
    reference = {}
    sums = os.path.join(args.source_dir, "sample-media", "SHA256SUMS")
    if os.path.exists(sums):
        for line in open(sums):
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                reference[parts[1]] = parts[0]
    clip_info = {}
    for path in sorted(set(clips.values())):
        digest = common.sha256_file(path)
        known = reference.get(os.path.basename(path))
        clip_info[path] = {"bytes": os.path.getsize(path), "sha256": digest,
                           "matches_sample_media_sha256sums": None if known is None else known == digest}
        if known is not None and known != digest:
            log(f"note: {path} differs from sample-media/SHA256SUMS (another FFmpeg build?): "
                f"figures are not comparable byte for byte with other machines")
    log(f"{machine['nproc']} CPUs ({machine['cpu_model']}), load {machine['loadavg_at_start']}; "
        f"results in {out_dir}")
    summary = {"date_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine,
               "quick": args.quick, "repeat": args.repeat, "tools": tools, "versions": versions,
               "clips": clip_info, "scenarios": {}}
    tables_md = [f"Run {summary['date_utc']} on {machine['nproc']} CPUs ({machine['cpu_model']}), "
                 f"{machine['mem_gib']} GiB RAM, {machine['os']}, load average at start "
                 f"{' '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}; "
                 f"repeat {args.repeat}{' (quick)' if args.quick else ''}."]
    try:
        for module in SCENARIOS:
            if module.NAME not in names:
                continue
            log(f"scenario {module.NAME}: {module.TITLE}")
            t0 = time.monotonic()
            record = {"scenario": module.NAME, "title": module.TITLE, "quick": args.quick,
                      "repeat": args.repeat,
                      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
                          "%Y-%m-%dT%H:%M:%SZ"), "machine": machine}
            try:
                result = module.run(ctx)
                record["available"] = True
                record.update(result)
            except NotAvailable as e:
                record["available"] = False
                record["not_available"] = str(e)
                record["table"] = {"header": ["scenario", "result"],
                                   "rows": [[module.NAME, f"not available: {e}"]]}
            except Exception as e:  # a broken scenario must not hide the others
                traceback.print_exc()
                record["available"] = False
                record["not_available"] = f"harness error: {type(e).__name__}: {e}"
                record["table"] = {"header": ["scenario", "result"],
                                   "rows": [[module.NAME, f"failed: {e}"]]}
            record["seconds"] = time.monotonic() - t0
            record["machine"]["loadavg_at_end"] = list(os.getloadavg())
            common.write_json(os.path.join(out_dir, f"{module.NAME}.json"), record)
            summary["scenarios"][module.NAME] = {
                "available": record["available"], "not_available": record.get("not_available"),
                "ratios": record.get("ratios"), "seconds": record["seconds"]}
            print_table(module.TITLE, record["table"])
            tables_md.append(f"### {module.TITLE}\n\n" +
                             common.markdown_table(record["table"]["header"], record["table"]["rows"]))
            for extra in ("table2",):
                if extra in record:
                    print()
                    print(common.markdown_table(record[extra]["header"], record[extra]["rows"]))
                    tables_md.append(common.markdown_table(record[extra]["header"],
                                                           record[extra]["rows"]))
            sys.stdout.flush()
    finally:
        if not args.keep_work and not args.work:
            shutil.rmtree(work_dir, ignore_errors=True)
    summary["machine"]["loadavg_at_end"] = list(os.getloadavg())
    common.write_json(os.path.join(out_dir, "summary.json"), summary)
    with open(os.path.join(out_dir, "tables.md"), "w") as f:
        f.write("\n\n".join(tables_md) + "\n")
    if args.plots:
        made = plots.draw(out_dir, args.plots_dir or os.path.join(out_dir, "plots"),
                          tools.get("gnuplot"))
        for p in made:
            log(f"plot {p}")
    log(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
