/*
 * coord_api: the REST API of API.md.  Routing and auth requirements are decided on the lws thread
 * (coord_api_route); each handler then runs on a database thread with that thread's store
 * (coord_api_handle) and fills the answer of the request.  Pure request -> answer code: it never
 * touches a wsi.
 */
#ifndef COORD_API_H
#define COORD_API_H

#include <jansson.h>
#include <stdbool.h>

#include "coord_db.h"
#include "co_jsonw.h"
#include "coord_server.h"

/*
 * What a route requires of the request's principal (checked in coord_server before the handler
 * runs; no credential -> 401, a credential without the right -> 403).
 */
enum coord_auth {
    COORD_AUTH_NONE = 0, /* anyone, anonymous included */
    COORD_AUTH_ADMIN,    /* the admin scope (X-Admin-Token or an admin key) */
    COORD_AUTH_AGENT,    /* an agent credential: X-Agent-Token, a sell key, or open registration */
    COORD_AUTH_ANY,      /* any valid credential */
    COORD_AUTH_BUY,      /* the buy scope */
};

struct coord_route_info {
    enum coord_route route;
    enum coord_auth auth;
    bool self_or_admin; /* the {id} of the path must be the principal's user, unless admin */
    bool body;          /* a JSON body is required */
    bool body_optional; /* a body may come (POST .../cancel) */
    enum coord_db_lane lane;
};

/**
 * Match @method (LWSHUMETH_*) and @path (no query) under /api/v1.  Copies the {id} path part
 * into @id.  Returns 0 and fills @ri, or 404 (unknown path, or an id that is not valid) or 405
 * (known path, other method).
 */
int coord_api_route(int method, const char *path, char id[CO_ID_MAX + 1],
                    struct coord_route_info *ri);

/**
 * Write the job object of API.md (with `code` and `code_file` when @with_code, with `attempt`
 * when @attempt > 0).  Pure: any thread.  @w and @j are borrowed.
 */
void coord_api_write_job(struct co_jsonw *w, const struct coord_job *j, bool with_code,
                         int attempt);

/**
 * Write the public view of a job (API.md "Visibility and rights": what anonymous users and other
 * buyers see).  Pure: any thread.
 */
void coord_api_write_job_public(struct co_jsonw *w, const struct coord_job *j);

/**
 * Whether @p sees @buyer_id's jobs in full (code, command, parameters, output): admins, and the
 * buyer itself with the buy scope; everyone else gets the public view.  Pure: any thread.
 */
bool coord_api_sees_full(const struct coord_principal *p, const char *buyer_id);

/**
 * Write the worker object of API.md; a worker silent for @timeout_ms shows as offline.  Pure:
 * any thread.  @w and @wk are borrowed.
 */
void coord_api_write_worker(struct co_jsonw *w, const struct coord_worker *wk, int64_t timeout_ms);

/** The same, without `owner_id` unless @with_owner (the anonymous view of GET /workers). */
void coord_api_write_worker_view(struct co_jsonw *w, const struct coord_worker *wk,
                                 int64_t timeout_ms, bool with_owner);

/**
 * Whether @p may use a route that requires @auth (with @self_or_admin, on the path's @id): 0, or
 * the HTTP status to answer (401 without a credential, 403 with one that lacks the right) with
 * a message in @msg.  @open_agents: agent routes are open (no AGENT_TOKEN, no key needed).
 */
int coord_api_allowed(const struct coord_principal *p, enum coord_auth auth, bool self_or_admin,
                      const char *id, bool open_agents, const char **msg);

/**
 * Record an action in the audit log (@detail borrowed, may be NULL) and commit the open batch
 * that holds the change it records (rolled back on failure).  Database thread.
 */
int coord_api_audit_commit(struct coord_store *s, const struct coord_req *r, const char *action,
                           const char *target, json_t *detail, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Load job r->id for an action only its buyer or an admin may take: -1 after answering 404 or
 * 403.  @out (optional) receives the job (without code).  Database thread.
 */
int coord_api_own_job(struct coord_store *s, struct coord_req *r, struct coord_job *out)
    __attribute__((warn_unused_result));

/** Run the handler of @r->route with @store (database thread). */
void coord_api_handle(struct coord_store *store, struct coord_req *r);

/**
 * Render /api/v1/health into @r from @h (NULL or !@db_ok: 503 unhealthy).  Any thread; @srv is
 * read for settings and counters only.
 */
void coord_api_render_health(struct coord_server *srv, const struct coord_health *h, bool db_ok,
                             struct coord_req *r);

/** Render /metrics into @r. */
void coord_api_render_metrics(struct coord_server *srv, const struct coord_health *h, bool db_ok,
                              struct coord_req *r);

#endif
