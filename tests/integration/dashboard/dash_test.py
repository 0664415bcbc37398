#!/usr/bin/env python3
"""Integration tests of the dashboard WebSocket (proto/DASHBOARD.md) against the real coordinator.

The coordinator process, the WebSocket client (RFC 6455 client framing) and the case runner come
from tests/lib/cotest.py; standard library only.  A fake agent speaks cacheout.agent.v1
(proto/PROTOCOL.md) so that job output can be produced on demand.
Prints one line per case and a final "RESULT <passed> <failed>" line for run.sh.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
import cotest  # noqa: E402  (tests/lib: the coordinator test library)
from cotest import CaseFailed  # noqa: E402

ADMIN = "dash-admin-token-0123456789abcdef"
PROTO = "cacheout.dashboard.v1"
ARGS = None


def check(cond, what):
    cotest.check(cond, what, limit=600)


class Server(cotest.Coordinator):
    """A coordinator with this suite's settings; its output (and log) in coordinator.log."""

    def __init__(self, env_extra=None):
        workdir = cotest.make_workdir("cacheout-dash-")
        settings = {"DEFAULT_STARTING_CREDITS": "1000",
                    "COST_PER_CORE": "0.1", "COST_PER_100MB_RAM": "0.001",
                    "MAX_JOB_CORES": "64", "MAX_JOB_RAM_MB": "65536",
                    "WORKER_TIMEOUT_SECONDS": "60", "FRONTEND_DIR": workdir,
                    "CORS_ORIGINS": "http://localhost:5173,http://allowed.example",
                    "LOG_LEVEL": "INFO",
                    # This suite's scripted agents and registrations carry no credential: the
                    # development mode that keeps the agent routes open (the agent suite tests
                    # the credentials).
                    "OPEN_REGISTRATION": "true",
                    "ASAN_OPTIONS": os.environ.get("DASH_ASAN_OPTIONS", "detect_leaks=1")}
        settings.update(env_extra or {})
        super().__init__(ARGS.bin, ARGS.sql_dir, ADMIN, database_url=ARGS.database_url,
                         settings=settings, workdir=workdir,
                         unset=cotest.UNSET + ("DASHBOARD_QUEUE_MESSAGES",
                                               "DASHBOARD_QUEUE_BYTES",
                                               "DASHBOARD_SLOW_CLOSE_SECONDS"))

    def stop(self):
        """SIGTERM; CaseFailed unless the coordinator exits with 0 within 15 s."""
        rc = super().stop(timeout=15)
        if self.stop_timed_out:
            raise CaseFailed("coordinator did not stop on SIGTERM within 15 s")
        if rc not in (0, None):
            raise CaseFailed("coordinator exited with %d: %s" % (rc, self.log_tail(1500)))

    def req(self, method, path, body=None, admin=False, timeout=10):
        """(status, decoded JSON when the answer is an object or array, else the bytes)."""
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Length": str(len(data or b""))}
        if admin:
            h["X-Admin-Token"] = ADMIN
        st, _, raw = super().req(method, path, body=body, headers=h, timeout=timeout)
        return st, (json.loads(raw) if raw and raw[:1] in (b"{", b"[") else raw)

    def submit(self, title="dash job", buyer="dash-buyer", command="echo hi"):
        st, j = self.req("POST", "/api/v1/submit", {"title": title, "required_cores": 1,
                                                     "required_ram_mb": 100, "command": command,
                                                     "buyer_id": buyer}, admin=True)
        check(st == 201, "submit answered %s %r" % (st, j))
        return j


class WS(cotest.WebSocket):
    """A dashboard session by default."""

    def __init__(self, port, path="/ws/dashboard", proto=PROTO, headers=None, rcvbuf=None,
                 connect_timeout=5):
        super().__init__(port, path, proto, headers=headers, rcvbuf=rcvbuf,
                         connect_timeout=connect_timeout)


# API.md "Visibility and rights": the public view of a job (pending_reason only when present).
PUBLIC_JOB = {"job_id", "status", "required_cores", "required_ram_mb", "priority", "image",
              "cost", "assigned_worker", "created_at", "started_at", "completed_at"}


def public_keys(job):
    return set(job) - {"pending_reason"}


def bearer(token):
    return {"Authorization": "Bearer " + token}


def snapshot_of(ws):
    m, _ = ws.expect(lambda m: m.get("type") == "snapshot", 10, "snapshot")
    return m


