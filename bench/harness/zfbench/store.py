"""Scenario 5, store and serving.

Ingest: the object store's synced write throughput for chunk-sized values against plain files
(write + fsync of the file and its directory), from zerofarm-store-bench (bench/store_bench.cc),
which rotates the backends' order every repetition.

Serving: segment GETs per second and MB/s with wrk against `zerofarm serve`, and against nginx
serving the same segment files from disk (generated config, 127.0.0.1, no root daemon), rounds
interleaved. Both get the same request mix: every segment of every rung, round-robin.
"""

import os
import re
import shutil
import signal
import subprocess
import time

from . import ladder, media, serve
from .common import (NotAvailable, fmt, interleaved, log, median, ratio, run_timed, tail)

NAME = "store"
TITLE = "Store ingest and segment serving"


def ingest(ctx):
    bench = ctx.tool("zerofarm-store-bench", "build the target zerofarm-store-bench")
    scratch = ctx.scratch("store")
    json_path = os.path.join(scratch, "store-bench.json")
    reps = 1 if ctx.quick else max(3, ctx.repeat)
    total = 32 if ctx.quick else 256
    argv = [bench, f"--reps={reps}", f"--total-mib={total}", "--sizes-mib=4",
            f"--dir={scratch}", f"--json={json_path}"]
    r = run_timed(argv, os.path.join(scratch, "store-bench.log"),
                  stdout_path=os.path.join(scratch, "store-bench.md"), timeout=3600)
    if r.returncode != 0:
        raise NotAvailable(f"zerofarm-store-bench failed: {tail(r.log_path, 5)}")
    import json
    data = json.load(open(json_path))
    size = data["sizes"][0]
    by = {b["backend"]: b for b in size["backends"]}
    files = next(v for k, v in by.items() if k.startswith("files"))
    store = next(v for k, v in by.items() if "blob_files=true" in k)
    return {"reps": reps, "total_mib": total, "value_mib": size["value_mib"],
            "files": files, "store": store,
            "ratio_fill": ratio(store["median_fill_mbps"], files["median_fill_mbps"]),
            "ratio_read": ratio(store["median_read_mbps"], files["median_read_mbps"]),
            "ratio_churn": ratio(store["median_churn_mbps"], files["median_churn_mbps"])}


NGINX_CONF = """\
{user}worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush {nopush};
  keepalive_requests 100000;
  client_body_temp_path {prefix}/tmp-body;
  proxy_temp_path {prefix}/tmp-proxy;
  fastcgi_temp_path {prefix}/tmp-fastcgi;
  uwsgi_temp_path {prefix}/tmp-uwsgi;
  scgi_temp_path {prefix}/tmp-scgi;
  types {{ video/mp2t ts; application/vnd.apple.mpegurl m3u8; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    root {root};
{locations}  }}
}}
"""


