/* coord_api_price: pricing and reputation on the REST API (see coord_api_price.h). */
#include "coord_api_price.h"

#include <string.h>

#include "co_credits.h"
#include "co_jsonw.h"
#include "co_time.h"
#include "coord_api.h"
#include "coord_auth.h"
#include "coord_price.h"
#include "coord_render.h"
#include "proto_json.h"

int
coord_api_job_price(const struct coord_config *cfg, const struct proto_job_spec *spec,
                    struct coord_job *job, struct coord_req *r)
{
    co_err err = CO_ERR_INIT;
    job->pricing = (enum coord_pricing)cfg->pricing;
    job->min_reputation = spec->min_reputation;
    switch (job->pricing) {
    case COORD_PRICING_METERED:
        job->rate.per_core_second = cfg->price_per_core_second;
        job->rate.per_gb_second = cfg->price_per_gb_second;
        if (coord_price_amount(&job->rate, spec->required_cores, spec->required_ram_mb,
                               spec->timeout_seconds, "timeout_seconds", &job->cost, &err) < 0)
            break;
        return 0;
    case COORD_PRICING_MARKET:
        if (!spec->has_max_prices || !spec->has_max_price_gb) {
            const char *f =
                spec->has_max_prices ? "max_price_per_gb_second" : "max_price_per_core_second";
            coord_req_error(r, 422, "invalid_field", f,
                            "missing required field '%s': PRICING=market needs "
                            "max_price_per_core_second and max_price_per_gb_second (the most the "
                            "buyer pays, in credits)",
                            f);
            return -1;
        }
        job->max_rate.per_core_second = spec->max_price_per_core_second;
        job->max_rate.per_gb_second = spec->max_price_per_gb_second;
        if (coord_price_amount(&job->max_rate, spec->required_cores, spec->required_ram_mb,
                               spec->timeout_seconds, "max_price_per_core_second", &job->cost,
                               &err) < 0)
            break;
        return 0;
    default:
        if (co_credits_cost(spec->required_cores, spec->required_ram_mb, cfg->cost_per_core,
                            cfg->cost_per_100mb_ram, &job->cost, &err) < 0) {
            co_err_field(&err, err.code, "required_cores", "%s", err.msg);
            break;
        }
        return 0;
    }
    coord_req_error(r, 422, "invalid_field", err.field[0] ? err.field : NULL, "%s", err.msg);
    return -1;
}

int
coord_api_read_price(struct coord_req *r, json_t *obj, bool required, struct coord_rate *out,
                     bool *has)
{
    static const char *const keys[2] = {"price_per_core_second", "price_per_gb_second"};
    int64_t *dst[2] = {&out->per_core_second, &out->per_gb_second};
    co_err err = CO_ERR_INIT;
    *has = false;
    out->per_core_second = out->per_gb_second = 0;
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (!v || json_is_null(v)) {
            if (required) {
                coord_req_error(r, 422, "invalid_field", keys[i], "missing required field '%s'",
                                keys[i]);
                return -1;
            }
            continue;
        }
        if (proto_json_get_credits(v, keys[i], dst[i], &err) < 0 || *dst[i] < 0) {
            coord_req_error(r, 422, "invalid_field", keys[i],
                            "invalid '%s': a number of credits >= 0 with at most 6 decimals",
                            keys[i]);
            return -1;
        }
        *has = true;
    }
    return 0;
}

void
coord_api_worker_patch(struct coord_store *s, struct coord_req *r)
{
    static const char *const allowed[] = {"price_per_core_second", "price_per_gb_second", NULL};
    json_t *root = coord_api_body_object(r);
    if (!root)
        return;
    struct coord_worker wk, out;
    struct coord_rate price;
    bool has;
    co_err err = CO_ERR_INIT;
    if (coord_api_only_fields(r, root, allowed) < 0 ||
        coord_api_read_price(r, root, false, &price, &has) < 0)
        goto out;
    if (!has) {
        coord_req_error(r, 422, "invalid_field", NULL,
                        "nothing to change: give price_per_core_second or price_per_gb_second");
        goto out;
    }
    if (coord_store_worker_get(s, r->id, &wk, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    const char *owner = wk.owner_id[0] ? wk.owner_id : wk.worker_id;
    if (!coord_auth_is_self_or_admin(&r->principal, owner)) {
        coord_req_error(r, 403, "forbidden", "worker_id",
                        "worker '%s' belongs to another user: only its owner or an admin sets "
                        "its prices",
                        r->id);
        goto out;
    }
    /* A price left out keeps its stored value. */
    if (!json_object_get(root, "price_per_core_second"))
        price.per_core_second = wk.price.per_core_second;
    if (!json_object_get(root, "price_per_gb_second"))
        price.per_gb_second = wk.price.per_gb_second;
    if (coord_store_worker_set_price(s, r->id, &price, &out, &err) < 0) {
        coord_req_fail(r, &err);
        goto out;
    }
    r->wrote_state = true;
    coord_req_changed(r, COORD_EVENT_WORKER, r->id);
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    coord_render_worker(&w, &out, r->cfg->worker_timeout_seconds * 1000, true);
    r->status = 200;
out:
    json_decref(root);
}

void
coord_api_statement(struct coord_store *s, struct coord_req *r)
{
    int64_t days = 30;
    if (r->has_days) {
        char *end = NULL;
        long long v = strtoll(r->q_days, &end, 10);
        if (!r->q_days[0] || *end || v < 1 || v > 366) {
            coord_req_error(r, 422, "invalid_field", "days", "query 'days' must be 1-366");
            return;
        }
        days = v;
    }
    struct coord_statement st;
    co_err err = CO_ERR_INIT;
    if (coord_store_statement(s, r->id, days, co_wall_ms(), &st, &err) < 0) {
        coord_req_fail(r, &err);
        return;
    }
    struct co_jsonw w;
    co_jsonw_init(&w, &r->resp);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < st.len; i++) {
        co_jsonw_obj_begin(&w);
        co_jsonw_kstr(&w, "day", st.items[i].day);
        co_jsonw_kcredits(&w, "spent", st.items[i].spent);
        co_jsonw_kcredits(&w, "earned", st.items[i].earned);
        co_jsonw_kcredits(&w, "fees", st.items[i].fees);
        co_jsonw_obj_end(&w);
    }
    co_jsonw_arr_end(&w);
    r->status = 200;
    free(st.items);
}