class Tracker:
    """Applies DASHBOARD.md's sequence rule to a session: events must follow without gaps."""

    def __init__(self, ws):
        self.ws = ws
        self.seq = None
        self.events = []

    def take(self, m):
        if m.get("type") == "snapshot":
            self.seq = m["seq"]
        elif "seq" in m:
            check(self.seq is not None, "event before the snapshot: %r" % m)
            check(m["seq"] == self.seq + 1, "seq went from %s to %s" % (self.seq, m["seq"]))
            self.seq = m["seq"]
            self.events.append(m)
        return m

    def until(self, pred, timeout=10.0, what="event"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.ws.recv(max(0.01, deadline - time.time()))
            if m is None:
                break
            self.take(m)
            if pred(m):
                return m
        raise CaseFailed("no %s within %.0fs (last types %r)" % (
            what, timeout, [e.get("type") for e in self.events[-10:]]))


class FakeAgent:
    """A scripted agent on /ws/agent: takes every job, sends output chunks, finishes ok."""

    def __init__(self, port, worker_id="dash-agent"):
        self.ws = WS(port, "/ws/agent", "cacheout.agent.v1")
        check(self.ws.status == 101, "agent upgrade answered %s" % self.ws.status)
        self.ws.send({"v": 1, "type": "hello", "token": "", "worker_id": worker_id,
                      "cores": 8, "ram_mb": 8192, "images": ["default"]})
        m, _ = self.ws.expect(lambda m: m.get("type") == "welcome", 10, "welcome")

    def run_job(self, chunks, timeout=10.0, job_id=None):
        """Take the next job.assign (of @job_id when given: others are left unanswered), send
        @chunks as stdout, finish ok; returns the job id."""
        a, _ = self.ws.expect(lambda m: m.get("type") == "job.assign" and
                              job_id in (None, m["job_id"]), timeout, "job.assign")
        jid, att = a["job_id"], a["attempt"]
        self.ws.send({"v": 1, "type": "job.accepted", "job_id": jid, "attempt": att})
        self.ws.send({"v": 1, "type": "job.started", "job_id": jid, "attempt": att,
                      "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())})
        for i, c in enumerate(chunks):
            self.ws.send({"v": 1, "type": "job.output", "job_id": jid, "attempt": att,
                          "stream": "stdout", "seq": i, "data": c})
        self.ws.send({"v": 1, "type": "job.finished", "job_id": jid, "attempt": att,
                      "status": "ok", "exit_code": 0, "signal": None, "wall_ms": 5,
                      "cpu_ms": 1, "max_rss_kb": 1000})
        return jid

    def close(self):
        self.ws.close()


# ---------------------------------------------------------------------------------- cases

def t_handshake(srv):
    ws = WS(srv.port, proto=None)
    check(ws.status != 101, "an upgrade without the subprotocol was accepted")
    ws.close()
    ws = WS(srv.port, path="/ws/other")
    check(ws.status == 404, "wrong path answered %s" % ws.status)
    ws.close()
    ws = WS(srv.port, path="/ws/agent")
    check(ws.status == 404, "dashboard subprotocol on /ws/agent answered %s" % ws.status)
    ws.close()
    ws = WS(srv.port, headers={"Origin": "http://evil.example"})
    check(ws.status == 403, "foreign Origin answered %s" % ws.status)
    ws.close()
    ws = WS(srv.port, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    check(ws.status == 401, "a non-bearer Authorization answered %s" % ws.status)
    ws.close()
    for origin in ("http://allowed.example", "http://127.0.0.1:%d" % srv.port):
        ws = WS(srv.port, headers={"Origin": origin})
        check(ws.status == 101, "Origin %s answered %s" % (origin, ws.status))
        snapshot_of(ws)
        ws.close()


def t_snapshot(srv):
    srv.req("POST", "/api/v1/register", {"worker_id": "snap-w", "cpu_cores": 2, "ram_mb": 512})
    job = srv.submit("snapshot job")
    ws = WS(srv.port)
    check(ws.status == 101, "upgrade answered %s" % ws.status)
    s = snapshot_of(ws)
    for k in ("seq", "server_time", "session", "health", "workers", "jobs", "pricing"):
        check(k in s, "snapshot has no %r: %r" % (k, sorted(s)))
    check(s["seq"] == 0, "first snapshot seq %r" % s["seq"])
    check(s["session"] == {"admin": False, "user_id": None}, s["session"])
    check(s["health"]["status"] == "healthy" and "jobs" in s["health"], s["health"])
    st, rest_workers = srv.req("GET", "/api/v1/workers")
    check([w["worker_id"] for w in s["workers"]] == [w["worker_id"] for w in rest_workers],
          (s["workers"], rest_workers))
    # Anonymous: the public view of GET /jobs (the dashboard feed never carries code).
    st, rest_jobs = srv.req("GET", "/api/v1/jobs?limit=100")
    check(st == 200 and [j["job_id"] for j in s["jobs"]] == [j["job_id"] for j in rest_jobs],
          "snapshot jobs differ from GET /jobs")
    mine = [j for j in s["jobs"] if j["job_id"] == job["job_id"]]
    check(mine and public_keys(mine[0]) == PUBLIC_JOB, mine)
    ws.close()
    # Admin: the admin's REST view without the code.
    ws = WS(srv.port, headers={"X-Admin-Token": ADMIN})
    s = snapshot_of(ws)
    st, rest_jobs = srv.req("GET", "/api/v1/jobs?limit=100", admin=True)
    check([j["job_id"] for j in s["jobs"]] == [j["job_id"] for j in rest_jobs],
          "admin snapshot jobs differ from GET /jobs")
    mine = [j for j in s["jobs"] if j["job_id"] == job["job_id"]]
    check(mine and "code" not in mine[0] and mine[0]["title"] == "snapshot job", mine)
    check(set(mine[0]) == set(rest_jobs[[j["job_id"] for j in rest_jobs].index(
        job["job_id"])]) - {"code", "code_file"}, "job object keys differ from REST")
    check(all("owner_id" in w for w in s["workers"]), "admin snapshot lacks owner_id")
    check(s["pricing"] == {"cost_per_core": 0.1, "cost_per_100mb_ram": 0.001,
                           "mode": "flat", "price_per_core_second": 0.0001,
                           "price_per_gb_second": 0.00005, "platform_fee_percent": 0,
                           "max_job_cores": 64, "max_job_ram_mb": 65536}, s["pricing"])
    ws.close()
    # An admin session by header.
    ws = WS(srv.port, headers={"X-Admin-Token": ADMIN})
    check(snapshot_of(ws)["session"] == {"admin": True, "user_id": "admin"},
          "admin header not honoured")
    ws.close()
    # More than 100 jobs: the 100 newest, newest first.
    for i in range(101):
        srv.submit("bulk %d" % i, buyer="bulk-buyer")
    ws = WS(srv.port)
    s = snapshot_of(ws)
    check(len(s["jobs"]) == 100 and s["jobs"][0]["job_id"] == srv.req(
        "GET", "/api/v1/jobs?limit=1")[1][0]["job_id"], (len(s["jobs"]), s["jobs"][0]))
    ws.close()


def t_events(srv):
    # An admin session sees every change (the views of the others: t_views).
    ws = WS(srv.port, headers={"X-Admin-Token": ADMIN})
    tr = Tracker(ws)
    tr.take(snapshot_of(ws))
    job = srv.submit("event job", buyer="ev-buyer")
    jid = job["job_id"]
    m = tr.until(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] == jid,
                 what="job.updated for the new job")
    check(m["job"]["status"] == "pending" and "code" not in m["job"], m)
    c = tr.until(lambda m: m.get("type") == "credits.updated" and m["user_id"] == "ev-buyer",
                 what="credits.updated for the buyer")
    st, bal = srv.req("GET", "/api/v1/credits/ev-buyer", admin=True)
    check(c["credits"] == bal["credits"] and c["held"] == bal["held"], (c, bal))
    # A cancel is one more change of the same job, later in the stream.
    st, _ = srv.req("POST", "/api/v1/jobs/%s/cancel" % jid, admin=True)
    check(st == 200, "cancel answered %s" % st)
    tr.until(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] == jid and
             m["job"]["status"] == "cancelled", what="job.updated cancelled")
    # Workers: register -> worker.updated; grant -> credits.updated.
    srv.req("POST", "/api/v1/register", {"worker_id": "ev-w", "cpu_cores": 3, "ram_mb": 300})
    w = tr.until(lambda m: m.get("type") == "worker.updated" and
                 m["worker"]["worker_id"] == "ev-w", what="worker.updated")
    check(w["worker"]["cpu_cores"] == 3, w)
    srv.req("POST", "/api/v1/credits/ev-buyer/grant", {"amount": 5}, admin=True)
    tr.until(lambda m: m.get("type") == "credits.updated" and m["user_id"] == "ev-buyer" and
             m["credits"] == bal["credits"] + 0.1 + 5 + 0.001 or
             (m.get("type") == "credits.updated" and m["user_id"] == "ev-buyer" and
              m["credits"] > bal["credits"] + 4), what="credits.updated after the grant")
    seqs = [e["seq"] for e in tr.events]
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs)
    # health.updated follows the counts (at most once a second).
    tr.until(lambda m: m.get("type") == "health.updated", 5, "health.updated")
    ws.close()


def t_admin_output(srv):
    agent = FakeAgent(srv.port)
    admin = WS(srv.port, headers={"X-Admin-Token": ADMIN})
    plain = WS(srv.port)
    late = WS(srv.port)
    ta, tp, tl = Tracker(admin), Tracker(plain), Tracker(late)
    ta.take(snapshot_of(admin))
    tp.take(snapshot_of(plain))
    tl.take(snapshot_of(late))
    # "late" authenticates by message: a wrong token first, then the right one.
    late.send({"type": "auth", "token": "nope"})
    r = tl.until(lambda m: m.get("type") == "auth.result", what="auth.result")
    check(r["ok"] is False and r["admin"] is False and r["error"]["code"] == "unauthorized", r)
    late.send({"type": "auth", "token": ADMIN})
    r = tl.until(lambda m: m.get("type") == "auth.result", what="auth.result")
    check(r["ok"] is True and r["admin"] is True, r)
    # The admin view replaces the anonymous one the session got first.
    s = tl.until(lambda m: m.get("type") == "snapshot", what="snapshot after the admin token")
    check(s["session"]["admin"] is True and all("title" in j for j in s["jobs"]), s["session"])
    srv.submit("output job", command="cat x")
    text = "héllo wörld\n" * 3
    jid = agent.run_job(["line 1\n", text])
    o1 = ta.until(lambda m: m.get("type") == "job.output", what="job.output (admin)")
    check(o1["job_id"] == jid and o1["stream"] == "stdout" and o1["offset"] == 0 and
          o1["data"] == "line 1\n" and o1["bytes"] == 7, o1)
    o2 = ta.until(lambda m: m.get("type") == "job.output", what="second job.output")
    check(o2["offset"] == 7 and o2["data"] == text and o2["bytes"] == len(text.encode()), o2)
    lo = tl.until(lambda m: m.get("type") == "job.output", what="job.output after auth")
    check(lo["job_id"] == jid, lo)
    for t in (ta, tp, tl):
        t.until(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] == jid and
                m["job"]["status"] == "completed", what="job.updated completed")
    # The read-only session saw no output and no gap (its numbering skips nothing).
    check(not [e for e in tp.events if e.get("type") == "job.output"], "output leaked")
    # Output larger than a chunk arrives split at 16 KiB, in order.
    big = "x" * 40000
    srv.submit("big output", command="cat y")
    agent.run_job([big])
    got = []
    while sum(len(g["data"]) for g in got) < len(big):
        got.append(ta.until(lambda m: m.get("type") == "job.output", what="big output chunk"))
    check([g["offset"] for g in got] == [0, 16384, 32768] and
          all(g["bytes"] <= 16384 for g in got), [(g["offset"], g["bytes"]) for g in got])
    for ws in (admin, plain, late):
        ws.close()
    agent.close()


