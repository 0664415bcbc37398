#!/usr/bin/env python3
"""CLI suite: the `cacheout` command against a real cacheout-coordinator and cacheout-agent on
loopback (one database per pass: SQLite, or PostgreSQL with --database-url).

Each case runs `cacheout` as a buyer would and checks its exit status, stdout and stderr: the
--wait exit statuses (0, a job's own non-zero code, 128+9 for a killed job, 124 for a timeout),
`logs -f` printing output while the job still runs, the --json shapes, the API errors (401, 403,
404, 422 with its field) and usage errors (2), the command quoting, config files, accounts
(`balance`, `keys create`), input files and artifacts with their sha256 (and artifact names or
bytes that must be refused, from a fake server).  A case that cannot run here (no test CA for
the TLS case) is reported as SKIP with the reason and counted in --skip-file.
"""
import argparse
import hashlib
import json
import os
import pty
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import cotest  # noqa: E402

ADMIN = "admin-token-cli-suite-0123456789"
AGENT_TOKEN = "agent-token-cli-suite-0123456789"
BUYER = "cli-buyer"
ARGS = None
SKIPPED = []


class Skip(Exception):
    """A case that cannot run against this coordinator (a feature not there yet)."""


class Env:
    """The coordinator, its agent and the environment `cacheout` runs with."""

    def __init__(self, args):
        self.workdir = cotest.make_workdir("cacheout-cli-")
        self.coord = cotest.Coordinator(
            args.coordinator, args.sql_dir, ADMIN, database_url=args.database_url or None,
            workdir=self.workdir,
            settings={"AGENT_TOKEN": AGENT_TOKEN, "DEFAULT_STARTING_CREDITS": "1000",
                      "COST_PER_CORE": "10", "COST_PER_100MB_RAM": "0.001",
                      "TIMEOUT_GRACE_SECONDS": "5", "FRONTEND_DIR": self.workdir})
        self.agent = None

    def start(self):
        self.coord.start()
        self.agent = cotest.Agent(ARGS.agent, self.coord, "cli-agent", 2, 2048,
                                  token=AGENT_TOKEN)
        self.agent.start().wait_connected()
        return self

    def stop(self):
        if self.agent:
            self.agent.stop()
        self.coord.stop()

    def env(self, token=None, admin=ADMIN, extra=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("CACHEOUT_")
             and k != "TLS_CA_FILE"}
        e["HOME"] = self.workdir  # no developer's ~/.config/cacheout/config
        e.pop("XDG_CONFIG_HOME", None)
        e["CACHEOUT_URL"] = "http://127.0.0.1:%d" % self.coord.port
        if token:
            e["CACHEOUT_TOKEN"] = token
        elif admin:
            e["CACHEOUT_ADMIN_TOKEN"] = admin
        e.update(extra or {})
        return e

    def run(self, *argv, token=None, admin=ADMIN, extra=None, timeout=120, cwd=None):
        """(exit status, stdout, stderr) of `cacheout ARGV...`."""
        p = subprocess.run([ARGS.cli] + list(argv), env=self.env(token, admin, extra),
                           capture_output=True, timeout=timeout, cwd=cwd or self.workdir)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode(
            "utf-8", "replace")

    def submit(self, *cmd, opts=()):
        rc, out, err = self.run("submit", "--buyer", BUYER, *opts, "--", *cmd)
        cotest.check(rc == 0, "submit: exit %d: %s" % (rc, err))
        return out.strip()

    def api(self, method, path, body=None):
        st, doc, _ = self.coord.jreq(method, "/api/v1" + path, body=body, admin=True)
        return st, doc


def expect(res, rc, what):
    cotest.check(res[0] == rc, "%s: exit %d, wanted %d; stdout %r stderr %r" % (
        what, res[0], rc, res[1][-400:], res[2][-400:]))


# ---------------------------------------------------------------------------------- cases

