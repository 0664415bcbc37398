#!/usr/bin/env python3
"""Packaging suite, the part that needs no container: an installed tree (`cmake --install` into
--prefix) runs from any folder, the migrations are compiled in (and SQL_DIR still overrides
them), and TLS end to end with a throw-away CA (tests/lib/tls.sh in --tls-dir): REST over https,
an agent over wss:// running the original README's job, plain HTTP refused or redirected, and a
wrong or expired certificate refused with a clear error by curl, Python and the agent.

Prints one line per case and "RESULT <passed> <failed>".  Standard library only.
"""
import argparse
import glob
import http.client
import json
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import cotest  # noqa: E402
from cotest import CaseFailed, check, wait_until  # noqa: E402

ADMIN = "packaging-admin-token-0123456789abcdef"
AGENT_TOKEN = "packaging-agent-token"
ARGS = None

README_JOB = cotest.README_JOB


def coordinator(binary, cwd, settings=None):
    """A cacheout-coordinator started in @cwd, with no SQL_DIR and no FRONTEND_DIR unless
    @settings gives them (cotest.Coordinator sets SQL_DIR to the source tree's otherwise)."""
    workdir = cotest.make_workdir("cacheout-pkg-")
    c = cotest.Coordinator(binary, ARGS.sql_dir, ADMIN, workdir=workdir,
                           database_url="sqlite:///" + os.path.join(workdir, "co.db"),
                           settings=dict({"AGENT_TOKEN": AGENT_TOKEN}, **(settings or {})),
                           unset=cotest.UNSET + ("FRONTEND_DIR", "TLS_CERT_FILE", "TLS_KEY_FILE"))
    if "SQL_DIR" not in (settings or {}):
        del c.env["SQL_DIR"]
    c.cwd = cwd
    return c


def applied_migrations(c):
    db = sqlite3.connect(c.env["DATABASE_URL"][len("sqlite:///"):])
    try:
        return [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY version")]
    finally:
        db.close()


def sql_files(backend):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(ARGS.src, "sql", backend,
                                                                       "*.sql")))


# ------------------------------------------------------------------------------ run anywhere

def t_installed_from_root():
    """The installed coordinator, started in / with no settings files: every migration of
    sql/sqlite applied from the binary, the dashboard served from <prefix>/share."""
    binary = os.path.join(ARGS.prefix, "bin", "cacheout-coordinator")
    check(os.access(binary, os.X_OK), "not installed: " + binary)
    c = coordinator(binary, "/").start()
    try:
        check(applied_migrations(c) == sql_files("sqlite"),
              "applied %r, sql/sqlite has %r" % (applied_migrations(c), sql_files("sqlite")))
        if not os.path.exists(os.path.join(ARGS.src, "frontend", "dist", "index.html")):
            raise CaseFailed("frontend/dist is not built (scripts/build-frontend.sh): cannot "
                             "check the installed dashboard")
        st, _, body = c.req("GET", "/")
        check(st == 200 and b'<div id="root"' in body, "GET / from the installed dashboard: %d"
              % st)
        with open(os.path.join(ARGS.prefix, "share", "cacheout", "frontend", "index.html"),
                  "rb") as f:
            check(f.read() == body, "GET / is not the installed index.html")
    finally:
        c.stop()


def t_build_tree_from_tmp():
    """The build tree's coordinator from an empty temporary folder: migrations compiled in."""
    cwd = cotest.make_workdir("cacheout-pkg-cwd-")
    c = coordinator(ARGS.bin, cwd).start()
    try:
        check(applied_migrations(c) == sql_files("sqlite"), "applied %r" % applied_migrations(c))
        st, doc, _ = c.jreq("POST", "/api/v1/submit", README_JOB, admin=True)
        check(st == 201, "submit: %d %r" % (st, doc))
        check(os.listdir(cwd) == [], "files written in the working folder: %r" % os.listdir(cwd))
    finally:
        c.stop()


