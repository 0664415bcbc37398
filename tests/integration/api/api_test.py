#!/usr/bin/env python3
"""Integration tests of cacheout-coordinator's REST API (API.md), driven over HTTP.

Starts the real binary on free loopback ports against the store given by --database-url (SQLite
when empty), runs every case, prints one line per case and a last line "RESULT <passed> <failed>".
Standard library only.
"""
import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
import cotest  # noqa: E402  (tests/lib: the coordinator test library)
from cotest import check  # noqa: E402

ADMIN = "your_admin_token"  # the original README's example token, so its curl works verbatim


class Server(cotest.Coordinator):
    """One coordinator process in its own working directory, with this suite's settings.  Its
    stdout and stderr go to stdout.log, its log (LOG_FILE) to coordinator.log."""

    def __init__(self, args, env_extra=None, workdir=None, database_url=None):
        self.args = args
        workdir = workdir or cotest.make_workdir("cacheout-api-")
        settings = {
            "DEFAULT_STARTING_CREDITS": "10",
            "COST_PER_CORE": "0.1",
            "COST_PER_100MB_RAM": "0.001",
            "WORKER_TIMEOUT_SECONDS": "60",
            "MAX_BODY_BYTES": "262144",
            "MAX_JOB_CORES": "64",
            "MAX_JOB_RAM_MB": "65536",
            "RETENTION_BATCH": "2",  # retention runs in many small transactions here
            "CORS_ORIGINS": "http://localhost:5173,http://allowed.example",
            "LOG_FILE": os.path.join(workdir, "coordinator.log"),
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
            # The original README's token is shorter than the 24 characters a production
            # ADMIN_TOKEN needs: DEBUG=true allows it (t_secure_defaults tests the refusal).
            "DEBUG": "true",
            # Many cases send wrong credentials from this one address on purpose; the throttle
            # has its own case (t_brute_force) with the default.
            "AUTH_FAILURES_PER_MINUTE": "100000",
            # Most cases here drive the poll API without a credential, as the original did: the
            # development mode that allows it.  The agent suite tests the credentials.
            "OPEN_REGISTRATION": "true",
        }
        settings.update(env_extra or {})
        db = database_url if database_url is not None else args.database_url
        super().__init__(args.bin, args.sql_dir, ADMIN, database_url=db, settings=settings,
                         workdir=workdir, output="stdout.log")

    def start(self, wait=True):
        """Start; with @wait, until health answers (200, or 503 when the database is down)."""
        return super().start(wait=wait, ready=(200, 503))


# API.md "Visibility and rights": what anonymous users and other buyers see of a job.
PUBLIC_JOB_FIELDS = {"job_id", "status", "pending_reason", "required_cores", "required_ram_mb",
                     "priority", "image", "cost", "assigned_worker", "created_at", "started_at",
                     "completed_at"}


def expect_error(st, doc, status, code, field=None):
    check(st == status, "expected %d got %d: %r" % (status, st, doc))
    check(isinstance(doc, dict) and "error" in doc, "no error object: %r" % (doc,))
    e = doc["error"]
    check(e.get("code") == code, "expected code %s got %r" % (code, e))
    check(isinstance(e.get("message"), str) and e["message"], "empty message: %r" % (e,))
    if field is not None:
        check(e.get("field") == field, "expected field %s got %r" % (field, e))


def job_body(**kw):
    b = {"title": "t", "required_cores": 1, "required_ram_mb": 100, "command": "python main.py",
         "buyer_id": "buyer-a", "code": "print(1)"}
    b.update(kw)
    return b


def micro(x):
    """Credits (JSON number) to integer micro-credits, exactly."""
    s = repr(x) if isinstance(x, float) else str(x)
    if "e" in s or "E" in s:
        from decimal import Decimal
        return int(Decimal(s) * 1000000)
    if "." in s:
        whole, frac = s.split(".")
        neg = whole.startswith("-")
        frac = (frac + "000000")[:6]
        v = abs(int(whole or "0")) * 1000000 + int(frac)
        return -v if neg else v
    return int(s) * 1000000


def cost_of(cores, ram):
    # cost = cores * 0.1 + ram / 100 * 0.001, in micro-credits (exact: 100000 and 10 micro per MB)
    return cores * 100000 + ram * 10


def invariant(srv):
    srv.invariant()
    st, doc, _ = srv.jreq("GET", "/api/v1/debug/invariant")
    check(st == 401, "invariant endpoint without admin token: %d" % st)


def register(srv, wid, cores=8, ram=16384, owner=None, headers=None):
    b = {"worker_id": wid, "cpu_cores": cores, "ram_mb": ram, "status": "idle"}
    if owner:
        b["owner_id"] = owner
    st, doc, _ = srv.jreq("POST", "/api/v1/register", b, headers=headers)
    check(st == 200, "register %s: %d %r" % (wid, st, doc))
    return doc


def submit(srv, **kw):
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(**kw), admin=True)
    check(st == 201, "submit: %d %r" % (st, doc))
    return doc


def raw_http(srv, data, read_timeout=5):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=read_timeout)
    s.sendall(data)
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            m = re.search(rb"content-length: *(\d+)", buf, re.I)
            if b"\r\n\r\n" in buf and m:
                head, _, rest = buf.partition(b"\r\n\r\n")
                if len(rest) >= int(m.group(1)):
                    break
    except socket.timeout:
        pass
    s.close()
    return buf


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- Prometheus text format check

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def parse_prometheus(text):
    """Parse the text exposition format 0.0.4 strictly; returns {name: {labels_tuple: value}}."""
    types = {}
    samples = {}
    check(text.endswith("\n"), "exposition must end with a newline")
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                check(len(parts) >= 3 and METRIC_NAME.match(parts[2]), "line %d: bad %s" %
                      (ln, parts[1]))
                if parts[1] == "TYPE":
                    check(len(parts) == 4 and parts[3] in
                          ("counter", "gauge", "histogram", "summary", "untyped"),
                          "line %d: bad type" % ln)
                    check(parts[2] not in types, "line %d: duplicate TYPE" % ln)
                    check(parts[2] not in samples, "line %d: TYPE after samples" % ln)
                    types[parts[2]] = parts[3]
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$", line)
        check(m, "line %d: not a sample: %r" % (ln, line))
        name, labels_s, value = m.group(1), m.group(3), m.group(4)
        labels = []
        if labels_s:
            pos = 0
            while pos < len(labels_s):
                lm = re.match(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"\s*(,|$)',
                              labels_s[pos:])
                check(lm, "line %d: bad labels %r" % (ln, labels_s))
                labels.append((lm.group(1), lm.group(2)))
                pos += lm.end()
        try:
            v = float(value)
        except ValueError:
            check(value in ("+Inf", "-Inf", "NaN"), "line %d: bad value %r" % (ln, value))
            v = float(value.replace("Inf", "inf"))
        samples.setdefault(name, {})
        key = tuple(sorted(labels))
        check(key not in samples[name], "line %d: duplicate sample" % ln)
        samples[name][key] = v
    # Histograms: cumulative buckets ending in +Inf equal to _count.
    for name, t in types.items():
        if t != "histogram":
            continue
        buckets = samples.get(name + "_bucket", {})
        check(buckets, "histogram %s has no buckets" % name)
        les = sorted(((float(dict(k)["le"].replace("Inf", "inf")), v) for k, v in buckets.items()))
        check(les[-1][0] == float("inf"), "histogram %s lacks +Inf" % name)
        vals = [v for _, v in les]
        check(vals == sorted(vals), "histogram %s buckets not cumulative" % name)
        check(samples.get(name + "_count", {}).get(()) == vals[-1], "histogram count mismatch")
        check(() in samples.get(name + "_sum", {}), "histogram %s lacks _sum" % name)
    return types, samples


# ---------------------------------------------------------------- scenarios

def t_health(srv):
    st, doc, hd = srv.jreq("GET", "/api/v1/health")
    check(st == 200, "status %d" % st)
    check(doc["status"] == "healthy", doc)
    for k in ("total", "idle", "busy", "offline"):
        check(isinstance(doc["workers"][k], int), "workers.%s" % k)
    for k in ("pending", "assigned", "running", "completed", "failed", "cancelled"):
        check(isinstance(doc["jobs"][k], int), "jobs.%s" % k)
    check("total_credits" in doc and "active_users" in doc, doc)
    check(isinstance(doc["metrics"]["uptime_seconds"], int), doc)
    check(doc["metrics"]["database"] in ("sqlite", "postgres"), doc)
    check(hd.get("content-type", "").startswith("application/json"), hd)


def curl(args):
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}"] + args, capture_output=True,
                       timeout=20)
    out = p.stdout.decode()
    body, _, code = out.rpartition("\n")
    return int(code), body


def t_readme_examples(srv):
    base = "http://localhost:%d" % srv.port
    code, body = curl(["-X", "POST", base + "/api/v1/submit",
                       "-H", "Content-Type: application/json",
                       "-H", "X-Admin-Token: your_admin_token",
                       "-d", '''{
    "title": "Data Processing Job",
    "description": "Process large dataset",
    "code": "print(\\"Hello World\\")",
    "required_cores": 2,
    "required_ram_mb": 4096,
    "priority": 1,
    "command": "python script.py",
    "parameters": {"input": "data.csv"},
    "buyer_id": "default-buyer"
  }'''])
    check(code == 201, "submit example: %d %s" % (code, body))
    job = json.loads(body)
    check(job["status"] == "pending" and job["title"] == "Data Processing Job", job)
    check(job["code"] == 'print("Hello World")', job)
    check(job["parameters"] == {"input": "data.csv"}, job)
    check(micro(job["cost"]) == cost_of(2, 4096), "cost %r" % job["cost"])
    check(job["priority"] == 1 and job["buyer_id"] == "default-buyer", job)
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", job["created_at"]), job)
    for k in ("job_id", "description", "status", "failure_reason", "cost", "required_cores",
              "required_ram_mb", "priority", "command", "parameters", "buyer_id",
              "assigned_worker", "image", "timeout_seconds", "attempts", "max_attempts",
              "exit_code", "usage", "created_at", "started_at", "completed_at"):
        check(k in job, "job object lacks %s" % k)
    code, body = curl(["-X", "POST", base + "/api/v1/register",
                       "-H", "Content-Type: application/json",
                       "-d", '''{
    "worker_id": "worker-001",
    "cpu_cores": 8,
    "ram_mb": 16384,
    "status": "idle"
  }'''])
    check(code == 200, "register example: %d %s" % (code, body))
    w = json.loads(body)
    check(w["worker_id"] == "worker-001" and w["cpu_cores"] == 8 and w["ram_mb"] == 16384, w)
    code, body = curl([base + "/api/v1/health"])
    check(code == 200 and json.loads(body)["status"] == "healthy", body)
    code, body = curl([base + "/api/v1/workers"])
    check(code == 200 and any(x["worker_id"] == "worker-001" for x in json.loads(body)), body)
    code, body = curl([base + "/api/v1/jobs"])
    check(code == 200 and any(x["job_id"] == job["job_id"] for x in json.loads(body)), body)
    code, body = curl([base + "/api/v1/credits/default-buyer", "-H",
                       "X-Admin-Token: your_admin_token"])
    c = json.loads(body)
    check(code == 200 and micro(c["held"]) == cost_of(2, 4096), body)
    check(micro(c["credits"]) == 10 * 1000000 - cost_of(2, 4096), body)
    code, body = curl([base + "/api/v1/task?worker_id=worker-001"])
    check(code == 200, "task: %d %s" % (code, body))
    a = json.loads(body)
    check(a["job_id"] == job["job_id"] and a["attempt"] == 1 and a["code"], a)
    code, body = curl(["-X", "POST", base + "/api/v1/status", "-H",
                       "Content-Type: application/json", "-d",
                       json.dumps({"worker_id": "worker-001", "job_id": job["job_id"],
                                   "attempt": 1, "status": "completed", "exit_code": 0,
                                   "stdout": "Hello World\n"})])
    check(code == 200 and json.loads(body)["status"] == "completed", body)
    invariant(srv)


def t_submit_auth(srv):
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body())
    expect_error(st, doc, 401, "unauthorized")
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(), headers={"X-Admin-Token": "nope"})
    expect_error(st, doc, 401, "unauthorized")
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(),
                          headers={"X-Admin-Token": ADMIN + "x"})
    expect_error(st, doc, 401, "unauthorized")


def t_admin_endpoints_auth(srv):
    j = submit(srv)
    for method, path, body in (("GET", "/api/v1/jobs/%s/output" % j["job_id"], None),
                               ("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], {}),
                               ("POST", "/api/v1/credits/buyer-a/grant", {"amount": 1}),
                               ("GET", "/api/v1/credits/buyer-a/ledger", None)):
        for hdr in ({}, {"X-Admin-Token": "wrong"}):
            st, doc, _ = srv.jreq(method, path, body, headers=hdr)
            expect_error(st, doc, 401, "unauthorized")


def t_submit_validation(srv):
    bad = [
        ({"title": None}, "title"), ({"title": ""}, "title"), ({"title": "x" * 201}, "title"),
        ({"required_cores": 0}, "required_cores"), ({"required_cores": 65}, "required_cores"),
        ({"required_cores": 1.5}, "required_cores"), ({"required_cores": "2"}, "required_cores"),
        ({"required_ram_mb": 0}, "required_ram_mb"),
        ({"required_ram_mb": 65537}, "required_ram_mb"),
        ({"priority": 0}, "priority"), ({"priority": 11}, "priority"),
        ({"command": ""}, "command"), ({"command": "python 'unterminated"}, "command"),
        ({"command": "x" * 4097}, "command"),
        ({"buyer_id": "bad id!"}, "buyer_id"), ({"buyer_id": "x" * 65}, "buyer_id"),
        ({"parameters": [1, 2]}, "parameters"), ({"description": "d" * 10001}, "description"),
        ({"code_file": "../etc/passwd"}, "code_file"), ({"code_file": "/abs"}, "code_file"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"timeout_seconds": 0}, "timeout_seconds"), ({"max_attempts": 0}, "max_attempts"),
    ]
    for over, field in bad:
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(**over), admin=True)
        expect_error(st, doc, 422, "invalid_field", field)
    for missing in ("title", "required_cores", "required_ram_mb", "command", "buyer_id"):
        b = job_body()
        del b[missing]
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", b, admin=True)
        expect_error(st, doc, 422, "invalid_field", missing)
    # Boundaries that are accepted.
    for over in ({"title": "x" * 200}, {"priority": 1}, {"priority": 10},
                 {"required_cores": 64, "required_ram_mb": 1}, {"buyer_id": "b" * 64},
                 {"title": "\u00e9" * 200}, {"command": "sh -c 'echo \"a b\"'"}):
        b = job_body(**over)
        b["buyer_id"] = over.get("buyer_id", "bound-" + uuid.uuid4().hex[:8])
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", b, admin=True)
        if st == 402:
            continue  # a big job may exceed the starting credits; the field itself was accepted
        check(st == 201, "boundary %r: %d %r" % (over, st, doc))
    # Defaults.
    d = submit(srv, buyer_id="defaults-" + uuid.uuid4().hex[:6])
    check(d["priority"] == 5 and d["image"] == "default" and d["timeout_seconds"] == 3600 and
          d["max_attempts"] == 3 and d["attempts"] == 0 and d["description"] == "", d)
    invariant(srv)


