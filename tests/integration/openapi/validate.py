#!/usr/bin/env python3
"""Checks coordinator/openapi.json against itself, against the server's route table, and against
answers the coordinator really gave (RECORD_ANSWERS lines, coord_openapi.h).

1. The document: OpenAPI 3.1 structure (openapi, info, paths, operations with responses, path
   parameters declared), every $ref resolves, every schema is a valid Draft 2020-12 schema,
   operationIds are unique.
2. The route table: each entry of routes[] in coordinator/coord_api.c (plus the artifact route
   and /metrics of coord_server.c) has its template in coord_openapi.c, the template agrees with
   the entry's prefix and suffix, and the document has that path and method; every operation of
   the document is served, unless it is marked x-cacheout-branch (a feature another branch
   adds: listed as a note).
3. The answers: the route and method exist in the document, the status is documented for it,
   the content type is the documented one, and a JSON body validates against the schema.
   Answers before routing (unknown path 404, 405, OPTIONS) must be Error objects (or empty).

Prints one "ok"/"FAIL" line per check and the per-route counts; exit status 1 on any failure.
Operations never exercised are listed; a core operation never exercised fails.
"""
import argparse
import collections
import copy
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import cotest  # noqa: E402

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:
    print("FAIL openapi: the Python module jsonschema is missing (Debian package "
          "python3-jsonschema; scripts/bootstrap.sh installs it)")
    sys.exit(1)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Exercised by the suites on every build: never exercising one of these fails.
CORE = {("POST", "/api/v1/submit"), ("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/{job_id}"),
        ("GET", "/api/v1/jobs/{job_id}/output"), ("POST", "/api/v1/jobs/{job_id}/cancel"),
        ("POST", "/api/v1/register"), ("GET", "/api/v1/workers"), ("GET", "/api/v1/task"),
        ("POST", "/api/v1/status"), ("GET", "/api/v1/credits/{user_id}"),
        ("POST", "/api/v1/credits/{user_id}/grant"), ("GET", "/api/v1/credits/{user_id}/ledger"),
        ("GET", "/api/v1/health"), ("GET", "/metrics"), ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/jobs/{job_id}/artifacts"), ("GET", "/api/v1/me"),
        ("POST", "/api/v1/users"), ("POST", "/api/v1/users/{user_id}/keys")}

RUN = cotest.Runner("openapi")


def ok(msg):
    RUN.ok(msg)


def bad(msg):
    RUN.fail("mismatch", msg)


