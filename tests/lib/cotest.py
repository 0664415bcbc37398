"""cotest: what the Python drivers of the coordinator's test suites and benchmarks share.

Standard library only (python3 >= 3.7).  A driver imports it from its own location:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
    import cotest  # noqa: E402

What is here:
- processes: ``Coordinator`` (cacheout-coordinator on a free loopback port, in a temporary
  working directory, on SQLite or a PostgreSQL URL; start, wait for health, stop, kill -9,
  restart), ``Agent`` (cacheout-agent connected to a Coordinator), both built on ``Process``;
- HTTP: ``http_request`` (one request, raw answer), ``Coordinator.req``/``jreq`` (the same on the
  coordinator's port, ``jreq`` decodes JSON and adds the admin token), ``Client`` (a keep-alive
  connection for benchmarks);
- checks: ``CaseFailed``, ``check``, ``wait_until``, ``Coordinator.invariant`` (the credit
  invariant, GET /api/v1/debug/invariant), ``sanitizer_reports`` (ASan/LSan/UBSan reports in
  process output);
- ``WebSocket``: a small RFC 6455 client (masked frames out, reassembly, ping answers);
- ``Runner``: one line per case ("ok   <label>: <name> (<secs>s)" / "FAIL <label>: <name>:
  <why>") and the last line "RESULT <passed> <failed>" that the suites' run.sh scripts read;
- ``WORKDIRS``/``remove_workdirs``: temporary directories, removed when every case passed and
  kept (and named) otherwise;
- small helpers: ``free_port``, ``iso_ms``, ``cpu_seconds``, ``new_database``.

Nothing here prints except ``Runner``; failures are exceptions (``CaseFailed`` for a failed
expectation, so a driver can tell them from bugs in itself).
"""
import base64
import calendar
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import traceback

# Settings a test must not inherit from the caller's environment (a developer's shell may hold
# a production DATABASE_URL or tokens, or test-only DEBUG_FAULTS that cases set themselves); a
# driver passes more with unset=UNSET + (...).
UNSET = ("ADMIN_TOKEN", "AGENT_TOKEN", "DATABASE_URL", "LOG_FILE", "MAX_WORKERS", "DEBUG_FAULTS")

# The original README's example job, verbatim (the suites' first end-to-end check).
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

# Markers of sanitizer reports (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer,
# ThreadSanitizer).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")

# Every working directory made by this module (and any a driver adds), in creation order.
WORKDIRS = []
# Output files (stdout + stderr) of every Process made, for sanitizer_reports().
OUTPUTS = []


class CaseFailed(AssertionError):
    """A test expectation that did not hold (as opposed to an error in the driver)."""


def check(cond, what, limit=None):
    """Raise CaseFailed(str(what)) unless cond; the message is cut to @limit characters."""
    if not cond:
        msg = str(what)
        raise CaseFailed(msg[:limit] if limit else msg)


