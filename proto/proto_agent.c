/* proto_agent: encode and decode "cacheout.agent.v1" messages (see proto_agent.h). */
#include "proto_agent.h"

#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "co_alloc.h"
#include "proto_fields.h"
#include "proto_files.h"
#include "proto_job.h"
#include "proto_json.h"

#define INT32_RANGE INT32_MAX
/* 1 EiB of RAM in MiB: far above any machine, far below overflow in any arithmetic on it. */
#define RAM_MB_MAX (INT64_C(1) << 40)

static const char *const msg_names[] = {
    [PROTO_MSG_HELLO] = "hello",
    [PROTO_MSG_WELCOME] = "welcome",
    [PROTO_MSG_HEARTBEAT] = "heartbeat",
    [PROTO_MSG_JOB_ASSIGN] = "job.assign",
    [PROTO_MSG_JOB_ACCEPTED] = "job.accepted",
    [PROTO_MSG_JOB_REJECTED] = "job.rejected",
    [PROTO_MSG_JOB_STARTED] = "job.started",
    [PROTO_MSG_JOB_OUTPUT] = "job.output",
    [PROTO_MSG_JOB_FINISHED] = "job.finished",
    [PROTO_MSG_JOB_CANCEL] = "job.cancel",
    [PROTO_MSG_ERROR] = "error",
    [PROTO_MSG_JOB_ACK] = "job.ack",
    [PROTO_MSG_JOB_ARTIFACT] = "job.artifact",
    [PROTO_MSG_JOB_ARTIFACTS] = "job.artifacts",
};

static const char *const status_names[] = {
    [PROTO_RUN_OK] = "ok",
    [PROTO_RUN_RUNTIME_ERROR] = "runtime_error",
    [PROTO_RUN_SIGNALED] = "signaled",
    [PROTO_RUN_TIMEOUT] = "timeout",
    [PROTO_RUN_CPU_TIMEOUT] = "cpu_timeout",
    [PROTO_RUN_OOM] = "oom",
    [PROTO_RUN_SECCOMP] = "seccomp",
    [PROTO_RUN_OUTPUT_LIMIT] = "output_limit",
    [PROTO_RUN_INTERNAL_ERROR] = "internal_error",
    [PROTO_RUN_CANCELLED] = "cancelled",
};

const char *
proto_msg_type_name(enum proto_msg_type t)
{
    if ((size_t)t >= CO_ARRAY_LEN(msg_names))
        return NULL;
    return msg_names[t];
}

const char *
proto_run_status_name(enum proto_run_status s)
{
    if ((size_t)s >= CO_ARRAY_LEN(status_names))
        return NULL;
    return status_names[s];
}

int
proto_run_status_parse(const char *name, enum proto_run_status *out)
{
    for (size_t i = 0; i < CO_ARRAY_LEN(status_names); i++) {
        if (status_names[i] != NULL && strcmp(name, status_names[i]) == 0) {
            *out = (enum proto_run_status)i;
            return 0;
        }
    }
    return -1;
}

/* Decoding -------------------------------------------------------------------------------- */

/* Free text that is logged or shown: no control characters (tab excepted). */
static int
check_printable(const char *s, const char *key, co_err *err)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return co_err_field(err, CO_E_INVAL, key, "invalid '%s': contains a control character",
                                key);
    }
    return 0;
}

static int
decode_ref(const json_t *o, struct proto_job_ref *ref, co_err *err)
{
    if (pf_id(o, "job_id", true, ref->job_id, err) < 0 ||
        pf_int(o, "attempt", true, 1, INT32_RANGE, &ref->attempt, err) < 0)
        return -1;
    return 0;
}

/* An optional price of the hello (credits >= 0): sets h->has_price when present. */
static int
decode_hello_price(const json_t *o, const char *key, struct proto_hello *h, int64_t *out,
                   co_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (proto_json_get_credits(v, key, out, err) < 0 || *out < 0)
        return co_err_field(err, CO_E_INVAL, key,
                            "invalid '%s': a number of credits >= 0 with at most 6 decimals", key);
    h->has_price = true;
    return 0;
}