class Nginx:
    def __init__(self, nginx, root, prefix, nopush=True, locations=""):
        """nopush: TCP_NOPUSH with sendfile (fewer, fuller packets for whole files). It stalls a
        small partial answer on one connection for about 40 ms (the cork waits for the
        delayed ACK): 31 Range GETs/s instead of 5000, so the serve scenario turns it off."""
        os.makedirs(prefix, exist_ok=True)
        self.port = serve.free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "",
                                      workers=os.cpu_count() or 1, prefix=prefix,
                                      port=self.port, root=root,
                                      nopush="on" if nopush else "off",
                                      locations=locations))
        self.log = open(os.path.join(prefix, "stderr.log"), "wb")
        self.proc = subprocess.Popen([nginx, "-p", prefix, "-c", conf, "-e",
                                      os.path.join(prefix, "error.log")],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        import http.client
        for _ in range(100):
            if self.proc.poll() is not None:
                raise NotAvailable(f"nginx exited: {tail(os.path.join(prefix, 'error.log'), 3)}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/")
                c.getresponse().read()
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NotAvailable("nginx did not start listening")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


WRK_RE_REQ = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_RE_XFER = re.compile(r"Transfer/sec:\s+([\d.]+)([KMG]?B)")


def run_wrk(ctx, wrk, port, paths, token, seconds, log_path):
    script = log_path + ".lua"
    with open(script, "w") as f:
        f.write("local paths = {\n")
        for p in paths:
            f.write(f'  "{p}",\n')
        f.write("}\nlocal i = 0\n")
        if token:
            f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        f.write("request = function()\n  i = i % #paths + 1\n"
                "  return wrk.format(\"GET\", paths[i])\nend\n")
    conns = 8 if ctx.quick else 16
    r = run_timed([wrk, "-t2", f"-c{conns}", f"-d{seconds}s", "-s", script,
                   f"http://127.0.0.1:{port}"], log_path)
    text = open(log_path, errors="replace").read()
    m1, m2 = WRK_RE_REQ.search(text), WRK_RE_XFER.search(text)
    if r.returncode != 0 or not m1 or not m2:
        raise NotAvailable(f"wrk failed: {tail(log_path, 5)}")
    if "Non-2xx" in text:
        raise NotAvailable(f"wrk saw error responses: {tail(log_path, 8)}")
    unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m2.group(2)]
    return {"requests_per_s": float(m1.group(1)),
            "mb_per_s": float(m2.group(1)) * unit / 1e6, "cpu_s_wrk": r.cpu_s,
            "connections": conns, "threads": 2, "seconds": seconds}


def segments_on_disk(ctx):
    """Paths (relative to a root) of every segment of a zerofarm output, and the root."""
    shared = ctx.shared.get("ladder_outputs") or {}
    out = shared.get("outputs", {}).get("zerofarm transcode")
    if not out or not os.path.exists(out) or shared.get("clip") != ctx.clips["serving"]:
        clip = ctx.clips["serving"]
        info = media.probe(ctx.tool("ffprobe"), clip)
        out = ladder.run_side(ctx, "zerofarm transcode", 0, clip, info, media.plan_ladder(info),
                              keep=True)["out"]
    paths = []
    for rung in sorted(os.listdir(out)):
        d = os.path.join(out, rung)
        if os.path.isdir(d) and rung != "audio":
            paths += [f"/{rung}/{s}" for s in sorted(os.listdir(d)) if s.endswith(".ts")]
    return out, paths