def wait_until(fn, timeout, what, interval=0.1):
    """Call fn() until it returns something true and return that; CaseFailed after @timeout s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise CaseFailed("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def iso_ms(s):
    """An API time string ("2026-11-29T13:51:14.123Z") as milliseconds since the epoch."""
    base, _, frac = s.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(
        (frac + "000")[:3])


def cpu_seconds(proc):
    """CPU seconds (user + system, all threads) used so far by a child process; nan if gone."""
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def make_workdir(prefix):
    """A new temporary directory, registered in WORKDIRS."""
    d = tempfile.mkdtemp(prefix=prefix)
    WORKDIRS.append(d)
    return d


def remove_workdirs():
    """Remove every directory in WORKDIRS (call it when every case passed)."""
    for d in WORKDIRS:
        shutil.rmtree(d, ignore_errors=True)


_db_counter = [0]


def new_database(name, workdir, pg_bin=None, pg_port=None, prefix="cotest"):
    """A fresh database URL: a new PostgreSQL database (createdb as user postgres on
    127.0.0.1:@pg_port) when @pg_port is given, else a SQLite file in @workdir."""
    _db_counter[0] += 1
    if not pg_port:
        return "sqlite:///" + os.path.join(workdir, "co.db")
    db = "%s_%s_%d_%d" % (prefix, name.replace("-", "_"), os.getpid(), _db_counter[0])
    createdb = os.path.join(pg_bin, "createdb") if pg_bin else "createdb"
    subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", db],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return "postgresql://postgres@127.0.0.1:%d/%s" % (int(pg_port), db)


def sanitizer_reports(paths=None):
    """The sanitizer reports (each "path: first 300 characters") found in @paths (default:
    every Process output file); empty when there are none."""
    bad = []
    for path in (OUTPUTS if paths is None else paths):
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for marker in SANITIZER_MARKERS:
            if marker in text:
                at = text.index(marker)
                bad.append("%s: %s" % (path, text[at:at + 300]))
    return bad


# ------------------------------------------------------------------------------------ HTTP

def http_request(port, method, path, body=None, headers=None, raw=None, timeout=15):
    """One HTTP/1.1 request to 127.0.0.1:@port on a new connection.

    @body is sent as JSON (with Content-Type) unless @raw bytes are given; @headers are sent as
    they are (give Content-Length to send one with a GET).  Returns (status, headers with
    lower-case names, payload bytes).  Raises OSError or http.client.HTTPException when the
    connection fails."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    data = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return r.status, hdrs, payload
    finally:
        conn.close()


def decode_json(payload):
    """JSON from a payload; None when empty, the bytes themselves when not JSON."""
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return payload


class Client:
    """A keep-alive HTTP connection to the coordinator (for benchmarks: one per thread).  A
    request that fails on a reused connection is retried once on a new one."""

    def __init__(self, port, admin_token=None, timeout=30):
        self.port = port
        self.admin_token = admin_token
        self.timeout = timeout
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def req(self, method, path, body=None, admin=False):
        """(status, decoded JSON or None)."""
        data = json.dumps(body).encode() if body is not None else b""
        h = {"Content-Length": str(len(data))}
        if body is not None:
            h["Content-Type"] = "application/json"
        if admin:
            h["X-Admin-Token"] = self.admin_token
        for attempt in range(2):
            try:
                self.c.request(method, path, body=data or None, headers=h)
                r = self.c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        return None  # not reached

    def close(self):
        self.c.close()


# ------------------------------------------------------------------------------- processes

