#!/usr/bin/env python3
"""End-to-end benchmark: trivial jobs (`true`) submitted over HTTP to a real coordinator with one
local agent.  Prints figures, asserts nothing.

Phases (each on a fresh coordinator and database):
  latency     jobs submitted one at a time on an idle system: p50/p99 submit->finished and
              p50 submit->agent-receives
  sandboxed   N jobs submitted by several client threads, the agent runs each in its sandbox:
              jobs/s end to end, p50/p99 submit->finished, p50 submit->agent-receives
  loop        the one-shot runner from a shell loop, `xargs -P<cores> cacheout-run ... true`,
              just before and just after the sandboxed phase: the ratio sandboxed / loop jobs/s
              is printed with the sandboxed figures (what a resident agent should beat)
  dispatch    the same with the agent in benchmark mode (--bench-no-sandbox: it runs nothing and
              reports success), measuring the coordinator alone; plus the drain rate of a backlog
              queued before the agent connects (no HTTP client in the way)
  drain-spread the same drain spread over several benchmark-mode agents (BENCH_SPREAD, 8, of
              the same cores in all) and as many buyers: a marketplace's shape, where claims
              and settlements do not all meet on one worker's and one buyer's rows
  drain2      PostgreSQL only: the same drain with two coordinators on the one database, each
              with one benchmark-mode agent of half the cores (the same capacity in all), and
              the ratio to the one-coordinator drain when that phase ran too
  sandboxed2  PostgreSQL only: the sandboxed phase with two coordinators on the one database,
              each with a sandboxing agent of half the cores and half the submitting threads,
              and the ratio to the one-coordinator sandboxed phase when it ran too

Times: "submit" is the job's created_at (stored by the coordinator while answering the submit),
"finished" its completed_at, "agent receives" the agent's log line for job.accepted; all three
clocks are the same host's.  Client-side figures (first submit sent -> last job final) are
printed too.  Standard library and tests/lib/cotest.py only (processes, HTTP client, databases);
bench/dashboard imports the stack and submit helpers from here.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
import cotest  # noqa: E402  (the coordinator test library: processes, HTTP client)
from cotest import cpu_seconds, iso_ms  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
AGENT_TOKEN = "bench-agent"
ARGS = None


def minor_faults(proc):
    """Minor page faults of a child process's own threads so far (copy-on-write faults after
    each sandbox clone are most of an agent's); nan if gone."""
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return float("nan")