static int
decode_hello(const json_t *o, struct proto_hello *h, co_err *err)
{
    const json_t *arr = NULL, *el;
    size_t i;

    if (pf_string_dup(o, "token", false, 0, PROTO_TOKEN_MAX, PF_BYTES, &h->token, err) < 0 ||
        pf_id(o, "worker_id", true, h->worker_id, err) < 0)
        return -1;
    memcpy(h->owner_id, h->worker_id, sizeof(h->owner_id));
    if (pf_id(o, "owner_id", false, h->owner_id, err) < 0 ||
        pf_int(o, "cores", true, 1, INT32_RANGE, &h->cores, err) < 0 ||
        pf_int(o, "ram_mb", true, 1, RAM_MB_MAX, &h->ram_mb, err) < 0)
        return -1;

    if (pf_array(o, "images", false, PROTO_HELLO_IMAGES_MAX, &arr, err) < 0)
        return -1;
    if (arr != NULL && json_array_size(arr) > 0) {
        h->images = co_xcalloc(json_array_size(arr), sizeof(*h->images));
        json_array_foreach((json_t *)arr, i, el)
        {
            const char *s = json_string_value(el);
            if (s == NULL || !co_id_valid(s))
                return co_err_field(err, CO_E_INVAL, "images",
                                    "invalid 'images': element %zu is not an id", i);
            h->images[h->n_images++] = co_xstrdup(s);
        }
    }

    arr = NULL;
    if (pf_array(o, "running", false, PROTO_HELLO_RUNNING_MAX, &arr, err) < 0)
        return -1;
    if (arr != NULL && json_array_size(arr) > 0) {
        h->running = co_xcalloc(json_array_size(arr), sizeof(*h->running));
        json_array_foreach((json_t *)arr, i, el)
        {
            if (!json_is_object(el))
                return co_err_field(err, CO_E_INVAL, "running",
                                    "invalid 'running': element %zu is not an object", i);
            if (decode_ref(el, &h->running[i], err) < 0) {
                co_err_wrap(err, "invalid 'running': element %zu", i);
                co_strlcpy(err->field, "running", sizeof(err->field));
                return -1;
            }
            h->n_running++;
        }
    }

    if (pf_string_dup(o, "agent_version", false, 0, PROTO_AGENT_VERSION_MAX, PF_BYTES,
                      &h->agent_version, err) < 0 ||
        decode_hello_price(o, "price_per_core_second", h, &h->price_per_core_second, err) < 0 ||
        decode_hello_price(o, "price_per_gb_second", h, &h->price_per_gb_second, err) < 0)
        return -1;
    if (h->token == NULL)
        h->token = co_xstrdup("");
    if (h->agent_version == NULL)
        h->agent_version = co_xstrdup("");
    return check_printable(h->agent_version, "agent_version", err);
}

static int
decode_welcome(const json_t *o, struct proto_welcome *w, co_err *err)
{
    if (pf_id(o, "worker_id", true, w->worker_id, err) < 0 ||
        pf_int(o, "heartbeat_interval_ms", true, 1, INT32_RANGE, &w->heartbeat_interval_ms, err) <
            0 ||
        pf_int(o, "lease_timeout_ms", true, 1, INT32_RANGE, &w->lease_timeout_ms, err) < 0 ||
        pf_string_dup(o, "server_time", true, 1, PROTO_TIME_MAX, PF_BYTES, &w->server_time, err) <
            0)
        return -1;
    return check_printable(w->server_time, "server_time", err);
}

static int
decode_heartbeat(const json_t *o, struct proto_heartbeat *h, co_err *err)
{
    h->running = h->free_cores = h->free_ram_mb = -1;
    if (pf_int(o, "seq", true, 0, INT64_MAX, &h->seq, err) < 0 ||
        pf_int(o, "running", false, 0, INT32_RANGE, &h->running, err) < 0 ||
        pf_int(o, "free_cores", false, 0, INT32_RANGE, &h->free_cores, err) < 0 ||
        pf_int(o, "free_ram_mb", false, 0, RAM_MB_MAX, &h->free_ram_mb, err) < 0)
        return -1;
    return 0;
}

