/* cli_cmd: the subcommands of `cacheout` (see cli_cmd.h). */
#include "cli_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_api.h"
#include "cli_file.h"
#include "cli_job.h"
#include "cli_quote.h"
#include "co_alloc.h"
#include "co_buf.h"
#include "proto_utf8.h"

/* Submit defaults when the options are absent (the API requires both fields). */
#define DEFAULT_CORES 1
#define DEFAULT_RAM_MB 256
#define TITLE_MAX_CHARS 200
/* A file bigger than this cannot be a job input (the API caps all of them at 8 MiB). */
#define FILE_MAX (64 * 1024 * 1024)
/* Polling of a followed job: start fast (short jobs), settle at one request a second. */
#define POLL_FIRST_MS 200
#define POLL_MAX_MS 1000
/* A spinner frame every SPIN_MS while waiting (a divisor of the poll delays' steps). */
#define SPIN_MS 100
/* Following a job survives this many seconds of a coordinator that does not answer. */
#define FOLLOW_RETRIES 60

static volatile sig_atomic_t interrupted;

void
cli_cmd_interrupt(void)
{
    interrupted = 1;
}

static int
fail(const co_err *err)
{
    fprintf(stderr, "cacheout: %s\n", err->msg);
    return CLI_EXIT_API;
}

static void
print_json(const json_t *doc)
{
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
    fflush(stdout);
}

static const char *
jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A JSON number of credits as decimal text (at most 6 decimals, trailing zeros removed). */
static void
credits_text(const json_t *v, char *buf, size_t size)
{
    if (!json_is_number(v)) {
        snprintf(buf, size, "-");
        return;
    }
    snprintf(buf, size, "%.6f", json_number_value(v));
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        char *e = buf + strlen(buf);
        while (e > dot + 1 && e[-1] == '0')
            *--e = '\0';
        if (e == dot + 1)
            *dot = '\0';
    }
}