def t_bad_bodies(srv):
    h = {"X-Admin-Token": ADMIN, "Content-Type": "application/json"}
    for raw in (b"{not json", b"[1,2]", b'"str"', b'{"title":"a","title":"b"}', b"\xff\xfe",
                b'{"title": "a"', b"null"):
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", headers=h, raw=raw)
        expect_error(st, doc, 400, "bad_json")
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", headers=h, raw=b"")
    check(st in (400, 411), "empty body: %d" % st)
    # Wrong content type.
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", headers={"X-Admin-Token": ADMIN,
                                                             "Content-Type": "text/plain"},
                          raw=json.dumps(job_body()).encode())
    expect_error(st, doc, 415, "unsupported_media_type")
    st, doc, _ = srv.jreq("POST", "/api/v1/register", headers={"Content-Type": "application/xml"},
                          raw=b"<x/>")
    expect_error(st, doc, 415, "unsupported_media_type")
    # Charset parameter is fine.
    b = json.dumps(job_body(buyer_id="charset-b")).encode()
    st, doc, _ = srv.jreq("POST", "/api/v1/submit",
                          headers={"X-Admin-Token": ADMIN,
                                   "Content-Type": "application/json; charset=utf-8"}, raw=b)
    check(st == 201, "charset: %d %r" % (st, doc))
    # Oversized: announced length over MAX_BODY_BYTES is refused before the body is read.
    raw = raw_http(srv, b"POST /api/v1/submit HTTP/1.1\r\nHost: x\r\nX-Admin-Token: " +
                   ADMIN.encode() + b"\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 10000000\r\n\r\n{")
    check(status_of(raw) == 413, "oversized: %r" % raw[:200])
    check(b'"too_large"' in raw, raw[:300])
    big = json.dumps(job_body(code="x" * 300000)).encode()
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", headers=h, raw=big)
    expect_error(st, doc, 413, "too_large")
    # Missing Content-Length.
    raw = raw_http(srv, b"POST /api/v1/submit HTTP/1.1\r\nHost: x\r\nX-Admin-Token: " +
                   ADMIN.encode() + b"\r\nContent-Type: application/json\r\n\r\n{}")
    check(status_of(raw) == 411, "no content-length: %r" % raw[:200])
    check(b'"length_required"' in raw, raw[:300])
    # Chunked bodies have no Content-Length either.
    raw = raw_http(srv, b"POST /api/v1/register HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\n{}\r\n0\r\n\r\n")
    check(status_of(raw) in (411, 400), "chunked: %r" % raw[:200])
    # Garbage into every JSON endpoint: 4xx, never 5xx, server alive.
    junk = [b"{", b"{}", b'{"a":' * 50, b"[" * 3000 + b"]" * 3000, b'{"worker_id":1}',
            b'{"worker_id":"w","job_id":"j","status":"completed","exit_code":"x"}',
            b'{"amount":"1"}', b'{"amount":1e400}', b'{"amount":-1}', b'{"amount":0.0000001}',
            b'{"worker_id":"a\\u0000b","cpu_cores":1,"ram_mb":1}', b'\x00\x01\x02']
    for path in ("/api/v1/submit", "/api/v1/register", "/api/v1/unregister", "/api/v1/status",
                 "/api/v1/credits/junk-user/grant"):
        for j in junk:
            st, doc, _ = srv.jreq("POST", path, headers=h, raw=j)
            check(400 <= st < 500, "%s %r: %d %r" % (path, j[:20], st, doc))
    st, _, _ = srv.jreq("GET", "/api/v1/health")
    check(st == 200, "server alive after junk")


def t_insufficient(srv):
    buyer = "poor-" + uuid.uuid4().hex[:8]
    submit(srv, buyer_id=buyer, required_cores=40, required_ram_mb=100)  # 4.001 of 10 held
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    before = doc
    st, jobs_before, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer, admin=True)
    st, doc, _ = srv.jreq("POST", "/api/v1/submit",
                          job_body(buyer_id=buyer, required_cores=64, required_ram_mb=60000),
                          admin=True)
    expect_error(st, doc, 402, "insufficient_credits")
    st, after, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(after == before, "balance changed: %r -> %r" % (before, after))
    st, jobs_after, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer, admin=True)
    check(len(jobs_after) == len(jobs_before), "a job was stored")
    invariant(srv)


def t_jobs_list(srv):
    buyer = "lister-" + uuid.uuid4().hex[:6]
    ids = [submit(srv, buyer_id=buyer, title="j%d" % i)["job_id"] for i in range(5)]
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer, admin=True)
    check(st == 200 and [j["job_id"] for j in doc] == ids[::-1], "newest first: %r" % doc)
    check(all("code" not in j for j in doc), "code leaked in list")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&limit=2" % buyer, admin=True)
    check([j["job_id"] for j in doc] == ids[::-1][:2], doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&limit=2&offset=2" % buyer, admin=True)
    check([j["job_id"] for j in doc] == ids[::-1][2:4], doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&status=pending" % buyer, admin=True)
    check(len(doc) == 5, doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&status=completed" % buyer, admin=True)
    check(doc == [], doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?limit=1000")
    check(st == 200, st)
    for q, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"),
                     ("offset=-1", "offset"), ("status=bogus", "status"),
                     ("buyer_id=bad%20id", "buyer_id")):
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs?" + q)
        expect_error(st, doc, 422, "invalid_field", field)


def t_job_get(srv):
    j = submit(srv, buyer_id="getter")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"])
    check(st == 200 and doc["job_id"] == j["job_id"] and "code" not in doc, doc)
    check(set(doc) == PUBLIC_JOB_FIELDS, "anonymous sees the public view: %r" % sorted(doc))
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"], admin=True)
    check(st == 200 and doc["code"] == "print(1)", doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"],
                          headers={"X-Admin-Token": "wrong"})
    expect_error(st, doc, 401, "unauthorized")  # a wrong credential is refused, not ignored
    check("print(1)" not in json.dumps(doc), "wrong token must not reveal code")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/no-such-job")
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/no-such-job/output", admin=True)
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/%s/output" % j["job_id"], admin=True)
    check(st == 200 and doc["stdout"] == "" and doc["truncated"] is False, doc)


def t_cancel(srv):
    buyer = "canceller-" + uuid.uuid4().hex[:6]
    j = submit(srv, buyer_id=buyer, required_cores=2, required_ram_mb=1000)
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(micro(c["held"]) == cost_of(2, 1000), c)
    st, doc, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)
    check(st == 200 and doc["status"] == "cancelled", doc)
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(micro(c["held"]) == 0 and micro(c["credits"]) == 10000000, "refund: %r" % c)
    st, doc, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)
    expect_error(st, doc, 409, "conflict")
    st, doc, _ = srv.jreq("POST", "/api/v1/jobs/nope/cancel", admin=True)
    expect_error(st, doc, 404, "not_found")
    # Cancel with no body at all (curl -X POST without -d sends no Content-Length).
    j2 = submit(srv, buyer_id=buyer)
    raw = raw_http(srv, ("POST /api/v1/jobs/%s/cancel HTTP/1.1\r\nHost: x\r\nX-Admin-Token: %s"
                         "\r\nContent-Length: 0\r\n\r\n" % (j2["job_id"], ADMIN)).encode())
    check(status_of(raw) == 200, raw[:200])
    invariant(srv)


def drain_pending(srv):
    """Cancel every pending job so that a poll worker only sees this scenario's jobs."""
    while True:
        st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?status=pending&limit=1000")
        check(st == 200, "list pending: %d" % st)
        if not jobs:
            return
        for j in jobs:
            srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)


def t_worker_flow(srv):
    drain_pending(srv)
    wid = "flow-w-" + uuid.uuid4().hex[:6]
    owner = "seller-" + uuid.uuid4().hex[:6]
    buyer = "flow-b-" + uuid.uuid4().hex[:6]
    register(srv, wid, cores=2, ram=2048, owner=owner)
    # Nothing that fits: a 4-core job is not given to a 2-core worker.
    big = submit(srv, buyer_id=buyer, required_cores=4, required_ram_mb=100, priority=10)
    st, doc, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
    check(st == 204, "task with nothing that fits: %d %r" % (st, doc))
    j = submit(srv, buyer_id=buyer, required_cores=2, required_ram_mb=1000, code="print(2)")
    st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
    check(st == 200 and a["job_id"] == j["job_id"] and a["attempt"] == 1, a)
    check(a["code"] == "print(2)" and a["command"] == "python main.py", a)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"], admin=True)
    check(doc["status"] == "assigned" and doc["assigned_worker"] == wid, doc)
    st, ws, _ = srv.jreq("GET", "/api/v1/workers", admin=True)
    me = [w for w in ws if w["worker_id"] == wid][0]
    check(me["free_cores"] == 0 and me["running_jobs"] == 1 and me["owner_id"] == owner, me)
    check(me["connection"] == "http" and me["status"] != "offline", me)
    # Full: next poll gets nothing.
    st, _, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
    check(st == 204, "full worker: %d" % st)
    # Wrong worker and stale attempt are refused.
    register(srv, "other-" + wid)
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": "other-" + wid,
                                                     "job_id": j["job_id"], "status": "running",
                                                     "attempt": 1})
    expect_error(st, doc, 409, "conflict")
    # The attempt is required: a report cannot be fenced without it.
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "running"})
    expect_error(st, doc, 422, "invalid_field", "attempt")
    # A stale attempt's output is not stored.
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "running", "attempt": 2,
                                                     "stdout": "stale output\n"})
    expect_error(st, doc, 409, "conflict")
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "running", "attempt": 7})
    expect_error(st, doc, 409, "conflict")
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "running", "attempt": 1})
    check(st == 200 and doc["status"] == "running" and doc["started_at"], doc)
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "bogus", "attempt": 1})
    expect_error(st, doc, 422, "invalid_field", "status")
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {
        "worker_id": wid, "job_id": j["job_id"], "status": "completed", "exit_code": 0,
        "stdout": "out \u00e9\n", "stderr": "warn\n", "attempt": 1,
        "usage": {"wall_ms": 120, "cpu_ms": 100, "max_rss_kb": 2048}})
    check(st == 200 and doc["status"] == "completed" and doc["exit_code"] == 0, doc)
    check(doc["usage"] == {"wall_ms": 120, "cpu_ms": 100, "max_rss_kb": 2048}, doc)
    check(doc["completed_at"] and doc["failure_reason"] is None, doc)
    st, out, _ = srv.jreq("GET", "/api/v1/jobs/%s/output" % j["job_id"], admin=True)
    check(out["stdout"] == "out \u00e9\n" and out["stderr"] == "warn\n", out)
    # Settlement: the buyer paid, the owner earned.
    st, b, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    cost = cost_of(2, 1000)
    check(micro(b["credits"]) == 10000000 - cost - cost_of(4, 100), b)
    check(micro(b["held"]) == cost_of(4, 100), b)
    st, o, _ = srv.jreq("GET", "/api/v1/credits/" + owner, admin=True)
    check(st == 200 and micro(o["credits"]) >= cost, o)
    # Finishing twice changes nothing.
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "failed", "exit_code": 1,
                                                     "attempt": 1})
    check(st in (200, 409), "second finish: %d %r" % (st, doc))
    st, b2, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(b2 == b, "second finish moved money")
    st, led, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger" % buyer, admin=True)
    check(st == 200 and isinstance(led, list) and len(led) >= 2, led)
    check(all(k in led[0] for k in ("kind", "amount", "job_id", "created_at")), led)
    # Failed with an exit code: charged.  Failed because the sandbox could not start: refunded.
    big_c = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % big["job_id"], admin=True)
    check(big_c[0] == 200, big_c)
    for reason, charged in ((None, True), ("sandbox_error", False)):
        j3 = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=100)
        st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
        check(st == 200 and a["job_id"] == j3["job_id"], a)
        st, before, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
        body = {"worker_id": wid, "job_id": j3["job_id"], "status": "failed", "exit_code": 3,
                "attempt": a["attempt"]}
        if reason:
            body["failure_reason"] = reason
        st, doc, _ = srv.jreq("POST", "/api/v1/status", body)
        check(st == 200 and doc["status"] == "failed", doc)
        check(doc["failure_reason"] == (reason or "exit_code"), doc)
        st, after, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
        refunded = micro(after["credits"]) - micro(before["credits"])
        check(refunded == (0 if charged else cost_of(1, 100)),
              "reason %s: credits %r -> %r" % (reason, before, after))
        check(micro(after["held"]) == 0, after)
    # Unregister gives assigned jobs back to the queue.
    j4 = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=100)
    st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
    check(st == 200 and a["job_id"] == j4["job_id"], a)
    st, doc, _ = srv.jreq("POST", "/api/v1/unregister", {"worker_id": wid})
    check(st == 200 and j4["job_id"] in doc["released_jobs"], doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j4["job_id"], admin=True)
    check(doc["status"] == "pending" and doc["assigned_worker"] is None, doc)
    st, ws, _ = srv.jreq("GET", "/api/v1/workers")
    me = [w for w in ws if w["worker_id"] == wid][0]
    check(me["status"] == "offline", me)
    srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j4["job_id"], admin=True)
    invariant(srv)


