"""What every scenario shares: the run context, timed child processes, medians, tables, JSON.

Timing: a child's wall time is measured around its whole life (spawn to reaped exit); its CPU
time is user + system from os.wait4's rusage, which covers the child and every descendant it
waited for (zerofarm's workers included). A long-lived server's CPU is read from
/proc/PID/stat (utime + stime + cutime + cstime) before and after the work.
"""

import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time


class NotAvailable(Exception):
    """A scenario, or one side of it, cannot run here; the message says why."""


def log(msg):
    print(f"zerofarm bench: {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def percentile(values, p):
    """Nearest-rank percentile (p in 0..1)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    rank = max(1, min(len(values), int(-(-p * len(values) // 1))))
    return values[rank - 1]


class Run:
    """One timed child process."""

    def __init__(self, wall_s, user_s, sys_s, returncode, log_path):
        self.wall_s = wall_s
        self.user_s = user_s
        self.sys_s = sys_s
        self.cpu_s = user_s + sys_s
        self.returncode = returncode
        self.log_path = log_path

    def as_dict(self):
        return {"wall_s": self.wall_s, "user_s": self.user_s, "sys_s": self.sys_s,
                "cpu_s": self.cpu_s, "returncode": self.returncode}


def tail(path, lines=20):
    """The last lines of a log on one line; an `error:` line alone when there is one."""
    try:
        with open(path, "r", errors="replace") as f:
            text = [l.strip() for l in f.readlines() if l.strip()]
    except OSError:
        return ""
    errors = [l for l in text if "error:" in l]
    return " | ".join(errors[-1:] if errors else text[-lines:])


def run_timed(argv, log_path, cwd=None, env=None, timeout=None, stdout_path=None):
    """Runs argv to completion; wall time, and CPU time from os.wait4 (child + its children)."""
    with open(log_path, "wb") as log_file:
        out = open(stdout_path, "wb") if stdout_path else log_file
        try:
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdout=out, stderr=log_file, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env, start_new_session=True)
            deadline = None if timeout is None else t0 + timeout
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, rusage = os.wait4(proc.pid, 0)
                    proc.returncode = -9
                    raise NotAvailable(f"{os.path.basename(argv[0])} timed out after {timeout} s")
                time.sleep(0.005)
            wall = time.monotonic() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if stdout_path:
                out.close()
    return Run(wall, rusage.ru_utime, rusage.ru_stime, proc.returncode, log_path)


def proc_cpu_s(pid, children=True):
    """utime + stime (+ cutime + cstime of reaped children unless children=False) of a live
    process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # Fields after the command: state is index 0, utime 11, stime 12, cutime 13, cstime 14.
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if children else (11, 12))) / ticks


def interleaved(sides, repeat, fn):
    """Calls fn(side, run_index) for run in 1..repeat, rotating which side goes first."""
    results = {s: [] for s in sides}
    for r in range(repeat):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side in order:
            results[side].append(fn(side, r + 1))
    return results


def sha256_file(path, limit=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    os_name = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_gib": mem_gib,
            "kernel": platform.release(), "os": os_name,
            "loadavg_at_start": list(os.getloadavg())}


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def command_works(argv):
    """True when argv exits 0 (e.g. `zerofarm serve --help`)."""
    try:
        return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Context:
    """Everything a scenario needs: tools, clips, options, scratch and output folders."""

    def __init__(self, args, tools, clips, work_dir, out_dir):
        self.args = args
        self.quick = args.quick
        self.repeat = args.repeat
        self.tools = tools          # name -> path or None
        self.clips = clips          # role -> path
        self.work_dir = work_dir
        self.out_dir = out_dir
        self.shared = {}            # results scenarios pass on (e.g. the ladder's outputs)
        self.started = datetime.datetime.now(datetime.timezone.utc)

    def zerofarm_env(self):
        """The environment of zerofarm children: ZEROFARM_WORKER names the static worker the
        sandbox runs when the worker beside zerofarm is not static."""
        env = dict(os.environ)
        worker = self.tools.get("worker-static")
        if worker and worker != self.tools.get("zerofarm-worker"):
            env["ZEROFARM_WORKER"] = worker
        return env

    def tool(self, name, why=""):
        path = self.tools.get(name)
        if not path:
            raise NotAvailable(f"{name} not found" + (f" ({why})" if why else ""))
        return path

    def scratch(self, *parts):
        path = os.path.join(self.work_dir, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    def clean(self, path):
        shutil.rmtree(path, ignore_errors=True)


def write_json(path, obj):
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    os.replace(tmp, path)


def fmt(value, digits=2, unit=""):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.{digits}f}"
    return text + unit


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)
