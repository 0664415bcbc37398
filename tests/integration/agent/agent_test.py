#!/usr/bin/env python3
"""End-to-end tests of the agent protocol: real cacheout-coordinator and cacheout-agent processes
on loopback, plus a small WebSocket client that plays a misbehaving agent where a real one cannot
(a wrong hello token, the late result of a killed agent).

Each scenario starts a fresh coordinator on its own database (SQLite file, or a new PostgreSQL
database when --pg-port is given), checks the behaviour the issue asks for, and ends with the
credit invariant (GET /api/v1/debug/invariant).  Prints one line per case and a last line
"RESULT <passed> <failed>".  Standard library only.
"""
import argparse
import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

ADMIN = "admin-token-agent-suite"
AGENT_TOKEN = "agent-token-agent-suite"
LEASE_S = 3
PASSED = 0
FAILED = 0
LABEL = ""
ARGS = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def log(msg):
    print("    # " + msg, flush=True)


class CaseFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFailed(msg)


def wait_until(fn, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise CaseFailed("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


# ---------------------------------------------------------------------------------------------
# processes


class Coordinator:
    def __init__(self, workdir, database_url, port=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.database_url = database_url
        self.proc = None
        self.logpath = os.path.join(workdir, "coordinator.log")
        self.env = dict(os.environ)
        for k in ("LOG_FILE", "MAX_WORKERS", "DB_THREADS"):
            self.env.pop(k, None)
        self.env.update({
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "ADMIN_TOKEN": ADMIN,
            "AGENT_TOKEN": AGENT_TOKEN,
            "DATABASE_URL": database_url,
            "SQL_DIR": ARGS.sql_dir,
            "WORKER_TIMEOUT_SECONDS": str(LEASE_S),
            "DEFAULT_STARTING_CREDITS": "1000",
            "COST_PER_CORE": "0.1",
            "COST_PER_100MB_RAM": "0.001",
            "LOG_LEVEL": "DEBUG",
            "FRONTEND_DIR": workdir,
        })

    def start(self):
        out = open(self.logpath, "a")
        self.proc = subprocess.Popen([ARGS.coordinator], cwd=self.workdir, env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CaseFailed("coordinator exited with %s: %s" % (self.proc.returncode,
                                                                    self.tail()))
            try:
                st, _ = self.http("GET", "/api/v1/health")
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise CaseFailed("coordinator did not answer /api/v1/health: " + self.tail())

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, n=30):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def http(self, method, path, body=None, headers=None, timeout=20):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(data) if data else 0)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, raw

    def admin(self, method, path, body=None):
        return self.http(method, path, body, {"X-Admin-Token": ADMIN})

    def submit(self, **kw):
        job = {"title": kw.pop("title", "job"), "required_cores": 1, "required_ram_mb": 64,
               "command": "true", "buyer_id": "buyer"}
        job.update(kw)
        st, j = self.admin("POST", "/api/v1/submit", job)
        check(st == 201, "submit answered %s: %r" % (st, j))
        return j

    def job(self, job_id):
        st, j = self.http("GET", "/api/v1/jobs/" + job_id)
        check(st == 200, "GET job %s answered %s" % (job_id, st))
        return j

    def jobs(self, **q):
        qs = "&".join("%s=%s" % kv for kv in q.items())
        st, j = self.http("GET", "/api/v1/jobs?limit=1000" + ("&" + qs if qs else ""))
        check(st == 200, "GET jobs answered %s" % st)
        return j

    def ledger(self, user):
        st, rows = self.admin("GET", "/api/v1/credits/%s/ledger?limit=1000" % user)
        if st == 404:
            return []
        check(st == 200, "ledger of %s answered %s" % (user, st))
        return rows

    def invariant(self):
        st, body = self.admin("GET", "/api/v1/debug/invariant")
        check(st == 200, "credit invariant broken (%s): %r" % (st, body))


class Agent:
    def __init__(self, workdir, coord, worker_id, cores, ram_mb, owner=None, token=AGENT_TOKEN,
                 extra_env=None):
        self.worker_id = worker_id
        self.coord = coord
        self.root = os.path.join(workdir, "agent-" + worker_id)
        os.makedirs(self.root, exist_ok=True)
        self.logpath = os.path.join(workdir, "agent-%s.log" % worker_id)
        self.proc = None
        self.env = dict(os.environ)
        for k in ("LOG_FILE", "AGENT_BENCH_NO_SANDBOX"):
            self.env.pop(k, None)
        self.env.update({
            "COORDINATOR_URL": "ws://127.0.0.1:%d/ws/agent" % coord.port,
            "AGENT_TOKEN": token,
            "WORKER_ID": worker_id,
            "OWNER_ID": owner or ("owner-" + worker_id),
            "AGENT_CORES": str(cores),
            "AGENT_RAM_MB": str(ram_mb),
            "AGENT_WORK_ROOT": self.root,
            "LOG_LEVEL": "DEBUG",
        })
        self.env.update(extra_env or {})

    def start(self):
        out = open(self.logpath, "a")
        self.proc = subprocess.Popen([ARGS.agent], cwd=self.root, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT)
        out.close()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, n=20):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_connected(coord, worker_ids, timeout=20):
    def ok():
        st, ws = coord.http("GET", "/api/v1/workers")
        if st != 200:
            return False
        live = {w["worker_id"] for w in ws
                if w.get("status") != "offline" and w.get("connection") == "websocket"}
        return set(worker_ids) <= live
    wait_until(ok, timeout, "agents %s connected" % ",".join(worker_ids))


# ---------------------------------------------------------------------------------------------
# a minimal WebSocket client (RFC 6455) for fake agents


class WS:
    def __init__(self, port, headers=None, protocol="cacheout.agent.v1", path="/ws/agent"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
                 "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: " + protocol]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, self.rest = buf.partition(b"\r\n\r\n")
        first = head.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = first.split()
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        hdr = bytes([0x81])
        n = len(data)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + masked)

    def _read(self, n):
        while len(self.rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.rest += chunk
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def recv(self, timeout=10):
        """('text', obj) or ('close', code, reason); raises socket.timeout or EOFError."""
        self.sock.settimeout(timeout)
        msg = b""
        while True:
            b0, b1 = self._read(2)
            op = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
                return ("close", code, payload[2:].decode(errors="replace"))
            if op == 0x9:
                continue
            if op in (0x1, 0x0):
                msg += payload
                if b0 & 0x80:
                    return ("text", json.loads(msg))

    def expect(self, mtype, timeout=10, job_id=None):
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            check(left > 0, "fake agent: no %s message in %ss" % (mtype, timeout))
            try:
                m = self.recv(left)
            except socket.timeout:
                continue
            if m[0] == "close":
                raise CaseFailed("fake agent: closed (%s %s) while waiting for %s" % (m[1], m[2],
                                                                                     mtype))
            obj = m[1]
            if obj.get("type") == mtype and (job_id is None or obj.get("job_id") == job_id):
                return obj

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# helpers


def final(j):
    return j["status"] in ("completed", "failed", "cancelled")


def wait_jobs_final(coord, ids, timeout):
    def ok():
        js = [coord.job(i) for i in ids]
        return js if all(final(j) for j in js) else False
    return wait_until(ok, timeout, "%d jobs to reach a final state" % len(ids), interval=0.3)


def iso_ms(s):
    # "2026-11-29T14:20:48.857Z" -> ms since the epoch (UTC)
    import calendar
    base, _, frac = s.rstrip("Z").partition(".")
    t = time.strptime(base, "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) * 1000 + int((frac + "000")[:3])


def ledger_rows(coord, user, job_id, kind):
    return [r for r in coord.ledger(user) if r.get("job_id") == job_id and r["kind"] == kind]


def proc_with_marker(marker):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker.encode() in f.read():
                    return True
        except OSError:
            pass
    return False


class Env:
    """One scenario's processes, stopped at the end whatever happens."""

    def __init__(self, name):
        self.workdir = tempfile.mkdtemp(prefix="cacheout-agent-%s-" % name)
        self.url = new_database(name, self.workdir)
        self.coord = Coordinator(self.workdir, self.url)
        self.agents = []

    def agent(self, worker_id, cores, ram_mb, **kw):
        a = Agent(self.workdir, self.coord, worker_id, cores, ram_mb, **kw)
        self.agents.append(a)
        return a

    def close(self, keep):
        for a in self.agents:
            a.stop()
        self.coord.stop()
        if keep:
            print("    # logs and database kept in %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self):
        out = "---- coordinator log (tail)\n" + self.coord.tail()
        for a in self.agents:
            out += "---- agent %s log (tail)\n%s" % (a.worker_id, a.tail(12))
        return out


_db_counter = [0]


def new_database(name, workdir):
    _db_counter[0] += 1
    if ARGS.pg_port:
        db = "agent_%s_%d_%d" % (name, os.getpid(), _db_counter[0])
        subprocess.run([os.path.join(ARGS.pg_bin, "createdb"), "-h", "127.0.0.1", "-p",
                        str(ARGS.pg_port), "-U", "postgres", db], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return "postgresql://postgres@127.0.0.1:%d/%s" % (ARGS.pg_port, db)
    return "sqlite:///" + os.path.join(workdir, "co.db")


def case(name, pg_only=False):
    def deco(fn):
        fn.case_name = name
        fn.pg_only = pg_only
        return fn
    return deco


def pg_ctl(action):
    """Run pg_halt or pg_resume of tests/lib/pg.sh on the suite's PostgreSQL server."""
    script = '. "$1"; PG_DIR="$2"; PG_PORT="$3"; PG_BIN="$4"; %s' % action
    r = subprocess.run(["bash", "-c", script, "pg", ARGS.pg_sh, ARGS.pg_dir, str(ARGS.pg_port),
                        ARGS.pg_bin], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(r.returncode == 0, "%s failed: %s" % (action, r.stdout.decode(errors="replace")))


# ---------------------------------------------------------------------------------------------
# scenarios


README_JOB = {
    "title": "Data Processing Job",
    "description": "Process large dataset",
    "code": "print(\"Hello World\")",
    "required_cores": 2,
    "required_ram_mb": 4096,
    "priority": 1,
    "command": "python script.py",
    "parameters": {"input": "data.csv"},
    "buyer_id": "default-buyer",
}


@case("README submit example prints Hello World; credits move buyer -> owner exactly once")
def t_hello(env):
    c = env.coord
    c.start()
    a = env.agent("hello-w1", 2, 6144, owner="hello-owner")
    a.start()
    wait_connected(c, ["hello-w1"])
    st, j = c.admin("POST", "/api/v1/submit", README_JOB)
    check(st == 201, "submit answered %s: %r" % (st, j))
    jid, cost = j["job_id"], j["cost"]
    j = wait_jobs_final(c, [jid], 60)[0]
    check(j["status"] == "completed",
          "job %s ended %s/%s" % (jid, j["status"], j["failure_reason"]))
    check(j["assigned_worker"] == "hello-w1", "ran on %r" % j["assigned_worker"])
    st, out = c.admin("GET", "/api/v1/jobs/%s/output" % jid)
    check(st == 200, "output answered %s" % st)
    check(out["stdout"] == "Hello World\n", "stdout is %r" % out["stdout"])
    check(out["truncated"] is False, "output flagged truncated")
    charges = ledger_rows(c, "default-buyer", jid, "charge")
    payouts = ledger_rows(c, "hello-owner", jid, "payout")
    refunds = ledger_rows(c, "default-buyer", jid, "refund")
    check(len(charges) == 1 and len(payouts) == 1 and not refunds,
          "ledger rows charge=%d payout=%d refund=%d" % (len(charges), len(payouts), len(refunds)))
    check(abs(payouts[0]["amount"] - cost) < 1e-9, "payout %r != cost %r" % (payouts[0]["amount"],
                                                                           cost))
    st, u = c.http("GET", "/api/v1/credits/default-buyer")
    check(st == 200 and u["held"] == 0, "buyer still holds %r" % (u,))
    check(abs(u["credits"] - (1000 - cost)) < 1e-6, "buyer balance %r, want %r" % (u["credits"],
                                                                                 1000 - cost))


@case("200 jobs, mixed priorities and sizes, 3 agents: all complete, no agent over capacity, "
      "higher priority starts first")
def t_many(env):
    c = env.coord
    c.start()
    caps = {"many-a1": (1, 1024), "many-a2": (2, 2048), "many-a3": (4, 4096)}
    rnd = random.Random(42)
    ids = []
    # Submitted while no agent is connected: the cluster is full, everything queues.
    for i in range(200):
        cores = rnd.choice([1, 1, 1, 2, 2, 3])
        ram = rnd.choice([64, 128, 256])
        j = c.submit(title="many-%d" % i, required_cores=cores, required_ram_mb=ram,
                     priority=rnd.randint(1, 10), buyer_id="many-buyer",
                     command="python -c \"import time; time.sleep(0.3)\"")
        ids.append(j["job_id"])
    for wid, (cores, ram) in caps.items():
        env.agent(wid, cores, ram).start()
    over = []
    deadline = time.time() + 240
    while True:
        st, ws = c.http("GET", "/api/v1/workers")
        for w in ws if st == 200 else []:
            if w["worker_id"] in caps and (w["free_cores"] < 0 or w["free_ram_mb"] < 0):
                over.append(w)
        js = c.jobs(buyer_id="many-buyer")
        if len(js) == 200 and all(final(j) for j in js):
            break
        check(time.time() < deadline, "jobs not final after 240 s: %s" % (
            {s: sum(1 for j in js if j["status"] == s) for s in
             ("pending", "assigned", "running", "completed", "failed")}))
        time.sleep(0.25)
    check(not over, "a worker was over capacity: %r" % over[:3])
    bad = [j for j in js if j["status"] != "completed"]
    check(not bad, "%d jobs did not complete, e.g. %s %s/%s" % (
        len(bad), bad[0]["job_id"], bad[0]["status"], bad[0]["failure_reason"]) if bad else "")
    # Capacity over time, from the coordinator's own timestamps: for every worker, the jobs
    # running at any instant never need more cores or RAM than it offers.
    for wid, (cores, ram) in caps.items():
        ev = []
        for j in js:
            if j["assigned_worker"] == wid:
                ev.append((iso_ms(j["started_at"]), 1, j["required_cores"], j["required_ram_mb"]))
                ev.append((iso_ms(j["completed_at"]), 0, j["required_cores"],
                           j["required_ram_mb"]))
        ev.sort(key=lambda e: (e[0], e[1]))  # ends before starts at the same millisecond
        uc = ur = peak_c = peak_r = 0
        for _, start, jc, jr in ev:
            uc += jc if start else -jc
            ur += jr if start else -jr
            peak_c, peak_r = max(peak_c, uc), max(peak_r, ur)
        check(peak_c <= cores and peak_r <= ram,
              "%s peaked at %d cores / %d MB (offers %d / %d)" % (wid, peak_c, peak_r, cores, ram))
        log("%s ran %d jobs, peak %d/%d cores, %d/%d MB" % (wid, len(ev) // 2, peak_c, cores,
                                                            peak_r, ram))
    # The agents' own view: the use they reported in heartbeats (sampled once a second), which
    # the coordinator logs when they disconnect.
    for a in env.agents:
        a.stop()
    rx_peak = re.compile(r"agent disconnected worker=(\S+) .*agent_peak_cores=(-?\d+) "
                         r"agent_peak_ram_mb=(-?\d+)")

    def reported():
        got = {}
        with open(c.logpath, errors="replace") as f:
            for line in f:
                m = rx_peak.search(line)
                if m and m.group(1) in caps:
                    got[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return got if len(got) == len(caps) else False
    peaks = wait_until(reported, 15, "the coordinator to log the agents' disconnects")
    for wid, (cores, ram) in caps.items():
        pc, pr = peaks[wid]
        log("%s reported a peak of %d/%d cores, %d/%d MB" % (wid, pc, cores, pr, ram))
        check(pc <= cores and pr <= ram, "%s reported using %d cores / %d MB (offers %d / %d)" % (
            wid, pc, pr, cores, ram))
    # Priority: among jobs of the same size (interchangeable for the scheduler), a more urgent
    # job never starts noticeably after a less urgent one.  "Starts" is when its agent accepted
    # it (the agents' logs; close to the assignment, unlike the sandbox's start-up time, which
    # varies with the machine's load), or started_at if an agent's log does not say.
    accepted = {}
    rx = re.compile(r"^(\S+) level=\w+ job accepted job=(\S+)")
    for a in env.agents:
        with open(a.logpath, errors="replace") as f:
            for line in f:
                m = rx.match(line)
                if m:
                    accepted.setdefault(m.group(2), iso_ms(m.group(1)))
    use_accept = all(j["job_id"] in accepted for j in js)
    log("priority order judged by %s" % ("the agents' accept times" if use_accept else
                                         "started_at (no accept lines in the agents' logs)"))
    for j in js:
        j["_start"] = accepted[j["job_id"]] if use_accept else iso_ms(j["started_at"])
    inversions = []
    by_size = {}
    for j in js:
        by_size.setdefault((j["required_cores"], j["required_ram_mb"]), []).append(j)
    for group in by_size.values():
        for a in group:
            for b in group:
                if a["priority"] > b["priority"] and a["_start"] > b["_start"] + 250:
                    inversions.append((a["priority"], b["priority"]))
    check(not inversions, "%d priority inversions, e.g. %r" % (len(inversions), inversions[:3]))


@case("kill -9 an agent while it runs jobs: reassigned after the lease, finish elsewhere, "
      "charged once; the killed agent's late result is ignored")
def t_kill_agent(env):
    c = env.coord
    c.start()
    a = env.agent("kill-a", 2, 2048, owner="kill-owner-a")
    a.start()
    wait_connected(c, ["kill-a"])
    marker = "kill-%s" % uuid.uuid4().hex[:8]
    # Each attempt prints its own start time, so the output tells the attempts apart.
    ids = [c.submit(title="k%d" % i, buyer_id="kill-buyer",
                    command="python -c \"import time; print('ATTEMPT-AT', time.time(), "
                            "flush=True); time.sleep(4)\" %s" % marker)["job_id"]
           for i in range(2)]
    wait_until(lambda: all(c.job(i)["status"] == "running" for i in ids), 30, "jobs running on A")

    def first_output_stored():
        return all("ATTEMPT-AT" in c.admin("GET", "/api/v1/jobs/%s/output" % i)[1]["stdout"]
                   for i in ids)
    wait_until(first_output_stored, 20, "the first attempt's output stored")
    a.kill9()
    t_kill = time.time()
    b = env.agent("kill-b", 2, 2048, owner="kill-owner-b")
    b.start()
    js = wait_jobs_final(c, ids, 60)
    for j in js:
        check(j["status"] == "completed", "job %s ended %s/%s" % (j["job_id"], j["status"],
                                                                 j["failure_reason"]))
        check(j["assigned_worker"] == "kill-b", "job %s finished on %r" % (j["job_id"],
                                                                           j["assigned_worker"]))
        check(j["attempts"] == 2, "job %s has attempts=%r" % (j["job_id"], j["attempts"]))
    log("jobs restarted on B %s s after the kill (lease %d s)" % (
        ", ".join("%.1f" % (iso_ms(j["started_at"]) / 1000.0 - t_kill) for j in js), LEASE_S))
    for j in js:
        # Not before the lease ran out (measured from the kill, the agent's last contact).
        moved_after = iso_ms(j["started_at"]) / 1000.0 - t_kill
        check(moved_after >= LEASE_S - 0.5,
              "job %s restarted %.1fs after the kill, before the %ds lease expired" % (
                  j["job_id"], moved_after, LEASE_S))
    # The killed agent comes back under the same id and reports attempt 1 as finished.
    fake = WS(c.port, {"X-Agent-Token": AGENT_TOKEN})
    check(fake.status == 101, "fake agent upgrade answered %s" % fake.status)
    fake.send({"v": 1, "type": "hello", "token": AGENT_TOKEN, "worker_id": "kill-a",
               "owner_id": "kill-owner-a", "cores": 2, "ram_mb": 2048, "images": ["default"],
               "running": [{"job_id": i, "attempt": 1} for i in ids]})
    fake.expect("welcome")
    cancelled = {fake.expect("job.cancel")["job_id"] for _ in ids}
    check(cancelled == set(ids), "stale attempts not cancelled: %r" % cancelled)
    for i in ids:
        fake.send({"v": 1, "type": "job.output", "job_id": i, "attempt": 1, "stream": "stdout",
                   "seq": 0, "data": "LATE\n"})
        fake.send({"v": 1, "type": "job.finished", "job_id": i, "attempt": 1, "status":
                   "runtime_error", "exit_code": 1, "signal": None, "wall_ms": 1, "cpu_ms": 1,
                   "max_rss_kb": 1})
    time.sleep(1.0)
    fake.close()
    for i in ids:
        j = c.job(i)
        check(j["status"] == "completed" and j["assigned_worker"] == "kill-b",
              "late result changed job %s: %s on %s" % (i, j["status"], j["assigned_worker"]))
        st, out = c.admin("GET", "/api/v1/jobs/%s/output" % i)
        check("LATE" not in out["stdout"], "late output was stored for %s" % i)
        # Only the second attempt's output: it started after the kill.
        starts = [float(line.split()[1]) for line in out["stdout"].splitlines()
                  if line.startswith("ATTEMPT-AT ")]
        check(len(starts) == 1 and starts[0] > t_kill,
              "job %s output is not only the second attempt's: %r" % (i, out["stdout"]))
        check(len(ledger_rows(c, "kill-buyer", i, "charge")) == 1, "job %s charged twice" % i)
        check(len(ledger_rows(c, "kill-owner-b", i, "payout")) == 1, "B not paid once for %s" % i)
        check(not ledger_rows(c, "kill-owner-a", i, "payout"), "killed agent's owner paid")
    # The real agent restarted with the same id is accepted again.
    a.start()
    wait_connected(c, ["kill-a", "kill-b"])


def fake_agent(c, worker_id, running=()):
    ws = WS(c.port, {"X-Agent-Token": AGENT_TOKEN})
    check(ws.status == 101, "fake agent upgrade answered %s" % ws.status)
    ws.send({"v": 1, "type": "hello", "token": AGENT_TOKEN, "worker_id": worker_id,
             "owner_id": worker_id + "-owner", "cores": 1, "ram_mb": 1024,
             "images": ["default"], "running": list(running)})
    ws.expect("welcome")
    return ws


@case("an agent that reconnects without a job it held: the job is requeued as the next attempt "
      "(not re-sent as the same one), runs with fresh output, charged once")
def t_lost_job(env):
    c = env.coord
    c.start()
    fake = fake_agent(c, "lost-w")
    jid = c.submit(title="lost", buyer_id="lost-buyer")["job_id"]
    a = fake.expect("job.assign", job_id=jid)
    check(a["attempt"] == 1, "first assignment is attempt %r" % a["attempt"])
    fake.send({"v": 1, "type": "job.accepted", "job_id": jid, "attempt": 1})
    fake.send({"v": 1, "type": "job.started", "job_id": jid, "attempt": 1,
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())})
    fake.send({"v": 1, "type": "job.output", "job_id": jid, "attempt": 1, "stream": "stdout",
               "seq": 0, "data": "FIRST\n"})
    wait_until(lambda: "FIRST" in c.admin("GET", "/api/v1/jobs/%s/output" % jid)[1]["stdout"],
               10, "the first attempt's output stored")
    # The agent restarts (well within the lease) and no longer has the job.
    fake.close()
    fake = fake_agent(c, "lost-w", running=[])
    a = fake.expect("job.assign", job_id=jid)
    check(a["attempt"] == 2, "after the reconnect the job came back as attempt %r, want 2"
          % a["attempt"])
    j = c.job(jid)
    check(j["attempts"] == 2 and j["status"] == "assigned",
          "job is %s with attempts=%r" % (j["status"], j["attempts"]))
    # A late report of attempt 1 is ignored; attempt 2 runs and finishes.
    fake.send({"v": 1, "type": "job.output", "job_id": jid, "attempt": 1, "stream": "stdout",
               "seq": 1, "data": "LATE\n"})
    fake.send({"v": 1, "type": "job.accepted", "job_id": jid, "attempt": 2})
    fake.send({"v": 1, "type": "job.started", "job_id": jid, "attempt": 2,
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())})
    fake.send({"v": 1, "type": "job.output", "job_id": jid, "attempt": 2, "stream": "stdout",
               "seq": 0, "data": "SECOND\n"})
    fake.send({"v": 1, "type": "job.finished", "job_id": jid, "attempt": 2, "status": "ok",
               "exit_code": 0, "signal": None, "wall_ms": 5, "cpu_ms": 1, "max_rss_kb": 100})
    j = wait_jobs_final(c, [jid], 20)[0]
    check(j["status"] == "completed" and j["attempts"] == 2,
          "job ended %s with attempts=%r" % (j["status"], j["attempts"]))
    st, out = c.admin("GET", "/api/v1/jobs/%s/output" % jid)
    check(out["stdout"] == "SECOND\n", "stored output is %r, want only attempt 2's" % out["stdout"])
    check(len(ledger_rows(c, "lost-buyer", jid, "charge")) == 1, "job not charged exactly once")
    check(len(ledger_rows(c, "lost-w-owner", jid, "payout")) == 1, "owner not paid exactly once")
    fake.close()


@case("kill -9 the coordinator mid-run and restart it: agents reconnect, every job final, "
      "nothing lost or charged twice")
def t_kill_coordinator(env):
    c = env.coord
    c.start()
    agents = [env.agent("kc-a%d" % i, 2, 2048) for i in range(2)]
    for a in agents:
        a.start()
    wait_connected(c, [a.worker_id for a in agents])
    ids = [c.submit(title="kc%d" % i, buyer_id="kc-buyer",
                    command="python -c \"import time; time.sleep(1)\"")["job_id"]
           for i in range(16)]
    wait_until(lambda: sum(1 for i in ids if c.job(i)["status"] == "completed") >= 2, 60,
               "first jobs completed")
    c.kill9()
    time.sleep(1.5)
    c.start()
    js = wait_jobs_final(c, ids, 120)
    bad = [j for j in js if j["status"] != "completed"]
    check(not bad, "%d jobs not completed, e.g. %s" % (len(bad), bad[0]) if bad else "")
    for j in js:
        check(len(ledger_rows(c, "kc-buyer", j["job_id"], "charge")) == 1,
              "job %s charged %d times" % (j["job_id"],
                                           len(ledger_rows(c, "kc-buyer", j["job_id"], "charge"))))
        payouts = sum(len(ledger_rows(c, "owner-" + a.worker_id, j["job_id"], "payout"))
                      for a in agents)
        check(payouts == 1, "job %s paid out %d times" % (j["job_id"], payouts))
    wait_connected(c, [a.worker_id for a in agents])


@case("cancel a pending and a running job; a job over its timeout fails with timeout; "
      "a memory bomb fails with oom")
def t_cancel_timeout_oom(env):
    c = env.coord
    c.start()
    # Pending: no agent yet.
    p = c.submit(title="pending", buyer_id="cx-buyer")
    st, body = c.admin("POST", "/api/v1/jobs/%s/cancel" % p["job_id"])
    check(st == 200, "cancel pending answered %s: %r" % (st, body))
    j = c.job(p["job_id"])
    check(j["status"] == "cancelled", "pending job is %s" % j["status"])
    check(len(ledger_rows(c, "cx-buyer", p["job_id"], "refund")) == 1, "pending job not refunded")
    a = env.agent("cx-w1", 1, 2048)
    a.start()
    wait_connected(c, ["cx-w1"])
    marker = "cx-%s" % uuid.uuid4().hex[:8]
    r = c.submit(title="running", buyer_id="cx-buyer",
                 command="python -c \"import time; time.sleep(60)\" %s" % marker)
    wait_until(lambda: c.job(r["job_id"])["status"] == "running", 30, "job running")
    wait_until(lambda: proc_with_marker(marker), 10, "the job's process")
    st, body = c.admin("POST", "/api/v1/jobs/%s/cancel" % r["job_id"])
    check(st == 200, "cancel running answered %s: %r" % (st, body))
    check(c.job(r["job_id"])["status"] == "cancelled", "running job not cancelled")
    wait_until(lambda: not proc_with_marker(marker), 15, "the sandbox to be killed")
    # The 1-core agent is free again: the next job runs.
    n = c.submit(title="after-cancel", buyer_id="cx-buyer")
    j = wait_jobs_final(c, [n["job_id"]], 30)[0]
    check(j["status"] == "completed", "job after cancel ended %s/%s" % (j["status"],
                                                                        j["failure_reason"]))
    check(c.job(r["job_id"])["status"] == "cancelled", "cancelled job changed state")
    # Timeout.
    t = c.submit(title="timeout", buyer_id="cx-buyer", timeout_seconds=2,
                 command="python -c \"import time; time.sleep(60)\"")
    j = wait_jobs_final(c, [t["job_id"]], 40)[0]
    check(j["status"] == "failed" and j["failure_reason"] == "timeout",
          "timeout job ended %s/%s" % (j["status"], j["failure_reason"]))
    # Memory bomb.
    m = c.submit(title="oom", buyer_id="cx-buyer", required_ram_mb=64,
                 command="python -c \"b = [bytearray(1 << 20) for _ in range(4096)]\"")
    j = wait_jobs_final(c, [m["job_id"]], 60)[0]
    check(j["status"] == "failed" and j["failure_reason"] == "oom",
          "memory bomb ended %s/%s" % (j["status"], j["failure_reason"]))


@case("heartbeats keep a long job on its agent past the lease; a job too large for every "
      "worker stays pending and health counts it as unfit")
def t_lease_unfit(env):
    c = env.coord
    c.start()
    a = env.agent("lu-w1", 2, 2048)
    a.start()
    wait_connected(c, ["lu-w1"])
    big = c.submit(title="too-big", buyer_id="lu-buyer", required_cores=16)
    long = c.submit(title="long", buyer_id="lu-buyer",
                    command="python -c \"import time; time.sleep(%d)\"" % (LEASE_S + 3))
    j = wait_jobs_final(c, [long["job_id"]], 60)[0]
    check(j["status"] == "completed" and j["attempts"] == 1 and j["assigned_worker"] == "lu-w1",
          "long job ended %s after %s attempts on %s" % (j["status"], j["attempts"],
                                                         j["assigned_worker"]))
    j = c.job(big["job_id"])
    check(j["status"] == "pending" and j["attempts"] == 0, "unfit job is %s" % j["status"])
    st, h = c.http("GET", "/api/v1/health")
    check(st == 200 and h["metrics"].get("pending_unfit") == 1,
          "health pending_unfit is %r" % (h.get("metrics", {}).get("pending_unfit"),))
    st, _ = c.admin("POST", "/api/v1/jobs/%s/cancel" % big["job_id"])
    check(st == 200, "cancel of the unfit job answered %s" % st)


@case("PostgreSQL down while jobs finish: the results are kept, stored once it is back, "
      "nothing requeued or charged twice", pg_only=True)
def t_db_outage(env):
    c = env.coord
    c.start()
    a = env.agent("out-w1", 4, 4096)
    a.start()
    wait_connected(c, ["out-w1"])
    ids = [c.submit(title="out%d" % i, buyer_id="out-buyer",
                    command="python -c \"import time; time.sleep(3)\"")["job_id"]
           for i in range(3)]
    wait_until(lambda: all(c.job(i)["status"] == "running" for i in ids), 30, "jobs running")
    pg_ctl("pg_halt")
    try:
        time.sleep(LEASE_S + 2.5)  # the jobs end while the database is down
    finally:
        pg_ctl("pg_resume")
    js = wait_jobs_final(c, ids, 90)
    for j in js:
        check(j["status"] == "completed" and j["attempts"] == 1,
              "job %s ended %s/%s after %d attempts" % (j["job_id"], j["status"],
                                                       j["failure_reason"], j["attempts"]))
        check(len(ledger_rows(c, "out-buyer", j["job_id"], "charge")) == 1,
              "job %s not charged exactly once" % j["job_id"])
    wait_connected(c, ["out-w1"])


@case("an agent presenting a wrong token is refused (401 at the upgrade, 4001 after hello)")
def t_wrong_token(env):
    c = env.coord
    c.start()
    a = env.agent("bad-w1", 1, 1024, token="not-the-token",
                  extra_env={"AGENT_EXIT_ON_AUTH_ERROR": "1"})
    a.start()
    try:
        rc = a.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise CaseFailed("agent with a wrong token did not give up: " + a.tail())
    check(rc == 3, "agent exited %s, want 3 (auth error): %s" % (rc, a.tail()))
    st, ws = c.http("GET", "/api/v1/workers")
    check(all(w["worker_id"] != "bad-w1" for w in ws), "refused agent was registered")
    ws1 = WS(c.port, {"X-Agent-Token": "wrong"})
    check(ws1.status == 401, "wrong X-Agent-Token header got %s, want 401" % ws1.status)
    ws1.close()
    ws2 = WS(c.port, {"X-Agent-Token": AGENT_TOKEN})
    check(ws2.status == 101, "right header got %s" % ws2.status)
    ws2.send({"v": 1, "type": "hello", "token": "wrong", "worker_id": "bad-w2", "cores": 1,
              "ram_mb": 64})
    while True:
        try:
            m = ws2.recv(10)
        except (socket.timeout, EOFError) as e:
            raise CaseFailed("no close after a wrong hello token: %r" % e)
        if m[0] == "close":
            check(m[1] == 4001 and m[2] == "unauthorized", "closed with %s %r" % (m[1], m[2]))
            break
        check(m[1].get("type") != "welcome", "wrong hello token was welcomed")
    ws2.close()


@case("the poll API (/register, /task, /status, /unregister) completes a job")
def t_poll(env):
    c = env.coord
    c.start()
    hdr = {"X-Agent-Token": AGENT_TOKEN}
    st, w = c.http("POST", "/api/v1/register", {"worker_id": "poll-w1", "cpu_cores": 2,
                                                "ram_mb": 2048, "status": "idle",
                                                "owner_id": "poll-owner"}, hdr)
    check(st == 200, "register answered %s: %r" % (st, w))
    st, _ = c.http("GET", "/api/v1/task?worker_id=poll-w1", None, hdr)
    check(st == 204, "empty queue answered %s" % st)
    j = c.submit(title="poll", buyer_id="poll-buyer", command="echo hi")
    st, task = c.http("GET", "/api/v1/task?worker_id=poll-w1", None, hdr)
    check(st == 200 and task["job_id"] == j["job_id"], "task answered %s: %r" % (st, task))
    check(task.get("attempt") == 1, "task attempt %r" % task.get("attempt"))
    st, body = c.http("POST", "/api/v1/status", {"worker_id": "poll-w1", "job_id": j["job_id"],
                                                 "status": "running", "attempt": 1}, hdr)
    check(st == 200, "status running answered %s: %r" % (st, body))
    st, body = c.http("POST", "/api/v1/status", {"worker_id": "poll-w1", "job_id": j["job_id"],
                                                 "status": "completed", "exit_code": 0,
                                                 "stdout": "hi\n", "attempt": 1}, hdr)
    check(st == 200, "status completed answered %s: %r" % (st, body))
    jj = c.job(j["job_id"])
    check(jj["status"] == "completed", "job is %s" % jj["status"])
    st, out = c.admin("GET", "/api/v1/jobs/%s/output" % j["job_id"])
    check(out["stdout"] == "hi\n", "stdout %r" % out["stdout"])
    check(len(ledger_rows(c, "poll-owner", j["job_id"], "payout")) == 1, "owner not paid once")
    check(len(ledger_rows(c, "poll-buyer", j["job_id"], "charge")) == 1, "buyer not charged once")
    st, _ = c.http("POST", "/api/v1/unregister", {"worker_id": "poll-w1"}, hdr)
    check(st == 200, "unregister answered %s" % st)


CASES = [t_hello, t_many, t_kill_agent, t_lost_job, t_kill_coordinator, t_cancel_timeout_oom, t_lease_unfit,
         t_db_outage, t_wrong_token, t_poll]


def main():
    global ARGS, PASSED, FAILED, LABEL
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--label", default="sqlite")
    ap.add_argument("--pg-port", type=int, default=0)
    ap.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--pg-dir", default="", help="the server's directory (outage cases)")
    ap.add_argument("--pg-sh", default="", help="tests/lib/pg.sh (outage cases)")
    ap.add_argument("--only", default="")
    ARGS = ap.parse_args()
    LABEL = ARGS.label
    for fn in CASES:
        if ARGS.only and ARGS.only not in fn.__name__:
            continue
        if fn.pg_only and not (ARGS.pg_port and ARGS.pg_dir and ARGS.pg_sh):
            continue  # a database outage needs the PostgreSQL server (SQLite cannot be down)
        name = "%s: %s" % (LABEL, fn.case_name)
        env = None
        ok = False
        t0 = time.time()
        try:
            env = Env(fn.__name__[2:])
            fn(env)
            env.coord.invariant()
            PASSED += 1
            ok = True
            print("ok   - %s (%.1fs)" % (name, time.time() - t0), flush=True)
        except Exception as e:  # a failed check or anything unexpected fails the case
            FAILED += 1
            print("FAIL - %s (%.1fs): %s" % (name, time.time() - t0, e), flush=True)
            if env:
                for line in env.logs().splitlines():
                    print("    | " + line)
        finally:
            if env:
                env.close(keep=not ok or bool(os.environ.get("AGENT_SUITE_KEEP")))
    print("RESULT %d %d" % (PASSED, FAILED), flush=True)
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
