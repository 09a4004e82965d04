"""`zerofarm serve` as a benchmark subject: start it on 127.0.0.1, find its bearer token, upload
through HTTP (raw POST or tus), wait for the video, stop it.

Routes follow the API contract (ARCHITECTURE.md section 3): POST /v1/videos, tus under
/v1/uploads, GET /v1/videos/{id}, /v1/videos/{id}/hls/..., GET /healthz.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse

from .common import NotAvailable, command_works, log, proc_cpu_s


def available(zerofarm):
    if not zerofarm:
        return "no zerofarm binary"
    if not command_works([zerofarm, "serve", "--help"]):
        return "`zerofarm serve --help` does not exit 0: the HTTP API is not built yet"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN_WORD = re.compile(r"[A-Za-z0-9_\-\.~+/=]{16,}")


class Server:
    """A `zerofarm serve` process with a fresh data directory."""

    def __init__(self, zerofarm, data_dir, log_path, startup_timeout=60, env=None,
                 command=("serve",), host="127.0.0.1", prefix=()):
        """`command`: the subcommand and its fixed arguments, e.g. ("proxy", "--ring", RING).
        `host`: the address it listens on and is reached at; `prefix`: argv run before it
        (e.g. `ip netns exec NS`, which execs, so the process is still zerofarm's own)."""
        self.host = host
        self.port = free_port()
        self.data_dir = data_dir
        # A token made before the first start (`zerofarm token create`), else the one serve
        # prints on its first start.
        self.preset_token = None
        if command_works([zerofarm, "token", "--help"]):
            made = subprocess.run([zerofarm, "token", "create", "--data", data_dir, "--tenant",
                                   "bench"], capture_output=True, text=True, env=env)
            words = made.stdout.split()
            if made.returncode == 0 and words:
                self.preset_token = words[-1]
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [*prefix, zerofarm, *command, "--data", data_dir, "--listen",
             f"{host}:{self.port}"],
            stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env)
        self.token = None
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NotAvailable(f"zerofarm serve exited with {self.proc.returncode} at start: "
                                   f"{self._log_tail()}")
            try:
                status, _, _ = self.request("GET", "/healthz", auth=False, timeout=2)
                if status == 200:
                    break
            except NotAvailable:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise NotAvailable("zerofarm serve did not answer /healthz within "
                               f"{startup_timeout} s")
        if self.preset_token and self.request("GET", "/v1/videos",
                                              token=self.preset_token)[0] == 200:
            self.token = self.preset_token
        else:
            self.token = self._find_token(deadline)

    def _log_tail(self):
        self.log_file.flush()
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()[-600:].strip().replace("\n", " | ")

    def _find_token(self, deadline):
        """The token serve prints on first start: the word on a 'token' line that /v1/videos accepts."""
        while time.monotonic() < deadline:
            self.log_file.flush()
            with open(self.log_path, "r", errors="replace") as f:
                lines = f.read().splitlines()
            for line in lines:
                if "token" not in line.lower():
                    continue
                for word in sorted(TOKEN_WORD.findall(line), key=len, reverse=True):
                    status, _, _ = self.request("GET", "/v1/videos", token=word)
                    if status == 200:
                        return word
            time.sleep(0.2)
        self.stop()
        raise NotAvailable("found no working bearer token in zerofarm serve's output")

    def connection(self, timeout=60):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          blocksize=1 << 20)

    def headers(self, extra=None, auth=True, token=None):
        h = dict(extra or {})
        if auth:
            h["Authorization"] = f"Bearer {token or self.token}"
        return h

    def request(self, method, path, body=None, headers=None, auth=True, token=None, timeout=60,
                chunked=False):
        """One request on a new connection. A connection failure is NotAvailable, with the
        server's state (a crash shows as its exit status and the end of its log)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=self.headers(headers, auth, token),
                         encode_chunked=chunked)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        except (OSError, http.client.HTTPException) as e:
            state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
            raise NotAvailable(f"{method} {path.split('?')[0]}: {type(e).__name__}: {e} "
                               f"(zerofarm serve {state}; log: {self._log_tail()[-300:]})")
        finally:
            conn.close()

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def post_video(self, clip, ladder, preset="veryfast", chunked=True):
        """Raw-body upload (chunked transfer encoding by default, as a browser or curl streams
        a file of unknown size; the contract allows either); returns the video object (201)."""
        size = os.path.getsize(clip)
        query = urllib.parse.urlencode({"ladder": ",".join(ladder), "preset": preset,
                                        "filename": os.path.basename(clip)})
        headers = {"Content-Type": "application/octet-stream"}
        if not chunked:
            headers["Content-Length"] = str(size)
        with open(clip, "rb") as f:
            body = iter(lambda: f.read(1 << 20), b"") if chunked else f
            status, _, data = self.request("POST", f"/v1/videos?{query}", body=body,
                                           headers=headers, timeout=600, chunked=chunked)
        if status != 201:
            raise NotAvailable(f"POST /v1/videos answered {status}: {data[:300]!r}")
        return json.loads(data)

    def video(self, vid):
        status, _, data = self.request("GET", f"/v1/videos/{vid}")
        if status != 200:
            raise NotAvailable(f"GET /v1/videos/{vid} answered {status}: {data[:300]!r}")
        return json.loads(data)

    def wait_ready(self, vid, timeout, poll=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.video(vid)
            if v.get("status") == "ready":
                return v
            if v.get("status") == "failed":
                raise NotAvailable(f"zerofarm serve failed the video: {v.get('error')}")
            time.sleep(poll)
        raise NotAvailable(f"the video was not ready after {timeout} s")

    def tus_create(self, clip, ladder, preset="veryfast"):
        import base64
        size = os.path.getsize(clip)
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                        (("filename", os.path.basename(clip)), ("ladder", ",".join(ladder)),
                         ("preset", preset)))
        status, headers, data = self.request(
            "POST", "/v1/uploads",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size),
                     "Upload-Metadata": meta, "Content-Length": "0"})
        if status != 201:
            raise NotAvailable(f"POST /v1/uploads answered {status}: {data[:300]!r}")
        lower = {k.lower(): v for k, v in headers.items()}
        location = urllib.parse.urlparse(lower.get("location", "")).path
        vid = lower.get("zerofarm-video-id")
        if not location or not vid:
            raise NotAvailable("POST /v1/uploads gave no Location or Zerofarm-Video-Id")
        return location, vid

    def tus_upload(self, location, clip, piece=4 << 20):
        offset = 0
        with open(clip, "rb") as f:
            while True:
                data = f.read(piece)
                if not data:
                    return
                status, headers, body = self.request(
                    "PATCH", location, body=data, timeout=600,
                    headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
                             "Content-Type": "application/offset+octet-stream",
                             "Content-Length": str(len(data))})
                if status != 204:
                    raise NotAvailable(f"PATCH {location} answered {status}: {body[:300]!r}")
                offset += len(data)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.log_file.close()


def segment_paths(server, video, rung=None):
    """Absolute request paths of every segment of one rung (default: every rung)."""
    paths = []
    for r in video.get("renditions", []):
        if rung and r.get("name") != rung:
            continue
        playlist = r.get("playlist")
        status, _, data = server.request("GET", playlist)
        if status != 200:
            log(f"GET {playlist} answered {status}")
            continue
        base = playlist.rsplit("/", 1)[0]
        for line in data.decode(errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                paths.append(line if line.startswith("/") else f"{base}/{line}")
    return paths