def t_bad_messages(srv):
    ws = WS(srv.port)
    snapshot_of(ws)
    ws.send_text("not json")
    m, _ = ws.expect(lambda m: m.get("type") == "error", 5, "error")
    check(m["error"]["code"] == "bad_message", m)
    ws.send({"type": "frobnicate"})
    m, _ = ws.expect(lambda m: m.get("type") == "error", 5, "error")
    check("frobnicate" in m["error"]["message"], m)
    for _ in range(8):
        ws.send_text("[]")
    try:
        ws.expect(lambda m: False, 5, "close")
    except EOFError:
        pass
    except CaseFailed:
        raise CaseFailed("10 bad messages did not close the session")
    check(ws.close_code == 1008, "closed with %r after 10 bad messages" % ws.close_code)
    ws.close()
    ws = WS(srv.port)
    snapshot_of(ws)
    ws.send_text("x" * 5000)
    try:
        ws.expect(lambda m: False, 5, "close")
    except EOFError:
        pass
    except CaseFailed:
        raise CaseFailed("a 5000-byte message did not close the session")
    check(ws.close_code == 1009, "closed with %r after a big message" % ws.close_code)
    ws.close()
    ws = WS(srv.port)
    snapshot_of(ws)
    for i in range(5):
        ws.send({"type": "auth", "token": "guess-%d" % i})
    try:
        ws.expect(lambda m: False, 5, "close")
    except EOFError:
        pass
    except CaseFailed:
        raise CaseFailed("5 rejected tokens did not close the session")
    check(ws.close_code == 1008, "closed with %r after 5 rejected tokens" % ws.close_code)
    ws.close()


