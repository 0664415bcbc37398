/*
 * coord_api: the REST API of API.md.  Routing and auth requirements are decided on the lws thread
 * (coord_api_route); each handler then runs on a database thread with that thread's store
 * (coord_api_handle) and fills the answer of the request.  Pure request -> answer code: it sees
 * a struct coord_req (coord_req.h), never a wsi.  The handlers of pricing (coord_api_price.c)
 * and of callbacks (coord_api_webhook.c) are part of it.
 *
 * Thread: routing on the lws thread, handlers on database threads.  No state of its own.
 */
#ifndef COORD_API_H
#define COORD_API_H

#include <jansson.h>
#include <stdbool.h>

#include "coord_db.h"
#include "co_jsonw.h"
#include "coord_req.h"

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
 * Match @method and @path (no query) under /api/v1.  Copies the {id} path part
 * into @id.  Returns 0 and fills @ri, or 404 (unknown path, or an id that is not valid) or 405
 * (known path, other method).
 */
int coord_api_route(enum coord_method method, const char *path, char id[CO_ID_MAX + 1],
                    struct coord_route_info *ri);

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

/** POST /users/{id}/webhook-secret (coord_api_webhook.c).  Database thread. */
void coord_api_webhook_secret(struct coord_store *s, struct coord_req *r);

/** GET /jobs/{id}/deliveries (coord_api_webhook.c).  Database thread. */
void coord_api_webhook_deliveries(struct coord_store *s, struct coord_req *r);

#endif
