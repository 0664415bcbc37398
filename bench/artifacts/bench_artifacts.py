#!/usr/bin/env python3
"""Artifact throughput: one job writes a BENCH_ARTIFACT_MB (default 64) MiB file to /work/out;
the figure is MB/s from the job's end (its started_at + wall_ms) to the download of that file
complete, split into the upload phase (agent -> coordinator, stored: job end -> completed_at,
since job.finished follows the artifacts) and the download (GET .../artifacts/{path}, and
.../artifacts.tar.gz).  Real coordinator and agent (sandboxed, as root), SQLite or PostgreSQL.
Figures only; the checksum is checked, nothing else is asserted."""
import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "lib"))
import cotest  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
AGENT_TOKEN = "bench-agent-token"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg-port", type=int, default=0)
    ap.add_argument("--pg-bin", default=None)
    args = ap.parse_args()
    label = "postgres" if args.pg_port else "sqlite"
    workdir = cotest.make_workdir("cacheout-bench-art-")
    url = cotest.new_database("art", workdir, args.pg_bin, args.pg_port, prefix="bench")
    coord = cotest.Coordinator(args.coordinator, args.sql_dir, ADMIN, database_url=url,
                               workdir=workdir, unset=cotest.UNSET + ("DB_THREADS",),
                               settings={"AGENT_TOKEN": AGENT_TOKEN, "LOG_LEVEL": "WARNING",
                                         "DEFAULT_STARTING_CREDITS": "1000000",
                                         "FRONTEND_DIR": workdir})
    agent = cotest.Agent(args.agent, coord, "bench-art", 2, 4096, token=AGENT_TOKEN,
                         settings={"LOG_LEVEL": "WARNING"})
    size = args.mb * 1024 * 1024
    try:
        coord.start()
        agent.start().wait_connected()
        for run in range(args.runs):
            body = {"title": "artifact bench", "required_cores": 1,
                    "required_ram_mb": 2 * args.mb + 256, "buyer_id": "bench",
                    "command": "sh -c 'mkdir -p out && head -c %d /dev/urandom > out/a.bin'"
                               % size}
            st, j, _ = coord.jreq("POST", "/api/v1/submit", body=body, admin=True)
            if st != 201:
                raise SystemExit("submit answered %s: %r" % (st, j))
            jid = j["job_id"]
            while True:
                st, j, _ = coord.jreq("GET", "/api/v1/jobs/" + jid, admin=True)
                if j["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.02)
            if j["status"] != "completed":
                raise SystemExit("job ended %s" % j["status"])
            end_ms = cotest.iso_ms(j["started_at"]) + j["usage"]["wall_ms"]
            stored_ms = cotest.iso_ms(j["completed_at"])
            t0 = time.time()
            st, hd, payload = cotest.http_request(
                coord.port, "GET", "/api/v1/jobs/%s/artifacts/a.bin" % jid,
                headers={"X-Admin-Token": ADMIN}, timeout=300)
            done_ms = time.time() * 1000
            dl_s = time.time() - t0
            st2, lst, _ = coord.jreq("GET", "/api/v1/jobs/%s/artifacts" % jid, admin=True)
            ok = (st == 200 and len(payload) == size and
                  hashlib.sha256(payload).hexdigest() == lst[0]["sha256"])
            t1 = time.time()
            st3, _, tgz = cotest.http_request(
                coord.port, "GET", "/api/v1/jobs/%s/artifacts.tar.gz" % jid,
                headers={"X-Admin-Token": ADMIN}, timeout=300)
            tgz_s = time.time() - t1
            mb = size / 1e6
            total_s = (done_ms - end_ms) / 1000
            print("artifacts %s run %d: %d MiB, job end -> download complete %.2f s = %.1f MB/s "
                  "(upload+store %.2f s = %.1f MB/s, download %.2f s = %.1f MB/s, "
                  "tar.gz %.2f s for %.1f MB); checksum %s"
                  % (label, run + 1, args.mb, total_s, mb / total_s,
                     (stored_ms - end_ms) / 1000, mb / max((stored_ms - end_ms) / 1000, 1e-3),
                     dl_s, mb / dl_s, tgz_s, len(tgz) / 1e6,
                     "ok" if ok else "MISMATCH (%s: %r; list %r)" % (st, payload[:200], lst)),
                  flush=True)
    finally:
        agent.stop()
        coord.stop()


if __name__ == "__main__":
    main()