def t_resync(srv):
    ws = WS(srv.port, headers={"X-Admin-Token": ADMIN})
    tr = Tracker(ws)
    tr.take(snapshot_of(ws))
    for i in range(3):
        srv.submit("resync %d" % i, buyer="rs-buyer")
    tr.until(lambda m: m.get("type") == "job.updated" and m["job"]["title"] == "resync 2",
             what="events before the resync")
    before = tr.seq
    ws.send({"type": "resync"})
    ws.send({"type": "resync"})  # a second one while the first is outstanding is ignored
    s = tr.until(lambda m: m.get("type") == "snapshot", what="snapshot after resync")
    check(s["seq"] >= before, "resync snapshot seq %s < %s" % (s["seq"], before))
    check(any(j["title"] == "resync 2" for j in s["jobs"]), "resync snapshot misses a job")
    job = srv.submit("after resync", buyer="rs-buyer")
    m = tr.until(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] ==
                 job["job_id"], what="event after the resync")
    check(m["seq"] > s["seq"], (m["seq"], s["seq"]))
    # No second snapshot came for the duplicate resync.
    extra = ws.recv(1.5)
    while extra is not None:
        tr.take(extra)
        check(extra.get("type") != "snapshot", "a duplicate resync was answered")
        extra = ws.recv(0.5)
    ws.close()


