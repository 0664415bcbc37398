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
        }
        settings.update(env_extra or {})
        db = database_url if database_url is not None else args.database_url
        super().__init__(args.bin, args.sql_dir, ADMIN, database_url=db, settings=settings,
                         workdir=workdir, output="stdout.log")

    def start(self, wait=True):
        """Start; with @wait, until health answers (200, or 503 when the database is down)."""
        return super().start(wait=wait, ready=(200, 503))


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
    code, body = curl([base + "/api/v1/credits/default-buyer"])
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
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    before = doc
    st, jobs_before, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer)
    st, doc, _ = srv.jreq("POST", "/api/v1/submit",
                          job_body(buyer_id=buyer, required_cores=64, required_ram_mb=60000),
                          admin=True)
    expect_error(st, doc, 402, "insufficient_credits")
    st, after, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    check(after == before, "balance changed: %r -> %r" % (before, after))
    st, jobs_after, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer)
    check(len(jobs_after) == len(jobs_before), "a job was stored")
    invariant(srv)


def t_jobs_list(srv):
    buyer = "lister-" + uuid.uuid4().hex[:6]
    ids = [submit(srv, buyer_id=buyer, title="j%d" % i)["job_id"] for i in range(5)]
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer)
    check(st == 200 and [j["job_id"] for j in doc] == ids[::-1], "newest first: %r" % doc)
    check(all("code" not in j for j in doc), "code leaked in list")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&limit=2" % buyer)
    check([j["job_id"] for j in doc] == ids[::-1][:2], doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&limit=2&offset=2" % buyer)
    check([j["job_id"] for j in doc] == ids[::-1][2:4], doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&status=pending" % buyer)
    check(len(doc) == 5, doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=%s&status=completed" % buyer)
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
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"], admin=True)
    check(st == 200 and doc["code"] == "print(1)", doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"],
                          headers={"X-Admin-Token": "wrong"})
    check(st == 200 and "code" not in doc, "wrong token must not reveal code")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/no-such-job")
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/no-such-job/output", admin=True)
    expect_error(st, doc, 404, "not_found")
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/%s/output" % j["job_id"], admin=True)
    check(st == 200 and doc["stdout"] == "" and doc["truncated"] is False, doc)


def t_cancel(srv):
    buyer = "canceller-" + uuid.uuid4().hex[:6]
    j = submit(srv, buyer_id=buyer, required_cores=2, required_ram_mb=1000)
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    check(micro(c["held"]) == cost_of(2, 1000), c)
    st, doc, _ = srv.jreq("POST", "/api/v1/jobs/%s/cancel" % j["job_id"], admin=True)
    check(st == 200 and doc["status"] == "cancelled", doc)
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
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
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"])
    check(doc["status"] == "assigned" and doc["assigned_worker"] == wid, doc)
    st, ws, _ = srv.jreq("GET", "/api/v1/workers")
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
    st, b, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    cost = cost_of(2, 1000)
    check(micro(b["credits"]) == 10000000 - cost - cost_of(4, 100), b)
    check(micro(b["held"]) == cost_of(4, 100), b)
    st, o, _ = srv.jreq("GET", "/api/v1/credits/" + owner)
    check(st == 200 and micro(o["credits"]) >= cost, o)
    # Finishing twice changes nothing.
    st, doc, _ = srv.jreq("POST", "/api/v1/status", {"worker_id": wid, "job_id": j["job_id"],
                                                     "status": "failed", "exit_code": 1,
                                                     "attempt": 1})
    check(st in (200, 409), "second finish: %d %r" % (st, doc))
    st, b2, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
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
        st, before, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
        body = {"worker_id": wid, "job_id": j3["job_id"], "status": "failed", "exit_code": 3,
                "attempt": a["attempt"]}
        if reason:
            body["failure_reason"] = reason
        st, doc, _ = srv.jreq("POST", "/api/v1/status", body)
        check(st == 200 and doc["status"] == "failed", doc)
        check(doc["failure_reason"] == (reason or "exit_code"), doc)
        st, after, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
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
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j4["job_id"])
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
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/nobody-" + uuid.uuid4().hex[:6])
    expect_error(st, doc, 404, "not_found")
    u = "granted-" + uuid.uuid4().hex[:6]
    st, doc, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % u, {"amount": 2.5}, admin=True)
    check(st == 200 and micro(doc["credits"]) == 12500000 and micro(doc["held"]) == 0, doc)
    st, doc, _ = srv.jreq("POST", "/api/v1/credits/%s/grant" % u, {"amount": 0.000001},
                          admin=True)
    check(st == 200 and micro(doc["credits"]) == 12500001, doc)
    st, doc, _ = srv.jreq("GET", "/api/v1/credits/" + u)
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
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    check(micro(c["credits"]) == 0 and micro(c["held"]) == 10000000, c)
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?limit=1000&buyer_id=" + buyer)
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
    srv = Server(args, {"AGENT_TOKEN": "agent-secret"}).start()
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
        check("AGENT_TOKEN not set" not in f.read(), "warning while token set")


def t_open_registration_warning(srv):
    with open(os.path.join(srv.workdir, "coordinator.log")) as f:
        log = f.read()
    check("AGENT_TOKEN not set" in log, "no startup warning for open registration")
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
        st, c, _ = srv.jreq("GET", "/api/v1/credits/envfile")
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
    st, before, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
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
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + jid)
        check(st == 200 and doc["job_id"] == jid, "job %s lost after kill -9" % jid)
    st, after, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    check(after == before, "credits changed across restart: %r -> %r" % (before, after))
    if racing:
        st, rc, _ = srv.jreq("GET", "/api/v1/credits/race-" + buyer)
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
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer)
    check(len(jobs) == 1, "two jobs for one key: %r" % jobs)
    st, c, _ = srv.jreq("GET", "/api/v1/credits/" + buyer)
    check(micro(c["held"]) == cost_of(1, 100), "held twice: %r" % c)
    # Another body under the same key: 409, nothing created.
    st, doc, _ = srv.jreq("POST", "/api/v1/submit", job_body(buyer_id=buyer, title="other"),
                          headers=h, admin=True)
    expect_error(st, doc, 409, "idempotency_mismatch")
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
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + cbuyer)
    check(len(jobs) == 1, "concurrent duplicates made %d jobs" % len(jobs))
    # Replay after a restart: the key is in the database.
    srv.kill9()
    srv.restart(new_port=True)
    st, again, hd = srv.jreq("POST", "/api/v1/submit", body, headers=h, admin=True)
    check(st == 201 and again == first and hd.get("idempotent-replayed") == "true",
          "after restart: %d %r %r" % (st, again, hd))
    st, jobs, _ = srv.jreq("GET", "/api/v1/jobs?buyer_id=" + buyer)
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
        check(doc["code"] == "", "old code kept: %r" % doc["code"])
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
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"])
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
        st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j2["job_id"])
        check(st == 200, "read after recovery: %d" % st)
    st, doc, _ = srv.jreq("GET", "/api/v1/jobs/" + j["job_id"])
    check(st == 200, "old job after recovery")
    invariant(srv)


