/*
 * coord_req: one REST request and its answer, without the transport.  coord_server (the lws
 * side) fills a request from the HTTP connection, hands it to a database thread where a handler
 * of coord_api fills the answer (status, body, changes to publish), and sends that answer back on
 * the connection; the handlers, coord_idem and coord_openapi see only this structure.
 *
 * Thread: one thread at a time owns a request.  The lws thread fills it and owns it until it is
 * submitted to coord_db; the database thread that runs the handler owns it until the completion
 * runs back on the lws thread.  The functions below are pure (any thread, on a request the
 * caller owns).
 *
 * Life cycle: coord_req_init() when the request line arrives, coord_req_release() once its answer
 * was written or its connection closed (coord_server).
 */
#ifndef COORD_REQ_H
#define COORD_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "co_buf.h"
#include "co_err.h"
#include "coord_auth.h"
#include "coord_config.h"
#include "coord_db.h"
#include "coord_events.h"
#include "coord_limits.h"
#include "coord_store.h"

/* API routes (see API.md). */
enum coord_route {
    COORD_R_NONE = 0,
    COORD_R_SUBMIT,
    COORD_R_JOBS,
    COORD_R_JOB,
    COORD_R_JOB_OUTPUT,
    COORD_R_JOB_CANCEL,
    COORD_R_REGISTER,
    COORD_R_UNREGISTER,
    COORD_R_WORKERS,
    COORD_R_TASK,
    COORD_R_STATUS,
    COORD_R_CREDITS,
    COORD_R_GRANT,
    COORD_R_LEDGER,
    COORD_R_HEALTH,
    COORD_R_METRICS,
    COORD_R_DEBUG_INVARIANT,
    COORD_R_USERS_CREATE,
    COORD_R_USERS,
    COORD_R_USER,
    COORD_R_USER_PATCH,
    COORD_R_KEYS_CREATE,
    COORD_R_KEYS,
    COORD_R_KEY_REVOKE,
    COORD_R_ME,
    COORD_R_AUDIT,
    COORD_R_DEBUG_RETENTION,
    COORD_R_JOB_ARTIFACTS,     /* GET /jobs/{id}/artifacts */
    COORD_R_JOB_ARTIFACTS_TGZ, /* GET /jobs/{id}/artifacts.tar.gz */
    COORD_R_JOB_ARTIFACT,      /* GET /jobs/{id}/artifacts/{path} */
    COORD_R_WORKER_PATCH,      /* PATCH /workers/{id}: a seller's prices */
    COORD_R_STATEMENT,         /* GET /users/{id}/statement?days= */
    COORD_R_WEBHOOK_SECRET,    /* POST /users/{id}/webhook-secret */
    COORD_R_JOB_DELIVERIES,    /* GET /jobs/{id}/deliveries */
    COORD_R_OPENAPI,           /* GET /openapi.json (coord_openapi) */
    COORD_R_COUNT
};

/* HTTP methods (coord_server maps the transport's own). */
enum coord_method {
    COORD_M_OTHER = 0,
    COORD_M_GET,
    COORD_M_HEAD,
    COORD_M_POST,
    COORD_M_PUT,
    COORD_M_PATCH,
    COORD_M_DELETE,
    COORD_M_OPTIONS,
};

#define COORD_MAX_CHANGES 16

/**
 * One HTTP request.  Fields above `status` are filled on the lws thread before the request is
 * handed to a database thread and are read-only afterwards; the handler fills the answer.
 */
struct coord_req {
    const struct coord_config *cfg; /* borrowed, read-only */
    enum coord_route route;
    enum coord_db_lane lane;
    int auth;           /* the route's enum coord_auth (coord_api.h) */
    bool self_or_admin; /* the route's {id} must be the principal's user unless admin */
    enum coord_method method;
    char method_name[8];
    char path[512];         /* room for an artifact path (255 bytes, percent-encoded) */
    char id[CO_ID_MAX + 1]; /* the {id} part of the path */
    /*
     * Who is asking: resolved once per request (coord_auth.h), on the lws thread for the shared
     * tokens and cached keys, else by a key lookup on a database thread before the handler runs.
     * Handlers decide rights from it only.  @limits: the user's limit overrides (keys only).
     */
    struct coord_principal principal;
    struct coord_user_limits limits;
    int64_t max_pending; /* the submit quota to enforce (0 = none: admins, or no limit) */
    /* Query arguments the API knows (URL-decoded, "" when absent; has_* tells presence). */
    char q_status[32], q_buyer[CO_ID_MAX + 2], q_worker[CO_ID_MAX + 2], q_limit[24], q_offset[24];
    bool has_status, has_buyer, has_worker, has_limit, has_offset;
    char q_days[24];
    bool has_days;
    struct co_buf body;
    int64_t content_length; /* -1 when absent */
    /* Idempotency-Key of a POST ("" when absent); who presented it is @principal (coord_idem). */
    char idem_key[256];
    bool idem_replayed; /* the answer is a stored first answer: Idempotent-Replayed: true */

    /* The answer (filled by the handler or early on the lws thread). */
    int status;
    const char *content_type;
    char disposition[320]; /* Content-Disposition when not "" (downloads) */
    struct co_buf resp;
    bool db_down;     /* the store said the database is unreachable */
    bool wrote_state; /* the handler changed state (health cache becomes stale) */
    bool health_ok;   /* health/metrics: database answered */
    struct coord_health health;
    /* Changes to publish once the answer is back on the lws thread. */
    int n_changes;
    enum coord_event_kind change_kind[COORD_MAX_CHANGES];
    char change_id[COORD_MAX_CHANGES][CO_ID_MAX + 1];
    int64_t dispatch_wait_ms; /* /task: time the assigned job waited, -1 if none */
    int64_t retry_after;      /* > 0: a Retry-After header with these seconds */
};

/** Set @r up for a new request with settings @cfg (borrowed): no answer yet, JSON by default. */
void coord_req_init(struct coord_req *r, const struct coord_config *cfg);

/** Free what @r holds (not @r itself).  NULL is fine. */
void coord_req_release(struct coord_req *r);

/** The name of @m ("GET", ..., "OTHER"). */
const char *coord_req_method_name(enum coord_method m);

/** Fill @r with a JSON error answer in API.md's shape (@field may be NULL). */
void coord_req_error(struct coord_req *r, int status, const char *code, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** Map a store/validation error to its HTTP answer (404, 409, 402, 503, 422, 500). */
void coord_req_fail(struct coord_req *r, const co_err *err);

/**
 * Nothing @r wrote was kept (its transaction rolled back): whatever it answered becomes the
 * error answer of @err, without the headers of that answer, and nothing is published.
 */
void coord_req_discarded(struct coord_req *r, const co_err *err);

/** Remember that @id of @kind changed (published on the lws thread after the answer). */
void coord_req_changed(struct coord_req *r, enum coord_event_kind kind, const char *id);

#endif
