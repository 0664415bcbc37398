/*
 * coord_reconcile: every few seconds (half the lease, 0.5 to 5 s) the jobs that the store gives
 * to workers are compared with what the sessions of this coordinator hold:
 *  - a job the store gives to a connected worker whose session does not hold that attempt goes
 *    back to the queue without using up an attempt (coord_store_job_requeue_free);
 *  - an attempt a session holds that the store does not give to that worker is cancelled
 *    (job.cancel to the agent);
 *  - a job running longer than timeout_seconds + TIMEOUT_GRACE_SECONDS is failed as `timeout`
 *    and its agent told to stop.
 * A mismatch is acted on only when two consecutive rounds see it, so that a claim, a start or a
 * finish in flight between the store read and the comparison is never mistaken for one.  Store
 * calls go through coord_db; everything else runs on the lws service thread.  Owned by the agent
 * hub (coord_agent.c).
 */
#ifndef COORD_RECONCILE_H
#define COORD_RECONCILE_H

#include <stdint.h>

struct coord_agents;
struct coord_reconcile;

/** Start the rounds for the sessions of @hub (borrowed; the hub owns the result). */
struct coord_reconcile *coord_reconcile_new(struct coord_agents *hub);

/** Stop the rounds and free (NULL is fine).  A round in flight completes harmlessly. */
void coord_reconcile_free(struct coord_reconcile *rc);

/** Counters for logs and tests. */
struct coord_reconcile_stats {
    uint64_t rounds, requeued, cancelled, timed_out;
};
void coord_reconcile_stats(const struct coord_reconcile *rc, struct coord_reconcile_stats *out);

#endif