def t_sanitizer_reports():
    """ASan/UBSan/LSan write their reports to stderr, which every Server sends to stdout.log."""
    bad = cotest.sanitizer_reports()
    check(not bad, "; ".join(bad))


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
        case("restart after kill -9 keeps every acknowledged job and credit", t_restart, srv,
             args)
        case("Idempotency-Key: replay, mismatch, concurrent, credentials, restart",
             t_idempotency, srv, args)
        case("retention: old code, output and silent workers go; rows and ledger stay",
             t_retention, srv)
        if args.pg_dir:
            case("PostgreSQL restart: 503 during the gap, recovery after", t_pg_restart, srv,
                 args)
    finally:
        srv.stop()
    if not args.quick:
        case("AGENT_TOKEN set: 401 without it", t_agent_token, args)
        case("MAX_WORKERS enforced at registration", t_max_workers, args)
        case("worker offline after WORKER_TIMEOUT_SECONDS", t_offline, args)
        case("config errors exit 2 naming the variable; port in use", t_config_errors, args)
        case("ADMIN_TOKEN generated and printed once", t_generated_token, args)
        case(".env in the working directory", t_env_file, args)
        case("static files from FRONTEND_DIR", t_static_dist, args)
        case("graceful shutdown on SIGTERM", t_shutdown, args)
    case("no sanitizer or runtime error reports in any coordinator log", t_sanitizer_reports)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
