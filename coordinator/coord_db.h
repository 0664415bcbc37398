/*
 * coord_db: the database executor.  Worker threads, each owning one coord_store connection, run
 * work items taken from per-lane queues; finished items are handed back to the lws service
 * thread (lws_cancel_service) and their completion runs there, in
 * coord_db_drain_completions(), which exactly one protocol calls from
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED.  The loop is woken once per batch: a completion that
 * finishes while an earlier wake-up is not yet drained sends none (the drain takes the whole
 * list).  Nothing that touches the database runs on the lws thread.
 *
 * Lanes: COORD_DB_WRITE items change state (SQLite: one writer thread, so writers never fight
 * over the database lock); COORD_DB_READ items only read and run on their own threads in
 * parallel.  Any module (HTTP API, scheduler, agent sessions, dashboard) may submit work.
 *
 * Group commit: COORD_DB_WRITE_GROUP items are writes (the REST API's) that may share one
 * transaction with the COORD_DB_WRITE_GROUP items queued right behind them, on SQLite (one
 * writer thread, no row locks; at most group_max per group).  The writer thread opens the group's
 * transaction, runs each item's work inside a savepoint of its own (a batch the work opens nests
 * as a savepoint inside it), and COMMITs once when no grouped item is next in the queue; the
 * completions of the group run after that COMMIT.  An item's own failure stays its own (a failed
 * store call rolls back only itself; coord_db_group_discard() rolls back all the item did).  If
 * the COMMIT fails, or the transaction is lost on the way, nothing of the group is kept and every
 * item's failure answer (coord_db_group_on_fail, which its work must register) runs on the
 * writer thread before its completion.  The work of a grouped item must not act on what it wrote
 * outside its completion.  On PostgreSQL (several writer threads, row locks held to the COMMIT:
 * two groups could take two rows in opposite orders and deadlock) COORD_DB_WRITE_GROUP is
 * COORD_DB_WRITE: each item runs alone, coord_db_group_on_fail() says so and does nothing.
 *
 * Threads: work functions on the executor's own threads; completions on the lws service thread;
 * coord_db_submit from any thread (the lws thread, the webhook delivery thread).  Life cycle:
 * main() starts it (coord_db_start: one store per thread) once the migrations ran, before
 * coord_server_run(), and stops it after that returned (coord_db_stop: the threads run what is
 * queued and exit, the completions left run on the caller, the stores are closed).
 */
#ifndef COORD_DB_H
#define COORD_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"
#include "coord_store.h"

struct lws_context;
struct coord_db;

enum coord_db_lane { COORD_DB_WRITE = 0, COORD_DB_READ, COORD_DB_WRITE_GROUP };

/** Runs on a database thread with that thread's store. */
typedef void (*coord_db_work_fn)(struct coord_store *store, void *arg);
/** Runs on the lws service thread after the work (may be NULL). */
typedef void (*coord_db_done_fn)(void *arg);
/**
 * A grouped item's failure answer: its group did not commit (@err: CO_E_UNAVAILABLE), nothing it
 * wrote was kept.  Runs on the writer thread, before the item's completion.
 */
typedef void (*coord_db_fail_fn)(void *arg, const co_err *err);

struct coord_db_options {
    const struct coord_store_config *store; /* copied by each coord_store_open */
    int writers;                            /* threads on the write lane (>= 1) */
    int readers;                            /* threads on the read lane (>= 1) */
    int max_queue;                          /* per lane; submit fails beyond (0 = 10000) */
    int group_max; /* COORD_DB_WRITE_GROUP items per transaction on SQLite (0 = 32, 1 = none) */
};

/**
 * Open one store per thread and start the threads.  @ctx receives lws_cancel_service wake-ups
 * (may be set later with coord_db_set_context).  Errors: a store cannot be opened.
 */
int coord_db_start(const struct coord_db_options *opt, struct coord_db **out, co_err *err)
    __attribute__((warn_unused_result));

/** Set the lws context to wake (call before the first submit that needs a completion). */
void coord_db_set_context(struct coord_db *db, struct lws_context *ctx);

/** Wakes the thread that drains completions (tests; lws_cancel_service otherwise). */
typedef void (*coord_db_wake_fn)(void *arg);

/**
 * Tests: call @wake(@arg) instead of lws_cancel_service() when completions wait (set before the
 * first submit).  As with the lws context, one wake-up covers every completion that finishes
 * before the next coord_db_drain_completions().
 */
void coord_db_set_wake_hook(struct coord_db *db, coord_db_wake_fn wake, void *arg);

/** Completions that needed no wake-up of their own (one was sent and not drained yet). */
int64_t coord_db_wakes_saved(struct coord_db *db);

/**
 * Queue @work on @lane.  @arg is borrowed until @done ran (or until @work ran if @done is NULL).
 * Returns -1 (CO_E_UNAVAILABLE) if the lane is full or the executor is stopping.
 */
int coord_db_submit(struct coord_db *db, enum coord_db_lane lane, coord_db_work_fn work,
                    coord_db_done_fn done, void *arg, co_err *err)
    __attribute__((warn_unused_result));

/**
 * In the work of a COORD_DB_WRITE_GROUP item: @fail(@arg, err) answers the item if its group does
 * not commit.  Returns false (and keeps nothing) when the item runs alone (PostgreSQL, or not a
 * grouped item): its own transactions are then final when its store calls return.
 */
bool coord_db_group_on_fail(coord_db_fail_fn fail, void *arg);

/**
 * In the work of a grouped item: roll back everything the item wrote when its work returns (its
 * answer is an error), the rest of the group going on.  No-op when the item runs alone.
 */
void coord_db_group_discard(void);

/**
 * Tests: called on the writer thread before each group's COMMIT with the group's @items; a
 * return of -1 fails that COMMIT (rolled back, every item answered as when a COMMIT fails).
 */
typedef int (*coord_db_commit_hook_fn)(struct coord_store *store, int items, void *arg);
void coord_db_set_commit_hook(struct coord_db *db, coord_db_commit_hook_fn fn, void *arg);

/** Group transactions committed or failed since start, and the items they held. */
void coord_db_group_stats(struct coord_db *db, int64_t *groups, int64_t *items);

/** Run the completions of finished items (lws thread only).  Returns how many ran. */
int coord_db_drain_completions(struct coord_db *db);

/** Threads on the write lane (fixed at start). */
int coord_db_writers(const struct coord_db *db);

/** Items queued or running, over all lanes. */
int64_t coord_db_pending(struct coord_db *db);

/** Longest time one work item took, in microseconds, since start (for the log). */
int64_t coord_db_max_work_us(struct coord_db *db);

/**
 * Stop: finish every queued item, join the threads, close the stores.  Completions that were
 * not drained are run here (on the calling thread, which must be the lws thread or after it
 * stopped).  Frees @db (NULL is fine).
 */
void coord_db_stop(struct coord_db *db);

#endif
