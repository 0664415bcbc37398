#!/usr/bin/env python3
"""Chaos suite: a mixed workload from several buyers while faults are injected at random.

One run (per store) starts a coordinator and a few agents, each agent connected through a TCP
proxy of this driver (so that the driver can partition it), submits a mix of jobs (short, long,
failing, out of memory, cancelled) from several buyers, and meanwhile injects faults chosen by a
seeded random generator (the seed is printed; CHAOS_SEED replays a run):

- kill -9 of an agent, restarted a moment later;
- kill -9 of the coordinator, restarted a moment later;
- on PostgreSQL: a server restart, or a halt of a few seconds then a resume (tests/lib/pg.sh);
- a network partition of an agent: its proxy stops moving bytes both ways (nothing is closed,
  nothing is answered) for a few seconds, then heals.

Meanwhile a sampler lists the jobs twice a second.  At the end the faults stop, every process
is up again and the driver waits for the jobs to settle, then checks (one case each):

- lost: every job is final, or running on a connected agent that holds it (agent log);
- settled once: no job has more than one charge or more than one payout in the ledger;
- invariant: GET /api/v1/debug/invariant;
- double: no job had two results stored (coordinator log "job finished job=<id>", DEBUG);
- assigned: no job was seen `assigned` (same attempt) for longer than lease + grace, not counting
  time when the coordinator or the database was down, nor the restart grace the coordinator
  gives silent workers after it restarts (COORD_LEASE_RESTART_GRACE_MS);
- outputs: every completed short job's stored output holds its marker;
- platform: no job failed as sandbox_error (the agents are healthy: such a failure comes from a
  race in the platform, and the agent's rejection reason is printed).

A check named in --xfail (CHAOS_XFAIL in run.sh, each with the bug it waits for) prints XFAIL
when it fails and XPASS when this run did not hit the bug; both count as passed.

It prints the faults injected and "lost=N double=N".  Standard library and tests/lib/cotest.py
only; prints one line per case and "RESULT <passed> <failed>".
"""
import argparse
import asyncio
import http.client
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import cotest  # noqa: E402
from cotest import CaseFailed, check  # noqa: E402

ADMIN = "admin-token-of-the-chaos-suite-0123456789"
AGENT_TOKEN = "agent-token-of-the-chaos-suite-0123456789"
LEASE_S = 3
GRACE_S = 10  # sampling, restarts and a loaded 2-core machine
# After its own restart the coordinator gives a worker it has not heard from since the start its
# reconnect back-off before releasing that worker's jobs (COORD_LEASE_RESTART_GRACE_MS): an agent
# cut off across the restart may still hold finished results.  A job assigned across a restart is
# allowed that much more.
RESTART_GRACE_S = 40
BUYERS = ("chaos-b1", "chaos-b2", "chaos-b3")
FINAL = ("completed", "failed", "cancelled")


def log(msg):
    print("    # " + msg, flush=True)


# ------------------------------------------------------------------------------ TCP proxy