def serving(ctx):
    wrk = ctx.tool("wrk", "Debian package wrk")
    nginx = ctx.tool("nginx", "Debian package nginx-light")
    seconds = 3 if ctx.quick else 10
    scratch = ctx.scratch("serving")
    result = {"seconds_per_run": seconds}
    zerofarm_why = serve.available(ctx.tools.get("zerofarm"))
    server = None
    video = None
    try:
        if zerofarm_why is None:
            try:
                server = serve.Server(ctx.tool("zerofarm"), os.path.join(scratch, "serve-data"),
                                      os.path.join(scratch, "serve.log"),
                                      env=ctx.zerofarm_env())
                clip = ctx.clips["serving"]
                info = media.probe(ctx.tool("ffprobe"), clip)
                v = server.post_video(clip, [r["name"] for r in media.plan_ladder(info)])
                video = server.wait_ready(v["id"], 60 * max(10, info["duration_s"]))
                api_paths = serve.segment_paths(server, video)
                if not api_paths:
                    raise NotAvailable("the ready video lists no segments")
                # nginx serves the very bytes the API serves.
                root = os.path.join(scratch, "nginx-root")
                disk_paths = []
                for i, p in enumerate(api_paths):
                    status, _, data = server.request("GET", p)
                    if status != 200:
                        raise NotAvailable(f"GET {p} answered {status}")
                    rel = f"/s/{i:05d}.ts"
                    os.makedirs(os.path.join(root, "s"), exist_ok=True)
                    with open(root + rel, "wb") as f:
                        f.write(data)
                    disk_paths.append(rel)
            except NotAvailable as e:
                zerofarm_why = str(e)
                if server:
                    server.stop()
                    server = None
        if server is None:
            root, disk_paths = segments_on_disk(ctx)
        total_bytes = sum(os.path.getsize(root + p) for p in disk_paths)
        result["segments"] = len(disk_paths)
        result["segment_bytes_mean"] = total_bytes / max(1, len(disk_paths))
        ngx = Nginx(nginx, root, os.path.join(scratch, "nginx"))
        try:
            sides = ["nginx"] + (["zerofarm serve"] if server else [])

            def one(side, i):
                if side == "nginx":
                    return run_wrk(ctx, wrk, ngx.port, disk_paths, None, seconds,
                                   os.path.join(scratch, f"wrk-nginx-{i}.log"))
                return run_wrk(ctx, wrk, server.port, api_paths, server.token, seconds,
                               os.path.join(scratch, f"wrk-zerofarm-{i}.log"))

            runs = interleaved(sides, ctx.repeat, one)
        finally:
            ngx.stop()
    finally:
        if server:
            server.stop()
    for side, rs in runs.items():
        result[side] = {"runs": rs,
                        "median_requests_per_s": median([r["requests_per_s"] for r in rs]),
                        "median_mb_per_s": median([r["mb_per_s"] for r in rs])}
        log(f"serving {side}: {result[side]['median_requests_per_s']:.0f} req/s")
    if zerofarm_why:
        result["zerofarm serve"] = {"not_available": zerofarm_why}
    else:
        z, n = result["zerofarm serve"], result["nginx"]
        result["ratio_requests"] = ratio(z["median_requests_per_s"], n["median_requests_per_s"])
        result["ratio_mb_per_s"] = ratio(z["median_mb_per_s"], n["median_mb_per_s"])
    return result


def run(ctx):
    out = {}
    rows = []
    try:
        ing = ingest(ctx)
        out["ingest"] = ing
        rows.append([f"ingest, {ing['value_mib']} MiB chunks, synced (fill)", "Store (blob files)",
                     fmt(ing["store"]["median_fill_mbps"], unit=" MB/s"), "files: write + fsync",
                     fmt(ing["files"]["median_fill_mbps"], unit=" MB/s"), fmt(ing["ratio_fill"])])
        rows.append(["chunk read back (warm)", "Store (blob files)",
                     fmt(ing["store"]["median_read_mbps"], unit=" MB/s"), "files: read",
                     fmt(ing["files"]["median_read_mbps"], unit=" MB/s"), fmt(ing["ratio_read"])])
    except NotAvailable as e:
        out["ingest"] = {"not_available": str(e)}
        rows.append(["ingest", f"not available: {e}", "", "", "", ""])
    try:
        srv = serving(ctx)
        out["serving"] = srv
        n = srv["nginx"]
        z = srv["zerofarm serve"]
        for metric, key, unit in (("segment GETs", "median_requests_per_s", " req/s"),
                                  ("segment bytes", "median_mb_per_s", " MB/s")):
            if "not_available" in z:
                rows.append([metric, f"zerofarm serve: not available: {z['not_available']}", "–",
                             "nginx", fmt(n[key], unit=unit), "–"])
            else:
                rows.append([metric, "zerofarm serve", fmt(z[key], unit=unit), "nginx",
                             fmt(n[key], unit=unit), fmt(ratio(z[key], n[key]))])
    except NotAvailable as e:
        out["serving"] = {"not_available": str(e)}
        rows.append(["segment serving", f"not available: {e}", "", "", "", ""])
    out["ratios"] = {"ingest_fill": out["ingest"].get("ratio_fill"),
                     "serving_requests": out["serving"].get("ratio_requests")}
    out["table"] = {"header": ["what", "zerofarm", "median", "baseline", "median", "ratio"],
                    "rows": rows}
    return out