/* Any JSON value as short text for plain output: strings bare, null as "-". */
static char *
value_text(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return co_xstrdup("-");
    if (json_is_string(v))
        return co_xstrdup(json_string_value(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : co_xstrdup("?");
}

static char *
job_path(struct cli_ctx *ctx, const char *id, const char *tail)
{
    co_autofree char *e = cli_http_escape(ctx->http, id);
    return co_xasprintf("/jobs/%s%s", e, tail);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal ends it early: the loop then checks the flag */
}

/* ------------------------------------------------------------------------------ follow */

struct follow {
    size_t out_off, err_off; /* bytes of stdout/stderr already printed */
    json_int_t attempt;      /* attempt those offsets belong to, -1 before any output */
    char reason[512];        /* last pending message shown (non-TTY: printed on change) */
    char line[600];          /* the spinner's text */
    int spin;
    bool spinner_shown;
};

static void
spinner_clear(struct cli_ctx *ctx, struct follow *f)
{
    if (f->spinner_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        f->spinner_shown = false;
    }
    (void)ctx;
}

/* Draw the spinner's next frame with the last waiting line. */
static void
spinner_tick(struct follow *f)
{
    static const char spin[] = "|/-\\";

    fprintf(stderr, "\r\033[K%c %s", spin[f->spin++ % 4], f->line);
    fflush(stderr);
    f->spinner_shown = true;
}

/* Show that @job waits (pending or assigned), with its pending_reason when there is one. */
static void
show_waiting(struct cli_ctx *ctx, struct follow *f, const json_t *job)
{
    const json_t *pr = json_object_get(job, "pending_reason");
    const char *msg = jstr(pr, "message");
    char line[600];

    if (msg[0] == '\0')
        msg = jstr(pr, "code");
    snprintf(line, sizeof(line), "job %s %s%s%s", jstr(job, "job_id"), jstr(job, "status"),
             msg[0] ? ": " : "", msg);
    if (ctx->tty_err) {
        co_strlcpy(f->line, line, sizeof(f->line));
        spinner_tick(f);
    } else if (msg[0] != '\0' && strcmp(msg, f->reason) != 0) {
        fprintf(stderr, "cacheout: %s\n", line);
    }
    co_strlcpy(f->reason, msg, sizeof(f->reason));
}

/* Print the output of @job that is new since the last call. */
static int
print_new_output(struct cli_ctx *ctx, struct follow *f, const json_t *job, co_err *err)
{
    co_autofree char *path = job_path(ctx, jstr(job, "job_id"), "/output");
    json_auto_t *out = NULL;
    json_int_t attempt = json_integer_value(json_object_get(job, "attempts"));

    if (cli_api_call(ctx->http, "GET", path, NULL, &out, err) < 0)
        return -1;
    const json_t *so = json_object_get(out, "stdout"), *se = json_object_get(out, "stderr");
    size_t on = json_string_length(so), en = json_string_length(se);
    /* A new attempt starts its output from the beginning. */
    if (f->attempt >= 0 && (attempt != f->attempt || on < f->out_off || en < f->err_off)) {
        spinner_clear(ctx, f);
        fprintf(stderr, "cacheout: job %s runs again (attempt %lld): its output restarts\n",
                jstr(job, "job_id"), (long long)attempt);
        f->out_off = f->err_off = 0;
    }
    f->attempt = attempt;
    if (on > f->out_off || en > f->err_off)
        spinner_clear(ctx, f);
    if (on > f->out_off) {
        fwrite(json_string_value(so) + f->out_off, 1, on - f->out_off, stdout);
        fflush(stdout);
        f->out_off = on;
    }
    if (en > f->err_off) {
        fwrite(json_string_value(se) + f->err_off, 1, en - f->err_off, stderr);
        fflush(stderr);
        f->err_off = en;
    }
    return 0;
}

static bool
is_waiting(const json_t *job)
{
    const char *st = jstr(job, "status");
    return strcmp(st, "pending") == 0 || strcmp(st, "assigned") == 0;
}

/* An error worth retrying while following a job: no answer, 5xx, 429. */
static bool
transient(const co_err *err)
{
    return err->code == CO_E_UNAVAILABLE || err->code == CO_E_LIMIT;
}

/*
 * Poll job @id until it is finished, printing its output as it comes when @output; *final gets
 * the finished job object.  The output is read once more after the final status is seen, so
 * nothing stored before the job finished is missed.
 */
static int
follow_job(struct cli_ctx *ctx, const char *id, bool output, json_t **final, co_err *err)
{
    co_autofree char *path = job_path(ctx, id, "");
    struct follow f = {.attempt = -1};
    long delay = POLL_FIRST_MS;
    int failures = 0; /* transient errors in a row */

    *final = NULL;
    for (;;) {
        json_t *job = NULL;
        if (interrupted) {
            spinner_clear(ctx, &f);
            return co_err_set(err, CO_E_INTERNAL,
                              "interrupted: job %s goes on (cacheout cancel %s stops it)", id, id);
        }
        if (cli_api_call(ctx->http, "GET", path, NULL, &job, err) < 0 ||
            (output && !is_waiting(job) && print_new_output(ctx, &f, job, err) < 0)) {
            json_decref(job);
            spinner_clear(ctx, &f);
            /*
             * A coordinator that restarts, or is briefly overloaded, does not end the wait: the
             * job goes on without us.  Anything else (401, 404, ...) does.
             */
            if (!transient(err) || ++failures > FOLLOW_RETRIES)
                return -1;
            if (failures == 1)
                fprintf(stderr, "cacheout: %s: retrying for up to %d s\n", err->msg,
                        FOLLOW_RETRIES);
            sleep_ms(1000);
            continue;
        }
        failures = 0;
        if (is_waiting(job) && !ctx->o->json)
            show_waiting(ctx, &f, job);
        if (cli_job_finished(job)) {
            spinner_clear(ctx, &f);
            *final = job;
            return 0;
        }
        json_decref(job);
        /* While the spinner shows, it turns between polls. */
        for (long slept = 0; slept < delay && !interrupted; slept += SPIN_MS) {
            sleep_ms(SPIN_MS);
            if (f.spinner_shown)
                spinner_tick(&f);
        }
        delay = delay * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : delay * 3 / 2;
    }
}

/* ------------------------------------------------------------------------------ submit */

/* The submit field files: each --file under its base name, as text or base64. */
static int
files_field(const struct cli_opts *o, json_t **out, co_err *err)
{
    json_auto_t *files = json_object();

    for (size_t i = 0; i < o->n_files; i++) {
        const char *slash = strrchr(o->files[i], '/');
        const char *base = slash ? slash + 1 : o->files[i];
        co_autofree char *data = NULL;
        size_t len = 0;
        if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
            return co_err_set(err, CO_E_INVAL, "--file '%s' does not name a file", o->files[i]);
        if (json_object_get(files, base) != NULL)
            return co_err_set(err, CO_E_INVAL, "--file: two files are named '%s'", base);
        if (cli_file_read(o->files[i], FILE_MAX, &data, &len, NULL, err) < 0)
            return -1;
        json_t *entry;
        if (memchr(data, '\0', len) == NULL && proto_utf8_valid(data, len)) {
            entry = json_pack("{s:s%}", "content", data, len);
        } else {
            co_autofree char *b64 = proto_base64_encode(data, len);
            entry = json_pack("{s:s}", "base64", b64);
        }
        json_object_set_new(files, base, entry);
    }
    *out = co_steal(&files);
    return 0;
}

/* The first TITLE_MAX_CHARS characters of @command (valid UTF-8 or not: cut on a boundary). */
static char *
default_title(const char *command)
{
    size_t len = strlen(command), n = 0, chars = 0;

    while (n < len && chars < TITLE_MAX_CHARS) {
        n++;
        while (n < len && ((unsigned char)command[n] & 0xC0) == 0x80)
            n++;
        chars++;
    }
    return co_xstrndup(command, n);
}

static int
cmd_submit(struct cli_ctx *ctx)
{
    const struct cli_opts *o = ctx->o;
    co_err err = CO_ERR_INIT;
    co_autofree char *command = cli_quote_join(o->argv, o->argc);
    co_autofree char *title = o->title ? co_xstrdup(o->title) : default_title(command);
    json_auto_t *body = json_object();
    json_auto_t *job = NULL;

    json_object_set_new(body, "title", json_string(title));
    json_object_set_new(body, "command", json_string(command));
    if (json_object_get(body, "command") == NULL || json_object_get(body, "title") == NULL) {
        fprintf(stderr, "cacheout: submit: the command is not valid UTF-8\n");
        return CLI_EXIT_USAGE;
    }
    json_object_set_new(body, "required_cores", json_integer(o->cores ? o->cores : DEFAULT_CORES));
    json_object_set_new(body, "required_ram_mb",
                        json_integer(o->ram_mb ? o->ram_mb : DEFAULT_RAM_MB));
    if (o->priority)
        json_object_set_new(body, "priority", json_integer(o->priority));
    if (o->timeout)
        json_object_set_new(body, "timeout_seconds", json_integer(o->timeout));
    if (o->replicas)
        json_object_set_new(body, "replicas", json_integer(o->replicas));
    if (o->image)
        json_object_set_new(body, "image", json_string(o->image));
    if (o->description)
        json_object_set_new(body, "description", json_string(o->description));
    if (o->buyer)
        json_object_set_new(body, "buyer_id", json_string(o->buyer));
    if (o->n_params > 0) {
        json_t *params = json_object();
        for (size_t i = 0; i < o->n_params; i++) {
            const char *eq = strchr(o->params[i], '=');
            co_autofree char *k = co_xstrndup(o->params[i], (size_t)(eq - o->params[i]));
            json_object_set_new(params, k, json_string(eq + 1));
        }
        json_object_set_new(body, "parameters", params);
    }
    if (o->n_files > 0) {
        json_t *files = NULL;
        if (files_field(o, &files, &err) < 0) {
            fprintf(stderr, "cacheout: submit: %s\n", err.msg);
            return CLI_EXIT_USAGE;
        }
        json_object_set_new(body, "files", files);
    }

    if (cli_api_call(ctx->http, "POST", "/submit", body, &job, &err) < 0) {
        int rc = fail(&err);
        if (strcmp(err.field, "buyer_id") == 0 && o->buyer == NULL)
            fprintf(stderr, "cacheout: say whose job it is with --buyer ID (the admin token "
                            "has no buyer of its own)\n");
        return rc;
    }
    const char *id = jstr(job, "job_id");
    if (!o->wait) {
        if (o->json)
            print_json(job);
        else
            printf("%s\n", id);
        return 0;
    }
    if (!o->json)
        fprintf(stderr, "cacheout: submitted job %s\n", id);
    json_auto_t *final = NULL;
    co_autofree char *id_copy = co_xstrdup(id);
    if (follow_job(ctx, id_copy, !o->json, &final, &err) < 0) {
        fprintf(stderr, "cacheout: %s\n", err.msg);
        return interrupted ? 130 : CLI_EXIT_API;
    }
    int status = cli_job_exit_status(final);
    if (o->json) {
        print_json(final);
    } else if (status != 0) {
        char buf[128];
        fprintf(stderr, "cacheout: job %s %s (exit status %d)\n", id_copy,
                cli_job_outcome(final, buf, sizeof(buf)), status);
    }
    return status;
}

/* ------------------------------------------------------------------- jobs, show, cancel */

static int
cmd_jobs(struct cli_ctx *ctx)
{
    const struct cli_opts *o = ctx->o;
    co_err err = CO_ERR_INIT;
    struct co_buf path = CO_BUF_INIT;
    json_auto_t *jobs = NULL;
    size_t i, w_id = 6, w_st = 6;
    json_t *j;

    co_buf_printf(&path, "/jobs?limit=%ld", o->limit ? o->limit : 100);
    if (o->status) {
        co_autofree char *e = cli_http_escape(ctx->http, o->status);
        co_buf_printf(&path, "&status=%s", e);
    }
    int rc = cli_api_call(ctx->http, "GET", path.data, NULL, &jobs, &err);
    co_buf_release(&path);
    if (rc < 0)
        return fail(&err);
    if (o->json) {
        print_json(jobs);
        return 0;
    }
    json_array_foreach(jobs, i, j)
    {
        size_t a = strlen(jstr(j, "job_id")), b = strlen(jstr(j, "status"));
        w_id = a > w_id ? a : w_id;
        w_st = b > w_st ? b : w_st;
    }
    if (ctx->tty_out)
        printf("%-*s  %-*s  %-4s  %-24s  %s\n", (int)w_id, "JOB_ID", (int)w_st, "STATUS", "EXIT",
               "CREATED", "TITLE");
    json_array_foreach(jobs, i, j)
    {
        co_autofree char *code = value_text(json_object_get(j, "exit_code"));
        const char *title = jstr(j, "title");
        printf("%-*s  %-*s  %-4s  %-24s  %s\n", (int)w_id, jstr(j, "job_id"), (int)w_st,
               jstr(j, "status"), code, jstr(j, "created_at"), title[0] ? title : "-");
    }
    return 0;
}

static void
print_job(const json_t *job)
{
    static const char *const keys[] = {
        "job_id",          "title",        "status",       "failure_reason",  "exit_code",
        "pending_reason",  "command",      "image",        "required_cores",  "required_ram_mb",
        "priority",        "replicas",     "cost",         "charged",         "buyer_id",
        "assigned_worker", "attempts",     "max_attempts", "timeout_seconds", "created_at",
        "started_at",      "completed_at", "usage",        "verification",    "parameters",
    };
    for (size_t i = 0; i < CO_ARRAY_LEN(keys); i++) {
        const json_t *v = json_object_get(job, keys[i]);
        if (v == NULL)
            continue;
        if (strcmp(keys[i], "pending_reason") == 0 && json_is_object(v)) {
            printf("%-17s %s: %s\n", "pending_reason:", jstr(v, "code"), jstr(v, "message"));
            continue;
        }
        co_autofree char *t = value_text(v);
        char label[40];
        snprintf(label, sizeof(label), "%s:", keys[i]);
        printf("%-17s %s\n", label, t);
    }
}

static int
cmd_show(struct cli_ctx *ctx)
{
    co_err err = CO_ERR_INIT;
    co_autofree char *path = job_path(ctx, ctx->o->id, "");
    json_auto_t *job = NULL;

    if (cli_api_call(ctx->http, "GET", path, NULL, &job, &err) < 0)
        return fail(&err);
    if (ctx->o->json)
        print_json(job);
    else
        print_job(job);
    return 0;
}

static int
cmd_cancel(struct cli_ctx *ctx)
{
    co_err err = CO_ERR_INIT;
    co_autofree char *path = job_path(ctx, ctx->o->id, "/cancel");
    json_auto_t *job = NULL;

    if (cli_api_call(ctx->http, "POST", path, NULL, &job, &err) < 0)
        return fail(&err);
    if (ctx->o->json)
        print_json(job);
    else
        printf("%s %s\n", jstr(job, "job_id"), jstr(job, "status"));
    return 0;
}

static int
cmd_logs(struct cli_ctx *ctx)
{
    const struct cli_opts *o = ctx->o;
    co_err err = CO_ERR_INIT;
    co_autofree char *path = job_path(ctx, o->id, "/output");
    json_auto_t *out = NULL;

    if (o->follow && !o->json) {
        json_auto_t *final = NULL;
        if (follow_job(ctx, o->id, true, &final, &err) < 0) {
            fprintf(stderr, "cacheout: %s\n", err.msg);
            return interrupted ? 130 : CLI_EXIT_API;
        }
        return 0;
    }
    if (o->follow) { /* --json -f: the whole output once the job is finished */
        json_auto_t *final = NULL;
        if (follow_job(ctx, o->id, false, &final, &err) < 0)
            return fail(&err);
    }
    if (cli_api_call(ctx->http, "GET", path, NULL, &out, &err) < 0)
        return fail(&err);
    if (o->json) {
        print_json(out);
        return 0;
    }
    const json_t *so = json_object_get(out, "stdout"), *se = json_object_get(out, "stderr");
    fwrite(json_string_value(so) ? json_string_value(so) : "", 1, json_string_length(so), stdout);
    fflush(stdout);
    fwrite(json_string_value(se) ? json_string_value(se) : "", 1, json_string_length(se), stderr);
    if (json_is_true(json_object_get(out, "truncated")))
        fprintf(stderr, "cacheout: the output was truncated (over the job's output limit)\n");
    return 0;
}

/* ---------------------------------------------------------------------------- artifacts */

/* A relative artifact path we accept: components that are not empty, "." or "..". */
static bool
safe_relpath(const char *p)
{
    if (p[0] == '\0' || p[0] == '/' || strlen(p) > 4096)
        return false;
    for (const char *c = p; *c != '\0';) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += n + (e ? 1 : 0);
        if (e && *c == '\0')
            return false; /* trailing slash */
    }
    return true;
}

/*
 * Open (creating) the folders of @rel under @root without following symbolic links; returns
 * the folder's descriptor and sets *leaf to the last component.  Errors: a component exists
 * and is not a folder (or is a link), or cannot be made.
 */
static int
open_parent(int root, const char *rel, const char **leaf, co_err *err)
{
    int fd = dup(root);
    const char *c = rel;

    if (fd < 0)
        return co_err_sys(err, errno, "dup");
    for (const char *e; (e = strchr(c, '/')) != NULL; c = e + 1) {
        co_autofree char *comp = co_xstrndup(c, (size_t)(e - c));
        if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
            close(fd);
            return co_err_sys(err, errno, "cannot make folder '%.*s'", (int)(e - rel), rel);
        }
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        if (next < 0)
            return co_err_sys(err, errno, "cannot open folder '%.*s'", (int)(e - rel), rel);
        fd = next;
    }
    *leaf = c;
    return fd;
}

