/*
 * coord_dash: the dashboard hub behind "cacheout.dashboard.v1" (proto/DASHBOARD.md).  One hub
 * per vhost fans the coordinator's change feed (coord_events) and the agents' job output out to
 * every connected dashboard session:
 *
 *   publish(kind, id)   -> the id joins a "dirty" set (deduplicated; nothing happens while no
 *                          dashboard is connected)
 *   one batch at a time -> a database READ item loads every dirty object once and renders its
 *                          event JSON once (off the loop); changes that arrive while a batch is
 *                          in flight, or within DASHBOARD_BATCH_MS of the last batch start,
 *                          coalesce into the next one
 *   batch done          -> each event becomes one shared, reference-counted message; every
 *                          session's bounded queue gets a reference and the session's next `seq`
 *
 * The `seq` of an event is per session, so it is not part of the shared text: the text is kept
 * in two halves around the number, which is put in when the message is written (one copy into
 * a scratch buffer with LWS_PRE headroom, never a re-encoding).  A busy session gets several
 * frames per write.
 *
 * Cost control: the time spent fanning out is measured; above 5% of the loop the batch interval
 * grows (up to 5 s).  A batch with more changed jobs than a snapshot holds is not sent: its job
 * events are numbered for every session (a gap), clients resync, and one shared snapshot
 * replaces them.
 *
 * Snapshots are built on a database thread (jobs and workers rendered there, health and pricing
 * added on the loop); sessions that ask while a build is in flight wait for the next one, so a
 * snapshot never predates the request.  A session's snapshot takes the place of a placeholder
 * queued at request time: it carries the seq of the last event assigned before the request, and
 * the events assigned after it follow it in the queue.
 *
 * Slow consumers: a full queue (messages or bytes) drops the event for that session but still
 * numbers it (the client sees a gap and asks for a resync); a session full for too long or with
 * too many drops is closed with 4000.
 *
 * Thread: everything here runs on the lws service thread, except the loads and renders of
 * batches and snapshots (database READ items).  Life cycle: coord_dash_ws creates the hub at
 * PROTOCOL_INIT and frees it at PROTOCOL_DESTROY; a database item still in flight then keeps
 * the memory until its completion.  Jobs, workers, credits, pricing and health are written by
 * coord_render, so they read the same as in the REST answers.
 */
#ifndef COORD_DASH_H
#define COORD_DASH_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord_auth.h"
#include "coord_config.h"
#include "coord_render.h"

struct coord_dash;
struct coord_db;
struct coord_events;
struct coord_limits;
struct coord_metrics;
struct dash_msg;

/* Limits (DASHBOARD.md); the environment variables in coord_dash_new() override them. */
#define COORD_DASH_QUEUE_MSGS 1024
#define COORD_DASH_QUEUE_BYTES (4 << 20)
#define COORD_DASH_SLOW_CLOSE_MS 10000
#define COORD_DASH_MAX_DROPS 10000
#define COORD_DASH_PING_MS 30000
#define COORD_DASH_PONG_TIMEOUT_MS 60000
#define COORD_DASH_RX_MAX 4096
#define COORD_DASH_MAX_BAD 10
#define COORD_DASH_MAX_BAD_TOKENS 5
#define COORD_DASH_OUTPUT_CHUNK 16384
#define COORD_DASH_BATCH_MS 100 /* changes are loaded and sent at most this often */

/* Close codes of DASHBOARD.md. */
#define COORD_DASH_CLOSE_SLOW 4000

struct dash_qent {
    struct dash_msg *m; /* NULL: the placeholder of a snapshot being built */
    uint64_t seq;
};

/**
 * One dashboard session (the lws per-session data, zeroed by lws).  Owned by the hub from
 * coord_dash_open() to coord_dash_close(); fields are private to coord_dash.c.
 */
