/* The pure parts of libsandbox: spec defaults and validation, status names, result JSON. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_id.h"
#include "co_jsonw.h"
#include "sbx.h"
#include "sbx_internal.h"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

void
sbx_spec_init(struct sbx_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->image = "default";
    spec->cores_milli = 1000;
    spec->memory_bytes = 256 * MIB;
    spec->pids = 64;
    spec->tmp_bytes = 64 * MIB;
    spec->work_bytes = 64 * MIB;
    spec->shm_bytes = 16 * MIB;
    spec->wall_ms = 10000;
    spec->cpu_ms = 0;
    spec->output_limit = MIB;
    spec->network = SBX_NET_NONE;
}

static int
range(int64_t v, int64_t min, int64_t max, const char *field, co_err *err)
{
    if (v < min || v > max)
        return co_err_field(err, CO_E_RANGE, field, "%s %lld out of range [%lld, %lld]", field,
                            (long long)v, (long long)min, (long long)max);
    return 0;
}

int
sbx_file_name_check(const char *name, co_err *err)
{
    if (!name || !*name)
        return co_err_field(err, CO_E_INVAL, "files", "empty work file name");
    size_t len = strlen(name);
    if (len >= SBX_FILE_NAME_MAX)
        return co_err_field(err, CO_E_INVAL, "files", "work file name too long: '%.40s...'", name);
    if (name[0] == '/')
        return co_err_field(err, CO_E_INVAL, "files", "work file name '%s' is absolute", name);
    const char *p = name;
    while (*p) {
        size_t c = strcspn(p, "/");
        if (c == 0 || (c == 1 && p[0] == '.') || (c == 2 && p[0] == '.' && p[1] == '.'))
            return co_err_field(err, CO_E_INVAL, "files",
                                "work file name '%s' has an empty, '.' or '..' component", name);
        p += c;
        if (*p == '/') {
            p++;
            if (!*p)
                return co_err_field(err, CO_E_INVAL, "files", "work file name '%s' ends with '/'",
                                    name);
        }
    }
    return 0;
}

int
sbx_spec_validate(const struct sbx_spec *spec, co_err *err)
{
    if (!spec->argv || !spec->argv[0] || !spec->argv[0][0])
        return co_err_field(err, CO_E_INVAL, "argv", "no program to run");
    size_t n = 0;
    for (; spec->argv[n]; n++) {
        if (n >= SBX_ARGV_MAX)
            return co_err_field(err, CO_E_RANGE, "argv", "more than %d arguments", SBX_ARGV_MAX);
    }
    if (spec->env) {
        for (n = 0; spec->env[n]; n++) {
            const char *eq = strchr(spec->env[n], '=');
            if (n >= SBX_ENV_MAX)
                return co_err_field(err, CO_E_RANGE, "env", "more than %d variables", SBX_ENV_MAX);
            if (!eq || eq == spec->env[n])
                return co_err_field(err, CO_E_INVAL, "env",
                                    "environment entry '%.60s' is not KEY=VALUE", spec->env[n]);
        }
    }
    if (range(spec->cores_milli, 10, 1024 * 1000, "cores", err) < 0 ||
        range(spec->memory_bytes, 4 * MIB, 4096 * GIB, "memory", err) < 0 ||
        range(spec->pids, 1, 1 << 22, "pids", err) < 0 ||
        range(spec->tmp_bytes, 4 * KIB, 1024 * GIB, "tmp_size", err) < 0 ||
        range(spec->work_bytes, 4 * KIB, 1024 * GIB, "work_size", err) < 0 ||
        range(spec->shm_bytes, 4 * KIB, 1024 * GIB, "shm_size", err) < 0 ||
        range(spec->wall_ms, 0, INT64_C(366) * 86400 * 1000, "wall_time", err) < 0 ||
        range(spec->cpu_ms, 0, INT64_C(366) * 86400 * 1000, "cpu_time", err) < 0 ||
        range(spec->output_limit, 0, 16 * GIB, "output_limit", err) < 0)
        return -1;
    if (spec->network != SBX_NET_NONE && spec->network != SBX_NET_LOOPBACK)
        return co_err_field(err, CO_E_INVAL, "network", "unknown network mode %d",
                            (int)spec->network);
    if (spec->n_files > SBX_FILES_MAX)
        return co_err_field(err, CO_E_RANGE, "files", "more than %d work files", SBX_FILES_MAX);
    if (spec->n_files && !spec->files)
        return co_err_field(err, CO_E_INVAL, "files", "n_files set but no files");
    for (size_t i = 0; i < spec->n_files; i++) {
        const struct sbx_file *f = &spec->files[i];
        if (sbx_file_name_check(f->name, err) < 0)
            return -1;
        if (f->host_path && (f->data || f->len))
            return co_err_field(err, CO_E_INVAL, "files",
                                "work file '%s' has both data and host_path", f->name);
        if (!f->host_path && !f->data && f->len)
            return co_err_field(err, CO_E_INVAL, "files", "work file '%s' has no data", f->name);
        if (f->mode & ~07777u)
            return co_err_field(err, CO_E_INVAL, "files", "work file '%s' has a bad mode", f->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(spec->files[j].name, f->name) == 0)
                return co_err_field(err, CO_E_INVAL, "files", "work file '%s' given twice",
                                    f->name);
        }
    }
    const char *img = spec->image;
    if (img && *img && strcmp(img, "default") != 0 && img[0] != '/' &&
        (!co_id_valid(img) || img[0] == '.'))
        return co_err_field(err, CO_E_INVAL, "image", "invalid image name '%s'", img);
    return 0;
}

const char *
sbx_status_name(enum sbx_status status)
{
    switch (status) {
    case SBX_OK:
        return "ok";
    case SBX_RUNTIME_ERROR:
        return "runtime_error";
    case SBX_SIGNALED:
        return "signaled";
    case SBX_TIMEOUT:
        return "timeout";
    case SBX_CPU_TIMEOUT:
        return "cpu_timeout";
    case SBX_OOM:
        return "oom";
    case SBX_SECCOMP:
        return "seccomp";
    case SBX_OUTPUT_LIMIT:
        return "output_limit";
    case SBX_INTERNAL_ERROR:
        return "internal_error";
    case SBX_CANCELLED:
        return "cancelled";
    }
    return "internal_error";
}

void
sbx_result_release(struct sbx_result *res)
{
    free(res->stdout_data);
    free(res->stderr_data);
    if (res->has_work_fd && res->work_fd >= 0)
        close(res->work_fd);
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
}

/* A key with an integer value, or with null when @present is false. */
static void
json_kint_or_null(struct co_jsonw *w, const char *key, int64_t v, bool present)
{
    co_jsonw_key(w, key);
    if (present)
        co_jsonw_int(w, v);
    else
        co_jsonw_null(w);
}

