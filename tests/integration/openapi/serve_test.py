#!/usr/bin/env python3
"""GET /api/v1/openapi.json on a real coordinator (SQLite): anonymous, 200, application/json,
the bytes of coordinator/openapi.json, the same bytes every time; also with a credential and
on a store that is down (the document needs no database).  Writes the served document to
--out for validate.py.  Ends with "RESULT <passed> <failed>"."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import cotest  # noqa: E402

ADMIN = "admin-token-openapi-suite-0123456789"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--sql-dir", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    run = cotest.Runner("sqlite")
    workdir = cotest.make_workdir("cacheout-openapi-")
    c = cotest.Coordinator(args.coordinator, args.sql_dir, ADMIN, workdir=workdir,
                           settings={"FRONTEND_DIR": workdir})
    source = open(args.doc, "rb").read()

    def anonymous():
        st, hd, body = c.req("GET", "/api/v1/openapi.json")
        cotest.check(st == 200, "status %d" % st)
        cotest.check(hd.get("content-type", "").startswith("application/json"), hd)
        cotest.check(body == source, "the served bytes differ from coordinator/openapi.json "
                     "(%d bytes served, %d in the file): rebuild" % (len(body), len(source)))
        doc = json.loads(body)
        cotest.check(doc["openapi"].startswith("3.1.") and "/api/v1/openapi.json" in doc["paths"],
                     "not the OpenAPI 3.1 document")
        with open(args.out, "wb") as f:
            f.write(body)

    def repeated_and_with_credentials():
        for headers in ({}, {"X-Admin-Token": ADMIN}, {"Authorization": "Bearer nonsense"}):
            st, _, body = c.req("GET", "/api/v1/openapi.json", headers=headers)
            if "Authorization" in headers:  # a wrong credential is 401 on every route
                cotest.check(st == 401, "wrong bearer key: %d" % st)
            else:
                cotest.check(st == 200 and body == source, "%r: %d" % (headers, st))
        st, _, _ = c.req("POST", "/api/v1/openapi.json", body={})
        cotest.check(st == 405, "POST: %d" % st)

    try:
        c.start()
        run.case("GET /api/v1/openapi.json anonymous: 200 application/json, the file's bytes",
                 anonymous)
        run.case("the same bytes again and with the admin token; a wrong key 401, POST 405",
                 repeated_and_with_credentials)
    except Exception as ex:  # noqa: BLE001 - the set-up failed: one failure
        run.fail("set-up", ex)
    finally:
        c.stop()
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