/* The input files of a job.assign: checked as at submit, kept as normalised text. */
static int
decode_assign_files(const json_t *o, struct proto_job_assign *a, co_err *err)
{
    const json_t *files = NULL;
    int rc = pf_object(o, "files", false, &files, err);
    if (rc <= 0)
        return rc;
    const char *reserved[] = {PROTO_PARAMS_FILE, a->code[0] ? a->code_file : NULL, NULL};
    if (proto_files_check(files, reserved, NULL, err) < 0)
        return -1;
    if (json_object_size(files) > 0)
        a->files = proto_json_dumps(files, 0, NULL);
    return 0;
}

static int
decode_assign(const json_t *o, struct proto_job_assign *a, co_err *err)
{
    const json_t *params = NULL;
    char **argv = NULL;
    size_t argc;

    if (decode_ref(o, &a->job, err) < 0 ||
        pf_string_dup(o, "title", true, 1, PROTO_TITLE_MAX, PF_CHARS, &a->title, err) < 0 ||
        pf_string_dup(o, "command", true, 1, PROTO_COMMAND_MAX, PF_CHARS, &a->command, err) < 0)
        return -1;
    if (proto_argv_split(a->command, &argv, &argc, err) < 0)
        return -1;
    proto_argv_free(argv);
    if (pf_string_dup(o, "code", false, 0, PROTO_CODE_MAX, PF_BYTES, &a->code, err) < 0 ||
        pf_string_dup(o, "code_file", true, 1, PROTO_CODE_FILE_MAX, PF_BYTES, &a->code_file, err) <
            0 ||
        proto_code_file_check(a->code_file, strlen(a->code_file), err) < 0)
        return -1;
    if (pf_object(o, "parameters", false, &params, err) < 0)
        return -1;
    a->parameters = params != NULL ? proto_json_dumps(params, 0, NULL) : co_xstrdup("{}");
    if (a->parameters == NULL)
        return co_err_field(err, CO_E_INVAL, "parameters", "invalid 'parameters': cannot encode");
    if (strlen(a->parameters) > PROTO_PARAMETERS_MAX)
        return co_err_field(err, CO_E_INVAL, "parameters", "invalid 'parameters': too large");
    co_strlcpy(a->image, PROTO_IMAGE_DEFAULT, sizeof(a->image));
    if (pf_id(o, "image", false, a->image, err) < 0 ||
        pf_int(o, "required_cores", true, 1, INT32_RANGE, &a->required_cores, err) < 0 ||
        pf_int(o, "required_ram_mb", true, 1, RAM_MB_MAX, &a->required_ram_mb, err) < 0 ||
        pf_int(o, "timeout_seconds", true, PROTO_TIMEOUT_MIN, PROTO_TIMEOUT_MAX,
               &a->timeout_seconds, err) < 0)
        return -1;
    if (a->code == NULL)
        a->code = co_xstrdup("");
    return decode_assign_files(o, a, err);
}

static int
decode_ack(const json_t *o, bool rejected, struct proto_job_ack *a, co_err *err)
{
    if (decode_ref(o, &a->job, err) < 0)
        return -1;
    if (!rejected)
        return 0;
    if (pf_string_dup(o, "reason", true, 0, PROTO_REASON_MAX, PF_BYTES, &a->reason, err) < 0)
        return -1;
    return 0;
}

static int
decode_started(const json_t *o, struct proto_job_started *s, co_err *err)
{
    if (decode_ref(o, &s->job, err) < 0 ||
        pf_string_dup(o, "started_at", true, 1, PROTO_TIME_MAX, PF_BYTES, &s->started_at, err) < 0)
        return -1;
    return check_printable(s->started_at, "started_at", err);
}

