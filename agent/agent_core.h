/*
 * agent_core: the running agent.  One libwebsockets client context on the calling thread keeps
 * one WebSocket ("cacheout.agent.v1") to the coordinator, reconnecting forever with exponential
 * backoff and jitter; each accepted job runs on its own thread inside libsandbox and streams its
 * output back through a bounded per-job queue (agent_outq).  See agent/README.md.
 */
#ifndef AGENT_CORE_H
#define AGENT_CORE_H

#include <signal.h>

#include "agent_config.h"
#include "co_err.h"

#define AGENT_VERSION_STRING "cacheout-agent/0.1.0"

/* Exit codes of cacheout-agent. */
#define AGENT_EXIT_OK 0
#define AGENT_EXIT_CONFIG 1 /* bad settings or start-up failure */
#define AGENT_EXIT_AUTH 3   /* the coordinator rejected AGENT_TOKEN (AGENT_EXIT_ON_AUTH_ERROR) */

struct agent;

/**
 * Create an agent for @cfg (borrowed: it must outlive the agent).  Creates the lws context.
 * Errors: the context cannot be created.  Free with agent_free().
 */
int agent_new(const struct agent_config *cfg, struct agent **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Run until shut down.  @stop (borrowed, set by a signal handler) counts stop requests: the
 * first stops taking jobs and lets running ones finish for the grace period, a second one
 * cancels them at once.  Returns the process exit code (AGENT_EXIT_*).
 */
int agent_run(struct agent *a, _Atomic int *stop);

/** Cancel and wait for any job still running, free everything (NULL allowed). */
void agent_free(struct agent *a);

#endif
