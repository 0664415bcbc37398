/* agent_job: checking, staging and reporting one job assignment (see agent_job.h). */
#include "agent_job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_time.h"
#include "proto_job.h"
#include "proto_utf8.h"

enum proto_run_status
agent_status_from_sbx(enum sbx_status s)
{
    switch (s) {
    case SBX_OK:
        return PROTO_RUN_OK;
    case SBX_RUNTIME_ERROR:
        return PROTO_RUN_RUNTIME_ERROR;
    case SBX_SIGNALED:
        return PROTO_RUN_SIGNALED;
    case SBX_TIMEOUT:
        return PROTO_RUN_TIMEOUT;
    case SBX_CPU_TIMEOUT:
        return PROTO_RUN_CPU_TIMEOUT;
    case SBX_OOM:
        return PROTO_RUN_OOM;
    case SBX_SECCOMP:
        return PROTO_RUN_SECCOMP;
    case SBX_OUTPUT_LIMIT:
        return PROTO_RUN_OUTPUT_LIMIT;
    case SBX_INTERNAL_ERROR:
        return PROTO_RUN_INTERNAL_ERROR;
    case SBX_CANCELLED:
        return PROTO_RUN_CANCELLED;
    }
    return PROTO_RUN_INTERNAL_ERROR;
}

static int64_t
nonneg(int64_t v)
{
    return v > 0 ? v : 0;
}

void
agent_finished_from_result(const struct proto_job_ref *job, const struct sbx_result *res,
                           struct proto_job_finished *out)
{
    memset(out, 0, sizeof(*out));
    out->job = *job;
    out->status = agent_status_from_sbx(res->status);
    if (res->exit_code >= 0 && res->exit_code <= 255) {
        out->has_exit_code = true;
        out->exit_code = res->exit_code;
    }
    if (res->signal >= 1 && res->signal <= 64) {
        out->has_signal = true;
        out->signal = res->signal;
    }
    out->wall_ms = nonneg(res->wall_ms);
    out->cpu_ms = nonneg(res->cpu_ms);
    out->max_rss_kb = nonneg(res->max_rss_kb);
    out->memory_peak_kb = nonneg(res->memory_peak_kb);
    out->stdout_truncated = res->stdout_truncated;
    out->stderr_truncated = res->stderr_truncated;
    if (res->error_step[0] || res->error_msg[0]) {
        const char *msg = res->error_msg[0] ? res->error_msg : "failed";
        co_autofree char *text = res->error_step[0]
                                     ? co_xasprintf("%.31s: %.3000s", res->error_step, msg)
                                     : co_xasprintf("%.3000s", msg);
        /* Messages may quote host paths: make sure the text can travel as a JSON string. */
        out->error = proto_utf8_sanitize(text, strlen(text), NULL);
    } else if (out->status == PROTO_RUN_INTERNAL_ERROR) {
        out->error = co_xstrdup("sandbox failed without a message");
    }
}

void
agent_finished_internal(const struct proto_job_ref *job, const char *error,
                        struct proto_job_finished *out)
{
    memset(out, 0, sizeof(*out));
    out->job = *job;
    out->status = PROTO_RUN_INTERNAL_ERROR;
    out->error = co_xasprintf("%.4000s", error ? error : "internal error");
}

void
agent_finished_release(struct proto_job_finished *f)
{
    free(f->error);
    memset(f, 0, sizeof(*f));
}

int
agent_job_check(const struct proto_job_assign *a, char ***argv_out, co_err *err)
{
    size_t argc = 0;
    *argv_out = NULL;
    if (proto_code_file_check(a->code_file, strlen(a->code_file), err) != 0)
        return co_err_wrap(err, "bad code_file");
    if (proto_argv_split(a->command, argv_out, &argc, err) != 0)
        return co_err_wrap(err, "bad command");
    return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Remove @path and everything below it, never following symbolic links. */
static void
rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
mkdir_one(const char *path, co_err *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return co_err_sys(err, errno, "cannot create folder '%s'", path);
    struct stat st;
    if (lstat(path, &st) != 0)
        return co_err_sys(err, errno, "cannot stat '%s'", path);
    if (!S_ISDIR(st.st_mode))
        return co_err_set(err, CO_E_INVAL, "'%s' exists and is not a folder", path);
    return 0;
}

/* mkdir -p for an absolute @path. */
static int
mkdir_parents(const char *path, co_err *err)
{
    co_autofree char *p = co_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        int rc = mkdir_one(p, err);
        *s = '/';
        if (rc != 0)
            return -1;
    }
    return mkdir_one(p, err);
}

int
agent_job_root_prepare(const char *work_root, co_err *err)
{
    co_autofree char *jobs = co_xasprintf("%s/jobs", work_root);
    if (mkdir_parents(jobs, err) != 0)
        return co_err_wrap(err, "AGENT_WORK_ROOT");
    /* Folders left by a previous run of the agent (a crash) are of no use any more. */
    DIR *d = opendir(jobs);
    if (!d)
        return co_err_sys(err, errno, "AGENT_WORK_ROOT: cannot open '%s'", jobs);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        co_autofree char *path = co_xasprintf("%s/%s", jobs, de->d_name);
        rm_tree(path);
    }
    closedir(d);
    if (access(jobs, W_OK) != 0)
        return co_err_sys(err, errno, "AGENT_WORK_ROOT: cannot write to '%s'", jobs);
    return 0;
}