static int
decode_output(const json_t *o, struct proto_job_output *out, co_err *err)
{
    const char *s, *b64;
    size_t len, b64_len;
    int has_data, has_b64;

    if (decode_ref(o, &out->job, err) < 0 ||
        pf_string(o, "stream", true, 1, 16, PF_BYTES, &s, NULL, err) < 0)
        return -1;
    if (strcmp(s, "stdout") == 0)
        out->stream = PROTO_STREAM_STDOUT;
    else if (strcmp(s, "stderr") == 0)
        out->stream = PROTO_STREAM_STDERR;
    else
        return co_err_field(err, CO_E_INVAL, "stream",
                            "invalid 'stream': must be \"stdout\" or \"stderr\"");
    out->offset = -1;
    if (pf_int(o, "seq", true, 0, INT64_MAX, &out->seq, err) < 0 ||
        pf_int(o, "offset", false, 0, INT64_MAX, &out->offset, err) < 0 ||
        pf_bool(o, "eof", false, &out->eof, err) < 0)
        return -1;
    has_data = pf_string(o, "data", false, 0, PROTO_OUTPUT_CHUNK_MAX, PF_BYTES, &s, &len, err);
    if (has_data < 0)
        return -1;
    has_b64 = pf_string(o, "data_b64", false, 0, proto_base64_len(PROTO_OUTPUT_CHUNK_MAX), PF_BYTES,
                        &b64, &b64_len, err);
    if (has_b64 < 0)
        return -1;
    if (has_data && has_b64)
        return co_err_field(err, CO_E_INVAL, "data_b64",
                            "invalid 'data_b64': 'data' and 'data_b64' are exclusive");
    if (has_data) {
        out->data = co_xstrndup(s, len);
        out->data_len = len;
    } else if (has_b64) {
        if (proto_base64_decode(b64, b64_len, &out->data, &out->data_len, err) < 0) {
            co_strlcpy(err->field, "data_b64", sizeof(err->field));
            return co_err_wrap(err, "invalid 'data_b64'");
        }
    } else {
        return co_err_field(err, CO_E_INVAL, "data", "missing 'data'");
    }
    return 0;
}

static int
decode_finished(const json_t *o, struct proto_job_finished *f, co_err *err)
{
    const char *s;
    int64_t v;
    int rc;

    if (decode_ref(o, &f->job, err) < 0 ||
        pf_string(o, "status", true, 1, 32, PF_BYTES, &s, NULL, err) < 0)
        return -1;
    if (proto_run_status_parse(s, &f->status) < 0)
        return co_err_field(err, CO_E_INVAL, "status", "invalid 'status': unknown run status");
    rc = pf_int(o, "exit_code", false, 0, 255, &v, err);
    if (rc < 0)
        return -1;
    f->has_exit_code = rc == 1;
    f->exit_code = rc == 1 ? (int)v : 0;
    rc = pf_int(o, "signal", false, 1, 64, &v, err);
    if (rc < 0)
        return -1;
    f->has_signal = rc == 1;
    f->signal = rc == 1 ? (int)v : 0;
    if (pf_int(o, "wall_ms", true, 0, INT64_MAX, &f->wall_ms, err) < 0 ||
        pf_int(o, "cpu_ms", true, 0, INT64_MAX, &f->cpu_ms, err) < 0 ||
        pf_int(o, "max_rss_kb", true, 0, INT64_MAX, &f->max_rss_kb, err) < 0 ||
        pf_int(o, "memory_peak_kb", false, 0, INT64_MAX, &f->memory_peak_kb, err) < 0 ||
        pf_bool(o, "stdout_truncated", false, &f->stdout_truncated, err) < 0 ||
        pf_bool(o, "stderr_truncated", false, &f->stderr_truncated, err) < 0 ||
        pf_string_dup(o, "error", false, 0, PROTO_MESSAGE_MAX, PF_BYTES, &f->error, err) < 0)
        return -1;
    return 0;
}

static int
decode_cancel(const json_t *o, struct proto_job_cancel *c, co_err *err)
{
    if (decode_ref(o, &c->job, err) < 0 ||
        pf_string_dup(o, "reason", false, 0, PROTO_REASON_MAX, PF_BYTES, &c->reason, err) < 0)
        return -1;
    if (c->reason == NULL)
        c->reason = co_xstrdup("");
    return 0;
}

static int
decode_error(const json_t *o, struct proto_error *e, co_err *err)
{
    int rc;

    if (pf_id(o, "code", true, e->code, err) < 0 ||
        pf_string_dup(o, "message", true, 0, PROTO_MESSAGE_MAX, PF_BYTES, &e->message, err) < 0)
        return -1;
    rc = pf_id(o, "job_id", false, e->job.job_id, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        e->has_job = true;
        if (pf_int(o, "attempt", true, 1, INT32_RANGE, &e->job.attempt, err) < 0)
            return -1;
    }
    return 0;
}