class Process:
    """A child process whose stdout and stderr go to one file (appended, kept across restarts)."""

    def __init__(self, argv, cwd, env, output):
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.output = output
        self.proc = None
        self.stop_timed_out = False
        if output not in OUTPUTS:
            OUTPUTS.append(output)

    def spawn(self):
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL and reap (no-op when not running)."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=20):
        """SIGTERM, wait up to @timeout s, then SIGKILL (and set stop_timed_out).  Returns the
        exit status (negative: killed by that signal), None if never started."""
        self.stop_timed_out = False
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop_timed_out = True
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def log_tail(self, chars=2000):
        """The last @chars characters of the output file ("" if none)."""
        try:
            with open(self.output, "rb") as f:
                return f.read()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self, n=30):
        """The last @n lines of the output file, joined ("" if none)."""
        try:
            with open(self.output, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Coordinator(Process):
    """One cacheout-coordinator on a free port of 127.0.0.1, in its own working directory.

    @binary: the coordinator executable; @sql_dir: the migrations (SQL_DIR); @admin_token:
    ADMIN_TOKEN (jreq(admin=True) sends it).  @database_url: DATABASE_URL (None or "": the
    coordinator's default, a SQLite file under var/ in the working directory).  @workdir: the
    working directory (default: a new one named @prefix...; both are registered in WORKDIRS).
    @settings: more environment, applied last.  @output: the file (in the working directory)
    that gets stdout and stderr.  @unset: variables removed from the inherited environment.

    ``env`` is the complete environment of the process: a test may edit it before start()
    (``del coord.env["PORT"]`` to test a .env file, say).  The port is ``port``;
    restart(new_port=True) moves it.
    """

    def __init__(self, binary, sql_dir, admin_token, database_url=None, settings=None,
                 workdir=None, prefix="cacheout-test-", output="coordinator.log", unset=UNSET,
                 port=None):
        self.port = port or free_port()
        self.admin_token = admin_token
        if workdir is None:
            workdir = make_workdir(prefix)
        elif workdir not in WORKDIRS:
            WORKDIRS.append(workdir)
        self.workdir = workdir
        env = dict(os.environ)
        for k in unset:
            env.pop(k, None)
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "ADMIN_TOKEN": admin_token,
                    "SQL_DIR": sql_dir})
        if database_url:
            env["DATABASE_URL"] = database_url
        env.update(settings or {})
        super().__init__([binary], workdir, env, os.path.join(workdir, output))

    def start(self, wait=True, timeout=20, ready=(200,)):
        """Start the process; with @wait, until GET /api/v1/health answers one of @ready.
        CaseFailed (with the output's tail) when it exits first or does not answer in time."""
        self.spawn()
        if wait:
            self.wait_ready(timeout, ready)
        return self

    def wait_ready(self, timeout=20, ready=(200,)):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CaseFailed("coordinator exited with %d: %s" % (self.proc.returncode,
                                                                    self.log_tail()))
            try:
                if http_request(self.port, "GET", "/api/v1/health", timeout=5)[0] in ready:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise CaseFailed("coordinator did not answer /api/v1/health: " + self.log_tail())

    def restart(self, new_port=False, **start_kw):
        """stop() (a no-op after kill9()), optionally move to a new free port, start()."""
        self.stop()
        if new_port:
            self.port = free_port()
            self.env["PORT"] = str(self.port)
        return self.start(**start_kw)

    def req(self, method, path, body=None, headers=None, raw=None, timeout=15):
        """http_request() on this coordinator: (status, headers, payload bytes)."""
        return http_request(self.port, method, path, body=body, headers=headers, raw=raw,
                            timeout=timeout)

    def jreq(self, method, path, body=None, headers=None, admin=False, raw=None, timeout=15):
        """A request whose answer is decoded as JSON (decode_json): (status, doc, headers).
        @admin adds X-Admin-Token."""
        h = dict(headers or {})
        if admin:
            h["X-Admin-Token"] = self.admin_token
        st, hd, payload = http_request(self.port, method, path, body=body, headers=h, raw=raw,
                                       timeout=timeout)
        return st, decode_json(payload), hd

    def invariant(self):
        """CaseFailed unless the credit invariant holds: the sum of balances and holds equals
        the sum of grants (GET /api/v1/debug/invariant answers 200 {"ok": true})."""
        st, doc, _ = self.jreq("GET", "/api/v1/debug/invariant", admin=True)
        check(st == 200 and doc == {"ok": True}, "invariant endpoint: %d %r" % (st, doc))


class Agent(Process):
    """One cacheout-agent connected to @coord over its WebSocket (COORDINATOR_URL).

    Its work root is @workdir/agent-<worker_id> (also its cwd), its output
    @workdir/agent-<worker_id>.log (default workdir: the coordinator's).  @token: AGENT_TOKEN;
    @settings: more environment, applied last; @args: extra command-line arguments (e.g.
    ["--bench-no-sandbox"]).  The environment is inherited minus LOG_FILE and
    AGENT_BENCH_NO_SANDBOX.
    """

    def __init__(self, binary, coord, worker_id, cores, ram_mb, token="", owner=None,
                 settings=None, args=(), workdir=None):
        workdir = workdir or coord.workdir
        self.worker_id = worker_id
        self.coord = coord
        self.root = os.path.join(workdir, "agent-" + worker_id)
        os.makedirs(self.root, exist_ok=True)
        env = dict(os.environ)
        for k in ("LOG_FILE", "AGENT_BENCH_NO_SANDBOX"):
            env.pop(k, None)
        env.update({"COORDINATOR_URL": "ws://127.0.0.1:%d/ws/agent" % coord.port,
                    "AGENT_TOKEN": token, "WORKER_ID": worker_id,
                    "AGENT_CORES": str(cores), "AGENT_RAM_MB": str(ram_mb),
                    "AGENT_WORK_ROOT": self.root})
        if owner:
            env["OWNER_ID"] = owner
        env.update(settings or {})
        super().__init__([binary] + list(args), self.root, env,
                         os.path.join(workdir, "agent-%s.log" % worker_id))

    def start(self):
        return self.spawn()

    def stop(self, timeout=5):
        return super().stop(timeout)

    def wait_connected(self, timeout=20):
        """Until GET /api/v1/workers lists this worker as connected (not offline)."""
        def ok():
            try:
                st, ws, _ = self.coord.jreq("GET", "/api/v1/workers")
            except (OSError, http.client.HTTPException):
                return False
            return st == 200 and any(w["worker_id"] == self.worker_id and
                                     w["status"] != "offline" for w in ws)
        wait_until(ok, timeout, "agent %s connected (see %s)" % (self.worker_id, self.output),
                   interval=0.05)
        return self


