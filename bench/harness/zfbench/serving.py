"""Scenario serve: playback GETs through `zerofarm serve` against nginx serving the same bytes.

One ready video (the serving clip, the default ladder) is read four ways, each with wrk at 1, 16
and 256 keep-alive connections (--quick: 1 and 16), both sides interleaved round by round:

- playlist: the master and every media playlist, round-robin (what players poll);
- segment: every HLS segment of every rung, round-robin;
- mp4: every rung's progressive MP4, whole;
- range: 64 KiB Range requests at offsets spread over the MP4s (what a seeking player sends).

zerofarm serve checks the bearer token on every request (its normal path, /v1/videos/{id}/...).
nginx (`nginx-light`, the generated config of the store scenario: one worker per CPU, sendfile,
no access log; without tcp_nopush, which stalls small Range answers for 40 ms each) serves files fetched from the API into a folder under the very same paths, so
both sides answer the same request lines with the same bytes; nginx gets the same Authorization
header and ignores it. Reported per kind and connection count: requests/s, MB/s and the p99
latency of each side (wrk --latency), and zerofarm/nginx ratios (throughput: higher is better;
p99: lower is better).
"""

import os
import re

from . import media, serve
from .common import NotAvailable, fmt, interleaved, log, median, ratio, run_timed, tail
from .store import Nginx

NAME = "serve"
TITLE = "Playback serving: playlists, segments, MP4s and Range GETs against nginx"

KINDS = ["playlist", "segment", "mp4", "range"]
RANGE_BYTES = 64 * 1024

REQ_RE = re.compile(r"Requests/sec:\s+([\d.]+)")
XFER_RE = re.compile(r"Transfer/sec:\s+([\d.]+)([KMG]?B)")
P99_RE = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def wrk_script(path, requests, token):
    """A wrk Lua script sending `requests` ((path, byte range or None) pairs) round-robin, each
    formatted once in init (after wrk has set the Host header)."""
    with open(path, "w") as f:
        f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        f.write("local spec = {\n")
        for p, rng in requests:
            f.write(f'  {{"{p}", "{f"bytes={rng[0]}-{rng[1]}" if rng else ""}"}},\n')
        f.write("}\nlocal reqs = {}\nlocal i = 0\n"
                "init = function(args)\n"
                "  for k, s in ipairs(spec) do\n"
                "    local h = {}\n"  # wrk.format does not merge wrk.headers into given ones
                "    for name, value in pairs(wrk.headers) do h[name] = value end\n"
                "    if s[2] ~= \"\" then h[\"Range\"] = s[2] end\n"
                "    reqs[k] = wrk.format(\"GET\", s[1], h)\n"
                "  end\n"
                "end\n"
                "request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n")


def run_wrk(wrk, port, script, conns, seconds, log_path):
    threads = 1 if conns == 1 else 2
    r = run_timed([wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script,
                   f"http://127.0.0.1:{port}"], log_path)
    text = open(log_path, errors="replace").read()
    m_req, m_xfer, m_p99 = REQ_RE.search(text), XFER_RE.search(text), P99_RE.search(text)
    if r.returncode != 0 or not (m_req and m_xfer and m_p99):
        raise NotAvailable(f"wrk failed: {tail(log_path, 6)}")
    if "Non-2xx" in text:
        raise NotAvailable(f"wrk saw error responses: {tail(log_path, 8)}")
    unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m_xfer.group(2)]
    return {"requests_per_s": float(m_req.group(1)),
            "mb_per_s": float(m_xfer.group(1)) * unit / 1e6,
            "p99_ms": float(m_p99.group(1)) * UNIT_S[m_p99.group(2)] * 1e3,
            "connections": conns, "threads": threads, "seconds": seconds}


def requests_by_kind(server, video, root):
    """Every file a player reads, fetched from the API into `root` under its request path, and
    the request list of each kind."""
    files = {}

    def fetch(path):
        status, _, data = server.request("GET", path)
        if status != 200:
            raise NotAvailable(f"GET {path} answered {status}")
        local = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as f:
            f.write(data)
        files[path] = len(data)

    base = f"/v1/videos/{video['id']}"
    playlists = [f"{base}/hls/master.m3u8"] + [r["playlist"] for r in video["renditions"]]
    playlists = [p if p.startswith("/") else "/" + p.split("/", 3)[3] for p in playlists]
    for p in playlists:
        fetch(p)
    segments = serve.segment_paths(server, video)
    segments = [p if p.startswith("/") else "/" + p.split("/", 3)[3] for p in segments]
    for p in segments:
        fetch(p)
    mp4s = [f"{base}/mp4/{r['name']}.mp4" for r in video["renditions"] if r["name"] != "audio"]
    for p in mp4s:
        fetch(p)
    ranges = []
    for p in mp4s:
        size = files[p]
        for k in range(16):
            first = (size - RANGE_BYTES) * k // 16 if size > RANGE_BYTES else 0
            ranges.append((p, (first, min(size, first + RANGE_BYTES) - 1)))
    return {"playlist": [(p, None) for p in playlists],
            "segment": [(p, None) for p in segments],
            "mp4": [(p, None) for p in mp4s],
            "range": ranges}, files