/* Artifacts ------------------------------------------------------------------------------- */

static int
decode_artifact(const json_t *o, struct proto_job_artifact *a, co_err *err)
{
    const char *p, *b64;
    size_t len, b64_len;

    if (decode_ref(o, &a->job, err) < 0 ||
        pf_string(o, "path", true, 1, PROTO_FILE_PATH_MAX, PF_BYTES, &p, &len, err) < 0 ||
        proto_file_path_check(p, len, "path", err) < 0 ||
        pf_int(o, "offset", true, 0, PROTO_ARTIFACT_BYTES_MAX, &a->offset, err) < 0 ||
        pf_bool(o, "eof", false, &a->eof, err) < 0 ||
        pf_string(o, "data_b64", true, 0, proto_base64_len(PROTO_ARTIFACT_CHUNK_MAX), PF_BYTES,
                  &b64, &b64_len, err) < 0)
        return -1;
    a->path = co_xstrndup(p, len);
    if (proto_base64_decode(b64, b64_len, &a->data, &a->data_len, err) < 0) {
        co_strlcpy(err->field, "data_b64", sizeof(err->field));
        return co_err_wrap(err, "invalid 'data_b64'");
    }
    return 0;
}

static int
decode_artifacts(const json_t *o, struct proto_job_artifacts *a, co_err *err)
{
    if (decode_ref(o, &a->job, err) < 0 ||
        pf_int(o, "files", true, 0, PROTO_ARTIFACT_FILES_MAX, &a->files, err) < 0 ||
        pf_int(o, "bytes", true, 0, PROTO_ARTIFACT_BYTES_MAX, &a->bytes, err) < 0 ||
        pf_bool(o, "truncated", true, &a->truncated, err) < 0 ||
        pf_int(o, "skipped", false, 0, INT64_MAX, &a->skipped, err) < 0 ||
        pf_string_dup(o, "notes", false, 0, PROTO_MESSAGE_MAX, PF_BYTES, &a->notes, err) < 0)
        return -1;
    return 0;
}

static int
decode_body(const json_t *o, struct proto_msg *m, co_err *err)
{
    switch (m->type) {
    case PROTO_MSG_HELLO:
        return decode_hello(o, &m->u.hello, err);
    case PROTO_MSG_WELCOME:
        return decode_welcome(o, &m->u.welcome, err);
    case PROTO_MSG_HEARTBEAT:
        return decode_heartbeat(o, &m->u.heartbeat, err);
    case PROTO_MSG_JOB_ASSIGN:
        return decode_assign(o, &m->u.assign, err);
    case PROTO_MSG_JOB_ACCEPTED:
        return decode_ack(o, false, &m->u.ack, err);
    case PROTO_MSG_JOB_REJECTED:
        return decode_ack(o, true, &m->u.ack, err);
    case PROTO_MSG_JOB_ACK:
        return decode_ack(o, false, &m->u.ack, err);
    case PROTO_MSG_JOB_STARTED:
        return decode_started(o, &m->u.started, err);
    case PROTO_MSG_JOB_OUTPUT:
        return decode_output(o, &m->u.output, err);
    case PROTO_MSG_JOB_FINISHED:
        return decode_finished(o, &m->u.finished, err);
    case PROTO_MSG_JOB_CANCEL:
        return decode_cancel(o, &m->u.cancel, err);
    case PROTO_MSG_ERROR:
        return decode_error(o, &m->u.error, err);
    case PROTO_MSG_JOB_ARTIFACT:
        return decode_artifact(o, &m->u.artifact, err);
    case PROTO_MSG_JOB_ARTIFACTS:
        return decode_artifacts(o, &m->u.artifacts, err);
    case PROTO_MSG_NONE:
        break;
    }
    return co_err_set(err, CO_E_INTERNAL, "unhandled message type %d", (int)m->type);
}

