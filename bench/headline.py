#!/usr/bin/env python3
"""The talk at ten times its size on one core, as a benchmark you can run
(python3, standard library only, Linux with `taskset`):

  * two nodes, a and b, in a cluster, their schedulers pinned to core 0
    (`taskset -c 0 owl serve --schedulers 1 …`), the load generators on the
    other cores;
  * the load target (--jobs) set on a, so each node runs half;
  * --users visitors open a's sum page over --ramp, each submits
    9999999999 and keeps the page open; every 100 ms a probe loads `GET /`,
    a fresh page's live sum of 7 and `POST /api/sum 7`;
  * --runaways calculations of -1 through a's API;
  * --posters board posters on a, each posting every 0.5 s;
  * b killed with SIGKILL --kill-at seconds after the first visitor.

It prints one JSON line: users connected and submitted; page, live, API and
post p50 and p99; the takeover time (from the kill until a runs the whole
target); false node-down events before the kill; acknowledged vs present
posts; jobs/s of both nodes before the kill and of a after it; the peak
RSS of each node.

    cargo build --release -p owl
    bench/headline.py --jobs 1000000 --users 1000 --runaways 100 --posters 20

Needs a release build. The defaults are the issue's scenario; it takes
about three minutes and one to two GB of memory per node at 1M jobs.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

SECRET = "bench-headline-secret-0123456789"


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def other_cores():
    cpus = sorted(os.sched_getaffinity(0))
    rest = [c for c in cpus if c != cpus[0]]
    if not rest:
        raise SystemExit("needs at least two cores: the nodes on one, the load generators on the others")
    return cpus[0], ",".join(str(c) for c in rest)


class Node:
    def __init__(self, args, name, root, join, core):
        self.args, self.name, self.join, self.core = args, name, join, core
        self.data = os.path.join(root, name)
        self.http = free_port(socket.SOCK_STREAM)
        self.gossip = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
        self.log_path = os.path.join(root, f"{name}.log")
        self.proc = None
        self.peak_rss = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http}"

    def start(self):
        cmd = ["taskset", "-c", str(self.core), self.args.owl, "serve",
               "--bind", f"127.0.0.1:{self.http}", "--data-dir", self.data,
               "--schedulers", "1", "--cluster", self.gossip, "--node", self.name,
               "--max-calculations", "5000", "--max-calculations-per-address", "5000",
               "--post-limit", "100", "--post-limit-per-address", "10000",
               "--max-live-per-address", "5000", "--max-connections", "20000"]
        if self.join:
            cmd += ["--join", self.join]
        env = dict(os.environ, OWL_CLUSTER_SECRET=SECRET, OWL_LOG="info")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        wait(f"{self.name} to answer", lambda: self.get("/api/health") is not None, 60)

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    def token(self):
        return open(os.path.join(self.data, "admin-token")).read().strip()

    def set_target(self, target):
        req = urllib.request.Request(
            self.url + "/api/load", method="PUT",
            data=json.dumps({"target": target}).encode(),
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def node_downs(self, upto=None):
        text = open(self.log_path, errors="replace").read()
        if upto is not None:
            text = text[:upto]
        return len(re.findall(r"node down", text))


def wait(what, check, limit=60.0):
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > limit:
            raise SystemExit(f"timed out waiting until {what}")
        time.sleep(0.1)


def owl_load(args, core_list, url, extra):
    cmd = ["taskset", "-c", core_list, args.owl, "load", "--url", url, "--json"] + extra
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def runaway(url, n):
    req = urllib.request.Request(url + "/api/sum?wait_ms=0", method="POST",
                                 data=json.dumps({"input": "-1"}).encode(),
                                 headers={"Content-Type": "application/json"})
    for _ in range(n):
        urllib.request.urlopen(req, timeout=10).read()


def count_posts(node):
    total, before = 0, None
    while True:
        page = node.get("/api/board/building-blocks?limit=100" + (f"&before={before}" if before else ""))
        if not page:
            return total
        total += sum(1 for p in page["posts"] if p.get("author") == "owl load")
        before = page.get("next")
        if not before:
            return total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--ramp", type=int, default=60, help="seconds over which visitors arrive")
    p.add_argument("--hold", type=int, default=60, help="seconds visitors stay after the ramp")
    p.add_argument("--runaways", type=int, default=100)
    p.add_argument("--posters", type=int, default=20)
    p.add_argument("--kill-at", type=float, default=70.0, help="seconds after the first visitor (past the end: no kill)")
    p.add_argument("--owl", default="./target/release/owl")
    args = p.parse_args()
    node_core, gen_cores = other_cores()
    root = tempfile.mkdtemp(prefix="owl-bench-headline-")
    nodes = []
    try:
        a = Node(args, "a", root, "", node_core)
        a.start()
        b = Node(args, "b", root, a.gossip, node_core)
        b.start()
        nodes = [a, b]
        wait("both nodes up everywhere", lambda: all(
            [x["state"] for x in n.get("/api/load")["nodes"]] == ["up", "up"] for n in nodes))

        a.set_target(args.jobs)
        def split():
            loads = [n.get("/api/load") for n in nodes]
            return sum(l["share"] for l in loads) == args.jobs and all(l["workers"] == l["share"] for l in loads)

        wait("each node runs its half", split, 300)
        wait("the jobs at full rate", lambda: sum(n.get("/api/load")["jobs_per_s"] for n in nodes) >= 0.98 * args.jobs, 120)

        # Watch both nodes: the load figures and RSS, four times a second.
        samples = []
        watching = True

        def watch():
            while watching:
                now = time.monotonic()
                for n in nodes:
                    if n.proc.poll() is None:
                        n.peak_rss = max(n.peak_rss, n.rss())
                    s = n.get("/api/load")
                    if s:
                        samples.append((now, n.name, s["jobs_per_s"], s["share"], s["workers"], s.get("behind")))
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        start = time.monotonic()
        visitors = owl_load(args, gen_cores, a.url, ["--mode", "live", "--users", str(args.users),
                                                     "--ramp", f"{args.ramp}s", "--hold", f"{args.hold}s",
                                                     "--input", "9999999999"])
        posters = owl_load(args, gen_cores, a.url, ["--mode", "board", "--users", str(args.posters),
                                                    "--ramp", "1s", "--hold", f"{args.ramp + args.hold}s",
                                                    "--every", "500ms"])
        runaway(a.url, args.runaways)

        time.sleep(max(0.0, start + args.kill_at - time.monotonic()))
        a_log_at_kill = os.path.getsize(a.log_path)
        false_downs = a.node_downs(a_log_at_kill) + b.node_downs()
        before = [s for s in samples if start + args.kill_at - 10 <= s[0] < start + args.kill_at]
        jobs_before = sum(s[2] for s in before if s[1] == "a") / max(1, sum(1 for s in before if s[1] == "a")) \
            + sum(s[2] for s in before if s[1] == "b") / max(1, sum(1 for s in before if s[1] == "b"))
        killed_at = time.monotonic()
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        takeover = wait("a takes over the whole target", lambda: a.get("/api/load")["share"] == args.jobs, 60)
        taken_at = killed_at + takeover
        try:
            full = wait("a at 99 % of the target", lambda: a.get("/api/load")["jobs_per_s"] >= 0.99 * args.jobs, 60)
        except SystemExit:
            full = None
        time.sleep(max(0.0, taken_at + 10 - time.monotonic()))
        after = [s[2] for s in samples if s[1] == "a" and taken_at + 8 <= s[0] <= taken_at + 12]

        visitors_report = json.loads(visitors.communicate()[0] or "{}")
        posters_report = json.loads(posters.communicate()[0] or "{}")
        watching = False
        watcher.join()
        present = count_posts(a)

        q = lambda r, k: r.get(k)
        result = {
            "bench": "headline",
            "jobs": args.jobs,
            "users": args.users,
            "runaways": args.runaways,
            "posters": args.posters,
            "users_connected": q(visitors_report, "users_connected"),
            "users_submitted": q(visitors_report, "submit_ok"),
            "page_p50_ms": q(visitors_report, "page_p50_ms"),
            "page_p99_ms": q(visitors_report, "page_p99_ms"),
            "live_p50_ms": q(visitors_report, "live_sum_p50_ms"),
            "live_p99_ms": q(visitors_report, "live_sum_p99_ms"),
            "api_p50_ms": q(visitors_report, "api_sum_p50_ms"),
            "api_p99_ms": q(visitors_report, "api_sum_p99_ms"),
            "post_p50_ms": q(posters_report, "submit_p50_ms"),
            "post_p99_ms": q(posters_report, "submit_p99_ms"),
            "posts_acknowledged": q(posters_report, "submit_ok"),
            "posts_present": present,
            "takeover_s": round(takeover, 2),
            "a_at_99pct_after_kill_s": None if full is None else round(takeover + full, 2),
            "false_node_downs_before_kill": false_downs,
            "jobs_per_s_before_kill": round(jobs_before),
            "a_jobs_per_s_10s_after_takeover": round(sum(after) / len(after)) if after else None,
            "a_peak_rss_mb": round(a.peak_rss / 1048576),
            "b_peak_rss_mb": round(b.peak_rss / 1048576),
        }
        print(json.dumps(result))
    finally:
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGTERM)
        for n in nodes:
            if n.proc:
                try:
                    n.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