class RootlessAgent(Agent):
    """An Agent run as the unprivileged @user (no supplementary groups) from @binary, a copy
    that user can read (tests/lib/rootless.sh makes one), with HOME and XDG_RUNTIME_DIR = @home
    (a folder of that user's, mode 0700: see rootless_home()).  AGENT_WORK_ROOT is left unset,
    so the agent's own default under HOME is used; the sandbox's run folder and cgroup parent
    are the rootless defaults too.  @extra_env is applied last."""

    def __init__(self, user, binary, coord, worker_id, cores, ram_mb, home, token="",
                 owner=None, settings=None, extra_env=None, args=(), workdir=None):
        super().__init__(binary, coord, worker_id, cores, ram_mb, token=token, owner=owner,
                         settings=settings, args=args, workdir=workdir)
        self.user = user
        self.pw = pwd.getpwnam(user)
        self.home = home
        self.cwd = home
        for k in ("AGENT_WORK_ROOT", "XDG_STATE_HOME", "CACHEOUT_RUN_DIR",
                  "CACHEOUT_CGROUP_PARENT", "CACHEOUT_CGROUP_BASE"):
            self.env.pop(k, None)
        self.env.update({"HOME": home, "XDG_RUNTIME_DIR": home, "USER": user, "LOGNAME": user})
        self.env.update(extra_env or {})

    @property
    def work_root(self):
        return os.path.join(self.home, ".local", "state", "cacheout-agent")

    def spawn(self):
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, user=self.pw.pw_uid,
                                         group=self.pw.pw_gid, extra_groups=[])
        return self


def subid_first(user, path):
    """The first id of @user's first range of at least 256 ids in @path (/etc/subuid or
    /etc/subgid), as the sandbox picks it (by name or uid); None when there is none."""
    pw = pwd.getpwnam(user)
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(pw.pw_uid)):
            continue
        try:
            first, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count >= 256:
            return first
    return None


def rootless_home(user):
    """A new folder owned by @user alone (mode 0700) for a RootlessAgent's HOME, outside any
    work folder (which only root may enter).  The caller removes it."""
    home = tempfile.mkdtemp(prefix="cacheout-agent-rl-")
    pw = pwd.getpwnam(user)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o700)
    return home


# ------------------------------------------------------------------------------- WebSocket