def pointer(doc, ref):
    if not ref.startswith("#/"):
        raise KeyError("only local references are used: %s" % ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def walk_refs(node, where, out):
    if isinstance(node, dict):
        if "$ref" in node and isinstance(node["$ref"], str):
            out.append((where, node["$ref"]))
        for k, v in node.items():
            walk_refs(v, where + "/" + k, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_refs(v, "%s/%d" % (where, i), out)


def check_document(doc):
    errs = []
    if not str(doc.get("openapi", "")).startswith("3.1."):
        errs.append("openapi is %r, not 3.1.x" % doc.get("openapi"))
    for k in ("title", "version"):
        if k not in doc.get("info", {}):
            errs.append("info.%s is missing" % k)
    refs = []
    walk_refs(doc, "#", refs)
    for where, ref in refs:
        try:
            pointer(doc, ref)
        except (KeyError, TypeError) as ex:
            errs.append("%s: $ref %s does not resolve (%s)" % (where, ref, ex))
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as ex:
            errs.append("schema %s: %s" % (name, ex.message))
    schemes = doc.get("components", {}).get("securitySchemes", {})
    for want in ("X-Admin-Token", "X-Agent-Token"):
        if not any(s.get("name") == want for s in schemes.values()):
            errs.append("no security scheme for header %s" % want)
    if not any(s.get("scheme") == "bearer" for s in schemes.values()):
        errs.append("no bearer security scheme")
    ids = collections.Counter()
    for path, item in doc.get("paths", {}).items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, o in item.items():
            if method not in METHODS:
                errs.append("%s: %r is not an HTTP method" % (path, method))
                continue
            ids[o.get("operationId")] += 1
            where = "%s %s" % (method.upper(), path)
            if not o.get("responses"):
                errs.append("%s: no responses" % where)
            declared = set()
            for p in o.get("parameters", []):
                if "$ref" in p:
                    p = pointer(doc, p["$ref"])
                if p.get("in") == "path":
                    declared.add(p["name"])
                    if not p.get("required"):
                        errs.append("%s: path parameter %s must be required" % (where, p["name"]))
            if declared != names:
                errs.append("%s: path parameters %s declared as %s" % (where, sorted(names),
                                                                       sorted(declared)))
            for sec in o.get("security", []):
                for s in sec:
                    if s not in schemes:
                        errs.append("%s: unknown security scheme %s" % (where, s))
            for status, r in o.get("responses", {}).items():
                if not re.fullmatch(r"[1-5][0-9][0-9]", status):
                    errs.append("%s: response key %r is not a status" % (where, status))
                if "$ref" in r:
                    r = pointer(doc, r["$ref"])
                if "description" not in r:
                    errs.append("%s %s: a response needs a description" % (where, status))
    for i, n in ids.items():
        if n > 1 or not i:
            errs.append("operationId %r used %d times" % (i, n))
    if errs:
        for e in errs:
            bad("document: " + e)
    else:
        ok("document: OpenAPI 3.1 structure, %d $refs resolve, %d schemas valid (Draft 2020-12), "
           "%d operations" % (len(refs), len(doc["components"]["schemas"]), sum(ids.values())))


def server_routes(api_c, openapi_c):
    """[(METHOD, template, enum)] of the server, and the errors found on the way."""
    errs = []
    text = open(api_c).read()
    table = re.search(r"static const struct route_def routes\[\] = \{(.*?)\n\};", text, re.S)
    if not table:
        return [], ["no routes[] table in %s" % api_c]
    entries = re.findall(r'\{"([^"]*)",\s*(NULL|"[^"]*"),\s*(GET|POST|PATCH|DELETE|PUT),\s*'
                         r'(COORD_R_[A-Z_]+)', table.group(1))
    tmpl = dict(re.findall(r'\[(COORD_R_[A-Z_]+)\]\s*=\s*"([^"]+)"', open(openapi_c).read()))
    out = []
    for prefix, suffix, method, enum in entries:
        t = tmpl.get(enum)
        if not t:
            errs.append("%s (%s %s) has no template in coord_openapi.c" % (enum, method, prefix))
            continue
        if suffix == "NULL":
            want = re.escape("/api/v1" + prefix)
        else:
            want = re.escape("/api/v1" + prefix) + r"\{[a-z_]+\}" + re.escape(suffix.strip('"'))
        if not re.fullmatch(want, t):
            errs.append("%s: template %s does not match the route %s%s" % (
                enum, t, prefix, "" if suffix == "NULL" else "{id}" + suffix.strip('"')))
        out.append((method, t, enum))
    # Routed outside the table: the artifact route (coord_api.c) and /metrics (coord_server.c).
    for enum, method in (("COORD_R_JOB_ARTIFACT", "GET"), ("COORD_R_METRICS", "GET")):
        if enum in tmpl:
            out.append((method, tmpl[enum], enum))
        else:
            errs.append("%s has no template in coord_openapi.c" % enum)
    return out, errs


def check_routes(doc, routes, errs):
    served = set()
    for method, t, enum in routes:
        served.add((method, t))
        if method.lower() not in doc["paths"].get(t, {}):
            errs.append("%s %s (%s) is served but not in the document" % (method, t, enum))
    notes = []
    for path, item in doc["paths"].items():
        for method, o in item.items():
            if (method.upper(), path) in served:
                continue
            if o.get("x-cacheout-branch"):
                notes.append("%s %s (x-cacheout-branch %s)" % (method.upper(), path,
                                                               o["x-cacheout-branch"]))
            else:
                errs.append("%s %s is documented but not served" % (method.upper(), path))
    if errs:
        for e in errs:
            bad("routes: " + e)
    else:
        ok("routes: the %d routes of the server table are documented, and every documented "
           "operation is served" % len(routes) + (" or marked x-cacheout-branch" if notes else ""))
    for n in notes:
        print("NOTE documented for a branch this build does not have: " + n)
    return served


def explain(errors):
    """The most relevant validator message, looking inside anyOf/oneOf alternatives."""
    e = jsonschema.exceptions.best_match(errors)
    while e.context:
        e = jsonschema.exceptions.best_match(e.context)
    return "%s at %s (schema path %s)%s" % (
        e.message[:300], "/".join(str(p) for p in e.absolute_path) or "(root)",
        "/".join(str(p) for p in e.absolute_schema_path),
        "; %d errors in all" % len(errors) if len(errors) > 1 else "")


def template_regex(t):
    parts = re.split(r"({[^}]+})", t)
    rx = ""
    for p in parts:
        if p == "{path}":
            rx += r".+"
        elif p.startswith("{"):
            rx += r"[A-Za-z0-9._-]{1,64}"
        else:
            rx += re.escape(p)
    return re.compile(rx + "/?")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc", required=True)
    ap.add_argument("--api-c", required=True)
    ap.add_argument("--openapi-c", required=True)
    ap.add_argument("--served", default="", help="the document as GET /api/v1/openapi.json gave it")
    ap.add_argument("answers", nargs="*")
    args = ap.parse_args()

    doc = json.load(open(args.doc))
    check_document(doc)
    if args.served:
        same = json.load(open(args.served)) == doc
        (ok if same else bad)("GET /api/v1/openapi.json serves coordinator/openapi.json" +
                              ("" if same else ": it differs (rebuild?)"))
    routes, errs = server_routes(args.api_c, args.openapi_c)
    check_routes(doc, routes, errs)

    # One schema root with every component schema under $defs: $refs resolve without a resolver.
    defs = copy.deepcopy(doc["components"]["schemas"])
    text = json.dumps(defs).replace('"#/components/schemas/', '"#/$defs/')
    defs = json.loads(text)

    def validator(schema):
        s = json.loads(json.dumps(schema).replace('"#/components/schemas/', '"#/$defs/'))
        return Draft202012Validator(dict(s, **{"$defs": defs}) if isinstance(s, dict) else s)

    def response(o, status):
        r = o["responses"].get(str(status))
        if r and "$ref" in r:
            r = pointer(doc, r["$ref"])
        return r

    mismatches = collections.Counter()

    def mismatch(key, msg):
        """A failure, shown for the first 3 answers of each route (the rest are counted)."""
        mismatches[key] += 1
        if mismatches[key] <= 3:
            bad(msg)

    error_v = validator({"$ref": "#/components/schemas/Error"})
    regexes = [(template_regex(p), p) for p in doc["paths"]]
    counts = collections.Counter()
    statuses = collections.defaultdict(set)
    total = 0
    cache = {}
    for fname in args.answers:
        for n, line in enumerate(open(fname), 1):
            a = json.loads(line)
            path = a["path"].split("?")[0]
            if not (path.startswith("/api/") or path == "/metrics"):
                continue  # the dashboard's files
            total += 1
            where = "%s:%d %s %s -> %d" % (fname.split("/")[-1], n, a["method"], a["path"][:120],
                                            a["status"])
            if "body_error" in a:
                bad("%s: the answer says application/json but is not JSON: %s" % (
                    where, a["body_error"]))
                continue
            route = a["route"]
            if route is None:
                if a["method"] == "OPTIONS" or a["status"] in (404, 405):
                    # Before routing: CORS preflight (empty), unknown path or method (Error).
                    if a["body"] is not None:
                        errors = list(error_v.iter_errors(a["body"]))
                        if errors:
                            mismatch(("-", "unrouted"), "%s: not an Error object: %s" % (
                                where, errors[0].message))
                            continue
                    counts[(a["method"], "(unrouted %d)" % a["status"])] += 1
                    continue
                found = [p for rx, p in regexes if rx.fullmatch(path)]
                if not found:
                    bad("%s: no route of the document matches the path" % where)
                    continue
                route = found[0]
            else:
                rx = template_regex(route)
                if not rx.fullmatch(path) and a["status"] not in (400, 401, 404, 405, 429, 503):
                    bad("%s: the path does not match its recorded template %s" % (where, route))
            o = doc["paths"].get(route, {}).get(a["method"].lower())
            key = (a["method"], route)
            if o is None:
                mismatch(key, "%s: %s %s is not in the document" % (where, a["method"], route))
                continue
            r = response(o, a["status"])
            if r is None:
                mismatch(key, "%s: status %d is not documented for %s %s (documented: %s)" % (
                    where, a["status"], a["method"], route, ", ".join(o["responses"])))
                continue
            counts[key] += 1
            statuses[key].add(a["status"])
            content = r.get("content")
            if not content:
                if a["bytes"]:
                    mismatch(key, "%s: documented without a body, answered %d bytes" % (
                        where, a["bytes"]))
                continue
            ct = (a["content_type"] or "").split(";")[0].strip()
            if ct not in content:
                mismatch(key, "%s: content type %s, documented %s" % (
                    where, ct, ", ".join(content)))
                continue
            if ct != "application/json":
                continue
            ck = (route, a["method"], a["status"])
            if ck not in cache:
                cache[ck] = validator(content[ct]["schema"])
            errors = list(cache[ck].iter_errors(a["body"]))
            if errors:
                mismatch(key, "%s: body does not validate: %s" % (where, explain(errors)))

    print("answers checked per route (method route: count [statuses]):")
    for key in sorted(counts, key=lambda k: (k[1], k[0])):
        print("  %-6s %-48s %5d  [%s]" % (key[0], key[1], counts[key],
                                         " ".join(str(s) for s in sorted(statuses[key]))))
    for key, n in sorted(mismatches.items(), key=str):
        if n > 3:
            bad("%s %s: %d more mismatching answers not shown" % (key[0], key[1], n - 3))
    never = []
    served = {(m, t) for m, t, _ in routes}
    for path, item in doc["paths"].items():
        for method in item:
            k = (method.upper(), path)
            if k not in counts and k in served:
                never.append(k)
    if args.answers:
        for k in sorted(never, key=lambda k: (k[1], k[0])):
            if k in CORE:
                bad("core route never exercised by the suites: %s %s" % k)
            else:
                print("NOTE ***** never exercised by the suites: %s %s *****" % k)
        if total:
            ok("%d recorded answers checked over %d routes (%d mismatches)" % (
                total, len([k for k in counts if not k[1].startswith("(")]),
                sum(mismatches.values())))
        else:
            bad("no recorded answers to check (RECORD_ANSWERS produced nothing)")
    return RUN.finish()


if __name__ == "__main__":
    sys.exit(main())
