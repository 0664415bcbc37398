/*
 * cli_job: what `cacheout` makes of a job object: whether it is finished, and the exit status
 * of `submit --wait` (the job's own exit code, or a code that says how it ended).  Pure code.
 */
#ifndef CLI_JOB_H
#define CLI_JOB_H

#include <jansson.h>
#include <stdbool.h>

/* Exit statuses of `cacheout` itself. */
#define CLI_EXIT_API 1   /* an API, network or local error */
#define CLI_EXIT_USAGE 2 /* a bad command line or setting */
/* Exit statuses of `submit --wait` and that are not the job's own exit code. */
#define CLI_EXIT_TIMEOUT 124   /* failure_reason timeout (as timeout(1)) */
#define CLI_EXIT_PLATFORM 125  /* sandbox_error, worker_lost, unverified: not the job's fault */
#define CLI_EXIT_SIGNAL 128    /* + the signal for killed jobs */
#define CLI_EXIT_CANCELLED 143 /* 128 + SIGTERM: the job was cancelled */

/** True if the status of @job (a job object, borrowed) is completed, failed or cancelled. */
bool cli_job_finished(const json_t *job);

/**
 * The exit status for a finished @job (borrowed):
 *   completed                      -> 0
 *   failed, exit_code              -> the job's exit code (1 if it is missing or 0)
 *   failed, timeout                -> 124
 *   failed, killed                 -> 128 + the job's `signal` when the object has one, else
 *                                     128 + 9 (the sandbox's kills are SIGKILL)
 *   failed, oom                    -> 137 (the kernel's OOM killer sends SIGKILL)
 *   failed, sandbox_error, worker_lost, unverified, or a reason this client does not know
 *                                  -> 125
 *   cancelled                      -> 143
 * Returns -1 if @job is not finished.
 */
int cli_job_exit_status(const json_t *job);

/** A one-line human description of how @job ended ("exit code 3", "timed out", ...); static. */
const char *cli_job_outcome(const json_t *job, char *buf, size_t size);

#endif
