/*
 * coord_verify: replicated execution (API.md "Verified results, reputation, pricing";
 * coordinator/README.md "Replicas").
 *
 * A job submitted with replicas R > 1 is a parent: it holds R x the unit cost and is never placed
 * itself.  Each replica is an ordinary job row (parent_job_id set, cost 0) that agents run like
 * any job (claim, attempts, leases, output, artifacts, result).  Replicas of one parent are
 * claimed by workers of distinct owners (table job_replica_owner, checked in the claim's
 * transaction).  When a replica ends, the store's settlement calls coord_verify_settle() in the
 * same transaction: the replica's digest is computed from what the store holds, and once every
 * replica of the parent has ended a majority (floor(R/2)+1 equal digests) decides; without one a
 * tie-break replica runs (at most 2), else the parent fails `unverified`.
 *
 * Pure functions (digest, decision, settlement plan): any thread.  Store steps: database threads,
 * inside the store's transaction when so documented.  Writers: any thread.  No state of its
 * own: everything it keeps is in the store's tables.
 */
#ifndef COORD_VERIFY_H
#define COORD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_err.h"

struct co_jsonw;
struct coord_job;
struct coord_job_list;
struct coord_store;

#define COORD_VERIFY_REPLICAS_MAX 5
#define COORD_VERIFY_TIEBREAKS_MAX 2
/* Replica rows a parent can have: its replicas and the tie-breaks. */
#define COORD_VERIFY_RUNS_MAX (COORD_VERIFY_REPLICAS_MAX + COORD_VERIFY_TIEBREAKS_MAX)

/* ---- pure ---- */

/** Results that must agree: floor(@replicas / 2) + 1. */
int coord_verify_majority(int replicas);

/** What a replica left, as stored (all borrowed). */
struct coord_verify_result {
    bool has_exit_code;
    int exit_code;
    const char *failure; /* coord_failure_name(): NULL when completed */
    const char *out;     /* stdout as stored */
    size_t out_len;
    size_t n_artifacts;
    const char *const *paths; /* artifact paths, any order */
    const char *const *sha256s;
};

/**
 * The result digest: hex SHA-256 over the byte layout of the README ("Replicas"):
 * "cacheout-result-v1\n", "exit:<n|none>\n", "failure:<name|none>\n", "stdout:<len>\n<bytes>\n",
 * "artifacts:<n>\n", then per artifact in byte order of path "<len>:<path> <sha256>\n".
 */
void coord_verify_digest(const struct coord_verify_result *r, char hex[65]);

enum coord_verify_step {
    COORD_VERIFY_WAIT = 0,   /* replicas still run */
    COORD_VERIFY_AGREED,     /* a majority agrees: *winner is one of its rows */
    COORD_VERIFY_TIEBREAK,   /* start one tie-break replica */
    COORD_VERIFY_UNVERIFIED, /* no majority can form */
};

/**
 * Decide from the @n replica rows of a parent of @replicas: @digests[i] NULL for a row with no
 * result (void or still running), @open[i] true while row i runs, @tiebreaks how many tie-break
 * rows exist.  Waits while any row is open.
 */
enum coord_verify_step coord_verify_decide(int replicas, size_t n, const char *const *digests,
                                           const bool *open, int tiebreaks, size_t *winner);

/** The money of one decided replicated job. */
struct coord_verify_plan {
    int64_t pay[COORD_VERIFY_RUNS_MAX]; /* per row: the payout to its seller */
    int64_t fee[COORD_VERIFY_RUNS_MAX]; /* per row: the platform's fee on that row's charge */
    int64_t charge;                     /* what the buyer pays: the sum of pay[] and fee[] */
    int64_t refund;                     /* hold - charge */
};

/**
 * The settlement of a decided replicated job whose replicas cost different amounts (pricing):
 * every row in @agrees is charged @due[i] (what its own run costs under the job's pricing,
 * coord_price), in row order as long as @hold lasts; of each row's charge,
 * floor(charge x @fee_percent / 100) goes to the platform and the rest to its seller.  A row
 * that does not agree is charged nothing; the buyer is refunded the rest of @hold.
 * CO_E_INVAL for bad counts, a negative hold or due, a fee outside 0-100.
 */