def metric(srv, name):
    st, body = srv.req("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def t_slow_consumer(args):
    srv = Server({"DASHBOARD_QUEUE_MESSAGES": "64", "DASHBOARD_QUEUE_BYTES": "1048576",
                  "DASHBOARD_SLOW_CLOSE_SECONDS": "2"}).start()
    try:
        agent = FakeAgent(srv.port)
        slow = WS(srv.port, headers={"X-Admin-Token": ADMIN}, rcvbuf=4096)
        fast = WS(srv.port, headers={"X-Admin-Token": ADMIN})
        tf = Tracker(fast)
        tf.take(snapshot_of(fast))
        check(slow.status == 101, "slow upgrade %s" % slow.status)
        chunk = "y" * 16000
        n_jobs, n_chunks = 12, 40  # ~7.7 MB of output events
        worst = 0.0
        for k in range(n_jobs):
            srv.submit("flood %d" % k, command="cat z")
            agent.run_job([chunk] * n_chunks)
            want = (k + 1) * n_chunks
            got = 0
            while got < n_chunks:
                m = tf.until(lambda m: m.get("type") == "job.output", 20, "flood output")
                got += 1
            t = time.time()
            st, _ = srv.req("GET", "/api/v1/health", timeout=5)
            worst = max(worst, time.time() - t)
            check(st == 200, "health answered %s during the flood" % st)
            del want
        check(worst < 1.0, "health took %.2fs during the flood" % worst)
        # The slow session is closed (4000) while the fast one keeps going.
        deadline = time.time() + 15
        while time.time() < deadline and metric(srv, "cacheout_dashboards_connected") != 1:
            time.sleep(0.2)
        check(metric(srv, "cacheout_dashboards_connected") == 1,
              "slow consumer still connected: %r" % metric(srv, "cacheout_dashboards_connected"))
        types = []
        try:
            while True:
                m = slow.recv(3)
                if m is None:
                    break
                types.append(m.get("type"))
        except EOFError:
            pass
        check(slow.closed, "the slow session was not closed")
        check(slow.close_code in (None, 4000, 1006), "slow session close code %r" %
              slow.close_code)
        srv.submit("after flood", command="cat z")
        agent.run_job(["done\n"])
        tf.until(lambda m: m.get("type") == "job.output" and m["data"] == "done\n", 10,
                 "output after the flood")
        check(not [e for e in tf.events if e.get("type") == "snapshot"], "fast reader resynced")
        slow.close()
        fast.close()
        agent.close()
    finally:
        srv.stop()


def t_many_sessions(srv):
    """Fifty sessions get the same events with their own numbering."""
    socks = [WS(srv.port) for _ in range(50)]
    trs = [Tracker(w) for w in socks]
    for t in trs:
        t.take(snapshot_of(t.ws))
    job = srv.submit("fan-out")
    for t in trs:
        t.until(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] ==
                job["job_id"], what="fan-out event")
    check(metric(srv, "cacheout_dashboards_connected") == 50,
          "dashboards_connected %r" % metric(srv, "cacheout_dashboards_connected"))
    for w in socks:
        w.close()
    deadline = time.time() + 5
    while time.time() < deadline and metric(srv, "cacheout_dashboards_connected") != 0:
        time.sleep(0.1)
    check(metric(srv, "cacheout_dashboards_connected") == 0, "closed sessions still counted")


def t_overload(args):
    """More job changes in one batch than a snapshot holds: a gap, then a resync."""
    srv = Server({"DASHBOARD_BATCH_MS": "1500"}).start()
    try:
        ws = WS(srv.port)
        tr = Tracker(ws)
        tr.take(snapshot_of(ws))
        ids = [srv.submit("burst %d" % i, buyer="burst-buyer")["job_id"] for i in range(130)]
        deadline = time.time() + 15
        gap = None
        while time.time() < deadline and gap is None:
            m = ws.recv(max(0.01, deadline - time.time()))
            if m is None:
                break
            if "seq" in m and m.get("type") != "snapshot" and m["seq"] > tr.seq + 1:
                gap = m
            else:
                tr.take(m)
        check(gap is not None, "no gap after a burst of 130 jobs in one batch")
        sent = [e for e in tr.events if e.get("type") == "job.updated" and
                e["job"]["job_id"] in ids[1:]]
        check(len(sent) < 100, "%d job events sent in the overloaded batch" % len(sent))
        ws.send({"type": "resync"})
        # Events before the snapshot are ignored, as DASHBOARD.md tells clients.
        s = tr.take(snapshot_of(ws))
        check(s["jobs"][0]["job_id"] == ids[-1] and len(s["jobs"]) == 100,
              "resync snapshot lacks the newest jobs")
        job = srv.submit("after burst", buyer="burst-buyer")
        tr.until(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] ==
                 job["job_id"], 10, "an event after the resync")
        ws.close()
    finally:
        srv.stop()


def mk_user(srv, uid, **kw):
    body = {"user_id": uid}
    body.update(kw)
    st, doc = srv.req("POST", "/api/v1/users", body, admin=True)
    check(st == 201, "create user %s: %s %r" % (uid, st, doc))
    return doc


def mk_key(srv, uid, scopes=("buy",)):
    st, doc = srv.req("POST", "/api/v1/users/%s/keys" % uid,
                      {"name": "dash", "scopes": list(scopes)}, admin=True)
    check(st == 201 and doc["token"].startswith("co_"), "key for %s: %s %r" % (uid, st, doc))
    return doc


def submit_as(srv, token, title, command="echo hi", priority=5):
    """Submit with a buyer's key (no buyer_id: the key's user)."""
    body = {"title": title, "required_cores": 1, "required_ram_mb": 100, "command": command,
            "parameters": {"secret": title}, "priority": priority}
    st, _, raw = cotest.Coordinator.req(srv, "POST", "/api/v1/submit", body=body,
                                        headers=bearer(token))
    j = json.loads(raw)
    check(st == 201, "submit with a key answered %s %r" % (st, j))
    return j


def auth_bearer(ws, token):
    """The dashboard's sign-in: an auth message with the key, then a resync."""
    ws.send({"type": "auth", "bearer": token})
    r, _ = ws.expect(lambda m: m.get("type") == "auth.result", 10, "auth.result")
    return r


def drain(tr, pred, what, quiet=1.0):
    """Events until @pred, then whatever follows within @quiet seconds."""
    tr.until(pred, what=what)
    while True:
        m = tr.ws.recv(quiet)
        if m is None:
            return
        tr.take(m)


