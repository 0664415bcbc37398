/*
 * coord_openapi: the compiled-in OpenAPI document, the route templates, and the RECORD_ANSWERS
 * answer log (coord_openapi.h).
 */
#include "coord_openapi.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_log.h"

/* Generated from coordinator/openapi.json by cmake/gen_openapi.cmake. */
extern const char coord_openapi_json[];
extern const size_t coord_openapi_json_len;

const char *
coord_openapi_document(size_t *len)
{
    *len = coord_openapi_json_len;
    return coord_openapi_json;
}

/* The document's path of each route; the drift test checks both directions. */
static const char *const templates[COORD_R_COUNT] = {
    [COORD_R_SUBMIT] = "/api/v1/submit",
    [COORD_R_JOBS] = "/api/v1/jobs",
    [COORD_R_JOB] = "/api/v1/jobs/{job_id}",
    [COORD_R_JOB_OUTPUT] = "/api/v1/jobs/{job_id}/output",
    [COORD_R_JOB_CANCEL] = "/api/v1/jobs/{job_id}/cancel",
    [COORD_R_REGISTER] = "/api/v1/register",
    [COORD_R_UNREGISTER] = "/api/v1/unregister",
    [COORD_R_WORKERS] = "/api/v1/workers",
    [COORD_R_TASK] = "/api/v1/task",
    [COORD_R_STATUS] = "/api/v1/status",
    [COORD_R_CREDITS] = "/api/v1/credits/{user_id}",
    [COORD_R_GRANT] = "/api/v1/credits/{user_id}/grant",
    [COORD_R_LEDGER] = "/api/v1/credits/{user_id}/ledger",
    [COORD_R_HEALTH] = "/api/v1/health",
    [COORD_R_METRICS] = "/metrics",
    [COORD_R_DEBUG_INVARIANT] = "/api/v1/debug/invariant",
    [COORD_R_USERS_CREATE] = "/api/v1/users",
    [COORD_R_USERS] = "/api/v1/users",
    [COORD_R_USER] = "/api/v1/users/{user_id}",
    [COORD_R_USER_PATCH] = "/api/v1/users/{user_id}",
    [COORD_R_KEYS_CREATE] = "/api/v1/users/{user_id}/keys",
    [COORD_R_KEYS] = "/api/v1/users/{user_id}/keys",
    [COORD_R_KEY_REVOKE] = "/api/v1/keys/{key_id}",
    [COORD_R_ME] = "/api/v1/me",
    [COORD_R_AUDIT] = "/api/v1/audit",
    [COORD_R_DEBUG_RETENTION] = "/api/v1/debug/retention",
    [COORD_R_JOB_ARTIFACTS] = "/api/v1/jobs/{job_id}/artifacts",
    [COORD_R_JOB_ARTIFACTS_TGZ] = "/api/v1/jobs/{job_id}/artifacts.tar.gz",
    [COORD_R_JOB_ARTIFACT] = "/api/v1/jobs/{job_id}/artifacts/{path}",
    [COORD_R_WORKER_PATCH] = "/api/v1/workers/{worker_id}",
    [COORD_R_STATEMENT] = "/api/v1/users/{user_id}/statement",
    [COORD_R_WEBHOOK_SECRET] = "/api/v1/users/{user_id}/webhook-secret",
    [COORD_R_JOB_DELIVERIES] = "/api/v1/jobs/{job_id}/deliveries",
    [COORD_R_OPENAPI] = "/api/v1/openapi.json",
};

const char *
coord_openapi_route_template(enum coord_route route)
{
    if ((int)route <= COORD_R_NONE || (int)route >= COORD_R_COUNT)
        return NULL;
    return templates[route];
}

void
coord_openapi_render(struct coord_req *r)
{
    co_buf_reset(&r->resp);
    co_buf_append(&r->resp, coord_openapi_json, coord_openapi_json_len);
    r->status = 200;
    r->content_type = "application/json";
}

/* ------------------------------------------------------------------ the answer log */

struct coord_openapi_rec {
    int fd;
    bool warned; /* a write error was logged */
};

struct coord_openapi_rec *
coord_openapi_rec_open(const char *path, co_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        co_err_sys(err, errno, "RECORD_ANSWERS: cannot open '%s'", path);
        return NULL;
    }
    struct coord_openapi_rec *rec = co_xcalloc(1, sizeof(*rec));
    rec->fd = fd;
    return rec;
}

static bool
is_json_type(const char *ct)
{
    return ct && strncmp(ct, "application/json", 16) == 0;
}

void
coord_openapi_rec_answer(struct coord_openapi_rec *rec, const struct coord_req *r)
{
    if (!rec)
        return;
    const char *tmpl = coord_openapi_route_template(r->route);
    json_auto_t *line = json_object();
    json_object_set_new(line, "method", json_string(r->method_name));
    json_object_set_new(line, "route", tmpl ? json_string(tmpl) : json_null());
    /* The path is kept for answers before routing and routes other branches add. */
    json_t *path = json_stringn(r->path, strnlen(r->path, sizeof(r->path)));
    json_object_set_new(line, "path", path ? path : json_string("?"));
    json_object_set_new(line, "status", json_integer(r->status));
    json_object_set_new(line, "content_type",
                        r->content_type ? json_string(r->content_type) : json_null());
    json_object_set_new(line, "bytes", json_integer((json_int_t)r->resp.len));
    json_t *body = NULL;
    if (is_json_type(r->content_type) && r->resp.len > 0) {
        json_error_t jerr;
        body =
            json_loadb(r->resp.data, r->resp.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!body) /* the validator fails on this: the answer claims JSON and is not */
            json_object_set_new(line, "body_error", json_string(jerr.text));
    }
    json_object_set_new(line, "body", body ? body : json_null());
    co_autofree char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text)
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: one write() per line keeps lines whole */
    if (write(rec->fd, text, n + 1) != (ssize_t)(n + 1) && !rec->warned) {
        rec->warned = true;
        co_warn("RECORD_ANSWERS: cannot append an answer: %s", strerror(errno));
    }
}

void
coord_openapi_rec_free(struct coord_openapi_rec *rec)
{
    if (!rec)
        return;
    close(rec->fd);
    free(rec);
}
