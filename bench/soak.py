#!/usr/bin/env python3
"""A soak run of `zerofarm serve` (a benchmark, never part of the tests): for --duration seconds
a mix of whole uploads, tus uploads cut off mid-PATCH and resumed, status reads, Range reads of
the MP4s, deletes and bad inputs (bad ladders, ids that are not UTF-8, wrong tus offsets,
garbage media, unknown routes) runs against one server. Every --sample seconds it records the
server's open descriptors and resident memory; at the end every acknowledged upload that was
not deleted is checked: it must exist, reach `ready` (good clips) or `failed` (garbage), and a
ready one's MP4 must have every frame of its clip.

    bench/soak.sh [--duration 3600] [--zerofarm build/bin/zerofarm] [--out soak.json]
    bench/soak.sh --farm 3 --restart-every 60 ...   # the same against 3 `zerofarm node`
                                                     # (2 replicas) behind `zerofarm proxy`, one
                                                     # node killed (SIGKILL) and restarted in turn

With --farm the memory and descriptor samples are the proxy's, plus every node's resident memory.

Reports requests served, errors by kind, descriptors and RSS over time, and the final check, on
stdout and as JSON. Python 3 standard library only (plus ffmpeg/ffprobe to make and count clips).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter


def make_clip(path, seconds, size):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags",
                    "+faststart", path], check=True)
    return open(path, "rb").read()


def count_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
                         capture_output=True, text=True)
    try:
        return int(out.stdout.strip())
    except ValueError:
        return -1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    """`zerofarm serve` (or `zerofarm proxy ...`, `command`) on a free loopback port with its own
    data folder."""

    def __init__(self, zerofarm, data, log, command=("serve",)):
        self.log_path = log
        self.logf = open(log, "wb")
        self.proc = subprocess.Popen([zerofarm, *command, "--data", data, "--listen",
                                      "127.0.0.1:0"], stdout=self.logf, stderr=subprocess.STDOUT)
        self.token = None
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline and (self.token is None or self.port is None):
            text = open(log, "r", errors="replace").read()
            m = re.search(r"token: (\S+)", text)
            if m:
                self.token = m.group(1)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        if self.token is None or self.port is None:
            raise RuntimeError(f"zerofarm {command[0]} did not start: " + open(log).read()[-2000:])

    def sample(self):
        pid = self.proc.pid
        return len(os.listdir(f"/proc/{pid}/fd")), rss_kib(pid)

    def memory(self):
        """What /metrics says the resident memory is made of, in KiB: the C heap in use and kept
        free, and the store's RocksDB memory (memtables + block caches + table readers)."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {self.token}"})
            text = conn.getresponse().read().decode()
            conn.close()
        except (OSError, http.client.HTTPException):
            return {}
        out = {"heap_in_use_kib": 0, "heap_free_kib": 0, "store_kib": 0}
        for line in text.splitlines():
            m = re.match(r'(zerofarm_heap_bytes|zerofarm_store_memory_bytes)\{(\w+)="(\w+)"\} (\d+)',
                         line)
            if not m:
                continue
            kib = int(m.group(4)) // 1024
            if m.group(1) == "zerofarm_store_memory_bytes":
                out["store_kib"] += kib
            else:
                out["heap_in_use_kib" if m.group(3) == "in_use" else "heap_free_kib"] = kib
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


