/*
 * Stand-in for libsandbox, compiled only while the `sandbox` library target does not exist in
 * this tree.  It fails closed: every run reports internal_error and nothing is executed, so an
 * agent built without the sandbox can never run a job unconfined.  Benchmark mode
 * (--bench-no-sandbox) does not call it.
 */
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_err.h"
#include "sbx.h"

struct sbx_cancel {
    int unused;
};

void
sbx_spec_init(struct sbx_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->image = "default";
    spec->cores_milli = 1000;
    spec->memory_bytes = 256LL * 1024 * 1024;
    spec->pids = 64;
    spec->tmp_bytes = 64LL * 1024 * 1024;
    spec->work_bytes = 64LL * 1024 * 1024;
    spec->shm_bytes = 16LL * 1024 * 1024;
    spec->wall_ms = 10000;
    spec->output_limit = 1024 * 1024;
}

int
sbx_run_ex(const struct sbx_spec *spec, const struct sbx_run_opts *opts, struct sbx_result *res,
           co_err *err)
{
    (void)spec;
    (void)opts;
    memset(res, 0, sizeof(*res));
    res->status = SBX_INTERNAL_ERROR;
    res->exit_code = -1;
    co_strlcpy(res->error_step, "sandbox", sizeof(res->error_step));
    co_strlcpy(res->error_msg, "this agent was built without libsandbox", sizeof(res->error_msg));
    return co_err_set(err, CO_E_UNAVAILABLE, "this agent was built without libsandbox");
}

void
sbx_result_release(struct sbx_result *res)
{
    free(res->stdout_data);
    free(res->stderr_data);
    memset(res, 0, sizeof(*res));
}

int
sbx_cancel_new(struct sbx_cancel **out, co_err *err)
{
    (void)err;
    *out = co_xcalloc(1, sizeof(**out));
    return 0;
}

void
sbx_cancel_free(struct sbx_cancel *c)
{
    free(c);
}

void
sbx_cancel(struct sbx_cancel *c)
{
    (void)c;
}
