/*
 * agent_job: the pure parts of running one job assignment: checking it, listing its work files
 * (code at code_file, parameters at params.json, the input files) for the sandbox, which writes
 * them into the job's /work from the agent's memory, building the sandbox spec, and turning the
 * sandbox's result into a job.finished message.
 */
#ifndef AGENT_JOB_H
#define AGENT_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_err.h"
#include "proto_agent.h"
#include "proto_files.h"
#include "sbx.h"

#define AGENT_PARAMS_FILE "params.json"

/** The proto_run_status reported for a sandbox status (unknown values: internal_error). */
enum proto_run_status agent_status_from_sbx(enum sbx_status s);

/**
 * Fill @out (a job.finished body; its error string is caller-owned, release with
 * agent_finished_release()) from @res of the run of @job.  Exit code and signal are present only
 * when the sandbox reports them; an internal error carries "step: message" as its error.
 */
void agent_finished_from_result(const struct proto_job_ref *job, const struct sbx_result *res,
                                struct proto_job_finished *out);

/** A job.finished body for a run that never started (status internal_error, zero usage). */
void agent_finished_internal(const struct proto_job_ref *job, const char *error,
                             struct proto_job_finished *out);

/** Free the error string of @f (set by the two functions above) and zero it. */
void agent_finished_release(struct proto_job_finished *f);

/** The work files of a job, in memory: nothing of them is written on the host. */
struct agent_job_files {
    struct proto_file_list input; /* the job's input files (proto_files.h), decoded, owned */
    struct sbx_file *files;       /* code, params.json, then @input; names and data point into
                                     the assignment (borrowed: it must outlive the run) and into
                                     @input; owned array */
    size_t n_files;
};

/**
 * Check @a before accepting it: the command splits into argv (stored in *argv_out,
 * caller-owned, proto_argv_free()) and code_file is safe.  Errors: CO_E_INVAL with a message fit
 * for a job.rejected reason.
 */
int agent_job_check(const struct proto_job_assign *a, char ***argv_out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Create @work_root (and missing parents, 0700) with its folder "jobs", and remove what earlier
 * versions of the agent staged in that folder (job files are no longer written on the host).
 * Called once at start-up.  Errors: CO_E_SYS naming AGENT_WORK_ROOT and the path.
 */
int agent_job_root_prepare(const char *work_root, co_err *err) __attribute__((warn_unused_result));

/**
 * Describe @a's work files as sandbox files in @out, all from memory: the code at <code_file>
 * (unless the code is empty and an input file of that name takes its place), the parameters at
 * params.json ("{}" when absent; a code_file of "params.json" wins over them), then the decoded
 * input files of a->files.  The sandbox's init writes them into /work (O_EXCL, O_NOFOLLOW,
 * owned by the job) before the job runs.  Errors: CO_E_INVAL for an unsafe code_file or bad
 * files.  Release with agent_job_files_release().
 */
int agent_job_files_build(const struct proto_job_assign *a, struct agent_job_files *out,
                          co_err *err) __attribute__((warn_unused_result));

/** Free what @f owns; @f is zeroed. */
void agent_job_files_release(struct agent_job_files *f);

/**
 * Fill @spec for @a: @argv (borrowed, NULL-terminated), @files, the image, cores_milli =
 * required_cores * 1000, memory = required_ram_mb MiB, wall limit = timeout_seconds, the
 * per-stream @output_limit (bytes, 0: the sandbox default) and the @pids limit.
 */
void agent_job_spec(const struct proto_job_assign *a, char *const *argv,
                    const struct agent_job_files *files, int64_t output_limit, int64_t pids,
                    struct sbx_spec *spec);

/**
 * The start-up self-test: run /bin/true in a sandbox with small limits (0.1 core, 32 MiB, 8
 * pids, 5 s) exactly as jobs are run, so that an agent whose sandbox cannot work (no root and no
 * rootless set-up, no cgroup delegation, no image) says so at start instead of failing every job
 * it accepts.  Stores the time it took in *@ms.  Errors: the sandbox could not start (the
 * message names the failing step and says why) or /bin/true did not exit 0.
 */
int agent_sandbox_selftest(int64_t *ms, co_err *err) __attribute__((warn_unused_result));

#endif
