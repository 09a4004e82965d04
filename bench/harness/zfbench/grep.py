"""Scenario grep: a search run next to the data (`POST /v1/jobs`) against the ways one would
search the same bytes without it. Every side counts the lines holding PATTERN in the same
generated log files (deterministic, several files), with the same static GNU grep:

- local: `grep -c -h PATTERN FILE...` over the files on this machine's disk (page cache warm).
- job on serve: the files stored as objects on a 1-node `zerofarm serve`, searched by a job
  (map: the grep program object with -c, exit codes 0 and 1 accepted; reduce: busybox awk sums
  the counts). Throughput against local.
- job on the farm: 3 `zerofarm node` + `zerofarm proxy`, each in its own network namespace
  behind a link capped with tc (LINK_RATE each way), 2 replicas; the job through the proxy.
  Also measured: what one TCP stream gets over a capped link (the bound of any download), and
  the bytes the farm's hosts sent over their links during each run.
- download then grep: on the same capped farm, GET every object through the proxy to files,
  then grep them locally, as a client without storage-side jobs would.
- job overhead: a one-line job on serve, submit to the first instance running and job wall
  minus its instances' walls (map + reduce run one after the other).

The objects are stored before the links are capped (ingest is not what this measures). Every
run checks the counts agree (local == job result == download-then-grep) and fails otherwise.
Size: --grep-gib (or $ZEROFARM_BENCH_GREP_GIB), default 1 GiB, --quick 64 MiB.
"""

import json
import os
import random
import time

from . import farm, netlab, serve
from .common import NotAvailable, fmt, interleaved, log, median, ratio, run_timed, tail

NAME = "grep"
TITLE = "Grep next to the data: /v1/jobs against local grep and download-then-grep"
NEEDS_CLIPS = False  # makes its own data

PATTERN = "ERROR"
FARM_NODES, FARM_REPLICAS = 3, 2
LINK_RATE = "100mbit"       # tc syntax; every host's link, each direction
LINK_MBIT = 100
FARM_SPLIT = "8M"           # the farm stores objects in 8 MiB parts: one map instance per part
POLL_S = 0.02               # GET /v1/jobs/{id} while a big job runs, at first (then backing
                            # off: each answer lists every instance, 40 KB for 129, and crosses
                            # the proxy's capped link)
OVERHEAD_POLL_S = 0.002     # while a one-line job runs


# --- the data ---------------------------------------------------------------------------------

LEVELS = ["INFO"] * 44 + ["DEBUG"] * 12 + ["WARN"] * 5 + ["ERROR"] * 1 + ["TRACE"] * 2
PATHS = ["videos", "objects", "jobs", "uploads"]
STATUS = [200, 200, 200, 201, 204, 304, 404, 500]
BLOCKS = 16


def log_block(seed, size=1 << 20):
    """About `size` bytes of whole log lines, the same for the same seed on every machine
    (about 1 line in 64 is an ERROR)."""
    r = random.Random(seed)
    lines, n, i = [], 0, 0
    day = 1 + seed % 28
    while n < size - 200:
        x = r.getrandbits(64)
        line = (f"2026-12-{day:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}."
                f"{x & 1023:04d}Z {LEVELS[(x >> 10) & 63]} svc-{(x >> 16) & 31:02d} "
                f"req={x >> 21:011x} path=/v1/{PATHS[(x >> 12) & 3]}/{(x >> 30) & 0xffffff:06x} "
                f"status={STATUS[(x >> 5) & 7]} ms={(x >> 40) & 2047}"
                f"{' ' + 'x' * ((x >> 51) & 63) if x & 16 else ''}\n")
        lines.append(line)
        n += len(line)
        i += 1
    return "".join(lines).encode()