def t_worker_errors(srv):
    st, doc, _ = srv.jreq("GET", "/api/v1/task?worker_id=ghost")
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("GET", "/api/v1/task")
    expect_error(st, doc, 422, "invalid_field", "worker_id")
    st, doc, _ = srv.jreq("POST", "/api/v1/unregister", {"worker_id": "ghost"})
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": "w", "job_id": "ghost",
                                                     "status": "running", "attempt": 1})
    expect_error(st, doc, 404, "not_found")
    for body, field in (({"worker_id": "w", "cpu_cores": 0, "ram_mb": 1}, "cpu_cores"),
                        ({"worker_id": "w", "cpu_cores": 1, "ram_mb": 0}, "ram_mb"),
                        ({"worker_id": "bad id", "cpu_cores": 1, "ram_mb": 1}, "worker_id"),
                        ({"worker_id": "w", "cpu_cores": 1, "ram_mb": 1, "status": "x"},
                         "status"),
                        ({"worker_id": "w", "cpu_cores": 1, "ram_mb": 1, "gpu": 1}, "gpu"),
                        ({"cpu_cores": 1, "ram_mb": 1}, "worker_id")):
        st, doc, _ = srv.jreq("POST", "/api/v1/register", body)
        expect_error(st, doc, 422, "invalid_field", field)
    # Re-registering updates.
    register(srv, "upd-w", cores=2)
    d = register(srv, "upd-w", cores=6)
    check(d["cpu_cores"] == 6, d)


def t_credits(srv):
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/nobody-" + uuid.uuid4().hex[:6], admin=True)
    expect_error(st, doc, 404, "not_found")
    u = "granted-" + uuid.uuid4().hex[:6]
    st, doc, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % u, {"amount": 2.5}, admin=True)
    check(st == 200 and micro(doc["credits"]) == 12500000 and micro(doc["held"]) == 0, doc)
    st, doc, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % u, {"amount": 0.000001},
                          admin=True)
    check(st == 200 and micro(doc["credits"]) == 12500001, doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/" + u, admin=True)
    check(doc["credits"] == 12.500001, doc)
    for amount in (0, -1, "1", None, 0.0000001, True):
        st, doc, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % u, {"amount": amount},
                              admin=True)
        expect_error(st, doc, 422, "invalid_field", "amount")
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger" % u, admin=True)
    check(st == 200 and len(doc) == 3, doc)  # starting grant + two grants
    kinds = [r["kind"] for r in doc]
    check(kinds.count("grant") == 3, kinds)
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger?limit=1" % u, admin=True)
    check(st == 200 and len(doc) == 1, doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/nobody-x/ledger", admin=True)
    expect_error(st, doc, 404, "not_found")
    invariant(srv)


def t_routing(srv):
    st, doc, _ = srv.jreq("GET", "/api/v1/nope")
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("GET", "/api/v1/submit")
    check(st == 405 and doc["error"]["code"] == "method_not_allowed", doc)
    st, doc, _ = srv.jreq("DELETE", "/api/v1/jobs")
    check(st == 405, st)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/")
    check(st == 200 and isinstance(doc, list), "trailing slash")


def t_cors(srv):
    st, hd, _ = srv.req("GET", "/api/v1/health", headers={"Origin": "http://localhost:5173"})
    check(hd.get("access-control-allow-origin") == "http://localhost:5173", hd)
    st, hd, _ = srv.req("GET", "/api/v1/health", headers={"Origin": "http://allowed.example"})
    check(hd.get("access-control-allow-origin") == "http://allowed.example", hd)
    st, hd, _ = srv.req("GET", "/api/v1/health", headers={"Origin": "http://evil.example"})
    check("access-control-allow-origin" not in hd, hd)
    st, hd, _ = srv.req("OPTIONS", "/api/v1/submit", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-admin-token"})
    check(st == 204, "preflight status %d" % st)
    check(hd.get("access-control-allow-origin") == "http://localhost:5173", hd)
    check("POST" in hd.get("access-control-allow-methods", ""), hd)
    check("x-admin-token" in hd.get("access-control-allow-headers", "").lower(), hd)
    st, hd, _ = srv.req("OPTIONS", "/api/v1/submit", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    check("access-control-allow-origin" not in hd and
          "access-control-allow-methods" not in hd, hd)
    # Errors carry CORS headers too (the browser needs them to read the error).
    st, hd, _ = srv.req("POST", "/api/v1/submit", body=job_body(),
                        headers={"Origin": "http://localhost:5173"})
    check(st == 401 and hd.get("access-control-allow-origin") == "http://localhost:5173", hd)


def t_static(srv):
    st, hd, body = srv.req("GET", "/")
    check(st == 200 and hd.get("content-type", "").startswith("text/html"), (st, hd))
    csp = hd.get("content-security-policy", "")
    check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, hd)
    check(hd.get("x-content-type-options") == "nosniff", hd)
    st, hd, body2 = srv.req("GET", "/jobs/some-client-route")
    check(st == 200 and body2 == body, "SPA fallback")
    st, hd, _ = srv.req("GET", "/assets/missing.js")
    check(st == 404, "missing asset %d" % st)
    st, hd, _ = srv.req("GET", "/api/v1/health")
    check("content-security-policy" in hd and hd.get("x-frame-options") == "DENY", hd)


def t_static_dist(args):
    """A built dashboard in FRONTEND_DIR: files with their types, SPA fallback to index.html."""
    d = tempfile.mkdtemp(prefix="cacheout-fe-")
    os.makedirs(os.path.join(d, "assets"))
    files = {"index.html": b"<!doctype html><title>dash</title><div id=root></div>",
             "assets/app-1.js": b"console.log(1)", "assets/app-1.js.map": b"{}",
             "assets/x.woff2": b"w", "assets/i.svg": b"<svg/>", "site.webmanifest": b"{}",
             "assets/m.wasm": b"\0asm"}
    for k, v in files.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    srv = Server(args, {"FRONTEND_DIR": d}).start()
    try:
        st, hd, body = srv.req("GET", "/")
        check(st == 200 and body == files["index.html"], (st, body[:80]))
        st, hd, body = srv.req("GET", "/workers/w1")
        check(st == 200 and body == files["index.html"], "SPA fallback %d" % st)
        for path, ctype in (("/assets/app-1.js", "javascript"), ("/assets/app-1.js.map", "json"),
                            ("/assets/x.woff2", "font/woff2"), ("/assets/i.svg", "image/svg"),
                            ("/site.webmanifest", "manifest"), ("/assets/m.wasm", "wasm")):
            st, hd, body = srv.req("GET", path)
            check(st == 200 and ctype in hd.get("content-type", ""), "%s: %d %r" %
                  (path, st, hd.get("content-type")))
            check(body == files[path[1:]], path)
            check("content-security-policy" in hd, "static CSP")
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def t_metrics(srv):
    st, hd, body = srv.req("GET", "/metrics")
    check(st == 200 and hd.get("content-type", "").startswith("text/plain"), (st, hd))
    types, samples = parse_prometheus(body.decode())
    for name in ("cacheout_jobs", "cacheout_queue_depth", "cacheout_assignments_total",
                 "cacheout_dispatch_latency_seconds", "cacheout_agents_connected",
                 "cacheout_dashboards_connected", "cacheout_http_requests_total"):
        check(name in types, "metric %s missing" % name)
    check(samples["cacheout_http_requests_total"][(("code", "200"),)] > 0, "http 200 count")
    check(samples["cacheout_assignments_total"][()] >= 1, "assignments counted")
    for status in ("pending", "assigned", "running", "completed", "failed", "cancelled"):
        check((("status", status),) in samples["cacheout_jobs"], "jobs{status=%s}" % status)
    check(samples["cacheout_up"][()] == 1, "cacheout_up")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        check(p.returncode == 0, "promtool: %s" % p.stderr.decode()[:300])


def t_concurrency(srv):
    # Each job costs 9 * 0.1 + 10000/100 * 0.001 = 1.0 credit; a new buyer starts with 10.
    buyer = "conc-" + uuid.uuid4().hex[:8]
    body = job_body(buyer_id=buyer, required_cores=9, required_ram_mb=10000)
    check(cost_of(9, 10000) == 1000000, "cost is one credit")

    def one(_):
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", body, admin=True)
        return st

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        codes = list(ex.map(one, range(50)))
    check(codes.count(201) == 10 and codes.count(402) == 40, "codes %r" % sorted(codes))
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(micro(c["credits"]) == 0 and micro(c["held"]) == 10000000, c)
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?limit=1000&buyer_id=" + buyer, admin=True)
    check(len(jobs) == 10, "stored %d jobs" % len(jobs))
    invariant(srv)


def t_offline(args):
    srv = Server(args, {"WORKER_TIMEOUT_SECONDS": "1"}).start()
    try:
        register(srv, "sleepy")
        st, ws, _ = srv.jreq("GET", "/api/v1/workers")
        check([w for w in ws if w["worker_id"] == "sleepy"][0]["status"] == "idle", ws)
        time.sleep(2.2)
        st, ws, _ = srv.jreq("GET", "/api/v1/workers")
        check([w for w in ws if w["worker_id"] == "sleepy"][0]["status"] == "offline", ws)
        # A poll is a heartbeat.
        st, _, _ = srv.jreq("GET", "/api/v1/task?worker_id=sleepy")
        check(st == 204, st)
        st, ws, _ = srv.jreq("GET", "/api/v1/workers")
        check([w for w in ws if w["worker_id"] == "sleepy"][0]["status"] == "idle", ws)
    finally:
        srv.stop()


def t_agent_token(args):
    srv = Server(args, {"AGENT_TOKEN": "agent-secret", "OPEN_REGISTRATION": "false"}).start()
    try:
        b = {"worker_id": "tok-w", "cpu_cores": 1, "ram_mb": 100, "status": "idle"}
        for hdr in ({}, {"X-Agent-Token": "wrong"}, {"X-Admin-Token": ADMIN}):
            st, doc, _ = srv.jreq("POST", "/api/v1/register", b, headers=hdr)
            expect_error(st, doc, 401, "unauthorized")
            st, doc, _ = srv.jreq("GET", "/api/v1/task?worker_id=tok-w", headers=hdr)
            expect_error(st, doc, 401, "unauthorized")
            st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": "tok-w", "job_id": "x",
                                                             "status": "running"}, headers=hdr)
            expect_error(st, doc, 401, "unauthorized")
            st, doc, _ = srv.jreq("POST", "/api/v1/unregister", {"worker_id": "tok-w"},
                                  headers=hdr)
            expect_error(st, doc, 401, "unauthorized")
        ok = {"X-Agent-Token": "agent-secret"}
        register(srv, "tok-w", cores=1, ram=100, headers=ok)
        st, _, _ = srv.jreq("GET", "/api/v1/task?worker_id=tok-w", headers=ok)
        check(st == 204, st)
        st, _, _ = srv.jreq("POST", "/api/v1/unregister", {"worker_id": "tok-w"}, headers=ok)
        check(st == 200, st)
        # A wrong token on the WebSocket handshake gets a real 401; the right one is upgraded.
        st, _ = ws_handshake(srv, "/ws/agent", "cacheout.agent.v1", {"X-Agent-Token": "wrong"})
        check(st == 401, "ws with a wrong token: %r" % st)
        st, _ = ws_handshake(srv, "/ws/agent", "cacheout.agent.v1",
                             {"X-Agent-Token": "agent-secret"})
        check(st == 101, "ws with the token: %r" % st)
    finally:
        srv.stop()
    with open(os.path.join(srv.workdir, "coordinator.log")) as f:
        check("OPEN_REGISTRATION=true" not in f.read(), "open registration warning while closed")


def t_open_registration_warning(srv):
    with open(os.path.join(srv.workdir, "coordinator.log")) as f:
        log = f.read()
    check("OPEN_REGISTRATION=true" in log, "no startup warning for open registration")
    check(re.search(r"http request method=GET path=/api/v1/health status=200 duration_ms=", log),
          "access log line")


def t_max_workers(args):
    srv = Server(args, {"MAX_WORKERS": "2"}).start()
    try:
        register(srv, "mw-1")
        register(srv, "mw-2")
        st, doc, _ = srv.jreq("POST", "/api/v1/register", {"worker_id": "mw-3", "cpu_cores": 1,
                                                           "ram_mb": 1, "status": "idle"})
        expect_error(st, doc, 409, "conflict")
        check("MAX_WORKERS" in doc["error"]["message"], doc)
        register(srv, "mw-1", cores=4)  # updating an existing one is fine
    finally:
        srv.stop()


def ws_handshake(srv, path, proto, headers=None, want_frame=False):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % srv.port, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: " + proto]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    deadline = time.time() + 5
    try:
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                if status_of(buf) != 101 or len(rest) >= 2 or not want_frame:
                    break
    except socket.timeout:
        pass
    s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    return status_of(buf), rest


def t_websockets(srv):
    st, frame = ws_handshake(srv, "/ws/agent", "cacheout.agent.v1")
    check(st == 101, (st, frame))
    st, frame = ws_handshake(srv, "/ws/dashboard", "cacheout.dashboard.v1", want_frame=True)
    check(st == 101 and b'"snapshot"' in frame and b'"admin":false' in frame, (st, frame))
    st, frame = ws_handshake(srv, "/ws/dashboard?token=" + ADMIN, "cacheout.dashboard.v1",
                             want_frame=True)
    check(st == 101 and b'"admin":true' in frame, (st, frame))
    st, frame = ws_handshake(srv, "/ws/dashboard", "cacheout.dashboard.v1",
                             {"X-Admin-Token": "wrong"}, want_frame=True)
    check(st == 101 and b'"admin":false' in frame, (st, frame))
    st, _ = ws_handshake(srv, "/ws/wrong", "cacheout.dashboard.v1")
    check(st == 404, "wrong path: %r" % st)
    st, _ = ws_handshake(srv, "/ws/agent", "cacheout.dashboard.v1")
    check(st == 404, "dashboard protocol on agent path: %r" % st)


def t_config_errors(args):
    for var, val in (("PORT", "abc"), ("PORT", "70000"), ("MAX_WORKERS", "x"),
                     ("COST_PER_CORE", "abc"), ("LOG_LEVEL", "LOUD")):
        srv = Server(args, {var: val})
        p = subprocess.run([args.bin], cwd=srv.workdir, env=srv.env, capture_output=True,
                           timeout=20)
        check(p.returncode == 2, "%s=%s: exit %d" % (var, val, p.returncode))
        check(var in p.stderr.decode(), "%s=%s: message %r" % (var, val, p.stderr))
    # A port already in use: a clear message and a non-zero exit, not a silent hang.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    srv = Server(args, {"PORT": str(holder.getsockname()[1])})
    p = subprocess.run([args.bin], cwd=srv.workdir, env=srv.env, capture_output=True, timeout=20)
    holder.close()
    check(p.returncode == 1, "port in use: exit %d" % p.returncode)
    check(b"cannot listen" in p.stdout + p.stderr, "port in use: %r" % p.stderr[-300:])
    for flag in ("--help", "--version"):
        p = subprocess.run([args.bin, flag], capture_output=True, timeout=10)
        check(p.returncode == 0 and p.stdout, flag)