class WebSocket:
    """A minimal RFC 6455 client: masked frames out, reassembly and ping answers in.

    The constructor sends the upgrade and reads the answer's head: ``status`` is its HTTP status
    (101 when upgraded, 0 when there was none).  @proto: Sec-WebSocket-Protocol (None: no
    header); @headers: more request headers; @rcvbuf: SO_RCVBUF, to play a slow reader;
    @answer_pings False drops pings unanswered (a peer whose liveness the server must judge
    from its messages alone, like the agent suite's fake agents).
    """

    def __init__(self, port, path, proto, headers=None, rcvbuf=None, connect_timeout=5,
                 answer_pings=True):
        self.answer_pings = answer_pings
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(connect_timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
                 "Sec-WebSocket-Version: 13"]
        if proto:
            lines.append("Sec-WebSocket-Protocol: " + proto)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        self.status = 0
        self.close_code = None
        self.close_reason = None
        self.closed = False
        while b"\r\n\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        try:
            self.status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            self.status = 0
        self.frag = b""

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def send(self, obj):
        """@obj as one JSON text frame."""
        self.send_text(json.dumps(obj))

    def send_text(self, text):
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def _fill(self, deadline):
        t = deadline - time.time()
        if t <= 0:
            raise socket.timeout()
        self.sock.settimeout(t)
        chunk = self.sock.recv(262144)
        if not chunk:
            self.closed = True
            raise EOFError()
        self.buf += chunk

    def _frame(self, deadline):
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n = b1 & 0x7f
                off = 2
                if n == 126 and len(self.buf) >= 4:
                    n = struct.unpack("!H", self.buf[2:4])[0]
                    off = 4
                elif n == 127 and len(self.buf) >= 10:
                    n = struct.unpack("!Q", self.buf[2:10])[0]
                    off = 10
                if (b1 & 0x7f) < 126 or off > 2:
                    if len(self.buf) >= off + n:
                        payload = self.buf[off:off + n]
                        self.buf = self.buf[off + n:]
                        return b0 & 0x80, b0 & 0x0f, payload
            self._fill(deadline)

    def recv(self, timeout=5.0):
        """The next text message as JSON; None on timeout; raises EOFError on close (then
        ``closed`` is set, ``close_code`` holds the peer's code, 1005 when it gave none, and
        ``close_reason`` its reason text)."""
        deadline = time.time() + timeout
        try:
            while True:
                fin, op, payload = self._frame(deadline)
                if op == 0x9:
                    if self.answer_pings:
                        self.send_frame(0xA, payload)
                    continue
                if op == 0xA:
                    continue
                if op == 0x8:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if len(
                        payload) >= 2 else 1005
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                    self.closed = True
                    raise EOFError()
                self.frag += payload
                if fin:
                    text, self.frag = self.frag, b""
                    return json.loads(text)
        except socket.timeout:
            return None

    def expect(self, pred, timeout=10.0, what="message"):
        """Messages until pred(msg); returns (msg, skipped messages).  CaseFailed on timeout."""
        deadline = time.time() + timeout
        seen = []
        while time.time() < deadline:
            m = self.recv(max(0.01, deadline - time.time()))
            if m is None:
                break
            if pred(m):
                return m, seen
            seen.append(m)
        raise CaseFailed("no %s within %.0fs; got %r" % (what, timeout,
                                                         [x.get("type") for x in seen][-20:]))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------- cases

class Runner:
    """Runs cases and prints one line each, then the suite's RESULT line.

    @label prefixes every line (the store or build under test); @decimals is the precision of
    the duration; with @tracebacks, an exception other than CaseFailed (a bug in the driver, say)
    is reported with a short traceback instead of its message alone.
    """

    def __init__(self, label, decimals=2, tracebacks=False):
        self.label = label
        self.decimals = decimals
        self.tracebacks = tracebacks
        self.passed = 0
        self.failed = 0

    def ok(self, name, secs=None):
        self.passed += 1
        when = "" if secs is None else " (%.*fs)" % (self.decimals, secs)
        print("ok   %s: %s%s" % (self.label, name, when), flush=True)

    def fail(self, name, why):
        self.failed += 1
        print("FAIL %s: %s: %s" % (self.label, name, why), flush=True)

    def case(self, name, fn, *args):
        """fn(*args) as one case; True when it passed.  Every exception counts as a failure."""
        t0 = time.time()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - any failure of a case is reported, then we go on
            if self.tracebacks and not isinstance(e, CaseFailed):
                self.fail(name, traceback.format_exc(limit=3))
            else:
                self.fail(name, e)
            return False
        self.ok(name, time.time() - t0)
        return True

    def finish(self):
        """Remove the working directories when every case passed (else name them), print
        "RESULT <passed> <failed>"; returns the exit status for the driver (0 or 1)."""
        if self.failed == 0:
            remove_workdirs()
        else:
            print("logs kept in: " + " ".join(WORKDIRS), flush=True)
        print("RESULT %d %d" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1