struct dl {
    int fd;
    EVP_MD_CTX *md;
    unsigned long long size;
};

static int
dl_sink(void *ud, const void *data, size_t len)
{
    struct dl *d = ud;
    const char *p = data;

    EVP_DigestUpdate(d->md, data, len);
    d->size += len;
    while (len > 0) {
        ssize_t n = write(d->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Download artifact @a of job @id into @root, check its size and sha256, then rename it in. */
static int
download_one(struct cli_ctx *ctx, int root, const char *id, const json_t *a, co_err *err)
{
    const char *rel = jstr(a, "path"), *want = jstr(a, "sha256"), *leaf = NULL;
    json_int_t want_size = json_integer_value(json_object_get(a, "size"));
    struct co_buf url = CO_BUF_INIT;
    struct cli_resp resp = {0};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    int rc = -1;

    if (!safe_relpath(rel))
        return co_err_set(err, CO_E_INVAL, "artifact path '%s' refused (absolute or with '..')",
                          rel);
    co_autoclose int dir = open_parent(root, rel, &leaf, err);
    if (dir < 0)
        return -1;
    co_autofree char *tmp = co_xasprintf(".%s.part-%ld", leaf, (long)getpid());
    struct dl d = {.fd =
                       openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644),
                   .md = EVP_MD_CTX_new()};
    if (d.fd < 0) {
        EVP_MD_CTX_free(d.md);
        return co_err_sys(err, errno, "cannot create a file for '%s'", rel);
    }
    EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);

    /* The path's components escaped one by one, its slashes kept. */
    co_autofree char *base = job_path(ctx, id, "/artifacts");
    co_buf_puts(&url, base);
    for (const char *c = rel; *c != '\0';) {
        const char *e = strchr(c, '/');
        co_autofree char *comp = co_xstrndup(c, e ? (size_t)(e - c) : strlen(c));
        co_autofree char *esc = cli_http_escape(ctx->http, comp);
        co_buf_printf(&url, "/%s", esc);
        c = e ? e + 1 : c + strlen(c);
    }
    if (cli_http_get_to(ctx->http, url.data, dl_sink, &d, &resp, err) < 0)
        goto out;
    if (resp.status < 200 || resp.status >= 300) {
        cli_api_error_message(resp.status, resp.body.data, resp.body.len, resp.retry_after, err);
        co_err_wrap(err, "artifact '%s'", rel);
        goto out;
    }
    EVP_DigestFinal_ex(d.md, md, &md_len);
    for (unsigned int i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if ((json_int_t)d.size != want_size || strcasecmp(hex, want) != 0) {
        co_err_set(err, CO_E_INVAL,
                   "artifact '%s' is damaged: got %llu bytes with sha256 %s, the list says %lld "
                   "bytes with sha256 %s",
                   rel, d.size, hex, (long long)want_size, want);
        goto out;
    }
    if (fsync(d.fd) < 0 || renameat(dir, tmp, dir, leaf) < 0) {
        co_err_sys(err, errno, "cannot store artifact '%s'", rel);
        goto out;
    }
    if (!ctx->o->json)
        printf("%s  %llu  %s\n", hex, d.size, rel);
    rc = 0;
out:
    close(d.fd);
    if (rc < 0)
        unlinkat(dir, tmp, 0);
    EVP_MD_CTX_free(d.md);
    co_buf_release(&url);
    cli_resp_release(&resp);
    return rc;
}

static int
cmd_artifacts(struct cli_ctx *ctx)
{
    const struct cli_opts *o = ctx->o;
    const char *dir = o->out_dir ? o->out_dir : ".";
    co_err err = CO_ERR_INIT;
    co_autofree char *path = job_path(ctx, o->id, "/artifacts");
    json_auto_t *list = NULL;
    size_t i;
    json_t *a;

    if (cli_api_call(ctx->http, "GET", path, NULL, &list, &err) < 0)
        return fail(&err);
    if (!json_is_array(list)) {
        fprintf(stderr, "cacheout: the artifact list is not a JSON array\n");
        return CLI_EXIT_API;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "cacheout: cannot make folder '%s': %s\n", dir, strerror(errno));
        return CLI_EXIT_API;
    }
    co_autoclose int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        fprintf(stderr, "cacheout: cannot open folder '%s': %s\n", dir, strerror(errno));
        return CLI_EXIT_API;
    }
    json_array_foreach(list, i, a)
    {
        if (download_one(ctx, root, o->id, a, &err) < 0)
            return fail(&err);
    }
    if (o->json)
        print_json(list);
    else if (json_array_size(list) == 0)
        fprintf(stderr, "cacheout: job %s has no artifacts\n", o->id);
    return 0;
}