class Proxy:
    """A TCP proxy on a free loopback port to 127.0.0.1:@target_port, run by an asyncio loop in
    its own thread.  partition() stops moving bytes in both directions (and leaves new
    connections hanging) without closing anything; heal() resumes."""

    def __init__(self, target_port, logfile):
        self.target_port = target_port
        self.logf = open(logfile, "a", buffering=1)
        self.nconn = 0
        self.port = cotest.free_port()
        self.loop = asyncio.new_event_loop()
        self.open = None
        self.server = None
        self.conns = set()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.open = asyncio.Event()
        self.open.set()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port))
        started.set()
        self.loop.run_forever()

    def event(self, msg):
        self.logf.write("%s %s\n" % (time.strftime("%H:%M:%S", time.gmtime()) +
                                      ".%03d" % (time.time() * 1000 % 1000), msg))

    async def _pump(self, reader, writer, what):
        n = 0
        try:
            while True:
                await self.open.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self.open.wait()  # a partition that began during the read drops nothing
                writer.write(data)
                n += len(data)
                await writer.drain()
            self.event("%s: end of stream after %d bytes" % (what, n))
        except (OSError, asyncio.CancelledError) as e:
            self.event("%s: %r after %d bytes" % (what, e, n))
        finally:
            try:
                writer.close()
            except OSError:
                pass

    async def _client(self, creader, cwriter):
        self.nconn += 1
        n = self.nconn
        self.event("conn %d: accepted%s" % (n, "" if self.open.is_set() else " (partitioned)"))
        await self.open.wait()
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError as e:
            self.event("conn %d: upstream connect failed: %s" % (n, e))
            cwriter.close()
            return
        tasks = [asyncio.ensure_future(self._pump(creader, uwriter, "conn %d agent->coord" % n)),
                 asyncio.ensure_future(self._pump(ureader, cwriter, "conn %d coord->agent" % n))]
        self.conns.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        self.conns.difference_update(tasks)

    def partition(self):
        self.event("partition")
        self.loop.call_soon_threadsafe(self.open.clear)

    def heal(self):
        self.event("heal")
        self.loop.call_soon_threadsafe(self.open.set)

    def close(self):
        def stop():
            self.server.close()
            for t in list(self.conns):
                t.cancel()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)
        self.logf.close()


# ------------------------------------------------------------------------------ the run

