/*
 * coord_feed: the change feed between coordinator nodes that share one PostgreSQL database.
 *
 * Every change to jobs, their output, workers, balances, users and API keys is written as a
 * row of `event_outbox` by the changing transaction itself (migration 0013's triggers, with the
 * session's `cacheout.node` as its origin), followed by pg_notify('cacheout_events') in that
 * transaction; a node's own subscribers get its changes at once from coord_events_publish, as
 * on a single node.  Each node's feed thread holds one connection that LISTENs on that
 * channel; on a notification (and once a second in any case) it reads the new rows and hands
 * the changes of other origins (other nodes, or any other session: an operator's psql) to the
 * lws thread (a locked queue + lws_cancel_service), where coord_feed_drain publishes them with
 * coord_events_publish_remote: dashboards, agent session cancels and scheduler wake-ups then
 * see every node's changes.  A node never gets its own changes twice (it skips rows of its
 * origin), and a node that dies right after a commit has written its change already.
 *
 * Order without a lock among writers: each row carries its transaction's id; a reading round
 * takes the rows after its cursor, in (txid, seq) order, whose transaction is below the oldest
 * one still open (pg_snapshot_xmin): those have all ended, so no row can appear there later.
 * The rows of ended transactions above that horizon (behind one left open) are delivered at
 * once too, and remembered until the cursor passes them, so an open transaction delays
 * nothing.  A lost connection is reconnected (with back-off) and the reader resumes from its
 * cursor: no gaps.  Rows older than COORD_FEED_KEEP_S are deleted (once a minute, by
 * whichever node gets there).
 *
 * Every statement runs asynchronously with a deadline (COORD_FEED_STMT_TIMEOUT_MS): a database
 * that stops answering (a network partition) counts as a lost connection.
 *
 * SQLite: no feed (coord_feed_start returns NULL): one coordinator, coord_events in-process.
 *
 * Threads: coord_feed_start, coord_feed_drain and coord_feed_stop on the lws thread; the rest
 * on the feed's own thread.  Life cycle: coord_server_run() starts it once the lws context
 * exists and stops it at shutdown (joining the thread), before destroying the context.
 */
#ifndef COORD_FEED_H
#define COORD_FEED_H

#include <stdint.h>

#include "co_err.h"

struct lws_context;
struct coord_events;
struct coord_feed;

/* How long outbox rows are kept, in seconds. */
#define COORD_FEED_KEEP_S 600
/* Longest wait for one statement of the feed connection. */
#define COORD_FEED_STMT_TIMEOUT_MS 10000

/**
 * Start the feed for @database_url (borrowed until coord_feed_stop): for PostgreSQL, start the
 * thread that publishes other origins' changes into @ev; *@out is NULL for SQLite.  The thread
 * connects by itself (a database down at start is retried).
 */
int coord_feed_start(const char *database_url, struct lws_context *ctx, struct coord_events *ev,
                     struct coord_feed **out, co_err *err) __attribute__((warn_unused_result));

/** Publish the other nodes' changes received so far (lws thread; NULL is fine). */
void coord_feed_drain(struct coord_feed *f);

/** Counters for the log and tests: changes received from other origins. */
struct coord_feed_stats {
    uint64_t received;
    uint64_t reconnects;
    uint64_t last_seq;
};
void coord_feed_stats(struct coord_feed *f, struct coord_feed_stats *out);

/** Stop the thread, free (NULL is fine). */
void coord_feed_stop(struct coord_feed *f);

#endif