/* ------------------------------------------------------------------------ balance, keys */

/* The user the command is about: --user, else the credential's own (GET /me). */
static char *
whoami(struct cli_ctx *ctx, co_err *err)
{
    json_auto_t *me = NULL;

    if (ctx->o->user)
        return co_xstrdup(ctx->o->user);
    if (cli_api_call(ctx->http, "GET", "/me", NULL, &me, err) < 0) {
        co_err_wrap(err, "who am I (GET /api/v1/me)");
        return NULL;
    }
    const char *id = jstr(me, "user_id");
    if (id[0] == '\0') {
        co_err_set(err, CO_E_INVAL, "GET /api/v1/me: the answer has no user_id");
        return NULL;
    }
    return co_xstrdup(id);
}

static int
cmd_balance(struct cli_ctx *ctx)
{
    co_err err = CO_ERR_INIT;
    co_autofree char *user = whoami(ctx, &err);
    json_auto_t *bal = NULL;
    char credits[64], held[64];

    if (user == NULL)
        return fail(&err);
    co_autofree char *e = cli_http_escape(ctx->http, user);
    co_autofree char *path = co_xasprintf("/credits/%s", e);
    if (cli_api_call(ctx->http, "GET", path, NULL, &bal, &err) < 0)
        return fail(&err);
    if (ctx->o->json) {
        print_json(bal);
        return 0;
    }
    credits_text(json_object_get(bal, "credits"), credits, sizeof(credits));
    credits_text(json_object_get(bal, "held"), held, sizeof(held));
    printf("user: %s\ncredits: %s\nheld: %s\n", jstr(bal, "user_id"), credits, held);
    return 0;
}