def t_sql_dir_override():
    """SQL_DIR still wins over the compiled-in migrations: a folder with 0001 only applies 0001."""
    d = cotest.make_workdir("cacheout-pkg-sql-")
    os.makedirs(os.path.join(d, "sqlite"))
    first = sql_files("sqlite")[0]
    with open(os.path.join(ARGS.src, "sql", "sqlite", first)) as src, \
            open(os.path.join(d, "sqlite", first), "w") as dst:
        dst.write(src.read())
    c = coordinator(ARGS.bin, "/", settings={"SQL_DIR": d})
    # With 0001 alone the tables later features read are missing, so health may say 503: the
    # coordinator answering at all shows it started on what SQL_DIR gave it.
    c.start(ready=(200, 503))
    try:
        check(applied_migrations(c) == [first], "applied %r" % applied_migrations(c))
    finally:
        c.stop()


def t_generator_picks_up_new_files():
    """cmake/gen_migrations.cmake compiles every sql/<backend>/*.sql it finds, byte for byte
    (a new migration needs no list to be edited)."""
    d = cotest.make_workdir("cacheout-pkg-gen-")
    files = {"sqlite/0001_a.sql": "CREATE TABLE a (x INTEGER);\n",
             "sqlite/0003_c.sql": "-- quotes ' \" and \\ backslashes\nSELECT 'é';\n",
             "postgres/0001_a.sql": "CREATE TABLE a (x BIGINT);\n",
             "postgres/0004_new.sql": "SELECT 4;"}
    for rel, text in files.items():
        os.makedirs(os.path.join(d, "sql", os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(d, "sql", rel), "w") as f:
            f.write(text)
    out = os.path.join(d, "m.c")
    subprocess.run(["cmake", "-DSQL_ROOT=" + os.path.join(d, "sql"), "-DOUT=" + out, "-P",
                    os.path.join(ARGS.src, "cmake", "gen_migrations.cmake")], check=True)
    main = os.path.join(d, "main.c")
    with open(main, "w") as f:
        f.write('#include <stdio.h>\n#include "store_migrations.h"\n'
                "int main(void) {\n"
                "  for (const struct store_migration *m = store_migrations; m->backend; m++)\n"
                '    printf("%s/%s=%s\\x1e", m->backend, m->name, m->sql);\n  return 0;\n}\n')
    exe = os.path.join(d, "m")
    subprocess.run(["cc", "-I", os.path.join(ARGS.src, "coordinator"), "-o", exe, main, out],
                   check=True)
    got = {}
    for item in subprocess.run([exe], check=True, capture_output=True).stdout.decode()\
            .split("\x1e")[:-1]:
        rel, _, text = item.partition("=")
        got[rel] = text
    check(got == files, "compiled-in migrations differ: %r" % got)


# ------------------------------------------------------------------------------------- TLS

def tls(name):
    return os.path.join(ARGS.tls_dir, name)


def https_get(port, path, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with urllib.request.urlopen("https://localhost:%d%s" % (port, path), context=ctx,
                                timeout=10) as r:
        return r.status, r.read()


def tls_coordinator(cert="server", settings=None):
    s = {"TLS_CERT_FILE": tls(cert + ".pem"), "TLS_KEY_FILE": tls(cert + ".key")}
    s.update(settings or {})
    c = coordinator(ARGS.bin, "/", settings=s)
    c.spawn()

    def up():
        check(c.proc.poll() is None, "coordinator exited: " + c.log_tail())
        try:
            with open(c.output, errors="replace") as f:
                return "listening" in f.read()
        except OSError:
            return False
    wait_until(up, 20, "coordinator listening")
    return c


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), capture_output=True,
                          text=True)


