#!/usr/bin/env python3
"""Scale-out suite: three coordinators on one real PostgreSQL, agents spread over them.

Each coordinator node is reached through a TCP proxy of this driver, as a load balancer would
be: agents connect to a node's proxy, and when a node dies its proxy is pointed at another node,
so that the agents reconnect there without being restarted (their jobs keep running).  Node C
reaches PostgreSQL through a proxy too, so that it can be partitioned from the database.

Cases (one line each, "RESULT <passed> <failed>" at the end):
- SQLite instance lock: a second coordinator on the same SQLite file refuses to start;
- three nodes up, two real agents (sandboxed jobs) on each;
- jobs submitted on any node run on agents of every node;
- a cancel on one node stops a job on another node's agent (the latency is printed);
- a dashboard on one node sees every node's job events, in order, with no gap in its sequence;
- a poll worker's POST /register on one node closes the worker's agent session on another (the
  feed), and the agent's next hello makes the poll routes answer 409;
- kill -9 of one node: its agents reconnect to another node (time printed), nothing is lost,
  nothing is charged twice, one stored result per job, the credit invariant holds;
- a partition of one node from PostgreSQL, and its recovery (it serves and sees the feed again).

Timing is printed, never asserted, except generous bounds that only catch a change that does not
arrive at all (a cancel that waits for a lease, a feed that never delivers).
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "chaos"))
import cotest  # noqa: E402
from cotest import CaseFailed, check, wait_until  # noqa: E402
from chaos_test import Proxy  # noqa: E402

ADMIN = "admin-token-of-the-scaleout-suite-0123456789"
AGENT_TOKEN = "agent-token-of-the-scaleout-suite-0123456789"
LEASE_S = 4
NODES = ("A", "B", "C")
AGENTS_PER_NODE = 2
FINAL = ("completed", "failed", "cancelled")
DASH_PROTO = "cacheout.dashboard.v1"


def log(msg):
    print("    # " + msg, flush=True)


class Balancer(Proxy):
    """A proxy whose target can be moved to another port (a load balancer's failover)."""

    def retarget(self, port):
        self.event("retarget to %d" % port)
        self.target_port = port

        def drop():
            for t in list(self.conns):
                t.cancel()
        self.loop.call_soon_threadsafe(drop)


class Cluster:
    def __init__(self, args):
        self.args = args
        self.workdir = cotest.make_workdir("cacheout-scaleout-")
        self.url = cotest.new_database("scaleout", self.workdir, args.pg_bin, args.pg_port,
                                       prefix="scaleout")
        # Node C reaches the database through a proxy (partition case).
        self.pg_proxy = Proxy(int(args.pg_port), os.path.join(self.workdir, "proxy-pg-C.log"))
        self.nodes = {}
        self.lbs = {}
        for n in NODES:
            url = self.url
            if n == "C":
                url = self.url.replace(":%s/" % args.pg_port, ":%d/" % self.pg_proxy.port)
            self.nodes[n] = cotest.Coordinator(
                args.coordinator, args.sql_dir, ADMIN, database_url=url,
                workdir=self.workdir, output="coordinator-%s.log" % n,
                unset=cotest.UNSET + ("DB_THREADS",),
                settings={"AGENT_TOKEN": AGENT_TOKEN, "WORKER_TIMEOUT_SECONDS": str(LEASE_S),
                          "DEFAULT_STARTING_CREDITS": "100000", "COST_PER_CORE": "0.1",
                          "COST_PER_100MB_RAM": "0.001", "LOG_LEVEL": "DEBUG",
                          "FRONTEND_DIR": self.workdir})
        self.agents = []  # (node it was started on, Agent)
        self.jobs = {}  # job_id -> submitting node

    def start(self):
        # One at a time: the first one migrates the database.
        for n in NODES:
            self.nodes[n].start(timeout=60)
            self.lbs[n] = Balancer(self.nodes[n].port,
                                   os.path.join(self.workdir, "proxy-node-%s.log" % n))
        for n in NODES:
            for i in range(AGENTS_PER_NODE):
                wid = "so-%s%d" % (n.lower(), i)
                a = cotest.Agent(self.args.agent, self.nodes[n], wid, 2, 2048, token=AGENT_TOKEN,
                                 owner="owner-" + wid, settings={"LOG_LEVEL": "DEBUG"},
                                 workdir=self.workdir)
                a.env["COORDINATOR_URL"] = "ws://127.0.0.1:%d/ws/agent" % self.lbs[n].port
                self.agents.append((n, a))
                a.start()
        for n, a in self.agents:
            a.wait_connected(60)

    def node_of_worker(self, wid):
        for n, a in self.agents:
            if a.worker_id == wid:
                return n
        return None

    def admin(self, node, method, path, body=None, timeout=15):
        st, doc, _ = self.nodes[node].jreq(method, path, body=body, admin=True, timeout=timeout)
        return st, doc

    def submit(self, node, command, buyer="so-buyer", title="scaleout"):
        job = {"title": title, "buyer_id": buyer, "required_cores": 1, "required_ram_mb": 64,
               "timeout_seconds": 120, "command": command}
        st, doc = self.admin(node, "POST", "/api/v1/submit", job)
        check(st == 201, "submit on %s answered %s %r" % (node, st, doc))
        self.jobs[doc["job_id"]] = node
        return doc["job_id"]

    def job(self, node, jid):
        st, doc = self.admin(node, "GET", "/api/v1/jobs/%s" % jid)
        check(st == 200, "GET job %s on %s: %s %r" % (jid, node, st, doc))
        return doc

    def wait_final(self, node, ids, timeout):
        left = set(ids)
        deadline = time.time() + timeout
        got = {}
        while left and time.time() < deadline:
            for jid in list(left):
                j = self.job(node, jid)
                if j["status"] in FINAL:
                    got[jid] = j
                    left.discard(jid)
            if left:
                time.sleep(0.2)
        check(not left, "%d jobs not final after %ds, e.g. %s" % (
            len(left), timeout, sorted(left)[:3]))
        return got

    def agent_log(self, a):
        try:
            with open(a.output, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pg_diag(self):
        """Print the database's sessions and locks (for a failure's message)."""
        sql = ("SELECT pid, application_name, state, wait_event_type, wait_event, "
               "backend_xid, now() - state_change AS since, left(query, 90) AS query "
               "FROM pg_stat_activity WHERE datname = current_database(); "
               "SELECT locktype, objid, pid, granted FROM pg_locks WHERE locktype = 'advisory'")
        psql = os.path.join(self.args.pg_bin, "psql")
        out = subprocess.run([psql, self.url, "-c", sql], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=30).stdout.decode(errors="replace")
        for line in out.splitlines():
            log("pg: " + line)

    def sql(self, stmt):
        """Run @stmt in a psql session of its own (no node's: an operator's); its output."""
        psql = os.path.join(self.args.pg_bin, "psql")
        out = subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-At", self.url, "-c", stmt],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        text = out.stdout.decode(errors="replace")
        check(out.returncode == 0, "psql %r: %s" % (stmt, text))
        return text.strip()

    def open_transaction(self, stmt):
        """A psql session left inside a transaction that ran @stmt (a write: it has an id)."""
        psql = os.path.join(self.args.pg_bin, "psql")
        p = subprocess.Popen([psql, "-v", "ON_ERROR_STOP=1", "-At", self.url],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        p.stdin.write(("BEGIN;\n%s;\n" % stmt).encode())
        p.stdin.flush()
        wait_until(lambda: self.sql("SELECT count(*) FROM pg_stat_activity WHERE state = "
                                    "'idle in transaction' AND backend_xid IS NOT NULL "
                                    "AND application_name = 'psql'") == "1", 10,
                   "the psql session inside its transaction")
        return p

    def close(self):
        self.pg_proxy.heal()
        for _, a in self.agents:
            a.stop()
        for c in self.nodes.values():
            c.stop()
        for p in list(self.lbs.values()) + [self.pg_proxy]:
            p.close()


def sleeper(secs, marker):
    return "python3 -c \"import time; print('%s'); time.sleep(%s)\"" % (marker, secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--pg-port", required=True)
    ap.add_argument("--pg-bin", required=True)
    args = ap.parse_args()
    r = cotest.Runner("scaleout")

    # ---- SQLite: one coordinator per file
    def t_sqlite_lock():
        wd = cotest.make_workdir("cacheout-scaleout-sqlite-")
        url = "sqlite:///" + os.path.join(wd, "one.db")
        first = cotest.Coordinator(args.coordinator, args.sql_dir, ADMIN, database_url=url,
                                   workdir=wd, output="first.log")
        second = cotest.Coordinator(args.coordinator, args.sql_dir, ADMIN, database_url=url,
                                    workdir=wd, output="second.log")
        try:
            first.start()
            second.spawn()
            try:
                rc = second.proc.wait(20)
            except subprocess.TimeoutExpired:
                raise CaseFailed("a second coordinator on the same SQLite file kept running")
            text = second.log_tail(4000)
            check(rc != 0, "the second coordinator exited with 0")
            check("another coordinator" in text and "one.db.lock" in text,
                  "no clear message about the instance lock: %r" % text[-600:])
            log("second coordinator refused: %s" % re.sub(r"\s+", " ", text.strip())[-220:])
            check(first.running(), "the first coordinator died")
            first.stop()
            second.start()  # the lock went with the first process
        finally:
            first.stop()
            second.stop()
    r.case("sqlite: a second coordinator on the same file refuses to start (instance lock)",
           t_sqlite_lock)

    cl = Cluster(args)
    try:
        if not r.case("three nodes on one PostgreSQL, %d agents on each" % AGENTS_PER_NODE,
                      cl.start):
            cl.close()
            return r.finish()

        # ---- jobs submitted on any node run on agents of every node
        def t_spread():
            for src in NODES:
                ids = [cl.submit(src, sleeper(2, "SPREAD-%s-%d" % (src, i)))
                       for i in range(AGENTS_PER_NODE * len(NODES) * 2)]
                t0 = time.time()
                done = cl.wait_final(src, ids, 120)
                bad = [j for j in done.values() if j["status"] != "completed"]
                check(not bad, "jobs not completed: %r" % [(j["job_id"], j["status"],
                                                             j.get("failure_reason"))
                                                            for j in bad[:3]])
                ran_on = {}
                for j in done.values():
                    n = cl.node_of_worker(j["assigned_worker"])
                    ran_on[n] = ran_on.get(n, 0) + 1
                log("%d jobs submitted on %s ran on agents of nodes %s in %.1f s" % (
                    len(ids), src, ", ".join("%s=%d" % kv for kv in sorted(ran_on.items())),
                    time.time() - t0))
                check(set(ran_on) == set(NODES),
                      "jobs submitted on %s ran only on agents of %s" % (src, sorted(ran_on)))
        r.case("jobs submitted on any node run on agents of every node", t_spread)

        # ---- a cancel on one node stops the job on another node's agent
        def t_cancel():
            lat = []
            for k in range(3):
                jid = cl.submit(NODES[k], sleeper(60, "CANCEL-%d" % k))
                wait_until(lambda: cl.job(NODES[k], jid)["status"] == "running", 60,
                           "job %s running" % jid)
                wid = cl.job(NODES[k], jid)["assigned_worker"]
                home = cl.node_of_worker(wid)
                other = [n for n in NODES if n != home][k % 2]
                agent = [a for n, a in cl.agents if a.worker_id == wid][0]
                t0 = time.time()
                st, doc = cl.admin(other, "POST", "/api/v1/jobs/%s/cancel" % jid)
                check(st == 200, "cancel on %s: %s %r" % (other, st, doc))
                pat = "job cancel job=%s" % jid
                wait_until(lambda: pat in cl.agent_log(agent), 30,
                           "agent %s told to cancel %s" % (wid, jid), interval=0.01)
                dt = time.time() - t0
                lat.append(dt)
                log("cancel on node %s reached the agent %s of node %s in %.0f ms" % (
                    other, wid, home, dt * 1000))
                wait_until(lambda: re.search(r"job finished job=%s .*status=cancelled" % jid,
                                             cl.agent_log(agent)), 30,
                           "job %s stopped on agent %s" % (jid, wid))
            log("cross-node cancel latency: max %.0f ms, mean %.0f ms (target 1 s)" % (
                max(lat) * 1000, sum(lat) / len(lat) * 1000))
            # Generous: a cancel that waited for a lease or a poll would take far longer.
            check(max(lat) < 5, "a cancel took %.1f s to reach another node's agent" % max(lat))
        r.case("a cancel on one node stops a job on another node's agent", t_cancel)

        # ---- the outbox is written by the changing transaction: any session's change counts
        def disable_from_psql(user):
            """A user made here and disabled from psql; ms until every node refused its key."""
            st, doc = cl.admin("A", "POST", "/api/v1/users", {"user_id": user})
            check(st == 201, "create user: %s %r" % (st, doc))
            st, k = cl.admin("A", "POST", "/api/v1/users/%s/keys" % user,
                             {"name": "outsider", "scopes": ["buy"]})
            check(st == 201 and k.get("token"), "key: %s %r" % (st, k))
            auth = {"Authorization": "Bearer " + k["token"]}

            def me(n):
                return cl.nodes[n].jreq("GET", "/api/v1/me", headers=auth)[0]
            for n in NODES:  # twice: the second answer comes from each node's cache
                check(me(n) == 200 and me(n) == 200, "GET /me on %s with the new key" % n)
            t0 = time.time()
            # No node makes this change: only the table's trigger writes it to the feed.
            cl.sql("UPDATE users SET disabled = 1 WHERE user_id = '%s'" % user)
            refused = {}
            while len(refused) < len(NODES) and time.time() - t0 < 10:
                for n in NODES:
                    if n not in refused and me(n) != 200:
                        refused[n] = time.time() - t0
                time.sleep(0.02)
            check(len(refused) == len(NODES), "nodes that still accept the disabled user's key "
                  "10 s later: %s" % [n for n in NODES if n not in refused])
            # Without the feed each node's cache would serve the key until its 5 s entry expired.
            check(max(refused.values()) < 4, "the change reached a node only after %.1f s: the "
                  "auth cache expired, the feed did not tell it" % max(refused.values()))
            return ", ".join("%s %.0f ms" % (n, refused[n] * 1000) for n in NODES)

        def t_outside_change():
            log("a user disabled from psql was refused by every node: %s" %
                disable_from_psql("so-outsider"))
            # Again while another session holds a transaction open (the oldest one: the rows
            # committed after it are above the feed's horizon, and must not wait for it).
            cl.sql("INSERT INTO users (user_id, credits, held, created_at, updated_at) "
                   "VALUES ('so-holder', 0, 0, 0, 0)")
            holder = cl.open_transaction("UPDATE users SET updated_at = 1 "
                                         "WHERE user_id = 'so-holder'")
            try:
                log("the same behind an open transaction: %s" % disable_from_psql("so-outsider2"))
            finally:
                holder.stdin.close()  # psql ends: the open transaction is rolled back
                holder.wait(10)
        r.case("a change made outside every node (psql) reaches all of them through the feed",
               t_outside_change)

        # ---- a dashboard on one node sees every node's events, in order, without gaps
        def t_dashboard():
            ws = cotest.WebSocket(cl.nodes["A"].port, "/ws/dashboard", DASH_PROTO)
            check(ws.status == 101, "dashboard upgrade answered %s" % ws.status)
            try:
                # The snapshot first (its rows may be newer than the first events: DASHBOARD.md),
                # then jobs submitted on the other nodes.
                snap, _ = ws.expect(lambda m: m.get("type") == "snapshot", 10, "snapshot")
                seq = snap["seq"]
                statuses = {}
                order = {"pending": 0, "assigned": 1, "running": 2, "completed": 3,
                         "failed": 3, "cancelled": 3}
                ids = [cl.submit(n, "echo DASH-%s-%d" % (n, i)) for n in ("B", "C")
                       for i in range(6)]
                want = set(ids)
                deadline = time.time() + 90
                events = 0
                while want and time.time() < deadline:
                    m = ws.recv(max(0.05, deadline - time.time()))
                    if m is None:
                        break
                    check(m.get("type") != "snapshot", "a second snapshot (a resync) came")
                    if "seq" not in m:
                        continue
                    check(m["seq"] == seq + 1, "seq went from %s to %s" % (seq, m["seq"]))
                    seq = m["seq"]
                    events += 1
                    if m.get("type") != "job.updated":
                        continue
                    for j in m.get("jobs", [m.get("job")] if m.get("job") else []):
                        jid = j.get("job_id")
                        if jid not in ids:
                            continue
                        prev = statuses.get(jid)
                        check(prev is None or order[j["status"]] >= order[prev],
                              "job %s went from %s back to %s" % (jid, prev, j["status"]))
                        statuses[jid] = j["status"]
                        if j["status"] in FINAL:
                            want.discard(jid)
                check(not want, "the dashboard on A never saw %d of the jobs of B and C final, "
                      "e.g. %s (%d events seen)" % (len(want), sorted(want)[:3], events))
                log("dashboard on A: %d events without a gap, last seq %s" % (events, seq))
            finally:
                ws.close()
        r.case("a dashboard on one node sees every node's events in order, no gaps", t_dashboard)

        # ---- kill -9 one node
        def t_kill():
            ids = [cl.submit(n, sleeper(6, "KILL-%s-%d" % (n, i))) for n in NODES
                   for i in range(3)]
            wait_until(lambda: sum(cl.job("A", j)["status"] == "running" for j in ids) >= 6, 60,
                       "jobs running")
            c_agents = [a for n, a in cl.agents if n == "C"]
            c_workers = [a.worker_id for a in c_agents]
            held = [j for j in ids if cl.job("A", j)["assigned_worker"] in c_workers]
            log("jobs running on node C's agents before the kill: %d" % len(held))
            conn = "connected to coordinator"
            before = {a.worker_id: cl.agent_log(a).count(conn) for a in c_agents}
            cl.nodes["C"].kill9()
            t0 = time.time()
            cl.lbs["C"].retarget(cl.nodes["B"].port)  # the balancer sends C's agents to B
            wait_until(lambda: all(cl.agent_log(a).count(conn) > before[a.worker_id]
                                   for a in c_agents), 60, "node C's agents connected again")
            with open(cl.nodes["B"].output, errors="replace") as f:
                text = f.read()
            for wid in c_workers:
                check("worker=%s" % wid in text, "agent %s did not reach node B" % wid)
            log("node C's agents reconnected to node B in %.1f s (target 10 s)" %
                (time.time() - t0))
            done = cl.wait_final("A", ids, 120)
            bad = [(j["job_id"], j["status"], j.get("failure_reason")) for j in done.values()
                   if j["status"] != "completed"]
            check(not bad, "jobs not completed after the kill: %r" % bad[:4])
            kept = [j for j in held if done[j]["attempts"] == 1]
            log("of the %d jobs on C's agents, %d finished on their first attempt (their "
                "results were delivered to node B)" % (len(held), len(kept)))
        r.case("kill -9 of a node: its agents reconnect elsewhere, jobs finish", t_kill)

        # ---- a worker's session moves to another node while the old one is still open
        def t_moved():
            wid = "so-a1"
            agent = [a for n, a in cl.agents if a.worker_id == wid][0]
            conn = "connected to coordinator"
            n_conn = cl.agent_log(agent).count(conn)
            pat = "agent session moved on, closing worker=%s" % wid
            n_a = open(cl.nodes["A"].output, errors="replace").read().count(pat)
            n_b = open(cl.nodes["B"].output, errors="replace").read().count(pat)
            # Another connection of the same worker (as after a reconnect through a balancer
            # that picked another node) says hello to node B.
            ws = cotest.WebSocket(cl.nodes["B"].port, "/ws/agent", "cacheout.agent.v1")
            try:
                check(ws.status == 101, "agent upgrade on B answered %s" % ws.status)
                ws.send({"v": 1, "type": "hello", "token": AGENT_TOKEN, "worker_id": wid,
                         "cores": 1, "ram_mb": 128, "images": ["default"]})
                ws.expect(lambda m: m.get("type") == "welcome", 15, "welcome from node B")
                t0 = time.time()
                wait_until(lambda: open(cl.nodes["A"].output, errors="replace").read()
                           .count(pat) > n_a, 10, "node A closing its stale session of " + wid,
                           interval=0.01)
                log("node A closed its stale session of %s %.0f ms after the hello on B "
                    "(told by the change feed)" % (wid, (time.time() - t0) * 1000))
                # The real agent comes back (to A, its balancer's node): a newer epoch, and now
                # node B's session is the stale one.
                wait_until(lambda: cl.agent_log(agent).count(conn) > n_conn, 30,
                           "agent %s reconnected" % wid)
                wait_until(lambda: open(cl.nodes["B"].output, errors="replace").read()
                           .count(pat) > n_b, 10, "node B closing its stale session of " + wid)
            finally:
                ws.close()
            agent.wait_connected(30)
            ids = [cl.submit("B", "echo AFTER-MOVE-%d" % i) for i in range(8)]
            done = cl.wait_final("B", ids, 60)
            bad = [(j["job_id"], j["status"]) for j in done.values() if j["status"] != "completed"]
            check(not bad, "jobs not completed after the move: %r" % bad[:4])
        r.case("a worker's hello on another node closes its stale session (through the feed)",
               t_moved)

        # ---- poll workers hold a worker's session too, across nodes
        def t_poll_fence():
            """A fake agent on node A holds worker so-poll; POST /register of so-poll on node B
            takes it: A closes its session (told by the feed) and B's /task claims.  The agent
            says hello to A again: B's /task, /status and /unregister are refused (409)."""
            wid = "so-poll"
            hdr = {"X-Agent-Token": AGENT_TOKEN}
            pat = "agent session moved on, closing worker=%s" % wid

            def a_log():
                with open(cl.nodes["A"].output, errors="replace") as f:
                    return f.read()

            def hello():
                ws = cotest.WebSocket(cl.nodes["A"].port, "/ws/agent", "cacheout.agent.v1")
                check(ws.status == 101, "agent upgrade on A answered %s" % ws.status)
                ws.send({"v": 1, "type": "hello", "token": AGENT_TOKEN, "worker_id": wid,
                         "cores": 4, "ram_mb": 4096, "images": ["default"]})
                ws.expect(lambda m: m.get("type") == "welcome", 15, "welcome from node A")
                return ws

            def b(method, path, body=None):
                st, doc, _ = cl.nodes["B"].jreq(method, path, body=body, headers=hdr)
                return st, doc

            ws = hello()
            try:
                n_a = a_log().count(pat)
                t0 = time.time()
                st, doc = b("POST", "/api/v1/register",
                            {"worker_id": wid, "cpu_cores": 4, "ram_mb": 4096})
                check(st == 200, "register on B: %s %r" % (st, doc))
                wait_until(lambda: a_log().count(pat) > n_a, 10,
                           "node A closing its session of %s after the register on B" % wid,
                           interval=0.01)
                log("node A closed the agent session of %s %.0f ms after POST /register on B was "
                    "sent" % (wid, (time.time() - t0) * 1000))
                try:
                    while ws.recv(10) is not None:
                        pass
                    raise CaseFailed("the fake agent's connection to A is still open")
                except EOFError:
                    pass
                # Only this worker has 3 cores (the real agents have 2).
                st, doc = cl.admin("B", "POST", "/api/v1/submit", {
                    "title": "poll-fence", "buyer_id": "so-poll-buyer", "required_cores": 3,
                    "required_ram_mb": 64, "timeout_seconds": 120, "command": "echo POLL"})
                check(st == 201, "submit on B: %s %r" % (st, doc))
                jid = doc["job_id"]
                st, task = b("GET", "/api/v1/task?worker_id=" + wid)
                check(st == 200 and task["job_id"] == jid, "task on B: %s %r" % (st, task))
                st, doc = b("POST", "/api/v1/status", {"worker_id": wid, "job_id": jid,
                                                       "status": "running", "attempt": 1})
                check(st == 200, "status on B: %s %r" % (st, doc))
                # The agent comes back to A: the worker is its session's again.
                ws = hello()
                for method, path, body in (
                        ("GET", "/api/v1/task?worker_id=" + wid, None),
                        ("POST", "/api/v1/status", {"worker_id": wid, "job_id": jid,
                                                    "status": "completed", "exit_code": 0,
                                                    "attempt": 1}),
                        ("POST", "/api/v1/unregister", {"worker_id": wid})):
                    st, doc = b(method, path, body)
                    check(st == 409 and doc["error"]["code"] == "conflict" and
                          doc["error"].get("field") == "session",
                          "%s %s on B after the hello on A: %s %r" % (method, path, st, doc))
                j = cl.job("B", jid)
                check(j["status"] != "completed", "the refused report completed the job: %r" % j)
                st, doc = cl.admin("B", "POST", "/api/v1/jobs/%s/cancel" % jid)
                check(st == 200, "cancel: %s %r" % (st, doc))
            finally:
                ws.close()
        r.case("poll workers: a register on one node takes a worker from an agent session on "
               "another; the agent's hello takes it back (409)", t_poll_fence)

        def t_restart_c():
            cl.nodes["C"].start(timeout=60)
            c_agents = [a for n, a in cl.agents if n == "C"]
            conn = "connected to coordinator"
            before = {a.worker_id: cl.agent_log(a).count(conn) for a in c_agents}
            cl.lbs["C"].retarget(cl.nodes["C"].port)
            wait_until(lambda: all(cl.agent_log(a).count(conn) > before[a.worker_id]
                                   for a in c_agents), 60, "node C's agents back on node C")
            for a in c_agents:
                a.wait_connected(30)
        r.case("the killed node starts again", t_restart_c)

        # ---- partition of node C from PostgreSQL
        def t_partition():
            before = cl.submit("C", "echo BEFORE-PARTITION")
            cl.wait_final("C", [before], 60)
            # Enough jobs for every slot of every agent: node C's agents hold some.
            slots = AGENTS_PER_NODE * len(NODES) * 2
            ids = [cl.submit(NODES[i % 2], sleeper(8, "PART-%d" % i)) for i in range(slots)]
            c_workers = [a.worker_id for n, a in cl.agents if n == "C"]
            wait_until(lambda: sum(cl.job("A", j)["status"] == "running" for j in ids) >= slots,
                       60, "every slot busy")
            on_c = [j for j in ids if cl.job("A", j)["assigned_worker"] in c_workers]
            log("jobs on node C's agents when it is cut off from the database: %d" % len(on_c))
            cl.pg_proxy.partition()
            t0 = time.time()
            # The other nodes go on meanwhile.
            more = [cl.submit("A", "echo DURING-PARTITION-%d" % i) for i in range(3)]
            cl.wait_final("A", more, 60)
            # Node C's transactions hang open (nothing closes, nothing arrives) until the server
            # ends them (idle_in_transaction_session_timeout): then its locks, the reaper's turn
            # among them, are free, and another node reaps C's workers (their heartbeats stopped).
            pat = re.compile(r"worker lease expired worker=so-c")

            def reaped():
                return any(pat.search(open(cl.nodes[n].output, errors="replace").read())
                           for n in ("A", "B"))
            try:
                wait_until(reaped, 60, "node C's workers reaped by another node during the "
                           "partition")
            except CaseFailed:
                cl.pg_diag()
                raise
            log("node C's workers reaped by another node %.1f s into the partition" %
                (time.time() - t0))
            cl.pg_proxy.heal()
            t0 = time.time()
            wait_until(lambda: cl.nodes["C"].req("GET", "/api/v1/health", timeout=5)[0] == 200,
                       60, "node C healthy again")
            after = cl.submit("C", "echo AFTER-PARTITION")
            cl.wait_final("B", [after], 60)
            log("node C served again %.1f s after the partition healed" % (time.time() - t0))
            done = cl.wait_final("B", ids + more + [after], 120)
            bad = [(j["job_id"], j["status"]) for j in done.values() if j["status"] != "completed"]
            check(not bad, "jobs not completed: %r" % bad[:4])
            log("jobs of node C's agents run again elsewhere: %d of %d" % (
                sum(done[j]["attempts"] > 1 for j in on_c), len(on_c)))
            # C's feed came back: a dashboard on C sees a job of A.
            ws = cotest.WebSocket(cl.nodes["C"].port, "/ws/dashboard", DASH_PROTO)
            try:
                ws.expect(lambda m: m.get("type") == "snapshot", 10, "snapshot")
                jid = cl.submit("A", "echo FEED-BACK")
                ws.expect(lambda m: m.get("type") == "job.updated" and jid in str(m), 30,
                          "node C's dashboard sees a job of node A")
            finally:
                ws.close()
        r.case("a node partitioned from PostgreSQL recovers", t_partition)

        # ---- money and results
        def t_settled_once():
            st, ws = cl.admin("A", "GET", "/api/v1/workers")
            check(st == 200, "workers: %s" % st)
            users = {"so-buyer"} | {w["owner_id"] for w in ws if w.get("owner_id")}
            per = {}
            for u in users:
                st, doc = cl.admin("A", "GET", "/api/v1/credits/%s/ledger?limit=1000" % u)
                if st == 404:
                    continue  # an owner is created with its first payout
                check(st == 200, "ledger of %s: %s" % (u, st))
                for row in doc:
                    if row.get("job_id") in cl.jobs and row["kind"] in ("charge", "payout",
                                                                        "refund"):
                        k = (row["job_id"], row["kind"])
                        per[k] = per.get(k, 0) + 1
            bad = ["%s %s x%d" % (j, k, n) for (j, k), n in sorted(per.items()) if n > 1]
            check(not bad, "jobs settled more than once: %s" % "; ".join(bad[:6]))
            stored = {}
            for n in NODES:
                with open(cl.nodes[n].output, errors="replace") as f:
                    for m in re.finditer(r"job finished job=(\S+) attempt=(\d+)", f.read()):
                        stored.setdefault(m.group(1), []).append(n)
            two = {j: v for j, v in stored.items() if len(v) > 1}
            check(not two, "jobs with two stored results: %r" % list(two.items())[:4])
            log("%d jobs, %d ledger rows checked, results stored once" % (len(cl.jobs),
                                                                          sum(per.values())))
        r.case("nothing charged twice, one stored result per job", t_settled_once)
        r.case("credit invariant (GET /api/v1/debug/invariant)", cl.nodes["A"].invariant)

        def t_feed_stats():
            for n in NODES:
                with open(cl.nodes[n].output, errors="replace") as f:
                    text = f.read()
                moved = len(re.findall(r"agent session moved on", text))
                log("node %s: sessions closed because their worker moved: %d" % (n, moved))
        r.case("logs read", t_feed_stats)
    finally:
        cl.close()
    reports = cotest.sanitizer_reports()
    if reports:
        r.fail("sanitizer reports", "; ".join(reports[:3]))
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
