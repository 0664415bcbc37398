/*
 * coord_api_webhook: the REST routes of completion callbacks (API.md): POST
 * /users/{id}/webhook-secret (a new signing secret) and GET /jobs/{id}/deliveries (the job's
 * delivery and its attempts).  Handlers of coord_api: database threads, with that thread's store;
 * the delivery itself is coord_webhook's.  No state of its own, no life cycle.
 */
#include <jansson.h>
#include <string.h>

#include "co_id.h"
#include "co_jsonw.h"
#include "coord_api.h"
#include "coord_webhook.h"

void
coord_api_webhook_secret(struct coord_store *s, struct coord_req *r)
{
    struct coord_account acc;
    memset(&acc, 0, sizeof(acc));
    co_err err = CO_ERR_INIT;
    char secret[80];
    memcpy(secret, "whsec_", 6);
    co_random_hex(secret + 6, 32);
    if (coord_store_account_get(s, r->id, &acc, &err) < 0)
        goto fail;
    int rc;
    if (r->principal.is_admin && strcmp(r->principal.user_id, r->id) != 0) {
        /* An admin acting for another user: audited with the change, never the secret. */
        if (coord_store_batch_begin(s, &err) < 0)
            goto fail;
        rc = coord_store_webhook_secret_set(s, r->id, secret, &err);
        if (rc < 0) {
            coord_store_batch_rollback(s);
        } else {
            json_t *detail = json_pack("{s:s}", "user_id", r->id);
            rc = coord_api_audit_commit(s, r, "webhook_secret.create", r->id, detail, &err);
            json_decref(detail);
        }
    } else {
        rc = coord_store_webhook_secret_set(s, r->id, secret, &err);
    }
    if (rc < 0)
        goto fail;
    r->wrote_state = true;
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "user_id", r->id);
    co_jsonw_kstr(&w, "secret", secret);
    co_jsonw_obj_end(&w);
    r->status = 200;
    goto out;
fail:
    coord_req_fail(r, &err);
out:
    explicit_bzero(secret, sizeof(secret));
    coord_account_release(&acc);
}

void
coord_api_webhook_deliveries(struct coord_store *s, struct coord_req *r)
{
    struct coord_webhook_log l;
    co_err err = CO_ERR_INIT;
    if (coord_api_own_job(s, r, NULL) < 0)
        return;
    if (coord_store_webhook_log(s, r->id, &l, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "job_id", r->id);
    co_jsonw_kstr(&w, "delivery_id", l.found ? l.delivery_id : NULL);
    co_jsonw_kstr(&w, "callback_url", l.url);
    co_jsonw_kstr(&w, "state", l.found ? l.state : "none");
    co_jsonw_ktime(&w, "first_attempt_at", l.first_attempt_at);
    co_jsonw_ktime(&w, "next_attempt_at", strcmp(l.state, "pending") == 0 ? l.next_at : 0);
    co_jsonw_ktime(&w, "done_at", l.done_at);
    co_jsonw_key(&w, "attempts");
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l.len; i++) {
        const struct coord_webhook_attempt *a = &l.items[i];
        co_jsonw_obj_begin(&w);
        co_jsonw_kint(&w, "attempt", a->attempt);
        co_jsonw_ktime(&w, "at", a->at);
        co_jsonw_key(&w, "status_code");
        if (a->status_code > 0)
            co_jsonw_int(&w, a->status_code);
        else
            co_jsonw_null(&w);
        co_jsonw_kstr(&w, "error", a->error);
        co_jsonw_kint(&w, "duration_ms", a->duration_ms);
        co_jsonw_obj_end(&w);
    }
    co_jsonw_arr_end(&w);
    co_jsonw_obj_end(&w);
    r->status = 200;
    coord_webhook_log_release(&l);
}
