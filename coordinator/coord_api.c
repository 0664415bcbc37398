/*
 * coord_api: REST handlers of API.md.  Handlers run on a database thread: they decode and
 * validate the body, call the store, and render the answer with co_jsonw (the objects shared
 * with the dashboards through coord_render).  They see the request only as a struct coord_req
 * (coord_req.h), never the HTTP connection.
 *
 * Thread: coord_api_route() and coord_api_allowed() on the lws thread (pure); every handler on
 * the database thread that took the request, with that thread's store.
 * Life cycle: none of its own (a routing table and functions); a request is owned by
 * coord_server from the request line to the written answer.
 */
#include "coord_api.h"
#include "coord_api_price.h"

#include <inttypes.h>
#include <jansson.h>

#include "co_alloc.h"
#include "co_config.h"
#include "co_credits.h"
#include "co_id.h"
#include "co_log.h"
#include "co_time.h"
#include "co_jsonw.h"
#include "coord_artifact.h"
#include "proto_files.h"
#include "coord_idem.h"
#include "coord_node.h"
#include "coord_openapi.h"
#include "coord_render.h"
#include "coord_retention.h"
#include "coord_verify.h"
#include "coord_webhook.h"
#include "proto_job.h"
#include "proto_json.h"

/* ------------------------------------------------------------------ routing (lws thread) */

struct route_def {
    const char *prefix; /* path after /api/v1 up to the id (or the whole path) */
    const char *suffix; /* after the id, NULL for routes without an id */
    enum coord_method method;
    enum coord_route route;
    enum coord_auth auth; /* what the principal needs (coord_api_allowed) */
    bool self;            /* and the {id} must be its own user, unless admin */
    bool body, body_optional;
    enum coord_db_lane lane;
};

#define GET COORD_M_GET
#define POST COORD_M_POST
#define PATCH COORD_M_PATCH
#define DELETE COORD_M_DELETE
#define R COORD_DB_READ
#define W COORD_DB_WRITE
#define G COORD_DB_WRITE_GROUP /* a write that may share its COMMIT (coord_api_handle) */

/* Route-level rights are declared here only; handlers check what depends on stored rows. */
static const struct route_def routes[] = {
    /* prefix, suffix, method, route, auth, self, body, body_optional, lane */
    {"/submit", NULL, POST, COORD_R_SUBMIT, COORD_AUTH_BUY, false, true, false, G},
    {"/jobs", NULL, GET, COORD_R_JOBS, COORD_AUTH_NONE, false, false, false, R},
    {"/jobs/", "", GET, COORD_R_JOB, COORD_AUTH_NONE, false, false, false, R},
    {"/jobs/", "/output", GET, COORD_R_JOB_OUTPUT, COORD_AUTH_BUY, false, false, false, R},
    {"/jobs/", "/cancel", POST, COORD_R_JOB_CANCEL, COORD_AUTH_BUY, false, false, true, G},
    {"/register", NULL, POST, COORD_R_REGISTER, COORD_AUTH_AGENT, false, true, false, G},
    {"/unregister", NULL, POST, COORD_R_UNREGISTER, COORD_AUTH_AGENT, false, true, false, G},
    {"/workers", NULL, GET, COORD_R_WORKERS, COORD_AUTH_NONE, false, false, false, R},
    {"/task", NULL, GET, COORD_R_TASK, COORD_AUTH_AGENT, false, false, false, G},
    {"/status", NULL, POST, COORD_R_STATUS, COORD_AUTH_AGENT, false, true, false, G},
    {"/credits/", "", GET, COORD_R_CREDITS, COORD_AUTH_ANY, true, false, false, R},
    {"/credits/", "/grant", POST, COORD_R_GRANT, COORD_AUTH_ADMIN, false, true, false, G},
    {"/credits/", "/ledger", GET, COORD_R_LEDGER, COORD_AUTH_ANY, true, false, false, R},
    {"/health", NULL, GET, COORD_R_HEALTH, COORD_AUTH_NONE, false, false, false, R},
    {"/debug/invariant", NULL, GET, COORD_R_DEBUG_INVARIANT, COORD_AUTH_ADMIN, false, false, false,
     R},
    {"/users", NULL, POST, COORD_R_USERS_CREATE, COORD_AUTH_ADMIN, false, true, false, G},
    {"/users", NULL, GET, COORD_R_USERS, COORD_AUTH_ADMIN, false, false, false, R},
    {"/users/", "", GET, COORD_R_USER, COORD_AUTH_ANY, true, false, false, R},
    {"/users/", "", PATCH, COORD_R_USER_PATCH, COORD_AUTH_ADMIN, false, true, false, G},
    {"/users/", "/keys", POST, COORD_R_KEYS_CREATE, COORD_AUTH_ANY, true, true, false, G},
    {"/users/", "/keys", GET, COORD_R_KEYS, COORD_AUTH_ANY, true, false, false, R},
    {"/keys/", "", DELETE, COORD_R_KEY_REVOKE, COORD_AUTH_ANY, false, false, false, G},
    {"/me", NULL, GET, COORD_R_ME, COORD_AUTH_ANY, false, false, false, R},
    {"/audit", NULL, GET, COORD_R_AUDIT, COORD_AUTH_ADMIN, false, false, false, R},
    /* Retention runs RETENTION_BATCH-row transactions on purpose: never grouped. */
    {"/debug/retention", NULL, POST, COORD_R_DEBUG_RETENTION, COORD_AUTH_ADMIN, false, true, false,
     W},
    {"/jobs/", "/artifacts", GET, COORD_R_JOB_ARTIFACTS, COORD_AUTH_BUY, false, false, false, R},
    {"/jobs/", "/artifacts.tar.gz", GET, COORD_R_JOB_ARTIFACTS_TGZ, COORD_AUTH_BUY, false, false,
     false, R},
    /* Pricing (coord_price.h): a seller's prices (its owner or an admin: handler), statements. */
    {"/workers/", "", PATCH, COORD_R_WORKER_PATCH, COORD_AUTH_ANY, false, true, false, G},
    {"/users/", "/statement", GET, COORD_R_STATEMENT, COORD_AUTH_ANY, true, false, false, R},
    {"/users/", "/webhook-secret", POST, COORD_R_WEBHOOK_SECRET, COORD_AUTH_ANY, true, false, true,
     G},
    {"/jobs/", "/deliveries", GET, COORD_R_JOB_DELIVERIES, COORD_AUTH_BUY, false, false, false, R},
    {"/openapi.json", NULL, GET, COORD_R_OPENAPI, COORD_AUTH_NONE, false, false, false, R},
};

#undef GET
#undef POST
#undef PATCH
#undef DELETE
#undef R
#undef W
#undef G

/* /jobs/{id}/artifacts/{path}: the one route whose tail has slashes (checked in the handler). */
static int
route_artifact(enum coord_method method, const char *p, size_t plen, char id[CO_ID_MAX + 1],
               struct coord_route_info *ri)
{
    static const char mid[] = "/artifacts/";
    if (plen <= 6 || strncmp(p, "/jobs/", 6) != 0)
        return 404;
    const char *idp = p + 6;
    const char *slash = memchr(idp, '/', plen - 6);
    if (!slash || (size_t)(slash - idp) > CO_ID_MAX || strncmp(slash, mid, sizeof(mid) - 1) != 0 ||
        slash + sizeof(mid) - 1 >= p + plen)
        return 404;
    char tmp[CO_ID_MAX + 1];
    memcpy(tmp, idp, (size_t)(slash - idp));
    tmp[slash - idp] = '\0';
    if (!co_id_valid(tmp))
        return 404;
    if (method != COORD_M_GET)
        return 405;
    memcpy(id, tmp, sizeof(tmp));
    ri->route = COORD_R_JOB_ARTIFACT;
    ri->auth = COORD_AUTH_BUY; /* and the job's buyer or an admin (handler) */
    ri->self_or_admin = false;
    ri->body = false;
    ri->body_optional = false;
    ri->lane = COORD_DB_READ;
    return 0;
}

int
coord_api_allowed(const struct coord_principal *p, enum coord_auth auth, bool self_or_admin,
                  const char *id, bool open_agents, const char **msg)
{
    bool anonymous = p->cred == COORD_CRED_NONE;
    switch (auth) {
    case COORD_AUTH_NONE:
        return 0;
    case COORD_AUTH_AGENT:
        /* OPEN_REGISTRATION is open to anyone; else the admin token is no agent credential. */
        if (open_agents || p->cred == COORD_CRED_AGENT_TOKEN || p->cred == COORD_CRED_OPEN ||
            (p->cred == COORD_CRED_KEY && (p->scopes & COORD_SCOPE_SELL)))
            return 0;
        if (p->cred == COORD_CRED_KEY) {
            *msg = "this key has no 'sell' scope";
            return 403;
        }
        *msg = "missing X-Agent-Token or a sell key";
        return 401;
    case COORD_AUTH_ANY:
        break;
    case COORD_AUTH_BUY:
        if (!anonymous && !coord_auth_has_scope(p, COORD_SCOPE_BUY)) {
            *msg = "this key has no 'buy' scope";
            return 403;
        }
        break;
    case COORD_AUTH_ADMIN:
        if (!anonymous && !p->is_admin) {
            *msg = "admin rights are required";
            return 403;
        }
        break;
    }
    if (anonymous) {
        *msg = auth == COORD_AUTH_ADMIN ? "missing X-Admin-Token or an admin key"
                                        : "missing credential (Authorization: Bearer <key>)";
        return 401;
    }
    if (self_or_admin && !coord_auth_is_self_or_admin(p, id)) {
        *msg = "this belongs to another user";
        return 403;
    }
    return 0;
}