def make_logs(folder, total_bytes, files):
    """`files` log files of about total_bytes together, made of BLOCKS distinct 1 MiB blocks
    in a seeded order (fast to make, the same bytes everywhere). Returns their paths."""
    os.makedirs(folder, exist_ok=True)
    blocks = [log_block(s) for s in range(BLOCKS)]
    per_file = max(1, round(total_bytes / (1 << 20) / files))
    order = random.Random(2026)
    paths = []
    for f in range(files):
        path = os.path.join(folder, f"2026-12-{f + 1:02d}.log")
        with open(path, "wb") as out:
            for _ in range(per_file):
                out.write(blocks[order.randrange(BLOCKS)])
        paths.append(path)
    return paths


def data_size(ctx):
    gib = ctx.args.grep_gib or os.environ.get("ZEROFARM_BENCH_GREP_GIB")
    if gib:
        return int(float(gib) * (1 << 30))
    return (64 << 20) if ctx.quick else (1 << 30)


# --- the sides --------------------------------------------------------------------------------

def grep_count(grep, paths, scratch, tag):
    """`grep -c -h PATTERN paths` timed; the sum of its per-file counts. Its stdout goes to a
    file: GNU grep stops at the first match when stdout is /dev/null."""
    out = os.path.join(scratch, f"{tag}.out")
    r = run_timed([grep, "-c", "-h", PATTERN, *paths], os.path.join(scratch, f"{tag}.log"),
                  stdout_path=out, timeout=3600)
    if r.returncode not in (0, 1):
        raise NotAvailable(f"grep exited {r.returncode}: {tail(r.log_path, 3)}")
    return sum(int(line) for line in open(out) if line.strip()), r


def put_object(server, path, file):
    with open(file, "rb") as body:
        status, _, data = server.request(
            "PUT", f"/v1/objects/{path}", body=body, timeout=3600,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(os.path.getsize(file))})
    if status != 201:
        raise NotAvailable(f"PUT /v1/objects/{path} answered {status}: {data[:300]!r}")
    return json.loads(data)


def store(server, grep, busybox, logs):
    """The programs and the logs as objects of `server`; the programs must be accepted."""
    for name, program in (("bin/grep", grep), ("bin/busybox", busybox)):
        verdict = put_object(server, name, program).get("program", {})
        if verdict.get("verdict") != "accepted":
            raise NotAvailable(f"{program} was not accepted as a program: {verdict}")
    for path in logs:
        put_object(server, f"logs/{os.path.basename(path)}", path)


def job_doc(split, prefix="2026-"):
    return {"map": {"program": "bin/grep", "args": ["-c", PATTERN], "ok_exit_codes": [0, 1],
                    "input": {"container": "logs", "prefix": prefix}},
            "reduce": {"program": "bin/busybox", "args": ["awk", "{s+=$1} END {print s+0}"]},
            "split": {"bytes": split}}