int
proto_msg_decode(const char *buf, size_t len, struct proto_msg *out, co_err *err)
{
    json_auto_t *o = NULL;
    const char *type;
    int64_t v;

    memset(out, 0, sizeof(*out));
    o = proto_json_load_object(buf, len, PROTO_MSG_MAX, err);
    if (o == NULL)
        return -1;
    if (pf_int(o, "v", true, INT64_MIN, INT64_MAX, &v, err) < 0)
        return -1;
    if (v != PROTO_AGENT_VERSION)
        return co_err_field(err, CO_E_INVAL, "v", "unsupported protocol version %lld",
                            (long long)v);
    if (pf_string(o, "type", true, 1, SIZE_MAX, PF_BYTES, &type, NULL, err) < 0)
        return -1;
    for (size_t i = 1; i < CO_ARRAY_LEN(msg_names); i++) {
        if (strcmp(type, msg_names[i]) == 0) {
            out->type = (enum proto_msg_type)i;
            break;
        }
    }
    if (out->type == PROTO_MSG_NONE) {
        char name[48];
        pf_field_name(name, sizeof(name), type);
        return co_err_field(err, CO_E_INVAL, "type", "unknown message type '%s'", name);
    }
    if (decode_body(o, out, err) < 0) {
        co_err_wrap(err, "%s", msg_names[out->type]);
        proto_msg_release(out);
        return -1;
    }
    return 0;
}

/* Release --------------------------------------------------------------------------------- */

void
proto_msg_release(struct proto_msg *m)
{
    if (m == NULL)
        return;
    switch (m->type) {
    case PROTO_MSG_HELLO:
        free(m->u.hello.token);
        for (size_t i = 0; i < m->u.hello.n_images; i++)
            free(m->u.hello.images[i]);
        free(m->u.hello.images);
        free(m->u.hello.running);
        free(m->u.hello.agent_version);
        break;
    case PROTO_MSG_WELCOME:
        free(m->u.welcome.server_time);
        break;
    case PROTO_MSG_JOB_ASSIGN:
        free(m->u.assign.title);
        free(m->u.assign.command);
        free(m->u.assign.code);
        free(m->u.assign.code_file);
        free(m->u.assign.parameters);
        free(m->u.assign.files);
        break;
    case PROTO_MSG_JOB_ACCEPTED:
    case PROTO_MSG_JOB_REJECTED:
    case PROTO_MSG_JOB_ACK:
        free(m->u.ack.reason);
        break;
    case PROTO_MSG_JOB_STARTED:
        free(m->u.started.started_at);
        break;
    case PROTO_MSG_JOB_OUTPUT:
        free(m->u.output.data);
        break;
    case PROTO_MSG_JOB_FINISHED:
        free(m->u.finished.error);
        break;
    case PROTO_MSG_JOB_CANCEL:
        free(m->u.cancel.reason);
        break;
    case PROTO_MSG_JOB_ARTIFACT:
        free(m->u.artifact.path);
        free(m->u.artifact.data);
        break;
    case PROTO_MSG_JOB_ARTIFACTS:
        free(m->u.artifacts.notes);
        break;
    case PROTO_MSG_ERROR:
        free(m->u.error.message);
        break;
    case PROTO_MSG_HEARTBEAT:
    case PROTO_MSG_NONE:
        break;
    }
    memset(m, 0, sizeof(*m));
}

/* Encoding -------------------------------------------------------------------------------- */

struct enc {
    json_t *o;
    bool bad; /* something could not be encoded */
};

static void
put(struct enc *e, const char *key, json_t *v)
{
    if (v == NULL) {
        e->bad = true;
        return;
    }
    json_object_set_new(e->o, key, v);
}

/* A required string: NULL is sent as "" when @null_ok, else the message cannot be encoded. */
static void
put_str(struct enc *e, const char *key, const char *s, bool null_ok)
{
    if (s == NULL && !null_ok) {
        e->bad = true;
        return;
    }
    put(e, key, json_string(s != NULL ? s : ""));
}

static void
put_int(struct enc *e, const char *key, int64_t v)
{
    put(e, key, json_integer(v));
}

static void
put_ref(struct enc *e, const struct proto_job_ref *ref)
{
    put_str(e, "job_id", ref->job_id, false);
    put_int(e, "attempt", ref->attempt);
}