static int
cmd_keys_create(struct cli_ctx *ctx)
{
    const struct cli_opts *o = ctx->o;
    co_err err = CO_ERR_INIT;
    co_autofree char *user = whoami(ctx, &err);
    json_auto_t *body = NULL, *key = NULL;

    if (user == NULL)
        return fail(&err);
    body = json_pack("{s:s}", "name", o->name);
    if (body == NULL) {
        fprintf(stderr, "cacheout: keys create: the name is not valid UTF-8\n");
        return CLI_EXIT_USAGE;
    }
    if (o->scopes != 0) {
        json_t *scopes = json_array();
        if (o->scopes & CLI_SCOPE_BUY)
            json_array_append_new(scopes, json_string("buy"));
        if (o->scopes & CLI_SCOPE_SELL)
            json_array_append_new(scopes, json_string("sell"));
        json_object_set_new(body, "scopes", scopes);
    }
    co_autofree char *e = cli_http_escape(ctx->http, user);
    co_autofree char *path = co_xasprintf("/users/%s/keys", e);
    if (cli_api_call(ctx->http, "POST", path, body, &key, &err) < 0)
        return fail(&err);
    if (o->json) {
        print_json(key);
        return 0;
    }
    co_autofree char *scopes = value_text(json_object_get(key, "scopes"));
    fprintf(stderr,
            "cacheout: key %s ('%s', scopes %s) created for user %s; its token is printed below "
            "and shown only this once\n",
            jstr(key, "key_id"), jstr(key, "name"), scopes, user);
    printf("%s\n", jstr(key, "token"));
    return 0;
}

int
cli_cmd_run(struct cli_ctx *ctx)
{
    switch (ctx->o->cmd) {
    case CLI_CMD_SUBMIT:
        return cmd_submit(ctx);
    case CLI_CMD_JOBS:
        return cmd_jobs(ctx);
    case CLI_CMD_SHOW:
        return cmd_show(ctx);
    case CLI_CMD_LOGS:
        return cmd_logs(ctx);
    case CLI_CMD_CANCEL:
        return cmd_cancel(ctx);
    case CLI_CMD_ARTIFACTS:
        return cmd_artifacts(ctx);
    case CLI_CMD_BALANCE:
        return cmd_balance(ctx);
    case CLI_CMD_KEYS_CREATE:
        return cmd_keys_create(ctx);
    default:
        fputs(cli_usage(CLI_CMD_NONE), stderr);
        return CLI_EXIT_USAGE;
    }
}