struct coord_dash_sess {
    struct lws *wsi;
    struct coord_dash_sess *prev, *next;
    bool admin;               /* admin session (admin token, or a key with the admin scope) */
    struct coord_principal p; /* who the session acts for (anonymous: cred NONE) */
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* the accepted key's hash, for re-checks */
    char peer[64];                         /* the client's address (failed-auth throttle) */
    uint64_t id;                           /* hub-unique, for database completions */
    uint64_t auth_no;  /* numbers key lookups; a completion for an older one is ignored */
    bool auth_first;   /* the upgrade's key is being looked up: the snapshot waits for it */
    int auth_inflight; /* key lookups of this session in flight */
    bool auth_stale;   /* a key or user changed while a lookup was in flight */
    bool open;         /* between coord_dash_open and coord_dash_close */
    bool snap_wait;    /* a placeholder waits for a snapshot build */
    bool ping_due;     /* write a ping at the next WRITEABLE */
    bool want_write;   /* lws_callback_on_writable asked and not yet served */
    int close_code;    /* != 0: close with this code at the next WRITEABLE */
    char close_reason[32];
    uint64_t snap_gen; /* the build generation the placeholder waits for */
    uint64_t seq;      /* the last seq assigned to this session */
    struct dash_qent *q;
    size_t q_cap, q_head, q_len, q_bytes;
    uint64_t q_popped;     /* entries written so far (absolute index of the head) */
    uint64_t health_abs;   /* absolute index + 1 of an unsent health.updated, 0 = none */
    int64_t full_since_ms; /* monotonic ms when the queue became full (0 = not full) */
    uint64_t dropped;
    int64_t last_pong_ms, last_ping_ms;
    int bad_msgs, bad_tokens;
    char *rx;
    size_t rx_len;
};

/**
 * What the dashboards use of the coordinator, given by coord_server at start (it owns every
 * pointer, and the structure, until the context is destroyed).
 */
struct coord_dash_env {
    const struct coord_config *cfg;
    struct coord_db *db;                  /* snapshots, batches and key lookups are READ items */
    struct coord_events *events;          /* the change feed the hub subscribes to */
    struct coord_limits *limits;          /* failed-auth throttle; NULL: none */
    struct coord_metrics *metrics;        /* dashboards_connected */
    const struct coord_render_node *node; /* health as GET /api/v1/health renders it */
};

/**
 * A new hub for @env (borrowed, see struct coord_dash_env) serving @ctx.  Subscribes to
 * the change feed.  Reads DASHBOARD_QUEUE_MESSAGES, DASHBOARD_QUEUE_BYTES,
 * DASHBOARD_SLOW_CLOSE_SECONDS and DASHBOARD_BATCH_MS from the environment (invalid values are
 * logged and ignored). Caller-owned: coord_dash_free.
 */
struct coord_dash *coord_dash_new(const struct coord_dash_env *env, struct lws_context *ctx);

/**
 * Stop the hub: unsubscribe, cancel its timer.  The memory is freed now, or by the last
 * database completion still in flight (those then do nothing).  NULL is fine.
 */
void coord_dash_free(struct coord_dash *d);

/** Ask for agent output (job.output) from @vhost's agent hub if it exists and was not yet. */
void coord_dash_attach_agents(struct coord_dash *d, struct lws_vhost *vhost);

/**
 * ESTABLISHED: register @s (the session's pss, @admin from the upgrade) and ask a snapshot.  With
 * @key_hash (an upgrade's bearer key, "" without), the key is looked up first (database thread)
 * and the snapshot is the view of its user; @peer is the client's address.
 */
void coord_dash_open(struct coord_dash *d, struct coord_dash_sess *s, struct lws *wsi, bool admin,
                     const char *key_hash, const char *peer);

/** CLOSED: forget @s and free what it holds (safe if never opened). */
void coord_dash_close(struct coord_dash *d, struct coord_dash_sess *s);

/** SERVER_WRITEABLE: write at most one frame.  Returns -1 to close the connection. */
int coord_dash_writeable(struct coord_dash *d, struct coord_dash_sess *s);

/**
 * RECEIVE: append a fragment and handle complete messages (auth, resync).  Returns -1 to close
 * (the close code and reason are set on the wsi).
 */
int coord_dash_receive(struct coord_dash *d, struct coord_dash_sess *s, const void *in, size_t len);

/** RECEIVE_PONG: the client is alive. */
void coord_dash_pong(struct coord_dash_sess *s);

/** Sessions connected now. */
size_t coord_dash_sessions(const struct coord_dash *d);

#endif
