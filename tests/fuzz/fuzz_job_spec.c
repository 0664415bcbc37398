/*
 * libFuzzer target for the submit-body decoder (proto_job_decode) and the command splitter.
 * Beyond "no crash, no leak, no undefined behaviour" it checks the promises of proto_job.h on
 * every accepted body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_id.h"
#include "proto_agent.h"
#include "proto_files.h"
#include "proto_job.h"
#include "proto_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

/* Accepted input files decode under the agent's rules: safe paths, within the caps. */
static void
check_files(const struct proto_job_spec *s, const char *code_path)
{
    struct proto_file_list l;
    const char *reserved[] = {PROTO_PARAMS_FILE, s->code[0] ? code_path : NULL, NULL};
    check(proto_files_parse(s->files, reserved, &l, NULL) == 0);
    check(l.len <= PROTO_FILES_MAX && l.total <= PROTO_FILES_BYTES_MAX);
    check((s->files == NULL) == (l.len == 0));
    for (size_t i = 0; i < l.len; i++) {
        check(proto_file_path_check(l.items[i].path, strlen(l.items[i].path), "files", NULL) == 0);
        check(strcmp(l.items[i].path, PROTO_PARAMS_FILE) != 0);
    }
    proto_file_list_release(&l);
}

static void
check_spec(const struct proto_job_spec *s)
{
    char **argv = NULL;
    size_t argc = 0;
    char *path = NULL;
    co_err err = CO_ERR_INIT;

    check(s->title != NULL && s->description != NULL && s->code != NULL && s->command != NULL &&
          s->parameters != NULL && s->buyer_id != NULL && s->image != NULL);
    size_t tl = strlen(s->title);
    check(proto_utf8_valid(s->title, tl));
    check(proto_utf8_count(s->title, tl) >= 1 && proto_utf8_count(s->title, tl) <= PROTO_TITLE_MAX);
    check(strlen(s->code) <= PROTO_CODE_MAX);
    check(s->required_cores >= 1 && s->required_cores <= 64);
    check(s->required_ram_mb >= 1 && s->required_ram_mb <= 65536);
    check(s->priority >= PROTO_PRIORITY_MIN && s->priority <= PROTO_PRIORITY_MAX);
    check(s->timeout_seconds >= PROTO_TIMEOUT_MIN && s->timeout_seconds <= PROTO_TIMEOUT_MAX);
    check(s->max_attempts >= PROTO_ATTEMPTS_MIN && s->max_attempts <= PROTO_ATTEMPTS_MAX);
    check(co_id_valid(s->buyer_id) && co_id_valid(s->image));
    check(s->parameters[0] == '{');
    if (s->code_file != NULL)
        check(proto_code_file_check(s->code_file, strlen(s->code_file), NULL) == 0);
    /* An accepted command always splits, and the code path is always a safe file name. */
    check(proto_argv_split(s->command, &argv, &argc, &err) == 0 && argc >= 1);
    proto_argv_free(argv);
    check(proto_job_code_path(s, &path, &err) == 0);
    check(proto_code_file_check(path, strlen(path), NULL) == 0);

    /* The job.assign the coordinator builds from it encodes, fits, and the agent accepts it. */
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN}, back;
    struct proto_job_assign *a = &m.u.assign;
    size_t len = 0;
    co_strlcpy(a->job.job_id, "job-1", sizeof(a->job.job_id));
    a->job.attempt = 1;
    a->title = s->title;
    a->command = s->command;
    a->code = s->code;
    a->code_file = path;
    a->parameters = s->parameters;
    co_strlcpy(a->image, s->image, sizeof(a->image));
    a->required_cores = s->required_cores;
    a->required_ram_mb = s->required_ram_mb;
    a->timeout_seconds = s->timeout_seconds;
    a->files = s->files;
    check_files(s, path);
    char *text = proto_msg_encode(&m, &len);
    check(text != NULL && len <= PROTO_MSG_MAX);
    check(proto_msg_decode(text, len, &back, &err) == 0);
    check(strcmp(back.u.assign.parameters, s->parameters) == 0);
    check(strcmp(back.u.assign.code, s->code) == 0);
    check((back.u.assign.files == NULL) == (s->files == NULL));
    check(s->files == NULL || strcmp(back.u.assign.files, s->files) == 0);
    proto_msg_release(&back);
    free(text);
    free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct proto_job_limits lim = {.max_cores = 64, .max_ram_mb = 65536};
    struct proto_job_spec spec;
    co_err err = CO_ERR_INIT;

    if (proto_job_decode((const char *)data, size, &lim, &spec, &err) == 0) {
        check_spec(&spec);
        proto_job_spec_release(&spec);
    } else {
        /* Every failure is classified: 413, 400 bad_json, or 422 naming a field. */
        check(err.code == CO_E_INVAL || err.code == CO_E_TOOLARGE);
        check(proto_utf8_valid(err.msg, strlen(err.msg)));
        check(proto_utf8_valid(err.field, strlen(err.field)));
    }

    /* The raw input as a command line. */
    char *cmd = co_xstrndup((const char *)data, size);
    char **argv = NULL;
    size_t argc = 0;
    if (proto_argv_split(cmd, &argv, &argc, &err) == 0) {
        check(argc >= 1 && argv[argc] == NULL);
        const char *p = proto_argv_code_path(argv, argc);
        check(proto_code_file_check(p, strlen(p), NULL) == 0 && strchr(p, '/') == NULL);
        proto_argv_free(argv);
    } else {
        check(strcmp(err.field, "command") == 0);
    }
    free(cmd);
    return 0;
}
