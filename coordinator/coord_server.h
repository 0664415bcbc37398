/*
 * coord_server: the coordinator's one libwebsockets context and vhost: the REST API mount
 * (/api/v1), /metrics, the dashboard's static files with SPA fallback, and the two WebSocket
 * subprotocols.  It owns the per-request state (struct coord_req) that travels from the lws
 * thread to a database thread and back.
 */
#ifndef COORD_SERVER_H
#define COORD_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "co_buf.h"
#include "co_err.h"
#include "coord_auth.h"
#include "coord_config.h"
#include "coord_db.h"
#include "coord_events.h"
#include "coord_limits.h"
#include "coord_metrics.h"
#include "coord_store.h"

struct lws;
struct lws_context;

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

struct coord_server;

#define COORD_MAX_CHANGES 16

/**
 * One HTTP request.  Fields above `status` are filled on the lws thread before the request is
 * handed to a database thread and are read-only afterwards; the handler fills the answer.
 */
struct coord_req {
    struct coord_server *srv;
    enum coord_route route;
    enum coord_db_lane lane;
    int auth;           /* the route's enum coord_auth (coord_api.h) */
    bool self_or_admin; /* the route's {id} must be the principal's user unless admin */
    int method;         /* LWSHUMETH_* */
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
    bool close_after; /* close the connection after the answer (unread body) */
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

    /* lws-thread bookkeeping. */
    struct lws *wsi;   /* NULL once the connection closed while the request was in flight */
    bool waiting_body; /* accepted: reading the body, dispatched at BODY_COMPLETION */
    bool inflight;     /* owned by the database executor until its completion ran */
    bool orphaned;     /* the connection closed while in flight: free on completion */
    char cors_origin[256];
    char peer[64];                         /* the client's address (failed-auth throttle) */
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* a bearer key's token hash, "" if none */
    bool auth_pending;                     /* the key still has to be looked up */
    int auth_rc;                           /* the lookup's result: 1 found, 0 not, -1 error */
    co_err auth_err;                       /* its error when -1 */
    struct coord_auth_entry auth_found;    /* what it found */
    uint64_t auth_gen;                     /* the cache generation when it started */
    size_t sent;                           /* bytes of resp already written */
    bool headers_sent;
    int64_t t0_ns;
};

struct coord_server {
    const struct coord_config *cfg;      /* borrowed, read-only */
    struct coord_db *db;                 /* borrowed */
    struct coord_events *events;         /* owned */
    struct coord_feed *feed;             /* owned; the feed between nodes (NULL on SQLite) */
    struct coord_auth_cache *auth_cache; /* owned; positive key lookups (lws thread) */
    struct coord_limits *limits;         /* owned; submit buckets, failed-auth throttle */
    struct coord_openapi_rec *rec;       /* owned; RECORD_ANSWERS log, NULL when unset */
    struct coord_metrics metrics;
    struct lws_context *ctx;
    const char *backend; /* "sqlite" or "postgres" */
    int64_t started_mono_ms;
    /* Health cache (lws thread only). */
    struct coord_health health;
    bool health_db_ok;
    bool health_valid;
    bool health_dirty;    /* a change was published since the snapshot */
    int64_t health_at_ms; /* monotonic */
    int64_t inflight;     /* requests handed to the executor, not yet answered */
    bool stopping;
    volatile sig_atomic_t *stop_flag; /* set by the signal handler */
    int64_t max_loop_callback_us;     /* longest HTTP callback on the lws thread */
    int max_loop_callback_reason;     /* its lws callback reason */
};

/**
 * Create the lws context on HOST:PORT and serve until *@stop_flag becomes non-zero, then finish
 * in-flight requests (up to 10 s) and destroy the context.  @db must be started; its
 * completions are drained here.  Errors: the port cannot be bound.
 */
int coord_server_run(const struct coord_config *cfg, struct coord_db *db, const char *backend,
                     volatile sig_atomic_t *stop_flag, co_err *err)
    __attribute__((warn_unused_result));

/* ---- used by coord_api.c (any thread unless stated) ---- */

/** Fill @r with a JSON error answer in API.md's shape (@field may be NULL). */
void coord_req_error(struct coord_req *r, int status, const char *code, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** Map a store/validation error to its HTTP answer (404, 409, 402, 503, 422, 500). */
void coord_req_fail(struct coord_req *r, const co_err *err);

/** Remember that @id of @kind changed (published on the lws thread after the answer). */
void coord_req_changed(struct coord_req *r, enum coord_event_kind kind, const char *id);

#endif
