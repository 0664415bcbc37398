/*
 * coord_idem: Idempotency-Key handling around a REST handler (see coord_idem.h).
 *
 * Under a group commit (coord_db, SQLite) the batch below is a savepoint of the group's
 * transaction: the key's record is kept only if the group COMMITs.  If it does not, the request's
 * answer becomes a 503 (coord_api) and the record rolls back with everything else of the group, so
 * the client's retry with the same key runs the request again, once.  A duplicate queued in the
 * same group sees the first one's completed record and is answered from it (the two answers
 * stand or fall with the group's COMMIT).
 */
#include "coord_idem.h"

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

void
coord_idem_body_hash(const void *body, size_t len, char out[COORD_IDEM_HASH_SIZE])
{
    coord_auth_hash(body ? body : "", len, out);
}

void
coord_idem_credential(const struct coord_principal *p, char out[COORD_IDEM_CRED_SIZE])
{
    switch (p->cred) {
    case COORD_CRED_KEY:
        /* A user's key: its user and the key itself (two keys of one user are apart too). */
        snprintf(out, COORD_IDEM_CRED_SIZE, "key:%s/%s", p->user_id, p->key_id);
        break;
    case COORD_CRED_ADMIN_TOKEN:
        snprintf(out, COORD_IDEM_CRED_SIZE, "admin-token");
        break;
    case COORD_CRED_AGENT_TOKEN:
        snprintf(out, COORD_IDEM_CRED_SIZE, "agent-token");
        break;
    case COORD_CRED_OPEN:
        snprintf(out, COORD_IDEM_CRED_SIZE, "open");
        break;
    case COORD_CRED_NONE:
    default:
        snprintf(out, COORD_IDEM_CRED_SIZE, "anonymous");
        break;
    }
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
    char hash[COORD_IDEM_HASH_SIZE];
    char cred[COORD_IDEM_CRED_SIZE];
    coord_idem_credential(&r->principal, cred);
    struct coord_idem_key k = {cred, "POST", r->path, r->idem_key};
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
        coord_req_discarded(r, &err); /* nothing happened: publish nothing */
    }
}