def run(ctx):
    wrk = ctx.tool("wrk", "Debian package wrk")
    nginx = ctx.tool("nginx", "Debian package nginx-light")
    why = serve.available(ctx.tools.get("zerofarm"))
    if why:
        raise NotAvailable(why)
    seconds = 3 if ctx.quick else 8
    conn_levels = [1, 16] if ctx.quick else [1, 16, 256]
    scratch = ctx.scratch("serve")
    root = os.path.join(scratch, "nginx-root")
    server = serve.Server(ctx.tool("zerofarm"), os.path.join(scratch, "serve-data"),
                          os.path.join(scratch, "serve.log"), env=ctx.zerofarm_env())
    results = {}
    try:
        clip = ctx.clips["serving"]
        info = media.probe(ctx.tool("ffprobe"), clip)
        v = server.post_video(clip, [r["name"] for r in media.plan_ladder(info)])
        video = server.wait_ready(v["id"], 60 * max(10, info["duration_s"]))
        kinds, files = requests_by_kind(server, video, root)
        ngx = Nginx(nginx, root, os.path.join(scratch, "nginx"), nopush=False)
        try:
            for kind in KINDS:
                script = os.path.join(scratch, f"wrk-{kind}.lua")
                wrk_script(script, kinds[kind], server.token)
                for conns in conn_levels:
                    ports = {"nginx": ngx.port, "zerofarm serve": server.port}

                    def one(side, i):
                        tag = "nginx" if side == "nginx" else "zerofarm"
                        return run_wrk(wrk, ports[side], script, conns, seconds,
                                       os.path.join(scratch, f"wrk-{kind}-{conns}-{tag}-{i}.log"))

                    runs = interleaved(["zerofarm serve", "nginx"], ctx.repeat, one)
                    cell = {}
                    for side, rs in runs.items():
                        cell[side] = {"runs": rs,
                                      "median_requests_per_s": median(
                                          [r["requests_per_s"] for r in rs]),
                                      "median_mb_per_s": median([r["mb_per_s"] for r in rs]),
                                      "median_p99_ms": median([r["p99_ms"] for r in rs])}
                    z, n = cell["zerofarm serve"], cell["nginx"]
                    cell["ratio_requests"] = ratio(z["median_requests_per_s"],
                                                   n["median_requests_per_s"])
                    cell["ratio_p99"] = ratio(z["median_p99_ms"], n["median_p99_ms"])
                    results.setdefault(kind, {})[str(conns)] = cell
                    log(f"serve {kind} c{conns}: zerofarm {z['median_requests_per_s']:.0f} req/s "
                        f"p99 {z['median_p99_ms']:.2f} ms, nginx "
                        f"{n['median_requests_per_s']:.0f} req/s p99 {n['median_p99_ms']:.2f} ms")
        finally:
            ngx.stop()
    finally:
        server.stop()
    mean_bytes = {k: sum(files.get(p, 0) for p, rng in reqs) / max(1, len(reqs))
                  if k != "range" else RANGE_BYTES for k, reqs in kinds.items()}
    rows = []
    for kind in KINDS:
        for conns in conn_levels:
            c = results[kind][str(conns)]
            z, n = c["zerofarm serve"], c["nginx"]
            rows.append([f"{kind} ({fmt(mean_bytes[kind] / 1024, 1)} KiB)", str(conns),
                         fmt(z["median_requests_per_s"], 0), fmt(z["median_p99_ms"]),
                         fmt(n["median_requests_per_s"], 0), fmt(n["median_p99_ms"]),
                         fmt(c["ratio_requests"]), fmt(c["ratio_p99"])])
    return {"kinds": results, "connections": conn_levels, "seconds_per_run": seconds,
            "mean_response_bytes": mean_bytes,
            "ratios": {f"{k}_c{c}": results[k][str(c)]["ratio_requests"]
                       for k in KINDS for c in conn_levels},
            "table": {"header": ["GETs of", "connections", "zerofarm req/s", "zerofarm p99 ms",
                                 "nginx req/s", "nginx p99 ms", "req/s ratio", "p99 ratio"],
                      "rows": rows}}