def t_views(args):
    """Anonymous, buyer and admin sessions: each gets the view REST would give it."""
    srv = Server().start()
    try:
        mk_user(srv, "va")
        mk_user(srv, "vb")
        ka, kb = mk_key(srv, "va")["token"], mk_key(srv, "vb")["token"]
        srv.req("POST", "/api/v1/register", {"worker_id": "view-w", "cpu_cores": 2,
                                             "ram_mb": 512, "owner_id": "someone"})
        ja = submit_as(srv, ka, "a's job")["job_id"]
        jb = submit_as(srv, kb, "b's job")["job_id"]
        admin = WS(srv.port, headers={"X-Admin-Token": ADMIN})
        anon = WS(srv.port)
        sa = WS(srv.port, headers=bearer(ka))  # a key on the upgrade
        sb = WS(srv.port)                      # a key by message, as the dashboard does
        check(sa.status == 101, "upgrade with a key answered %s" % sa.status)
        tad, tan, ta, tb = Tracker(admin), Tracker(anon), Tracker(sa), Tracker(sb)
        full_keys = None
        # Snapshots.
        s = tad.take(snapshot_of(admin))
        full_keys = set(next(j for j in s["jobs"] if j["job_id"] == ja))
        check({"title", "command", "parameters", "buyer_id"} <= full_keys, full_keys)
        s = tan.take(snapshot_of(anon))
        check(s["session"] == {"admin": False, "user_id": None}, s["session"])
        check(all(public_keys(j) == PUBLIC_JOB for j in s["jobs"]),
              "anonymous snapshot job keys: %r" % [sorted(j) for j in s["jobs"]])
        check(s["workers"] and all("owner_id" not in w for w in s["workers"]),
              "anonymous snapshot shows owners: %r" % s["workers"])
        s = ta.take(snapshot_of(sa))
        check(s["session"] == {"admin": False, "user_id": "va"}, s["session"])
        jobs = {j["job_id"]: j for j in s["jobs"]}
        check(set(jobs[ja]) == full_keys and jobs[ja]["parameters"] == {"secret": "a's job"},
              "a's own job in a's snapshot: %r" % jobs[ja])
        check(public_keys(jobs[jb]) == PUBLIC_JOB, "b's job in a's snapshot: %r" % jobs[jb])
        check(all("owner_id" in w for w in s["workers"]), "a key's session sees owners")
        # b signs in by message on an anonymous session, then resyncs.
        tb.take(snapshot_of(sb))
        r = auth_bearer(sb, kb)
        check(r["ok"] is True and r["admin"] is False and r["user_id"] == "vb", r)
        sb.send({"type": "resync"})
        s = tb.until(lambda m: m.get("type") == "snapshot", what="snapshot after sign-in")
        check(s["session"] == {"admin": False, "user_id": "vb"}, s["session"])
        jobs = {j["job_id"]: j for j in s["jobs"]}
        check(set(jobs[jb]) == full_keys and public_keys(jobs[ja]) == PUBLIC_JOB,
              "b's snapshot: %r" % jobs)
        # Events: a new job of each buyer, their credits; a marker job last.
        na = submit_as(srv, ka, "a's second", priority=10)["job_id"]
        nb = submit_as(srv, kb, "b's second")["job_id"]
        marker = srv.submit("marker", buyer="vmarker")["job_id"]

        def is_marker(m):
            return m.get("type") == "job.updated" and m["job"]["job_id"] == marker
        for t in (tad, tan, ta, tb):
            drain(t, is_marker, "the marker job")

        def jobs_of(t, jid):
            return [e["job"] for e in t.events if e.get("type") == "job.updated" and
                    e["job"]["job_id"] == jid]

        def credits_of(t):
            return {e["user_id"] for e in t.events if e.get("type") == "credits.updated"}
        for t, name in ((tan, "anonymous"), (ta, "a"), (tb, "b")):
            for jid in (na, nb, marker):
                got = jobs_of(t, jid)
                check(got, "%s saw no event for %s" % (name, jid))
                own = (name == "a" and jid == na) or (name == "b" and jid == nb)
                for j in got:
                    if own:
                        check(set(j) == full_keys, "%s's own job event: %r" % (name, j))
                    else:
                        check(public_keys(j) == PUBLIC_JOB,
                              "%s got %s with keys %r" % (name, jid, sorted(j)))
        for e in tan.events:
            if e.get("type") == "worker.updated":
                check("owner_id" not in e["worker"], "anonymous worker event: %r" % e)
        check(credits_of(tan) == set(), "anonymous saw credits of %r" % credits_of(tan))
        check(credits_of(ta) == {"va"}, "a saw credits of %r" % credits_of(ta))
        check(credits_of(tb) == {"vb"}, "b saw credits of %r" % credits_of(tb))
        check({"va", "vb", "vmarker"} <= credits_of(tad), "admin credits %r" % credits_of(tad))
        check(all(set(j) == full_keys for jid in (na, nb, marker) for j in jobs_of(tad, jid)),
              "admin job events are not full")
        # Output: a's job streams to a and the admin only.  a's priority puts it among the first
        # jobs the agent gets (on PostgreSQL the database holds the other cases' jobs too).
        agent = FakeAgent(srv.port)
        agent.run_job(["out of x\n"], job_id=na)
        for t in (tad, ta):
            o = t.until(lambda m: m.get("type") == "job.output" and m["job_id"] == na,
                        what="a's output")
            check(o["data"] == "out of x\n", o)
        for t in (tad, tan, ta, tb):
            drain(t, lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] == na and
                  m["job"]["status"] == "completed", "a's job completed")
        outs = {name: {e["job_id"] for e in t.events if e.get("type") == "job.output"}
                for t, name in ((tad, "admin"), (tan, "anonymous"), (ta, "a"), (tb, "b"))}
        check(outs == {"admin": {na}, "anonymous": set(), "a": {na}, "b": set()},
              "job.output went to %r" % outs)
        agent.close()

        def agent_offline():
            st, ws_ = srv.req("GET", "/api/v1/workers", admin=True)
            return any(w["worker_id"] == "dash-agent" and w["status"] == "offline" for w in ws_)
        # The coordinator records the disconnection before it is stopped (a stop right after
        # an agent leaves is not what this case tests).
        cotest.wait_until(agent_offline, 10, "the agent recorded offline")
        for w in (admin, anon, sa, sb):
            w.close()
    finally:
        srv.stop()


