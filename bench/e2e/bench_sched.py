#!/usr/bin/env python3
"""Scheduling figures (issue "Scheduling guarantees"): prints, asserts nothing.

  unplaceable  N jobs that no agent can run (64 cores, priority 10) are queued, then a 1-core
               priority-5 job is submitted with an idle 2-core agent (benchmark mode) connected:
               the time from its submit to its assignment (the agent's job.accepted log line
               minus the job's created_at), over a few such jobs.  Head-of-line blocking shows
               as a long time or "not assigned".
  fairshare    two buyers: A submits 100 jobs, then B submits 10, while no agent is connected;
               then one 1-core agent connects and runs them one at a time.  Prints at which
               start positions (1-110, by the agent's job.accepted order) B's jobs ran.  Without
               fair share they are 101-110.

Uses bench_e2e.start_stack (coordinator on a fresh SQLite database, agent in benchmark mode).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_e2e  # noqa: E402
from bench_e2e import ADMIN, cotest, received_ms, start_stack, stop_stack  # noqa: E402


def submit_all(port, jobs, threads=4):
    """Submit @jobs (a list of bodies) in order over @threads keep-alive connections."""
    import threading
    errors = []
    chunks = [jobs[i::threads] for i in range(threads)]

    def worker(chunk):
        c = cotest.Client(port, ADMIN)
        for body in chunk:
            st, doc = c.req("POST", "/api/v1/submit", body, admin=True)
            if st != 201:
                errors.append((st, doc))
    ts = [threading.Thread(target=worker, args=(ch,)) for ch in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit("bench: %d submits failed, e.g. %r" % (len(errors), errors[0]))


def job(buyer, cores=1, priority=5, title="sched"):
    return {"title": title, "required_cores": cores, "required_ram_mb": 64, "command": "true",
            "buyer_id": buyer, "priority": priority}


def phase_unplaceable(args):
    coord, agent = start_stack(args, "unplaceable", True, 2)
    try:
        t0 = time.time()
        submit_all(coord.port, [job("hog", cores=64, priority=10, title="unplaceable")
                                for _ in range(args.unplaceable)])
        print("unplaceable: %d unplaceable jobs queued in %.1f s" % (args.unplaceable,
                                                                     time.time() - t0))
        c = cotest.Client(coord.port, ADMIN)
        waits = []
        for i in range(args.probes):
            st, doc = c.req("POST", "/api/v1/submit", job("probe", title="probe"), admin=True)
            if st != 201:
                raise SystemExit("bench: probe submit answered %s %r" % (st, doc))
            jid = doc["job_id"]
            deadline = time.time() + args.probe_timeout
            got = None
            while time.time() < deadline:
                got = received_ms(agent).get(jid)
                if got is not None:
                    break
                time.sleep(0.02)
            st, j = c.req("GET", "/api/v1/jobs/" + jid)
            if got is None:
                print("unplaceable: probe %d NOT assigned within %.0f s (status %s)"
                      % (i + 1, args.probe_timeout, j.get("status") if j else st))
                waits.append(None)
            else:
                waits.append(got - cotest.iso_ms(j["created_at"]))
                print("unplaceable: probe %d assigned %.0f ms after its submit" % (i + 1,
                                                                                   waits[-1]))
        ok = [w for w in waits if w is not None]
        print("unplaceable: submit->assigned with %d unplaceable jobs queued: %s"
              % (args.unplaceable, "median %.0f ms, max %.0f ms (%d of %d assigned)"
                 % (bench_e2e.pct(ok, 50), max(ok), len(ok), len(waits)) if ok else
                 "none of %d assigned within %.0f s each" % (len(waits), args.probe_timeout)))
    finally:
        stop_stack(coord, agent)


def phase_fairshare(args):
    coord, agent = start_stack(args, "fairshare", True, 1, connect=False)
    try:
        a = [job("buyer-a", title="a") for _ in range(100)]
        b = [job("buyer-b", title="b") for _ in range(10)]
        submit_all(coord.port, a, threads=1)
        submit_all(coord.port, b, threads=1)
        bench_e2e.connect_agent(coord, agent)
        bench_e2e.wait_final(coord.port, 110, 300)
        js = {j["job_id"]: j for j in bench_e2e.all_jobs(coord.port)}
        rec = received_ms(agent)
        order = sorted((t, jid) for jid, t in rec.items() if jid in js)
        pos = [i + 1 for i, (_, jid) in enumerate(order) if js[jid]["buyer_id"] == "buyer-b"]
        print("fairshare: buyer A submitted 100 jobs, then buyer B 10; B's jobs started at "
              "positions %s of %d (without fair share: 101-110)" % (pos, len(order)))
    finally:
        stop_stack(coord, agent)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--unplaceable", type=int, default=10000)
    ap.add_argument("--probes", type=int, default=5)
    ap.add_argument("--probe-timeout", type=float, default=10)
    ap.add_argument("--phases", default="unplaceable,fairshare")
    args = ap.parse_args()
    for p in args.phases.split(","):
        {"unplaceable": phase_unplaceable, "fairshare": phase_fairshare}[p](args)


if __name__ == "__main__":
    main()