static void
enc_hello(struct enc *e, const struct proto_hello *h)
{
    json_t *arr;

    put_str(e, "token", h->token, true);
    put_str(e, "worker_id", h->worker_id, false);
    put_str(e, "owner_id", h->owner_id[0] != '\0' ? h->owner_id : h->worker_id, false);
    put_int(e, "cores", h->cores);
    put_int(e, "ram_mb", h->ram_mb);
    arr = json_array();
    for (size_t i = 0; i < h->n_images; i++) {
        json_t *s = h->images[i] != NULL ? json_string(h->images[i]) : NULL;
        if (s == NULL)
            e->bad = true;
        else
            json_array_append_new(arr, s);
    }
    put(e, "images", arr);
    arr = json_array();
    for (size_t i = 0; i < h->n_running; i++) {
        json_t *r = json_object();
        struct enc sub = {r, false};
        put_ref(&sub, &h->running[i]);
        e->bad |= sub.bad;
        json_array_append_new(arr, r);
    }
    put(e, "running", arr);
    put_str(e, "agent_version", h->agent_version, true);
    if (h->has_price) {
        put(e, "price_per_core_second", proto_json_credits(h->price_per_core_second));
        put(e, "price_per_gb_second", proto_json_credits(h->price_per_gb_second));
    }
}

static void
enc_assign_files(struct enc *e, const struct proto_job_assign *a)
{
    if (a->files != NULL && a->files[0] != '\0')
        put(e, "files", proto_json_load_object(a->files, strlen(a->files), PROTO_MSG_MAX, NULL));
}

static void
enc_assign(struct enc *e, const struct proto_job_assign *a)
{
    json_t *params;

    put_ref(e, &a->job);
    put_str(e, "title", a->title, false);
    put_str(e, "command", a->command, false);
    put_str(e, "code", a->code, true);
    put_str(e, "code_file", a->code_file, false);
    if (a->parameters != NULL) {
        params = proto_json_load_object(a->parameters, strlen(a->parameters), PROTO_MSG_MAX, NULL);
        put(e, "parameters", params);
    } else {
        put(e, "parameters", json_object());
    }
    put_str(e, "image", a->image[0] != '\0' ? a->image : PROTO_IMAGE_DEFAULT, false);
    put_int(e, "required_cores", a->required_cores);
    put_int(e, "required_ram_mb", a->required_ram_mb);
    put_int(e, "timeout_seconds", a->timeout_seconds);
    enc_assign_files(e, a);
}

static void
enc_output(struct enc *e, const struct proto_job_output *out)
{
    const char *data = out->data != NULL ? out->data : "";
    size_t len = out->data != NULL ? out->data_len : 0;

    put_ref(e, &out->job);
    put_str(e, "stream", out->stream == PROTO_STREAM_STDERR ? "stderr" : "stdout", false);
    put_int(e, "seq", out->seq);
    if (out->offset >= 0)
        put_int(e, "offset", out->offset);
    if (proto_utf8_valid(data, len) && memchr(data, '\0', len) == NULL) {
        put(e, "data", json_stringn(data, len));
    } else {
        char *b64 = proto_base64_encode(data, len);
        put(e, "data_b64", json_string(b64));
        free(b64);
    }
    if (out->eof)
        put(e, "eof", json_true());
}

static void
enc_finished(struct enc *e, const struct proto_job_finished *f)
{
    put_ref(e, &f->job);
    put_str(e, "status", proto_run_status_name(f->status), false);
    put(e, "exit_code", f->has_exit_code ? json_integer(f->exit_code) : json_null());
    put(e, "signal", f->has_signal ? json_integer(f->signal) : json_null());
    put_int(e, "wall_ms", f->wall_ms);
    put_int(e, "cpu_ms", f->cpu_ms);
    put_int(e, "max_rss_kb", f->max_rss_kb);
    put_int(e, "memory_peak_kb", f->memory_peak_kb);
    put(e, "stdout_truncated", json_boolean(f->stdout_truncated));
    put(e, "stderr_truncated", json_boolean(f->stderr_truncated));
    if (f->error != NULL)
        put_str(e, "error", f->error, false);
}

