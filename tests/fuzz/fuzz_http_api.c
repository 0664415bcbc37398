/*
 * libFuzzer target for the coordinator's HTTP request handlers (coordinator/coord_api.c): the
 * JSON entry points (submit, register, unregister, status, grant, cancel) and the query-string
 * entry points (jobs, task, ledger) run against a real SQLite store in a temporary directory.
 *
 * Input: byte 0 picks the route (low bits) and whether the request is admin (bit 7, else a buy
 * key of the path's user); the rest is
 * the body (JSON routes) or the query values (query routes, split on '&').  Oracles: every
 * answer has a status between 200 and 599, a JSON answer parses as JSON, and an error answer
 * has the documented {"error": {"code", "message"}} shape.  ASan/UBSan catch the rest.
 *
 * The migrations are read from $SQL_DIR, else from sql/ next to this source tree.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_log.h"
#include "coord_api.h"
#include "coord_config.h"
#include "coord_req.h"
#include "coord_store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct coord_config cfg;
static struct coord_store *store;
static char tmpdir[] = "/tmp/cacheout-fuzz-http-XXXXXX";

static void
cleanup(void)
{
    static const char *const files[] = {"fuzz.db", "fuzz.db-wal", "fuzz.db-shm", "fuzz.db-journal"};
    coord_store_close(store);
    store = NULL;
    for (size_t i = 0; i < CO_ARRAY_LEN(files); i++) {
        co_autofree char *f = co_xasprintf("%s/%s", tmpdir, files[i]);
        unlink(f);
    }
    rmdir(tmpdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    co_err err = CO_ERR_INIT;
    if (co_log_init(CO_LOG_OFF, NULL, &err) < 0)
        abort();
    json_object_seed(1);
    setenv("ADMIN_TOKEN", "fuzz-admin-token-0123456789", 1);
    if (coord_config_load(&cfg, &err) < 0)
        abort();
    if (!mkdtemp(tmpdir))
        abort();
    co_autofree char *url = co_xasprintf("sqlite:///%s/fuzz.db", tmpdir);
    const char *sql = getenv("SQL_DIR");
    co_autofree char *guess = NULL;
    if (!sql) {
        /* __FILE__ is tests/fuzz/fuzz_http_api.c under the source root. */
        guess = co_xstrdup(__FILE__);
        char *p = strstr(guess, "tests/fuzz/fuzz_http_api.c");
        if (p) {
            *p = '\0';
            char *full = co_xasprintf("%ssql", guess);
            free(guess);
            guess = full;
        } else {
            free(guess);
            guess = co_xstrdup("sql");
        }
        sql = guess;
    }
    struct coord_store_config scfg = {
        .url = url,
        .starting_credits = cfg.starting_credits,
        .worker_timeout_ms = cfg.worker_timeout_seconds * 1000,
        .max_workers = cfg.max_workers,
        .output_cap_bytes = 1 << 16,
    };
    if (coord_store_open(&scfg, &store, &err) < 0 || coord_store_migrate(store, sql, &err) < 0) {
        fprintf(stderr, "fuzz_http_api: store: %s\n", err.msg);
        abort();
    }
    atexit(cleanup);
    return 0;
}

static const enum coord_route fuzz_routes[] = {
    COORD_R_SUBMIT,  COORD_R_REGISTER,     COORD_R_UNREGISTER, COORD_R_STATUS,
    COORD_R_GRANT,   COORD_R_JOB_CANCEL,   COORD_R_JOBS,       COORD_R_TASK,
    COORD_R_LEDGER,  COORD_R_CREDITS,      COORD_R_JOB,        COORD_R_JOB_OUTPUT,
    COORD_R_WORKERS, COORD_R_USERS_CREATE, COORD_R_USER_PATCH, COORD_R_KEYS_CREATE,
    COORD_R_ME,
};

/* Copy the next '&'-separated piece of [*p, end) into @dst. */
static bool
next_piece(const uint8_t **p, const uint8_t *end, char *dst, size_t dstlen)
{
    if (*p >= end) {
        dst[0] = '\0';
        return false;
    }
    const uint8_t *amp = memchr(*p, '&', (size_t)(end - *p));
    size_t n = (size_t)((amp ? amp : end) - *p);
    size_t c = n < dstlen - 1 ? n : dstlen - 1;
    memcpy(dst, *p, c);
    dst[c] = '\0';
    *p += n + (amp ? 1 : 0);
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20))
        return 0;
    struct coord_req *r = co_xcalloc(1, sizeof(*r));
    r->cfg = &cfg;
    r->route = fuzz_routes[(data[0] & 0x7f) % CO_ARRAY_LEN(fuzz_routes)];
    /* Bit 7: the admin token; else a buy key of the path's user (handlers see only this). */
    if (data[0] & 0x80) {
        coord_auth_principal_admin(&r->principal);
    } else {
        r->principal.cred = COORD_CRED_KEY;
        r->principal.scopes = COORD_SCOPE_BUY;
        co_strlcpy(r->principal.key_id, "k_fuzz", sizeof(r->principal.key_id));
        co_strlcpy(r->principal.user_id, (data[0] & 1) ? "fuzz-user" : "default-buyer",
                   sizeof(r->principal.user_id));
    }
    r->content_type = "application/json";
    r->dispatch_wait_ms = -1;
    co_strlcpy(r->path, "/fuzz", sizeof(r->path));
    co_strlcpy(r->id, (data[0] & 1) ? "fuzz-user" : "default-buyer", sizeof(r->id));
    co_buf_init(&r->body);
    co_buf_init(&r->resp);
    const uint8_t *p = data + 1, *end = data + size;
    switch (r->route) {
    case COORD_R_JOBS:
    case COORD_R_TASK:
    case COORD_R_LEDGER:
        r->has_status = next_piece(&p, end, r->q_status, sizeof(r->q_status));
        r->has_buyer = next_piece(&p, end, r->q_buyer, sizeof(r->q_buyer));
        r->has_worker = next_piece(&p, end, r->q_worker, sizeof(r->q_worker));
        r->has_limit = next_piece(&p, end, r->q_limit, sizeof(r->q_limit));
        r->has_offset = next_piece(&p, end, r->q_offset, sizeof(r->q_offset));
        break;
    default:
        co_buf_append(&r->body, p, (size_t)(end - p));
        break;
    }
    coord_api_handle(store, r);

    if (r->status < 200 || r->status > 599)
        abort();
    if (r->resp.len > 0 && strcmp(r->content_type, "application/json") == 0) {
        json_error_t jerr;
        json_t *doc = json_loadb(r->resp.data, r->resp.len, 0, &jerr);
        if (!doc)
            abort(); /* the writer produced invalid JSON */
        if (r->status >= 400) {
            json_t *e = json_object_get(doc, "error");
            if (!json_is_object(e) || !json_is_string(json_object_get(e, "code")) ||
                !json_is_string(json_object_get(e, "message")))
                abort();
        }
        json_decref(doc);
    }
    co_buf_release(&r->body);
    co_buf_release(&r->resp);
    free(r);
    return 0;
}
