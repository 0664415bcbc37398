#!/usr/bin/env python3
"""Completion callbacks (coordinator/coord_webhook.c): the real coordinator (and, for the
end-to-end case, a real agent) on loopback, with local HTTP receivers written here.

Cases: delivery after two failures with the HMAC checked; SSRF refusals at submit; refusal at
connect time (a name that turns private between submit and delivery, WEBHOOK_DEBUG_HOSTS); a
redirect to a private address not followed; silent and trickling receivers cut while other
deliveries go out; a kill -9 while a delivery is pending; rights of the webhook-secret route.
Prints one line per case and "RESULT <passed> <failed>".
"""
import argparse
import hashlib
import hmac
import http.server
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import cotest  # noqa: E402
from cotest import check, wait_until  # noqa: E402

ADMIN = "webhook-suite-admin-token-0123456789"
AGENT_TOKEN = "webhook-suite-agent-token-0123456789"
ARGS = None


# ---------------------------------------------------------------------------- receivers

class Receiver:
    """A local HTTP server on a free port; @answer(n, handler) decides each POST's answer
    (n counts from 1): an int status, or a callable that writes the answer itself."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []  # (headers dict, body bytes, monotonic time)
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n_bytes = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n_bytes)
                with outer.lock:
                    outer.requests.append((dict(self.headers), body, time.monotonic()))
                    n = len(outer.requests)
                a = outer.answer(n, self)
                if callable(a):
                    a(self)
                    return
                self.send_response(a)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts connections and never answers (nor reads)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def url(self):
        return "http://127.0.0.1:%d/silent" % self.port

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def trickle(handler):
    """An answer sent one byte every half second (it would take minutes)."""
    msg = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n" + b"x" * 400
    try:
        for b in msg:
            handler.wfile.write(bytes([b]))
            handler.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass
    handler.close_connection = True


# ---------------------------------------------------------------------------- helpers

def bearer(token):
    return {"Authorization": "Bearer " + token}


class Coordinator(cotest.Coordinator):
    def __init__(self, name, settings=None, workdir=None):
        workdir = workdir or cotest.make_workdir("cacheout-webhook-")
        db = cotest.new_database(name, workdir, ARGS.pg_bin, ARGS.pg_port, prefix="cowh")
        s = {"AGENT_TOKEN": AGENT_TOKEN, "DEFAULT_STARTING_CREDITS": "1000",
             "LOG_LEVEL": "DEBUG", "FRONTEND_DIR": workdir, "WEBHOOK_POLL_MS": "100",
             "WEBHOOK_BACKOFF_BASE_MS": "200"}
        s.update(settings or {})
        super().__init__(ARGS.bin, ARGS.sql_dir, ADMIN, database_url=db, settings=s,
                         workdir=workdir, unset=cotest.UNSET + ("WEBHOOK_ALLOW_PRIVATE",
                                                                "WEBHOOK_DEBUG_HOSTS"))

    def admin(self, method, path, body=None):
        st, doc, _ = self.jreq(method, path, body=body, admin=True)
        return st, doc

    def submit(self, **kw):
        job = {"title": "cb", "required_cores": 1, "required_ram_mb": 64, "command": "true",
               "buyer_id": "cb-buyer"}
        job.update(kw)
        return self.admin("POST", "/api/v1/submit", job)

    def submit_ok(self, **kw):
        st, j = self.submit(**kw)
        check(st == 201, "submit answered %s: %r" % (st, j))
        return j

    def cancel(self, job_id):
        st, j = self.admin("POST", "/api/v1/jobs/%s/cancel" % job_id)
        check(st == 200, "cancel answered %s: %r" % (st, j))

    def deliveries(self, job_id):
        st, d = self.admin("GET", "/api/v1/jobs/%s/deliveries" % job_id)
        check(st == 200, "deliveries answered %s: %r" % (st, d))
        return d

    def wait_state(self, job_id, states, timeout, attempts=1):
        box = {}

        def ok():
            box["d"] = self.deliveries(job_id)
            return box["d"]["state"] in states and len(box["d"]["attempts"]) >= attempts
        wait_until(ok, timeout, "delivery of %s in %s (last: %r)" % (job_id, states,
                                                                     box.get("d")))
        return box["d"]

    def secret(self, user):
        st, d = self.admin("POST", "/api/v1/users/%s/webhook-secret" % user)
        check(st == 200 and d["secret"].startswith("whsec_"), "secret: %s %r" % (st, d))
        return d["secret"]


def mk_user(c, uid):
    st, doc = c.admin("POST", "/api/v1/users", {"user_id": uid})
    check(st == 201, "create user %s: %d %r" % (uid, st, doc))
    st, k = c.admin("POST", "/api/v1/users/%s/keys" % uid, {"name": "k"})
    check(st == 201, "key for %s: %d %r" % (uid, st, k))
    return k["token"]


def verify(secret, headers, body):
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    got = headers.get("X-CacheOut-Signature", "")
    check(hmac.compare_digest(want, got), "signature %r, expected %r" % (got, want))


# ---------------------------------------------------------------------------- cases

def case_delivery_after_failures():
    """A real job on a real agent; the receiver fails twice, then accepts."""
    rx = Receiver(lambda n, h: 500 if n <= 2 else 200)
    c = Coordinator("deliver", {"WEBHOOK_ALLOW_PRIVATE": "true"})
    a = None
    try:
        c.start()
        a = cotest.Agent(ARGS.agent, c, "wh-agent", 2, 1024, token=AGENT_TOKEN).start()
        a.wait_connected()
        mk_user(c, "cb-buyer")
        secret = c.secret("cb-buyer")
        j = c.submit_ok(callback_url=rx.url("/hook?x=1"), command="sh -c 'exit 0'")
        d = c.wait_state(j["job_id"], ("delivered",), 90, attempts=3)
        check(rx.count() == 3, "receiver saw %d POSTs, expected 3" % rx.count())
        codes = [x["status_code"] for x in d["attempts"]]
        check(codes == [500, 500, 200], "attempt status codes %r" % codes)
        check([x["attempt"] for x in d["attempts"]] == [1, 2, 3], d)
        check(d["attempts"][0]["error"] == "HTTP 500" and d["attempts"][2]["error"] is None, d)
        check(d["callback_url"] == rx.url("/hook?x=1"), d)
        st, job = c.admin("GET", "/api/v1/jobs/" + j["job_id"])
        check(job["status"] == "completed", "job %r" % job)
        delivery_ids = set()
        for headers, body, _ in rx.requests:
            verify(secret, headers, body)
            check(headers.get("X-CacheOut-Event") == "job.finished", headers)
            check(headers.get("Content-Type") == "application/json", headers)
            delivery_ids.add(headers.get("X-CacheOut-Delivery"))
            doc = json.loads(body)
            check(doc["job_id"] == j["job_id"] and doc["status"] == "completed", doc)
            for k, v in doc.items():
                check(job.get(k) == v, "body field %s=%r, the job says %r" % (k, v, job.get(k)))
            check("code" not in doc, "the body holds the code")
        check(delivery_ids == {d["delivery_id"]}, "delivery ids %r" % delivery_ids)
        # A forged body does not verify with the secret.
        h0, b0, _ = rx.requests[0]
        forged = hmac.new(secret.encode(), b0 + b" ", hashlib.sha256).hexdigest()
        check("sha256=" + forged != h0["X-CacheOut-Signature"], "signature ignores the body")
        st, _, m = c.req("GET", "/metrics")
        text = m.decode() if isinstance(m, bytes) else str(m)
        check("cacheout_webhook_delivered_total 1" in text, "metrics: %s" % text[-600:])
    finally:
        if a:
            a.stop()
        rx.close()
        c.stop()


def case_ssrf_refused_at_submit():
    hosts = os.path.join(cotest.make_workdir("cacheout-webhook-hosts-"), "hosts")
    with open(hosts, "w") as f:
        f.write("evil.test 127.0.0.1\nmeta.test 169.254.169.254\n")
    c = Coordinator("ssrf", {"WEBHOOK_DEBUG_HOSTS": hosts})
    try:
        c.start()
        urls = ["http://127.0.0.1/x", "http://localhost:8080/x", "http://10.0.0.5/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
                "http://[::ffff:127.0.0.1]/", "http://evil.test/hook", "http://meta.test/",
                "http://192.168.1.10:8000/", "http://100.64.0.1/", "http://0.0.0.0/",
                "http://[fe80::1]/", "http://[fd00::1]/", "http://2130706433/",
                "file:///etc/passwd", "gopher://example.com/", "http://user:pw@example.com/",
                "not a url", "http://", "http://" + "a" * 3000 + ".com/"]
        for u in urls:
            st, doc = c.submit(buyer_id="ssrf-buyer", callback_url=u)
            check(st == 422 and doc["error"]["code"] == "invalid_field"
                  and doc["error"].get("field") == "callback_url",
                  "%s: %s %r" % (u[:60], st, doc))
        st, doc = c.submit(buyer_id="ssrf-buyer", callback_url=5)
        check(st == 422, "callback_url 5: %s %r" % (st, doc))
        # Nothing stored: no job, no hold, not even the buyer's row.
        st, jobs = c.admin("GET", "/api/v1/jobs?limit=1000&buyer_id=ssrf-buyer")
        check(st == 200 and jobs == [], "jobs stored: %r" % jobs)
        st, u = c.admin("GET", "/api/v1/credits/ssrf-buyer")
        check(st == 404, "the refused buyer has a row: %s %r" % (st, u))
        c.invariant()
        # The message says why.
        st, doc = c.submit(buyer_id="ssrf-buyer", callback_url="http://169.254.169.254/")
        check("metadata" in doc["error"]["message"], doc)
    finally:
        c.stop()


def case_refused_at_connect():
    """The name is public at submit and loopback when delivering: refused, nothing sent."""
    rx = Receiver(lambda n, h: 200)
    hosts = os.path.join(cotest.make_workdir("cacheout-webhook-hosts-"), "hosts")
    with open(hosts, "w") as f:
        f.write("flip.test 93.184.216.34\n")
    c = Coordinator("connect", {"WEBHOOK_DEBUG_HOSTS": hosts, "WEBHOOK_MAX_HOURS": "0"})
    try:
        c.start()
        j = c.submit_ok(callback_url="http://flip.test:%d/hook" % rx.port)
        with open(hosts, "w") as f:
            f.write("flip.test 127.0.0.1\n")
        c.cancel(j["job_id"])
        d = c.wait_state(j["job_id"], ("failed",), 30)
        err = d["attempts"][0]["error"] or ""
        check("refused at connect time" in err and "loopback" in err, d)
        check(d["attempts"][0]["status_code"] is None, d)
        time.sleep(0.3)
        check(rx.count() == 0, "the receiver got %d requests" % rx.count())
    finally:
        rx.close()
        c.stop()


def case_redirect_not_followed():
    target = Receiver(lambda n, h: 200)

    def redirect(n, h):
        def answer(handler):
            handler.send_response(302)
            handler.send_header("Location", target.url("/stolen"))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        return answer
    rx = Receiver(redirect)
    c = Coordinator("redirect", {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_MAX_HOURS": "0"})
    try:
        c.start()
        j = c.submit_ok(callback_url=rx.url())
        c.cancel(j["job_id"])
        d = c.wait_state(j["job_id"], ("failed",), 30)
        a = d["attempts"][0]
        check(a["status_code"] == 302 and "redirect not followed" in (a["error"] or ""), d)
        time.sleep(0.3)
        check(rx.count() == 1 and target.count() == 0,
              "requests: receiver %d, redirect target %d" % (rx.count(), target.count()))
        # Retention removes an old job's delivery and its log once the delivery is over.
        time.sleep(0.05)
        st, n = c.admin("POST", "/api/v1/debug/retention", {"older_than_seconds": 0})
        check(st == 200 and n["deliveries"] == 2, "retention: %s %r" % (st, n))
        d = c.deliveries(j["job_id"])
        check(d["state"] == "none" and d["attempts"] == [], d)
    finally:
        rx.close()
        target.close()
        c.stop()


def case_slow_receivers_bounded():
    silent = Silent()
    slow = Receiver(lambda n, h: trickle)
    good = Receiver(lambda n, h: 200)
    timeout_s = 10
    c = Coordinator("slow", {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_MAX_HOURS": "0",
                             "WEBHOOK_TIMEOUT_SECONDS": str(timeout_s)})
    try:
        c.start()
        js = []
        for u in (silent.url(), slow.url()):
            j = c.submit_ok(callback_url=u)
            c.cancel(j["job_id"])
            js.append(j["job_id"])
        wait_until(lambda: slow.count() == 1, 15, "the slow receiver got the POST")
        # While both hang: another delivery goes out and the REST API answers.
        j = c.submit_ok(callback_url=good.url())
        c.cancel(j["job_id"])
        st, doc = c.admin("GET", "/api/v1/health")
        check(st == 200, "health %s" % st)
        d = c.wait_state(j["job_id"], ("delivered",), 30)
        # Those two attempts were still running (cut after several seconds only).
        for jid in js:
            d = c.deliveries(jid)
            check(d["attempts"] == [], "an attempt to a hanging receiver already ended: %r" % d)
        for jid in js:
            d = c.wait_state(jid, ("failed",), 60)
            a = d["attempts"][0]
            check(a["error"] and a["status_code"] in (None, 200), d)
            # curl's bound (timeout, low-speed cut), with generous room for a loaded machine.
            check(a["duration_ms"] < (timeout_s + 20) * 1000, "attempt took %r" % a)
            print("    # %s: %s after %d ms" % (jid[:8], a["error"], a["duration_ms"]), flush=True)
    finally:
        silent.close()
        slow.close()
        good.close()
        c.stop()


def case_restart_continues():
    accept = threading.Event()
    rx = Receiver(lambda n, h: 200 if accept.is_set() else 500)
    c = Coordinator("restart", {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_BACKOFF_BASE_MS": "300"})
    try:
        c.start()
        # A name (resolved on the delivery thread without blocking it, every address checked).
        j = c.submit_ok(callback_url="http://localhost:%d/hook" % rx.port)
        c.cancel(j["job_id"])
        c.wait_state(j["job_id"], ("pending",), 30, attempts=2)
        # Retention keeps a delivery that is still pending, however old its job.
        st, n = c.admin("POST", "/api/v1/debug/retention", {"older_than_seconds": 0})
        check(st == 200 and n["deliveries"] == 0, "retention: %s %r" % (st, n))
        c.kill9()
        accept.set()
        seen = rx.count()
        c.start()
        d = c.wait_state(j["job_id"], ("delivered",), 60)
        time.sleep(1.0)
        oks = [r for r in rx.requests[seen:]]
        check(len(oks) == 1, "POSTs after the restart: %d, expected 1" % len(oks))
        d = c.deliveries(j["job_id"])
        check(d["state"] == "delivered" and d["attempts"][-1]["status_code"] == 200, d)
        check(sum(1 for a in d["attempts"] if a["status_code"] == 200) == 1, d)
    finally:
        rx.close()
        c.stop()


def case_secret_rights():
    c = Coordinator("rights")
    try:
        c.start()
        ka = mk_user(c, "wh-a")
        kb = mk_user(c, "wh-b")
        path = "/api/v1/users/wh-a/webhook-secret"
        st, doc, _ = c.jreq("POST", path)
        check(st == 401, "anonymous: %s %r" % (st, doc))
        st, doc, _ = c.jreq("POST", path, headers=bearer(kb))
        check(st == 403, "another buyer: %s %r" % (st, doc))
        st, s1, _ = c.jreq("POST", path, headers=bearer(ka))
        check(st == 200 and s1["secret"].startswith("whsec_") and len(s1["secret"]) == 70,
              "self: %s %r" % (st, s1))
        st, s2 = c.admin("POST", path)
        check(st == 200 and s2["secret"] != s1["secret"], "admin: %s %r" % (st, s2))
        st, doc = c.admin("POST", "/api/v1/users/nobody/webhook-secret")
        check(st == 404, "unknown user: %s %r" % (st, doc))
        st, rows = c.admin("GET", "/api/v1/audit?limit=50")
        mine = [r for r in rows if r["action"] == "webhook_secret.create"]
        check(len(mine) == 1 and mine[0]["target"] == "wh-a", "audit rows %r" % mine)
        check(s1["secret"] not in json.dumps(rows) and s2["secret"] not in json.dumps(rows),
              "a secret in the audit log")
        log = open(c.output, errors="replace").read()
        check(s1["secret"] not in log and s2["secret"] not in log, "a secret in the log")
        # Deliveries: the job's buyer or an admin only.
        st, j, _ = c.jreq("POST", "/api/v1/submit",
                          {"title": "t", "required_cores": 1, "required_ram_mb": 8,
                           "command": "true"}, headers=bearer(ka))
        check(st == 201, "submit by a: %s %r" % (st, j))
        dp = "/api/v1/jobs/%s/deliveries" % j["job_id"]
        st, d, _ = c.jreq("GET", dp, headers=bearer(ka))
        check(st == 200 and d["state"] == "none" and d["attempts"] == [], (st, d))
        st, d, _ = c.jreq("GET", dp, headers=bearer(kb))
        check(st == 403, "deliveries by another buyer: %s %r" % (st, d))
        st, d, _ = c.jreq("GET", dp)
        check(st == 401, "deliveries anonymously: %s %r" % (st, d))
    finally:
        c.stop()


CASES = [
    ("delivery after two failures, HMAC checked (real agent)", case_delivery_after_failures),
    ("SSRF refusals at submit store nothing", case_ssrf_refused_at_submit),
    ("a name turned private is refused at connect time", case_refused_at_connect),
    ("a redirect to a private address is not followed", case_redirect_not_followed),
    ("silent and trickling receivers are cut, others still delivered", case_slow_receivers_bounded),
    ("kill -9 with a pending delivery: delivered once after restart", case_restart_continues),
    ("webhook-secret and deliveries rights", case_secret_rights),
]


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--sql-dir", required=True)
    p.add_argument("--label", default="sqlite")
    p.add_argument("--pg-bin")
    p.add_argument("--pg-port")
    p.add_argument("--only", default="")
    ARGS = p.parse_args()
    r = cotest.Runner(ARGS.label)
    for name, fn in CASES:
        if ARGS.only and ARGS.only not in name:
            continue
        r.case(name, fn)
    bad = cotest.sanitizer_reports()
    if bad:
        r.fail("sanitizer reports", "; ".join(bad))
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
