/*
 * coord_agent: the coordinator side of the agent protocol "cacheout.agent.v1" (proto/PROTOCOL.md)
 * on GET /ws/agent.  One session per agent connection: hello (token, worker id, owner, cores,
 * RAM, images, jobs still running) -> welcome (heartbeat interval, lease timeout); then
 * heartbeats, and job.accepted/rejected/started/output/finished for the jobs the scheduler
 * (coord_sched.h) pushed with job.assign.  Every message about a job carries (job_id, attempt):
 * the store fences stale attempts (CO_E_CONFLICT), which are logged at debug level and dropped.
 *
 * The state under the protocol (struct coord_agents, "the hub": sessions, job and worker indexes,
 * write lanes; coord_hub.h) is created by coord_agent_callback() on LWS_CALLBACK_PROTOCOL_INIT
 * from the struct coord_agent_env given as the protocol entry's `user` (its cfg, db, events,
 * metrics and limits are borrowed), with the scheduler, the lease reaper and reconciliation on
 * it, kept in the protocol's per-vhost storage, and stopped on LWS_CALLBACK_PROTOCOL_DESTROY
 * (freed once its database items in flight completed).  The protocol's files are listed in
 * coord_agent.c.  Wiring is one protocol entry (coord_agent_ws_protocol):
 *
 *   { PROTO_AGENT_SUBPROTOCOL, coord_agent_callback, COORD_AGENT_PSS_SIZE, 65536, 0, &env, 0 }
 *
 * (or a stub handler that forwards every reason to coord_agent_callback()).  Everything here runs
 * on the lws service thread; database work goes through coord_db.
 */
#ifndef COORD_AGENT_H
#define COORD_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "coord_auth.h"

struct coord_agents;
struct agent_sess;
struct coord_config;
struct coord_db;
struct coord_events;
struct coord_limits;
struct coord_metrics;

/**
 * What the agent protocol uses of the server, borrowed for the protocol's life; the server
 * (coord_server) owns it and gives it as the protocol entry's `user`.
 */
struct coord_agent_env {
    const struct coord_config *cfg;
    struct coord_db *db;
    struct coord_events *events;   /* the change feed the hub subscribes to */
    struct coord_metrics *metrics; /* agents connected, the longest agent callback */
    struct coord_limits *limits;   /* failed-auth throttle; NULL: none */
};

/** Per-session data of the protocol (lws allocates and zeroes it). */
struct coord_agent_pss {
    struct agent_sess *s;
    /* The credential of the upgrade request (set in FILTER_PROTOCOL_CONNECTION). */
    bool agent_token;                      /* a valid X-Agent-Token header */
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* coord_auth_hash of an Authorization: Bearer key */
    char peer[64];                         /* the client's address */
};
#define COORD_AGENT_PSS_SIZE sizeof(struct coord_agent_pss)

/**
 * The lws callback of protocol "cacheout.agent.v1".  Handles PROTOCOL_INIT/DESTROY (hub life),
 * FILTER_PROTOCOL_CONNECTION (path /ws/agent; a wrong X-Agent-Token header gets a real 401; an
 * `Authorization: Bearer` key is kept as its hash), ESTABLISHED, RECEIVE, SERVER_WRITEABLE and
 * CLOSED.  The credential is decided at hello (a key is looked up on a database thread with the
 * hello's write): a wrong hello token closes with PROTO_CLOSE_UNAUTHORIZED; no credential (unless
 * OPEN_REGISTRATION), or a key that is unknown, revoked or of a disabled user, with
 * PROTO_CLOSE_KEY_REJECTED; a key without the sell scope, an owner_id other than the key's user
 * or a worker id registered to another user, with PROTO_CLOSE_FORBIDDEN.  Agents of the shared
 * AGENT_TOKEN are owned by AGENT_TOKEN_OWNER.  A revoked key or a disabled user (the change feed's
 * COORD_EVENT_KEY / COORD_EVENT_USER) closes its sessions with PROTO_CLOSE_KEY_REJECTED.  Other
 * reasons go to lws_callback_http_dummy().
 */
int coord_agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len);

/** The hub of @vhost's agent protocol, or NULL before PROTOCOL_INIT (borrowed). */
struct coord_agents *coord_agents_of_vhost(struct lws_vhost *vhost);

/* Output per job and stream that is forwarded to listeners (the store keeps the same cap). */
#define COORD_AGENT_OUTPUT_CAP (1024 * 1024)

/**
 * An output listener (dashboards): called on the lws thread for every job.output chunk of a
 * job (bought by @buyer_id) in its
 * current attempt, before it is stored.  @stream is 1 (stdout) or 2 (stderr); @offset is the byte
 * offset of the chunk in that stream of this attempt; @data (@len bytes, any bytes, not
 * NUL-terminated for listeners' purposes) is borrowed for the call.  Output beyond
 * COORD_AGENT_OUTPUT_CAP per stream is not forwarded (it is not stored either).
 */
typedef void (*coord_agent_output_fn)(void *ud, const char *job_id, const char *buyer_id,
                                      int attempt, int stream, uint64_t offset, const char *data,
                                      size_t len);

/** Add an output listener (lws thread).  @ud is borrowed until the hub is freed. */
void coord_agents_output_subscribe(struct coord_agents *hub, coord_agent_output_fn fn, void *ud);

/** Agents connected and welcomed right now. */
size_t coord_agents_connected(const struct coord_agents *hub);

#endif
