/*
 * coord_reconcile: every few seconds (half the lease, 0.5 to 5 s) the jobs that the store gives
 * to workers are compared with what the sessions of this coordinator hold:
 *  - a job the store gives to a connected worker whose session does not hold that attempt goes
 *    back to the queue without using up an attempt (coord_store_job_requeue_free);
 *  - an attempt a session holds that the store does not give to that worker is cancelled
 *    (job.cancel to the agent);
 *  - a job handed to a poll worker (GET /task) a lease ago and never reported started (a lost
 *    answer) goes back to the queue the same way;
 *  - a job running longer than timeout_seconds + TIMEOUT_GRACE_SECONDS is failed as `timeout`
 *    and its agent told to stop;
 *  - a job.assign the agent has not answered (job.accepted or job.rejected come at once) after
 *    COORD_ASSIGN_RESEND_MS on a live connection was lost: it is sent again on the same attempt
 *    (read again with its code), up to COORD_ASSIGN_RESENDS times, after which the session lets
 *    go of the job and it goes back to the queue as above, without using up an attempt.
 * A mismatch is acted on only when two consecutive rounds see it, so that a claim, a start or a
 * finish in flight between the store read and the comparison is never mistaken for one.  Store
 * calls go through coord_db; everything else runs on the lws service thread.  It sees the sessions
 * through the hub (coord_hub.h) only; created and freed by the agent protocol (coord_agent.c) at
 * its start and stop, its timer armed from creation.
 */
#ifndef COORD_RECONCILE_H
#define COORD_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct coord_agents;
struct coord_reconcile;

#define COORD_ASSIGN_RESEND_MS 2000
#define COORD_ASSIGN_RESENDS 5

/** Start the rounds for the sessions of @hub (borrowed; the agent protocol owns the result). */
struct coord_reconcile *coord_reconcile_new(struct coord_agents *hub);

/** Stop the rounds and free (NULL is fine).  A round in flight completes harmlessly. */
void coord_reconcile_free(struct coord_reconcile *rc);

/** Counters for logs and tests. */
struct coord_reconcile_stats {
    uint64_t rounds, requeued, cancelled, timed_out;
};
void coord_reconcile_stats(const struct coord_reconcile *rc, struct coord_reconcile_stats *out);

/*
 * Quarantine: a worker with COORD_QUARANTINE_FAILURES consecutive platform-side failures
 * (job.rejected, sandbox_error) gets no assignments for QUARANTINE_SECONDS; GET /workers shows
 * it as "quarantined" with a status_reason.  The attempts those failures cost are given back
 * (the job is requeued, up to COORD_PLATFORM_ATTEMPTS_MAX attempts in all, then it fails as
 * sandbox_error).  The table is kept by this coordinator process, in memory, under a mutex.
 */
#define COORD_QUARANTINE_FAILURES 5
#define COORD_PLATFORM_ATTEMPTS_MAX 20

/**
 * Record the end of an attempt on @worker_id: a platform-side failure (@fault, described by
 * @what) or any other end, which resets the streak.  @quarantine_ms: QUARANTINE_SECONDS * 1000.
 * Returns true when this failure put the worker in quarantine.  Any thread.
 */
bool coord_quarantine_record(const char *worker_id, bool fault, const char *what,
                             int64_t quarantine_ms);

/**
 * True if @worker_id is quarantined now; writes the reason to @reason (@size bytes, may be
 * NULL).  Any thread.
 */
bool coord_quarantine_check(const char *worker_id, char *reason, size_t size);

#endif
