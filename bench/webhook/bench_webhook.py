#!/usr/bin/env python3
"""Callback delivery latency: for each of --jobs jobs (run one after the other by a real agent),
the time from the job's end (completed_at, written in the transaction that finishes it and
queues its callback) to the moment a local receiver got the first POST.  Prints p50, p90 and
max in milliseconds.  Figures, not assertions."""
import argparse
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "lib"))
import cotest  # noqa: E402

ADMIN = "webhook-bench-admin-token-0123456789"
AGENT_TOKEN = "webhook-bench-agent-token-0123456789"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--coordinator", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--sql-dir", required=True)
    p.add_argument("--jobs", type=int, default=30)
    p.add_argument("--pg-bin")
    p.add_argument("--pg-port")
    a = p.parse_args()

    got = {}  # job_id -> wall time of the first POST
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            now = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            jid = json.loads(body)["job_id"]
            with lock:
                got.setdefault(jid, now)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/hook" % srv.server_address[1]

    workdir = cotest.make_workdir("cacheout-bench-webhook-")
    db = cotest.new_database("bench", workdir, a.pg_bin, a.pg_port, prefix="cobenchwh")
    c = cotest.Coordinator(a.coordinator, a.sql_dir, ADMIN, database_url=db, workdir=workdir,
                           settings={"AGENT_TOKEN": AGENT_TOKEN, "WEBHOOK_ALLOW_PRIVATE": "true",
                                     "DEFAULT_STARTING_CREDITS": "100000",
                                     "FRONTEND_DIR": workdir, "LOG_LEVEL": "WARNING"})
    agent = None
    try:
        c.start()
        agent = cotest.Agent(a.agent, c, "bench-agent", 2, 1024, token=AGENT_TOKEN).start()
        agent.wait_connected()
        lat = []
        for i in range(a.jobs):
            st, j, _ = c.jreq("POST", "/api/v1/submit",
                              {"title": "b%d" % i, "required_cores": 1, "required_ram_mb": 64,
                               "command": "true", "buyer_id": "bench", "callback_url": url},
                              admin=True)
            if st != 201:
                raise SystemExit("submit: %s %r" % (st, j))
            jid = j["job_id"]
            cotest.wait_until(lambda: jid in got, 60, "callback of " + jid, interval=0.01)
            st, job, _ = c.jreq("GET", "/api/v1/jobs/" + jid, admin=True)
            end = cotest.iso_ms(job["completed_at"]) / 1000.0
            lat.append((got[jid] - end) * 1000.0)
        lat.sort()
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        print("bench/webhook %s: %d jobs, job end -> first POST received: p50 %.1f ms, "
              "p90 %.1f ms, max %.1f ms" % ("postgres" if a.pg_port else "sqlite", len(lat),
                                             pick(0.5), pick(0.9), lat[-1]))
    finally:
        if agent:
            agent.stop()
        c.stop()
        srv.shutdown()
        cotest.remove_workdirs()


if __name__ == "__main__":
    main()