class Run:
    def __init__(self, args):
        self.args = args
        self.workdir = cotest.make_workdir("cacheout-chaos-%s-" % args.label)
        url = cotest.new_database("chaos", self.workdir, args.pg_bin, args.pg_port,
                                  prefix="chaos")
        self.coord = cotest.Coordinator(
            args.coordinator, args.sql_dir, ADMIN, database_url=url, workdir=self.workdir,
            unset=cotest.UNSET + ("DB_THREADS",),
            settings={"AGENT_TOKEN": AGENT_TOKEN, "WORKER_TIMEOUT_SECONDS": str(LEASE_S),
                      "DEFAULT_STARTING_CREDITS": "100000", "COST_PER_CORE": "0.1",
                      "COST_PER_100MB_RAM": "0.001", "LOG_LEVEL": "DEBUG",
                      "FRONTEND_DIR": self.workdir})
        self.proxies = []
        self.agents = []
        self.lock = threading.Lock()
        self.jobs = {}  # job_id -> {"kind", "marker", "buyer"}
        self.faults = {}
        self.down = []  # (start, end) of coordinator or database outages
        self.coord_starts = []  # times the coordinator was started again after a kill
        self.assigned_seen = {}  # (job_id, attempts) -> first time seen assigned
        self.assigned_worst = (0.0, None)
        self.stop = threading.Event()
        self.errors = []
        self.rng = random.Random(args.seed)

    def count(self, fault, what=""):
        with self.lock:
            self.faults[fault] = self.faults.get(fault, 0) + 1
            with open(os.path.join(self.workdir, "faults.log"), "a") as f:
                f.write("%s %s %s\n" % (time.strftime("%H:%M:%S", time.gmtime()) +
                                        ".%03d" % (time.time() * 1000 % 1000), fault, what))

    def admin(self, method, path, body=None, timeout=10):
        """(status, JSON) of an admin request; (0, None) when the coordinator is not there."""
        try:
            st, doc, _ = self.coord.jreq(method, path, body=body, admin=True, timeout=timeout)
        except (OSError, http.client.HTTPException):
            return 0, None
        return st, doc

    def start(self):
        self.coord.start(timeout=60)
        for i in range(self.args.agents):
            p = Proxy(self.coord.port, os.path.join(self.workdir, "proxy-chaos-w%d.log" % i))
            self.proxies.append(p)
            wid = "chaos-w%d" % i
            a = cotest.Agent(self.args.agent, self.coord, wid, 2, 2048, token=AGENT_TOKEN,
                             owner="owner-" + wid, settings={"LOG_LEVEL": "DEBUG"},
                             workdir=self.workdir)
            a.env["COORDINATOR_URL"] = "ws://127.0.0.1:%d/ws/agent" % p.port
            self.agents.append(a)
            a.start()
        for a in self.agents:
            a.wait_connected(60)

    # -- workload
    def submit_one(self, kind, buyer):
        marker = "CHAOS-%s" % uuid.uuid4().hex[:12]
        job = {"title": "chaos-%s" % kind, "buyer_id": buyer, "required_cores": 1,
               "required_ram_mb": 64, "timeout_seconds": 60}
        if kind == "short":
            job["command"] = "echo %s" % marker
        elif kind in ("long", "cancel"):
            job["command"] = "python3 -c \"import time; print('%s'); time.sleep(%d)\"" % (
                marker, self.rng.randint(3, 8) if kind == "long" else 30)
        elif kind == "fail":
            job["command"] = "python3 -c \"import sys; print('%s'); sys.exit(3)\"" % marker
        elif kind == "oom":
            job["command"] = "python3 -c \"b = [bytearray(1 << 20) for _ in range(4096)]\""
        st, doc = self.admin("POST", "/api/v1/submit", job)
        if st != 201:  # the coordinator is down: a client would retry later
            return None
        with self.lock:
            self.jobs[doc["job_id"]] = {"kind": kind, "marker": marker, "buyer": buyer}
        return doc["job_id"]

    def workload(self):
        kinds = ["short"] * 5 + ["long"] * 3 + ["fail"] * 2 + ["oom"] + ["cancel"] * 2
        rng = random.Random(self.args.seed + 1)
        cancels = []
        while not self.stop.is_set():
            kind = rng.choice(kinds)
            jid = self.submit_one(kind, rng.choice(BUYERS))
            if jid and kind == "cancel":
                cancels.append((time.time() + rng.uniform(0.5, 6), jid))
            for due, cj in list(cancels):
                if due <= time.time():
                    st, _ = self.admin("POST", "/api/v1/jobs/%s/cancel" % cj)
                    if st in (200, 409):
                        cancels.remove((due, cj))
            self.stop.wait(rng.uniform(0.2, 0.8))
        # Cancel the ones still due so that none waits 30 s.
        for _, cj in cancels:
            for _ in range(50):
                if self.admin("POST", "/api/v1/jobs/%s/cancel" % cj)[0] in (200, 409):
                    break
                time.sleep(0.3)

    # -- sampler
    def sampler(self):
        while not self.stop.is_set():
            now = time.time()
            st, js = self.admin("GET", "/api/v1/jobs?limit=1000&status=assigned", timeout=5)
            if st == 200:
                seen = set()
                for j in js:
                    key = (j["job_id"], j.get("attempts"))
                    seen.add(key)
                    first = self.assigned_seen.setdefault(key, now)
                    d = now - first - self.downtime(first, now)
                    if self.restarted_within(first, now):
                        d -= RESTART_GRACE_S
                    if d > self.assigned_worst[0]:
                        self.assigned_worst = (d, key)
                for key in list(self.assigned_seen):
                    if key not in seen:
                        del self.assigned_seen[key]
            self.stop.wait(0.5)

    def restarted_within(self, a, b):
        with self.lock:
            return any(a <= t <= b for t in self.coord_starts)

    def downtime(self, a, b):
        with self.lock:
            spans = list(self.down)
        return sum(max(0.0, min(b, e if e else b) - max(a, s)) for s, e in spans)

    def outage(self, fn):
        with self.lock:
            self.down.append([time.time(), None])
            span = self.down[-1]
        try:
            fn()
        finally:
            with self.lock:
                span[1] = time.time()

    # -- faults
    def pg(self, action):
        script = '. "$1"; PG_DIR="$2"; PG_PORT="$3"; PG_BIN="$4"; %s' % action
        r = subprocess.run(["bash", "-c", script, "pg", self.args.pg_sh, self.args.pg_dir,
                            str(self.args.pg_port), self.args.pg_bin],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            self.errors.append("%s failed: %s" % (action, r.stdout.decode(errors="replace")))

    def restart_coordinator(self):
        self.coord.kill9()
        time.sleep(self.rng.uniform(0.2, 2))
        for _ in range(3):
            try:
                self.coord.start(timeout=60)
                return
            except CaseFailed as e:
                self.errors.append("coordinator restart: %s" % str(e)[-300:])
                self.coord.kill9()

    def agent_fault(self, i, fault, secs):
        """Kill -9 agent @i and restart it @secs later, or partition it for @secs and heal; in
        its own thread so that faults overlap."""
        try:
            if fault == "kill_agent":
                self.agents[i].kill9()
                time.sleep(secs)
                self.agents[i].start()
            else:
                self.proxies[i].partition()
                time.sleep(secs)
                self.proxies[i].heal()
        finally:
            with self.lock:
                self.busy.discard(i)

    def chaos(self):
        menu = ["kill_agent", "kill_agent", "kill_coordinator", "partition", "partition"]
        if self.args.pg_port:
            menu += ["pg_restart", "pg_halt"]
        self.busy = set()
        threads = []
        while not self.stop.wait(self.rng.uniform(0.5, 2.5)):
            fault = self.rng.choice(menu)
            if fault in ("kill_agent", "partition"):
                with self.lock:
                    free = [i for i in range(len(self.agents)) if i not in self.busy]
                    if not free:
                        continue
                    i = self.rng.choice(free)
                    self.busy.add(i)
                self.count(fault, self.agents[i].worker_id)
                # A partition sometimes outlasts the lease, so that the coordinator gives the
                # agent up.
                secs = self.rng.uniform(0.2, 3) if fault == "kill_agent" else \
                    self.rng.uniform(1, 2 * LEASE_S + 2)
                t = threading.Thread(target=self.agent_fault, args=(i, fault, secs), daemon=True)
                t.start()
                threads.append(t)
                continue
            self.count(fault)
            if fault == "kill_coordinator":
                self.outage(self.restart_coordinator)
                with self.lock:
                    self.coord_starts.append(time.time())
            elif fault == "pg_restart":
                self.outage(lambda: self.pg("pg_restart"))
            elif fault == "pg_halt":
                def halt():
                    self.pg("pg_halt")
                    time.sleep(self.rng.uniform(1, 4))
                    self.pg("pg_resume")
                self.outage(halt)
        for t in threads:
            t.join(60)

    # -- end
    def settle(self):
        for p in self.proxies:
            p.heal()
        if not self.coord.running():
            self.coord.start(timeout=60)
        for a in self.agents:
            if not a.running():
                a.start()
        for a in self.agents:
            a.wait_connected(60)
        ids = list(self.jobs)
        deadline = time.time() + self.args.settle
        js = {}
        while time.time() < deadline:
            st, lst = self.admin("GET", "/api/v1/jobs?limit=1000", timeout=20)
            if st == 200:
                js = {j["job_id"]: j for j in lst if j["job_id"] in self.jobs}
                for jid in ids:  # older than the newest 1000
                    if jid not in js:
                        st, j = self.admin("GET", "/api/v1/jobs/" + jid)
                        if st == 200:
                            js[jid] = j
                if len(js) == len(ids) and all(j["status"] in FINAL for j in js.values()):
                    break
            time.sleep(1)
        return js

    def close(self):
        self.stop.set()
        for a in self.agents:
            a.stop()
        self.coord.stop()
        for p in self.proxies:
            p.close()


def agent_holds(run, job):
    """True when the job's worker logged that it accepted this attempt and not that it ended."""
    a = next((a for a in run.agents if a.worker_id == job.get("assigned_worker")), None)
    if a is None or not a.running():
        return False
    with open(a.output, errors="replace") as f:
        text = f.read()
    tag = "job=%s attempt=%s" % (job["job_id"], job.get("attempts"))
    acc = text.rfind("job accepted " + tag)
    return acc >= 0 and text.find("job finished " + tag, acc) < 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--label", default="sqlite")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--settle", type=float, default=120)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--pg-port", type=int, default=0)
    ap.add_argument("--pg-bin", default="")
    ap.add_argument("--pg-dir", default="")
    ap.add_argument("--pg-sh", default="")
    ap.add_argument("--xfail", default="", help="comma-separated checks expected to fail")
    args = ap.parse_args()
    for k in ("coordinator", "agent", "sql_dir"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    if args.seed is None:
        args.seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 31))
    xfail = {x for x in args.xfail.split(",") if x}
    log("seed %d (CHAOS_SEED=%d replays the fault sequence), %d s of faults, store %s"
        % (args.seed, args.seed, args.duration, args.label))
    r = cotest.Runner(args.label)
    run = Run(args)
    js = {}
    try:
        if not r.case("start coordinator and %d agents behind proxies" % args.agents, run.start):
            run.close()
            return r.finish()
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (run.workload, run.sampler, run.chaos)]
        for t in threads:
            t.start()
        time.sleep(args.duration)
        run.stop.set()
        for t in threads:
            t.join(120)
        log("faults injected: " + ", ".join("%s=%d" % kv for kv in sorted(run.faults.items())))
        log("jobs submitted: %d (%s)" % (len(run.jobs), ", ".join(
            "%s=%d" % (k, sum(1 for j in run.jobs.values() if j["kind"] == k))
            for k in ("short", "long", "fail", "oom", "cancel"))))
        for e in run.errors:
            log("fault tooling: " + e)

        def settled():
            js.update(run.settle())
        r.case("every process back up, jobs settle", settled)
    except Exception as e:  # noqa: BLE001
        r.fail("run", e)
    lost, double = [], []

    def expect(name, fn):
        if name.split(":")[0] in xfail:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                print("XFAIL %s: %s: EXPECTED FAILURE (%s): %s" % (args.label, name,
                                                                  xfail_why(name), e), flush=True)
                r.passed += 1
                return
            # Faults are random: a run may not hit the bug.  Counted as passed, said loudly.
            print("XPASS %s: %s: expected to fail (%s) but passed this time; if the bug is "
                  "fixed, remove it from CHAOS_XFAIL" % (args.label, name, xfail_why(name)),
                  flush=True)
            r.passed += 1
            return
        r.case(name, fn)

    def t_lost():
        for jid, meta in run.jobs.items():
            j = js.get(jid)
            if j is None:
                lost.append("%s (%s): not listed" % (jid, meta["kind"]))
            elif j["status"] not in FINAL and not (j["status"] == "running"
                                                    and agent_holds(run, j)):
                lost.append("%s (%s): %s attempt %s on %s" % (jid, meta["kind"], j["status"],
                                                               j.get("attempts"),
                                                               j.get("assigned_worker")))
        check(not lost, "%d jobs lost, e.g. %s" % (len(lost), "; ".join(lost[:5])))

    def t_settled_once():
        bad = []
        users = set(BUYERS) | {"owner-" + a.worker_id for a in run.agents}
        rows = []
        for u in users:
            st, doc = run.admin("GET", "/api/v1/credits/%s/ledger?limit=1000" % u, timeout=30)
            if st == 200:
                rows += doc
        per = {}
        for row in rows:
            if row.get("job_id") in run.jobs and row["kind"] in ("charge", "payout", "refund"):
                k = (row["job_id"], row["kind"])
                per[k] = per.get(k, 0) + 1
        for (jid, kind), n in sorted(per.items()):
            if n > 1:
                bad.append("%s %s x%d" % (jid, kind, n))
                double.append(jid)
        check(not bad, "jobs settled more than once: %s" % "; ".join(bad[:8]))

    def t_double_result():
        with open(run.coord.output, errors="replace") as f:
            text = f.read()
        stored = {}
        for m in re.finditer(r"job finished job=(\S+) attempt=(\d+) worker=(\S+)", text):
            stored.setdefault(m.group(1), []).append("attempt %s on %s" % (m.group(2),
                                                                           m.group(3)))
        bad = ["%s: %s" % (jid, ", ".join(v)) for jid, v in stored.items() if len(v) > 1]
        double.extend(jid for jid, v in stored.items() if len(v) > 1)
        check(not bad, "jobs with two stored results: %s" % "; ".join(bad[:5]))

    def t_assigned():
        worst, key = run.assigned_worst
        log("longest time seen assigned (less outages, and less the restart grace of %d s when "
            "the coordinator restarted meanwhile): %.1f s (%s)" % (RESTART_GRACE_S, worst, key))
        check(worst <= LEASE_S + GRACE_S, "job %s attempt %s was assigned for %.1f s > lease %d s "
              "+ grace %d s" % (key[0], key[1], worst, LEASE_S, GRACE_S) if key else "")

    def t_outputs():
        bad = []
        for jid, meta in run.jobs.items():
            j = js.get(jid)
            if meta["kind"] == "short" and j and j["status"] == "completed":
                st, out = run.admin("GET", "/api/v1/jobs/%s/output" % jid, timeout=20)
                if st != 200 or meta["marker"] not in (out or {}).get("stdout", ""):
                    bad.append(jid)
        check(not bad, "%d completed jobs without their output, e.g. %s" % (len(bad), bad[:3]))

    def t_platform():
        with open(run.coord.output, errors="replace") as f:
            text = f.read()
        why = {}
        for m in re.finditer(r"job rejected by agent job=(\S+) attempt=\d+ worker=\S+ "
                             r"reason=\"([^\"]*)\"", text):
            why[m.group(1)] = re.sub(r"\d+", "N", m.group(2))
        bad = {}
        for jid, j in js.items():
            if j["status"] == "failed" and j.get("failure_reason") == "sandbox_error":
                k = why.get(jid, "no rejection logged")
                bad[k] = bad.get(k, 0) + 1
        check(not bad, "%d jobs failed as sandbox_error on healthy agents: %s" % (
            sum(bad.values()), "; ".join("%d x %s" % (n, k) for k, n in sorted(bad.items()))))

    if js:
        expect("lost: every job final or running on an agent that holds it", t_lost)
        expect("platform: no job failed as sandbox_error (the agents are healthy)", t_platform)
        expect("settled once: at most one charge, payout, refund per job", t_settled_once)
        expect("double: at most one stored result per job", t_double_result)
        expect("assigned: never longer than lease + grace", t_assigned)
        expect("outputs: every completed job's output stored", t_outputs)
        expect("invariant: credits (GET /api/v1/debug/invariant)", run.coord.invariant)
        statuses = {}
        for j in js.values():
            statuses[j["status"]] = statuses.get(j["status"], 0) + 1
        log("final states: " + ", ".join("%s=%d" % kv for kv in sorted(statuses.items())))
        outcomes = {}
        for jid, meta in run.jobs.items():
            j = js.get(jid)
            if j:
                k = "%s->%s%s" % (meta["kind"], j["status"], "/" + j["failure_reason"]
                                  if j.get("failure_reason") else "")
                outcomes[k] = outcomes.get(k, 0) + 1
        log("outcomes by kind: " + ", ".join("%s=%d" % kv for kv in sorted(outcomes.items())))
    log("lost=%d double=%d" % (len(lost), len(set(double))))
    run.close()
    reports = cotest.sanitizer_reports()
    if reports:
        r.fail("sanitizer reports", "; ".join(reports[:3]))
    return r.finish()


def xfail_why(name):
    return "an open bug named in tests/chaos/run.sh (--xfail %s)" % name.split(":")[0]


if __name__ == "__main__":
    sys.exit(main())
