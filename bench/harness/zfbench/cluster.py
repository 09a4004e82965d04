"""Scenario 7, cluster: what the farm costs and how it survives, on node processes of this
machine (3 `zerofarm node` + `zerofarm proxy`, 2 replicas, one task slot per node).

- Network per job: bytes the proxy sent to and received from the nodes (its /metrics) and
  what the tasks moved between nodes (the video's "network" object), against the source size.
  The baseline is the source itself: ingest must write it (and its chunks) to every replica.
- Dead node: the same job with one node killed (SIGKILL) while it runs a task, interleaved
  with the job undisturbed. Measured: time from the kill to the proxy marking the node down
  (zerofarm_node_up), to the lost task finishing on another holder, and to the video being
  ready; the job's wall time against the undisturbed one.
- CURVE: the undisturbed job once more on a farm started with `--insecure`, interleaved: TCP
  bytes on every farm link (the kernel's count, so CURVE's framing shows) and the CPU of the
  node and proxy processes themselves (without workers, where encryption is paid).
- Ring: partition replicas that move when a 4th node joins 3 (`zerofarm ring build` over the
  previous ring), against the ideal share 1/4.
"""

import os
import re
import time

from . import farm, media
from .common import NotAvailable, fmt, interleaved, log, median, ratio

NAME = "cluster"
TITLE = "Cluster: bytes over the network per job, a dead node, adding a node"

NODES, REPLICAS = 3, 2