def t_key_rejected(args):
    """Wrong keys: answered ok=false, counted against the address, which is then refused."""
    srv = Server({"AUTH_FAILURES_PER_MINUTE": "3"}).start()
    try:
        mk_user(srv, "rk")
        good = mk_key(srv, "rk")["token"]
        ws = WS(srv.port)
        tr = Tracker(ws)
        tr.take(snapshot_of(ws))
        r = auth_bearer(ws, "co_" + "x" * 43)
        check(r["ok"] is False and r["admin"] is False and r["user_id"] is None and
              r["error"]["code"] == "unauthorized", r)
        r = auth_bearer(ws, good)  # the session stays usable
        check(r["ok"] is True and r["user_id"] == "rk", r)
        r = auth_bearer(ws, "co_wrong")  # a rejected key makes the session anonymous again
        check(r["ok"] is False and r["user_id"] is None, r)
        # ... and the server sends the anonymous view at once (the client's resync is harmless).
        ws.send({"type": "resync"})
        s = tr.until(lambda m: m.get("type") == "snapshot" and m["session"]["user_id"] is None,
                     what="the anonymous snapshot after the rejected key")
        check(s["session"] == {"admin": False, "user_id": None}, s["session"])
        check(all(public_keys(j) == PUBLIC_JOB for j in s["jobs"]), "not the public view")
        # A wrong key on the upgrade: accepted as anonymous, told so, counted (3rd failure).
        up = WS(srv.port, headers=bearer("co_" + "y" * 43))
        check(up.status == 101, "upgrade with a wrong key answered %s" % up.status)
        r, _ = up.expect(lambda m: m.get("type") == "auth.result", 10, "auth.result")
        check(r["ok"] is False, r)
        s = snapshot_of(up)
        check(s["session"]["user_id"] is None, s["session"])
        up.close()
        r = auth_bearer(ws, "co_" + "z" * 43)  # 4th: over the limit of 3
        check(r["ok"] is False, r)
        r = auth_bearer(ws, good)
        check(r["ok"] is False and r["error"]["code"] == "rate_limited",
              "a blocked address was not refused: %r" % r)
        blocked = WS(srv.port)
        check(blocked.status == 429, "upgrade from a blocked address answered %s" %
              blocked.status)
        blocked.close()
        st, _, _ = cotest.Coordinator.req(srv, "GET", "/api/v1/me", headers=bearer(good))
        check(st == 429, "REST from the blocked address answered %s (not shared)" % st)
        ws.close()
    finally:
        srv.stop()


def expect_close(ws, code, what):
    """The server closes @ws with @code within 10 s."""
    try:
        ws.expect(lambda m: False, 10, "close")
    except EOFError:
        pass
    check(ws.closed and ws.close_code == code, "%s: closed=%s code=%r" % (
        what, ws.closed, ws.close_code))


def t_revoke(srv):
    """Revoking the key or disabling the user closes the session (1008); other changes don't."""
    mk_user(srv, "rv")
    k1, k2 = mk_key(srv, "rv"), mk_key(srv, "rv")
    s1 = WS(srv.port, headers=bearer(k1["token"]))
    s2 = WS(srv.port)
    check(snapshot_of(s1)["session"]["user_id"] == "rv", "key session")
    snapshot_of(s2)
    check(auth_bearer(s2, k2["token"])["ok"] is True, "second key")
    # A change of the user's limits keeps both sessions.
    st, _ = srv.req("PATCH", "/api/v1/users/rv", {"limits": {"max_pending_jobs": 5}}, admin=True)
    check(st == 200, "patch limits answered %s" % st)
    job = srv.submit("still there", buyer="rv-other")["job_id"]
    for w in (s1, s2):
        w.expect(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] == job, 10,
                 "an event after a limits change")
    # Revoking k1 closes s1 only.
    st, _ = srv.req("DELETE", "/api/v1/keys/" + k1["key_id"], admin=True)
    check(st == 204, "revoke answered %s" % st)
    expect_close(s1, 1008, "revoked key session")
    job = srv.submit("after revoke", buyer="rv-other")["job_id"]
    s2.expect(lambda m: m.get("type") == "job.updated" and m["job"]["job_id"] == job, 10,
              "s2 still open after another key was revoked")
    # Disabling the user closes s2.
    st, _ = srv.req("PATCH", "/api/v1/users/rv", {"disabled": True}, admin=True)
    check(st == 200, "disable answered %s" % st)
    expect_close(s2, 1008, "disabled user's session")
    s1.close()
    s2.close()


