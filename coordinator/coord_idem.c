/*
 * coord_idem: Idempotency-Key handling around a REST handler (see coord_idem.h).
 */
#include "coord_idem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "co_log.h"
#include "co_time.h"

bool
coord_idem_header_ok(const char *key, size_t len)
{
    if (len < 1 || len > COORD_IDEM_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

static uint64_t
fnv1a64(const unsigned char *p, size_t len, uint64_t h)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void
coord_idem_body_hash(const void *body, size_t len, char out[64])
{
    const unsigned char *p = body ? body : (const unsigned char *)"";
    /* Two sums from different starting values: a changed body that keeps one is still caught. */
    uint64_t a = fnv1a64(p, len, 0xcbf29ce484222325ULL);
    uint64_t b = fnv1a64(p, len, 0x84222325cbf29ce4ULL ^ (uint64_t)len);
    snprintf(out, 64, "%zx-%016" PRIx64 "-%016" PRIx64, len, a, b);
}

/* Answer @r with the stored first answer. */
static void
idem_replay(struct coord_req *r, const struct coord_idem_answer *a)
{
    co_buf_reset(&r->resp);
    co_buf_append(&r->resp, a->response, a->len);
    r->status = a->status;
    r->content_type = "application/json";
    r->idem_replayed = true;
}

void
coord_idem_run(struct coord_store *s, struct coord_req *r, coord_idem_handler_fn handler)
{
    char hash[64];
    struct coord_idem_key k = {r->idem_cred, "POST", r->path, r->idem_key};
    struct coord_idem_answer prev;
    bool reserved = false;
    co_err err = CO_ERR_INIT;

    coord_idem_body_hash(r->body.data, r->body.len, hash);
    if (coord_store_batch_begin(s, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    if (coord_store_idem_reserve(s, &k, hash, co_wall_ms(), COORD_IDEM_TTL_MS, &reserved, &prev,
                                 &err) < 0) {
        coord_store_batch_rollback(s);
        coord_req_fail(r, &err);
        return;
    }
    if (!reserved) {
        coord_store_batch_rollback(s);
        if (strcmp(prev.body_hash, hash) != 0)
            coord_req_error(r, 409, "idempotency_mismatch", "Idempotency-Key",
                            "Idempotency-Key '%s' was used with another body", r->idem_key);
        else if (prev.status == 0)
            coord_req_error(r, 409, "idempotency_in_progress", "Idempotency-Key",
                            "a request with Idempotency-Key '%s' is still running", r->idem_key);
        else
            idem_replay(r, &prev);
        coord_idem_answer_release(&prev);
        return;
    }
    handler(s, r);
    if (r->status >= 500) {
        /* Not an answer worth keeping (the client retries): undo the request and the key. */
        coord_store_batch_rollback(s);
        return;
    }
    if (coord_store_idem_complete(s, &k, r->status, r->resp.data, r->resp.len, &err) < 0 ||
        coord_store_batch_commit(s, &err) < 0) {
        coord_store_batch_rollback(s);
        co_warn("idempotent request not committed path=%s error=\"%s\"", r->path, err.msg);
        /* Nothing happened: publish nothing. */
        r->n_changes = 0;
        r->wrote_state = false;
        coord_req_fail(r, &err);
    }
}
