/* proto_job: the submit body, command splitting and the code path rule (see proto_job.h). */
#include "proto_job.h"

#include <string.h>

#include <jansson.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_id.h"
#include "proto_fields.h"
#include "proto_files.h"
#include "proto_json.h"

/* The fields of API.md "POST /api/v1/submit", in the order they are checked. */
static const char *const job_fields[] = {
    "title",
    "description",
    "code",
    "code_file",
    "required_cores",
    "required_ram_mb",
    "priority",
    "command",
    "parameters",
    "buyer_id",
    "image",
    "timeout_seconds",
    "max_attempts",
    "files",
    "min_reputation",
    "max_price_per_core_second",
    "max_price_per_gb_second",
    "callback_url",
    "replicas",
};

static int decode_micro(const json_t *obj, const char *key, int64_t max, int64_t *out, bool *has,
                        co_err *err);

bool
proto_job_err_is_bad_json(const co_err *err)
{
    return err != NULL && err->code == CO_E_INVAL && err->field[0] == '\0';
}

void
proto_job_spec_release(struct proto_job_spec *spec)
{
    if (spec == NULL)
        return;
    free(spec->title);
    free(spec->description);
    free(spec->code);
    free(spec->code_file);
    free(spec->files);
    free(spec->command);
    free(spec->parameters);
    free(spec->buyer_id);
    free(spec->image);
    free(spec->callback_url);
    memset(spec, 0, sizeof(*spec));
}

static int
check_unknown_keys(const json_t *obj, co_err *err)
{
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < CO_ARRAY_LEN(job_fields); i++) {
            if (strcmp(key, job_fields[i]) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            char name[sizeof(err->field)];
            pf_field_name(name, sizeof(name), key);
            return co_err_field(err, CO_E_INVAL, name, "unknown field '%s'", name);
        }
    }
    return 0;
}

/*
 * The input files: the agent writes the code file (when code is not empty) and params.json
 * itself, so a file may not use (or be a folder of) either.
 */
static int
decode_files(const json_t *obj, const struct proto_job_limits *lim, struct proto_job_spec *s,
             co_err *err)
{
    const json_t *files = NULL;
    co_autofree char *code_path = NULL;

    int rc = pf_object(obj, "files", false, &files, err);
    if (rc <= 0)
        return rc;
    if (proto_job_code_path(s, &code_path, err) < 0)
        return -1;
    const char *reserved[] = {PROTO_PARAMS_FILE, s->code[0] ? code_path : NULL, NULL};
    return proto_files_from_submit(files, reserved, lim ? lim->max_files_bytes : 0, &s->files, err);
}