def t_generated_token(args):
    srv = Server(args)
    del srv.env["ADMIN_TOKEN"]
    srv.start()
    try:
        time.sleep(0.2)
        with open(os.path.join(srv.workdir, "stdout.log")) as f:
            out = f.read()
        m = re.search(r"generated for this run: ([0-9a-f]{32,})", out)
        check(m, "token not printed: %r" % out[-500:])
        st, doc, _ = srv.jreq("POST", "/api/v1/credits/u1/grant", {"amount": 1},
                              headers={"X-Admin-Token": m.group(1)})
        check(st == 200, "generated token works: %d" % st)
        check(out.count(m.group(1)) == 1, "printed once")
    finally:
        srv.stop()


def t_env_file(args):
    srv = Server(args)
    del srv.env["PORT"]
    with open(os.path.join(srv.workdir, ".env"), "w") as f:
        f.write("# test\nPORT=%d\nDEFAULT_STARTING_CREDITS=7\n" % srv.port)
    del srv.env["DEFAULT_STARTING_CREDITS"]
    srv.start()
    try:
        submit(srv, buyer_id="envfile")
        st, c, _ = srv.jreq("GET", "/api/v1/credits/envfile", admin=True)
        check(micro(c["credits"]) + micro(c["held"]) == 7000000, c)
    finally:
        srv.stop()


def t_restart(srv, args):
    """kill -9, start again on the same database: every acknowledged job and credit is there."""
    buyer = "durable-" + uuid.uuid4().hex[:6]
    acked = []
    for i in range(20):
        acked.append(submit(srv, buyer_id=buyer, title="d%d" % i)["job_id"])
    st, g, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % buyer, {"amount": 5}, admin=True)
    check(st == 200, g)
    st, before, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    st, health_before, _ = srv.jreq("GET", "/api/v1/health")
    # Submits racing with the kill: whatever was acknowledged must survive.
    stop = threading.Event()
    racing = []

    def hammer():
        while not stop.is_set():
            try:
                st, doc, _ = srv.jreq("POST", "/api/v1/submit",
                                      job_body(buyer_id="race-" + buyer), admin=True)
                if st == 201:
                    racing.append(doc["job_id"])
            except (OSError, http.client.HTTPException):
                return  # the server was killed mid-answer: that request was not acknowledged

    t = threading.Thread(target=hammer)
    t.start()
    time.sleep(0.3)
    srv.kill9()
    stop.set()
    t.join()
    srv.restart(new_port=True)
    for jid in acked + racing:
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + jid, admin=True)
        check(st == 200 and doc["job_id"] == jid, "job %s lost after kill -9" % jid)
    st, after, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(after == before, "credits changed across restart: %r -> %r" % (before, after))
    if racing:
        st, rc, _ = srv.jreq("GET", "/api/v1/credits/race-" + buyer, admin=True)
        check(micro(rc["held"]) >= len(racing) * cost_of(1, 100), rc)
    invariant(srv)


def t_idempotency(srv, args):
    """Idempotency-Key: one job and one hold per key; replayed answers; mismatch; bad keys."""
    buyer = "idem-" + uuid.uuid4().hex[:6]
    key = "submit-" + uuid.uuid4().hex
    body = job_body(buyer_id=buyer, title="once")
    h = {"Idempotency-Key": key}
    st, first, hd = srv.jreq("POST", "/api/v1/submit", body, headers=h, admin=True)
    check(st == 201 and "idempotent-replayed" not in hd, (st, first, hd))
    st, again, hd = srv.jreq("POST", "/api/v1/submit", body, headers=h, admin=True)
    check(st == 201 and again == first, "replay answered %d %r" % (st, again))
    check(hd.get("idempotent-replayed") == "true", hd)
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer, admin=True)
    check(len(jobs) == 1, "two jobs for one key: %r" % jobs)
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer, admin=True)
    check(micro(c["held"]) == cost_of(1, 100), "held twice: %r" % c)
    # Another body under the same key: 409, nothing created.
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=buyer, title="other"),
                          headers=h, admin=True)
    expect_error(st, doc, 409, "idempotency_mismatch")
    # Keys belong to the principal: two users' keys with one key text and one body make two jobs;
    # a second key of one user is its own identity too; a repeat with the first key replays.
    t = uuid.uuid4().hex[:6]
    ua, ub = "idem-ua-" + t, "idem-ub-" + t
    mk_user(srv, ua)
    mk_user(srv, ub)
    ka = mk_key(srv, ua, ["buy"])["token"]
    ka2 = mk_key(srv, ua, ["buy"], name="second")["token"]
    kb = mk_key(srv, ub, ["buy"])["token"]
    ukey = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    ubody = {k: v for k, v in job_body(title="per-user").items() if k != "buyer_id"}
    st, ja, hd = srv.jreq("POST", "/api/v1/submit", ubody, headers={**bearer(ka), **ukey})
    check(st == 201 and ja["buyer_id"] == ua and "idempotent-replayed" not in hd, (st, ja, hd))
    st, jb, hd = srv.jreq("POST", "/api/v1/submit", ubody, headers={**bearer(kb), **ukey})
    check(st == 201 and jb["buyer_id"] == ub and jb["job_id"] != ja["job_id"]
          and "idempotent-replayed" not in hd, "another user's key shared the key: %r %r" % (jb, hd))
    st, ja2, hd = srv.jreq("POST", "/api/v1/submit", ubody, headers={**bearer(ka2), **ukey})
    check(st == 201 and ja2["job_id"] not in (ja["job_id"], jb["job_id"])
          and "idempotent-replayed" not in hd, "a second key of the user shared it: %r" % hd)
    st, again_a, hd = srv.jreq("POST", "/api/v1/submit", ubody, headers={**bearer(ka), **ukey})
    check(st == 201 and again_a == ja and hd.get("idempotent-replayed") == "true",
          "the first key's repeat: %d %r" % (st, hd))
    for u, n in ((ua, 2), (ub, 1)):
        st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + u, admin=True)
        check(st == 200 and len(jobs) == n, "%s has %d jobs, want %d" % (u, len(jobs), n))
    # The same key on another path is another key; so is another credential.
    st, g, hd = srv.jreq("POST", "/api/v1/credits/%s/grant" % buyer, {"amount": 1}, headers=h,
                         admin=True)
    check(st == 200 and "idempotent-replayed" not in hd, (st, g))
    st, g2, hd = srv.jreq("POST", "/api/v1/credits/%s/grant" % buyer, {"amount": 1}, headers=h,
                          admin=True)
    check(st == 200 and g2 == g and hd.get("idempotent-replayed") == "true", (st, g2, hd))
    st, led, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger" % buyer, admin=True)
    check(sum(1 for row in led if row["kind"] == "grant" and micro(row["amount"]) == 1000000)
          == 1, "grant replayed twice: %r" % led)
    wid = "idem-w-" + uuid.uuid4().hex[:6]
    reg = {"worker_id": wid, "cpu_cores": 1, "ram_mb": 100}
    # An anonymous agent route and the admin share the key text but not the key.
    st, doc, hd = srv.jreq("POST", "/api/v1/register", reg, headers={"Idempotency-Key": key})
    check(st == 200 and "idempotent-replayed" not in hd, (st, doc, hd))
    st, doc, hd = srv.jreq("POST", "/api/v1/register", reg,
                           headers={"Idempotency-Key": key, "X-Admin-Token": srv.admin_token})
    check(st == 200 and "idempotent-replayed" not in hd, "credentials share a key: %r" % hd)
    # Bad keys.
    for bad in ("", "x" * 256, "has space", "caf\u00e9"):
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", body,
                              headers={"Idempotency-Key": bad.encode("utf-8").decode("latin-1")},
                              admin=True)
        expect_error(st, doc, 422, "invalid_field", "Idempotency-Key")
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=buyer, title="k255"),
                          headers={"Idempotency-Key": "k" * 255}, admin=True)
    check(st == 201, (st, doc))
    # Concurrent duplicates: 8 at once with one key make one job.
    ckey = "conc-" + uuid.uuid4().hex
    cbuyer = "idem-c-" + uuid.uuid4().hex[:6]
    cbody = job_body(buyer_id=cbuyer)
    answers = []

    def one():
        answers.append(srv.jreq("POST", "/api/v1/submit", cbody,
                                headers={"Idempotency-Key": ckey}, admin=True))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {doc["job_id"] for st, doc, _ in answers if st == 201}
    check(len(ids) == 1 and all(st == 201 for st, _, _ in answers),
          "concurrent duplicates: %r" % [(st, doc) for st, doc, _ in answers])
    check(sum(1 for _, _, hd in answers if hd.get("idempotent-replayed") == "true") == 7,
          "replayed count: %r" % [hd for _, _, hd in answers])
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + cbuyer, admin=True)
    check(len(jobs) == 1, "concurrent duplicates made %d jobs" % len(jobs))
    # Replay after a restart: the key is in the database.
    srv.kill9()
    srv.restart(new_port=True)
    st, again, hd = srv.jreq("POST", "/api/v1/submit", body, headers=h, admin=True)
    check(st == 201 and again == first and hd.get("idempotent-replayed") == "true",
          "after restart: %d %r %r" % (st, again, hd))
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer, admin=True)
    check(len(jobs) == 2, "jobs after restart replay: %r" % [j["title"] for j in jobs])
    invariant(srv)


def retention_now(srv, older_than_seconds):
    st, doc, _ = srv.jreq("POST", "/api/v1/debug/retention",
                          {"older_than_seconds": older_than_seconds}, admin=True)
    check(st == 200, "debug/retention: %d %r" % (st, doc))
    return doc


def t_retention(srv):
    """Retention removes old finished jobs' code and output and silent unused workers; job rows,
    the ledger and recent data stay; runs in batches of RETENTION_BATCH=2 to the end."""
    buyer = "ret-" + uuid.uuid4().hex[:6]
    wid = "ret-w-" + uuid.uuid4().hex[:6]
    ghost = "ret-ghost-" + uuid.uuid4().hex[:6]
    register(srv, wid, cores=1, ram=100)
    register(srv, ghost, cores=1, ram=100)
    # A silent worker owned through a sell key (ownership claimed, migration 0004): its delete
    # must not trip over any key of the ownership columns.
    owner = "ret-o-" + uuid.uuid4().hex[:6]
    owned = "ret-owned-" + uuid.uuid4().hex[:6]
    mk_user(srv, owner)
    register(srv, owned, cores=1, ram=100, headers=bearer(mk_key(srv, owner, ["sell"])["token"]))
    st, ws, _ = srv.jreq("GET", "/api/v1/workers", admin=True)
    check(any(w["worker_id"] == owned and w.get("owner_id") == owner for w in ws),
          "the owned worker is not stored as %s's" % owner)
    done = []
    for i in range(3):
        j = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=100, priority=10,
                   code="print('old %d')" % i)
        st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
        check(st == 200 and a["job_id"] == j["job_id"], "task: %d %r" % (st, a))
        st, doc, _ = srv.jreq("POST", "/api/v1/status", {
            "worker_id": wid, "job_id": j["job_id"], "attempt": a["attempt"],
            "status": "completed", "exit_code": 0, "stdout": "out %d\n" % i,
            "stderr": "err %d\n" % i})
        check(st == 200 and doc["status"] == "completed", doc)
        done.append(j["job_id"])
    cancelled = submit(srv, buyer_id=buyer, required_cores=64, code="print('never')")
    st, _, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % cancelled["job_id"], admin=True)
    check(st == 200, "cancel")
    pending = submit(srv, buyer_id=buyer, required_cores=64, code="print('waiting')")
    st, led_before, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger" % buyer, admin=True)
    # A cutoff an hour ago: everything here is younger and stays.
    retention_now(srv, 3600)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + done[0], admin=True)
    check(doc["code"] == "print('old 0')", "young code removed: %r" % doc["code"])
    st, out, _ = srv.jreq("GET", "/api/v1/jobs/%s/output" % done[0], admin=True)
    check(out["stdout"] == "out 0\n", out)
    time.sleep(1.2)
    got = retention_now(srv, 1)
    check(got["job_code"] >= 4 and got["output_chunks"] >= 6 and got["workers"] >= 1, got)
    for i, jid in enumerate(done):
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + jid, admin=True)
        check(st == 200 and doc["status"] == "completed" and doc["exit_code"] == 0, doc)
        check(doc.get("code") in (None, ""), "old code kept: %r" % doc.get("code"))
        st, out, _ = srv.jreq("GET", "/api/v1/jobs/%s/output" % jid, admin=True)
        check(st == 200 and out["stdout"] == "" and out["stderr"] == "", out)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + pending["job_id"], admin=True)
    check(doc["status"] == "pending" and doc["code"] == "print('waiting')",
          "a pending job lost its code: %r" % doc)
    st, led_after, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger" % buyer, admin=True)
    check(led_after == led_before, "the ledger changed")
    st, ws, _ = srv.jreq("GET", "/api/v1/workers")
    ids = {w["worker_id"] for w in ws}
    check(ghost not in ids, "a silent worker without jobs stayed")
    check(owned not in ids, "a silent owned worker without jobs stayed")
    check(wid in ids, "a worker named by job rows was removed")
    # A second run right after finds nothing left.
    again = retention_now(srv, 1)
    check(not any(again.values()), "second run still removed %r" % again)
    st, doc, _ = srv.jreq("POST", "/api/v1/debug/retention", {"older_than_seconds": -1},
                          admin=True)
    expect_error(st, doc, 422, "invalid_field", "older_than_seconds")
    st, doc, _ = srv.jreq("POST", "/api/v1/debug/retention", {"older_than_seconds": 1})
    expect_error(st, doc, 401, "unauthorized")
    srv.jreq("POST", "/api/v1/jobs/%s/cancel" % pending["job_id"], admin=True)
    invariant(srv)


def t_shutdown(args):
    srv = Server(args).start()
    submit(srv, buyer_id="shutdown")
    t0 = time.time()
    rc = srv.stop()
    check(rc == 0, "exit code %r" % rc)
    check(time.time() - t0 < 15, "slow shutdown")
    with open(os.path.join(srv.workdir, "coordinator.log")) as f:
        log = f.read()
    check("stopped" in log, "no stop line")


