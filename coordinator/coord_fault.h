/*
 * coord_fault: debug fault settings, for end-to-end repros of races and lost replies that a test
 * cannot otherwise bring about on purpose (tests only, never in production).
 *
 * Read once at start (main.c) from DEBUG_FAULTS, a comma-separated list of items:
 *   commit_lost:<kind>:<n>  the reply to the <n>th COMMIT of a <kind> transaction (counted from 1
 *                           over the whole process) is lost: the COMMIT is applied, then the
 *                           store call fails with CO_E_UNAVAILABLE, as when the connection breaks
 *                           after the server committed; on PostgreSQL the connection is dropped
 *                           too (the next call reconnects), as a real lost reply leaves it.  Kinds:
 *                           `claim` (a job assigned to a worker: coord_store_job_claim and
 *                           coord_store_job_claim_next).  Inside a batch (SQLite) the batch's
 *                           COMMIT is the one that "loses" its reply: every write of it is told
 *                           it failed, although all of them were applied.
 *   hello_gap_ms:<ms>       every agent hello, once its transaction listed the worker's jobs, holds
 *                           its database thread <ms> ms before the result goes back to the service
 *                           loop for the welcome: the window in which a claim may land that
 *                           neither the hello's list nor the new session knows.  The loop is not
 *                           blocked; on SQLite (one writer thread) every write waits meanwhile.
 *   claim_hold_ms:<ms>      every claim waits after its session check (coord_node_fence), inside
 *                           its transaction, until an agent's hello arrives, for <ms> ms at most:
 *                           a claim in flight while an agent reconnects, on purpose.
 * Example: DEBUG_FAULTS=commit_lost:claim:2,hello_gap_ms:1500
 *
 * A bad value stops the start (exit 2).  When set, a warning is logged at start and each fault
 * logs a line when it fires ("DEBUG_FAULTS: ...").  Unset, each hook costs one branch on a flag.
 *
 * The settings are process-wide (a static of this module, written before any thread starts,
 * read-only afterwards; the counters are atomic): the store's connections, the database threads
 * and the agent sessions all reach them without a context pointer through each layer, which a
 * debug-only setting does not justify.
 */
#ifndef COORD_FAULT_H
#define COORD_FAULT_H

#include <stdbool.h>

#include "co_err.h"

/* Transaction kinds, as bits (a batch transaction may hold several). */
enum coord_fault_tx {
    COORD_FAULT_TX_CLAIM = 1u << 0,
};

/* True when DEBUG_FAULTS armed anything (read-only after coord_fault_init). */
extern bool coord_fault_armed;

/**
 * Parse @spec (DEBUG_FAULTS; NULL or "" disarms everything) and arm its faults; logs the warning
 * when something is armed.  Call before any database thread starts.  CO_E_INVAL naming the item
 * when @spec is malformed (nothing is armed then).
 */
int coord_fault_init(const char *spec, co_err *err) __attribute__((warn_unused_result));

/**
 * After a COMMIT that succeeded, of a transaction that held the kinds @kinds (coord_fault_tx
 * bits): true when its reply is to be reported lost (the caller then fails the call with
 * CO_E_UNAVAILABLE and, on PostgreSQL, drops its connection).  Any thread.
 */
bool coord_fault_commit_lost_slow(unsigned kinds);

static inline bool
coord_fault_commit_lost(unsigned kinds)
{
    return coord_fault_armed && kinds && coord_fault_commit_lost_slow(kinds);
}

/** claim_hold_ms: called by a claim of @job_id after its session check (a database thread). */
void coord_fault_claim_hold_slow(const char *job_id);

static inline void
coord_fault_claim_hold(const char *job_id)
{
    if (coord_fault_armed)
        coord_fault_claim_hold_slow(job_id);
}

/** claim_hold_ms: a hello of @worker_id arrived (lws thread): held claims go on. */
void coord_fault_hello_arrived_slow(const char *worker_id);

static inline void
coord_fault_hello_arrived(const char *worker_id)
{
    if (coord_fault_armed)
        coord_fault_hello_arrived_slow(worker_id);
}

/** hello_gap_ms: called by the hello of @worker_id after its job list (a database thread). */
void coord_fault_hello_gap_slow(const char *worker_id);

static inline void
coord_fault_hello_gap(const char *worker_id)
{
    if (coord_fault_armed)
        coord_fault_hello_gap_slow(worker_id);
}

#endif