def one_job(ctx, zerofarm, clip, rungs, tag, kill, secure=True):
    f = farm.Farm(ctx, zerofarm, ctx.scratch("cluster", tag), NODES, REPLICAS, task_slots=1,
                  secure=secure)
    try:
        m0 = f.metrics()
        t0 = time.monotonic()
        v = f.proxy.post_video(clip, [r["name"] for r in rungs])
        vid = v["id"]
        out = {}
        if kill:
            # Wait for a task running on some node after a quarter of the tasks are done.
            victim = lost_task = None
            deadline = time.monotonic() + 600
            while victim is None and time.monotonic() < deadline:
                v = f.proxy.video(vid)
                chunks = [c for c in v.get("chunks", []) if c["index"] >= 0]
                done = sum(c["state"] == "done" for c in chunks)
                if chunks and done >= max(1, len(chunks) // 4):
                    for c in chunks:
                        if c["state"] == "running" and c["node"] in f.endpoints:
                            victim, lost_task = c["node"], c["index"]
                            break
                time.sleep(0.05)
            if victim is None:
                raise NotAvailable("no task was seen running to kill its node")
            t_kill = time.monotonic()
            f.kill_node(f.endpoints.index(victim))
            detected = moved_done = None
            while time.monotonic() < deadline:
                now = time.monotonic()
                if detected is None:
                    up = f.metrics().get(f'zerofarm_node_up{{node="{victim}"}}')
                    if up == 0:
                        detected = now - t_kill
                v = f.proxy.video(vid)
                task = next((c for c in v.get("chunks", []) if c["index"] == lost_task), None)
                if moved_done is None and task and task["state"] == "done":
                    moved_done = now - t_kill
                    out["lost_task_finished_on"] = task["node"]
                    # Where the time went: its run on the other holder, and before it the
                    # wait for a free slot there.
                    out["lost_task_run_s"] = task.get("wall_seconds")
                if v["status"] in ("ready", "failed"):
                    break
                time.sleep(0.05)
            if v["status"] != "ready":
                raise NotAvailable(f"the job did not finish after the kill: {v.get('error')}")
            out.update({"kill_to_detected_s": detected, "kill_to_lost_task_done_s": moved_done,
                        "kill_to_ready_s": time.monotonic() - t_kill})
        else:
            v = f.proxy.wait_ready(vid, 60 * 30, poll=0.1)
        wall = time.monotonic() - t0
        m1 = f.metrics()
        net = v.get("network", {})
        out.update({"wall_s": wall,
                    "proxy_sent_bytes": m1.get("zerofarm_cluster_bytes_sent_total", 0) -
                    m0.get("zerofarm_cluster_bytes_sent_total", 0),
                    "proxy_received_bytes": m1.get("zerofarm_cluster_bytes_received_total", 0) -
                    m0.get("zerofarm_cluster_bytes_received_total", 0),
                    "task_input_bytes": net.get("task_input_bytes"),
                    "task_input_bytes_remote": net.get("task_input_bytes_remote"),
                    "task_output_bytes_sent": net.get("task_output_bytes_sent"),
                    "tasks_moved": m1.get("zerofarm_tasks_moved_total", 0),
                    "remote_placements": m1.get("zerofarm_remote_placements_total", 0),
                    # Whole farm lifetime (start, ingest, tasks, stitching), sampled before
                    # stop(): what CURVE adds to the links and to the farm's own processes.
                    "wire_bytes": f.wire_bytes(),
                    "farm_own_cpu_s": f.own_cpu_s()})
        log(f"cluster {tag}: wall {wall:.1f} s" +
            (f", detected {out['kill_to_detected_s']:.2f} s, lost task done "
             f"{out['kill_to_lost_task_done_s']:.2f} s after the kill" if kill and
             out.get("kill_to_detected_s") is not None and
             out.get("kill_to_lost_task_done_s") is not None else ""))
        return out
    finally:
        f.stop()


def ring_moves(ctx, zerofarm):
    base = ctx.scratch("cluster", "ring")
    path = os.path.join(base, "ring.txt")
    if os.path.exists(path):
        os.remove(path)
    eps = [f"tcp://10.0.0.{i + 1}:7000,zone=z{i + 1}" for i in range(4)]
    farm.build_ring(zerofarm, path, eps[:3], replicas=3)
    text = farm.build_ring(zerofarm, path, eps, replicas=3)
    m = re.search(r"(\d+) of (\d+) partition replicas move", text)
    if not m:
        raise NotAvailable(f"zerofarm ring build did not say what moved: {text.strip()[-200:]}")
    moved, total = int(m.group(1)), int(m.group(2))
    return {"moved": moved, "total": total, "moved_share": moved / total, "ideal_share": 0.25}


def run(ctx):
    zerofarm = ctx.tool("zerofarm")
    why = farm.available(zerofarm)
    if why:
        raise NotAvailable(why)
    clip = ctx.clips["cluster"]
    info = media.probe(ctx.tool("ffprobe"), clip)
    rungs = media.plan_ladder(info)
    source_bytes = os.path.getsize(clip)
    runs = interleaved(["undisturbed", "node killed", "undisturbed, no CURVE"], ctx.repeat,
                       lambda side, i: one_job(ctx, zerofarm, clip, rungs,
                                               f"{re.sub('[^a-z]+', '-', side.lower())}-{i}",
                                               kill=side == "node killed",
                                               secure=side != "undisturbed, no CURVE"))
    ok = runs["undisturbed"]
    killed = runs["node killed"]
    plain = runs["undisturbed, no CURVE"]

    def med(rs, key):
        return median([r.get(key) for r in rs if r.get(key) is not None])

    sent, received = med(ok, "proxy_sent_bytes"), med(ok, "proxy_received_bytes")
    remote, replicated = med(ok, "task_input_bytes_remote"), med(ok, "task_output_bytes_sent")
    task_in = med(ok, "task_input_bytes")
    wall_ok, wall_killed = med(ok, "wall_s"), med(killed, "wall_s")
    wire, wire_plain = med(ok, "wire_bytes"), med(plain, "wire_bytes")
    own_cpu, own_cpu_plain = med(ok, "farm_own_cpu_s"), med(plain, "farm_own_cpu_s")
    wall_plain = med(plain, "wall_s")
    rings = ring_moves(ctx, zerofarm)
    mib = 1 << 20
    rows = [
        ["proxy -> nodes (ingest: source + chunks + audio, to every replica)",
         fmt(sent / mib, unit=" MiB"), fmt(ratio(sent, source_bytes)) + "x source"],
        ["nodes -> proxy (stitching reads the segments)", fmt(received / mib, unit=" MiB"),
         fmt(ratio(received, source_bytes)) + "x source"],
        ["task input read on the running node", fmt(task_in / mib if task_in else None,
                                                    unit=" MiB"), ""],
        ["task input read from another node", fmt(remote / mib if remote is not None else None,
                                                  unit=" MiB"),
         fmt(ratio(remote, task_in)) + "x task input"],
        ["task outputs sent to the other replica", fmt(replicated / mib if replicated else None,
                                                       unit=" MiB"),
         fmt(ratio(replicated, source_bytes)) + "x source"],
        ["dead node: kill -> marked down", fmt(med(killed, "kill_to_detected_s"), unit=" s"), ""],
        ["dead node: kill -> its lost task done elsewhere",
         fmt(med(killed, "kill_to_lost_task_done_s"), unit=" s"), ""],
        ["dead node: of which the lost task's own run on the other holder",
         fmt(med(killed, "lost_task_run_s"), unit=" s"), ""],
        ["dead node: job wall, killed vs undisturbed", fmt(wall_killed, unit=" s") + " vs " +
         fmt(wall_ok, unit=" s"), fmt(ratio(wall_killed, wall_ok)) + "x"],
        ["CURVE: bytes on the farm's links, with vs without",
         fmt(wire / mib if wire else None, unit=" MiB") + " vs " +
         fmt(wire_plain / mib if wire_plain else None, unit=" MiB"),
         fmt(ratio(wire, wire_plain)) + "x"],
        ["CURVE: CPU of nodes + proxy (no workers), with vs without",
         fmt(own_cpu, unit=" s") + " vs " + fmt(own_cpu_plain, unit=" s"),
         fmt(ratio(own_cpu, own_cpu_plain)) + "x"],
        ["CURVE: job wall, with vs without", fmt(wall_ok, unit=" s") + " vs " +
         fmt(wall_plain, unit=" s"), fmt(ratio(wall_ok, wall_plain)) + "x"],
        ["adding a 4th node to 3 (part power 8, 3 replicas)",
         f"{rings['moved']} of {rings['total']} replicas", fmt(rings["moved_share"] /
                                                                 rings["ideal_share"]) +
         "x the ideal 1/4"],
    ]
    return {"clip": clip, "source_bytes": source_bytes, "source": info, "nodes": NODES,
            "replicas": REPLICAS, "cores": os.cpu_count(), "runs": runs, "ring": rings,
            "ratios": {"proxy_sent_per_source_byte": ratio(sent, source_bytes),
                       "task_remote_input_share": ratio(remote, task_in),
                       "killed_vs_undisturbed_wall": ratio(wall_killed, wall_ok),
                       "curve_wire_bytes": ratio(wire, wire_plain),
                       "curve_farm_own_cpu": ratio(own_cpu, own_cpu_plain),
                       "curve_wall": ratio(wall_ok, wall_plain),
                       "ring_moved_vs_ideal": rings["moved_share"] / rings["ideal_share"]},
            "table": {"header": ["measure", "value (median)", "ratio"], "rows": rows}}
