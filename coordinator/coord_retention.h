/*
 * coord_retention: RETENTION_DAYS.  For jobs finished longer ago than that, the code, the stored
 * output and the artifacts are removed (job rows and the ledger stay); workers silent for that
 * long that no job row names are deleted; expired idempotency keys are purged.
 *
 * It runs every RETENTION_INTERVAL_SECONDS (first RETENTION_FIRST_DELAY_MS after start) as a
 * chain of small work items on the database write lane: each is one transaction of at most
 * RETENTION_BATCH rows of each kind (coord_store_retention_step), and the next one is queued only
 * when the previous one finished, so other writes run in between and nothing holds the store for
 * long.  POST /api/v1/debug/retention (admin) runs it at once with a given cutoff (tests).
 *
 * Threads: coord_retention_start/stop on the lws thread; coord_retention_run on a database
 * thread.  Life cycle: coord_server_run() starts it once the lws context exists and stops it at
 * shutdown; a step still in flight then frees it from its completion.
 */
#ifndef COORD_RETENTION_H
#define COORD_RETENTION_H

#include <stdint.h>

#include "co_err.h"
#include "coord_db.h"
#include "coord_store.h"

struct lws_context;
struct coord_retention;

#define COORD_RETENTION_FIRST_DELAY_MS 10000

/**
 * Start the periodic runs: data older than @retention_ms, every @interval_ms, @batch rows per
 * transaction.  @ctx and @db are borrowed and must outlive coord_retention_stop().
 */
struct coord_retention *coord_retention_start(struct lws_context *ctx, struct coord_db *db,
                                              int64_t retention_ms, int64_t interval_ms,
                                              int64_t batch);

/** Stop the timer; a step still in flight frees the state when it completes (NULL is fine). */
void coord_retention_stop(struct coord_retention *rt);

/**
 * Run retention to the end with cutoff @cutoff_ms (a database thread), @batch rows per
 * transaction; the rows changed are added up in @total.
 */
int coord_retention_run(struct coord_store *s, int64_t cutoff_ms, int64_t batch,
                        struct coord_retention_counts *total, co_err *err)
    __attribute__((warn_unused_result));

#endif