void
sbx_result_json(const struct sbx_result *res, struct co_buf *out)
{
    struct co_jsonw w;
    /*
     * ASCII only: error messages are ASCII, and a stray byte (from a path, say) becomes '?' so
     * that cacheout-run never prints invalid UTF-8.  No HTML escaping: this JSON is read by
     * programs, not embedded in pages.
     */
    co_jsonw_init_flags(&w, out, CO_JSONW_ASCII);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "status", sbx_status_name(res->status));
    json_kint_or_null(&w, "exit_code", res->exit_code, res->exit_code >= 0);
    json_kint_or_null(&w, "signal", res->signal, res->signal > 0);
    co_jsonw_kint(&w, "wall_ms", res->wall_ms);
    co_jsonw_kint(&w, "cpu_ms", res->cpu_ms);
    co_jsonw_kint(&w, "memory_peak_kb", res->memory_peak_kb);
    co_jsonw_kint(&w, "max_rss_kb", res->max_rss_kb);
    co_jsonw_kbool(&w, "oom_killed", res->oom_killed);
    co_jsonw_kbool(&w, "stdout_truncated", res->stdout_truncated);
    co_jsonw_kbool(&w, "stderr_truncated", res->stderr_truncated);
    co_jsonw_kint(&w, "stdout_bytes", res->stdout_bytes);
    co_jsonw_kint(&w, "stderr_bytes", res->stderr_bytes);
    co_jsonw_key(&w, "error");
    if (res->error_step[0]) {
        co_jsonw_obj_begin(&w);
        co_jsonw_kstr(&w, "step", res->error_step);
        co_jsonw_kint(&w, "errno", res->error_errno);
        co_jsonw_kstr(&w, "message", res->error_msg);
        co_jsonw_obj_end(&w);
    } else {
        co_jsonw_null(&w);
    }
    json_kint_or_null(&w, "slot", res->slot, res->uid != 0);
    json_kint_or_null(&w, "uid", res->uid, res->uid != 0);
    json_kint_or_null(&w, "host_uid", res->host_uid, res->uid != 0);
    co_jsonw_obj_end(&w);
}

struct sbx_cancel {
    int fd;
};

int
sbx_cancel_new(struct sbx_cancel **out, co_err *err)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot create eventfd");
    struct sbx_cancel *c = co_xmalloc(sizeof(*c));
    c->fd = fd;
    *out = c;
    return 0;
}

void
sbx_cancel_free(struct sbx_cancel *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

void
sbx_cancel(struct sbx_cancel *c)
{
    uint64_t one = 1;
    if (c)
        (void)!write(c->fd, &one, sizeof(one));
}

int
sbx_cancel_fd(const struct sbx_cancel *c)
{
    return c ? c->fd : -1;
}
