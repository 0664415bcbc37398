/*
 * coord_server: the coordinator's one libwebsockets context and vhost: the REST API mount
 * (/api/v1), /metrics, the dashboard's static files with SPA fallback, and the two WebSocket
 * subprotocols.  The top of the coordinator: it fills each REST request (struct coord_req,
 * coord_req.h) from the connection, has coord_api answer it on a database thread, and sends the
 * answer; at start it wires the modules below it together (the change feed, the dashboards'
 * environment, callbacks, retention).
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
#include "coord_render.h"
#include "coord_req.h"
#include "coord_store.h"

struct lws;
struct lws_context;

struct coord_dash_env;
struct coord_agent_env;

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
    /* Backend, start time, counters and the longest HTTP callback: what health shows. */
    struct coord_render_node node;
    struct coord_dash_env *dash_env;   /* owned; what the dashboards use of the server */
    struct coord_agent_env *agent_env; /* owned; what the agent protocol uses of the server */
    /* Health cache (lws thread only). */
    struct coord_health health;
    bool health_db_ok;
    bool health_valid;
    bool health_dirty;    /* a change was published since the snapshot */
    int64_t health_at_ms; /* monotonic */
    int64_t inflight;     /* requests handed to the executor, not yet answered */
    bool stopping;
    volatile sig_atomic_t *stop_flag; /* set by the signal handler */
    int max_loop_callback_reason;     /* the lws callback reason of node.max_loop_callback_us */
};

/**
 * Create the lws context on HOST:PORT and serve until *@stop_flag becomes non-zero, then finish
 * in-flight requests (up to 10 s) and destroy the context.  @db must be started; its
 * completions are drained here.  Errors: the port cannot be bound.
 */
int coord_server_run(const struct coord_config *cfg, struct coord_db *db, const char *backend,
                     volatile sig_atomic_t *stop_flag, co_err *err)
    __attribute__((warn_unused_result));

#endif
