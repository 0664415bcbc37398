/*
 * agent_results: the agent's journal of job results that the coordinator has not acknowledged
 * yet (PROTOCOL.md "Results are kept until acknowledged").  One small file per result,
 * <work root>/results/<job_id>.<attempt>.json: one encoded message per line, the attempt's kept
 * job.output chunks in order, then its job.finished (a file of one line, from an older agent, is
 * a result without output).  Written once, when the attempt ends, atomically (temporary file,
 * one fsync, rename, fsync of the folder) before the result is sent; deleted at job.ack; read
 * back at start so that a restarted agent sends the output and then the result again.
 *
 * The output log (struct agent_outlog) is what an attempt has sent so far, kept in memory until
 * the ack so that a new connection can send it again before the result, and journaled with it.
 * It keeps each stream's chunks up to a byte limit (the agent's per-stream output cap; the
 * coordinator stores no more than its own cap), so the journal stays bounded.
 *
 * Threads: any (the agent calls it from its service thread); no shared state.
 */
#ifndef AGENT_RESULTS_H
#define AGENT_RESULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"
#include "proto_agent.h"

/* The output an attempt has sent, kept until its result is acknowledged. */
struct agent_outlog {
    struct proto_job_output *chunks; /* owned data, in seq order */
    size_t n, cap;
    int64_t limit;    /* bytes kept per stream (a chunk that starts below it is kept whole) */
    int64_t bytes[2]; /* bytes of each stream so far (the next chunk's offset) */
    int64_t dropped;  /* chunks not kept (over the limit) */
};

/** An empty log keeping up to @limit bytes per stream. */
void agent_outlog_init(struct agent_outlog *l, int64_t limit);

/** Free what @l holds (it is empty afterwards, with the same limit). */
void agent_outlog_release(struct agent_outlog *l);

/**
 * Set @c's offset (the bytes of its stream before it) and keep it: the log takes @c's data and
 * returns true; or, over the stream's limit, leaves @c alone (the caller sends and frees it) and
 * returns false.
 */
bool agent_outlog_add(struct agent_outlog *l, struct proto_job_output *c);

/**
 * Store @fin and the output in @log (may be NULL) durably.  Errors: CO_E_SYS (folder, write,
 * fsync, rename), CO_E_INVAL (cannot be encoded).
 */
int agent_results_save(const char *work_root, const struct proto_job_finished *fin,
                       const struct agent_outlog *log, co_err *err)
    __attribute__((warn_unused_result));

/** Delete the stored result of @ref (absent is fine). */
void agent_results_forget(const char *work_root, const struct proto_job_ref *ref);

/**
 * Called for each stored result; takes ownership of *@fin's strings (agent_finished_release)
 * and of *@log's chunks (agent_outlog_release; its limit is 0 for the caller to set).
 */
typedef void (*agent_results_fn)(void *ud, struct proto_job_finished *fin,
                                 struct agent_outlog *log);

/**
 * Call @fn for every stored result (a missing folder is an empty journal).  Files that do not
 * decode as job.output lines of one attempt then its job.finished, named like their content, are
 * logged and left alone.  Errors: CO_E_SYS when the folder cannot be read.
 */
int agent_results_load(const char *work_root, agent_results_fn fn, void *ud, co_err *err)
    __attribute__((warn_unused_result));

#endif