def t_https_rest():
    """REST over https with the test CA: curl and Python verify the certificate and get answers;
    the original README's submit works over https."""
    c = tls_coordinator()
    try:
        st, body = https_get(c.port, "/api/v1/health", tls("ca.pem"))
        check(st == 200 and json.loads(body)["status"] == "healthy", "health over https: %d" % st)
        r = curl("--cacert", tls("ca.pem"), "-X", "POST",
                 "https://localhost:%d/api/v1/submit" % c.port,
                 "-H", "Content-Type: application/json", "-H", "X-Admin-Token: " + ADMIN,
                 "-d", json.dumps(README_JOB))
        check(r.returncode == 0 and "job_id" in r.stdout, "curl submit over https: %d %s %s"
              % (r.returncode, r.stdout, r.stderr))
        r = curl("http://127.0.0.1:%d/api/v1/health" % c.port)
        check(r.returncode != 0 or "healthy" not in r.stdout,
              "plain HTTP answered on the TLS port: %r" % r.stdout)
    finally:
        c.stop()


def t_https_redirect():
    """TLS_REDIRECT_HTTP: plain HTTP on the same port gets a redirect to https."""
    c = tls_coordinator(settings={"TLS_REDIRECT_HTTP": "true"})
    try:
        r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                 "http://localhost:%d/api/v1/health" % c.port)
        code, _, url = r.stdout.partition(" ")
        check(code in ("301", "302", "303", "307", "308") and url.startswith("https://"),
              "plain HTTP: %r %r" % (r.stdout, r.stderr))
        st, _ = https_get(c.port, "/api/v1/health", tls("ca.pem"))
        check(st == 200, "https beside the redirect: %d" % st)
    finally:
        c.stop()


def refused(c, cafile, reason):
    """curl and Python refuse the coordinator's certificate, saying @reason."""
    r = curl("--cacert", cafile, "https://localhost:%d/api/v1/health" % c.port)
    check(r.returncode == 60 and reason in r.stderr, "curl: exit %d, %r" % (r.returncode,
                                                                            r.stderr))
    try:
        https_get(c.port, "/api/v1/health", cafile)
    except urllib.error.URLError as e:
        check(isinstance(e.reason, ssl.SSLCertVerificationError) and reason in str(e.reason),
              "python: %r" % e.reason)
    else:
        raise CaseFailed("python accepted the certificate")


def agent_refused(c, cafile, reason, wid, server_ok=False):
    """An agent with @cafile logs the TLS error (with OpenSSL's @reason) and never connects
    (checked in GET /workers when @server_ok: the test can verify the server itself)."""
    a = cotest.Agent(ARGS.agent, c, wid, 1, 256, token=AGENT_TOKEN,
                     settings={"COORDINATOR_URL": "wss://localhost:%d/ws/agent" % c.port,
                               "TLS_CA_FILE": cafile})
    a.start()
    try:
        def logged():
            with open(a.output, errors="replace") as f:
                text = f.read()
            return reason in text and "the coordinator's certificate was refused" in text
        wait_until(logged, 20, "the agent's TLS error (%s)" % a.output)
        if server_ok:
            _, body = https_get(c.port, "/api/v1/workers", tls("ca.pem"))
            check(not any(w["worker_id"] == wid for w in json.loads(body)),
                  "agent registered anyway")
    finally:
        a.stop()


def t_wrong_ca_refused():
    """A certificate from another CA: curl, Python and the agent refuse it and say why."""
    c = tls_coordinator()
    try:
        refused(c, tls("other-ca.pem"), "unable to get local issuer certificate")
        agent_refused(c, tls("other-ca.pem"), "unable to get local issuer certificate",
                      "pkg-wrong-ca", server_ok=True)
    finally:
        c.stop()


def t_expired_refused():
    """An expired certificate from the trusted CA: refused by curl, Python and the agent."""
    c = tls_coordinator(cert="expired")
    try:
        refused(c, tls("ca.pem"), "certificate has expired")
        agent_refused(c, tls("ca.pem"), "certificate has expired", "pkg-expired")
    finally:
        c.stop()