/* True if @l has a file at @path. */
static bool
input_has(const struct proto_file_list *l, const char *path)
{
    for (size_t i = 0; i < l->len; i++) {
        if (strcmp(l->items[i].path, path) == 0)
            return true;
    }
    return false;
}

int
agent_job_files_build(const struct proto_job_assign *a, struct agent_job_files *out, co_err *err)
{
    memset(out, 0, sizeof(*out));
    if (proto_code_file_check(a->code_file, strlen(a->code_file), err) != 0)
        return -1;
    const char *code = a->code ? a->code : "";
    const char *reserved[] = {AGENT_PARAMS_FILE, code[0] ? a->code_file : NULL, NULL};
    if (proto_files_parse(a->files, reserved, &out->input, err) != 0)
        return co_err_wrap(err, "bad files");
    out->files = co_xcalloc(out->input.len + 2, sizeof(*out->files));
    /* An empty code file gives way to an input file of the same name. */
    if (!input_has(&out->input, a->code_file))
        out->files[out->n_files++] =
            (struct sbx_file){.name = a->code_file, .data = code, .len = strlen(code)};
    /* A code file named params.json wins over the parameters. */
    if (strcmp(a->code_file, AGENT_PARAMS_FILE) != 0) {
        const char *params = a->parameters ? a->parameters : "{}";
        out->files[out->n_files++] =
            (struct sbx_file){.name = AGENT_PARAMS_FILE, .data = params, .len = strlen(params)};
    }
    for (size_t i = 0; i < out->input.len; i++) {
        const struct proto_file *f = &out->input.items[i];
        out->files[out->n_files++] =
            (struct sbx_file){.name = f->path, .data = f->data, .len = f->len};
    }
    return 0;
}

void
agent_job_files_release(struct agent_job_files *f)
{
    free(f->files);
    proto_file_list_release(&f->input);
    memset(f, 0, sizeof(*f));
}

void
agent_job_spec(const struct proto_job_assign *a, char *const *argv,
               const struct agent_job_files *files, int64_t output_limit, int64_t pids,
               struct sbx_spec *spec)
{
    sbx_spec_init(spec);
    spec->argv = (const char *const *)argv;
    spec->files = files ? files->files : NULL;
    spec->n_files = files ? files->n_files : 0;
    spec->image = a->image;
    spec->cores_milli = a->required_cores * 1000;
    spec->memory_bytes = a->required_ram_mb * 1024 * 1024;
    spec->wall_ms = a->timeout_seconds * 1000;
    if (output_limit > 0)
        spec->output_limit = output_limit;
    if (pids > 0)
        spec->pids = pids;
    spec->keep_work = true; /* artifacts are read from /work/out after the run */
    /* /work holds the input files and the artifacts; its pages count against the job's memory
     * anyway, so it may be as large as the job's RAM (never below the sandbox default). */
    if (spec->memory_bytes > spec->work_bytes)
        spec->work_bytes = spec->memory_bytes;
}

int
agent_sandbox_selftest(int64_t *ms, co_err *err)
{
    static const char *const argv[] = {"/bin/true", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    spec.cores_milli = 100;
    spec.memory_bytes = INT64_C(32) << 20;
    spec.pids = 8;
    spec.wall_ms = 5000;
    spec.tmp_bytes = INT64_C(1) << 20;
    spec.work_bytes = INT64_C(1) << 20;
    spec.shm_bytes = INT64_C(1) << 20;
    spec.output_limit = 4096;

    struct sbx_result res;
    co_err run_err = CO_ERR_INIT;
    int64_t t0 = co_mono_ms();
    int rc = sbx_run(&spec, &res, &run_err);
    *ms = co_mono_ms() - t0;
    if (rc != 0) {
        const char *msg = res.error_msg[0] ? res.error_msg : run_err.msg;
        co_err_set(err, run_err.code ? run_err.code : CO_E_INTERNAL,
                   "sandbox self-test failed at step '%s': %s",
                   res.error_step[0] ? res.error_step : "?", msg[0] ? msg : "no message");
    } else if (res.status != SBX_OK) {
        /* The sandbox started but the program did not succeed (e.g. an image without it). */
        const char *out = res.stderr_data ? res.stderr_data : "";
        co_err_set(err, CO_E_INTERNAL,
                   "sandbox self-test: '/bin/true' ended with status %s (exit code %d, signal "
                   "%d)%s%s%s%.200s",
                   sbx_status_name(res.status), res.exit_code, res.signal,
                   res.error_step[0] ? ", step " : "", res.error_step,
                   res.error_msg[0] || out[0] ? ": " : "", res.error_msg[0] ? res.error_msg : out);
        rc = -1;
    }
    sbx_result_release(&res);
    return rc;
}