def pg_ctl(args, action):
    cmd = [os.path.join(args.pg_bin, "pg_ctl"), "-D", os.path.join(args.pg_dir, "data"), "-w",
           "-t", "30", "-m", "fast", "-l", os.path.join(args.pg_dir, "server.log"), action]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    if action == "start":
        cmd[cmd.index("-m"):cmd.index("-m") + 2] = []
        cmd[-1:-1] = ["-o", "-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
                      "-c max_connections=200" % (args.pg_port, args.pg_dir)]
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    check(p.returncode == 0, "pg_ctl %s: %s" % (action, p.stderr.decode()[-300:]))


def t_pg_restart(srv, args):
    j = submit(srv, buyer_id="pgr")
    pg_ctl(args, "stop")
    try:
        deadline = time.time() + 10
        st = None
        while time.time() < deadline:
            st, doc, _ = srv.jreq("GET", "/api/v1/health")
            if st == 503:
                break
            time.sleep(0.2)
        check(st == 503 and doc["status"] == "unhealthy", "health while down: %r" % st)
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id="pgr"), admin=True)
        expect_error(st, doc, 503, "unavailable")
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"], admin=True)
        expect_error(st, doc, 503, "unavailable")
    finally:
        pg_ctl(args, "start")
    deadline = time.time() + 20
    st = None
    while time.time() < deadline:
        st, doc, _ = srv.jreq("GET", "/api/v1/health")
        if st == 200:
            break
        time.sleep(0.3)
    check(st == 200, "health after restart: %r" % st)
    # Every connection recovers: several requests in a row succeed.
    for _ in range(8):
        j2 = submit(srv, buyer_id="pgr")
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j2["job_id"], admin=True)
        check(st == 200, "read after recovery: %d" % st)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"], admin=True)
    check(st == 200, "old job after recovery")
    invariant(srv)


# ---------------------------------------------------------------- accounts, keys, roles

def bearer(token):
    return {"Authorization": "Bearer " + token}


def mk_user(srv, uid, **kw):
    body = {"user_id": uid}
    body.update(kw)
    st, doc, _ = srv.jreq("POST", "/api/v1/users", body, admin=True)
    check(st == 201 and doc["user_id"] == uid, "create user %s: %d %r" % (uid, st, doc))
    return doc


def mk_key(srv, uid, scopes=None, name="key", headers=None):
    body = {"name": name}
    if scopes is not None:
        body["scopes"] = scopes
    st, doc, _ = srv.jreq("POST", "/api/v1/users/%s/keys" % uid, body,
                          headers=headers, admin=headers is None)
    check(st == 201 and doc["token"].startswith("co_"), "key for %s: %d %r" % (uid, st, doc))
    return doc


def snapshot(srv, uid):
    """What a refused request must not change: the user, its keys, balance and jobs."""
    st, u, _ = srv.jreq("GET", "/api/v1/users/" + uid, admin=True)
    st, keys, _ = srv.jreq("GET", "/api/v1/users/%s/keys" % uid, admin=True)
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?limit=1000&buyer_id=" + uid, admin=True)
    return (u, sorted(k["key_id"] for k in keys),
            sorted((j["job_id"], j["status"]) for j in jobs))


ROLES = ("anonymous", "admin token", "admin key", "buy key A", "buy key B", "sell-only key",
         "revoked key", "disabled user's key", "garbage bearer")


def t_role_matrix(srv):
    """One role x endpoint matrix: every cell's status is asserted (API.md "Visibility and
    rights").  Agent routes belong to the seller identity work and its suite."""
    t = uuid.uuid4().hex[:6]
    A, B, S, D, boss = ("mx-a-" + t, "mx-b-" + t, "mx-s-" + t, "mx-d-" + t, "mx-boss-" + t)
    for u in (A, B, S, D):
        mk_user(srv, u, credits=50)
    mk_user(srv, boss, is_admin=True, credits=50)
    tok = {
        "admin key": mk_key(srv, boss, ["admin", "buy", "sell"])["token"],
        "buy key A": mk_key(srv, A, ["buy"])["token"],
        "buy key B": mk_key(srv, B, ["buy"])["token"],
        "sell-only key": mk_key(srv, S, ["sell"])["token"],
        "garbage bearer": "co_" + "x" * 43,
    }
    rk = mk_key(srv, A, ["buy"], name="to revoke")
    st, _, _ = srv.jreq("DELETE", "/api/v1/keys/" + rk["key_id"], admin=True)
    check(st == 204, "revoke: %d" % st)
    tok["revoked key"] = rk["token"]
    tok["disabled user's key"] = mk_key(srv, D, ["buy"])["token"]
    st, _, _ = srv.jreq("PATCH", "/api/v1/users/" + D, {"disabled": True}, admin=True)
    check(st == 200, "disable: %d" % st)

    def hdr(role):
        if role == "anonymous":
            return {}
        if role == "admin token":
            return {"X-Admin-Token": ADMIN}
        return bearer(tok[role])

    job_a = submit(srv, buyer_id=A)["job_id"]

    def fresh_job(_role):
        return submit(srv, buyer_id=A)["job_id"]

    def fresh_key(_role):
        return mk_key(srv, A, ["buy"], name="fresh")["key_id"]

    n = [0]

    def fresh_uid(_role):
        n[0] += 1
        return "mx-new-%s-%d" % (t, n[0])

    # endpoint: (method, path or f(role) -> path, body or f(role) -> body, 9 statuses in ROLES
    # order).  The last three roles hold credentials that are wrong now: 401 everywhere.
    X = (401, 401, 401)
    cells = [
        ("GET /health", "GET", "/api/v1/health", None, (200, 200, 200, 200, 200, 200) + X),
        ("GET /jobs", "GET", "/api/v1/jobs", None, (200, 200, 200, 200, 200, 200) + X),
        ("GET /jobs/{A's}", "GET", "/api/v1/jobs/" + job_a, None,
         (200, 200, 200, 200, 200, 200) + X),
        ("GET /jobs/{A's}/output", "GET", "/api/v1/jobs/%s/output" % job_a, None,
         (401, 200, 200, 200, 403, 403) + X),
        ("POST /jobs/{A's}/cancel", "POST", lambda r: "/api/v1/jobs/%s/cancel" % fresh_job(r),
         None, (401, 200, 200, 200, 403, 403) + X),
        ("POST /submit (no buyer_id)", "POST", "/api/v1/submit",
         {k: v for k, v in job_body().items() if k != "buyer_id"},
         (401, 422, 201, 201, 201, 403) + X),
        ("POST /submit (buyer A)", "POST", "/api/v1/submit", job_body(buyer_id=A),
         (401, 201, 201, 201, 403, 403) + X),
        ("GET /workers", "GET", "/api/v1/workers", None, (200, 200, 200, 200, 200, 200) + X),
        ("GET /credits/A", "GET", "/api/v1/credits/" + A, None,
         (401, 200, 200, 200, 403, 403) + X),
        ("GET /credits/A/ledger", "GET", "/api/v1/credits/%s/ledger" % A, None,
         (401, 200, 200, 200, 403, 403) + X),
        ("POST /credits/A/grant", "POST", "/api/v1/credits/%s/grant" % A, {"amount": 1},
         (401, 200, 200, 403, 403, 403) + X),
        ("GET /users", "GET", "/api/v1/users", None, (401, 200, 200, 403, 403, 403) + X),
        ("POST /users", "POST", "/api/v1/users", lambda r: {"user_id": fresh_uid(r)},
         (401, 201, 201, 403, 403, 403) + X),
        ("GET /users/A", "GET", "/api/v1/users/" + A, None, (401, 200, 200, 200, 403, 403) + X),
        ("PATCH /users/B", "PATCH", "/api/v1/users/" + B, {"limits": {"max_running_jobs": 0}},
         (401, 200, 200, 403, 403, 403) + X),
        ("POST /users/A/keys", "POST", "/api/v1/users/%s/keys" % A,
         {"name": "m", "scopes": ["buy"]}, (401, 201, 201, 201, 403, 403) + X),
        ("GET /users/A/keys", "GET", "/api/v1/users/%s/keys" % A, None,
         (401, 200, 200, 200, 403, 403) + X),
        ("DELETE /keys/{A's}", "DELETE", lambda r: "/api/v1/keys/" + fresh_key(r), None,
         (401, 204, 204, 204, 403, 403) + X),
        ("GET /me", "GET", "/api/v1/me", None, (401, 200, 200, 200, 200, 200) + X),
        ("GET /audit", "GET", "/api/v1/audit", None, (401, 200, 200, 403, 403, 403) + X),
        ("GET /debug/invariant", "GET", "/api/v1/debug/invariant", None,
         (401, 200, 200, 403, 403, 403) + X),
    ]
    bad = []
    for name, method, path, body, want in cells:
        check(len(want) == len(ROLES), "row %s has %d cells" % (name, len(want)))
        for role, expect in zip(ROLES, want):
            p = path(role) if callable(path) else path
            b = body(role) if callable(body) else body
            st, doc, _ = srv.jreq(method, p, b, headers=hdr(role))
            if st != expect:
                bad.append("%s as %s: %d, expected %d (%r)" % (name, role, st, expect, doc))
            elif st in (401, 403):
                code = "unauthorized" if st == 401 else "forbidden"
                if not (isinstance(doc, dict) and doc.get("error", {}).get("code") == code):
                    bad.append("%s as %s: error body %r" % (name, role, doc))
    check(not bad, "%d cells differ:\n  %s" % (len(bad), "\n  ".join(bad)))
    invariant(srv)


def auth_counters(srv):
    st, _, raw = srv.req("GET", "/metrics")
    _, samples = parse_prometheus(raw.decode())
    return (samples["cacheout_auth_key_lookups_total"][()],
            samples["cacheout_auth_key_cache_hits_total"][()])


def t_key_counters(srv):
    """A new key is looked up in the store once; every use is counted as a lookup or a hit."""
    t = uuid.uuid4().hex[:6]
    mk_user(srv, "cnt-" + t)
    k = mk_key(srv, "cnt-" + t, ["buy"])["token"]
    l0, h0 = auth_counters(srv)
    for _ in range(3):
        st, _, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(k))
        check(st == 200, st)
    l1, h1 = auth_counters(srv)
    check(l1 >= l0 + 1 and (l1 - l0) + (h1 - h0) == 3, "lookups %d->%d hits %d->%d" %
          (l0, l1, h0, h1))


def t_visibility(srv):
    """The public view, a buyer's own jobs in full, nobody else's."""
    t = uuid.uuid4().hex[:6]
    A, B = "vis-a-" + t, "vis-b-" + t
    mk_user(srv, A)
    mk_user(srv, B)
    ka, kb = mk_key(srv, A, ["buy"])["token"], mk_key(srv, B, ["buy"])["token"]
    # Submit without buyer_id: the key's user; with code in the answer.
    st, ja, _ = srv.jreq("POST", "/api/v1/submit",
                         {k: v for k, v in job_body(code="secret-a").items() if k != "buyer_id"},
                         headers=bearer(ka))
    check(st == 201 and ja["buyer_id"] == A and ja["code"] == "secret-a", ja)
    st, jb, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=B, code="secret-b"),
                         headers=bearer(kb))
    check(st == 201 and jb["buyer_id"] == B, jb)
    # A's list: its own jobs only, full objects with code.
    st, mine, _ = srv.jreq("GET", "/api/v1/jobs?limit=1000", headers=bearer(ka))
    check(st == 200 and [j["job_id"] for j in mine] == [ja["job_id"]], mine)
    check(mine[0]["code"] == "secret-a" and mine[0]["command"] == "python main.py", mine)
    # Another buyer's job: the public view exactly.
    st, other, _ = srv.jreq("GET", "/api/v1/jobs/" + jb["job_id"], headers=bearer(ka))
    check(st == 200 and set(other) == PUBLIC_JOB_FIELDS, sorted(other))
    st, own, _ = srv.jreq("GET", "/api/v1/jobs/" + ja["job_id"], headers=bearer(ka))
    check(own["code"] == "secret-a" and own["buyer_id"] == A, own)
    # Listing another buyer's jobs by filter: 403 (anonymous: 401).
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + B, headers=bearer(ka))
    expect_error(st, doc, 403, "forbidden", "buyer_id")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + B)
    expect_error(st, doc, 401, "unauthorized")
    # Anonymous: the public view of everything, no code anywhere.
    st, pub, _ = srv.jreq("GET", "/api/v1/jobs?limit=1000")
    check(st == 200 and pub and all(set(j) == PUBLIC_JOB_FIELDS for j in pub), pub[:2])
    check("secret-" not in json.dumps(pub), "code leaked to anonymous")
    # Workers: no owner_id for anonymous, shown to a credential.
    register(srv, "vis-w-" + t, owner=A)
    st, ws, _ = srv.jreq("GET", "/api/v1/workers")
    check(ws and all("owner_id" not in w for w in ws), ws[:1])
    st, ws, _ = srv.jreq("GET", "/api/v1/workers", headers=bearer(kb))
    check(all("owner_id" in w for w in ws), ws[:1])
    # /me: the user plus the key.
    st, me, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(ka))
    check(st == 200 and me["user_id"] == A and me["key"]["scopes"] == ["buy"], me)
    check(me["limits"] == {"submit_per_second": 100, "max_pending_jobs": 10000,
                           "max_running_jobs": 0}, me["limits"])
    st, me, _ = srv.jreq("GET", "/api/v1/me", admin=True)
    check(st == 200 and me["user_id"] == "admin" and me["is_admin"] and me["key"] is None, me)
    invariant(srv)