def t_other_host_refused():
    """A valid certificate of the trusted CA for another host name: refused by curl, Python and
    the agent (the host name is checked, not only the chain)."""
    c = tls_coordinator(cert="otherhost")
    try:
        r = curl("--cacert", tls("ca.pem"), "https://localhost:%d/api/v1/health" % c.port)
        check(r.returncode == 60 and "host name" in r.stderr,
              "curl: exit %d, %r" % (r.returncode, r.stderr))
        try:
            https_get(c.port, "/api/v1/health", tls("ca.pem"))
        except urllib.error.URLError as e:
            check(isinstance(e.reason, ssl.SSLCertVerificationError) and
                  "Hostname mismatch" in str(e.reason), "python: %r" % e.reason)
        else:
            raise CaseFailed("python accepted the certificate")
        agent_refused(c, tls("ca.pem"), "hostname mismatch", "pkg-other-host")
    finally:
        c.stop()


def t_agent_wss_runs_readme_job():
    """An agent over wss:// (certificate verified against TLS_CA_FILE) runs the original
    README's example job: Hello World."""
    if os.geteuid() != 0:
        raise CaseFailed("needs root: the agent's sandbox runs jobs as root here")
    c = tls_coordinator()
    a = cotest.Agent(ARGS.agent, c, "pkg-wss", 2, 4096, token=AGENT_TOKEN,
                     settings={"COORDINATOR_URL": "wss://localhost:%d/ws/agent" % c.port,
                               "TLS_CA_FILE": tls("ca.pem")})
    a.start()
    try:
        def ctx_get(path, admin=False):
            req = urllib.request.Request("https://localhost:%d%s" % (c.port, path))
            if admin:
                req.add_header("X-Admin-Token", ADMIN)
            with urllib.request.urlopen(req, context=ssl.create_default_context(
                    cafile=tls("ca.pem")), timeout=10) as r:
                return json.loads(r.read())

        wait_until(lambda: any(w["worker_id"] == "pkg-wss" and w["status"] != "offline"
                               for w in ctx_get("/api/v1/workers")), 30,
                   "agent connected over wss:// (%s)" % a.output)
        req = urllib.request.Request("https://localhost:%d/api/v1/submit" % c.port,
                                     data=json.dumps(README_JOB).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "X-Admin-Token": ADMIN})
        with urllib.request.urlopen(req, context=ssl.create_default_context(
                cafile=tls("ca.pem")), timeout=10) as r:
            job = json.loads(r.read())["job_id"]
        wait_until(lambda: ctx_get("/api/v1/jobs/" + job)["status"] in
                   ("completed", "failed", "cancelled"), 60, "job finished")
        j = ctx_get("/api/v1/jobs/" + job)
        check(j["status"] == "completed", "job %r (%s)" % (j, a.log_tail()))
        out = ctx_get("/api/v1/jobs/%s/output" % job, admin=True)
        check(out["stdout"] == "Hello World\n", "stdout %r" % out["stdout"])
    finally:
        a.stop()
        c.stop()


def t_tls_settings_checked():
    """TLS_CERT_FILE without TLS_KEY_FILE, or an unreadable file, stops the start naming it."""
    for settings, name in (({"TLS_CERT_FILE": tls("server.pem")}, "TLS_KEY_FILE"),
                           ({"TLS_CERT_FILE": tls("nope.pem"), "TLS_KEY_FILE": tls("server.key")},
                            "TLS_CERT_FILE")):
        c = coordinator(ARGS.bin, "/", settings=settings)
        c.spawn()
        rc = c.proc.wait(timeout=20)
        check(rc == 2 and name in c.log_tail(), "exit %d: %s" % (rc, c.log_tail()))


# ---------------------------------------------------------------------------------- enroll

