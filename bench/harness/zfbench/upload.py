"""Scenario upload: a raw HTTP upload of a large file into `zerofarm serve` against the same
upload into nginx that writes it to disk, and against writing the file with fsync.

Every side moves the same file (random bytes: ingest refuses them at once, so what is timed is
the HTTP path and the durable upload file, not transcoding) from this machine's page cache to a
file on the same file system, and is timed until the bytes are on disk:

- zerofarm serve: `curl -T FILE -X POST /v1/videos` (Content-Length). serve answers 201 only
  after the upload file is fdatasync'ed and recorded; each video is deleted after its round.
- nginx + fsync: `curl -T FILE` (PUT) into nginx's WebDAV module (`dav_methods PUT`), which
  streams the body to a temporary file and renames it into place without syncing; the harness
  then fsyncs the file and its directory, and the side's time includes that. nginx has no
  setting that syncs an uploaded body, so this is its fsync-equivalent durability.
- file write + fsync: `dd bs=1M conv=fsync` of the file into the same folder (no HTTP).

Sides interleaved, rotating which goes first; right before each, the same amount of bytes is
written to a file and deleted, so that every side writes into pages just freed (see
warm_free_pages). Size: --upload-mib (or $ZEROFARM_BENCH_UPLOAD_MIB),
default 1024 MiB, --quick 128 MiB.
"""

import os
import subprocess
import time

from . import serve
from .common import NotAvailable, fmt, interleaved, log, median, ratio, run_timed, tail
from .store import Nginx

NAME = "upload"
TITLE = "Upload: a large raw upload into serve against nginx (+ fsync) and dd (fsync)"
NEEDS_CLIPS = False  # makes its own data

SIDES = ["zerofarm serve", "nginx + fsync", "file write + fsync"]

DAV_LOCATION = """\
    location /up/ {{
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 0;
      client_body_buffer_size 1m;
      root {root};
    }}
"""


def make_file(path, mib):
    if os.path.exists(path) and os.path.getsize(path) == mib << 20:
        return
    with open(path + ".partial", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    os.replace(path + ".partial", path)


def warm_free_pages(directory, size):
    """Writes `size` bytes to a file and deletes it. On a virtual machine whose host reclaims
    the guest's free pages, the first write into pages nobody used for a while runs several
    times slower than into pages just freed (a 512 MiB pwrite loop: about 150 MB/s, then 1.3-2.6
    GB/s right after): every side gets freshly freed pages, so none is timed on cold ones."""
    path = os.path.join(directory, "warm.bin")
    block = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(max(1, size >> 20)):
            f.write(block)
    os.unlink(path)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(ctx):
    curl = ctx.tool("curl", "Debian package curl")
    nginx = ctx.tool("nginx", "Debian package nginx-light")
    why = serve.available(ctx.tools.get("zerofarm"))
    if why:
        raise NotAvailable(why)
    mib = int(getattr(ctx.args, "upload_mib", None) or
              os.environ.get("ZEROFARM_BENCH_UPLOAD_MIB") or (128 if ctx.quick else 1024))
    repeat = max(1, ctx.repeat)
    scratch = ctx.scratch("upload")
    source = os.path.join(scratch, f"random-{mib}MiB.bin")
    make_file(source, mib)
    size = os.path.getsize(source)
    subprocess.run(["cat", source], stdout=subprocess.DEVNULL, check=True)  # warm page cache
    root = ctx.scratch("upload", "nginx-root")
    dd_dir = ctx.scratch("upload", "dd")
    server = serve.Server(ctx.tool("zerofarm"), os.path.join(scratch, "serve-data"),
                          os.path.join(scratch, "serve.log"), env=ctx.zerofarm_env())
    ngx = None
    try:
        ngx = Nginx(nginx, root, os.path.join(scratch, "nginx"), nopush=False,
                    locations=DAV_LOCATION.format(root=root))

        def one(side, i):
            log_path = os.path.join(scratch, f"{side.split()[0]}-{i}.log")
            warm_free_pages(dd_dir, size)
            if side == "zerofarm serve":
                argv = [curl, "-sS", "-o", os.path.join(scratch, "answer.json"), "-w",
                        "%{http_code}", "-T", source, "-X", "POST", "-H",
                        f"Authorization: Bearer {server.token}", "-H",
                        "Content-Type: application/octet-stream",
                        f"http://127.0.0.1:{server.port}/v1/videos?filename=upload-{i}.bin"]
                r = run_timed(argv, log_path, stdout_path=log_path + ".out")
                code = open(log_path + ".out").read().strip()
                if r.returncode != 0 or code != "201":
                    raise NotAvailable(f"upload into serve answered {code}: {tail(log_path, 3)}")
                import json
                vid = json.load(open(os.path.join(scratch, "answer.json")))["id"]
                server.request("DELETE", f"/v1/videos/{vid}")
                wall = r.wall_s
            elif side == "nginx + fsync":
                target = os.path.join(root, "up", f"upload-{i}.bin")
                argv = [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", source,
                        f"http://127.0.0.1:{ngx.port}/up/upload-{i}.bin"]
                t0 = time.monotonic()
                r = run_timed(argv, log_path, stdout_path=log_path + ".out")
                code = open(log_path + ".out").read().strip()
                if r.returncode != 0 or code not in ("201", "204"):
                    raise NotAvailable(f"upload into nginx answered {code}: {tail(log_path, 3)}")
                fsync_path(target)
                fsync_path(os.path.dirname(target))
                wall = time.monotonic() - t0
                os.unlink(target)
            else:
                target = os.path.join(dd_dir, f"upload-{i}.bin")
                r = run_timed(["dd", f"if={source}", f"of={target}", "bs=1M", "conv=fsync"],
                              log_path)
                if r.returncode != 0:
                    raise NotAvailable(f"dd failed: {tail(log_path, 3)}")
                wall = r.wall_s
                os.unlink(target)
            mbps = size / wall / 1e6
            log(f"upload {side} run {i}: {wall:.2f} s, {mbps:.0f} MB/s")
            return {"wall_s": wall, "mb_per_s": mbps}

        runs = interleaved(SIDES, repeat, one)
    finally:
        if ngx:
            ngx.stop()
        server.stop()
        os.unlink(source)
    sides = {s: {"runs": rs, "median_mb_per_s": median([r["mb_per_s"] for r in rs])}
             for s, rs in runs.items()}
    z = sides["zerofarm serve"]["median_mb_per_s"]
    ratios = {"serve_vs_nginx_fsync": ratio(z, sides["nginx + fsync"]["median_mb_per_s"]),
              "serve_vs_dd_fsync": ratio(z, sides["file write + fsync"]["median_mb_per_s"])}
    rows = [[s, fmt(sides[s]["median_mb_per_s"], 0),
             fmt(ratio(z, sides[s]["median_mb_per_s"]))] for s in SIDES]
    return {"bytes": size, "sides": sides, "ratios": ratios,
            "table": {"header": [f"{size / 1e6:.0f} MB of random bytes", "MB/s (median)",
                                 "zerofarm serve / this"], "rows": rows}}
