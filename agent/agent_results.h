/*
 * agent_results: the agent's journal of job results that the coordinator has not acknowledged
 * yet (PROTOCOL.md "Results are kept until acknowledged").  One small file per result,
 * <work root>/results/<job_id>.<attempt>.json, holding the encoded job.finished message; written
 * atomically (temporary file, fsync, rename, fsync of the folder) before the result is sent,
 * deleted at job.ack, read back at start so that a restarted agent sends it again.
 *
 * Threads: any (the agent calls it from its service thread); no shared state.
 */
#ifndef AGENT_RESULTS_H
#define AGENT_RESULTS_H

#include "co_err.h"
#include "proto_agent.h"

/** Store @fin durably.  Errors: CO_E_SYS (folder, write, fsync, rename). */
int agent_results_save(const char *work_root, const struct proto_job_finished *fin, co_err *err)
    __attribute__((warn_unused_result));

/** Delete the stored result of @ref (absent is fine). */
void agent_results_forget(const char *work_root, const struct proto_job_ref *ref);

/** Called for each stored result; takes ownership of *@fin's strings (agent_finished_release). */
typedef void (*agent_results_fn)(void *ud, struct proto_job_finished *fin);

/**
 * Call @fn for every stored result (a missing folder is an empty journal).  Files that do not
 * decode as a job.finished named like their content are logged and left alone.  Errors: CO_E_SYS
 * when the folder cannot be read.
 */
int agent_results_load(const char *work_root, agent_results_fn fn, void *ud, co_err *err)
    __attribute__((warn_unused_result));

#endif