def t_usage(e):
    expect(e.run("--help"), 0, "--help")
    for cmd in (["submit"], ["jobs"], ["show"], ["logs"], ["cancel"], ["artifacts"],
                ["balance"], ["keys", "create"]):
        res = e.run(*cmd, "--help")
        expect(res, 0, " ".join(cmd) + " --help")
        cotest.check(res[1].startswith("usage: cacheout " + " ".join(cmd)), res[1][:80])
    expect(e.run("frobnicate"), 2, "unknown command")
    expect(e.run("show"), 2, "show without id")
    expect(e.run("submit", "--cores", "two", "--", "true"), 2, "bad --cores")
    expect(e.run("submit", "--priority", "11", "--", "true"), 2, "--priority out of range")
    expect(e.run("submit", "--param", "novalue", "--", "true"), 2, "bad --param")
    expect(e.run("keys", "create", "k", "--scope", "root"), 2, "bad --scope")
    res = e.run("jobs", extra={"CACHEOUT_URL": "ftp://x"})
    expect(res, 2, "non-http url")
    res = e.run("jobs", token="tok", extra={"CACHEOUT_ADMIN_TOKEN": ADMIN})
    expect(res, 2, "both credentials")


def t_wait_ok_and_quoting(e):
    words = ["a b", "it's", "$HOME", "", "back\\slash", 'dq"q', "tab\tx", "new\nline", "*"]
    res = e.run("submit", "--buyer", BUYER, "--wait", "--", "python3", "-c",
                "import json, sys; print(json.dumps(sys.argv[1:]))", *words)
    expect(res, 0, "submit --wait")
    cotest.check(json.loads(res[1].strip().splitlines()[-1]) == words,
                 "argv round trip: %r" % res[1])
    cotest.check("submitted job" in res[2], "no 'submitted job' note: %r" % res[2])


def t_wait_exit_code(e):
    res = e.run("submit", "--buyer", BUYER, "--wait", "--", "sh", "-c",
                "echo out; echo err >&2; exit 3")
    expect(res, 3, "job exiting 3")
    cotest.check(res[1] == "out\n", "stdout %r" % res[1])
    cotest.check("err\n" in res[2] and "exit code 3" in res[2], "stderr %r" % res[2])


def t_wait_killed(e):
    res = e.run("submit", "--buyer", BUYER, "--wait", "--", "sh", "-c", "kill -9 $$")
    expect(res, 137, "job killed by SIGKILL")
    cotest.check("killed" in res[2], "stderr %r" % res[2])


def t_wait_timeout(e):
    res = e.run("submit", "--buyer", BUYER, "--timeout", "1", "--wait", "--", "sleep", "60")
    expect(res, 124, "job over its timeout")
    cotest.check("timed out" in res[2], "stderr %r" % res[2])


