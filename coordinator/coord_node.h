/*
 * coord_node: this coordinator as one node of several on one database.
 *
 * - Its node id: random, chosen once at start (coord_node_init), recorded with every worker
 *   session it holds (worker_registrations.session_node, with session_epoch incremented at each
 *   accepted hello and at each poll worker's POST /register, which leaves the node empty) and
 *   with every change it publishes to the feed (event_outbox.origin).
 * - The SQLite instance lock: SQLite is single-node; a second coordinator on the same file is
 *   refused at start (an exclusive fcntl lock on "<file>.lock", held for the process lifetime).
 *
 * Thread: coord_node_init and coord_node_instance_lock run once in main before anything else;
 * coord_node_id is read-only afterwards (any thread).
 */
#ifndef COORD_NODE_H
#define COORD_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"

/** Length of a node id: 16 hexadecimal digits. */
#define COORD_NODE_ID_LEN 16

/** Choose this process's node id (once, before any other thread starts). */
void coord_node_init(void);

/** This process's node id ("" before coord_node_init). */
const char *coord_node_id(void);

/**
 * For a SQLite DATABASE_URL (NULL, "", "sqlite:///...", a bare path): take the instance lock on
 * "<file>.lock" and keep it until the process exits.  A PostgreSQL URL needs no lock (returns 0).
 * CO_E_CONFLICT with a message naming the file when another coordinator holds it.
 */
int coord_node_instance_lock(const char *database_url, co_err *err)
    __attribute__((warn_unused_result));

struct coord_store;

/**
 * Fencing (database thread): may the session of @worker_id with epoch @epoch held by this node
 * still write?  0 when it is the worker's current session (or @epoch is 0: no agent session,
 * e.g. a poll worker); CO_E_CONFLICT with err->field "session" (coord_node_fenced) when a newer
 * hello moved the session (to another node, or to a newer connection here).  @lock keeps the
 * worker's row locked until the transaction ends (assignments: no hello can move the session
 * between the check and the claim).
 */
int coord_node_fence(struct coord_store *store, const char *worker_id, int64_t epoch, bool lock,
                     co_err *err) __attribute__((warn_unused_result));

/** True when @err is a refusal of coord_node_fence or coord_node_poll_fence. */
bool coord_node_fenced(const co_err *err);

/*
 * Poll workers (POST /register, GET /task, POST /status, POST /unregister) hold a worker's
 * session too, as a "poll session": session_node "" with its own epoch.  Whoever registered last
 * holds the worker: a POST /register takes it from an agent session, an agent's hello takes it
 * back.
 */

/**
 * A POST /register of @worker_id (database thread, in the registration's transaction): the
 * worker's session becomes a poll session (a new epoch, no node), so that an agent session of it,
 * on this node or another, is fenced off from then on.  CO_E_NOTFOUND if unknown.
 */
int coord_node_poll_take(struct coord_store *store, const char *worker_id, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Fencing of the other poll routes (GET /task, POST /status, POST /unregister; database thread,
 * first in the route's transaction): 0 when no agent session holds @worker_id; CO_E_CONFLICT
 * with err->field "session" when one does (an agent's hello, on any node, since the worker's last
 * POST /register).  The worker's row stays locked until the transaction ends, so that no hello
 * takes the worker between the check and the route's writes.  CO_E_NOTFOUND if unknown.
 */
int coord_node_poll_fence(struct coord_store *store, const char *worker_id, co_err *err)
    __attribute__((warn_unused_result));

#endif
