#!/usr/bin/env python3
"""Job throughput with 0 vs N connected dashboards (DASHBOARD.md: 1,000 dashboards must not
change job throughput by more than 10%).

Method of bench/e2e (its stack, submit and wait helpers are reused; they start the processes
with tests/lib/cotest.py): a fresh coordinator and SQLite database per run, one local agent,
BENCH_JOBS trivial jobs submitted by several client threads; throughput = jobs / (first submit
-> every job final).  In the "with dashboards" runs, dash_load holds N dashboard sessions open
and reads all of them during the whole run.  Runs alternate (0, N, 0, N, ...) to spread the
noise of a shared machine over both figures; the median of each is compared.  Prints figures
only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
import bench_e2e as e2e  # noqa: E402  (bench/e2e's stack, submit and wait helpers)
import cotest  # noqa: E402  (the coordinator test library: CPU time, times)


def one_run(args, dashboards, bench_mode):
    cores = args.dispatch_cores if bench_mode else args.cores
    coord, agent = e2e.start_stack(args, "dash%d" % dashboards, bench_mode, cores)
    load = None
    stats = None
    try:
        if dashboards:
            load = subprocess.Popen([args.load, str(coord.port), str(dashboards)],
                                    stdout=subprocess.PIPE, text=True)
            line = load.stdout.readline().split()
            if not line or line[0] != "ready" or int(line[1]) != dashboards:
                raise SystemExit("bench/dashboard: only %r of %d dashboards connected" % (
                    line, dashboards))
        c0 = cotest.cpu_seconds(coord.proc)
        t0, _ = e2e.submit_many(coord.port, args.jobs, args.threads)
        t_end, _ = e2e.wait_final(coord.port, args.jobs, 600)
        cpu = cotest.cpu_seconds(coord.proc) - c0
        if load:
            load.terminate()
            out, _ = load.communicate(timeout=30)
            stats = json.loads(out.strip().splitlines()[-1])
            load = None
        jobs = e2e.all_jobs(coord.port)
        done = [j for j in jobs if j["completed_at"]]
        first = min(cotest.iso_ms(j["created_at"]) for j in jobs)
        last = max(cotest.iso_ms(j["completed_at"]) for j in done)
        return {"client": args.jobs / max(1e-9, t_end - t0),
                "server": len(done) / max(0.001, (last - first) / 1000.0),
                "cpu_us_per_job": cpu * 1e6 / args.jobs, "stats": stats}
    finally:
        if load:
            load.kill()
            load.wait()
        e2e.stop_stack(coord, agent)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument("--dispatch-cores", type=int, default=64)
    ap.add_argument("--dashboards", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="dispatch")
    args = ap.parse_args()
    print("bench/dashboard: jobs=%d threads=%d dashboards=%d reps=%d (load average %.1f)" % (
        args.jobs, args.threads, args.dashboards, args.reps, os.getloadavg()[0]))
    for mode in args.modes.split(","):
        bench_mode = mode == "dispatch"
        res = {0: [], args.dashboards: []}
        for rep in range(args.reps):
            for n in (0, args.dashboards):
                r = one_run(args, n, bench_mode)
                res[n].append(r)
                extra = ""
                if r["stats"]:
                    st = r["stats"]
                    extra = (" | dashboards: %d open of %d, %d messages (%.1f MB), %d per "
                             "dashboard, gaps %d, closed %d" % (
                                 st["open"], st["sessions"], st["messages"], st["bytes"] / 1e6,
                                 st["messages"] // max(1, st["sessions"]), st["gaps"],
                                 st["closed"]))
                print("%-9s run %d, %4d dashboards: %5.0f jobs/s (client), %5.0f jobs/s "
                      "(server), coordinator CPU %4.0f us/job%s" % (
                          mode, rep + 1, n, r["client"], r["server"], r["cpu_us_per_job"],
                          extra), flush=True)
        base = statistics.median(r["client"] for r in res[0])
        withd = statistics.median(r["client"] for r in res[args.dashboards])
        base_s = statistics.median(r["server"] for r in res[0])
        withd_s = statistics.median(r["server"] for r in res[args.dashboards])
        print("%-9s median jobs/s: 0 dashboards %.0f, %d dashboards %.0f, ratio %.3f (client); "
              "server-side %.0f vs %.0f, ratio %.3f; target ratio >= 0.90" % (
                  mode, base, args.dashboards, withd, withd / base, base_s, withd_s,
                  withd_s / base_s), flush=True)


if __name__ == "__main__":
    main()