int
coord_api_route(enum coord_method method, const char *path, char id[CO_ID_MAX + 1],
                struct coord_route_info *ri)
{
    if (strncmp(path, "/api/v1", 7) != 0)
        return 404;
    const char *p = path + 7;
    size_t plen = strlen(p);
    /* Tolerate one trailing slash ("/api/v1/jobs/"). */
    if (plen > 1 && p[plen - 1] == '/')
        plen--;
    bool path_matched = false;
    id[0] = '\0';
    for (size_t i = 0; i < CO_ARRAY_LEN(routes); i++) {
        const struct route_def *d = &routes[i];
        size_t pre = strlen(d->prefix);
        if (!d->suffix) {
            if (plen != pre || strncmp(p, d->prefix, pre) != 0)
                continue;
        } else {
            if (plen <= pre || strncmp(p, d->prefix, pre) != 0)
                continue;
            const char *idp = p + pre;
            size_t rest = plen - pre;
            size_t slen = strlen(d->suffix);
            if (rest <= slen || strncmp(idp + rest - slen, d->suffix, slen) != 0)
                continue;
            size_t idlen = rest - slen;
            if (idlen > CO_ID_MAX || memchr(idp, '/', idlen))
                continue;
            char tmp[CO_ID_MAX + 1];
            memcpy(tmp, idp, idlen);
            tmp[idlen] = '\0';
            if (!co_id_valid(tmp))
                continue;
            memcpy(id, tmp, idlen + 1);
        }
        path_matched = true;
        if (d->method != method)
            continue;
        ri->route = d->route;
        ri->auth = d->auth;
        ri->self_or_admin = d->self;
        ri->body = d->body;
        ri->body_optional = d->body_optional;
        ri->lane = d->lane;
        return 0;
    }
    if (!path_matched)
        return route_artifact(method, p, plen, id, ri);
    return 405;
}

/* ------------------------------------------------------------------ input helpers */

/* Parse the body as a JSON object; answers 400/413 and returns NULL on failure. */
static json_t *
body_object(struct coord_req *r)
{
    co_err err = CO_ERR_INIT;
    json_t *root = proto_json_load_object(r->body.data ? r->body.data : "", r->body.len,
                                          (size_t)r->cfg->max_body_bytes, &err);
    if (!root) {
        if (err.code == CO_E_TOOLARGE)
            coord_req_error(r, 413, "too_large", NULL, "%s", err.msg);
        else
            coord_req_error(r, 400, "bad_json", NULL, "%s", err.msg);
    }
    return root;
}

/* Reject keys not in @allowed (NULL-terminated).  Returns -1 after answering 422. */
static int
only_fields(struct coord_req *r, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            char shown[80];
            co_strlcpy(shown, key, sizeof(shown));
            for (char *c = shown; *c; c++) {
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                    *c = '?';
            }
            coord_req_error(r, 422, "invalid_field", shown, "unknown field '%s'", shown);
            return -1;
        }
    }
    return 0;
}

json_t *
coord_api_body_object(struct coord_req *r)
{
    return body_object(r);
}

int
coord_api_only_fields(struct coord_req *r, json_t *obj, const char *const *allowed)
{
    return only_fields(r, obj, allowed);
}

/* Number of UTF-8 characters in @s (jansson guarantees valid UTF-8). */
static size_t
utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    }
    return n;
}

/*
 * A string field: present => must be a string of @min..@max characters and without NUL.  Absent
 * or null => *@out = NULL (error if @required).  Returns -1 after answering 422.
 */
static int
get_str(struct coord_req *r, json_t *obj, const char *name, bool required, size_t min, size_t max,
        const char **out)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) {
            coord_req_error(r, 422, "invalid_field", name, "missing required field '%s'", name);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        coord_req_error(r, 422, "invalid_field", name, "field '%s' must be a string", name);
        return -1;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len) {
        coord_req_error(r, 422, "invalid_field", name, "field '%s' contains a NUL character", name);
        return -1;
    }
    size_t chars = utf8_chars(s, len);
    if (chars < min || chars > max) {
        coord_req_error(r, 422, "invalid_field", name,
                        "field '%s' must be %zu to %zu characters long (got %zu)", name, min, max,
                        chars);
        return -1;
    }
    *out = s;
    return 0;
}

/* An id field (1-64 of [A-Za-z0-9._-]). */
static int
get_id(struct coord_req *r, json_t *obj, const char *name, bool required, const char **out)
{
    if (get_str(r, obj, name, required, 0, 10000, out) < 0)
        return -1;
    if (*out && !co_id_valid(*out)) {
        coord_req_error(r, 422, "invalid_field", name,
                        "field '%s' must be 1-64 characters of [A-Za-z0-9._-]", name);
        return -1;
    }
    return 0;
}

/* An integer field in [min, max]; absent/null => *@present false (error if @required). */
static int
get_int(struct coord_req *r, json_t *obj, const char *name, bool required, int64_t min, int64_t max,
        int64_t *out, bool *present)
{
    json_t *v = json_object_get(obj, name);
    if (present)
        *present = false;
    if (!v || json_is_null(v)) {
        if (required) {
            coord_req_error(r, 422, "invalid_field", name, "missing required field '%s'", name);
            return -1;
        }
        return 0;
    }
    if (!json_is_integer(v)) {
        coord_req_error(r, 422, "invalid_field", name, "field '%s' must be an integer", name);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        coord_req_error(r, 422, "invalid_field", name,
                        "field '%s' must be between %" PRId64 " and %" PRId64, name, min, max);
        return -1;
    }
    *out = x;
    if (present)
        *present = true;
    return 0;
}

/* A query integer; returns -1 after answering 422. */
static int
query_int(struct coord_req *r, const char *name, bool has, const char *s, int64_t def, int64_t min,
          int64_t max, int64_t *out)
{
    if (!has || !*s) {
        *out = def;
        return 0;
    }
    co_err err = CO_ERR_INIT;
    if (co_parse_int(s, name, min, max, out, &err) < 0) {
        coord_req_error(r, 422, "invalid_field", name,
                        "query '%s' must be an integer between %" PRId64 " and %" PRId64, name, min,
                        max);
        return -1;
    }
    return 0;
}