class Farm:
    """`nodes` `zerofarm node` processes on 127.0.0.1 (2 replicas, CURVE with a farm key made by
    `zerofarm key create`) behind a `zerofarm proxy`, which is `self.proxy` (a Server)."""

    def __init__(self, zerofarm, work, nodes):
        self.zerofarm = zerofarm
        self.work = work
        self.key = os.path.join(work, "farm.key")
        subprocess.run([zerofarm, "key", "create", "-o", self.key], check=True,
                       capture_output=True)
        self.endpoints = [f"tcp://127.0.0.1:{free_port()}" for _ in range(nodes)]
        self.ring = os.path.join(work, "ring.txt")
        subprocess.run([zerofarm, "ring", "build", "--replicas", "2", "--part-power", "8", "-o",
                        self.ring] + [f"{e},zone=z{i}" for i, e in enumerate(self.endpoints)],
                       check=True, capture_output=True)
        self.nodes = [None] * nodes
        self.restarts = 0
        self.restart_failures = []
        for i in range(nodes):
            self.start_node(i)
        self.proxy = Server(zerofarm, os.path.join(work, "proxy"), os.path.join(work, "proxy.log"),
                            command=("proxy", "--ring", self.ring, "--key", self.key))

    def start_node(self, i):
        log = os.path.join(self.work, f"node{i}.log")
        start = os.path.getsize(log) if os.path.exists(log) else 0
        with open(log, "ab") as f:
            self.nodes[i] = subprocess.Popen(
                [self.zerofarm, "node", "--data", os.path.join(self.work, f"node{i}"), "--bind",
                 self.endpoints[i], "--ring", self.ring, "--key", self.key, "--task-slots", "1"],
                stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(log, "rb") as f:
                f.seek(start)
                if b"listening on" in f.read():
                    return
            if self.nodes[i].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"zerofarm node {i} did not start: " + open(log).read()[-2000:])

    def restart_node(self, i, down_seconds):
        self.nodes[i].kill()
        self.nodes[i].wait()
        time.sleep(down_seconds)
        self.start_node(i)
        self.restarts += 1

    def node_rss_kib(self):
        return [rss_kib(p.pid) if p.poll() is None else 0 for p in self.nodes]

    def stop(self):
        self.proxy.stop()
        for p in self.nodes:
            p.terminate()
        for p in self.nodes:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Soak:
    def __init__(self, server, clips, garbage, seed):
        self.s = server
        self.clips = clips  # [(bytes, frames)]
        self.garbage = garbage
        self.seed = seed
        self.local = threading.local()  # each thread's own random generator
        self.mu = threading.Lock()
        self.requests = Counter()  # by operation
        self.errors = Counter()  # by kind ("op: what")
        self.videos = {}  # id -> {"clip": index or None (garbage), "deleted": bool}
        self.processing = 0

    @property
    def rng(self):
        if not hasattr(self.local, "rng"):
            self.local.rng = random.Random(f"{self.seed}/{threading.get_ident()}")
        return self.local.rng

    # --- HTTP ---------------------------------------------------------------------------------
    def request(self, op, method, path, body=None, headers=None, auth=True, expect=()):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + self.s.token
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            status, hdrs = r.status, dict(r.getheaders())
        except (OSError, http.client.HTTPException) as e:
            self.count(op, f"{op}: connection {type(e).__name__}")
            return None, {}, b""
        finally:
            conn.close()
        self.count(op, None if (not expect or status in expect) else f"{op}: status {status}")
        return status, hdrs, data

    def count(self, op, error):
        with self.mu:
            self.requests[op] += 1
            if error:
                self.errors[error] += 1

    def gone_unless_deleted(self, op, vid, status):
        """A 404 for a video another thread deleted after this one picked it is the right
        answer; for any other it is an error."""
        if status == 404:
            with self.mu:
                if not self.videos[vid]["deleted"]:
                    self.errors[f"{op}: status 404"] += 1

    def note(self, vid, v):
        with self.mu:
            rec = self.videos[vid]
            rec["ready"] = v.get("status") == "ready"
            rec["failed"] = v.get("status") == "failed"
            if v.get("renditions"):
                rec["rung"] = v["renditions"][0].get("name")

    def remember(self, vid, clip):
        with self.mu:
            self.videos[vid] = {"clip": clip, "deleted": False}

    # --- Operations ---------------------------------------------------------------------------
    def upload(self):
        i = self.rng.randrange(len(self.clips))
        st, _, data = self.request("upload", "POST", "/v1/videos?ladder=240p&filename=soak.mp4",
                                   self.clips[i][0], expect=(201,))
        if st == 201:
            self.remember(json.loads(data)["id"], i)

    def tus_resume(self):
        i = self.rng.randrange(len(self.clips))
        body = self.clips[i][0]
        meta = "filename " + base64.b64encode(b"tus.mp4").decode() + ",ladder " + \
            base64.b64encode(b"240p").decode()
        st, hdrs, _ = self.request("tus_create", "POST", "/v1/uploads", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)), "Upload-Metadata": meta},
            expect=(201,))
        if st != 201:
            return
        location = hdrs.get("Location", "")
        vid = hdrs.get("Zerofarm-Video-Id", "")
        path = location[location.index("/v1/"):] if "/v1/" in location else location
        # A PATCH cut off part-way: the client promises every byte, sends some, and drops.
        cut = self.rng.randrange(1, len(body))
        try:
            sock = socket.create_connection(("127.0.0.1", self.s.port), timeout=30)
            head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {self.s.token}\r\nTus-Resumable: 1.0.0\r\n"
                    f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            sock.sendall(head + body[:cut])
            time.sleep(0.2)
            sock.close()
            self.count("tus_cut_patch", None)
        except OSError as e:
            self.count("tus_cut_patch", f"tus_cut_patch: {type(e).__name__}")
        offset = None
        for _ in range(50):  # the server notices the drop
            st, hdrs, _ = self.request("tus_head", "HEAD", path, headers={"Tus-Resumable": "1.0.0"},
                                       expect=(200,))
            if st != 200:
                return
            offset = int(hdrs.get("Upload-Offset", "0"))
            if offset == cut:
                break
            time.sleep(0.1)
        if offset is None or offset > cut:
            self.count("tus_head", "tus_head: offset past the bytes sent")
            return
        st, _, _ = self.request("tus_patch", "PATCH", path, body[offset:], headers={
            "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream"}, expect=(204,))
        if st == 204 and vid:
            self.remember(vid, i)

    def pick(self, ready_only=False):
        with self.mu:
            ids = [v for v, r in self.videos.items() if not r["deleted"] and
                   (not ready_only or r.get("ready"))]
        return self.rng.choice(ids) if ids else None

    def status(self):
        vid = self.pick()
        if not vid:
            return
        st, _, data = self.request("status", "GET", f"/v1/videos/{vid}", expect=(200, 404))
        self.gone_unless_deleted("status", vid, st)
        if st == 200:
            self.note(vid, json.loads(data))

    def range_read(self):
        vid = self.pick(ready_only=True)
        if not vid:
            return
        with self.mu:
            rung = self.videos[vid].get("rung")
        if not rung:
            return
        a = self.rng.randrange(0, 4096)
        st, _, _ = self.request("range", "GET", f"/v1/videos/{vid}/mp4/{rung}.mp4",
                                headers={"Range": f"bytes={a}-{a + self.rng.randrange(1, 65536)}"},
                                expect=(206, 404))
        self.gone_unless_deleted("range", vid, st)

    def delete(self):
        vid = self.pick(ready_only=True)
        if not vid:
            return
        with self.mu:  # claimed first: no other thread reads or deletes it from now on
            if self.videos[vid]["deleted"]:
                return
            self.videos[vid]["deleted"] = True
        self.request("delete", "DELETE", f"/v1/videos/{vid}", expect=(204, 200))
        self.request("deleted_read", "GET", f"/v1/videos/{vid}", expect=(404,))

    def bad_input(self):
        kind = self.rng.choices(range(6), [10, 10, 10, 10, 1, 10])[0]
        if kind == 0:
            self.request("bad_ladder", "POST", "/v1/videos?ladder=99999p", self.clips[0][0],
                         expect=(400,))
        elif kind == 1:
            self.request("bad_id", "GET", "/v1/videos/%FF%FE", expect=(400, 404))
        elif kind == 2:
            self.request("no_token", "GET", "/v1/videos", auth=False, expect=(401,))
        elif kind == 3:
            self.request("bad_route", "GET", "/v1/nowhere", expect=(404,))
        elif kind == 4:
            st, _, data = self.request("garbage_upload", "POST", "/v1/videos?ladder=240p",
                                       self.garbage, expect=(201, 400, 415, 422))
            if st == 201:
                self.remember(json.loads(data)["id"], None)
        else:
            ladder = ",".join(f"{h}p" for h in range(100, 400))
            self.request("huge_ladder", "POST", f"/v1/videos?ladder={ladder}", self.clips[0][0],
                         expect=(400,))

    # --- The run ------------------------------------------------------------------------------
    def step(self):
        with self.mu:
            busy = sum(1 for r in self.videos.values() if r["clip"] is not None and
                       not r["deleted"] and not r.get("ready") and not r.get("failed"))
            ready = sum(1 for r in self.videos.values() if r.get("ready") and not r["deleted"])
        ops = [(self.status, 30), (self.range_read, 25), (self.bad_input, 20)]
        if ready > 3:  # keep a few ready videos for the final check
            ops.append((self.delete, 3))
        if busy < 2:  # transcodes are CPU-bound: keep at most two in flight
            ops += [(self.upload, 6), (self.tus_resume, 6)]
        fns, weights = zip(*ops)
        self.rng.choices(fns, weights)[0]()

    def refresh_states(self):
        with self.mu:
            ids = [v for v, r in self.videos.items()
                   if not r["deleted"] and not r.get("ready") and not r.get("failed")]
        for vid in ids:
            st, _, data = self.request("status", "GET", f"/v1/videos/{vid}", expect=(200, 404))
            if st == 200:
                self.note(vid, json.loads(data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zerofarm", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                       "bin", "zerofarm"))
    ap.add_argument("--duration", type=float, default=3600)
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="soak.json")
    ap.add_argument("--farm", type=int, default=0,
                    help="nodes behind a proxy instead of one serve (3 or more)")
    ap.add_argument("--restart-every", type=float, default=60,
                    help="with --farm: seconds between node kills (0: never)")
    args = ap.parse_args()
    if not (args.duration > 0 and args.sample > 0 and 1 <= args.threads <= 64):
        sys.exit("soak: --duration and --sample must be positive, --threads 1-64")
    if args.farm and not 3 <= args.farm <= 16:
        sys.exit("soak: --farm takes 3-16 nodes (2 replicas must survive a restart)")
    work = tempfile.mkdtemp(prefix="zerofarm-soak-")
    try:
        clips = []
        for n, (sec, size) in enumerate([(2, "320x180"), (3, "256x144"), (4, "320x180")]):
            path = os.path.join(work, f"clip{n}.mp4")
            clips.append((make_clip(path, sec, size), count_frames(path)))
        garbage = random.Random(7).randbytes(64 << 10)
        farm = Farm(args.zerofarm, work, args.farm) if args.farm else None
        server = farm.proxy if farm else Server(args.zerofarm, os.path.join(work, "data"),
                                                os.path.join(work, "serve.log"))
        soak = Soak(server, clips, garbage, args.seed)
        samples = []
        t0 = time.time()
        stop = threading.Event()

        def worker():
            while not stop.is_set():
                soak.step()

        def restarter():
            # One node at a time, in turn: killed with SIGKILL, down 3 s, started again.
            i = 0
            while not stop.wait(args.restart_every):
                n = i % args.farm
                try:
                    farm.restart_node(n, 3)
                    print(f"t={time.time() - t0:7.1f}s restarted node {n}", flush=True)
                except (OSError, RuntimeError) as e:  # counted and reported; tried again
                    farm.restart_failures.append(f"node {n}: {e}"[:300])
                    print(f"t={time.time() - t0:7.1f}s node {n} did not restart: {e}", flush=True)
                    continue
                i += 1

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        if farm and args.restart_every > 0:
            threads.append(threading.Thread(target=restarter))
        for t in threads:
            t.start()
        next_refresh = 0
        while time.time() - t0 < args.duration:
            fds, rss = server.sample()
            with soak.mu:
                served = sum(soak.requests.values())
                errs = sum(soak.errors.values())
            samples.append({"t": round(time.time() - t0, 1), "fds": fds, "rss_kib": rss,
                            "requests": served, "errors": errs, **server.memory()})
            if farm:
                samples[-1]["node_rss_kib"] = farm.node_rss_kib()
            mem = samples[-1]
            print(f"t={samples[-1]['t']:7.1f}s fds={fds:4d} rss={rss / 1024:7.1f}MiB "
                  f"(heap {mem.get('heap_in_use_kib', 0) / 1024:.0f} in use + "
                  f"{mem.get('heap_free_kib', 0) / 1024:.0f} free, store "
                  f"{mem.get('store_kib', 0) / 1024:.0f}) requests={served} errors={errs}" +
                  (f" nodes={[round(r / 1024) for r in samples[-1]['node_rss_kib']]}MiB"
                   if farm else ""), flush=True)
            if time.time() >= next_refresh:
                soak.refresh_states()
                next_refresh = time.time() + 5
            time.sleep(args.sample)
        stop.set()
        for t in threads:
            t.join()

        # Every acknowledged upload: exists, ends ready (good clip) or failed (garbage), and a
        # ready one's MP4 has every frame of its clip.
        deadline = time.time() + 900
        check = Counter()
        problems = []
        for vid, rec in sorted(soak.videos.items()):
            if rec["deleted"]:
                check["deleted"] += 1
                continue
            while True:
                st, _, data = soak.request("final", "GET", f"/v1/videos/{vid}", expect=(200,))
                status = json.loads(data).get("status") if st == 200 else None
                if status in ("ready", "failed", None) or time.time() > deadline:
                    break
                time.sleep(1)
            want = "failed" if rec["clip"] is None else "ready"
            if status != want:
                problems.append(f"{vid}: {status}, expected {want}")
                check["wrong_state"] += 1
                continue
            if want == "ready":
                rung = json.loads(data)["renditions"][0]["name"]
                st, _, mp4 = soak.request("final_mp4", "GET", f"/v1/videos/{vid}/mp4/{rung}.mp4",
                                          expect=(200,))
                path = os.path.join(work, "check.mp4")
                open(path, "wb").write(mp4 or b"")
                frames = count_frames(path)
                if frames != soak.clips[rec["clip"]][1]:
                    problems.append(f"{vid}: {frames} frames, expected {soak.clips[rec['clip']][1]}")
                    check["wrong_frames"] += 1
                    continue
            check["ok_" + want] += 1
        fds, rss = server.sample()
        samples.append({"t": round(time.time() - t0, 1), "fds": fds, "rss_kib": rss,
                        "requests": sum(soak.requests.values()),
                        "errors": sum(soak.errors.values()), **server.memory()})
        if farm:
            samples[-1]["node_rss_kib"] = farm.node_rss_kib()
            farm.stop()
        else:
            server.stop()
        report = {
            "mode": f"farm of {args.farm} nodes" if farm else "serve",
            "node_restarts": farm.restarts if farm else 0,
            "node_restart_failures": farm.restart_failures if farm else [],
            "duration_s": args.duration,
            "threads": args.threads,
            "requests_served": sum(soak.requests.values()),
            "requests_by_operation": dict(soak.requests),
            "errors_by_kind": dict(soak.errors),
            "samples": samples,
            "fds": {"first": samples[0]["fds"], "last": samples[-1]["fds"],
                    "max": max(s["fds"] for s in samples)},
            "rss_kib": {"first": samples[0]["rss_kib"], "last": samples[-1]["rss_kib"],
                        "max": max(s["rss_kib"] for s in samples)},
            "acknowledged_uploads": len(soak.videos),
            "final_check": dict(check),
            "problems": problems,
        }
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
        print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
        return 1 if problems else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