def t_bad_credentials(srv):
    """Malformed, unknown, revoked, disabled: 401 with a clear error; nothing changes."""
    t = uuid.uuid4().hex[:6]
    A = "bad-a-" + t
    mk_user(srv, A)
    k = mk_key(srv, A, ["buy"])
    before = snapshot(srv, A)
    for h in ({"Authorization": "Bearer"}, {"Authorization": "Bearer "},
              {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "bearer"},
              {"Authorization": "Bearer " + "y" * 300}, {"Authorization": "Bearer co_nope"},
              {"Authorization": "Bearer " + k["token"] + "x"},
              {"Authorization": "Bearer " + k["token"][:-1]},
              {"X-Admin-Token": ""}, {"X-Admin-Token": "x" * 600}):
        for method, path, body in (("POST", "/api/v1/submit", job_body(buyer_id=A)),
                                   ("POST", "/api/v1/users/%s/keys" % A, {"name": "x"}),
                                   ("GET", "/api/v1/jobs", None)):
            st, doc, _ = srv.jreq(method, path, body, headers=h)
            if h.get("X-Admin-Token") == "":
                # An empty header is no credential: anonymous.
                check(st in (200, 401), "%r %s: %d" % (h, path, st))
                continue
            expect_error(st, doc, 401, "unauthorized")
            check(k["token"] not in json.dumps(doc), "token echoed")
    # The right token works (with spaces around it, and case-insensitive scheme).
    st, doc, _ = srv.jreq("GET", "/api/v1/me", headers={"Authorization": "bearer  %s " %
                                                        k["token"]})
    check(st == 200 and doc["user_id"] == A, doc)
    check(snapshot(srv, A) == before, "a refused request changed something")
    # Revoked: 401 at once, on the very next request (no cached authentication survives).
    st, _, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(k["token"]))
    check(st == 200, st)
    st, _, _ = srv.jreq("DELETE", "/api/v1/keys/" + k["key_id"], headers=bearer(k["token"]))
    check(st == 204, "a key revokes itself: %d" % st)
    st, doc, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(k["token"]))
    expect_error(st, doc, 401, "unauthorized")
    st, doc, _ = srv.jreq("DELETE", "/api/v1/keys/" + k["key_id"], admin=True)
    expect_error(st, doc, 404, "not_found")
    st, keys, _ = srv.jreq("GET", "/api/v1/users/%s/keys" % A, admin=True)
    check(k["key_id"] not in [x["key_id"] for x in keys] and "token" not in json.dumps(keys),
          keys)
    # Disabled: 401 at once; enabled again: the key works again.
    k2 = mk_key(srv, A, ["buy"])
    st, _, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(k2["token"]))
    check(st == 200, st)
    st, _, _ = srv.jreq("PATCH", "/api/v1/users/" + A, {"disabled": True}, admin=True)
    check(st == 200, st)
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=A),
                          headers=bearer(k2["token"]))
    expect_error(st, doc, 401, "unauthorized")
    st, _, _ = srv.jreq("PATCH", "/api/v1/users/" + A, {"disabled": False}, admin=True)
    st, _, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(k2["token"]))
    check(st == 200, "re-enabled: %d" % st)
    invariant(srv)


def t_escalation(srv):
    """Scope escalation and other users' ids in paths and bodies: refused, nothing changed."""
    t = uuid.uuid4().hex[:6]
    A, B, boss = "esc-a-" + t, "esc-b-" + t, "esc-boss-" + t
    mk_user(srv, A)
    mk_user(srv, B)
    mk_user(srv, boss, is_admin=True)
    buy = mk_key(srv, A, ["buy"])["token"]
    both = mk_key(srv, A)["token"]  # default scopes: buy and sell
    before_a, before_b = snapshot(srv, A), snapshot(srv, B)
    refused = [
        # A buy key cannot create an admin key, nor a sell key (scopes it does not hold).
        (buy, "POST", "/api/v1/users/%s/keys" % A, {"name": "x", "scopes": ["admin"]}, 403),
        (buy, "POST", "/api/v1/users/%s/keys" % A, {"name": "x", "scopes": ["buy", "sell"]}, 403),
        (both, "POST", "/api/v1/users/%s/keys" % A, {"name": "x", "scopes": ["admin"]}, 403),
        # Other users' ids in paths.
        (buy, "POST", "/api/v1/users/%s/keys" % B, {"name": "x", "scopes": ["buy"]}, 403),
        (buy, "GET", "/api/v1/users/%s/keys" % B, None, 403),
        (buy, "GET", "/api/v1/users/" + B, None, 403),
        (buy, "PATCH", "/api/v1/users/" + A, {"is_admin": True}, 403),
        (buy, "PATCH", "/api/v1/users/" + A, {"limits": {"submit_per_second": 1000}}, 403),
        (buy, "POST", "/api/v1/credits/%s/grant" % A, {"amount": 100}, 403),
        (buy, "GET", "/api/v1/credits/" + B, None, 403),
        (buy, "GET", "/api/v1/credits/%s/ledger" % B, None, 403),
        # ... and in bodies.
        (buy, "POST", "/api/v1/submit", job_body(buyer_id=B), 403),
        (buy, "POST", "/api/v1/users", {"user_id": "esc-new-" + t, "is_admin": True}, 403),
    ]
    for token, method, path, body, want in refused:
        st, doc, _ = srv.jreq(method, path, body, headers=bearer(token))
        expect_error(st, doc, want, "forbidden" if want == 403 else "unauthorized")
    # An admin cannot give a non-admin user an admin key either.
    st, doc, _ = srv.jreq("POST", "/api/v1/users/%s/keys" % A,
                          {"name": "x", "scopes": ["admin"]}, admin=True)
    expect_error(st, doc, 403, "forbidden", "scopes")
    # Bad scopes and bodies: 422.
    for body in ({"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []},
                 {"name": "x", "scopes": "buy"}, {"scopes": ["buy"]}, {"name": ""},
                 {"name": "x", "extra": 1}):
        st, doc, _ = srv.jreq("POST", "/api/v1/users/%s/keys" % A, body, admin=True)
        expect_error(st, doc, 422, "invalid_field")
    # Another user's key cannot be revoked by A.
    kb = mk_key(srv, B, ["buy"])
    before_b = snapshot(srv, B)
    st, doc, _ = srv.jreq("DELETE", "/api/v1/keys/" + kb["key_id"], headers=bearer(buy))
    expect_error(st, doc, 403, "forbidden")
    st, doc, _ = srv.jreq("GET", "/api/v1/me", headers=bearer(kb["token"]))
    check(st == 200, "B's key still works")
    check(snapshot(srv, A) == before_a, "A changed")
    check(snapshot(srv, B) == before_b, "B changed")
    st, doc, _ = srv.jreq("GET", "/api/v1/users/esc-new-" + t, admin=True)
    expect_error(st, doc, 404, "not_found")
    # An admin user's admin key may create admin keys for admins; a demoted admin's key loses
    # the scope at once.
    adm = mk_key(srv, boss, ["admin", "buy"])["token"]
    st, doc, _ = srv.jreq("POST", "/api/v1/users/%s/keys" % boss,
                          {"name": "y", "scopes": ["admin"]}, headers=bearer(adm))
    check(st == 201 and doc["scopes"] == ["admin"], doc)
    st, _, _ = srv.jreq("PATCH", "/api/v1/users/" + boss, {"is_admin": False}, admin=True)
    st, doc, _ = srv.jreq("GET", "/api/v1/users", headers=bearer(adm))
    expect_error(st, doc, 403, "forbidden")
    # The built-in admin stays an enabled admin.
    st, doc, _ = srv.jreq("PATCH", "/api/v1/users/admin", {"disabled": True}, admin=True)
    expect_error(st, doc, 409, "conflict")
    invariant(srv)


def t_users_and_audit(srv):
    """User create/get/patch validation, 409 on exists, and an audit row per admin action."""
    t = uuid.uuid4().hex[:6]
    u = "aud-" + t
    doc = mk_user(srv, u, username="Ann", email="ann@example.org", credits=2.5)
    check(doc["username"] == "Ann" and doc["email"] == "ann@example.org", doc)
    check(doc["is_admin"] is False and doc["disabled"] is False and doc["credits"] == 2.5, doc)
    st, doc, _ = srv.jreq("POST", "/api/v1/users", {"user_id": u}, admin=True)
    expect_error(st, doc, 409, "conflict")
    for body, field in (({"user_id": "bad id"}, "user_id"), ({}, "user_id"),
                        ({"user_id": "x" + t, "email": "nope"}, "email"),
                        ({"user_id": "x" + t, "credits": -1}, "credits"),
                        ({"user_id": "x" + t, "is_admin": "yes"}, "is_admin"),
                        ({"user_id": "x" + t, "role": "admin"}, "role")):
        st, doc, _ = srv.jreq("POST", "/api/v1/users", body, admin=True)
        expect_error(st, doc, 422, "invalid_field", field)
    for body in ({}, {"limits": {"nope": 1}}, {"limits": {"submit_per_second": -1}},
                 {"limits": [1]}, {"disabled": 1}, {"username": "x"}):
        st, doc, _ = srv.jreq("PATCH", "/api/v1/users/" + u, body, admin=True)
        expect_error(st, doc, 422, "invalid_field")
    st, doc, _ = srv.jreq("PATCH", "/api/v1/users/nobody-" + t, {"disabled": True}, admin=True)
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("PATCH", "/api/v1/users/" + u,
                          {"limits": {"submit_per_second": 2, "max_running_jobs": 3}}, admin=True)
    check(st == 200 and doc["limits"] == {"submit_per_second": 2, "max_pending_jobs": 10000,
                                          "max_running_jobs": 3}, doc)
    st, doc, _ = srv.jreq("PATCH", "/api/v1/users/" + u, {"limits": None}, admin=True)
    check(st == 200 and doc["limits"]["submit_per_second"] == 100, doc)
    k = mk_key(srv, u, ["buy"])
    st, _, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % u, {"amount": 1}, admin=True)
    j = submit(srv, buyer_id=u)
    st, _, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)
    st, _, _ = srv.jreq("DELETE", "/api/v1/keys/" + k["key_id"], admin=True)
    st, rows, _ = srv.jreq("GET", "/api/v1/audit?limit=50", admin=True)
    check(st == 200, rows)
    mine = [(r["action"], r["target"]) for r in rows
            if r["target"] in (u, k["key_id"], j["job_id"])]
    want = [("key.revoke", k["key_id"]), ("job.cancel", j["job_id"]), ("credits.grant", u),
            ("key.create", k["key_id"]), ("user.patch", u), ("user.patch", u),
            ("user.create", u)]
    check(mine == want, "audit rows (newest first): %r" % mine)
    for r in rows:
        check(set(r) == {"id", "at", "actor", "action", "target", "detail"}, r)
    check(all(r["actor"] == "admin" for r in rows if r["target"] == u), rows)
    check(k["token"] not in json.dumps(rows), "a token in the audit log")
    # The failed attempts above left no rows.
    check(not [r for r in rows if r["target"].startswith("x" + t)], rows)
    st, doc, _ = srv.jreq("GET", "/api/v1/audit?limit=0", admin=True)
    expect_error(st, doc, 422, "invalid_field")
    invariant(srv)


def t_rate_limits(srv):
    """submit_per_second (429 rate_limited + Retry-After) and max_pending_jobs (429
    quota_exceeded), per user, set through PATCH limits; admins are exempt."""
    t = uuid.uuid4().hex[:6]
    R, Q = "rate-" + t, "quota-" + t
    mk_user(srv, R)
    mk_user(srv, Q)
    kr, kq = mk_key(srv, R, ["buy"])["token"], mk_key(srv, Q, ["buy"])["token"]
    # The default (100 per second, burst 200) lets a handful through.
    for _ in range(5):
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=R), headers=bearer(kr))
        check(st == 201, "default rate: %d %r" % (st, doc))
    # One every 20 s: a burst of 1, then 429 with a whole-seconds Retry-After.
    st, doc, _ = srv.jreq("PATCH", "/api/v1/users/" + R, {"limits": {"submit_per_second": 0.05}},
                          admin=True)
    check(st == 200, doc)
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=R), headers=bearer(kr))
    check(st == 201, "first submit after the change: %d %r" % (st, doc))
    before = snapshot(srv, R)
    st, doc, hd = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=R), headers=bearer(kr))
    expect_error(st, doc, 429, "rate_limited")
    ra = hd.get("retry-after", "")
    check(ra.isdigit() and 1 <= int(ra) <= 20, "Retry-After %r" % ra)
    check(snapshot(srv, R) == before, "a rate-limited submit stored something")
    # The admin token is exempt, for the same buyer.
    submit(srv, buyer_id=R)
    # max_pending_jobs: 2 pending, the third is refused and nothing is stored.
    st, doc, _ = srv.jreq("PATCH", "/api/v1/users/" + Q, {"limits": {"max_pending_jobs": 2}},
                          admin=True)
    check(st == 200 and doc["limits"]["max_pending_jobs"] == 2, doc)
    ids = []
    for _ in range(2):
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=Q), headers=bearer(kq))
        check(st == 201, doc)
        ids.append(doc["job_id"])
    before = snapshot(srv, Q)
    st, doc, hd = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=Q), headers=bearer(kq))
    expect_error(st, doc, 429, "quota_exceeded")
    check(snapshot(srv, Q) == before, "a submit over the quota stored something")
    st, _, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % ids[0], headers=bearer(kq))
    check(st == 200, "own cancel: %d" % st)
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=Q), headers=bearer(kq))
    check(st == 201, "under the quota again: %d %r" % (st, doc))
    invariant(srv)


def t_brute_force(args):
    """More than 20 failed authentications from one address within a minute: 429 with
    Retry-After for that address's credentials for a minute (anonymous requests still pass)."""
    srv = Server(args, {"AUTH_FAILURES_PER_MINUTE": "20"}).start()
    try:
        k = mk_key(srv, "admin", ["buy"])  # a valid key, used once blocked
        for i in range(20):
            h = bearer("co_wrong%d" % i) if i % 2 else {"X-Admin-Token": "wrong-%d" % i}
            st, doc, _ = srv.jreq("GET", "/api/v1/jobs", headers=h)
            expect_error(st, doc, 401, "unauthorized")
        # Twenty failures are allowed; the 21st blocks the address.
        st, doc, _ = srv.jreq("GET", "/api/v1/me", headers=bearer("co_wrong21"))
        expect_error(st, doc, 401, "unauthorized")
        for h in (bearer("co_wrong22"), bearer(k["token"]), {"X-Admin-Token": ADMIN}):
            st, doc, hd = srv.jreq("GET", "/api/v1/me", headers=h)
            expect_error(st, doc, 429, "rate_limited")
            ra = hd.get("retry-after", "")
            check(ra.isdigit() and 1 <= int(ra) <= 60, "Retry-After %r" % ra)
        st, doc, _ = srv.jreq("GET", "/api/v1/health")
        check(st == 200, "anonymous health while blocked: %d" % st)
        with open(os.path.join(srv.workdir, "coordinator.log")) as f:
            log = f.read()
        check(k["token"] not in log and ADMIN not in log and "co_wrong" not in log,
              "a token in the log")
    finally:
        srv.stop()


