/*
 * coord_openapi: the REST API's OpenAPI 3.1 description and the answer recorder that keeps it
 * true.
 *
 * The document is coordinator/openapi.json, compiled in by cmake/gen_openapi.cmake and served
 * as it is by GET /api/v1/openapi.json.  Each route of the server (enum coord_route) has its path
 * template as the document spells it.
 *
 * RECORD_ANSWERS=<file> (a debug setting) appends one JSON line per answered REST request:
 *   {"method", "route" (the template, null for an unknown path), "path", "status",
 *    "content_type", "body" (parsed JSON when the answer is JSON, else null), "bytes"}
 * tests/integration/openapi/ validates these lines against the document.  The recorder runs on
 * the lws thread only; when the setting is unset nothing is allocated and nothing is written.
 * Life cycle: the document and the templates are read-only data (any thread); the recorder is
 * opened by coord_server_run() at start and freed when it returns.
 */
#ifndef COORD_OPENAPI_H
#define COORD_OPENAPI_H

#include <stddef.h>

#include "co_err.h"
#include "coord_req.h"

/** The compiled-in document (static, NUL-terminated) and its length in bytes. */
const char *coord_openapi_document(size_t *len);

/**
 * The path template of @route as the document names it ("/api/v1/jobs/{job_id}"), or NULL for
 * COORD_R_NONE and values out of range.  Static string.
 */
const char *coord_openapi_route_template(enum coord_route route);

/** GET /api/v1/openapi.json: the document into @r's answer (200, application/json). */
void coord_openapi_render(struct coord_req *r);

struct coord_openapi_rec;

/**
 * Open the answer log @path for appending (created 0600 when missing).  Returns NULL with
 * @err set when it cannot be opened.  Caller-owned: coord_openapi_rec_free.
 */
struct coord_openapi_rec *coord_openapi_rec_open(const char *path, co_err *err);

/** Append one line for the answered request @r (borrowed).  Write errors are logged once. */
void coord_openapi_rec_answer(struct coord_openapi_rec *rec, const struct coord_req *r);

/** Close the log and free @rec (NULL is fine). */
void coord_openapi_rec_free(struct coord_openapi_rec *rec);

#endif
