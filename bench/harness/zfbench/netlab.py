"""Machines with their own capped network links on this one: network namespaces on a private
bridge, each joined to it by a veth pair whose both ends are shaped with `tc` (tbf), so every
host's link carries at most `rate` in each direction, as a switch port would.

Needs root, iproute2 (`ip`) and `tc`. The addresses (10.233.K.0/24, K from the process id) live
only on the bridge and inside the namespaces this creates; close() removes all of them. The
same layout as the farm test's network namespaces (tests/farm/farm_test.cc, NetnsLab), plus
the shaping.
"""

import os
import shutil
import subprocess

from .common import NotAvailable


def _tool(name):
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def unavailable():
    """Why namespaces with shaped links cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces and tc need root"
    for name in ("ip", "tc"):
        if not _tool(name):
            return f"`{name}` not found (Debian package iproute2)"
    return None


class NetLab:
    """`hosts` namespaces on one bridge; the root namespace reaches them through the bridge
    (its address is .1). Host i has address(i). Links are unshaped until shape()."""

    def __init__(self, hosts):
        why = unavailable()
        if why:
            raise NotAvailable(why)
        self.ip, self.tc = _tool("ip"), _tool("tc")
        tag = os.getpid() % 100000
        self.subnet = f"10.233.{tag % 250}"
        self.bridge = f"zgb{tag}"
        self.namespaces, self.host_links, self.peer_links = [], [], []
        self.rate = None
        self._bridge_made = False
        try:
            self._run([self.ip, "link", "add", self.bridge, "type", "bridge"])
            self._bridge_made = True
            self._run([self.ip, "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge])
            self._run([self.ip, "link", "set", self.bridge, "up"])
            for i in range(hosts):
                ns, host, peer = f"zg{tag}n{i}", f"zg{tag}h{i}", f"zg{tag}c{i}"
                self._run([self.ip, "netns", "add", ns])
                self.namespaces.append(ns)
                self._run([self.ip, "link", "add", host, "type", "veth", "peer", "name", peer])
                self.host_links.append(host)
                self.peer_links.append(peer)
                self._run([self.ip, "link", "set", peer, "netns", ns])
                self._run([self.ip, "link", "set", host, "master", self.bridge])
                self._run([self.ip, "link", "set", host, "up"])
                self._run(self.exec_prefix(i) + [self.ip, "addr", "add",
                                                 f"{self.address(i)}/24", "dev", peer])
                self._run(self.exec_prefix(i) + [self.ip, "link", "set", peer, "up"])
                self._run(self.exec_prefix(i) + [self.ip, "link", "set", "lo", "up"])
        except BaseException:
            self.close()
            raise

    def _run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise NotAvailable(f"`{' '.join(argv)}` failed: {r.stderr.strip()[-200:]}")
        return r.stdout

    def address(self, i):
        return f"{self.subnet}.{10 + i}"

    def exec_prefix(self, i):
        """argv prefix running a command in host i's namespace (`ip netns exec` execs it, so
        the child's pid is the command's own)."""
        return [self.ip, "netns", "exec", self.namespaces[i]]

    def shape(self, rate):
        """Caps every link at `rate` (tc syntax, e.g. "100mbit") in each direction: tbf on the
        bridge side of each veth (traffic into the host) and on the namespace side (out of it).
        The bucket holds 256 KB, so a burst cannot outrun the rate by more than that."""
        for i, host in enumerate(self.host_links):
            for prefix, dev in (([], host), (self.exec_prefix(i), self.peer_links[i])):
                self._run(prefix + [self.tc, "qdisc", "replace", "dev", dev, "root", "tbf",
                                    "rate", rate, "burst", "256kb", "latency", "50ms"])
        self.rate = rate

    def tcp_mb_per_s(self, src, dst, nbytes, port=9099):
        """One TCP stream of nbytes from host src to host dst (python3 on both ends): what one
        connection gets through the links as shaped now, in MB/s (1e6 bytes)."""
        import sys
        receiver = subprocess.Popen(
            self.exec_prefix(dst) + [sys.executable, "-c", _RECEIVER, str(port)],
            stdout=subprocess.PIPE, text=True)
        try:
            line = receiver.stdout.readline()  # "listening"
            if "listening" not in line:
                raise NotAvailable("the link test's receiver did not start")
            sent = subprocess.run(
                self.exec_prefix(src) + [sys.executable, "-c", _SENDER, self.address(dst),
                                         str(port), str(nbytes)],
                capture_output=True, text=True, timeout=600)
            if sent.returncode != 0:
                raise NotAvailable(f"the link test's sender failed: {sent.stderr[-200:]}")
            got, seconds = receiver.stdout.readline().split()
            if int(got) != nbytes:
                raise NotAvailable(f"the link test received {got} of {nbytes} bytes")
            return nbytes / float(seconds) / 1e6
        finally:
            receiver.kill()
            receiver.wait()

    def sent_bytes(self):
        """Bytes every host has sent into the bridge so far (the bridge sides' rx counters):
        each byte that crosses the network counted once, whoever receives it."""
        total = 0
        for host in self.host_links:
            with open(f"/sys/class/net/{host}/statistics/rx_bytes") as f:
                total += int(f.read())
        return total

    def unshape(self):
        for i, host in enumerate(self.host_links):
            for prefix, dev in (([], host), (self.exec_prefix(i), self.peer_links[i])):
                subprocess.run(prefix + [self.tc, "qdisc", "del", "dev", dev, "root"],
                               capture_output=True, timeout=30)
        self.rate = None

    def close(self):
        for ns in self.namespaces:
            subprocess.run([self.ip, "netns", "del", ns], capture_output=True, timeout=30)
        for host in self.host_links:  # normally gone with its peer's namespace
            subprocess.run([self.ip, "link", "del", host], capture_output=True, timeout=30)
        if self._bridge_made:
            subprocess.run([self.ip, "link", "del", self.bridge], capture_output=True, timeout=30)
        self.namespaces, self.host_links, self.peer_links = [], [], []
        self._bridge_made = False


# The link test's two ends: the receiver times from its first byte to the stream's end.
_RECEIVER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
n, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    t0 = t0 or time.monotonic()
    n += len(b)
print(n, time.monotonic() - t0, flush=True)
"""
_SENDER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
left, block = int(sys.argv[3]), b"x" * (1 << 20)
while left > 0:
    s.sendall(block[:left])
    left -= min(left, len(block))
s.close()
"""
