#!/usr/bin/env python3
"""End-to-end benchmark: trivial jobs (`true`) submitted over HTTP to a real coordinator with one
local agent.  Prints figures, asserts nothing.

Phases (each on a fresh coordinator and database):
  latency     jobs submitted one at a time on an idle system: p50/p99 submit->finished and
              p50 submit->agent-receives
  sandboxed   N jobs submitted by several client threads, the agent runs each in its sandbox:
              jobs/s end to end, p50/p99 submit->finished, p50 submit->agent-receives
  dispatch    the same with the agent in benchmark mode (--bench-no-sandbox: it runs nothing and
              reports success), measuring the coordinator alone; plus the drain rate of a backlog
              queued before the agent connects (no HTTP client in the way)

Times: "submit" is the job's created_at (stored by the coordinator while answering the submit),
"finished" its completed_at, "agent receives" the agent's log line for job.accepted; all three
clocks are the same host's.  Client-side figures (first submit sent -> last job final) are
printed too.  Standard library only.
"""
import argparse
import calendar
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ADMIN = "bench-admin"
AGENT_TOKEN = "bench-agent"
ARGS = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def iso_ms(s):
    base, _, frac = s.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(
        (frac + "000")[:3])


def cpu_s(proc):
    """CPU seconds (user + system, all threads) used so far by a child process."""
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def print_cpu(name, stack, n, c0, a0):
    c = cpu_s(stack.coord) - c0
    a = cpu_s(stack.agent) - a0
    print("%-22s CPU per job: coordinator %.0f us, agent %.0f us (load average now %.1f; the "
          "coordinator alone would sustain ~%.0f jobs/s per core)" % (
              name, c * 1e6 / n, a * 1e6 / n, os.getloadavg()[0], n / c if c > 0 else 0))


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