def t_admin_key(srv):
    """An admin user's key with the admin scope makes an admin session, as the token does."""
    mk_user(srv, "boss", is_admin=True)
    k = mk_key(srv, "boss", scopes=("admin", "buy"))["token"]
    ws = WS(srv.port)
    snapshot_of(ws)
    r = auth_bearer(ws, k)
    check(r["ok"] is True and r["admin"] is True and r["user_id"] == "boss", r)
    # Another view: the server follows the auth.result with a snapshot in it, unasked.
    s, _ = ws.expect(lambda m: m.get("type") == "snapshot", 10, "snapshot after the auth")
    check(s["session"] == {"admin": True, "user_id": "boss"}, s["session"])
    check(all("title" in j for j in s["jobs"]), "admin key session has public jobs")
    ws.close()


def t_pending_reasons(args):
    """A pending job's reason changes without the job changing: sessions get it again."""
    srv = Server().start()
    try:
        admin, anon = WS(srv.port, headers={"X-Admin-Token": ADMIN}), WS(srv.port)
        tad, tan = Tracker(admin), Tracker(anon)
        tad.take(snapshot_of(admin))
        tan.take(snapshot_of(anon))
        st, job = srv.req("POST", "/api/v1/submit", {
            "title": "needs py", "required_cores": 1, "required_ram_mb": 100,
            "command": "echo hi", "buyer_id": "pr-buyer", "image": "py"}, admin=True)
        check(st == 201, "submit answered %s %r" % (st, job))
        jid = job["job_id"]

        def reason_is(code):
            return lambda m: (m.get("type") == "job.updated" and m["job"]["job_id"] == jid and
                              (m["job"].get("pending_reason") or {}).get("code") == code)
        for tr in (tad, tan):
            tr.until(reason_is("no_agents"), what="job.updated with no_agents")
        # An agent without the image connects: nothing about the job changed, its reason did.
        agent = FakeAgent(srv.port, "pr-agent")
        for tr in (tad, tan):
            m = tr.until(reason_is("no_agent_with_image"), what="job.updated with "
                         "no_agent_with_image after the agent connected")
            check("'py'" in m["job"]["pending_reason"]["message"], m)
        agent.close()
        for tr in (tad, tan):
            tr.until(reason_is("no_agents"), what="job.updated with no_agents after it left")
        admin.close()
        anon.close()
    finally:
        srv.stop()


CASES = [
    ("handshake: subprotocol, path and Origin checked", t_handshake, True),
    ("snapshot: health, workers, 100 newest jobs, pricing, session", t_snapshot, True),
    ("events: job/credits/worker/health updates in order, seq without gaps", t_events, True),
    ("job.output only for admin sessions (header or auth message), 16 KiB chunks", t_admin_output,
     True),
    ("bad messages answered, then 1008; 1009 above 4 KiB; 5 rejected tokens close", t_bad_messages,
     True),
    ("resync: a fresh snapshot, numbering continues, duplicates ignored", t_resync, True),
    ("50 sessions each get the events; connection gauge follows", t_many_sessions, True),
    ("views: anonymous public jobs/no owners/no credits; a buyer's own jobs, credits and output "
     "only; admin everything", t_views, False),
    ("wrong keys: ok=false, counted per address (then 429, shared with REST)", t_key_rejected,
     False),
    ("revoked key / disabled user: session closed with 1008; limits change keeps it", t_revoke,
     True),
    ("admin user's admin key: admin session", t_admin_key, True),
    ("pending reasons: a job whose reason changes (an agent comes or goes) is sent again to every "
     "view", t_pending_reasons, False),
    ("slow reader dropped (4000) while a fast one keeps up and the API answers", t_slow_consumer,
     False),
    ("overload: a batch with more job changes than a snapshot holds becomes a gap, then a resync",
     t_overload, False),
]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--label", default="sqlite")
    ap.add_argument("--quick", action="store_true", help="skip the slow-consumer case")
    ARGS = ap.parse_args()
    run = cotest.Runner(ARGS.label, decimals=1, tracebacks=True)
    shared = None
    try:
        shared = Server().start()
    except CaseFailed as e:
        print("FAIL %s: coordinator: %s" % (ARGS.label, e))
        print("RESULT 0 1")
        return
    for name, fn, uses_shared in CASES:
        if ARGS.quick and fn in (t_slow_consumer, t_overload):
            continue
        run.case(name, fn, shared if uses_shared else ARGS)
    try:
        shared.stop()
        run.ok("clean shutdown with dashboards connected earlier")
    except CaseFailed as e:
        run.fail("shutdown", e)
    run.finish()


if __name__ == "__main__":
    main()
