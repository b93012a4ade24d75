#!/usr/bin/env python3
"""The cluster's targets of docs/cluster.md, measured on three `owl serve`
processes on loopback (python3, standard library only):

  1. target 30,000 set on node b: time until every node runs 10,000 workers,
     and until the cluster's jobs/s is within 2 % of 30,000;
  2. kill -9 node c: time until a and b run 15,000 each, and until the
     total is back within 2 % of 30,000 jobs/s;
  3. c restarts and rejoins: time until every node runs 10,000 again.

    bench/cluster.py [--target 30000] [--owl ./target/release/owl]

Needs a release build: `cargo build --release -p owl`.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

SECRET = "bench-cluster-secret-0123456789"
NAMES = ["a", "b", "c"]


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Node:
    def __init__(self, owl, name, root, join):
        self.owl, self.name, self.join = owl, name, join
        self.data = os.path.join(root, name)
        self.http = free_port(socket.SOCK_STREAM)
        self.gossip = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
        self.proc = None

    def start(self):
        args = [self.owl, "serve", "--bind", f"127.0.0.1:{self.http}", "--data-dir", self.data,
                "--cluster", self.gossip, "--node", self.name]
        if self.join:
            args += ["--join", self.join]
        env = dict(os.environ, OWL_CLUSTER_SECRET=SECRET)
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if "open http://" in line:
                break
        # Keep the pipe drained.
        subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)

    def load(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/api/load", timeout=2) as r:
            return json.load(r)

    def set_target(self, target):
        token = open(os.path.join(self.data, "admin-token")).read().strip()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http}/api/load", method="PUT",
            data=json.dumps({"target": target}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=2).read()


def wait(what, check, limit=30.0):
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > limit:
            raise SystemExit(f"timed out waiting until {what}")
        time.sleep(0.05)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", type=int, default=30000)
    p.add_argument("--owl", default="./target/release/owl")
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="owl-bench-cluster-")
    nodes = []
    try:
        a = Node(args.owl, "a", root, "")
        a.start()
        nodes.append(a)
        for name in NAMES[1:]:
            n = Node(args.owl, name, root, a.gossip)
            n.start()
            nodes.append(n)
        a, b, c = nodes
        wait("three nodes up everywhere", lambda: all(
            [x["state"] for x in n.load()["nodes"]] == ["up"] * 3 for n in nodes))
        t = args.target
        third, half = t // 3, t // 2

        def workers(ns, each):
            return all(n.load()["workers"] == each for n in ns)

        def total_ok(ns):
            return abs(sum(n.load()["jobs_per_s"] for n in ns) - t) <= 0.02 * t

        b.set_target(t)
        split = wait("a third each", lambda: workers(nodes, third))
        rate = wait("total jobs/s within 2 %", lambda: total_ok(nodes))
        print(f"target {t} set on b: every node runs {third} after {split:.2f} s; "
              f"total jobs/s within 2 % after a further {rate:.2f} s "
              f"({sum(n.load()['jobs_per_s'] for n in nodes):.0f} jobs/s)")

        time.sleep(2)
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
        takeover = wait("a and b run half each", lambda: workers([a, b], half))
        rate = wait("total jobs/s within 2 %", lambda: total_ok([a, b]))
        print(f"kill -9 c: a and b run {half} each after {takeover:.2f} s; "
              f"total within 2 % after a further {rate:.2f} s "
              f"({sum(n.load()['jobs_per_s'] for n in [a, b]):.0f} jobs/s)")

        time.sleep(2)
        c.start()
        back = wait("a third each again", lambda: workers(nodes, third))
        rate = wait("total jobs/s within 2 %", lambda: total_ok(nodes))
        print(f"c restarts and rejoins: every node runs {third} after {back:.2f} s "
              f"(from its URL line); total within 2 % after a further {rate:.2f} s")
    finally:
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGTERM)
        for n in nodes:
            if n.proc:
                try:
                    n.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
