/*
 * coord_api: the REST API of API.md.  Routing and auth requirements are decided on the lws thread
 * (coord_api_route); each handler then runs on a database thread with that thread's store
 * (coord_api_handle) and fills the answer of the request.  Pure request -> answer code: it never
 * touches a wsi.
 */
#ifndef COORD_API_H
#define COORD_API_H

#include <stdbool.h>

#include "coord_db.h"
#include "co_jsonw.h"
#include "coord_server.h"

enum coord_auth { COORD_AUTH_NONE = 0, COORD_AUTH_ADMIN, COORD_AUTH_AGENT };

struct coord_route_info {
    enum coord_route route;
    enum coord_auth auth;
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
 * Write the worker object of API.md; a worker silent for @timeout_ms shows as offline.  Pure:
 * any thread.  @w and @wk are borrowed.
 */
void coord_api_write_worker(struct co_jsonw *w, const struct coord_worker *wk, int64_t timeout_ms);

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
