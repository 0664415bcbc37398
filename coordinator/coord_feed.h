/*
 * coord_feed: the change feed between coordinator nodes that share one PostgreSQL database.
 *
 * Every change a node publishes (coord_events_publish: jobs, workers, credits, keys, users) is
 * delivered at once to the node's own subscribers, as on a single node, and handed to the feed
 * (the coord_events tap), which writes it as a row of `event_outbox` (migration 0009) with the
 * node's id as its origin, followed by pg_notify('cacheout_events') in the same transaction.
 * Each node's feed thread holds one connection that LISTENs on that channel; on a notification
 * (and once a second in any case) it reads the rows above the last sequence it saw, in order,
 * and hands the other nodes' changes to the lws thread (a locked queue + lws_cancel_service),
 * where coord_feed_drain publishes them with coord_events_publish_remote: dashboards, agent
 * session cancels and scheduler wake-ups then see every node's changes.  A node never gets its
 * own changes twice (it skips rows of its origin).
 *
 * Order: writers take a transaction-level advisory lock before inserting, so that sequence order
 * is commit order and "rows above the last one seen" never skips a row committed later with a
 * lower number.  A lost connection is reconnected (with back-off) and the reader resumes from
 * the last sequence it saw: no gaps.  Changes published while the database cannot be reached
 * wait in memory (up to a bound) and are written once it is back.  Rows older than
 * COORD_FEED_KEEP_S are deleted (once a minute, by whichever node gets there).
 *
 * Every statement runs asynchronously with a deadline (COORD_FEED_STMT_TIMEOUT_MS): a database
 * that stops answering (a network partition) counts as a lost connection.
 *
 * SQLite: no feed (coord_feed_start returns NULL): one coordinator, coord_events in-process.
 *
 * Threads: coord_feed_start, coord_feed_drain and coord_feed_stop on the lws thread; the tap on
 * the lws thread; the rest on the feed's own thread.
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
 * Start the feed for @database_url (borrowed until coord_feed_stop): for PostgreSQL, set the tap
 * of @ev and start the thread; *@out is NULL for SQLite.  The thread connects by itself (a
 * database down at start is retried).
 */
int coord_feed_start(const char *database_url, struct lws_context *ctx, struct coord_events *ev,
                     struct coord_feed **out, co_err *err) __attribute__((warn_unused_result));

/** Publish the other nodes' changes received so far (lws thread; NULL is fine). */
void coord_feed_drain(struct coord_feed *f);

/** Counters for the log and tests: changes written, changes received from other nodes. */
struct coord_feed_stats {
    uint64_t written;
    uint64_t received;
    uint64_t reconnects;
    uint64_t last_seq;
};
void coord_feed_stats(struct coord_feed *f, struct coord_feed_stats *out);

/** Clear the tap, stop the thread (changes not yet written are dropped), free (NULL is fine). */
void coord_feed_stop(struct coord_feed *f);

#endif