def t_secure_defaults(args):
    """ADMIN_TOKEN shorter than 24 characters or the .env.example placeholder: refused (exit 2,
    the message names ADMIN_TOKEN, never the token) unless DEBUG=true."""
    for tok in ("short-admin-token", "change_me_to_a_long_random_string"):
        srv = Server(args, {"ADMIN_TOKEN": tok})
        del srv.env["DEBUG"]
        p = subprocess.run([args.bin], cwd=srv.workdir, env=srv.env, capture_output=True,
                           timeout=20)
        out = (p.stdout + p.stderr).decode()
        check(p.returncode == 2, "%s: exit %d" % (tok, p.returncode))
        check("ADMIN_TOKEN" in out and tok not in out, "message %r" % out)
    long_tok = "a-long-enough-admin-token-0123456789"
    srv = Server(args, {"ADMIN_TOKEN": long_tok})
    del srv.env["DEBUG"]
    srv.admin_token = long_tok
    srv.start()
    try:
        st, doc, _ = srv.jreq("GET", "/api/v1/me", admin=True)
        check(st == 200 and doc["user_id"] == "admin", doc)
    finally:
        srv.stop()
    with open(os.path.join(srv.workdir, "coordinator.log")) as f:
        check(long_tok not in f.read(), "the token is in the log")
    with open(os.path.join(srv.workdir, "stdout.log")) as f:
        check(long_tok not in f.read(), "the token is on stdout")


def t_cors_methods(srv):
    """The preflight allows the accounts methods and the Authorization header."""
    st, hd, _ = srv.req("OPTIONS", "/api/v1/keys/k_1",
                        headers={"Origin": "http://allowed.example",
                                 "Access-Control-Request-Method": "DELETE",
                                 "Access-Control-Request-Headers": "authorization"})
    check(st == 204, st)
    methods = hd.get("access-control-allow-methods", "")
    headers = hd.get("access-control-allow-headers", "").lower()
    check("PATCH" in methods and "DELETE" in methods, methods)
    check("authorization" in headers, headers)


def t_sanitizer_reports():
    """ASan/UBSan/LSan write their reports to stderr, which every Server sends to stdout.log."""
    bad = cotest.sanitizer_reports()
    check(not bad, "; ".join(bad))


# ------------------------------------------------------------ pricing and reputation (#14)

def job_ledger(srv, uid, job_id):
    """{kind: (amount, held)} of @uid's ledger rows for @job_id, amounts in micro-credits."""
    st, rows, _ = srv.jreq("GET", "/api/v1/credits/%s/ledger?limit=1000" % uid, admin=True)
    check(st == 200, "ledger of %s: %d %r" % (uid, st, rows))
    return {r["kind"]: (micro(r["amount"]), micro(r["held"])) for r in rows
            if r["job_id"] == job_id}


def poll_job(srv, job_id, pred, what, timeout=15.0):
    deadline = time.time() + timeout
    doc = None
    while time.time() < deadline:
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + job_id, admin=True)
        if st == 200 and pred(doc):
            return doc
        time.sleep(0.1)
    raise cotest.CaseFailed("%s: job %s is %r" % (what, job_id, doc))


def run_poll_job(srv, wid, buyer, final, **kw):
    """Submit a job for @buyer, take it with @wid's /task, report @final; the job after."""
    j = submit(srv, buyer_id=buyer, **kw)
    st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
    check(st == 200 and a["job_id"] == j["job_id"], "task: %d %r" % (st, a))
    body = {"worker_id": wid, "job_id": j["job_id"], "attempt": a["attempt"]}
    body.update(final)
    st, doc, _ = srv.jreq("POST", "/api/v1/status", body)
    check(st == 200, "status: %d %r" % (st, doc))
    return doc


def t_metered(args):
    """PRICING=metered: 2 cores at 100 micro/core-s + 512 MB at 50 micro/GB-s = 225 micro per
    started second; a 10 s timeout holds 2250; PLATFORM_FEE_PERCENT=10 of each charge."""
    srv = Server(args, {"PRICING": "metered", "PRICE_PER_CORE_SECOND": "0.0001",
                        "PRICE_PER_GB_SECOND": "0.00005", "PLATFORM_FEE_PERCENT": "10",
                        "OPEN_REGISTRATION": "true"}).start()
    try:
        drain_pending(srv)  # PostgreSQL: the database is shared with the other cases
        wid, owner, buyer = "met-w", "met-seller", "met-buyer"
        register(srv, wid, cores=4, ram=4096, owner=owner)
        # (wall_ms or a failure, charge, fee): 1 ms, exactly 1 s, 1 s + 1 ms, 9.999 s, timeout.
        cases = ((1, 225, 22), (1000, 225, 22), (1001, 450, 45), (9999, 2250, 225),
                 ("timeout", 2250, 225))
        for wall, charge, fee in cases:
            if wall == "timeout":
                final = {"status": "failed", "failure_reason": "timeout"}
            else:
                final = {"status": "completed", "exit_code": 0,
                         "usage": {"wall_ms": wall, "cpu_ms": 1, "max_rss_kb": 1}}
            j = submit(srv, buyer_id=buyer, required_cores=2, required_ram_mb=512,
                       timeout_seconds=10)
            check(micro(j["cost"]) == 2250 and j["pricing"] == "metered", j)
            check(j["charged"] is None, j)
            st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
            check(st == 200 and a["job_id"] == j["job_id"], a)
            final.update({"worker_id": wid, "job_id": j["job_id"], "attempt": a["attempt"]})
            st, doc, _ = srv.jreq("POST", "/api/v1/status", final)
            check(st == 200 and micro(doc["charged"]) == charge, "%r: %r" % (wall, doc))
            rows = job_ledger(srv, buyer, j["job_id"])
            check(rows["hold"] == (-2250, 2250), rows)
            check(rows["charge"] == (0, -charge), "%r: %r" % (wall, rows))
            if charge < 2250:
                check(rows["refund"] == (2250 - charge, -(2250 - charge)), rows)
            else:
                check("refund" not in rows, rows)
            check(job_ledger(srv, owner, j["job_id"]) == {"payout": (charge - fee, 0)},
                  "%r: %r" % (wall, job_ledger(srv, owner, j["job_id"])))
            check(job_ledger(srv, "platform", j["job_id"]) == {"fee": (fee, 0)},
                  job_ledger(srv, "platform", j["job_id"]))
            invariant(srv)
        # Statements: spending, earnings and fees per day (today is the last day).
        total = sum(c for _, c, _ in cases)
        fees = sum(f for _, _, f in cases)
        for uid, key, want in ((buyer, "spent", total), (owner, "earned", total - fees),
                               ("platform", "fees", fees)):
            st, days, _ = srv.jreq("GET", "/api/v1/users/%s/statement?days=3" % uid, admin=True)
            check(st == 200 and len(days) == 3, "statement %s: %d %r" % (uid, st, days))
            check(micro(days[-1][key]) == want, "statement %s: %r" % (uid, days))
            check(re.match(r"^\d{4}-\d\d-\d\d$", days[-1]["day"]), days)
            check(all(micro(d[key]) == 0 for d in days[:-1]), days)
        st, doc, _ = srv.jreq("GET", "/api/v1/users/%s/statement?days=0" % buyer, admin=True)
        expect_error(st, doc, 422, "invalid_field", "days")
        st, doc, _ = srv.jreq("GET", "/api/v1/users/%s/statement" % buyer)
        check(st == 401, "anonymous statement: %d %r" % (st, doc))
        # Self or admin: a user's own key reads its statement, another user's key is refused,
        # and an unknown user is 404.
        mk_user(srv, "met-other")
        other = mk_key(srv, "met-other")["token"]
        st, doc, _ = srv.jreq("GET", "/api/v1/users/%s/statement" % buyer, headers=bearer(other))
        expect_error(st, doc, 403, "forbidden")
        st, days, _ = srv.jreq("GET", "/api/v1/users/met-other/statement?days=1",
                               headers=bearer(other))
        check(st == 200 and len(days) == 1 and micro(days[0]["spent"]) == 0,
              "own statement: %d %r" % (st, days))
        st, doc, _ = srv.jreq("GET", "/api/v1/users/nobody-met/statement", admin=True)
        expect_error(st, doc, 404, "not_found")
        # A cancel of a running job charges the seconds it ran (at least one).
        j = submit(srv, buyer_id=buyer, required_cores=2, required_ram_mb=512, timeout_seconds=10)
        st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
        srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                            "status": "running", "attempt": a["attempt"]})
        st, doc, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)
        check(st == 200 and doc["status"] == "cancelled", doc)
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"], admin=True)
        check(225 <= micro(doc["charged"]) <= 2250 and micro(doc["charged"]) % 225 == 0, doc)
        invariant(srv)
    finally:
        srv.stop()


def t_pricing_settings(args):
    """Prices whose hold for the largest job overflows int64 stop the start, naming the
    setting; so do an unknown PRICING and a fee outside 0-100."""
    for var, val, extra in (("PRICE_PER_CORE_SECOND", "9000000000000", {"PRICING": "metered"}),
                            ("PRICE_PER_GB_SECOND", "100000", {"PRICING": "metered"}),
                            ("PRICING", "auction", {}),
                            ("PLATFORM_FEE_PERCENT", "101", {})):
        env = dict(extra)
        env[var] = val
        srv = Server(args, env)
        p = subprocess.run([args.bin], cwd=srv.workdir, env=srv.env, capture_output=True,
                           timeout=20)
        check(p.returncode == 2, "%s=%s: exit %d" % (var, val, p.returncode))
        check(var in p.stderr.decode(), "%s=%s: message %r" % (var, val, p.stderr))


def t_reputation(srv):
    """Reputation: 0.8 for a newcomer (Beta(4,1) prior), down after a timeout and a lost job;
    min_reputation excludes a worker below it; out-of-range values are 422."""
    for bad in (1.5, -0.1, "0.5", 0.1234567):
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(min_reputation=bad), admin=True)
        expect_error(st, doc, 422, "invalid_field", "min_reputation")
    drain_pending(srv)
    sfx = uuid.uuid4().hex[:6]
    low, good, buyer = "rep-low-" + sfx, "rep-good-" + sfx, "rep-b-" + sfx
    register(srv, low, cores=2, ram=1024, owner="rep-s1-" + sfx)

    def rep(wid):
        st, ws, _ = srv.jreq("GET", "/api/v1/workers")
        return micro([w for w in ws if w["worker_id"] == wid][0]["reputation"])

    check(rep(low) == 800000, "newcomer: %d" % rep(low))
    run_poll_job(srv, low, buyer, {"status": "failed", "failure_reason": "timeout"})
    check(rep(low) == 666666, "after a timeout: %d" % rep(low))  # 4/6
    run_poll_job(srv, low, buyer, {"status": "completed", "exit_code": 0})
    check(rep(low) == 714285, "after a completion: %d" % rep(low))  # 5/7
    # Lost: unregistered while holding a job.
    j = submit(srv, buyer_id=buyer)
    st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + low)
    check(st == 200 and a["job_id"] == j["job_id"], a)
    st, doc, _ = srv.jreq("POST", "/api/v1/unregister", {"worker_id": low})
    check(st == 200, doc)
    check(rep(low) == 625000, "after a lost job: %d" % rep(low))  # 5/8
    srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)
    register(srv, low, cores=2, ram=1024, owner="rep-s1-" + sfx)
    st, ws, _ = srv.jreq("GET", "/api/v1/workers")
    me = [w for w in ws if w["worker_id"] == low][0]
    check(micro(me["owner_reputation"]) == 625000, me)
    # min_reputation 0.7: the low worker gets nothing, a newcomer (0.8) takes it.
    j = submit(srv, buyer_id=buyer, min_reputation=0.7)
    check(micro(j["min_reputation"]) == 700000, j)
    st, doc, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + low)
    check(st == 204, "a worker below min_reputation got a job: %d %r" % (st, doc))
    register(srv, good, cores=2, ram=1024, owner="rep-s2-" + sfx)
    st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + good)
    check(st == 200 and a["job_id"] == j["job_id"], "the good worker: %d %r" % (st, a))
    srv.jreq("POST", "/api/v1/status", {"worker_id": good, "job_id": j["job_id"],
                                        "status": "completed", "exit_code": 0,
                                        "attempt": a["attempt"]})
    for wid in (low, good):
        srv.jreq("POST", "/api/v1/unregister", {"worker_id": wid})
    invariant(srv)


