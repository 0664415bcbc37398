/*
 * agent_pool: the agent's job threads, started on demand and reused.
 *
 * A job runs on a worker thread of its own for as long as it lasts (the sandbox ties the job's
 * parent-death signal to the thread that runs it, and a job blocks its thread until it ends).
 * A worker whose job is over waits for the next one instead of exiting, so that a steady flow of
 * jobs starts no thread; at most @keep_idle workers wait, the others exit (and are joined by
 * the next agent_pool_run() or by agent_pool_free()).
 *
 * Threads: agent_pool_run() and agent_pool_free() are called from one thread (the agent's
 * service thread); the task functions run on the workers.
 */
#ifndef AGENT_POOL_H
#define AGENT_POOL_H

#include "co_err.h"

struct agent_pool;

/** A task: runs on a worker; @arg is the caller's. */
typedef void (*agent_pool_fn)(void *arg);

/** A pool keeping at most @keep_idle idle workers (0: none kept, a thread per task). */
struct agent_pool *agent_pool_new(unsigned keep_idle);

/**
 * Run @fn(@arg) on an idle worker, or on a new one when none is idle.  Errors: CO_E_SYS when no
 * idle worker exists and a thread cannot be started (the task does not run).
 */
int agent_pool_run(struct agent_pool *p, agent_pool_fn fn, void *arg, co_err *err)
    __attribute__((warn_unused_result));

/** Wait for the tasks running, stop and join every worker, free @p (NULL allowed). */
void agent_pool_free(struct agent_pool *p);

/** Threads started since agent_pool_new() in *@started, workers waiting now in *@idle. */
void agent_pool_stats(struct agent_pool *p, unsigned *started, unsigned *idle);

#endif
