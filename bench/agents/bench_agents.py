#!/usr/bin/env python3
"""N fake agents on one coordinator (agent_load): memory, CPU and loop stalls while they
heartbeat, and how long a job waits for its job.assign among them.

For each N of --counts: a fresh coordinator (SQLite, or a new PostgreSQL database with --pg-port), its RSS
before the agents; agent_load connects N agents (hello with AGENT_TOKEN) and prints "ready";
after a settling pause:
- RSS per connection = (RSS with the agents - RSS before) / N;
- CPU per heartbeat = the coordinator's CPU time over --window seconds / heartbeats sent then
  (everything the process did in the window: reading them, the lease tick, scheduler passes);
- max_loop_callback_us = the health metric (the longest callback of the service loop since
  start, connection ramp included), read after the window; max_agent_loop_us (agent callbacks
  and agent timers only) read once every agent is connected (_ramp) and after the window
  (_heartbeats: when it is unchanged, the heartbeats' callbacks were all shorter than the
  ramp's longest); max_agent_loop_us_steady is the health's max_agent_loop_us_recent after the
  window (the longest of its last 5 to 10 s: heartbeats only, the ramp long over);
- time to assign = submit -> job.assign seen by agent_load, for --assigns jobs submitted one
  after the other (each answered at once with job.finished).
Prints one JSON line per N.  Figures only: nothing is asserted.
"""
import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
import cotest  # noqa: E402

ADMIN = "admin-token-bench-agents-0123456789"
AGENT_TOKEN = "agent-token-bench-agents"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Load:
    """agent_load as a child, its stdout read by a thread: the last stats, assigns by job."""

    def __init__(self, binary, port, count, prefix):
        env = dict(os.environ, AGENT_TOKEN=AGENT_TOKEN)
        self.proc = subprocess.Popen([binary, str(port), str(count), prefix],
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.ready = None
        self.stats = None
        self.assigns = {}
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        for line in self.proc.stdout:
            w = line.split()
            with self.cv:
                if w and w[0] == "ready":
                    self.ready = (int(w[1]), float(w[2]))
                elif w and w[0] == "stats":
                    self.stats = [int(x) for x in w[1:]]
                elif w and w[0] == "assign":
                    self.assigns[w[1]] = int(w[2]) / 1e6
                self.cv.notify_all()

    def wait(self, pred, timeout):
        deadline = time.time() + timeout
        with self.cv:
            while not pred():
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True

    def heartbeats(self):
        with self.cv:
            return self.stats[1] if self.stats else 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def one(args, n):
    workdir = cotest.make_workdir("cacheout-bench-agents-")
    url = None
    if args.pg_port:
        url = cotest.new_database("bench_agents_%d" % n, workdir, args.pg_bin, args.pg_port,
                                  prefix="bench")
    coord = cotest.Coordinator(args.coordinator, args.sql_dir, ADMIN, database_url=url,
                               workdir=workdir,
                               settings={"AGENT_TOKEN": AGENT_TOKEN, "LOG_LEVEL": "WARN",
                                         "MAX_WORKERS": str(n + 100),
                                         "DEFAULT_STARTING_CREDITS": "1000000"})
    coord.start()
    load = None
    try:
        time.sleep(1)
        rss0 = rss_kb(coord.proc.pid)
        load = Load(args.load, coord.port, n, "al%d" % n)
        if not load.wait(lambda: load.ready is not None, 300):
            raise SystemExit("bench/agents: agent_load never said ready")
        welcomed, ramp_s = load.ready
        st, h_ready, _ = coord.jreq("GET", "/api/v1/health", admin=True)
        m_ready = (h_ready or {}).get("metrics", {})
        time.sleep(args.settle)
        rss1 = rss_kb(coord.proc.pid)
        hb0, cpu0, t0 = load.heartbeats(), cotest.cpu_seconds(coord.proc), time.time()
        time.sleep(args.window)
        hb1, cpu1, t1 = load.heartbeats(), cotest.cpu_seconds(coord.proc), time.time()
        st, health, _ = coord.jreq("GET", "/api/v1/health", admin=True)
        m = (health or {}).get("metrics", {})
        waits = []
        for i in range(args.assigns):
            ts = time.time()
            st, j, _ = coord.jreq("POST", "/api/v1/submit",
                                  {"title": "a%d" % i, "command": "true", "required_cores": 1,
                                   "required_ram_mb": 64, "buyer_id": "bench-buyer"},
                                  admin=True)
            if st != 201:
                raise SystemExit("bench/agents: submit answered %s %r" % (st, j))
            jid = j["job_id"]
            if not load.wait(lambda: jid in load.assigns, 60):
                raise SystemExit("bench/agents: job %s never assigned" % jid)
            waits.append((load.assigns[jid] - ts) * 1000)
            time.sleep(0.05)
        rss2 = rss_kb(coord.proc.pid)
        st, health2, _ = coord.jreq("GET", "/api/v1/health", admin=True)
        m2 = (health2 or {}).get("metrics", {})
        hbs = hb1 - hb0
        return {
            "agents": n, "welcomed": welcomed, "connect_s": round(ramp_s, 1),
            "connected_agents": m.get("connected_agents"),
            "rss_before_mb": round(rss0 / 1024, 1), "rss_mb": round(rss1 / 1024, 1),
            "rss_after_jobs_mb": round(rss2 / 1024, 1),
            "rss_per_agent_kb": round((rss1 - rss0) / max(1, n), 1),
            "heartbeats_per_s": round(hbs / (t1 - t0), 1),
            "cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "cpu_us_per_heartbeat": round((cpu1 - cpu0) * 1e6 / max(1, hbs), 1),
            "max_agent_loop_us_ramp": m_ready.get("max_agent_loop_us"),
            "max_agent_loop_us_heartbeats": m.get("max_agent_loop_us"),
            # The longest of the window's last 5 to 10 s only (null from a coordinator without it).
            "max_agent_loop_us_steady": m.get("max_agent_loop_us_recent"),
            "loadavg_1m": round(os.getloadavg()[0], 1),
            "max_loop_callback_us": m.get("max_loop_callback_us"),
            "max_loop_callback_us_after_assigns": m2.get("max_loop_callback_us"),
            "max_db_work_us": m2.get("max_db_work_us"),
            "assign_ms_median": round(statistics.median(waits), 1) if waits else None,
            "assign_ms_max": round(max(waits), 1) if waits else None,
        }
    finally:
        if load:
            load.stop()
        coord.stop(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--pg-port", type=int, default=0, help="PostgreSQL instead of SQLite")
    ap.add_argument("--pg-bin", default=None)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--window", type=float, default=20)
    ap.add_argument("--assigns", type=int, default=20)
    args = ap.parse_args()
    for n in [int(x) for x in args.counts.split(",") if x]:
        print(json.dumps(one(args, n)), flush=True)


if __name__ == "__main__":
    main()