/* The limit (default 100, 1-1000) and offset of a list; -1 after answering 422. */
static int
query_paging(struct coord_req *r, int64_t *limit, int64_t *offset)
{
    if (query_int(r, "limit", r->has_limit, r->q_limit, 100, 1, 1000, limit) < 0 ||
        query_int(r, "offset", r->has_offset, r->q_offset, 0, 0, INT32_MAX, offset) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ rendering */

static void
render_user(struct coord_req *r, const struct coord_user *u)
{
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    coord_render_credits(&w, u);
    co_jsonw_obj_end(&w);
}

/* A job in the view the request's principal may see. */
static void
write_job_for(struct co_jsonw *w, const struct coord_req *r, const struct coord_job *j)
{
    if (coord_render_sees_full(&r->principal, j->buyer_id))
        coord_render_job(w, j, j->code != NULL, 0); /* code when it was loaded */
    else
        coord_render_job_public(w, j);
}

static void
answer_job(struct coord_req *r, int status, const struct coord_job *j)
{
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    write_job_for(&w, r, j);
    r->status = status;
}

static void
forbidden(struct coord_req *r, const char *what)
{
    coord_req_error(r, 403, "forbidden", NULL, "%s", what);
}

/*
 * Record an action in the audit log (@detail borrowed, may be NULL) and commit the batch that
 * holds the change it records, so that both are committed together or neither (on failure the
 * batch is rolled back).
 */
static int
audit_commit(struct coord_store *s, const struct coord_req *r, const char *action,
             const char *target, json_t *detail, co_err *err)
{
    co_autofree char *d = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_t *with_key = NULL;
    if (r->principal.key_id[0]) {
        /* Which key acted, next to what was done. */
        with_key = detail ? json_deep_copy(detail) : json_object();
        json_object_set_new(with_key, "by_key", json_string(r->principal.key_id));
        free(d);
        d = json_dumps(with_key, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(with_key);
    }
    const char *actor = r->principal.user_id[0] ? r->principal.user_id : "agent-token";
    if (coord_store_audit_append(s, actor, action, target, d, err) < 0) {
        coord_store_batch_rollback(s);
        return -1;
    }
    return coord_store_batch_commit(s, err);
}

/* ------------------------------------------------------------------ handlers */

static void
h_submit(struct coord_store *s, struct coord_req *r)
{
    const struct coord_config *cfg = r->cfg;
    struct proto_job_limits lim = {
        .max_cores = cfg->max_job_cores,
        .max_ram_mb = cfg->max_job_ram_mb,
        .max_body = (size_t)cfg->max_body_bytes,
        .max_files_bytes = (size_t)cfg->max_job_files_bytes,
        /* A key submits for its own user when buyer_id is left out. */
        .default_buyer = r->principal.cred == COORD_CRED_KEY ? r->principal.user_id : NULL,
    };
    struct proto_job_spec spec;
    struct coord_job job;
    memset(&spec, 0, sizeof(spec));
    memset(&job, 0, sizeof(job));
    co_err err = CO_ERR_INIT;
    if (proto_job_decode(r->body.data ? r->body.data : "", r->body.len, &lim, &spec, &err) < 0) {
        if (err.code == CO_E_TOOLARGE)
            coord_req_error(r, 413, "too_large", NULL, "%s", err.msg);
        else if (proto_job_err_is_bad_json(&err))
            coord_req_error(r, 400, "bad_json", NULL, "%s", err.msg);
        else
            coord_req_error(r, 422, "invalid_field", err.field, "%s", err.msg);
        return;
    }
    if (!coord_auth_is_self_or_admin(&r->principal, spec.buyer_id)) {
        coord_req_error(r, 403, "forbidden", "buyer_id",
                        "a key of user '%s' cannot submit for buyer '%s'", r->principal.user_id,
                        spec.buyer_id);
        goto out;
    }
    if (coord_api_job_price(cfg, &spec, &job, r) < 0)
        goto out;
    /* replicas: the hold is replicas x the unit cost (coord_verify). */
    job.replicas = spec.replicas > 0 ? spec.replicas : 1;
    if (__builtin_mul_overflow(job.cost, (int64_t)job.replicas, &job.cost)) {
        coord_req_error(r, 422, "invalid_field", "replicas", "replicas x cost overflows");
        goto out;
    }
    co_uuid4(job.job_id);
    job.title = co_steal(&spec.title);
    job.description = co_steal(&spec.description);
    job.code = co_steal(&spec.code);
    job.code_file = co_steal(&spec.code_file);
    job.files = co_steal(&spec.files);
    job.command = co_steal(&spec.command);
    job.parameters = co_steal(&spec.parameters);
    job.image = co_steal(&spec.image);
    co_strlcpy(job.buyer_id, spec.buyer_id, sizeof(job.buyer_id));
    job.status = COORD_JOB_PENDING;
    job.required_cores = spec.required_cores;
    job.required_ram_mb = spec.required_ram_mb;
    job.priority = spec.priority;
    job.timeout_seconds = spec.timeout_seconds;
    job.max_attempts = spec.max_attempts;
    if (spec.callback_url) {
        /* Resolved and checked now (coord_webhook); nothing is stored when refused. */
        struct coord_webhook_check_opts wo = {cfg->webhook_allow_private, cfg->webhook_debug_hosts,
                                              COORD_WEBHOOK_SUBMIT_RESOLVE_MS};
        struct coord_webhook_target target;
        if (coord_webhook_url_check(spec.callback_url, &wo, &target, &err) < 0) {
            coord_req_error(r, 422, "invalid_field", "callback_url", "%s", err.msg);
            goto out;
        }
        job.callback_url = co_steal(&spec.callback_url);
    }
    if (coord_store_job_submit_capped(s, &job, r->max_pending, &err) < 0) {
        if (err.code == CO_E_LIMIT)
            coord_req_error(r, 429, "quota_exceeded", NULL, "%s", err.msg);
        else
            coord_req_fail(r, &err);
        goto out;
    }
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_JOB, job.job_id);
    coord_req_changed(r, COORD_EVENT_CREDITS, job.buyer_id);
    answer_job(r, 201, &job); /* the submitter's own job: in full */
out:
    coord_job_release(&job);
    proto_job_spec_release(&spec);
}

static void
h_jobs(struct coord_store *s, struct coord_req *r)
{
    struct coord_job_filter f = {.status = -1};
    if (r->has_status && r->q_status[0]) {
        f.status = coord_job_status_parse(r->q_status);
        if (f.status < 0) {
            coord_req_error(r, 422, "invalid_field", "status", "unknown status '%s'", r->q_status);
            return;
        }
    }
    if (r->has_buyer && r->q_buyer[0]) {
        if (!co_id_valid(r->q_buyer)) {
            coord_req_error(r, 422, "invalid_field", "buyer_id", "invalid buyer_id");
            return;
        }
        f.buyer_id = r->q_buyer;
    }
    /* A buyer's key lists its own jobs only; who owns which job is not public. */
    const struct coord_principal *p = &r->principal;
    bool buyer_view = !p->is_admin && p->cred != COORD_CRED_NONE &&
                      coord_auth_has_scope(p, COORD_SCOPE_BUY) && p->user_id[0];
    if (f.buyer_id && !coord_auth_is_self_or_admin(p, f.buyer_id)) {
        if (p->cred == COORD_CRED_NONE)
            coord_req_error(r, 401, "unauthorized", NULL,
                            "filtering by buyer_id needs that buyer's key or admin rights");
        else
            coord_req_error(r, 403, "forbidden", "buyer_id", "cannot list the jobs of buyer '%s'",
                            f.buyer_id);
        return;
    }
    if (buyer_view) {
        f.buyer_id = p->user_id;
        f.with_code = true; /* its own jobs, in full */
    }
    if (r->has_worker && r->q_worker[0]) {
        if (!co_id_valid(r->q_worker)) {
            coord_req_error(r, 422, "invalid_field", "worker_id", "invalid worker_id");
            return;
        }
        f.worker_id = r->q_worker;
    }
    if (query_paging(r, &f.limit, &f.offset) < 0)
        return;
    struct coord_job_list l = {0};
    co_err err = CO_ERR_INIT;
    if (coord_store_job_list(s, &f, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_buf_grow(&r->resp, l.len * 700);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++)
        write_job_for(&w, r, &l.items[i]);
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_job_list_release(&l);
}

/*
 * GET /jobs/{id}: once an attempt's artifacts are complete, the job object also has
 * "artifacts" (how many) and "artifacts_truncated" (a cap stopped their collection).
 */
static void
add_artifact_fields(struct coord_store *s, struct coord_req *r)
{
    struct coord_artifact_list l;
    co_err err = CO_ERR_INIT;
    if (coord_store_artifact_list(s, r->id, &l, &err) < 0)
        return; /* the job object stands without them */
    if (l.complete && r->resp.len > 0 && r->resp.data[r->resp.len - 1] == '}') {
        r->resp.len--;
        co_buf_printf(&r->resp, ",\"artifacts\":%zu,\"artifacts_truncated\":%s}", l.len,
                      l.truncated ? "true" : "false");
    }
    coord_artifact_list_release(&l);
}

static void
h_job(struct coord_store *s, struct coord_req *r)
{
    struct coord_job j;
    memset(&j, 0, sizeof(j));
    co_err err = CO_ERR_INIT;
    /* The code is loaded for any credential, shown only to who sees the job in full. */
    if (coord_store_job_get(s, r->id, r->principal.cred != COORD_CRED_NONE, &j, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    answer_job(r, 200, &j);
    bool full = coord_render_sees_full(&r->principal, j.buyer_id);
    coord_job_release(&j);
    if (full) /* artifacts, like the output, are the buyer's and admins' */
        add_artifact_fields(s, r);
}

/*
 * Load job r->id for an action on it that only its buyer or an admin may take (output, cancel):
 * -1 after answering 404 or 403.  @out (optional) receives the job (without code).
 */
static int
own_job(struct coord_store *s, struct coord_req *r, struct coord_job *out)
{
    struct coord_job j;
    memset(&j, 0, sizeof(j));
    co_err err = CO_ERR_INIT;
    if (coord_store_job_get(s, r->id, false, &j, &err) < 0) {
        coord_req_fail(r, &err);
        return -1;
    }
    if (!coord_auth_is_self_or_admin(&r->principal, j.buyer_id)) {
        coord_job_release(&j);
        forbidden(r, "this job belongs to another buyer");
        return -1;
    }
    if (out)
        *out = j;
    else
        coord_job_release(&j);
    return 0;
}

static void
h_job_output(struct coord_store *s, struct coord_req *r)
{
    co_autofree char *out = NULL;
    co_autofree char *errs = NULL;
    size_t out_len = 0, err_len = 0;
    bool truncated = false;
    co_err err = CO_ERR_INIT;
    if (own_job(s, r, NULL) < 0)
        return;
    if (coord_store_output_get(s, r->id, &out, &out_len, &errs, &err_len, &truncated, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "job_id", r->id);
    co_jsonw_key(&w, "stdout");
    co_jsonw_strn(&w, out ? out : "", out ? out_len : 0);
    co_jsonw_key(&w, "stderr");
    co_jsonw_strn(&w, errs ? errs : "", errs ? err_len : 0);
    co_jsonw_key(&w, "truncated");
    co_jsonw_bool(&w, truncated);
    co_jsonw_obj_end(&w);
    r->status = 200;
}

/* ---- artifacts ---- */

/*
 * The artifacts of the job, for its buyer or an admin (like its output); answers and returns -1
 * when there is no such job or it is another buyer's.
 */
static int
artifact_list(struct coord_store *s, struct coord_req *r, struct coord_artifact_list *l)
{
    co_err err = CO_ERR_INIT;
    if (own_job(s, r, NULL) < 0)
        return -1;
    if (coord_store_artifact_list(s, r->id, l, &err) < 0) {
        coord_req_fail(r, &err);
        return -1;
    }
    return 0;
}

static void
h_job_artifacts(struct coord_store *s, struct coord_req *r)
{
    struct coord_artifact_list l;
    if (artifact_list(s, r, &l) < 0)
        return;
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++) {
        co_jsonw_obj_begin(&w);
        co_jsonw_kstr(&w, "path", l.items[i].path);
        co_jsonw_kint(&w, "size", l.items[i].size);
        co_jsonw_kstr(&w, "sha256", l.items[i].sha256);
        co_jsonw_obj_end(&w);
    }
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_artifact_list_release(&l);
}

/* attachment; filename="<name>" with anything but safe ASCII replaced by '_'. */
static void
set_disposition(struct coord_req *r, const char *name)
{
    char safe[200];
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < sizeof(safe); p++)
        safe[n++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '_';
    safe[n] = '\0';
    snprintf(r->disposition, sizeof(r->disposition), "attachment; filename=\"%s\"", safe);
}

static void
h_job_artifact(struct coord_store *s, struct coord_req *r)
{
    /*
     * coord_api_route() matched "/api/v1/jobs/<id>/artifacts/<path>"; lws has already
     * percent-decoded the path (and resolved "." and ".." segments).
     */
    const char *tail = strstr(r->path + 8, "/artifacts/");
    char path[PROTO_FILE_PATH_MAX + 2];
    co_err err = CO_ERR_INIT;
    if (!tail || co_strlcpy(path, tail + 11, sizeof(path)) >= sizeof(path) ||
        proto_file_path_check(path, strlen(path), "path", &err) < 0) {
        coord_req_error(r, 404, "not_found", NULL, "no such artifact");
        return;
    }
    struct coord_artifact_list l;
    if (artifact_list(s, r, &l) < 0)
        return;
    const struct coord_artifact *a = NULL;
    for (size_t i = 0; i < l.len && !a; i++) {
        if (strcmp(l.items[i].path, path) == 0)
            a = &l.items[i];
    }
    if (!a) {
        coord_req_error(r, 404, "not_found", NULL, "job '%s' has no artifact '%s'", r->id, path);
    } else if (coord_store_artifact_read(s, r->id, l.attempt, path, &r->resp, &err) < 0) {
        coord_req_fail(r, &err);
    } else {
        const char *base = strrchr(path, '/');
        set_disposition(r, base ? base + 1 : path);
        r->content_type = "application/octet-stream";
        r->status = 200;
    }
    coord_artifact_list_release(&l);
}

static void
h_job_artifacts_tgz(struct coord_store *s, struct coord_req *r)
{
    struct coord_artifact_list l;
    if (artifact_list(s, r, &l) < 0)
        return;
    struct coord_targz t;
    struct co_buf file = CO_BUF_INIT;
    co_err err = CO_ERR_INIT;
    coord_targz_init(&t, co_wall_ms() / 1000);
    int rc = 0;
    for (size_t i = 0; i < l.len && rc == 0; i++) {
        co_buf_reset(&file);
        rc = coord_store_artifact_read(s, r->id, l.attempt, l.items[i].path, &file, &err);
        if (rc == 0)
            rc = coord_targz_add(&t, l.items[i].path, file.data ? file.data : "", file.len, &err);
    }
    if (rc < 0) {
        coord_req_fail(r, &err);
    } else {
        size_t len = 0;
        char *gz = coord_targz_finish(&t, &len);
        co_buf_append(&r->resp, gz, len);
        free(gz);
        char name[CO_ID_MAX + 32];
        snprintf(name, sizeof(name), "%s-artifacts.tar.gz", r->id);
        set_disposition(r, name);
        r->content_type = "application/gzip";
        r->status = 200;
    }
    co_buf_release(&file);
    coord_targz_release(&t);
    coord_artifact_list_release(&l);
}

/* A job event for each replica of @parent_id (best effort: the reconciler catches the rest). */
static void
changed_replicas(struct coord_store *s, struct coord_req *r, const char *parent_id)
{
    char **ids = NULL;
    size_t n = 0;
    co_err err = CO_ERR_INIT;
    if (coord_verify_children(s, parent_id, &ids, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            coord_req_changed(r, COORD_EVENT_JOB, ids[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void
h_job_cancel(struct coord_store *s, struct coord_req *r)
{
    struct coord_job j;
    memset(&j, 0, sizeof(j));
    enum coord_job_status was;
    co_err err = CO_ERR_INIT;
    if (r->body.len > 0) {
        static const char *const allowed[] = {"reason", NULL};
        json_t *root = body_object(r);
        if (!root)
            return;
        int rc = only_fields(r, root, allowed);
        json_decref(root);
        if (rc < 0)
            return;
    }
    if (own_job(s, r, &j) < 0)
        return;
    /* An admin cancelling is audited, in the same transaction as the cancel. */
    bool audited = r->principal.is_admin;
    coord_job_release(&j);
    memset(&j, 0, sizeof(j));
    if (audited && coord_store_batch_begin(s, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    if (coord_store_job_cancel(s, r->id, &j, &was, &err) < 0) {
        if (audited)
            coord_store_batch_rollback(s);
        coord_job_release(&j);
        coord_req_fail(r, &err);
        return;
    }
    if (audited && audit_commit(s, r, "job.cancel", r->id, NULL, &err) < 0) {
        coord_job_release(&j);
        coord_req_fail(r, &err);
        return;
    }
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_JOB, j.job_id);
    coord_req_changed(r, COORD_EVENT_CREDITS, j.buyer_id);
    if (j.assigned_worker[0])
        coord_req_changed(r, COORD_EVENT_WORKER, j.assigned_worker);
    if (j.replicas > 1)
        changed_replicas(s, r, j.job_id); /* their agents stop them */
    answer_job(r, 200, &j);
    coord_job_release(&j);
}

static void
answer_worker(struct coord_req *r, const struct coord_worker *wk)
{
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    coord_render_worker(&w, wk, r->cfg->worker_timeout_seconds * 1000, true);
    r->status = 200;
}

/*
 * The owner a poll worker's request acts for, from its credential (API.md "Sellers and
 * workers"): a key's user (an owner_id other than it is 403), AGENT_TOKEN_OWNER for the shared
 * agent token (whatever owner_id it sends), the declared owner (else the worker id) under
 * OPEN_REGISTRATION.  Returns -1 after answering 403.
 */
static int
agent_owner(struct coord_req *r, const char *declared, const char *worker_id,
            char owner[CO_ID_MAX + 1])
{
    const struct coord_principal *p = &r->principal;
    if (p->cred == COORD_CRED_AGENT_TOKEN) {
        co_strlcpy(owner, r->cfg->agent_token_owner, CO_ID_MAX + 1);
        return 0;
    }
    if (p->cred != COORD_CRED_KEY) {
        co_strlcpy(owner, declared && *declared ? declared : worker_id, CO_ID_MAX + 1);
        return 0;
    }
    if (declared && *declared && strcmp(declared, p->user_id) != 0) {
        coord_req_error(r, 403, "forbidden", "owner_id", "owner_id '%s' is not the key's user '%s'",
                        declared, p->user_id);
        return -1;
    }
    co_strlcpy(owner, p->user_id, CO_ID_MAX + 1);
    return 0;
}

/*
 * A poll route about @worker_id (task, status, unregister): the worker must be the caller's
 * (not checked under OPEN_REGISTRATION).  Returns -1 after answering 403/404.
 */
static int
agent_check_worker(struct coord_store *s, struct coord_req *r, const char *worker_id)
{
    char owner[CO_ID_MAX + 1];
    co_err err = CO_ERR_INIT;
    const struct coord_principal *p = &r->principal;
    if (p->cred != COORD_CRED_KEY && p->cred != COORD_CRED_AGENT_TOKEN)
        return 0;
    if (agent_owner(r, NULL, worker_id, owner) < 0)
        return -1;
    if (coord_store_worker_check_owner(s, worker_id, owner, &err) < 0) {
        coord_req_fail(r, &err);
        return -1;
    }
    return 0;
}

/*
 * A poll route about @worker_id (task, status, unregister) runs in one transaction that starts
 * with the poll fence (coord_node_poll_fence): refused with 409 conflict (field "session") while
 * an agent session holds the worker, and no hello can take the worker before the route's writes
 * commit (its row stays locked).  Returns -1 after answering; else the transaction is open and
 * poll_commit ends it.
 */
static int
poll_begin(struct coord_store *s, struct coord_req *r, const char *worker_id)
{
    co_err err = CO_ERR_INIT;
    if (coord_store_batch_begin(s, &err) < 0) {
        coord_req_fail(r, &err);
        return -1;
    }
    if (coord_node_poll_fence(s, worker_id, &err) < 0) {
        coord_store_batch_rollback(s);
        coord_req_fail(r, &err);
        return -1;
    }
    return 0;
}

/*
 * The end of a poll route's transaction, whatever the route answered: the store calls that
 * succeeded are kept (each ran in its own savepoint, as when they committed one by one).
 * Returns -1 after answering 503 when the commit failed (then every call was undone).
 */
static int
poll_commit(struct coord_store *s, struct coord_req *r)
{
    co_err err = CO_ERR_INIT;
    if (coord_store_batch_commit(s, &err) < 0) {
        coord_req_fail(r, &err);
        return -1;
    }
    return 0;
}

static void
h_register(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {
        "worker_id",           "cpu_cores", "ram_mb", "status", "owner_id", "price_per_core_second",
        "price_per_gb_second", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    const char *wid, *owner, *status;
    int64_t cores, ram;
    struct coord_worker wk, out;
    memset(&wk, 0, sizeof(wk));
    memset(&out, 0, sizeof(out));
    co_err err = CO_ERR_INIT;
    if (only_fields(r, root, allowed) < 0 || get_id(r, root, "worker_id", true, &wid) < 0 ||
        get_int(r, root, "cpu_cores", true, 1, 1 << 20, &cores, NULL) < 0 ||
        get_int(r, root, "ram_mb", true, 1, INT64_C(1) << 40, &ram, NULL) < 0 ||
        get_str(r, root, "status", false, 1, 16, &status) < 0 ||
        get_id(r, root, "owner_id", false, &owner) < 0)
        goto out;
    int st = status ? coord_worker_status_parse(status) : COORD_WORKER_IDLE;
    if (st < 0) {
        coord_req_error(r, 422, "invalid_field", "status",
                        "field 'status' must be one of idle, busy, offline");
        goto out;
    }
    co_strlcpy(wk.worker_id, wid, sizeof(wk.worker_id));
    if (agent_owner(r, owner, wid, wk.owner_id) < 0)
        goto out;
    wk.cpu_cores = cores;
    wk.ram_mb = ram;
    wk.status = (enum coord_worker_status)st;
    wk.websocket = false;
    if (coord_api_read_price(r, root, false, &wk.price, &wk.has_price) < 0)
        goto out;
    if (coord_store_batch_begin(s, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    /* The poll worker takes the worker's session: an agent session of it is fenced off. */
    if (coord_store_worker_upsert(s, &wk, &out, &err) < 0 ||
        coord_node_poll_take(s, wid, &err) < 0) {
        coord_store_batch_rollback(s);
        if (err.code == CO_E_LIMIT)
            co_err_set(&err, CO_E_LIMIT,
                       "worker limit reached: MAX_WORKERS=%" PRId64
                       " workers are registered; unregister one or raise MAX_WORKERS",
                       r->cfg->max_workers);
        coord_req_fail(r, &err);
        goto out;
    }
    if (coord_store_batch_commit(s, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_WORKER, wid);
    answer_worker(r, &out);
out:
    json_decref(root);
}

static void
h_unregister(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"worker_id", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    const char *wid;
    char **ids = NULL;
    size_t n = 0;
    struct coord_worker wk;
    co_err err = CO_ERR_INIT;
    if (only_fields(r, root, allowed) < 0 || get_id(r, root, "worker_id", true, &wid) < 0 ||
        agent_check_worker(s, r, wid) < 0 || poll_begin(s, r, wid) < 0)
        goto out;
    if (coord_store_worker_get(s, wid, &wk, &err) < 0 ||
        coord_store_worker_release_jobs(s, wid, &ids, &n, &err) < 0 ||
        coord_store_worker_set_status(s, wid, COORD_WORKER_OFFLINE, &err) < 0) {
        coord_req_fail(r, &err);
        (void)poll_commit(s, r);
        goto out;
    }
    if (poll_commit(s, r) < 0)
        goto out;
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_WORKER, wid);
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "worker_id", wid);
    co_jsonw_kstr(&w, "status", "offline");
    co_jsonw_key(&w, "released_jobs");
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        co_jsonw_str(&w, ids[i]);
        coord_req_changed(r, COORD_EVENT_JOB, ids[i]);
    }
    co_jsonw_arr_end(&w);
    co_jsonw_obj_end(&w);
    r->status = 200;
out:
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    json_decref(root);
}

static void
h_workers(struct coord_store *s, struct coord_req *r)
{
    struct coord_worker_list l = {0};
    co_err err = CO_ERR_INIT;
    if (coord_store_worker_list(s, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    /* Who owns which worker is not shown to anonymous users. */
    bool with_owner = coord_render_sees_owners(&r->principal);
    for (size_t i = 0; i < l.len; i++)
        coord_render_worker(&w, &l.items[i], r->cfg->worker_timeout_seconds * 1000, with_owner);
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_worker_list_release(&l);
}

static void
h_task(struct coord_store *s, struct coord_req *r)
{
    if (!r->has_worker || !r->q_worker[0]) {
        coord_req_error(r, 422, "invalid_field", "worker_id", "missing query 'worker_id'");
        return;
    }
    if (!co_id_valid(r->q_worker)) {
        coord_req_error(r, 422, "invalid_field", "worker_id", "invalid worker_id");
        return;
    }
    co_err err = CO_ERR_INIT;
    struct coord_job j;
    memset(&j, 0, sizeof(j));
    if (agent_check_worker(s, r, r->q_worker) < 0 || poll_begin(s, r, r->q_worker) < 0)
        return;
    int got = coord_store_worker_heartbeat(s, r->q_worker, &err);
    if (got == 0)
        got = coord_store_job_claim_next(s, r->q_worker, &j, &err);
    if (got < 0) {
        coord_req_fail(r, &err);
        (void)poll_commit(s, r);
        return;
    }
    if (poll_commit(s, r) < 0) {
        coord_job_release(&j);
        return;
    }
    if (got == 0) {
        r->status = 204;
        return;
    }
    r->wrote_state = true;
    r->dispatch_wait_ms = co_wall_ms() - j.created_at;
    coord_req_changed(r, COORD_EVENT_JOB, j.job_id);
    coord_req_changed(r, COORD_EVENT_WORKER, r->q_worker);
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    coord_render_job(&w, &j, true, j.attempts);
    r->status = 200;
    coord_job_release(&j);
}

static void
h_status(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"worker_id",      "job_id", "status",  "exit_code",
                                          "stdout",         "stderr", "attempt", "usage",
                                          "failure_reason", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    const char *wid, *jid, *status, *out_s, *err_s, *reason;
    int64_t exit_code = 0, attempt = 0;
    bool has_exit = false, fenced = false;
    struct coord_job j;
    memset(&j, 0, sizeof(j));
    co_err err = CO_ERR_INIT;
    if (only_fields(r, root, allowed) < 0 || get_id(r, root, "worker_id", true, &wid) < 0 ||
        get_id(r, root, "job_id", true, &jid) < 0 ||
        get_str(r, root, "status", true, 1, 16, &status) < 0 ||
        get_int(r, root, "exit_code", false, -255, 255, &exit_code, &has_exit) < 0 ||
        get_str(r, root, "stdout", false, 0, SIZE_MAX, &out_s) < 0 ||
        get_str(r, root, "stderr", false, 0, SIZE_MAX, &err_s) < 0 ||
        get_str(r, root, "failure_reason", false, 1, 32, &reason) < 0 ||
        agent_check_worker(s, r, wid) < 0 ||
        get_int(r, root, "attempt", true, 1, INT32_MAX, &attempt, NULL) < 0)
        goto out;
    int st = coord_job_status_parse(status);
    if (st != COORD_JOB_RUNNING && st != COORD_JOB_COMPLETED && st != COORD_JOB_FAILED) {
        coord_req_error(r, 422, "invalid_field", "status",
                        "field 'status' must be one of running, completed, failed");
        goto out;
    }
    struct coord_job_result res;
    memset(&res, 0, sizeof(res));
    json_t *usage = json_object_get(root, "usage");
    if (usage && !json_is_null(usage)) {
        static const char *const uallowed[] = {"wall_ms", "cpu_ms", "max_rss_kb", NULL};
        if (!json_is_object(usage)) {
            coord_req_error(r, 422, "invalid_field", "usage", "field 'usage' must be an object");
            goto out;
        }
        if (only_fields(r, usage, uallowed) < 0 ||
            get_int(r, usage, "wall_ms", false, 0, INT64_MAX, &res.usage.wall_ms, NULL) < 0 ||
            get_int(r, usage, "cpu_ms", false, 0, INT64_MAX, &res.usage.cpu_ms, NULL) < 0 ||
            get_int(r, usage, "max_rss_kb", false, 0, INT64_MAX, &res.usage.max_rss_kb, NULL) < 0)
            goto out;
        res.has_usage = true;
    }
    int failure = COORD_FAIL_NONE;
    if (reason) {
        failure = coord_failure_parse(reason);
        if (failure <= COORD_FAIL_NONE || failure == COORD_FAIL_CANCELLED ||
            failure == COORD_FAIL_WORKER_LOST) {
            coord_req_error(r, 422, "invalid_field", "failure_reason",
                            "field 'failure_reason' must be one of exit_code, timeout, oom, "
                            "killed, sandbox_error");
            goto out;
        }
        if (st != COORD_JOB_FAILED) {
            coord_req_error(r, 422, "invalid_field", "failure_reason",
                            "field 'failure_reason' is only allowed with status 'failed'");
            goto out;
        }
    }
    if (poll_begin(s, r, wid) < 0)
        goto out;
    fenced = true;
    if (coord_store_job_get(s, jid, false, &j, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    if (strcmp(j.assigned_worker, wid) != 0) {
        coord_req_error(r, 409, "conflict", "worker_id", "job '%s' is not assigned to '%s'", jid,
                        wid);
        goto out;
    }
    if (coord_store_worker_heartbeat(s, wid, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    if (st == COORD_JOB_RUNNING || j.status == COORD_JOB_ASSIGNED) {
        /* A poll worker may report completion without a running report first: it ran. */
        if (coord_store_job_started(s, jid, wid, (int)attempt, &err) < 0) {
            coord_req_fail(r, &err);
            goto out;
        }
    }
    /*
     * Output is fenced like the rest: only the current attempt on this worker appends.  A repeat
     * of the final report of the current attempt (a client retry) appends nothing again.
     */
    bool repeat =
        j.attempts == attempt && (j.status == COORD_JOB_COMPLETED || j.status == COORD_JOB_FAILED ||
                                  j.status == COORD_JOB_CANCELLED);
    if (!repeat && ((out_s && *out_s &&
                     coord_store_output_append_attempt(s, jid, wid, (int)attempt, 1, out_s,
                                                       strlen(out_s), &err) < 0) ||
                    (err_s && *err_s &&
                     coord_store_output_append_attempt(s, jid, wid, (int)attempt, 2, err_s,
                                                       strlen(err_s), &err) < 0))) {
        coord_req_fail(r, &err);
        goto out;
    }
    if (st != COORD_JOB_RUNNING) {
        bool changed = false;
        res.status = (enum coord_job_status)st;
        res.has_exit_code = has_exit;
        res.exit_code = (int)exit_code;
        if (st == COORD_JOB_FAILED) {
            res.failure =
                failure != COORD_FAIL_NONE ? (enum coord_failure)failure : COORD_FAIL_EXIT_CODE;
            res.platform_fault = res.failure == COORD_FAIL_SANDBOX_ERROR;
        }
        if (coord_store_job_finish(s, jid, wid, (int)attempt, &res, &changed, &err) < 0) {
            coord_req_fail(r, &err);
            goto out;
        }
    }
    fenced = false;
    if (poll_commit(s, r) < 0)
        goto out;
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_JOB, jid);
    coord_req_changed(r, COORD_EVENT_WORKER, wid);
    if (st != COORD_JOB_RUNNING) {
        struct coord_worker wk;
        co_err werr = CO_ERR_INIT;
        coord_req_changed(r, COORD_EVENT_CREDITS, j.buyer_id);
        if (coord_store_worker_get(s, wid, &wk, &werr) == 0)
            coord_req_changed(r, COORD_EVENT_CREDITS, wk.owner_id[0] ? wk.owner_id : wid);
    }
    coord_job_release(&j);
    memset(&j, 0, sizeof(j));
    if (coord_store_job_get(s, jid, false, &j, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    /* The worker that runs the job sees it (without code), as before accounts. */
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    coord_render_job(&w, &j, false, 0);
    r->status = 200;
out:
    if (fenced)
        (void)poll_commit(s, r); /* after a refusal: what succeeded before it is kept */
    coord_job_release(&j);
    json_decref(root);
}

static void
h_credits(struct coord_store *s, struct coord_req *r)
{
    struct coord_user u;
    co_err err = CO_ERR_INIT;
    if (coord_store_user_get(s, r->id, &u, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    render_user(r, &u);
    r->status = 200;
}

static void
h_grant(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"amount", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    co_err err = CO_ERR_INIT;
    int64_t micro = 0;
    struct coord_user u;
    if (only_fields(r, root, allowed) < 0)
        goto out;
    json_t *v = json_object_get(root, "amount");
    if (!v) {
        coord_req_error(r, 422, "invalid_field", "amount", "missing required field 'amount'");
        goto out;
    }
    int rc = proto_json_get_credits(v, "amount", &micro, &err);
    if (rc == 0 && (micro <= 0 || micro > INT64_C(1000000000000) * CO_MICRO))
        rc = co_err_set(&err, CO_E_RANGE,
                        "field 'amount' must be positive and at most 1000000000000");
    if (rc < 0) {
        coord_req_error(r, 422, "invalid_field", "amount", "%s", err.msg);
        goto out;
    }
    if (coord_store_batch_begin(s, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    if (coord_store_user_grant(s, r->id, micro, &u, &err) < 0) {
        coord_store_batch_rollback(s);
        coord_req_fail(r, &err);
        goto out;
    }
    if (audit_commit(s, r, "credits.grant", r->id, root, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_CREDITS, r->id);
    render_user(r, &u);
    r->status = 200;
out:
    json_decref(root);
}

static void
h_ledger(struct coord_store *s, struct coord_req *r)
{
    int64_t limit, offset;
    if (query_paging(r, &limit, &offset) < 0)
        return;
    co_err err = CO_ERR_INIT;
    struct coord_user u;
    if (coord_store_user_get(s, r->id, &u, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct coord_ledger_list l = {0};
    if (coord_store_ledger_list(s, r->id, limit, offset, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++) {
        const struct coord_ledger_row *row = &l.items[i];
        co_jsonw_obj_begin(&w);
        co_jsonw_kint(&w, "id", row->id);
        co_jsonw_kstr(&w, "user_id", row->user_id);
        co_jsonw_kstr(&w, "job_id", row->job_id[0] ? row->job_id : NULL);
        co_jsonw_kstr(&w, "kind", coord_ledger_kind_name(row->kind));
        co_jsonw_kcredits(&w, "amount", row->amount);
        co_jsonw_kcredits(&w, "held", row->held);
        co_jsonw_kcredits(&w, "balance", row->balance);
        co_jsonw_kstr(&w, "note", row->note);
        co_jsonw_ktime(&w, "created_at", row->created_at);
        co_jsonw_obj_end(&w);
    }
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_ledger_list_release(&l);
}

static void
h_health(struct coord_store *s, struct coord_req *r)
{
    co_err err = CO_ERR_INIT;
    memset(&r->health, 0, sizeof(r->health));
    r->health_ok = coord_store_ping(s, &err) == 0 && coord_store_health(s, &r->health, &err) == 0;
    if (!r->health_ok)
        co_warn("health check failed error=\"%s\"", err.msg);
    /* Rendered on the lws thread with the server's counters. */
}

static void
h_invariant(struct coord_store *s, struct coord_req *r)
{
    co_err err = CO_ERR_INIT;
    if (coord_store_check_invariant(s, &err) < 0) {
        if (err.code == CO_E_UNAVAILABLE) {
            coord_req_fail(r, &err);
            return;
        }
        coord_req_error(r, 500, "invariant_broken", NULL, "%s", err.msg);
        return;
    }
    co_buf_puts(&r->resp, "{\"ok\":true}");
    r->status = 200;
}

/* ------------------------------------------------------------------ accounts and keys */

/* The effective limits of a user: its overrides, else the coordinator's defaults. */
static void
write_limits(struct co_jsonw *w, const struct coord_config *cfg, const char *overrides)
{
    struct coord_user_limits l;
    co_err err = CO_ERR_INIT;
    if (coord_limits_parse(overrides, &l, &err) < 0)
        coord_limits_user_defaults(&l);
    char rate[32];
    int n = snprintf(rate, sizeof(rate), "%.6g",
                     l.submit_per_second >= 0 ? l.submit_per_second : cfg->rate_submit_per_second);
    co_jsonw_obj_begin(w);
    co_jsonw_key(w, "submit_per_second");
    co_jsonw_raw(w, rate, (size_t)n);
    co_jsonw_kint(w, "max_pending_jobs",
                  l.max_pending_jobs >= 0 ? l.max_pending_jobs : cfg->max_pending_jobs);
    co_jsonw_kint(w, "max_running_jobs",
                  l.max_running_jobs >= 0 ? l.max_running_jobs : cfg->max_running_jobs);
    co_jsonw_obj_end(w);
}

/* The user object of API.md (plus its balance); an open object when @open (for /me). */
static void
write_account(struct co_jsonw *w, const struct coord_req *r, const struct coord_account *a,
              bool open)
{
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "user_id", a->user_id);
    co_jsonw_kstr(w, "username", a->username);
    co_jsonw_kstr(w, "email", a->email);
    co_jsonw_kbool(w, "is_admin", a->is_admin);
    co_jsonw_kbool(w, "disabled", a->disabled);
    co_jsonw_key(w, "limits");
    write_limits(w, r->cfg, a->limits);
    co_jsonw_kcredits(w, "credits", a->credits);
    co_jsonw_kcredits(w, "held", a->held);
    co_jsonw_ktime(w, "created_at", a->created_at);
    if (!open)
        co_jsonw_obj_end(w);
}

static void
answer_account(struct coord_req *r, int status, const struct coord_account *a)
{
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    write_account(&w, r, a, false);
    r->status = status;
}

static void
write_scopes(struct co_jsonw *w, unsigned scopes)
{
    co_jsonw_arr_begin(w);
    for (unsigned bit = 1; bit <= COORD_SCOPE_ADMIN; bit <<= 1) {
        if (scopes & bit)
            co_jsonw_str(w, coord_auth_scope_name(bit));
    }
    co_jsonw_arr_end(w);
}

/* A key as listed; with its @token only in the answer that created it. */
static void
write_key(struct co_jsonw *w, const struct coord_api_key *k, const char *token)
{
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "key_id", k->key_id);
    co_jsonw_kstr(w, "user_id", k->user_id);
    co_jsonw_kstr(w, "name", k->name);
    co_jsonw_key(w, "scopes");
    write_scopes(w, k->scopes);
    if (token)
        co_jsonw_kstr(w, "token", token);
    co_jsonw_ktime(w, "created_at", k->created_at);
    co_jsonw_ktime(w, "last_used_at", k->last_used_at);
    co_jsonw_obj_end(w);
}

/* A boolean field: -1 absent or null, 0/1; -1 after answering 422 (returns -2). */
static int
get_bool(struct coord_req *r, json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return -1;
    if (!json_is_boolean(v)) {
        coord_req_error(r, 422, "invalid_field", name, "field '%s' must be true or false", name);
        return -2;
    }
    return json_is_true(v) ? 1 : 0;
}

static void
h_users_create(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"user_id",  "username", "email",
                                          "is_admin", "credits",  NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    const char *uid, *username, *email;
    struct coord_account a, out;
    memset(&a, 0, sizeof(a));
    memset(&out, 0, sizeof(out));
    int64_t credits = r->cfg->starting_credits;
    co_err err = CO_ERR_INIT;
    int is_admin;
    if (only_fields(r, root, allowed) < 0 || get_id(r, root, "user_id", true, &uid) < 0 ||
        get_str(r, root, "username", false, 1, 200, &username) < 0 ||
        get_str(r, root, "email", false, 3, 254, &email) < 0 ||
        (is_admin = get_bool(r, root, "is_admin")) < -1)
        goto out;
    if (email && !strchr(email, '@')) {
        coord_req_error(r, 422, "invalid_field", "email", "field 'email' must contain '@'");
        goto out;
    }
    json_t *c = json_object_get(root, "credits");
    if (c && !json_is_null(c)) {
        int rc = proto_json_get_credits(c, "credits", &credits, &err);
        if (rc == 0 && (credits < 0 || credits > INT64_C(1000000000) * CO_MICRO))
            rc = co_err_set(&err, CO_E_RANGE, "field 'credits' must be from 0 to 1000000000");
        if (rc < 0) {
            coord_req_error(r, 422, "invalid_field", "credits", "%s", err.msg);
            goto out;
        }
    }
    co_strlcpy(a.user_id, uid, sizeof(a.user_id));
    a.username = (char *)username;
    a.email = (char *)email;
    a.is_admin = is_admin == 1;
    if (coord_store_batch_begin(s, &err) < 0)
        goto fail;
    if (coord_store_account_create(s, &a, credits, &out, &err) < 0) {
        coord_store_batch_rollback(s);
        goto fail;
    }
    if (audit_commit(s, r, "user.create", uid, root, &err) < 0)
        goto fail;
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_CREDITS, uid);
    answer_account(r, 201, &out);
    goto out;
fail:
    coord_req_fail(r, &err);
out:
    coord_account_release(&out);
    json_decref(root);
}

static void
h_users(struct coord_store *s, struct coord_req *r)
{
    int64_t limit, offset;
    if (query_paging(r, &limit, &offset) < 0)
        return;
    struct coord_account_list l = {0};
    co_err err = CO_ERR_INIT;
    if (coord_store_account_list(s, limit, offset, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++)
        write_account(&w, r, &l.items[i], false);
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_account_list_release(&l);
}

static void
h_user(struct coord_store *s, struct coord_req *r)
{
    struct coord_account a;
    memset(&a, 0, sizeof(a));
    co_err err = CO_ERR_INIT;
    if (coord_store_account_get(s, r->id, &a, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    answer_account(r, 200, &a);
    coord_account_release(&a);
}

static void
h_user_patch(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"is_admin", "disabled", "limits", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    struct coord_account_patch p = {.is_admin = -1, .disabled = -1, .limits = NULL};
    struct coord_account out;
    memset(&out, 0, sizeof(out));
    co_autofree char *limits = NULL;
    co_err err = CO_ERR_INIT;
    if (only_fields(r, root, allowed) < 0 || (p.is_admin = get_bool(r, root, "is_admin")) < -1 ||
        (p.disabled = get_bool(r, root, "disabled")) < -1)
        goto out;
    json_t *lim = json_object_get(root, "limits");
    if (lim) {
        struct coord_user_limits parsed;
        if (json_is_null(lim)) {
            limits = co_xstrdup("{}"); /* back to the defaults */
        } else if (!json_is_object(lim)) {
            coord_req_error(r, 422, "invalid_field", "limits", "field 'limits' must be an object");
            goto out;
        } else {
            limits = json_dumps(lim, JSON_COMPACT | JSON_SORT_KEYS);
            if (!limits || strlen(limits) > 500 || coord_limits_parse(limits, &parsed, &err) < 0) {
                coord_req_error(r, 422, "invalid_field", "limits", "%s",
                                err.msg[0] ? err.msg : "field 'limits' is too long");
                goto out;
            }
        }
        p.limits = limits;
    }
    if (p.is_admin < 0 && p.disabled < 0 && !p.limits) {
        coord_req_error(r, 422, "invalid_field", NULL,
                        "nothing to change: give is_admin, disabled or limits");
        goto out;
    }
    if (strcmp(r->id, COORD_ADMIN_USER) == 0 && (p.is_admin == 0 || p.disabled == 1)) {
        coord_req_error(r, 409, "conflict", p.is_admin == 0 ? "is_admin" : "disabled",
                        "the built-in user '%s' stays an enabled admin", COORD_ADMIN_USER);
        goto out;
    }
    if (coord_store_batch_begin(s, &err) < 0)
        goto fail;
    if (coord_store_account_patch(s, r->id, &p, &out, &err) < 0) {
        coord_store_batch_rollback(s);
        goto fail;
    }
    if (audit_commit(s, r, "user.patch", r->id, root, &err) < 0)
        goto fail;
    r->wrote_state = true;
    /* Cached authentications of this user end now; its agents are told (COORD_EVENT_USER). */
    coord_req_changed(r, COORD_EVENT_USER, r->id);
    answer_account(r, 200, &out);
    goto out;
fail:
    coord_req_fail(r, &err);
out:
    coord_account_release(&out);
    json_decref(root);
}

/* Parse a "scopes" array into bits; -1 after answering 422. */
static int
get_scopes(struct coord_req *r, json_t *obj, unsigned *out)
{
    json_t *v = json_object_get(obj, "scopes");
    size_t i;
    json_t *e;
    if (!v || json_is_null(v)) {
        *out = COORD_SCOPE_BUY | COORD_SCOPE_SELL;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        coord_req_error(r, 422, "invalid_field", "scopes",
                        "field 'scopes' must be a non-empty array of \"buy\", \"sell\", \"admin\"");
        return -1;
    }
    *out = 0;
    json_array_foreach(v, i, e)
    {
        unsigned bit = json_is_string(e) ? coord_auth_scope_parse(json_string_value(e)) : 0;
        if (!bit) {
            coord_req_error(r, 422, "invalid_field", "scopes",
                            "unknown scope (known: \"buy\", \"sell\", \"admin\")");
            return -1;
        }
        *out |= bit;
    }
    return 0;
}

static void
h_keys_create(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"name", "scopes", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    const struct coord_principal *p = &r->principal;
    const char *name;
    unsigned scopes = 0;
    struct coord_account owner;
    struct coord_api_key k;
    char token[64], hash[COORD_KEY_HASH_LEN + 1];
    memset(&owner, 0, sizeof(owner));
    memset(&k, 0, sizeof(k));
    token[0] = '\0';
    co_err err = CO_ERR_INIT;
    if (only_fields(r, root, allowed) < 0 || get_str(r, root, "name", true, 1, 100, &name) < 0 ||
        get_scopes(r, root, &scopes) < 0)
        goto out;
    if (coord_store_account_get(s, r->id, &owner, &err) < 0)
        goto fail;
    /* No escalation: a key grants only scopes it holds; admin only to admins, by admins. */
    if ((scopes & COORD_SCOPE_ADMIN) && !owner.is_admin) {
        coord_req_error(r, 403, "forbidden", "scopes",
                        "user '%s' is not an admin: its keys cannot have the admin scope", r->id);
        goto out;
    }
    if (!p->is_admin && (scopes & ~p->scopes)) {
        coord_req_error(r, 403, "forbidden", "scopes",
                        "this credential cannot grant scopes it does not hold itself");
        goto out;
    }
    if (coord_auth_new_token(token, sizeof(token), &err) < 0)
        goto fail;
    coord_auth_hash(token, strlen(token), hash);
    k.key_id[0] = 'k';
    k.key_id[1] = '_';
    co_random_hex(k.key_id + 2, 8);
    co_strlcpy(k.user_id, r->id, sizeof(k.user_id));
    co_strlcpy(k.name, name, sizeof(k.name));
    k.scopes = scopes;
    json_t *names = json_array();
    for (unsigned bit = 1; bit <= COORD_SCOPE_ADMIN; bit <<= 1) {
        if (scopes & bit)
            json_array_append_new(names, json_string(coord_auth_scope_name(bit)));
    }
    json_t *detail = json_pack("{s:s, s:s, s:o}", "user_id", r->id, "name", name, "scopes", names);
    if (coord_store_batch_begin(s, &err) < 0) {
        json_decref(detail);
        goto fail;
    }
    int rc = coord_store_key_create(s, &k, hash, &err);
    if (rc < 0)
        coord_store_batch_rollback(s);
    else
        rc = audit_commit(s, r, "key.create", k.key_id, detail, &err);
    json_decref(detail);
    if (rc < 0)
        goto fail;
    r->wrote_state = true;
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    write_key(&w, &k, token); /* the only time the token is shown */
    r->status = 201;
    goto out;
fail:
    coord_req_fail(r, &err);
out:
    explicit_bzero(token, sizeof(token));
    coord_account_release(&owner);
    json_decref(root);
}

static void
h_keys(struct coord_store *s, struct coord_req *r)
{
    struct coord_api_key_list l = {0};
    co_err err = CO_ERR_INIT;
    if (coord_store_key_list(s, r->id, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++)
        write_key(&w, &l.items[i], NULL);
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_api_key_list_release(&l);
}

static void
h_key_revoke(struct coord_store *s, struct coord_req *r)
{
    struct coord_api_key k;
    co_err err = CO_ERR_INIT;
    if (coord_store_key_get(s, r->id, &k, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    if (!coord_auth_is_self_or_admin(&r->principal, k.user_id)) {
        forbidden(r, "this key belongs to another user");
        return;
    }
    if (coord_store_batch_begin(s, &err) < 0)
        goto fail;
    json_t *detail = json_pack("{s:s}", "user_id", k.user_id);
    int rc = coord_store_key_revoke(s, r->id, NULL, &err);
    if (rc < 0)
        coord_store_batch_rollback(s);
    else
        rc = audit_commit(s, r, "key.revoke", r->id, detail, &err);
    json_decref(detail);
    if (rc < 0)
        goto fail;
    r->wrote_state = true;
    /* Cached authentications of the key end now; agents connected with it are told. */
    coord_req_changed(r, COORD_EVENT_KEY, r->id);
    co_buf_reset(&r->resp);
    r->status = 204;
    return;
fail:
    coord_req_fail(r, &err);
}

static void
h_me(struct coord_store *s, struct coord_req *r)
{
    const struct coord_principal *p = &r->principal;
    struct coord_account a;
    memset(&a, 0, sizeof(a));
    co_err err = CO_ERR_INIT;
    if (!p->user_id[0]) {
        coord_req_error(r, 404, "not_found", NULL, "this credential acts for no user");
        return;
    }
    if (coord_store_account_get(s, p->user_id, &a, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    write_account(&w, r, &a, true);
    co_jsonw_key(&w, "key");
    if (p->cred == COORD_CRED_KEY) {
        struct coord_api_key k;
        co_jsonw_obj_begin(&w);
        co_jsonw_kstr(&w, "key_id", p->key_id);
        co_jsonw_kstr(&w, "name", coord_store_key_get(s, p->key_id, &k, &err) == 0 ? k.name : "");
        co_jsonw_key(&w, "scopes");
        write_scopes(&w, p->scopes);
        co_jsonw_obj_end(&w);
    } else {
        co_jsonw_null(&w);
    }
    co_jsonw_kstr(&w, "credential",
                  p->cred == COORD_CRED_ADMIN_TOKEN   ? "admin_token"
                  : p->cred == COORD_CRED_AGENT_TOKEN ? "agent_token"
                                                      : "key");
    co_jsonw_obj_end(&w);
    r->status = 200;
    coord_account_release(&a);
}

static void
h_audit(struct coord_store *s, struct coord_req *r)
{
    int64_t limit, offset;
    if (query_paging(r, &limit, &offset) < 0)
        return;
    struct coord_audit_list l = {0};
    co_err err = CO_ERR_INIT;
    if (coord_store_audit_list(s, limit, offset, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++) {
        const struct coord_audit_row *a = &l.items[i];
        co_jsonw_obj_begin(&w);
        co_jsonw_kint(&w, "id", a->id);
        co_jsonw_ktime(&w, "at", a->at);
        co_jsonw_kstr(&w, "actor", a->actor);
        co_jsonw_kstr(&w, "action", a->action);
        co_jsonw_kstr(&w, "target", a->target);
        co_jsonw_key(&w, "detail");
        if (a->detail && a->detail[0] == '{')
            co_jsonw_raw(&w, a->detail, strlen(a->detail));
        else
            co_jsonw_raw(&w, "{}", 2);
        co_jsonw_obj_end(&w);
    }
    co_jsonw_arr_end(&w);
    r->status = 200;
    coord_audit_list_release(&l);
}

/*
 * POST /api/v1/debug/retention {"older_than_seconds": N} (admin): run retention now with the
 * cutoff N seconds ago, in RETENTION_BATCH-row transactions, and answer what it removed.
 */
static void
h_retention(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"older_than_seconds", NULL};
    json_t *root = body_object(r);
    if (!root)
        return;
    int64_t older = 0;
    struct coord_retention_counts c;
    co_err err = CO_ERR_INIT;
    if (only_fields(r, root, allowed) < 0 ||
        get_int(r, root, "older_than_seconds", true, 0, INT64_C(3650) * 86400, &older, NULL) < 0)
        goto out;
    if (coord_retention_run(s, co_wall_ms() - older * 1000, r->cfg->retention_batch, &c, &err) <
        0) {
        coord_req_fail(r, &err);
        goto out;
    }
    r->wrote_state = true;
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    co_jsonw_kint(&w, "job_code", c.job_code);
    co_jsonw_kint(&w, "output_chunks", c.output_chunks);
    co_jsonw_kint(&w, "outputs", c.outputs);
    co_jsonw_kint(&w, "artifacts", c.artifacts);
    co_jsonw_kint(&w, "workers", c.workers);
    co_jsonw_kint(&w, "idempotency_keys", c.idem_keys);
    co_jsonw_kint(&w, "deliveries", c.deliveries);
    co_jsonw_kint(&w, "outcomes", c.outcomes);
    co_jsonw_obj_end(&w);
    r->status = 200;
out:
    json_decref(root);
}

/* For the handlers in other files of the REST API (coord_api_webhook.c). */
int
coord_api_audit_commit(struct coord_store *s, const struct coord_req *r, const char *action,
                       const char *target, json_t *detail, co_err *err)
{
    return audit_commit(s, r, action, target, detail, err);
}

int
coord_api_own_job(struct coord_store *s, struct coord_req *r, struct coord_job *out)
{
    return own_job(s, r, out);
}

static void
api_dispatch(struct coord_store *store, struct coord_req *r)
{
    switch (r->route) {
    case COORD_R_SUBMIT:
        h_submit(store, r);
        break;
    case COORD_R_JOBS:
        h_jobs(store, r);
        break;
    case COORD_R_JOB:
        h_job(store, r);
        break;
    case COORD_R_JOB_OUTPUT:
        h_job_output(store, r);
        break;
    case COORD_R_JOB_CANCEL:
        h_job_cancel(store, r);
        break;
    case COORD_R_REGISTER:
        h_register(store, r);
        break;
    case COORD_R_UNREGISTER:
        h_unregister(store, r);
        break;
    case COORD_R_WORKERS:
        h_workers(store, r);
        break;
    case COORD_R_TASK:
        h_task(store, r);
        break;
    case COORD_R_STATUS:
        h_status(store, r);
        break;
    case COORD_R_CREDITS:
        h_credits(store, r);
        break;
    case COORD_R_GRANT:
        h_grant(store, r);
        break;
    case COORD_R_LEDGER:
        h_ledger(store, r);
        break;
    case COORD_R_WORKER_PATCH:
        coord_api_worker_patch(store, r);
        break;
    case COORD_R_STATEMENT:
        coord_api_statement(store, r);
        break;
    case COORD_R_HEALTH:
    case COORD_R_METRICS:
        h_health(store, r);
        break;
    case COORD_R_DEBUG_INVARIANT:
        h_invariant(store, r);
        break;
    case COORD_R_USERS_CREATE:
        h_users_create(store, r);
        break;
    case COORD_R_USERS:
        h_users(store, r);
        break;
    case COORD_R_USER:
        h_user(store, r);
        break;
    case COORD_R_USER_PATCH:
        h_user_patch(store, r);
        break;
    case COORD_R_KEYS_CREATE:
        h_keys_create(store, r);
        break;
    case COORD_R_KEYS:
        h_keys(store, r);
        break;
    case COORD_R_KEY_REVOKE:
        h_key_revoke(store, r);
        break;
    case COORD_R_ME:
        h_me(store, r);
        break;
    case COORD_R_AUDIT:
        h_audit(store, r);
        break;
    case COORD_R_DEBUG_RETENTION:
        h_retention(store, r);
        break;
    case COORD_R_OPENAPI:
        coord_openapi_render(r);
        break;
    case COORD_R_JOB_ARTIFACTS:
        h_job_artifacts(store, r);
        break;
    case COORD_R_JOB_ARTIFACTS_TGZ:
        h_job_artifacts_tgz(store, r);
        break;
    case COORD_R_JOB_ARTIFACT:
        h_job_artifact(store, r);
        break;
    case COORD_R_WEBHOOK_SECRET:
        coord_api_webhook_secret(store, r);
        break;
    case COORD_R_JOB_DELIVERIES:
        coord_api_webhook_deliveries(store, r);
        break;
    default:
        coord_req_error(r, 404, "not_found", NULL, "unknown path");
        break;
    }
}

/*
 * The group transaction a write ran in did not commit (coord_db): nothing it wrote was kept, so
 * whatever it answered becomes the 503 of a database failure and nothing is published.  The
 * client retries (with its Idempotency-Key, whose record rolled back with the group).
 */
static void
api_group_failed(void *arg, const co_err *err)
{
    coord_req_discarded(arg, err);
}

void
coord_api_handle(struct coord_store *store, struct coord_req *r)
{
    /* A write of COORD_DB_WRITE_GROUP may share its COMMIT with the writes queued behind it. */
    bool grouped = coord_db_group_on_fail(api_group_failed, r);
    /* A POST with an Idempotency-Key runs at most once per key (coord_idem). */
    if (r->method == COORD_M_POST && r->idem_key[0])
        coord_idem_run(store, r, api_dispatch);
    else
        api_dispatch(store, r);
    /* A failed write keeps nothing of what it did before failing (the group goes on). */
    if (grouped && r->status >= 500)
        coord_db_group_discard();
}