int coord_verify_settle_due(int64_t hold, size_t n, const bool *agrees, const int64_t *due,
                            int64_t fee_percent, struct coord_verify_plan *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The per-replica settlement, in one place so that pricing can change the unit: every row in
 * @agrees is paid @unit, in row order, as long as the hold (@unit x @replicas) lasts; a row that
 * does not agree (mismatch, void, or all rows of an unverified job) is paid nothing, and what it
 * would have cost pays the tie-breaks; the buyer is charged the payouts and refunded the rest.
 * No fee (coord_verify_settle_due with every due @unit and fee 0).
 * CO_E_RANGE when the hold overflows, CO_E_INVAL for bad counts.
 */
int coord_verify_settle_plan(int64_t unit, int replicas, size_t n, const bool *agrees,
                             struct coord_verify_plan *out, co_err *err)
    __attribute__((warn_unused_result));

/* ---- store steps (database threads) ---- */

/**
 * Submit, inside its transaction: record @parent->replicas and create its replica rows.
 */
int coord_verify_spawn(struct coord_store *s, const struct coord_job *parent, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Claim of replica @child by @worker_id, inside its transaction: CO_E_CONFLICT when the worker's
 * owner already ran a replica of the parent; else records the owner and marks the parent running.
 */
int coord_verify_claimed(struct coord_store *s, const struct coord_job *child,
                         const char *worker_id, int64_t now, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Cancel of @job_id, inside its transaction and before it locks the job: lock its open replicas
 * (none for an ordinary job), so that a cancel and a replica's result lock in the same order.
 */
int coord_verify_lock_replicas(struct coord_store *s, const char *job_id, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The store settles @j, inside its transaction, after setting its final state.  A replica: its
 * digest (when @result and it was not cancelled) or void, then the parent's decision (payouts,
 * refund, the majority's output copied to the parent, a tie-break).  A parent (cancel): the
 * whole hold refunded and its open replicas cancelled.
 */
int coord_verify_settle(struct coord_store *s, const struct coord_job *j, bool result, int64_t now,
                        co_err *err) __attribute__((warn_unused_result));

/** job_get/list: fill @j->verification and @j->verify_waiting of a parent. */
int coord_verify_load_view(struct coord_store *s, struct coord_job *j, co_err *err)
    __attribute__((warn_unused_result));

/** The scheduler's read: fill avoid_owners of the replicas in @l (one read). */
int coord_verify_load_avoid(struct coord_store *s, struct coord_job_list *l, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Placement of a replica of @parent_id on a worker of @owner (planned or read): the other
 * replicas of that parent in @l may no longer use @owner (their avoid_owners grow).
 */
void coord_verify_avoid_add(const struct coord_job_list *l, const char *parent_id,
                            const char *owner);

/** The replica job ids of @parent_id (caller frees each and the array). */
int coord_verify_children(struct coord_store *s, const char *parent_id, char ***ids, size_t *n,
                          co_err *err) __attribute__((warn_unused_result));

/** The invariant's part for replicated jobs (coord_store_check_invariant). */
int coord_verify_check_invariant(struct coord_store *s, co_err *err)
    __attribute__((warn_unused_result));

/* ---- rendering and placement (any thread) ---- */

/** May a worker of @owner_id run @j?  False for a replica whose parent used that owner. */
bool coord_verify_owner_ok(const struct coord_job *j, const char *owner_id);

/** "replicas" and "verification" (null for replicas 1): the owner/admin view only. */
void coord_verify_write_fields(struct co_jsonw *w, const struct coord_job *j);

/** pending_reason waiting_for_distinct_owner when @j waits for one; true if written. */
bool coord_verify_write_pending_reason(struct co_jsonw *w, const struct coord_job *j);

#endif