static int
decode_fields(const json_t *obj, const struct proto_job_limits *lim, struct proto_job_spec *s,
              co_err *err)
{
    const json_t *params = NULL;
    const char *cf;
    size_t cf_len;
    int64_t v, max;
    char **argv = NULL;
    size_t argc;

    if (pf_string_dup(obj, "title", true, 1, PROTO_TITLE_MAX, PF_CHARS, &s->title, err) < 0 ||
        pf_string_dup(obj, "description", false, 0, PROTO_DESCRIPTION_MAX, PF_CHARS,
                      &s->description, err) < 0 ||
        pf_string_dup(obj, "code", false, 0, PROTO_CODE_MAX, PF_BYTES, &s->code, err) < 0)
        return -1;

    switch (
        pf_string(obj, "code_file", false, 1, PROTO_CODE_FILE_MAX, PF_BYTES, &cf, &cf_len, err)) {
    case -1:
        return -1;
    case 1:
        if (proto_code_file_check(cf, cf_len, err) < 0)
            return -1;
        s->code_file = co_xstrndup(cf, cf_len);
        break;
    }

    max = lim != NULL && lim->max_cores > 0 ? lim->max_cores : INT64_MAX;
    if (pf_int(obj, "required_cores", true, 1, max, &s->required_cores, err) < 0)
        return -1;
    max = lim != NULL && lim->max_ram_mb > 0 ? lim->max_ram_mb : INT64_MAX;
    if (pf_int(obj, "required_ram_mb", true, 1, max, &s->required_ram_mb, err) < 0)
        return -1;
    v = PROTO_PRIORITY_DEFAULT;
    if (pf_int(obj, "priority", false, PROTO_PRIORITY_MIN, PROTO_PRIORITY_MAX, &v, err) < 0)
        return -1;
    s->priority = (int)v;

    if (pf_string_dup(obj, "command", true, 1, PROTO_COMMAND_MAX, PF_CHARS, &s->command, err) < 0)
        return -1;
    if (proto_argv_split(s->command, &argv, &argc, err) < 0)
        return -1;
    proto_argv_free(argv);

    if (pf_object(obj, "parameters", false, &params, err) < 0)
        return -1;
    s->parameters = params != NULL ? proto_json_dumps(params, 0, NULL) : co_xstrdup("{}");
    if (s->parameters == NULL) /* cannot happen for a parsed tree (depth <= 2048) */
        return co_err_field(err, CO_E_INVAL, "parameters", "invalid 'parameters': cannot encode");
    if (strlen(s->parameters) > PROTO_PARAMETERS_MAX)
        return co_err_field(
            err, CO_E_INVAL, "parameters",
            "invalid 'parameters': too large (%zu bytes as compact JSON, at most %d)",
            strlen(s->parameters), PROTO_PARAMETERS_MAX);

    char id[CO_ID_MAX + 1];
    bool buyer_default = lim != NULL && lim->default_buyer != NULL;
    co_strlcpy(id, buyer_default ? lim->default_buyer : "", sizeof(id));
    if (pf_id(obj, "buyer_id", !buyer_default, id, err) < 0)
        return -1;
    s->buyer_id = co_xstrdup(id);
    co_strlcpy(id, PROTO_IMAGE_DEFAULT, sizeof(id));
    if (pf_id(obj, "image", false, id, err) < 0)
        return -1;
    s->image = co_xstrdup(id);

    s->timeout_seconds = PROTO_TIMEOUT_DEFAULT;
    if (pf_int(obj, "timeout_seconds", false, PROTO_TIMEOUT_MIN, PROTO_TIMEOUT_MAX,
               &s->timeout_seconds, err) < 0)
        return -1;
    v = PROTO_ATTEMPTS_DEFAULT;
    if (pf_int(obj, "max_attempts", false, PROTO_ATTEMPTS_MIN, PROTO_ATTEMPTS_MAX, &v, err) < 0)
        return -1;
    s->max_attempts = (int)v;
    v = 1;
    if (pf_int(obj, "replicas", false, PROTO_REPLICAS_MIN, PROTO_REPLICAS_MAX, &v, err) < 0)
        return -1;
    s->replicas = (int)v;
    /* Scheme, host and addresses are the coordinator's checks (coord_webhook_url_check). */
    if (pf_string_dup(obj, "callback_url", false, 1, PROTO_CALLBACK_URL_MAX, PF_BYTES,
                      &s->callback_url, err) < 0)
        return -1;

    if (decode_micro(obj, "min_reputation", PROTO_REPUTATION_MAX, &s->min_reputation, NULL, err) <
            0 ||
        decode_micro(obj, "max_price_per_core_second", INT64_MAX, &s->max_price_per_core_second,
                     &s->has_max_prices, err) < 0 ||
        decode_micro(obj, "max_price_per_gb_second", INT64_MAX, &s->max_price_per_gb_second,
                     &s->has_max_price_gb, err) < 0)
        return -1;
    if (s->description == NULL)
        s->description = co_xstrdup("");
    if (s->code == NULL)
        s->code = co_xstrdup("");
    return decode_files(obj, lim, s, err);
}

/*
 * An optional number with at most 6 decimals, as millionths (credits -> micro-credits; a
 * reputation 0-1 -> parts per million), 0..@max.  *@has (optional) tells whether it was there.
 */
static int
decode_micro(const json_t *obj, const char *key, int64_t max, int64_t *out, bool *has, co_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (has)
        *has = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (proto_json_get_credits(v, key, out, err) < 0)
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': a number with at most 6 decimals",
                            key);
    if (*out < 0 || *out > max) {
        if (max == PROTO_REPUTATION_MAX)
            return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must be between 0 and 1", key);
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must not be negative", key);
    }
    if (has)
        *has = true;
    return 0;
}

int
proto_job_decode(const char *body, size_t len, const struct proto_job_limits *lim,
                 struct proto_job_spec *out, co_err *err)
{
    struct proto_job_spec s = {0};
    size_t cap = PROTO_JOB_BODY_MAX;
    json_auto_t *obj = NULL;