class Conn:
    """A keep-alive HTTP connection."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def req(self, method, path, body=None, admin=False):
        data = json.dumps(body).encode() if body is not None else b""
        h = {"Content-Length": str(len(data))}
        if body is not None:
            h["Content-Type"] = "application/json"
        if admin:
            h["X-Admin-Token"] = ADMIN
        for attempt in range(2):
            try:
                self.c.request(method, path, body=data or None, headers=h)
                r = self.c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise


_dbs = [0]


def new_database(name, workdir):
    """A fresh database for one phase: a SQLite file, or a new PostgreSQL database."""
    if not ARGS.pg_port:
        return "sqlite:///" + os.path.join(workdir, "bench.db")
    _dbs[0] += 1
    db = "bench_%s_%d_%d" % (name.replace("-", "_"), os.getpid(), _dbs[0])
    subprocess.run([os.path.join(ARGS.pg_bin, "createdb"), "-h", "127.0.0.1", "-p",
                    str(ARGS.pg_port), "-U", "postgres", db], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return "postgresql://postgres@127.0.0.1:%d/%s" % (ARGS.pg_port, db)


class Stack:
    def __init__(self, name, bench_mode, cores):
        self.dir = tempfile.mkdtemp(prefix="cacheout-bench-%s-" % name)
        self.port = free_port()
        self.bench_mode = bench_mode
        self.cores = cores
        self.coord = None
        self.agent = None
        self.agent_log = os.path.join(self.dir, "agent.log")
        env = dict(os.environ)
        for k in ("LOG_FILE", "DB_THREADS", "AGENT_BENCH_NO_SANDBOX"):
            env.pop(k, None)
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "ADMIN_TOKEN": ADMIN,
                    "AGENT_TOKEN": AGENT_TOKEN, "SQL_DIR": ARGS.sql_dir,
                    "DATABASE_URL": new_database(name, self.dir),
                    "DEFAULT_STARTING_CREDITS": "100000000", "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                    "FRONTEND_DIR": self.dir, "WORKER_TIMEOUT_SECONDS": "30"})
        self.env = env

    def start_coordinator(self):
        out = open(os.path.join(self.dir, "coordinator.log"), "a")
        self.coord = subprocess.Popen([ARGS.coordinator], cwd=self.dir, env=self.env, stdout=out,
                                      stderr=subprocess.STDOUT)
        out.close()
        c = Conn(self.port)
        for _ in range(400):
            try:
                if c.req("GET", "/api/v1/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("bench: the coordinator did not start (see %s)" % self.dir)

    def start_agent(self):
        env = dict(self.env)
        env.update({"COORDINATOR_URL": "ws://127.0.0.1:%d/ws/agent" % self.port,
                    "AGENT_TOKEN": AGENT_TOKEN, "WORKER_ID": "bench-agent",
                    "AGENT_CORES": str(self.cores), "AGENT_RAM_MB": str(64 * self.cores),
                    "AGENT_WORK_ROOT": os.path.join(self.dir, "work"), "LOG_LEVEL": "INFO"})
        os.makedirs(env["AGENT_WORK_ROOT"], exist_ok=True)
        args = [ARGS.agent]
        if self.bench_mode:
            args.append("--bench-no-sandbox")
        out = open(self.agent_log, "a")
        self.agent = subprocess.Popen(args, cwd=self.dir, env=env, stdout=out,
                                      stderr=subprocess.STDOUT)
        out.close()
        c = Conn(self.port)
        for _ in range(400):
            st, ws = c.req("GET", "/api/v1/workers")
            if st == 200 and any(w["worker_id"] == "bench-agent" and w["status"] != "offline"
                                 for w in ws):
                return
            time.sleep(0.05)
        raise SystemExit("bench: the agent did not connect (see %s)" % self.agent_log)

    def stop(self):
        for p in (self.agent, self.coord):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def received_ms(self):
        """job_id -> ms the agent logged job.accepted."""
        got = {}
        rx = re.compile(r"^(\S+) level=\w+ job accepted job=(\S+)")
        with open(self.agent_log, errors="replace") as f:
            for line in f:
                m = rx.match(line)
                if m:
                    got.setdefault(m.group(2), iso_ms(m.group(1)))
        return got


JOB = {"title": "bench", "required_cores": 1, "required_ram_mb": 64, "command": "true",
       "buyer_id": "bench-buyer", "priority": 5}


def wait_final(port, n, timeout):
    c = Conn(port)
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, h = c.req("GET", "/api/v1/health")
        if st == 200:
            j = h["jobs"]
            if j["completed"] + j["failed"] + j["cancelled"] >= n:
                return time.time(), j
        time.sleep(0.01)
    raise SystemExit("bench: jobs not final after %ss" % timeout)


def all_jobs(port):
    c = Conn(port)
    out, off = [], 0
    while True:
        st, js = c.req("GET", "/api/v1/jobs?limit=1000&offset=%d" % off)
        if st != 200 or not js:
            return out
        out += js
        off += len(js)


def submit_many(port, n, threads):
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    errors = []

    def worker(k):
        c = Conn(port)
        for _ in range(k):
            st, body = c.req("POST", "/api/v1/submit", JOB, admin=True)
            if st != 201:
                errors.append((st, body))

    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit("bench: %d submits failed, e.g. %r" % (len(errors), errors[0]))
    return t0, time.time()


def report(name, jobs, recv, t0=None, t_end=None):
    done = [j for j in jobs if j["completed_at"]]
    ok = sum(1 for j in jobs if j["status"] == "completed")
    fin = [iso_ms(j["completed_at"]) - iso_ms(j["created_at"]) for j in done]
    rcv = [recv[j["job_id"]] - iso_ms(j["created_at"]) for j in jobs if j["job_id"] in recv]
    first = min(iso_ms(j["created_at"]) for j in jobs)
    last = max(iso_ms(j["completed_at"]) for j in done) if done else first
    span = max(1, last - first) / 1000.0
    print("%-22s jobs=%d completed=%d" % (name, len(jobs), ok))
    if t0 is not None:
        print("%-22s jobs/s end to end (client: first submit -> all final): %.0f" % (
            "", len(jobs) / max(1e-9, t_end - t0)))
    print("%-22s jobs/s end to end (server: first created -> last completed): %.0f" % (
        "", len(jobs) / span))
    print("%-22s submit->finished ms: p50 %.0f  p99 %.0f" % ("", pct(fin, 50), pct(fin, 99)))
    print("%-22s submit->agent-receives ms: p50 %.0f  p99 %.0f" % ("", pct(rcv, 50), pct(rcv, 99)))
    sys.stdout.flush()


def phase_latency():
    s = Stack("latency", False, ARGS.cores)
    try:
        s.start_coordinator()
        s.start_agent()
        c = Conn(s.port)
        client = []
        for i in range(ARGS.latency_jobs):
            t = time.time()
            st, j = c.req("POST", "/api/v1/submit", JOB, admin=True)
            if st != 201:
                raise SystemExit("bench: submit failed: %r" % (j,))
            while True:
                st, jj = c.req("GET", "/api/v1/jobs/" + j["job_id"])
                if jj["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.001)
            client.append((time.time() - t) * 1000)
            time.sleep(0.02)
        report("latency (idle, sandboxed)", all_jobs(s.port), s.received_ms())
        print("%-22s client-observed submit->final ms (polling 1 ms): p50 %.0f  p99 %.0f" % (
            "", pct(client, 50), pct(client, 99)))
    finally:
        s.stop()


def phase_throughput(bench_mode):
    name = "dispatch-only" if bench_mode else "sandboxed"
    s = Stack(name, bench_mode, ARGS.dispatch_cores if bench_mode else ARGS.cores)
    try:
        s.start_coordinator()
        s.start_agent()
        c0, a0 = cpu_s(s.coord), cpu_s(s.agent)
        t0, t_sub = submit_many(s.port, ARGS.jobs, ARGS.threads)
        t_end, _ = wait_final(s.port, ARGS.jobs, 600)
        print_cpu(name, s, ARGS.jobs, c0, a0)
        print("%-22s submit rate (client, %d threads): %.0f jobs/s" % (
            name, ARGS.threads, ARGS.jobs / max(1e-9, t_sub - t0)))
        report(name, all_jobs(s.port), s.received_ms(), t0, t_end)
    finally:
        s.stop()


def phase_drain():
    s = Stack("drain", True, ARGS.dispatch_cores)
    try:
        s.start_coordinator()
        submit_many(s.port, ARGS.jobs, ARGS.threads)
        t0 = time.time()
        c0 = cpu_s(s.coord)
        s.start_agent()
        t_end, _ = wait_final(s.port, ARGS.jobs, 600)
        print_cpu("dispatch-only drain", s, ARGS.jobs, c0, 0)
        jobs = all_jobs(s.port)
        recv = s.received_ms()
        first = min(recv.values()) if recv else 0
        last = max(iso_ms(j["completed_at"]) for j in jobs if j["completed_at"])
        print("%-22s backlog of %d drained: %.0f jobs/s (server: first received -> last "
              "completed), %.0f jobs/s (client: agent start -> all final)" % (
                  "dispatch-only drain", len(jobs), len(jobs) / max(0.001, (last - first) / 1000),
                  len(jobs) / max(1e-9, t_end - t0)))
    finally:
        s.stop()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--pg-port", type=int, default=0, help="PostgreSQL server (else SQLite)")
    ap.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--latency-jobs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument("--dispatch-cores", type=int, default=64)
    ap.add_argument("--phases", default="latency,sandboxed,dispatch,drain")
    ARGS = ap.parse_args()
    print("bench/e2e: store=%s jobs=%d threads=%d agent cores=%d (dispatch-only: %d)" % (
        "postgres" if ARGS.pg_port else "sqlite", ARGS.jobs,
        ARGS.threads, ARGS.cores, ARGS.dispatch_cores))
    phases = ARGS.phases.split(",")
    if "latency" in phases:
        phase_latency()
    if "sandboxed" in phases:
        phase_throughput(False)
    if "dispatch" in phases:
        phase_throughput(True)
    if "drain" in phases:
        phase_drain()


if __name__ == "__main__":
    main()