def run_job(server, doc, poll_s, backoff=False, timeout=3600):
    """Submits doc and follows it to its end, polling every poll_s (with backoff: then every
    1/50 of the time elapsed, at most 0.5 s, so the wall is known within 2%). Returns (wall
    from submit to the end seen, submit to the first instance seen running or done, the final
    job); the job carries "submit_s", the POST's own time (until its 201)."""
    t0 = time.monotonic()
    status, _, data = server.request("POST", "/v1/jobs", body=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
    if status != 201:
        raise NotAvailable(f"POST /v1/jobs answered {status}: {data[:300]!r}")
    jid = json.loads(data)["id"]
    submitted = time.monotonic() - t0
    first = None
    while time.monotonic() - t0 < timeout:
        status, _, data = server.request("GET", f"/v1/jobs/{jid}")
        now = time.monotonic()
        if status != 200:
            raise NotAvailable(f"GET /v1/jobs/{jid} answered {status}: {data[:300]!r}")
        job = json.loads(data)
        if first is None and any(i.get("state") in ("running", "done")
                                 for i in job.get("instances", [])):
            first = now - t0
        if job.get("status") != "running":
            if job.get("status") != "done":
                raise NotAvailable(f"job {jid} {job.get('status')}: {job.get('error')}")
            job["submit_s"] = submitted
            return now - t0, first, job
        time.sleep(max(poll_s, min(0.5, (now - t0) / 50)) if backoff else poll_s)
    raise NotAvailable(f"job {jid} still running after {timeout} s")


def job_side(server, doc, expected):
    wall, first, job = run_job(server, doc, POLL_S, backoff=True)
    count = int(job["result"].strip())
    if count != expected:
        raise RuntimeError(f"the job counted {count} lines with {PATTERN}, local grep {expected}")
    insts = job["instances"]
    maps = [i for i in insts if i["stage"] == "map"]
    return {"wall_s": wall, "count": count, "first_instance_s": first, "instances": len(insts),
            "map_wall_s_max": max(i["wall_seconds"] for i in maps),
            "map_wall_s_sum": sum(i["wall_seconds"] for i in maps),
            "cpu_s": sum(i["cpu_seconds"] for i in insts),
            "bytes_in": sum(i["bytes_in"] for i in maps),
            "network_bytes": sum(i["network_bytes"] for i in insts),
            "nodes": sorted({i["node"] or "" for i in insts})}


def download_then_grep(proxy, names, grep, scratch, expected):
    """GET every object through the proxy into files, then grep them here."""
    folder = os.path.join(scratch, "downloaded")
    os.makedirs(folder, exist_ok=True)
    t0 = time.monotonic()
    paths = []
    for name in names:
        path = os.path.join(folder, name)
        conn = proxy.connection(timeout=600)
        try:
            conn.request("GET", f"/v1/objects/logs/{name}", headers=proxy.headers())
            resp = conn.getresponse()
            if resp.status != 200:
                raise NotAvailable(f"GET /v1/objects/logs/{name} answered {resp.status}")
            with open(path, "wb") as out:
                while True:
                    block = resp.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
        finally:
            conn.close()
        paths.append(path)
    downloaded = time.monotonic() - t0
    count, r = grep_count(grep, paths, scratch, "downloaded")
    wall = time.monotonic() - t0
    if count != expected:
        raise RuntimeError(f"download then grep counted {count} lines with {PATTERN}, "
                           f"local grep {expected}")
    for p in paths:
        os.remove(p)
    return {"wall_s": wall, "download_s": downloaded, "grep_s": r.wall_s, "count": count}


def overhead(server, runs):
    """A one-line input: submit to first instance running, and job wall minus the walls of
    its map and reduce instances (which run one after the other)."""
    out = []
    for _ in range(runs):
        wall, first, job = run_job(server, job_doc("64K", prefix="tiny"), OVERHEAD_POLL_S)
        if job["result"].strip() != "1":
            raise RuntimeError(f"the one-line job counted {job['result']!r}, not 1")
        walls = sum(i["wall_seconds"] for i in job["instances"])
        out.append({"wall_s": wall, "first_instance_s": first, "instances_wall_s": walls,
                    "overhead_s": wall - walls, "submit_s": job["submit_s"]})
    return out


# --- the run ----------------------------------------------------------------------------------

def find_static_grep(ctx):
    """The static GNU grep the build made (share/zerofarm/programs/grep beside bin/), or
    $ZEROFARM_PROGRAMS_DIR/grep."""
    candidates = []
    if os.environ.get("ZEROFARM_PROGRAMS_DIR"):
        candidates.append(os.path.join(os.environ["ZEROFARM_PROGRAMS_DIR"], "grep"))
    zf = ctx.tools.get("zerofarm")
    if zf:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(zf)), "share", "zerofarm",
                                       "programs", "grep"))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    raise NotAvailable("no static grep (configure with ZEROFARM_STATIC_TOOLS=ON, or set "
                       "ZEROFARM_PROGRAMS_DIR)")