    memset(out, 0, sizeof(*out));
    if (lim != NULL && lim->max_body > 0 && lim->max_body < cap)
        cap = lim->max_body;
    obj = proto_json_load_object(body, len, cap, err);
    if (obj == NULL)
        return -1;
    if (check_unknown_keys(obj, err) < 0)
        return -1;
    if (decode_fields(obj, lim, &s, err) < 0) {
        proto_job_spec_release(&s);
        return -1;
    }
    *out = s;
    return 0;
}

/* Argv splitting ------------------------------------------------------------------------- */

static void
argv_push(char ***argv, size_t *argc, size_t *cap, char *word)
{
    if (*argc + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *argv = co_xreallocarray(*argv, *cap, sizeof(**argv));
    }
    (*argv)[(*argc)++] = word;
    (*argv)[*argc] = NULL;
}

void
proto_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p != NULL; p++)
        free(*p);
    free(argv);
}

int
proto_argv_split(const char *command, char ***argv_out, size_t *argc_out, co_err *err)
{
    struct co_buf word = CO_BUF_INIT;
    char **argv = NULL;
    size_t argc = 0, cap = 0;
    bool in_word = false;
    const char *p = command;

    while (*p != '\0') {
        char c = *p;

        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                argv_push(&argv, &argc, &cap, co_buf_steal(&word, NULL));
                in_word = false;
            }
            p++;
        } else if (c == '\\') {
            if (p[1] == '\0') {
                co_err_field(err, CO_E_INVAL, "command", "invalid 'command': backslash at the end");
                goto fail;
            }
            if (p[1] != '\n') { /* backslash-newline is a line continuation: removed */
                co_buf_putc(&word, p[1]);
                in_word = true;
            }
            p += 2;
        } else if (c == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (end == NULL) {
                co_err_field(err, CO_E_INVAL, "command",
                             "invalid 'command': unterminated single quote");
                goto fail;
            }
            co_buf_append(&word, p + 1, (size_t)(end - p - 1));
            in_word = true;
            p = end + 1;
        } else if (c == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    co_err_field(err, CO_E_INVAL, "command",
                                 "invalid 'command': unterminated double quote");
                    goto fail;
                }
                if (*p == '"')
                    break;
                if (*p == '\\' && p[1] != '\0' && strchr("\"\\$`\n", p[1]) != NULL) {
                    if (p[1] != '\n')
                        co_buf_putc(&word, p[1]);
                    p += 2;
                } else {
                    co_buf_putc(&word, *p++);
                }
            }
            in_word = true;
            p++;
        } else {
            co_buf_putc(&word, c);
            in_word = true;
            p++;
        }
    }
    if (in_word)
        argv_push(&argv, &argc, &cap, co_buf_steal(&word, NULL));
    co_buf_release(&word);
    if (argc == 0) {
        co_err_field(err, CO_E_INVAL, "command", "invalid 'command': no words");
        goto fail;
    }
    *argv_out = argv;
    *argc_out = argc;
    return 0;
fail:
    co_buf_release(&word);
    proto_argv_free(argv);
    return -1;
}

/* Code path rules ------------------------------------------------------------------------ */

static bool
plain_file_name(const char *s)
{
    size_t n = 0;
    bool dot = false;

    if (s[0] == '-' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= PROTO_CODE_FILE_MAX)
            return false;
        if (c == '.')
            dot = true;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '-'))
            return false;
    }
    return n > 0 && dot;
}

const char *
proto_argv_code_path(char *const *argv, size_t argc)
{
    for (size_t i = 1; i < argc; i++) {
        if (plain_file_name(argv[i]))
            return argv[i];
    }
    return PROTO_CODE_PATH_DEFAULT;
}

int
proto_job_code_path(const struct proto_job_spec *spec, char **out, co_err *err)
{
    char **argv = NULL;
    size_t argc;

    if (spec->code_file != NULL) {
        *out = co_xstrdup(spec->code_file);
        return 0;
    }
    if (proto_argv_split(spec->command != NULL ? spec->command : "", &argv, &argc, err) < 0)
        return -1;
    *out = co_xstrdup(proto_argv_code_path(argv, argc));
    proto_argv_free(argv);
    return 0;
}

int
proto_code_file_check(const char *path, size_t len, co_err *err)
{
    return proto_file_path_check(path, len, "code_file", err);
}