class FakeMe:
    """An HTTPS server (the test CA's certificate) answering GET /api/v1/me as API.md says:
    200 with the user and the key's scopes for a known bearer key, else 401.  It stands in for
    the coordinator's accounts, so that enroll's own behaviour is tested on its own."""

    KEYS = {"sell-key-1": ("seller-1", ["sell"]), "buy-key-1": ("buyer-1", ["buy"]),
            "not-a-key-1": ("admin", None)}

    def __init__(self):
        import http.server
        import threading
        outer = self
        self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server interface
                auth = self.headers.get("Authorization", "")
                outer.seen.append((self.path, auth))
                who = outer.KEYS.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") \
                    else None
                if self.path != "/api/v1/me" or not who:
                    body, st = b'{"error":{"code":"unauthorized","message":"bad key"}}', 401
                else:
                    key = {"key_id": "k1", "name": "n", "scopes": who[1]} if who[1] else None
                    body, st = json.dumps({"user_id": who[0], "username": who[0],
                                           "key": key}).encode(), 200
                self.send_response(st)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls("server.pem"), tls("server.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


ENV_BEFORE = "# the seller's settings\nAGENT_CORES=2\nCOORDINATOR_URL=ws://old:1/ws/agent\n" \
    "#AGENT_KEY=\nAGENT_KEY=old-key\nLOG_LEVEL=INFO\n"


def enroll(port, key, cafile, env_file):
    return subprocess.run([ARGS.agent, "enroll", "--coordinator", "https://localhost:%d" % port,
                           "--key", key, "--tls-ca-file", cafile, "--env-file", env_file],
                          capture_output=True, text=True, timeout=60)


def t_enroll():
    """enroll checks the key with GET /api/v1/me (Bearer, certificate verified) and only then
    writes COORDINATOR_URL, AGENT_KEY and TLS_CA_FILE (0600), keeping the file's other lines;
    a refused key, a key without the sell scope and an untrusted certificate write nothing."""
    d = cotest.make_workdir("cacheout-pkg-enroll-")
    env_file = os.path.join(d, "agent.env")
    with open(env_file, "w") as f:
        f.write(ENV_BEFORE)
    srv = FakeMe()
    try:
        for key, ca, why in (("wrong-key", "ca.pem", "refused the key (HTTP 401"),
                             ("buy-key-1", "ca.pem", "no sell scope"),
                             ("not-a-key-1", "ca.pem", "no sell scope"),
                             ("sell-key-1", "other-ca.pem", "certificate was refused")):
            r = enroll(srv.port, key, tls(ca), env_file)
            check(r.returncode == 1 and why in r.stderr, "%s with %s: exit %d, %r"
                  % (key, ca, r.returncode, r.stderr))
            with open(env_file) as f:
                check(f.read() == ENV_BEFORE, "%s: the env file changed" % key)
        r = enroll(srv.port, "sell-key-1", tls("ca.pem"), env_file)
        check(r.returncode == 0 and "seller-1" in r.stdout, "good key: exit %d %r %r"
              % (r.returncode, r.stdout, r.stderr))
        with open(env_file) as f:
            text = f.read()
        want = ("# the seller's settings\nAGENT_CORES=2\n"
                "COORDINATOR_URL=wss://localhost:%d/ws/agent\n#AGENT_KEY=\n"
                "AGENT_KEY=sell-key-1\nLOG_LEVEL=INFO\nTLS_CA_FILE=%s\n" % (srv.port,
                                                                          tls("ca.pem")))
        check(text == want, "env file:\n%s\nexpected:\n%s" % (text, want))
        check(os.stat(env_file).st_mode & 0o777 == 0o600, "mode %o" % os.stat(env_file).st_mode)
        check(("/api/v1/me", "Bearer sell-key-1") in srv.seen, "requests seen: %r" % srv.seen)
    finally:
        srv.close()


def t_enroll_real_coordinator():
    """enroll against the real coordinator over https: a user's sell key is accepted, a buy key
    is refused for its scope, an unknown key with the coordinator's 401.  Skipped (loudly) when
    this coordinator has no accounts yet (GET /api/v1/me answers 404)."""
    c = tls_coordinator()
    try:
        ctx = ssl.create_default_context(cafile=tls("ca.pem"))

        def call(method, path, body=None):
            req = urllib.request.Request("https://localhost:%d%s" % (c.port, path), method=method,
                                         data=json.dumps(body).encode() if body else None,
                                         headers={"Content-Type": "application/json",
                                                  "X-Admin-Token": ADMIN})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                    return r.status, json.loads(r.read() or b"null")
            except urllib.error.HTTPError as e:
                return e.code, None
        st, _ = call("GET", "/api/v1/me")
        if st == 404:
            return "SKIP: this coordinator has no GET /api/v1/me (accounts not built in)"
        check(st == 200, "GET /api/v1/me as admin: %d" % st)
        st, _ = call("POST", "/api/v1/users", {"user_id": "pkg-seller"})
        check(st == 201, "create user: %d" % st)
        keys = {}
        for scope in ("sell", "buy"):
            st, doc = call("POST", "/api/v1/users/pkg-seller/keys", {"name": scope,
                                                                      "scopes": [scope]})
            check(st == 201 and doc.get("token"), "create %s key: %d %r" % (scope, st, doc))
            keys[scope] = doc["token"]
        d = cotest.make_workdir("cacheout-pkg-enroll-real-")
        env_file = os.path.join(d, "agent.env")
        for key, why in (("co_not_a_key_0123456789", "refused the key (HTTP 401"),
                         (keys["buy"], "no sell scope")):
            r = enroll(c.port, key, tls("ca.pem"), env_file)
            check(r.returncode == 1 and why in r.stderr and not os.path.exists(env_file),
                  "exit %d %r" % (r.returncode, r.stderr))
        r = enroll(c.port, keys["sell"], tls("ca.pem"), env_file)
        check(r.returncode == 0 and "pkg-seller" in r.stdout, "sell key: exit %d %r %r"
              % (r.returncode, r.stdout, r.stderr))
        with open(env_file) as f:
            check("AGENT_KEY=%s\n" % keys["sell"] in f.read(), "AGENT_KEY not written")
    finally:
        c.stop()
    return None


CASES = [
    ("installed coordinator runs from / (migrations and dashboard from the install)",
     t_installed_from_root),
    ("build-tree coordinator runs from an empty folder and writes nothing there",
     t_build_tree_from_tmp),
    ("SQL_DIR overrides the compiled-in migrations", t_sql_dir_override),
    ("the migration generator compiles every sql/<backend>/*.sql exactly",
     t_generator_picks_up_new_files),
    ("REST over https (curl, Python) with the test CA; no plain HTTP on the TLS port",
     t_https_rest),
    ("TLS_REDIRECT_HTTP redirects plain HTTP to https", t_https_redirect),
    ("a certificate of another CA is refused by curl, Python and the agent", t_wrong_ca_refused),
    ("an expired certificate is refused by curl, Python and the agent", t_expired_refused),
    ("a certificate for another host name is refused by curl, Python and the agent",
     t_other_host_refused),
    ("an agent over wss:// runs the README job", t_agent_wss_runs_readme_job),
    ("bad TLS settings stop the coordinator naming the variable", t_tls_settings_checked),
    ("enroll validates the key over verified TLS before writing the env file", t_enroll),
    ("enroll against the real coordinator's GET /api/v1/me", t_enroll_real_coordinator),
    ("no sanitizer reports in the processes' output", lambda: check(
        not cotest.sanitizer_reports(), "\n".join(cotest.sanitizer_reports()))),
]


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--bin", required=True, help="the build tree's cacheout-coordinator")
    p.add_argument("--agent", required=True, help="the build tree's cacheout-agent")
    p.add_argument("--prefix", required=True, help="where `cmake --install` put the tree")
    p.add_argument("--tls-dir", required=True, help="tests/lib/tls.sh's output")
    p.add_argument("--label", default="local")
    p.add_argument("--only", default="")
    ARGS = p.parse_args()
    ARGS.sql_dir = os.path.join(ARGS.src, "sql")
    runner = cotest.Runner(ARGS.label)
    for name, fn in CASES:
        if ARGS.only and not re.search(ARGS.only, name):
            continue
        t0 = time.time()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - a failed case is reported, then we go on
            runner.fail(name, e)
            continue
        if isinstance(result, str) and result.startswith("SKIP"):
            print("skip %s: %s: %s" % (ARGS.label, name, result), flush=True)
            continue
        runner.ok(name, time.time() - t0)
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