def t_wait_pending_then_cancelled(e):
    # No agent has 64 cores: the job stays pending; --wait says why (when the coordinator gives
    # a pending_reason) and exits 143 once the job is cancelled.
    p = subprocess.Popen([ARGS.cli, "submit", "--buyer", BUYER, "--cores", "64", "--wait", "--",
                          "true"], env=e.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stderr.readline().decode()
        cotest.check(line.startswith("cacheout: submitted job "), "first note %r" % line)
        jid = line.split()[-1]
        st, job = e.api("GET", "/jobs/" + jid)
        cotest.check(job["status"] == "pending", job)
        reason = job.get("pending_reason")
        if reason:
            line = p.stderr.readline().decode()
            text = reason.get("message") or reason.get("code")
            cotest.check(text in line and "pending" in line,
                         "no pending_reason note: %r (reason %r)" % (line, reason))
        expect(e.run("cancel", jid), 0, "cancel")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cotest.check(p.returncode == 143, "--wait of a cancelled job: exit %d %r" % (p.returncode,
                                                                                   err))
    cotest.check(b"cancelled" in err, err)


def t_tty_spinner(e):
    # With stderr on a terminal, a pending job shows a turning spinner with its status on one
    # line (redrawn with CR + erase-line); stdout stays clean.
    master, slave = pty.openpty()
    p = subprocess.Popen([ARGS.cli, "submit", "--buyer", BUYER, "--cores", "64", "--wait", "--",
                          "true"], env=e.env(), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        deadline = time.time() + 20
        while time.time() < deadline and seen.count(b"\r\x1b[K") < 4:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                seen += os.read(master, 4096)
        jid = seen.split(b"submitted job ")[1].split()[0].decode()
        expect(e.run("cancel", jid), 0, "cancel")
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    frames = set(seen[i + 4:i + 5] for i in range(len(seen)) if seen[i:i + 4] == b"\r\x1b[K")
    cotest.check(len(frames - {b"", b"\r"}) >= 2 and b"pending" in seen,
                 "no turning spinner: %r" % seen[-300:])
    cotest.check(out == b"" and p.returncode == 143, (out, p.returncode))


def t_logs_follow_live(e):
    jid = e.submit("sh", "-c", "echo first; sleep 4; echo second")
    p = subprocess.Popen([ARGS.cli, "logs", jid, "-f"], env=e.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()
        cotest.check(first == b"first\n", "first line %r" % first)
        st, job = e.api("GET", "/jobs/" + jid)
        cotest.check(job["status"] == "running",
                     "the first line came only after the job ended (%s)" % job["status"])
        rest, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cotest.check(p.returncode == 0, "logs -f exit %d: %r" % (p.returncode, err))
    cotest.check(rest == b"second\n", "rest %r" % rest)
    res = e.run("logs", jid)
    expect(res, 0, "logs")
    cotest.check(res[1] == "first\nsecond\n", "logs %r" % res[1])


def t_json_shapes(e):
    res = e.run("--json", "submit", "--buyer", BUYER, "--title", "json shape", "--param",
                "k=v=w", "--priority", "7", "--", "echo", "hi")
    expect(res, 0, "submit --json")
    job = json.loads(res[1])
    for k in ("job_id", "status", "command", "title", "priority", "parameters", "cost"):
        cotest.check(k in job, "submit --json lacks %s: %r" % (k, job))
    cotest.check(job["title"] == "json shape" and job["priority"] == 7 and
                 job["parameters"] == {"k": "v=w"} and job["command"] == "echo hi", job)
    jid = job["job_id"]
    res = e.run("show", jid, "--json")
    expect(res, 0, "show --json")
    cotest.check(json.loads(res[1])["job_id"] == jid, res[1])
    res = e.run("jobs", "--json", "--limit", "1000")
    expect(res, 0, "jobs --json")
    jobs = json.loads(res[1])
    cotest.check(isinstance(jobs, list) and jid in [j["job_id"] for j in jobs], res[1][:300])
    res = e.run("logs", "-f", "--json", jid)
    expect(res, 0, "logs -f --json")
    out = json.loads(res[1])
    cotest.check(out["job_id"] == jid and out["stdout"] == "hi\n" and "stderr" in out and
                 "truncated" in out, out)
    res = e.run("--json", "submit", "--buyer", BUYER, "--wait", "--", "sh", "-c", "exit 5")
    expect(res, 5, "submit --wait --json")
    fin = json.loads(res[1])
    cotest.check(fin["status"] == "failed" and fin["exit_code"] == 5, fin)
    # Plain output: the id alone for submit, one line per job for jobs, key: value for show.
    res = e.run("jobs", "--status", "completed")
    expect(res, 0, "jobs")
    line = [ln for ln in res[1].splitlines() if ln.startswith(jid)]
    cotest.check(line and "completed" in line[0], "jobs line for %s: %r" % (jid, res[1][:300]))
    res = e.run("show", jid)
    cotest.check("status:" in res[1] and "completed" in res[1], res[1])


def t_cancel(e):
    jid = e.submit("sleep", "60", opts=("--cores", "64"))  # no agent can take it: pending
    st, job = e.api("GET", "/jobs/" + jid)
    cotest.check(job["status"] == "pending", job)
    res = e.run("cancel", jid)
    expect(res, 0, "cancel")
    cotest.check(res[1].strip() == jid + " cancelled", res[1])
    res = e.run("cancel", jid)
    expect(res, 1, "cancel twice")
    cotest.check("HTTP 409" in res[2], res[2])
    jid = e.submit("sleep", "60", opts=("--cores", "64"))
    p = subprocess.Popen([ARGS.cli, "logs", "-f", jid], env=e.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(1)
    expect(e.run("cancel", jid), 0, "cancel while followed")
    out, err = p.communicate(timeout=30)
    cotest.check(p.returncode == 0, "logs -f of a cancelled job: %d %r" % (p.returncode, err))


def t_errors(e):
    res = e.run("logs", "no-such-job", token="not-a-valid-key")
    expect(res, 1, "bad token")
    cotest.check("HTTP 401" in res[2], res[2])
    # The output is for admins (or the job's buyer): a wrong admin token gets 401.
    res = e.run("logs", "no-such-job", admin="wrong-admin-token")
    expect(res, 1, "wrong admin token")
    cotest.check("HTTP 401" in res[2], res[2])
    res = e.run("show", "no-such-job")
    expect(res, 1, "unknown job")
    cotest.check("HTTP 404" in res[2] and "not_found" in res[2], res[2])
    st, _ = e.api("GET", "/me")
    if st == 404:  # before accounts, the admin token names no buyer: submit needs --buyer
        res = e.run("submit", "--", "true")
        expect(res, 1, "admin submit without --buyer")
        cotest.check("field 'buyer_id'" in res[2] and "--buyer" in res[2], res[2])
    res = e.run("submit", "--buyer", BUYER, "--image", "bad image!", "--", "true")
    expect(res, 1, "422")
    cotest.check("HTTP 422" in res[2] and "field 'image'" in res[2], res[2])
    expect(e.run("jobs", extra={"CACHEOUT_URL": "http://127.0.0.1:%d" % cotest.free_port()}),
           1, "connection refused")


def t_insufficient_credits(e):
    # 200 cores at COST_PER_CORE 10 cost 2000, over the 1000 every buyer starts with.
    res = e.run("submit", "--buyer", "cli-poor", "--cores", "200", "--", "true")
    expect(res, 1, "402")
    cotest.check("HTTP 402" in res[2] and "cacheout balance" in res[2], res[2])
    st, bal = e.api("GET", "/credits/cli-poor")
    cotest.check(st == 404 or (st == 200 and bal["held"] == 0), "something was held: %r" % bal)


def t_config_file(e):
    cfg = os.path.join(e.workdir, "cfg")
    with open(cfg, "w") as f:
        f.write("# cacheout settings\nurl = http://127.0.0.1:%d/\nadmin_token = %s\n" % (
            e.coord.port, ADMIN))
    os.chmod(cfg, 0o600)
    env = {k: v for k, v in e.env().items() if not k.startswith("CACHEOUT_")}
    env["CACHEOUT_CONFIG"] = cfg
    p = subprocess.run([ARGS.cli, "show", "no-such-job"], env=env, capture_output=True)
    cotest.check(p.returncode == 1 and b"HTTP 404" in p.stderr, p.stderr)
    # The default place, ~/.config/cacheout/config, with a group-readable token: a warning.
    os.makedirs(os.path.join(e.workdir, ".config", "cacheout"), exist_ok=True)
    dflt = os.path.join(e.workdir, ".config", "cacheout", "config")
    with open(dflt, "w") as f:
        f.write("url = http://127.0.0.1:%d\nadmin_token = %s\n" % (e.coord.port, ADMIN))
    os.chmod(dflt, 0o644)
    env.pop("CACHEOUT_CONFIG")
    p = subprocess.run([ARGS.cli, "jobs"], env=env, capture_output=True)
    os.remove(dflt)
    cotest.check(p.returncode == 0 and b"chmod 600" in p.stderr, p.stderr)
    with open(cfg, "w") as f:
        f.write("colour = blue\n")
    env["CACHEOUT_CONFIG"] = cfg
    p = subprocess.run([ARGS.cli, "jobs"], env=env, capture_output=True)
    cotest.check(p.returncode == 2 and b"unknown key 'colour'" in p.stderr, p.stderr)


def t_balance_admin(e):
    res = e.run("balance", "--user", BUYER)
    expect(res, 0, "balance --user")
    lines = dict(ln.split(": ", 1) for ln in res[1].splitlines())
    st, bal = e.api("GET", "/credits/" + BUYER)
    cotest.check(lines["user"] == BUYER and float(lines["credits"]) == bal["credits"] and
                 float(lines["held"]) == bal["held"], (res[1], bal))
    res = e.run("--json", "balance", "--user", BUYER)
    cotest.check(json.loads(res[1])["user_id"] == BUYER, res[1])


def t_accounts(e):
    st, user = e.api("POST", "/users", {"user_id": "cli-user"})
    cotest.check(st == 201, "create user: %d %r" % (st, user))
    st, key = e.api("POST", "/users/cli-user/keys", {"name": "boot", "scopes": ["buy"]})
    cotest.check(st == 201, "create key: %d %r" % (st, key))
    tok = key["token"]
    res = e.run("balance", token=tok)
    expect(res, 0, "balance with a user key")
    cotest.check("user: cli-user" in res[1], res[1])
    res = e.run("keys", "create", "second", "--scope", "buy", token=tok)
    expect(res, 0, "keys create")
    tok2 = res[1].strip()
    cotest.check(tok2 and tok2 != tok and "shown only this once" in res[2], res)
    res = e.run("submit", "--wait", "--", "echo", "with a key", token=tok2)
    expect(res, 0, "submit --wait with the new key")
    cotest.check(res[1] == "with a key\n", res[1])
    res = e.run("submit", "--buyer", BUYER, "--", "true", token=tok2)
    expect(res, 1, "submit for another buyer")
    cotest.check("HTTP 403" in res[2], res[2])
    # The admin token makes a key for a named user.
    res = e.run("keys", "create", "by-admin", "--user", "cli-user", "--scope", "buy")
    expect(res, 0, "keys create --user with the admin token")
    res = e.run("balance", token=res[1].strip())
    cotest.check(res[0] == 0 and "user: cli-user" in res[1], res)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def t_files_artifacts(e):
    # Each --file goes up under its base name (text as it is, binary as base64): the job prints
    # the sha256 of what it got, copies the files to out/ as artifacts, and `artifacts -o DIR`
    # brings them back checked against the list's size and sha256.
    src = os.path.join(e.workdir, "in", "deeper")
    os.makedirs(src, exist_ok=True)
    text = os.path.join(src, "data.txt")
    blob = os.path.join(src, "blob.bin")
    with open(text, "w") as f:
        f.write("line one\nline two\n")
    data = bytes(range(256)) * 64 + b"\x00\xff" * 999
    with open(blob, "wb") as f:
        f.write(data)
    script = ("import hashlib, os, shutil\n"
              "for n in ('data.txt', 'blob.bin'):\n"
              "    print(n, hashlib.sha256(open(n, 'rb').read()).hexdigest())\n"
              "os.makedirs('out/sub', exist_ok=True)\n"
              "shutil.copy('data.txt', 'out/data.txt')\n"
              "shutil.copy('blob.bin', 'out/sub/blob.bin')\n")
    res = e.run("--json", "submit", "--buyer", BUYER, "--file", text, "--file", blob, "--wait",
                "--", "python3", "-c", script)
    expect(res, 0, "submit with files")
    fin = json.loads(res[1])
    jid = fin["job_id"]
    st, out = e.api("GET", "/jobs/%s/output" % jid)
    got = dict(ln.split() for ln in out["stdout"].splitlines())
    cotest.check(got == {"data.txt": sha256_file(text), "blob.bin": sha256_file(blob)},
                 "the job saw other bytes: %r" % got)
    st, listed = e.api("GET", "/jobs/%s/artifacts" % jid)
    cotest.check(st == 200 and sorted(a["path"] for a in listed) == ["data.txt", "sub/blob.bin"],
                 "artifact list %d %r" % (st, listed))
    dest = os.path.join(e.workdir, "dl")
    res = e.run("artifacts", jid, "-o", dest)
    expect(res, 0, "artifacts")
    lines = sorted(res[1].splitlines())
    want = sorted("%s  %d  %s" % (a["sha256"], a["size"], a["path"]) for a in listed)
    cotest.check(lines == want, "artifacts output %r, wanted %r" % (lines, want))
    for a in listed:
        local = os.path.join(dest, a["path"])
        cotest.check(sha256_file(local) == a["sha256"] and os.path.getsize(local) == a["size"],
                     "%s differs from the list" % a["path"])
    cotest.check(sha256_file(os.path.join(dest, "sub", "blob.bin")) == hashlib.sha256(
        data).hexdigest(), "blob.bin differs from what was sent")
    cotest.check(sorted(os.listdir(dest)) == ["data.txt", "sub"] and
                 os.listdir(os.path.join(dest, "sub")) == ["blob.bin"],
                 "stray files: %r" % os.listdir(dest))
    # --json: the list itself; a second download over the first replaces the files.
    res = e.run("--json", "artifacts", jid, "-o", dest)
    expect(res, 0, "artifacts --json")
    cotest.check(json.loads(res[1]) == listed, res[1][:300])


class FakeCoordinator:
    """A loopback HTTP server that answers GET requests from a table {path: (status, type,
    bytes)}: for the answers a real coordinator never gives (artifact names with '..', damaged
    downloads)."""

    def __init__(self, table):
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                st, ctype, body = table.get(self.path.split("?")[0], (404, "application/json",
                                            b'{"error":{"code":"not_found","message":"no"}}'))
                self.send_response(st)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def t_artifacts_refused(e):
    # Names that would leave -o DIR and bytes that do not match the list are refused, and
    # nothing is left behind (no file outside, no temporary file inside).
    good = b"fine\n"
    bad = b"not what the list says\n"
    def art(path, body, claimed=None):
        return {"path": path, "size": len(claimed or body),
                "sha256": hashlib.sha256(claimed or body).hexdigest()}
    base = "/api/v1/jobs/fake"
    cases = [
        ("../escape.txt", [art("../escape.txt", good)], "refused"),
        ("/etc/evil", [art("/etc/evil", good)], "refused"),
        ("a/../../up", [art("a/../../up", good)], "refused"),
        ("damaged", [art("ok.txt", good), art("damaged.txt", bad, claimed=b"other bytes!\n")],
         "damaged"),
    ]
    for name, listing, needle in cases:
        table = {base + "/artifacts": (200, "application/json", json.dumps(listing).encode()),
                 base + "/artifacts/ok.txt": (200, "application/octet-stream", good),
                 base + "/artifacts/damaged.txt": (200, "application/octet-stream", bad)}
        fake = FakeCoordinator(table)
        top = os.path.join(e.workdir, "refused-" + name.replace("/", "_"))
        dest = os.path.join(top, "dl")
        os.makedirs(dest)
        try:
            res = e.run("artifacts", "fake", "-o", dest,
                        extra={"CACHEOUT_URL": "http://127.0.0.1:%d" % fake.port})
        finally:
            fake.close()
        expect(res, 1, "artifacts with %s" % name)
        cotest.check(needle in res[2], "%s: stderr %r" % (name, res[2]))
        left = [os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs]
        want = ["dl/ok.txt"] if name == "damaged" else []
        cotest.check(sorted(left) == want, "%s: files left %r" % (name, left))
        cotest.check(not os.path.exists(os.path.join(e.workdir, "escape.txt")) and
                     not os.path.exists(os.path.join(top, "up")), "a file escaped")


def t_json_accounts_shapes(e):
    # --json of balance and keys create is the API's own object.
    res = e.run("--json", "balance", "--user", BUYER)
    expect(res, 0, "balance --json")
    bal = json.loads(res[1])
    cotest.check(set(bal) == {"user_id", "credits", "held"} and bal["user_id"] == BUYER, bal)
    st, _ = e.api("POST", "/users", {"user_id": "cli-json-user"})
    cotest.check(st in (201, 409), "create user: %d" % st)
    res = e.run("--json", "keys", "create", "jk", "--user", "cli-json-user", "--scope", "buy")
    expect(res, 0, "keys create --json")
    key = json.loads(res[1])
    for k in ("key_id", "name", "scopes", "token", "created_at"):
        cotest.check(k in key, "keys create --json lacks %s: %r" % (k, key))
    cotest.check(key["name"] == "jk" and key["scopes"] == ["buy"], key)
    res = e.run("--json", "cancel", e.submit("true", opts=("--cores", "64")))
    expect(res, 0, "cancel --json")
    cotest.check(json.loads(res[1])["status"] == "cancelled", res[1][:300])


def t_error_messages(e):
    # Each API error comes out as "HTTP <status> <code>: <message>" plus what to do about it.
    res = e.run("submit", "--buyer", BUYER, "--cores", "0", "--", "true")
    expect(res, 2, "--cores 0 is a usage error")
    st, _ = e.api("POST", "/users", {"user_id": "cli-err-user"})
    st, key = e.api("POST", "/users/cli-err-user/keys", {"name": "k", "scopes": ["sell"]})
    cotest.check(st == 201, "sell key: %d %r" % (st, key))
    res = e.run("submit", "--", "true", token=key["token"])
    expect(res, 1, "submit with a sell-only key")
    cotest.check("HTTP 403 forbidden" in res[2] and "scope" in res[2], res[2])
    res = e.run("show", "bad id!")
    cotest.check(res[0] in (1, 2) and ("HTTP 404" in res[2] or "invalid" in res[2]), res)
    res = e.run("cancel", "no-such-job")
    expect(res, 1, "cancel of an unknown job")
    cotest.check("HTTP 404 not_found" in res[2] and "no such job" in res[2], res[2])
    res = e.run("artifacts", "no-such-job", "-o", os.path.join(e.workdir, "none"))
    expect(res, 1, "artifacts of an unknown job")
    cotest.check("HTTP 404" in res[2], res[2])
    port = cotest.free_port()
    res = e.run("jobs", extra={"CACHEOUT_URL": "http://127.0.0.1:%d" % port})
    expect(res, 1, "nothing listening")
    cotest.check(("127.0.0.1:%d" % port) in res[2] or "connect" in res[2].lower(), res[2])


def t_tls(e):
    if not ARGS.tls_dir:
        raise Skip("no test CA (tests/lib/tls.sh could not make one: see run.sh's output)")
    d = ARGS.tls_dir
    # A folder (so a database) of its own: the suite's coordinator holds the SQLite instance lock
    # of the shared one.
    c = cotest.Coordinator(ARGS.coordinator, ARGS.sql_dir, ADMIN,
                           workdir=cotest.make_workdir("cacheout-cli-tls-"),
                           output="coordinator-tls.log",
                           settings={"TLS_CERT_FILE": os.path.join(d, "server.pem"),
                                     "TLS_KEY_FILE": os.path.join(d, "server.key"),
                                     "FRONTEND_DIR": e.workdir})
    c.start(wait=False)
    try:
        url = {"CACHEOUT_URL": "https://127.0.0.1:%d" % c.port}

        def run(**extra):
            return e.run("show", "no-such-job", extra=dict(url, **extra))
        ca = os.path.join(d, "ca.pem")
        # Reaching the server through verified TLS gives the API's 404 for the unknown job.
        cotest.wait_until(lambda: "HTTP 404" in run(CACHEOUT_CA_FILE=ca)[2], 20,
                          "the TLS coordinator answering")
        res = run(TLS_CA_FILE=ca)
        cotest.check(res[0] == 1 and "HTTP 404" in res[2], "TLS_CA_FILE: %r" % (res,))
        for name, extra in (("the system store", {}),
                            ("an unrelated CA", {"CACHEOUT_CA_FILE": os.path.join(
                                d, "other-ca.pem")})):
            res = run(**extra)
            cotest.check(res[0] == 1 and "HTTP" not in res[2] and "certificate" in res[2],
                         "with %s the server must be refused: %r" % (name, res))
        res = e.run("show", "x", extra={"CACHEOUT_URL": "https://localhost:%d" % c.port,
                                        "CACHEOUT_CA_FILE": ca})
        cotest.check("HTTP 404" in res[2], "host name localhost: %r" % (res,))
    finally:
        c.stop()


def t_follow_survives_restart(e):
    # The coordinator is killed and started again while `logs -f` follows a running job: the
    # follower retries, and ends with the job.
    jid = e.submit("sh", "-c", "echo before; sleep 6; echo after")
    p = subprocess.Popen([ARGS.cli, "logs", "-f", jid], env=e.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()
        cotest.check(first == b"before\n", "first line %r" % first)
        e.coord.kill9()
        time.sleep(2)
        e.coord.start()
        rest, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cotest.check(p.returncode == 0, "logs -f across a restart: exit %d %r" % (p.returncode, err))
    cotest.check(b"retrying" in err, "no retry note: %r" % err)
    st, job = e.api("GET", "/jobs/" + jid)
    cotest.check(job["status"] == "completed", job)
    cotest.check(rest == b"after\n", "after the restart: %r (stderr %r)" % (rest, err))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--label", default="sqlite")
    ap.add_argument("--skip-file", default="")
    ap.add_argument("--only", default="")
    ap.add_argument("--tls-dir", default="")
    ARGS = ap.parse_args()
    run = cotest.Runner(ARGS.label)
    e = Env(ARGS)

    def case(name, fn):
        if ARGS.only and ARGS.only not in name:
            return
        def body():
            try:
                fn(e)
            except Skip as s:
                SKIPPED.append(name)
                print("SKIP %s: %s: %s" % (ARGS.label, name, s), flush=True)
                return
        t0 = time.time()
        try:
            body()
        except Exception as ex:  # noqa: BLE001 - reported as the case's failure
            run.fail(name, ex)
            return
        if name not in SKIPPED:
            run.ok(name, time.time() - t0)

    try:
        e.start()
        case("usage errors exit 2, --help for every command", t_usage)
        case("submit --wait: exit 0, argv quoting round trip", t_wait_ok_and_quoting)
        case("submit --wait: the job's exit code, stdout and stderr apart", t_wait_exit_code)
        case("submit --wait: killed job exits 128+9", t_wait_killed)
        case("submit --wait: timeout exits 124", t_wait_timeout)
        case("submit --wait: pending (with its reason), then cancelled: 143",
             t_wait_pending_then_cancelled)
        case("on a terminal: a spinner while pending", t_tty_spinner)
        case("logs -f prints output while the job runs", t_logs_follow_live)
        case("--json shapes and plain output", t_json_shapes)
        case("cancel: pending job, 409 on repeat, a followed job ends", t_cancel)
        case("errors: 401, 404, 422 with its field, no connection", t_errors)
        case("402 insufficient credits", t_insufficient_credits)
        case("config file: default place, CACHEOUT_CONFIG, permissions, bad key", t_config_file)
        case("balance --user with the admin token", t_balance_admin)
        case("accounts: balance and keys create with a user key, 403", t_accounts)
        case("--file round trip and artifacts -o DIR, with sha256", t_files_artifacts)
        case("artifacts: '..' and absolute names, damaged bytes refused", t_artifacts_refused)
        case("--json shapes of balance, keys create, cancel", t_json_accounts_shapes)
        case("error messages: 403 scope, 404, usage, no server", t_error_messages)
        case("logs -f survives a coordinator restart", t_follow_survives_restart)
        case("TLS: verified with CACHEOUT_CA_FILE/TLS_CA_FILE, refused otherwise", t_tls)
    except Exception as ex:  # noqa: BLE001 - the set-up failed: one failure
        run.fail("set-up", ex)
    finally:
        e.stop()
    if not ARGS.only:
        bad = cotest.sanitizer_reports()
        if bad:
            run.fail("sanitizer reports", bad)
    if ARGS.skip_file:
        with open(ARGS.skip_file, "w") as f:
            f.write(str(len(SKIPPED)))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