def run(ctx):
    zerofarm = ctx.tool("zerofarm")
    why = serve.available(zerofarm)
    if why:
        raise NotAvailable(why)
    grep = find_static_grep(ctx)
    busybox = "/bin/busybox"
    if not os.access(busybox, os.X_OK):
        raise NotAvailable("no /bin/busybox (Debian package busybox-static)")
    scratch = ctx.scratch("grep")
    total = data_size(ctx)
    # The farm keeps every part of an object on that object's replicas, so a job spreads over
    # the nodes object by object: enough objects for each node to hold several.
    files = 4 if ctx.quick else 16
    split = ctx.args.grep_split or ("16M" if ctx.quick else "64M")
    t0 = time.monotonic()
    logs = make_logs(os.path.join(scratch, "logs"), total, files)
    with open(os.path.join(scratch, "tiny.log"), "w") as f:
        f.write(f"2026-12-07T10:00:00.0000Z {PATTERN} one line\n")
    data_bytes = sum(os.path.getsize(p) for p in logs)
    names = [os.path.basename(p) for p in logs]
    log(f"grep: {len(logs)} files, {data_bytes / (1 << 20):.0f} MiB made in "
        f"{time.monotonic() - t0:.1f} s")
    expected, _ = grep_count(grep, logs, scratch, "expected")

    result = {"pattern": PATTERN, "data_bytes": data_bytes, "files": len(logs),
              "grep": grep, "split_serve": split, "split_farm": FARM_SPLIT,
              "link_rate": LINK_RATE, "farm_nodes": FARM_NODES, "farm_replicas": FARM_REPLICAS,
              "expected_count": expected, "cores": os.cpu_count()}
    server = lab = f = None
    try:
        server = serve.Server(zerofarm, os.path.join(scratch, "serve-data"),
                              os.path.join(scratch, "serve.log"), env=ctx.zerofarm_env())
        t = time.monotonic()
        store(server, grep, busybox, logs + [os.path.join(scratch, "tiny.log")])
        result["serve_ingest_s"] = time.monotonic() - t
        sides = ["local grep", "job on serve"]
        farm_why = netlab.unavailable() or farm.available(zerofarm)
        if farm_why is None:
            try:
                lab = netlab.NetLab(FARM_NODES + 1)
                f = farm.Farm(ctx, zerofarm, ctx.scratch("grep", "farm"), FARM_NODES,
                              FARM_REPLICAS, task_slots=1, lab=lab)
                t = time.monotonic()
                store(f.proxy, grep, busybox, logs)
                result["farm_ingest_s"] = time.monotonic() - t
                lab.shape(LINK_RATE)
                # What one TCP stream gets over a capped link (node 0 to the proxy's host):
                # the bound of any download, whatever the proxy does.
                result["link_mb_per_s"] = lab.tcp_mb_per_s(0, FARM_NODES, (16 if ctx.quick
                                                                           else 64) << 20)
                sides += ["job on the farm", "download then grep"]
            except NotAvailable as e:
                farm_why = str(e)
        if farm_why:
            log(f"grep: the capped farm is not available: {farm_why}")
            result["farm"] = {"not_available": farm_why}

        def measure(side, i):
            if side == "local grep":
                count, r = grep_count(grep, logs, scratch, f"local-{i}")
                return {"wall_s": r.wall_s, "cpu_s": r.cpu_s, "count": count}
            if side == "job on serve":
                return job_side(server, job_doc(split), expected)
            if side == "job on the farm":
                return job_side(f.proxy, job_doc(FARM_SPLIT), expected)
            return download_then_grep(f.proxy, names, grep, scratch, expected)

        def one(side, i):
            on_farm = side in ("job on the farm", "download then grep")
            sent = lab.sent_bytes() if on_farm else 0
            before = f.metrics() if on_farm else {}
            r = measure(side, i)
            if on_farm:
                r["farm_link_bytes"] = lab.sent_bytes() - sent
                # Instances the proxy ran away from their part's holders (their input then
                # crosses the network), and those moved off a node.
                after = f.metrics()
                for key in ("zerofarm_remote_placements_total", "zerofarm_tasks_moved_total"):
                    r[key] = after.get(key, 0) - before.get(key, 0)
            log(f"grep {side}, run {i}: {r['wall_s']:.2f} s")
            return r

        runs = interleaved(sides, ctx.repeat, one)
        result["overhead_runs"] = overhead(server, 5 if ctx.quick else 20)
    finally:
        if f:
            f.stop()
        if lab:
            lab.close()
        if server:
            server.stop()

    result["runs"] = runs
    mb = data_bytes / 1e6
    med = {side: median([r["wall_s"] for r in rs]) for side, rs in runs.items()}
    mbps = {side: ratio(mb, w) for side, w in med.items()}
    result["sides"] = {side: {"median_wall_s": med[side], "mb_per_s": mbps[side]}
                       for side in runs}
    ov = result["overhead_runs"]
    result["overhead"] = {
        "median_first_instance_ms": 1000 * median([o["first_instance_s"] for o in ov]),
        "median_overhead_ms": 1000 * median([o["overhead_s"] for o in ov]),
        "median_job_wall_ms": 1000 * median([o["wall_s"] for o in ov]),
        "median_submit_ms": 1000 * median([o["submit_s"] for o in ov])}
    ratios = {"serve_vs_local_throughput": ratio(med["local grep"], med["job on serve"]),
              "farm_vs_download_speedup": ratio(med.get("download then grep"),
                                                med.get("job on the farm")),
              "job_overhead_ms": result["overhead"]["median_overhead_ms"]}
    result["ratios"] = ratios
    for side in runs:
        log(f"grep {side}: {med[side]:.2f} s, {mbps[side]:.0f} MB/s")

    def row(side, baseline, what):
        if side not in med:
            return [what, side, f"not available: {result['farm']['not_available']}", "", "", ""]
        return [what, side, fmt(med[side], unit=" s") + f" ({fmt(mbps[side], unit=' MB/s')})",
                baseline, fmt(med[baseline], unit=" s"), fmt(ratio(med[baseline], med[side]))
                + "x"]

    rows = [row("job on serve", "local grep",
                f"{mb:.0f} MB, throughput (goal >= 0.8x), split {split}"),
            row("job on the farm", "download then grep",
                f"3 nodes, links {LINK_MBIT} Mbit/s, speedup (goal >= 2.5x), split {FARM_SPLIT}")]
    if "job on the farm" in med:
        at_link_rate = mb / result["link_mb_per_s"]
        result["download_at_link_rate_s"] = at_link_rate
        ratios["farm_vs_link_rate_download_speedup"] = ratio(at_link_rate, med["job on the farm"])
        rows.append(["same, against a download at the link's own rate (bound: one TCP stream "
                     f"got {result['link_mb_per_s']:.1f} MB/s)", "job on the farm",
                     fmt(med["job on the farm"], unit=" s"), "bytes / link rate",
                     fmt(at_link_rate, unit=" s"),
                     fmt(ratio(at_link_rate, med["job on the farm"])) + "x"])
        link = {side: median([r["farm_link_bytes"] for r in runs[side]])
                for side in ("job on the farm", "download then grep")}
        result["farm_link_bytes"] = link
        ratios["farm_job_link_bytes_per_data_byte"] = ratio(link["job on the farm"], data_bytes)
        rows.append(["bytes the farm's hosts sent over their links", "job on the farm",
                     fmt(link["job on the farm"] / (1 << 20), unit=" MiB"), "download then grep",
                     fmt(link["download then grep"] / (1 << 20), unit=" MiB"),
                     fmt(ratio(link["job on the farm"], data_bytes)) + "x the data"])
        rows.append(["same, against local grep", "job on the farm", fmt(med["job on the farm"],
                                                                        unit=" s"),
                     "local grep", fmt(med["local grep"], unit=" s"),
                     fmt(ratio(med["local grep"], med["job on the farm"])) + "x"])
    rows.append(["job overhead, one-line job on serve (goal <= 50 ms)",
                 "job wall - instance walls",
                 fmt(result["overhead"]["median_overhead_ms"], unit=" ms"),
                 "submit -> first instance running",
                 fmt(result["overhead"]["median_first_instance_ms"], unit=" ms"),
                 f"POST alone {fmt(result['overhead']['median_submit_ms'], unit=' ms')}"])
    result["table"] = {"header": ["what", "zerofarm", "median", "baseline", "median",
                                  "ratio"], "rows": rows}
    return result
