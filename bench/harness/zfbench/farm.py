"""A farm on this machine for the cluster scenarios: `zerofarm ring build`, K `zerofarm node`
processes on 127.0.0.1 and a `zerofarm proxy` in front of them, driven over its HTTP API."""

import os
import re
import signal
import subprocess
import time

from . import serve
from .common import NotAvailable, command_works, proc_cpu_s


def available(zerofarm):
    if not zerofarm:
        return "no zerofarm binary"
    missing = [c for c in ("node", "proxy", "ring") if not command_works([zerofarm, c, "--help"])]
    if missing:
        return ("the cluster commands are not built yet (" +
                ", ".join(f"`zerofarm {c} --help`" for c in missing) + " failed)")
    return None


def build_ring(zerofarm, path, endpoints, replicas, part_power=8):
    """Writes the ring file; returns what `zerofarm ring build` printed."""
    r = subprocess.run([zerofarm, "ring", "build", "--replicas", str(replicas), "--part-power",
                        str(part_power), "-o", path] + endpoints, capture_output=True, text=True)
    if r.returncode != 0:
        raise NotAvailable(f"zerofarm ring build failed: {r.stderr.strip()[-300:]}")
    return r.stdout


class Farm:
    """Nodes + proxy in `base`; stop() ends them all (also on any error in __init__)."""

    def __init__(self, ctx, zerofarm, base, nodes, replicas, task_slots, proxy_args=(),
                 secure=True, lab=None):
        """lab: a netlab.NetLab of nodes + 1 hosts: node i runs in its namespace i, the proxy
        in the last one (each behind its own link); None: all on 127.0.0.1."""
        os.makedirs(base, exist_ok=True)
        self.lab = lab
        self.zerofarm = zerofarm
        self.base = base
        self.env = ctx.zerofarm_env()
        # The farm key (CURVE on every node link), or --insecure to measure what CURVE costs.
        self.key_args = ["--insecure"]
        if secure:
            key = os.path.join(base, "farm.key")
            if not os.path.exists(key):
                r = subprocess.run([zerofarm, "key", "create", "-o", key], capture_output=True,
                                   text=True)
                if r.returncode != 0:
                    raise NotAvailable(f"zerofarm key create failed: {r.stderr.strip()[-300:]}")
            self.key_args = ["--key", key]
        if lab:
            self.endpoints = [f"tcp://{lab.address(i)}:7000" for i in range(nodes)]
        else:
            self.endpoints = [f"tcp://127.0.0.1:{serve.free_port()}" for _ in range(nodes)]
        self.ring = os.path.join(base, "ring.txt")
        build_ring(zerofarm, self.ring, [f"{e},zone=z{i}" for i, e in enumerate(self.endpoints)],
                   replicas)
        self.task_slots = task_slots
        self.nodes = [None] * nodes
        self.proxy = None
        try:
            for i in range(nodes):
                self.start_node(i)
            self.proxy = serve.Server(zerofarm, os.path.join(base, "proxy"),
                                      os.path.join(base, "proxy.log"), env=self.env,
                                      command=("proxy", "--ring", self.ring, *self.key_args,
                                               *proxy_args),
                                      host=lab.address(nodes) if lab else "127.0.0.1",
                                      prefix=lab.exec_prefix(nodes) if lab else ())
        except BaseException:
            self.stop()
            raise

    def start_node(self, i):
        log_path = os.path.join(self.base, f"node{i}.log")
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [*(self.lab.exec_prefix(i) if self.lab else ()), self.zerofarm, "node", "--data",
             os.path.join(self.base, f"node{i}"), "--bind", self.endpoints[i], "--ring",
             self.ring, "--task-slots", str(self.task_slots), *self.key_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=self.env)
        self.nodes[i] = proc
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NotAvailable(f"zerofarm node exited at start: {open(log_path).read()[-300:]}")
            if "listening on" in open(log_path, errors="replace").read():
                return
            time.sleep(0.05)
        raise NotAvailable("zerofarm node did not start within 60 s")

    def kill_node(self, i):
        self.nodes[i].send_signal(signal.SIGKILL)
        self.nodes[i].wait()

    def pids(self):
        return [p.pid for p in self.nodes if p and p.poll() is None] + [self.proxy.proc.pid]

    def cpu_s(self):
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu_s(pid)
            except OSError:
                pass
        return total

    def own_cpu_s(self):
        """CPU of the node and proxy processes themselves, without their workers (children):
        where the wire's encryption is paid."""
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu_s(pid, children=False)
            except OSError:
                pass
        return total

    def wire_bytes(self):
        """TCP payload bytes sent on every farm link (proxy <-> node, node <-> node) so far, as
        the kernel counts them (`ss -ti` bytes_sent): what CURVE's framing adds shows here, not
        in the proxy's /metrics. Links are long-lived, so sample before stop()."""
        ports = {e.rsplit(":", 1)[1] for e in self.endpoints}
        r = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise NotAvailable(f"ss failed: {r.stderr.strip()[-200:]}")
        total, ours = 0, False
        for line in r.stdout.splitlines():
            if not line.startswith((" ", "\t")):
                cols = line.split()
                ends = [c for c in cols if ":" in c][-2:]
                ours = len(ends) == 2 and ends[0].startswith("127.0.0.1:") and any(
                    e.rsplit(":", 1)[1] in ports for e in ends)
                continue
            m = re.search(r"\bbytes_sent:(\d+)", line)
            if ours and m:
                total += int(m.group(1))
        return total

    def metrics(self):
        status, _, data = self.proxy.request("GET", "/metrics")
        if status != 200:
            raise NotAvailable(f"GET /metrics answered {status}")
        out = {}
        for line in data.decode().splitlines():
            m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.eE+-]+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        for p in self.nodes:
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