def each_process():
    """(pid, command name, the /proc/PID/stat fields after it) of every process that can be read."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        yield int(d), head.split("(", 1)[1], rest.split()


def launcher_stats(agent_pid):
    """The agent's sandbox launchers (children named cacheout-launch, see sandbox/README.md):
    their pids, and the CPU seconds they used so far."""
    found = [(pid, (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))
             for pid, comm, f in each_process()
             if comm == "cacheout-launch" and f[1] == str(agent_pid)]
    return [pid for pid, _ in found], sum(cpu for _, cpu in found)


def reaped_cpu(proc):
    """CPU seconds of a process's reaped children (the agent's: every sandbox's init with its
    job, cloned by the agent or by its launcher); nan if gone."""
    for pid, _, f in each_process():
        if pid == proc.pid:
            return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def print_cpu(name, coord, agent, n, c0, a0, f0=None, l0=0.0, r0=None):
    c = cpu_seconds(coord.proc) - c0
    a = cpu_seconds(agent.proc) - a0
    launch = launcher_stats(agent.proc.pid)[1] - l0
    faults = "" if f0 is None else ", %.0f minor page faults" % ((minor_faults(agent.proc) - f0) / n)
    print("%-22s CPU per job: coordinator %.0f us, agent %.0f us%s (load average now %.1f; the "
          "coordinator alone would sustain ~%.0f jobs/s per core)" % (
              name, c * 1e6 / n, (a + launch) * 1e6 / n, faults, os.getloadavg()[0],
              n / c if c > 0 else 0))
    if launch > 0:
        print("%-22s agent CPU per job: its threads %.0f us + its sandbox launcher %.0f us" % (
            name, a * 1e6 / n, launch * 1e6 / n))
    if r0 is not None:
        print("%-22s the sandboxes the agent reaped (init and job): %.0f us CPU per job" % (
            name, (reaped_cpu(agent.proc) - r0) * 1e6 / n))


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def new_database(args, name):
    """A working directory and a fresh database (SQLite, or PostgreSQL with args.pg_port)."""
    workdir = cotest.make_workdir("cacheout-bench-%s-" % name)
    url = cotest.new_database(name, workdir, getattr(args, "pg_bin", None),
                              getattr(args, "pg_port", 0), prefix="bench")
    return workdir, url


def new_coordinator(args, workdir, url, output="coordinator.log"):
    """A coordinator (not started) on @url with the benchmark's settings."""
    return cotest.Coordinator(
        args.coordinator, args.sql_dir, ADMIN, database_url=url, workdir=workdir, output=output,
        unset=cotest.UNSET + ("DB_THREADS", "AGENT_BENCH_NO_SANDBOX"),
        settings={"AGENT_TOKEN": AGENT_TOKEN, "DEFAULT_STARTING_CREDITS": "100000000",
                  "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                  "FRONTEND_DIR": workdir, "WORKER_TIMEOUT_SECONDS": "30"})


def start_stack(args, name, bench_mode, cores, connect=True):
    """A coordinator on a fresh database (SQLite, or PostgreSQL when @args has a pg_port) and
    its agent "bench-agent" offering @cores, in benchmark mode (--bench-no-sandbox) when
    @bench_mode.  The coordinator is started; the agent too, and connected, when @connect (else
    call connect_agent() later).  Returns (coordinator, agent); exits with a message when
    either does not come up.  bench/dashboard uses it too."""
    workdir, url = new_database(args, name)
    coord = new_coordinator(args, workdir, url)
    if getattr(args, "rootless_user", "") and not bench_mode:
        # A rootless agent (its sandboxes in a user namespace): the copy of the binary that
        # bench/e2e/run.sh made readable for the user, its HOME a folder of its own.
        agent = cotest.RootlessAgent(args.rootless_user, args.rootless_agent, coord,
                                     "bench-agent", cores, 64 * cores,
                                     cotest.rootless_home(args.rootless_user), token=AGENT_TOKEN,
                                     settings={"LOG_LEVEL": "INFO"})
    else:
        agent = cotest.Agent(args.agent, coord, "bench-agent", cores, 64 * cores,
                             token=AGENT_TOKEN, settings={"LOG_LEVEL": "INFO"},
                             args=["--bench-no-sandbox"] if bench_mode else [])
    try:
        coord.start()
    except cotest.CaseFailed as e:
        stop_stack(coord, agent)
        raise SystemExit("bench: the coordinator did not start: %s (see %s)" % (e, workdir))
    if connect:
        connect_agent(coord, agent)
    return coord, agent


def connect_agent(coord, agent):
    """Start @agent and wait until the coordinator lists it; exits with a message if not."""
    try:
        agent.start().wait_connected()
    except cotest.CaseFailed as e:
        stop_stack(coord, agent)
        raise SystemExit("bench: the agent did not connect: %s (see %s)" % (e, agent.output))


def stop_stack(coord, agent):
    """Stop both (20 s each before SIGKILL); remove the working directory unless BENCH_KEEP."""
    agent.stop(timeout=20)
    coord.stop(timeout=20)
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(coord.workdir, ignore_errors=True)
        if isinstance(agent, cotest.RootlessAgent):
            shutil.rmtree(agent.home, ignore_errors=True)


def received_ms(agent):
    """job_id -> ms the agent logged job.accepted."""
    got = {}
    rx = re.compile(r"^(\S+) level=\w+ job accepted job=(\S+)")
    with open(agent.output, errors="replace") as f:
        for line in f:
            m = rx.match(line)
            if m:
                got.setdefault(m.group(2), iso_ms(m.group(1)))
    return got


JOB = {"title": "bench", "required_cores": 1, "required_ram_mb": 64, "command": "true",
       "buyer_id": "bench-buyer", "priority": 5}


def wait_final(port, n, timeout):
    c = cotest.Client(port, ADMIN)
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, h = c.req("GET", "/api/v1/health")
        if st == 200:
            j = h["jobs"]
            if j["completed"] + j["failed"] + j["cancelled"] >= n:
                return time.time(), j
        time.sleep(0.01)
    raise SystemExit("bench: jobs not final after %ss" % timeout)


def all_jobs(port):
    c = cotest.Client(port, ADMIN)
    out, off = [], 0
    while True:
        st, js = c.req("GET", "/api/v1/jobs?limit=1000&offset=%d" % off, admin=True)
        if st != 200 or not js:
            return out
        out += js
        off += len(js)


def submit_many(port, n, threads, job=None):
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    errors = []

    def worker(k):
        c = cotest.Client(port, ADMIN)
        for _ in range(k):
            st, body = c.req("POST", "/api/v1/submit", job or JOB, admin=True)
            if st != 201:
                errors.append((st, body))

    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit("bench: %d submits failed, e.g. %r" % (len(errors), errors[0]))
    return t0, time.time()


def report(name, jobs, recv, t0=None, t_end=None):
    done = [j for j in jobs if j["completed_at"]]
    ok = sum(1 for j in jobs if j["status"] == "completed")
    fin = [iso_ms(j["completed_at"]) - iso_ms(j["created_at"]) for j in done]
    rcv = [recv[j["job_id"]] - iso_ms(j["created_at"]) for j in jobs if j["job_id"] in recv]
    first = min(iso_ms(j["created_at"]) for j in jobs)
    last = max(iso_ms(j["completed_at"]) for j in done) if done else first
    span = max(1, last - first) / 1000.0
    print("%-22s jobs=%d completed=%d" % (name, len(jobs), ok))
    if t0 is not None:
        print("%-22s jobs/s end to end (client: first submit -> all final): %.0f" % (
            "", len(jobs) / max(1e-9, t_end - t0)))
    print("%-22s jobs/s end to end (server: first created -> last completed): %.0f" % (
        "", len(jobs) / span))
    print("%-22s submit->finished ms: p50 %.0f  p99 %.0f" % ("", pct(fin, 50), pct(fin, 99)))
    print("%-22s submit->agent-receives ms: p50 %.0f  p99 %.0f" % ("", pct(rcv, 50), pct(rcv, 99)))
    sys.stdout.flush()


def phase_latency():
    coord, agent = start_stack(ARGS, "latency", False, ARGS.cores)
    try:
        c = cotest.Client(coord.port, ADMIN)
        client = []
        for i in range(ARGS.latency_jobs):
            t = time.time()
            st, j = c.req("POST", "/api/v1/submit", JOB, admin=True)
            if st != 201:
                raise SystemExit("bench: submit failed: %r" % (j,))
            while True:
                st, jj = c.req("GET", "/api/v1/jobs/" + j["job_id"])
                if jj["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.001)
            client.append((time.time() - t) * 1000)
            time.sleep(0.02)
        report("latency (idle, sandboxed)", all_jobs(coord.port), received_ms(agent))
        print("%-22s client-observed submit->final ms (polling 1 ms): p50 %.0f  p99 %.0f" % (
            "", pct(client, 50), pct(client, 99)))
    finally:
        stop_stack(coord, agent)


def xargs_loop(n):
    """Jobs/s of `xargs -P<cores> cacheout-run --cores 1 --memory 64M -- true` over @n jobs (the
    e2e job's limits), or None without a cacheout-run (or for a rootless agent: the loop runs
    as root)."""
    if n <= 0 or ARGS.rootless_user or not ARGS.run or not os.access(ARGS.run, os.X_OK):
        return None
    cmd = "seq %d | xargs -P%d -I{} %s --cores 1 --memory 64M -- true" % (
        n, os.cpu_count() or 1, ARGS.run)
    t0 = time.time()
    rc = os.system(cmd)
    dt = time.time() - t0
    if rc != 0:
        raise SystemExit("bench: the xargs loop failed (%s)" % cmd)
    return n / dt


def start_perf(name, coord, agent):
    """With BENCH_PERF_OUT=folder (bench/profile): `perf record` of the coordinator and of the
    agent (with the sandboxes it starts), one file each, while the phase's jobs run."""
    out = os.environ.get("BENCH_PERF_OUT")
    if not out:
        return []
    procs = []
    for who, p in (("coordinator", coord.proc), ("agent", agent.proc)):
        # The agent with its sandbox launcher, which clones the sandboxes (sandbox/README.md).
        pids = [p.pid] + (launcher_stats(p.pid)[0] if who == "agent" else [])
        procs.append(subprocess.Popen(
            ["perf", "record", "-q", "-g", "-F", os.environ.get("BENCH_PERF_FREQ", "1999"),
             "-e", "cpu-clock", "-p", ",".join(str(x) for x in pids), "-o",
             os.path.join(out, "%s-%s.data" % (name, who))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)  # perf attached before the first submit
    return procs


def stop_perf(procs):
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait()


def phase_throughput(bench_mode):
    name = "dispatch-only" if bench_mode else "sandboxed"
    loops = [] if bench_mode else [xargs_loop(ARGS.loop_jobs)]
    coord, agent = start_stack(ARGS, name, bench_mode,
                               ARGS.dispatch_cores if bench_mode else ARGS.cores)
    try:
        perf = start_perf(name, coord, agent)
        c0, a0, d0 = cpu_seconds(coord.proc), cpu_seconds(agent.proc), db_server_cpu()
        f0 = minor_faults(agent.proc)
        l0 = launcher_stats(agent.proc.pid)[1]
        r0 = reaped_cpu(agent.proc)
        t0, t_sub = submit_many(coord.port, ARGS.jobs, ARGS.threads)
        t_end, _ = wait_final(coord.port, ARGS.jobs, 600)
        stop_perf(perf)
        print_cpu(name, coord, agent, ARGS.jobs, c0, a0, f0, l0, r0)
        print_db_cpu(name, ARGS.jobs, d0)
        print("%-22s submit rate (client, %d threads): %.0f jobs/s" % (
            name, ARGS.threads, ARGS.jobs / max(1e-9, t_sub - t0)))
        report(name, all_jobs(coord.port), received_ms(agent), t0, t_end)
        if not bench_mode:
            SANDBOXED_RATES[1] = ARGS.jobs / max(1e-9, t_end - t0)
    finally:
        stop_stack(coord, agent)
    if loops and loops[0] is not None:
        loops.append(xargs_loop(ARGS.loop_jobs))
        loop = (loops[0] + loops[1]) / 2
        e2e = ARGS.jobs / max(1e-9, t_end - t0)
        print("%-22s xargs -P%d cacheout-run loop (%d jobs, before/after): %.0f / %.0f jobs/s; "
              "ratio end to end / loop: %.2f (target >= 1.5; load average %.1f)" % (
                  "loop", os.cpu_count() or 1, ARGS.loop_jobs, loops[0], loops[1], e2e / loop,
                  os.getloadavg()[0]))
        sys.stdout.flush()


def drain_figures(name, coords, agents, t0):
    """Wait for the backlog, print the drain rates; returns the server-side jobs/s."""
    t_end, _ = wait_final(coords[0].port, ARGS.jobs, 600)
    jobs = all_jobs(coords[0].port)
    recv = {}
    for a in agents:
        recv.update(received_ms(a))
    first = min(recv.values()) if recv else 0
    last = max(iso_ms(j["completed_at"]) for j in jobs if j["completed_at"])
    rate = len(jobs) / max(0.001, (last - first) / 1000)
    print("%-22s backlog of %d drained: %.0f jobs/s (server: first received -> last "
          "completed), %.0f jobs/s (client: agent start -> all final)" % (
              name, len(jobs), rate, len(jobs) / max(1e-9, t_end - t0)))
    sys.stdout.flush()
    return rate


DRAIN_RATES = {}
SANDBOXED_RATES = {}


def db_server_cpu():
    """CPU seconds used so far by the PostgreSQL server on ARGS.pg_port: its postmaster (with the
    ended backends it reaped) and its live processes; nan without one."""
    if not ARGS.pg_port:
        return float("nan")
    procs = {}
    for pid, comm, fields in each_process():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        procs[pid] = (comm == "postgres", int(fields[1]), argv, [int(x) for x in fields[11:15]])
    port = str(ARGS.pg_port).encode()
    master = [pid for pid, (pg, _, argv, _) in procs.items()
              if pg and b"-p" in argv and port in argv]
    if not master:
        return float("nan")
    m = master[0]
    ticks = sum(procs[m][3])  # utime, stime, cutime, cstime
    ticks += sum(sum(t[:2]) for pid, (pg, ppid, _, t) in procs.items() if ppid == m)
    return ticks / os.sysconf("SC_CLK_TCK")


def print_db_cpu(name, n, d0):
    """PostgreSQL: the database server's CPU per job since @d0 (db_server_cpu)."""
    d = db_server_cpu() - d0
    if d == d:  # not nan
        print("%-22s CPU per job: database server %.0f us" % (name, d * 1e6 / n))


def compare_rates(key, rate):
    """BENCH_RATES_FILE: the SQLite run records its drain rates there, the PostgreSQL run prints
    its own against them (the same machine, minutes apart)."""
    path = os.environ.get("BENCH_RATES_FILE")
    if not path:
        return
    rates = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, v = line.split()
                rates[(k.split(":")[0], k.split(":")[1])] = float(v)
    store = "postgres" if ARGS.pg_port else "sqlite"
    with open(path, "a") as f:
        f.write("%s:%s %f\n" % (store, key, rate))
    if store == "postgres" and ("sqlite", key) in rates:
        print("%-22s PostgreSQL / SQLite (%s): %.0f / %.0f jobs/s = %.2f (target >= 0.5)" % (
            "", key, rate, rates[("sqlite", key)], rate / rates[("sqlite", key)]))


def phase_drain():
    coord, agent = start_stack(ARGS, "drain", True, ARGS.dispatch_cores, connect=False)
    try:
        submit_many(coord.port, ARGS.jobs, ARGS.threads)
        t0 = time.time()
        c0, d0 = cpu_seconds(coord.proc), db_server_cpu()
        connect_agent(coord, agent)
        DRAIN_RATES[1] = drain_figures("dispatch-only drain", [coord], [agent], t0)
        print_cpu("dispatch-only drain", coord, agent, ARGS.jobs, c0, 0)
        print_db_cpu("dispatch-only drain", ARGS.jobs, d0)
        compare_rates("drain", DRAIN_RATES[1])
    finally:
        stop_stack(coord, agent)


def phase_drain_spread():
    """The drain over ARGS.spread agents (the same cores in all) and as many buyers."""
    k = max(1, ARGS.spread)
    name = "drain, %d agents+buyers" % k
    workdir, url = new_database(ARGS, "drain-spread")
    coord = new_coordinator(ARGS, workdir, url)
    cores = max(1, ARGS.dispatch_cores // k)
    agents = [cotest.Agent(ARGS.agent, coord, "bench-agent-%d" % i, cores, 64 * cores,
                           token=AGENT_TOKEN, settings={"LOG_LEVEL": "INFO"},
                           args=["--bench-no-sandbox"]) for i in range(k)]
    try:
        coord.start()
        for i in range(k):
            n = ARGS.jobs // k + (1 if i < ARGS.jobs % k else 0)
            submit_many(coord.port, n, ARGS.threads, dict(JOB, buyer_id="bench-buyer-%d" % i))
        t0 = time.time()
        c0, d0 = cpu_seconds(coord.proc), db_server_cpu()
        a0 = [0.0] * k
        for a in agents:
            a.start()
        for a in agents:
            a.wait_connected(60)
        rate = drain_figures(name, [coord], agents, t0)
        c = cpu_seconds(coord.proc) - c0
        a = sum(cpu_seconds(x.proc) - a0[i] for i, x in enumerate(agents))
        print("%-22s CPU per job: coordinator %.0f us, agents %.0f us (load average now %.1f)" % (
            name, c * 1e6 / ARGS.jobs, a * 1e6 / ARGS.jobs, os.getloadavg()[0]))
        print_db_cpu(name, ARGS.jobs, d0)
        compare_rates("drain-spread", rate)
        sys.stdout.flush()
    finally:
        for a in agents:
            a.stop(timeout=20)
        coord.stop(timeout=20)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def nodes_stack(name, n, cores, bench_mode):
    """@n coordinators on one fresh PostgreSQL database (not started) and one agent of @cores /
    @n on each (benchmark mode when @bench_mode): (workdir, coordinators, agents)."""
    workdir, url = new_database(ARGS, name)
    coords = [new_coordinator(ARGS, workdir, url, "coordinator-%d.log" % i) for i in range(n)]
    each = max(1, cores // n)
    agents = [cotest.Agent(ARGS.agent, c, "bench-agent-%d" % i, each, 64 * each,
                           token=AGENT_TOKEN, settings={"LOG_LEVEL": "INFO"},
                           args=["--bench-no-sandbox"] if bench_mode else [])
              for i, c in enumerate(coords)]
    return workdir, coords, agents


def stop_nodes(workdir, coords, agents):
    """Stop what nodes_stack made; remove the working directory unless BENCH_KEEP."""
    for a in agents:
        a.stop(timeout=20)
    for c in coords:
        c.stop(timeout=20)
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)


def jobs_per_worker(jobs):
    """"worker=count, ..." of @jobs by assigned worker."""
    per = {}
    for j in jobs:
        per[j["assigned_worker"]] = per.get(j["assigned_worker"], 0) + 1
    return ", ".join("%s=%d" % kv for kv in sorted(per.items()))


def phase_drain_nodes(n):
    """The drain with @n coordinators on one PostgreSQL database, one agent on each."""
    if not ARGS.pg_port:
        print("drain%d: skipped (several coordinators need PostgreSQL: BENCH_PG=1)" % n)
        return
    name = "dispatch-only drain, %d coordinators" % n
    workdir, coords, agents = nodes_stack("drain%d" % n, n, ARGS.dispatch_cores, True)
    try:
        for c in coords:
            c.start()  # one after the other: the first one migrates
        submit_many(coords[0].port, ARGS.jobs, ARGS.threads)
        t0 = time.time()
        c0, d0 = [cpu_seconds(c.proc) for c in coords], db_server_cpu()
        for a in agents:
            a.start()
        for a in agents:
            a.wait_connected(60)
        rate = drain_figures(name, coords, agents, t0)
        cpu = [cpu_seconds(c.proc) - c0[i] for i, c in enumerate(coords)]
        print("%-22s jobs per node's agent: %s; coordinator CPU per job: %s us (load average "
              "%.1f)" % ("", jobs_per_worker(all_jobs(coords[0].port)),
                         " / ".join("%.0f" % (x * 1e6 / ARGS.jobs) for x in cpu),
                         os.getloadavg()[0]))
        print_db_cpu(name, ARGS.jobs, d0)
        if 1 in DRAIN_RATES:
            print("%-22s %d coordinators / 1 coordinator: %.2f (target >= 1.6 when the database "
                  "is not the limit)" % ("", n, rate / DRAIN_RATES[1]))
        sys.stdout.flush()
    finally:
        stop_nodes(workdir, coords, agents)


def phase_sandboxed_nodes(n):
    """The sandboxed phase with @n coordinators on one PostgreSQL database: a sandboxing agent
    of ARGS.cores / @n on each, the jobs submitted to every node by its share of the threads."""
    if not ARGS.pg_port:
        print("sandboxed%d: skipped (several coordinators need PostgreSQL: BENCH_PG=1)" % n)
        return
    name = "sandboxed, %d coordinators" % n
    workdir, coords, agents = nodes_stack("sandboxed%d" % n, n, ARGS.cores, False)
    try:
        for c in coords:
            c.start()  # one after the other: the first one migrates
        for a in agents:
            a.start()
        for a in agents:
            a.wait_connected(60)
        c0, d0 = [cpu_seconds(c.proc) for c in coords], db_server_cpu()
        a0 = [cpu_seconds(a.proc) for a in agents]
        threads = max(1, ARGS.threads // n)
        counts = [ARGS.jobs // n + (1 if i < ARGS.jobs % n else 0) for i in range(n)]
        spans = [None] * n
        subs = [threading.Thread(target=lambda i=i: spans.__setitem__(
            i, submit_many(coords[i].port, counts[i], threads))) for i in range(n)]
        t0 = time.time()
        for t in subs:
            t.start()
        for t in subs:
            t.join()
        if None in spans:
            raise SystemExit("bench: a node's submits failed")
        t_end, _ = wait_final(coords[0].port, ARGS.jobs, 600)
        recv = {}
        for a in agents:
            recv.update(received_ms(a))
        jobs = all_jobs(coords[0].port)
        report(name, jobs, recv, t0, t_end)
        cpu = [cpu_seconds(c.proc) - c0[i] for i, c in enumerate(coords)]
        acpu = [cpu_seconds(a.proc) - a0[i] for i, a in enumerate(agents)]
        print("%-22s jobs per node's agent: %s; CPU per job: coordinators %s us, agents %s us "
              "(load average %.1f)" % ("", jobs_per_worker(jobs),
                                        " / ".join("%.0f" % (x * 1e6 / ARGS.jobs) for x in cpu),
                                        " / ".join("%.0f" % (x * 1e6 / ARGS.jobs) for x in acpu),
                                        os.getloadavg()[0]))
        print_db_cpu(name, ARGS.jobs, d0)
        rate = ARGS.jobs / max(1e-9, t_end - t0)
        if 1 in SANDBOXED_RATES:
            print("%-22s %d coordinators / 1 coordinator, sandboxed: %.0f / %.0f jobs/s = %.2f "
                  "(the same agent cores in all)" % ("", n, rate, SANDBOXED_RATES[1],
                                                     rate / SANDBOXED_RATES[1]))
        sys.stdout.flush()
    finally:
        stop_nodes(workdir, coords, agents)


def seller_agent(coord, k, cores, bench_mode):
    """Agent "bench-seller<k>" selling as user seller<k> with a sell key of its own (replicas run
    on distinct owners, which the shared agent token is not), started and connected."""
    c = cotest.Client(coord.port, ADMIN)
    user = "seller%d" % k
    st, _ = c.req("POST", "/api/v1/users", {"user_id": user}, admin=True)
    st, key = c.req("POST", "/api/v1/users/%s/keys" % user, {"name": "bench", "scopes": ["sell"]},
                    admin=True)
    if st != 201:
        raise SystemExit("bench: no sell key for %s: %s %r" % (user, st, key))
    a = cotest.Agent(ARGS.agent, coord, "bench-seller%d" % k, cores, 64 * cores,
                     settings={"LOG_LEVEL": "INFO", "AGENT_KEY": key["token"]},
                     args=["--bench-no-sandbox"] if bench_mode else [])
    connect_agent(coord, a)
    return a


def phase_replicas(bench_mode):
    """The cost of verification: the same N jobs with replicas 1, then 2, each on a fresh stack
    of two agents of two sellers (@bench_mode: agents in benchmark mode)."""
    name = "replicas (%s)" % ("dispatch-only" if bench_mode else "sandboxed")
    cores = ARGS.dispatch_cores if bench_mode else ARGS.cores
    rates = {}
    for r in (1, 2):
        coord, spare = start_stack(ARGS, "replicas%d" % r, bench_mode, cores, connect=False)
        agents = []
        try:
            agents = [seller_agent(coord, k, cores, bench_mode) for k in (1, 2)]
            c0 = cpu_seconds(coord.proc)
            t0, _ = submit_many(coord.port, ARGS.replica_jobs, ARGS.threads,
                                dict(JOB, replicas=r))
            # Health counts the replicas' own job rows too: r of them per job when r > 1.
            t_end, _ = wait_final(coord.port, ARGS.replica_jobs * (1 + r if r > 1 else 1), 600)
            cpu = cpu_seconds(coord.proc) - c0
        finally:
            for a in agents:
                a.stop(timeout=20)
            stop_stack(coord, spare)
        rates[r] = ARGS.replica_jobs / max(1e-9, t_end - t0)
        print("%-22s replicas=%d: %d jobs, %.0f jobs/s end to end (client: first submit -> all "
              "final), coordinator %.0f us CPU per job" % (name, r, ARGS.replica_jobs, rates[r],
                                                           cpu * 1e6 / ARGS.replica_jobs))
    print("%-22s replicas 2 / replicas 1 throughput: %.2f (load average %.1f)" % (
        name, rates[2] / rates[1], os.getloadavg()[0]))
    sys.stdout.flush()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--pg-port", type=int, default=0, help="PostgreSQL server (else SQLite)")
    ap.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--run", default="", help="cacheout-run, for the xargs loop")
    ap.add_argument("--loop-jobs", type=int, default=500)
    ap.add_argument("--latency-jobs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument("--dispatch-cores", type=int, default=64)
    ap.add_argument("--phases", default="latency,sandboxed,dispatch,drain")
    ap.add_argument("--spread", type=int, default=8, help="agents and buyers of drain-spread")
    ap.add_argument("--replica-jobs", type=int, default=1000,
                    help="jobs of the replicas phases (each run with replicas 1 and 2)")
    ap.add_argument("--rootless-user", default="",
                    help="run the sandboxing agent as this user (rootless sandboxes)")
    ap.add_argument("--rootless-agent", default="", help="its copy of cacheout-agent")
    ARGS = ap.parse_args()
    print("bench/e2e: store=%s jobs=%d threads=%d agent cores=%d (dispatch-only: %d)%s" % (
        "postgres" if ARGS.pg_port else "sqlite", ARGS.jobs,
        ARGS.threads, ARGS.cores, ARGS.dispatch_cores,
        (" ROOTLESS agent as %s" % ARGS.rootless_user) if ARGS.rootless_user else ""))
    phases = ARGS.phases.split(",")
    if "latency" in phases:
        phase_latency()
    if "sandboxed" in phases:
        phase_throughput(False)
    if "dispatch" in phases:
        phase_throughput(True)
    if "drain" in phases:
        phase_drain()
    if "drain-spread" in phases:
        phase_drain_spread()
    if "drain2" in phases:
        phase_drain_nodes(2)
    if "sandboxed2" in phases:
        phase_sandboxed_nodes(2)
    if "replicas" in phases:
        phase_replicas(False)
    if "replicas-dispatch" in phases:
        phase_replicas(True)


if __name__ == "__main__":
    main()