static void
enc_artifact(struct enc *e, const struct proto_job_artifact *a)
{
    put_ref(e, &a->job);
    put_str(e, "path", a->path, false);
    put_int(e, "offset", a->offset);
    char *b64 = proto_base64_encode(a->data != NULL ? a->data : "", a->data ? a->data_len : 0);
    put(e, "data_b64", json_string(b64));
    free(b64);
    if (a->eof)
        put(e, "eof", json_true());
}

static void
enc_artifacts(struct enc *e, const struct proto_job_artifacts *a)
{
    put_ref(e, &a->job);
    put_int(e, "files", a->files);
    put_int(e, "bytes", a->bytes);
    put(e, "truncated", json_boolean(a->truncated));
    put_int(e, "skipped", a->skipped);
    if (a->notes != NULL)
        put_str(e, "notes", a->notes, false);
}

static void
enc_body(struct enc *e, const struct proto_msg *m)
{
    switch (m->type) {
    case PROTO_MSG_HELLO:
        enc_hello(e, &m->u.hello);
        break;
    case PROTO_MSG_WELCOME:
        put_str(e, "worker_id", m->u.welcome.worker_id, false);
        put_int(e, "heartbeat_interval_ms", m->u.welcome.heartbeat_interval_ms);
        put_int(e, "lease_timeout_ms", m->u.welcome.lease_timeout_ms);
        put_str(e, "server_time", m->u.welcome.server_time, false);
        break;
    case PROTO_MSG_HEARTBEAT:
        put_int(e, "seq", m->u.heartbeat.seq);
        if (m->u.heartbeat.running >= 0)
            put_int(e, "running", m->u.heartbeat.running);
        if (m->u.heartbeat.free_cores >= 0)
            put_int(e, "free_cores", m->u.heartbeat.free_cores);
        if (m->u.heartbeat.free_ram_mb >= 0)
            put_int(e, "free_ram_mb", m->u.heartbeat.free_ram_mb);
        break;
    case PROTO_MSG_JOB_ASSIGN:
        enc_assign(e, &m->u.assign);
        break;
    case PROTO_MSG_JOB_ACCEPTED:
    case PROTO_MSG_JOB_ACK:
        put_ref(e, &m->u.ack.job);
        break;
    case PROTO_MSG_JOB_REJECTED:
        put_ref(e, &m->u.ack.job);
        put_str(e, "reason", m->u.ack.reason, true);
        break;
    case PROTO_MSG_JOB_STARTED:
        put_ref(e, &m->u.started.job);
        put_str(e, "started_at", m->u.started.started_at, false);
        break;
    case PROTO_MSG_JOB_OUTPUT:
        enc_output(e, &m->u.output);
        break;
    case PROTO_MSG_JOB_FINISHED:
        enc_finished(e, &m->u.finished);
        break;
    case PROTO_MSG_JOB_CANCEL:
        put_ref(e, &m->u.cancel.job);
        put_str(e, "reason", m->u.cancel.reason, true);
        break;
    case PROTO_MSG_ERROR:
        put_str(e, "code", m->u.error.code, false);
        put_str(e, "message", m->u.error.message, true);
        if (m->u.error.has_job)
            put_ref(e, &m->u.error.job);
        break;
    case PROTO_MSG_JOB_ARTIFACT:
        enc_artifact(e, &m->u.artifact);
        break;
    case PROTO_MSG_JOB_ARTIFACTS:
        enc_artifacts(e, &m->u.artifacts);
        break;
    case PROTO_MSG_NONE:
        e->bad = true;
        break;
    }
}

char *
proto_msg_encode(const struct proto_msg *m, size_t *len)
{
    const char *name = proto_msg_type_name(m->type);
    struct enc e = {NULL, false};
    char *s;

    if (name == NULL)
        return NULL;
    e.o = json_object();
    if (e.o == NULL)
        abort();
    put_int(&e, "v", PROTO_AGENT_VERSION);
    put_str(&e, "type", name, false);
    enc_body(&e, m);
    s = e.bad ? NULL : proto_json_dumps(e.o, 0, len);
    json_decref(e.o);
    return s;
}