class FakeAgent:
    """A fake agent on /ws/agent (open registration); @owner and the seller's prices (@core,
    @gb) go in the hello when given."""

    def __init__(self, srv, worker_id, owner=None, core=None, gb=None, cores=4, ram_mb=4096):
        self.worker_id = worker_id
        self.ws = cotest.WebSocket(srv.port, "/ws/agent", "cacheout.agent.v1")
        check(self.ws.status == 101, "agent upgrade answered %s" % self.ws.status)
        hello = {"v": 1, "type": "hello", "token": "", "worker_id": worker_id, "cores": cores,
                 "ram_mb": ram_mb, "images": ["default"]}
        for k, v in (("owner_id", owner), ("price_per_core_second", core),
                     ("price_per_gb_second", gb)):
            if v is not None:
                hello[k] = v
        self.ws.send(hello)
        self.ws.expect(lambda m: m.get("type") == "welcome", 10, "welcome")

    def wait_closed(self, timeout=10):
        """Until the coordinator closes the session (CaseFailed if it does not)."""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self.ws.recv(max(0.01, deadline - time.time()))
        except EOFError:
            return
        raise cotest.CaseFailed("the session of %s is still open after %ds" %
                                (self.worker_id, timeout))

    def run(self, job_id, wall_ms):
        a, _ = self.ws.expect(lambda m: m.get("type") == "job.assign" and
                              m["job_id"] == job_id, 10, "job.assign")
        att = a["attempt"]
        for t in ("job.accepted", "job.started"):
            self.ws.send({"v": 1, "type": t, "job_id": job_id, "attempt": att,
                          "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())})
        self.ws.send({"v": 1, "type": "job.finished", "job_id": job_id, "attempt": att,
                      "status": "ok", "exit_code": 0, "signal": None, "wall_ms": wall_ms,
                      "cpu_ms": 1, "max_rss_kb": 1000})

    def close(self):
        self.ws.close()


def wait_offline(srv, wid, timeout=10):
    """Until @wid is offline (an agent's disconnect stored: a write still queued when the
    coordinator stops is dropped with its agent hub, reported as a leak by the sanitizer build)."""
    cotest.wait_until(lambda: [w for w in srv.jreq("GET", "/api/v1/workers")[1]
                               if w["worker_id"] == wid][0]["status"] == "offline",
                      timeout, "worker %s offline" % wid)


def t_poll_fence(srv):
    """A worker is held by one session, an agent's or the poll protocol's: whoever registered
    last.  POST /register closes the agent session of the worker and its /task claims; the
    agent's next hello takes the worker back and /task, /status, /unregister are refused (409
    conflict, field session) and change nothing."""
    drain_pending(srv)
    wid = "fence-w-" + uuid.uuid4().hex[:6]
    buyer = "fence-b-" + uuid.uuid4().hex[:6]
    agent = FakeAgent(srv, wid, cores=2, ram_mb=2048)
    try:
        register(srv, wid, cores=2, ram=2048)
        agent.wait_closed()
        check(agent.ws.close_code == 1001 and "moved" in (agent.ws.close_reason or ""),
              "the agent session closed with %r %r" % (agent.ws.close_code,
                                                       agent.ws.close_reason))
        j = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=100)
        st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
        check(st == 200 and a["job_id"] == j["job_id"] and a["attempt"] == 1,
              "task after the register: %d %r" % (st, a))
        for report in ({"status": "running"}, {"status": "completed", "exit_code": 0}):
            st, doc, _ = srv.jreq("POST", "/api/v1/status",
                                  dict(report, worker_id=wid, job_id=j["job_id"], attempt=1))
            check(st == 200 and doc["status"] == report["status"], "status: %d %r" % (st, doc))

        # The poll worker holds a job when the agent says hello again: the agent's now.
        j2 = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=100)
        st, a, _ = srv.jreq("GET", "/api/v1/task?worker_id=" + wid)
        check(st == 200 and a["job_id"] == j2["job_id"], "task: %d %r" % (st, a))
        agent = FakeAgent(srv, wid, cores=2, ram_mb=2048)
        # A job the agent's scheduler leaves alone (an image the agent lacks) that /task would
        # give to this worker.
        j3 = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=100,
                    image="elsewhere")
        for method, path, body in (
                ("GET", "/api/v1/task?worker_id=" + wid, None),
                ("POST", "/api/v1/status", {"worker_id": wid, "job_id": j2["job_id"],
                                            "status": "running", "attempt": 1,
                                            "stdout": "refused\n"}),
                ("POST", "/api/v1/unregister", {"worker_id": wid})):
            st, doc, _ = srv.jreq(method, path, body)
            expect_error(st, doc, 409, "conflict", "session")
            check("agent session" in doc["error"]["message"], doc)
        doc = srv.jreq("GET", "/api/v1/jobs/" + j3["job_id"], admin=True)[1]
        check(doc["status"] == "pending" and doc["attempts"] == 0, "j3 claimed: %r" % doc)
        doc = srv.jreq("GET", "/api/v1/jobs/" + j2["job_id"], admin=True)[1]
        check(doc["status"] == "assigned" and doc["assigned_worker"] == wid, doc)
        out = srv.jreq("GET", "/api/v1/jobs/%s/output" % j2["job_id"], admin=True)[1]
        check(out["stdout"] == "", "refused output stored: %r" % out)
        me = [w for w in srv.jreq("GET", "/api/v1/workers")[1] if w["worker_id"] == wid][0]
        check(me["status"] != "offline" and me["connection"] == "websocket", me)
        for jid in (j2["job_id"], j3["job_id"]):
            st, doc, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % jid, admin=True)
            check(st == 200, "cancel %s: %d %r" % (jid, st, doc))
    finally:
        agent.close()
    wait_offline(srv, wid)
    invariant(srv)


def t_market(args):
    """PRICING=market with three sellers at different prices: a maximum below all of them stays
    pending (no_agent_within_price, naming the cheapest); otherwise the cheapest fitting agent
    runs it and the buyer pays that seller's price, not the maximum; 10% fee to platform."""
    srv = Server(args, {"PRICING": "market", "PLATFORM_FEE_PERCENT": "10"}).start()
    agents = []
    try:
        drain_pending(srv)  # PostgreSQL: the database is shared with the other cases
        buyer = "mkt-buyer"
        # Required in this mode: both maximums.
        st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=buyer), admin=True)
        expect_error(st, doc, 422, "invalid_field", "max_price_per_core_second")
        check("PRICING=market" in doc["error"]["message"], doc)
        st, doc, _ = srv.jreq("POST", "/api/v1/submit",
                              job_body(buyer_id=buyer, max_price_per_core_second=0.001),
                              admin=True)
        expect_error(st, doc, 422, "invalid_field", "max_price_per_gb_second")
        st, doc, _ = srv.jreq("POST", "/api/v1/submit",
                              job_body(buyer_id=buyer, max_price_per_core_second=-1,
                                       max_price_per_gb_second=0), admin=True)
        expect_error(st, doc, 422, "invalid_field", "max_price_per_core_second")
        for wid, owner, core, gb in (("mkt-w1", "mkt-s1", 0.0003, 0.0001),
                                     ("mkt-w2", "mkt-s2", 0.0001, 0.00005),
                                     ("mkt-w3", "mkt-s3", 0.0002, 0.00005)):
            agents.append(FakeAgent(srv, wid, owner, core, gb))
        st, ws, _ = srv.jreq("GET", "/api/v1/workers")
        prices = {w["worker_id"]: (micro(w["price_per_core_second"]),
                                   micro(w["price_per_gb_second"])) for w in ws}
        check(prices.get("mkt-w1") == (300, 100) and prices.get("mkt-w2") == (100, 50), prices)
        # Below every seller: pending, naming the cheapest fitting agent and its price.
        low = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=1024,
                     timeout_seconds=10, max_price_per_core_second=0.00005,
                     max_price_per_gb_second=0.001)
        doc = poll_job(srv, low["job_id"], lambda d: (d.get("pending_reason") or {}).get(
            "code") == "no_agent_within_price", "pending_reason")
        msg = doc["pending_reason"]["message"]
        check("mkt-w2" in msg and "0.0001" in msg, msg)
        check(doc["status"] == "pending" and doc["assigned_worker"] is None, doc)
        # Within w2 and w3 (not w1): the cheapest, w2, runs it at its own price.
        j = submit(srv, buyer_id=buyer, required_cores=1, required_ram_mb=1024,
                   timeout_seconds=10, max_price_per_core_second=0.00025,
                   max_price_per_gb_second=0.0001)
        # hold = 10 s x (250 + 1024 MB x 100 / 1024) = 3500
        check(micro(j["cost"]) == 3500 and j["pricing"] == "market", j)
        doc = poll_job(srv, j["job_id"], lambda d: d["assigned_worker"], "assignment")
        check(doc["assigned_worker"] == "mkt-w2", "the cheapest did not win: %r" % doc)
        agents[1].run(j["job_id"], 1500)  # 2 started seconds x (100 + 50) = 300
        doc = poll_job(srv, j["job_id"], lambda d: d["status"] == "completed", "completion")
        check(micro(doc["charged"]) == 300, doc)
        check(micro(doc["price_per_core_second"]) == 100, doc)
        rows = job_ledger(srv, buyer, j["job_id"])
        check(rows["charge"] == (0, -300) and rows["refund"] == (3200, -3200), rows)
        check(job_ledger(srv, "mkt-s2", j["job_id"]) == {"payout": (270, 0)},
              job_ledger(srv, "mkt-s2", j["job_id"]))
        check(job_ledger(srv, "platform", j["job_id"]) == {"fee": (30, 0)},
              job_ledger(srv, "platform", j["job_id"]))
        invariant(srv)
        # A seller lowers its price (PATCH, owner or admin): the pending job finds it.
        st, doc, _ = srv.jreq("PATCH", "/api/v1/workers/mkt-w3", {"price_per_core_second": 0.1})
        check(st == 401, "anonymous PATCH: %d %r" % (st, doc))
        mk_user(srv, "mkt-other")
        other = mk_key(srv, "mkt-other")["token"]
        st, doc, _ = srv.jreq("PATCH", "/api/v1/workers/mkt-w3", {"price_per_core_second": 0.1},
                              headers=bearer(other))
        expect_error(st, doc, 403, "forbidden")
        st, doc, _ = srv.jreq("PATCH", "/api/v1/workers/mkt-w3",
                              {"price_per_core_second": "x"}, admin=True)
        expect_error(st, doc, 422, "invalid_field", "price_per_core_second")
        st, doc, _ = srv.jreq("PATCH", "/api/v1/workers/mkt-w3", {"colour": 1}, admin=True)
        expect_error(st, doc, 422, "invalid_field", "colour")
        st, doc, _ = srv.jreq("PATCH", "/api/v1/workers/ghost", {"price_per_core_second": 0},
                              admin=True)
        expect_error(st, doc, 404, "not_found")
        mk_user(srv, "mkt-s3")
        s3 = mk_key(srv, "mkt-s3")["token"]
        st, doc, _ = srv.jreq("PATCH", "/api/v1/workers/mkt-w3",
                              {"price_per_core_second": 0.00001}, headers=bearer(s3))
        check(st == 200 and micro(doc["price_per_core_second"]) == 10, doc)
        check(micro(doc["price_per_gb_second"]) == 50, doc)  # left out: kept
        doc = poll_job(srv, low["job_id"], lambda d: d["assigned_worker"], "after PATCH",
                       timeout=30)
        check(doc["assigned_worker"] == "mkt-w3", doc)
        agents[2].run(low["job_id"], 1)
        doc = poll_job(srv, low["job_id"], lambda d: d["status"] == "completed", "completion")
        check(micro(doc["charged"]) == 60, doc)  # 1 s x (10 + 50)
        invariant(srv)
    finally:
        for a in agents:
            a.close()
        # Stop once the disconnects are stored: a write still queued when the coordinator stops
        # is dropped with its agent hub (reported as a leak by the sanitizer build).
        deadline = time.time() + 10
        while agents and time.time() < deadline:
            st, ws, _ = srv.jreq("GET", "/api/v1/workers")
            if st == 200 and all(w["status"] == "offline" for w in ws
                                 if w["worker_id"].startswith("mkt-w")):
                break
            time.sleep(0.1)
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--label", default="sqlite")
    ap.add_argument("--pg-dir", default="")
    ap.add_argument("--pg-port", default="")
    ap.add_argument("--pg-bin", default="")
    ap.add_argument("--quick", action="store_true", help="skip the slow extra instances")
    args = ap.parse_args()
    run = cotest.Runner(args.label)
    case = run.case
    srv = Server(args).start()
    try:
        case("health", t_health, srv)
        case("original README examples (curl, verbatim)", t_readme_examples, srv)
        case("submit auth: missing/wrong admin token", t_submit_auth, srv)
        case("admin endpoints auth", t_admin_endpoints_auth, srv)
        case("submit validation and boundaries", t_submit_validation, srv)
        case("malformed, oversized, wrong type, no Content-Length", t_bad_bodies, srv)
        case("402 insufficient credits stores nothing", t_insufficient, srv)
        case("job list: order, filters, paging, bad queries", t_jobs_list, srv)
        case("job get, code only for admin, output", t_job_get, srv)
        case("cancel: refund, 409, 404", t_cancel, srv)
        case("poll worker flow: task, status, settlement, unregister", t_worker_flow, srv)
        case("worker endpoint errors", t_worker_errors, srv)
        case("credits: get, grant, ledger", t_credits, srv)
        case("routing: 404, 405", t_routing, srv)
        case("CORS: allowed, denied, preflight", t_cors, srv)
        case("static placeholder, SPA fallback, security headers", t_static, srv)
        case("metrics parse as Prometheus text", t_metrics, srv)
        case("websocket handshakes", t_websockets, srv)
        case("50 parallel submits, balance covers 10", t_concurrency, srv)
        case("startup warning and access log", t_open_registration_warning, srv)
        case("role x endpoint matrix (9 roles, every cell asserted)", t_role_matrix, srv)
        case("visibility: public view, own jobs in full, owner_id", t_visibility, srv)
        case("malformed, unknown, revoked, disabled credentials: 401, nothing changed",
             t_bad_credentials, srv)
        case("scope escalation, other users' ids: 403, nothing changed", t_escalation, srv)
        case("users: create, patch, validation; audit rows", t_users_and_audit, srv)
        case("limits: submit rate 429 + Retry-After, pending quota 429", t_rate_limits, srv)
        case("CORS preflight: PATCH, DELETE, Authorization", t_cors_methods, srv)
        case("key lookups and cache hits counted in /metrics", t_key_counters, srv)
        case("restart after kill -9 keeps every acknowledged job and credit", t_restart, srv,
             args)
        case("Idempotency-Key: replay, mismatch, concurrent, credentials, restart",
             t_idempotency, srv, args)
        case("retention: old code, output and silent workers go; rows and ledger stay",
             t_retention, srv)
        case("reputation: prior, timeout and lost lower it, min_reputation", t_reputation, srv)
        case("poll fence: register closes the agent session; after a hello, task, status, "
             "unregister 409", t_poll_fence, srv)
        if args.pg_dir:
            case("PostgreSQL restart: 503 during the gap, recovery after", t_pg_restart, srv,
                 args)
    finally:
        srv.stop()
    case("PRICING=metered: hand-computed settlement at the rounding edges, fee, statements",
         t_metered, args)
    case("PRICING=market: three sellers, cheapest within the maximum, seller's price, PATCH",
         t_market, args)
    case("pricing settings: overflow, unknown mode, fee out of range exit 2", t_pricing_settings,
         args)
    if not args.quick:
        case("AGENT_TOKEN set: 401 without it", t_agent_token, args)
        case("MAX_WORKERS enforced at registration", t_max_workers, args)
        case("worker offline after WORKER_TIMEOUT_SECONDS", t_offline, args)
        case("config errors exit 2 naming the variable; port in use", t_config_errors, args)
        case("ADMIN_TOKEN generated and printed once", t_generated_token, args)
        case(".env in the working directory", t_env_file, args)
        case("static files from FRONTEND_DIR", t_static_dist, args)
        case("graceful shutdown on SIGTERM", t_shutdown, args)
        case("failed authentications throttled per address (429, Retry-After)", t_brute_force,
             args)
        case("secure defaults: weak ADMIN_TOKEN refused unless DEBUG=true", t_secure_defaults,
             args)
    case("no sanitizer or runtime error reports in any coordinator log", t_sanitizer_reports)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
