/*
 * coord_render: the JSON shared by REST answers and dashboard events (see coord_render.h).  Pure
 * writers: any thread.
 */
#include "coord_render.h"

#include <stdatomic.h>

#include "co_credits.h"
#include "co_time.h"
#include "coord_db.h"
#include "coord_metrics.h"
#include "coord_price.h"
#include "coord_reconcile.h"
#include "coord_sched.h"
#include "coord_verify.h"

/* ------------------------------------------------------------------ jobs */

bool
coord_render_sees_full(const struct coord_principal *p, const char *buyer_id)
{
    if (p->is_admin)
        return true;
    return p->cred != COORD_CRED_NONE && coord_auth_has_scope(p, COORD_SCOPE_BUY) &&
           coord_auth_is_self_or_admin(p, buyer_id);
}

bool
coord_render_sees_owners(const struct coord_principal *p)
{
    return p->cred != COORD_CRED_NONE;
}

void
coord_render_job(struct co_jsonw *w, const struct coord_job *j, bool with_code, int attempt)
{
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "job_id", j->job_id);
    co_jsonw_kstr(w, "title", j->title ? j->title : "");
    co_jsonw_kstr(w, "description", j->description ? j->description : "");
    co_jsonw_kstr(w, "status", coord_job_status_name(j->status));
    co_jsonw_kstr(w, "failure_reason", coord_failure_name(j->failure));
    coord_sched_write_pending_reason(w, j);
    co_jsonw_kcredits(w, "cost", j->cost);
    coord_render_job_price(w, j);
    co_jsonw_kint(w, "required_cores", j->required_cores);
    co_jsonw_kint(w, "required_ram_mb", j->required_ram_mb);
    co_jsonw_kint(w, "priority", j->priority);
    co_jsonw_kstr(w, "command", j->command ? j->command : "");
    co_jsonw_key(w, "parameters");
    if (j->parameters && j->parameters[0] == '{')
        co_jsonw_raw(w, j->parameters, strlen(j->parameters));
    else
        co_jsonw_raw(w, "{}", 2);
    co_jsonw_kstr(w, "buyer_id", j->buyer_id);
    co_jsonw_kstr(w, "assigned_worker", j->assigned_worker[0] ? j->assigned_worker : NULL);
    co_jsonw_kstr(w, "image", j->image ? j->image : "default");
    co_jsonw_kint(w, "timeout_seconds", j->timeout_seconds);
    co_jsonw_kint(w, "attempts", j->attempts);
    co_jsonw_kint(w, "max_attempts", j->max_attempts);
    co_jsonw_key(w, "exit_code");
    if (j->has_exit_code)
        co_jsonw_int(w, j->exit_code);
    else
        co_jsonw_null(w);
    co_jsonw_key(w, "usage");
    if (j->has_usage) {
        co_jsonw_obj_begin(w);
        co_jsonw_kint(w, "wall_ms", j->usage.wall_ms);
        co_jsonw_kint(w, "cpu_ms", j->usage.cpu_ms);
        co_jsonw_kint(w, "max_rss_kb", j->usage.max_rss_kb);
        co_jsonw_obj_end(w);
    } else {
        co_jsonw_null(w);
    }
    co_jsonw_ktime(w, "created_at", j->created_at);
    co_jsonw_ktime(w, "started_at", j->started_at);
    co_jsonw_ktime(w, "completed_at", j->completed_at);
    coord_verify_write_fields(w, j);
    if (with_code) {
        co_jsonw_kstr(w, "code", j->code ? j->code : "");
        co_jsonw_kstr(w, "code_file", j->code_file);
    }
    if (attempt > 0)
        co_jsonw_kint(w, "attempt", attempt);
    co_jsonw_obj_end(w);
}

void
coord_render_job_public(struct co_jsonw *w, const struct coord_job *j)
{
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "job_id", j->job_id);
    co_jsonw_kstr(w, "status", coord_job_status_name(j->status));
    coord_sched_write_pending_reason(w, j);
    co_jsonw_kint(w, "required_cores", j->required_cores);
    co_jsonw_kint(w, "required_ram_mb", j->required_ram_mb);
    co_jsonw_kint(w, "priority", j->priority);
    co_jsonw_kstr(w, "image", j->image ? j->image : "default");
    co_jsonw_kcredits(w, "cost", j->cost);
    co_jsonw_kstr(w, "assigned_worker", j->assigned_worker[0] ? j->assigned_worker : NULL);
    co_jsonw_ktime(w, "created_at", j->created_at);
    co_jsonw_ktime(w, "started_at", j->started_at);
    co_jsonw_ktime(w, "completed_at", j->completed_at);
    co_jsonw_obj_end(w);
}

/* ------------------------------------------------------------------ workers and users */

void
coord_render_worker(struct co_jsonw *w, const struct coord_worker *wk, int64_t timeout_ms,
                    bool with_owner)
{
    int64_t now = co_wall_ms();
    enum coord_worker_status st = wk->status;
    if (now - wk->last_heartbeat > timeout_ms)
        st = COORD_WORKER_OFFLINE;
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "worker_id", wk->worker_id);
    if (with_owner)
        co_jsonw_kstr(w, "owner_id", wk->owner_id[0] ? wk->owner_id : wk->worker_id);
    co_jsonw_kint(w, "cpu_cores", wk->cpu_cores);
    co_jsonw_kint(w, "ram_mb", wk->ram_mb);
    co_jsonw_kint(w, "free_cores",
                  wk->cpu_cores - wk->used_cores > 0 ? wk->cpu_cores - wk->used_cores : 0);
    co_jsonw_kint(w, "free_ram_mb",
                  wk->ram_mb - wk->used_ram_mb > 0 ? wk->ram_mb - wk->used_ram_mb : 0);
    char reason[200];
    bool quarantined =
        st != COORD_WORKER_OFFLINE && coord_quarantine_check(wk->worker_id, reason, sizeof(reason));
    co_jsonw_kstr(w, "status", quarantined ? "quarantined" : coord_worker_status_name(st));
    co_jsonw_kstr(w, "status_reason", quarantined ? reason : NULL);
    co_jsonw_kstr(w, "connection", wk->websocket ? "websocket" : "http");
    co_jsonw_kint(w, "running_jobs", wk->running_jobs);
    coord_render_worker_price(w, wk);
    co_jsonw_ktime(w, "last_heartbeat", wk->last_heartbeat);
    co_jsonw_ktime(w, "created_at", wk->created_at);
    co_jsonw_ktime(w, "updated_at", wk->updated_at);
    co_jsonw_obj_end(w);
}

void
coord_render_credits(struct co_jsonw *w, const struct coord_user *u)
{
    co_jsonw_kstr(w, "user_id", u->user_id);
    co_jsonw_kcredits(w, "credits", u->credits);
    co_jsonw_kcredits(w, "held", u->held);
}

/* ------------------------------------------------------------------ pricing */

static void
write_rate(struct co_jsonw *w, const char *core_key, const char *gb_key,
           const struct coord_rate *rate)
{
    co_jsonw_kcredits(w, core_key, rate->per_core_second);
    co_jsonw_kcredits(w, gb_key, rate->per_gb_second);
}

void
coord_render_job_price(struct co_jsonw *w, const struct coord_job *j)
{
    co_jsonw_kstr(w, "pricing", coord_pricing_name(j->pricing));
    co_jsonw_key(w, "charged");
    if (j->has_charged)
        co_jsonw_credits(w, j->charged);
    else
        co_jsonw_null(w);
    co_jsonw_kcredits(w, "min_reputation", j->min_reputation);
    if (j->pricing == COORD_PRICING_FLAT)
        return;
    /* metered: the prices of the submit; market: the seller's, once a worker claimed it. */
    write_rate(w, "price_per_core_second", "price_per_gb_second", &j->rate);
    if (j->pricing == COORD_PRICING_MARKET)
        write_rate(w, "max_price_per_core_second", "max_price_per_gb_second", &j->max_rate);
}

void
coord_render_worker_price(struct co_jsonw *w, const struct coord_worker *wk)
{
    write_rate(w, "price_per_core_second", "price_per_gb_second", &wk->price);
    co_jsonw_kcredits(w, "reputation", wk->reputation);
    co_jsonw_kcredits(w, "owner_reputation", wk->owner_reputation);
}

void
coord_render_pricing_settings(struct co_jsonw *w, const struct coord_config *cfg)
{
    co_jsonw_kstr(w, "mode", coord_pricing_name((enum coord_pricing)cfg->pricing));
    co_jsonw_kcredits(w, "price_per_core_second", cfg->price_per_core_second);
    co_jsonw_kcredits(w, "price_per_gb_second", cfg->price_per_gb_second);
    co_jsonw_kint(w, "platform_fee_percent", cfg->platform_fee_percent);
}

void
coord_render_pricing(struct co_jsonw *w, const struct coord_config *cfg)
{
    co_jsonw_obj_begin(w);
    co_jsonw_kcredits(w, "cost_per_core", cfg->cost_per_core);
    co_jsonw_kcredits(w, "cost_per_100mb_ram", cfg->cost_per_100mb_ram);
    coord_render_pricing_settings(w, cfg);
    co_jsonw_key(w, "max_job_cores");
    if (cfg->max_job_cores > 0)
        co_jsonw_int(w, cfg->max_job_cores);
    else
        co_jsonw_null(w);
    co_jsonw_key(w, "max_job_ram_mb");
    if (cfg->max_job_ram_mb > 0)
        co_jsonw_int(w, cfg->max_job_ram_mb);
    else
        co_jsonw_null(w);
    co_jsonw_obj_end(w);
}

/* ------------------------------------------------------------------ health and metrics */

int
coord_render_health(struct co_buf *out, const struct coord_render_node *node,
                    const struct coord_health *h, bool db_ok)
{
    struct co_jsonw w;
    co_jsonw_init(&w, out);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "status", db_ok ? "healthy" : "unhealthy");
    if (db_ok && h) {
        co_jsonw_key(&w, "workers");
        co_jsonw_obj_begin(&w);
        co_jsonw_kint(&w, "total", h->workers_total);
        co_jsonw_kint(&w, "idle", h->workers[COORD_WORKER_IDLE]);
        co_jsonw_kint(&w, "busy", h->workers[COORD_WORKER_BUSY]);
        co_jsonw_kint(&w, "offline", h->workers[COORD_WORKER_OFFLINE]);
        co_jsonw_obj_end(&w);
        co_jsonw_key(&w, "jobs");
        co_jsonw_obj_begin(&w);
        for (int i = 0; i < COORD_JOB_STATUS_COUNT; i++)
            co_jsonw_kint(&w, coord_job_status_name((enum coord_job_status)i), h->jobs[i]);
        co_jsonw_obj_end(&w);
        co_jsonw_kcredits(&w, "total_credits", h->total_credits);
        co_jsonw_kint(&w, "active_users", h->active_users);
    }
    co_jsonw_key(&w, "metrics");
    co_jsonw_obj_begin(&w);
    co_jsonw_kint(&w, "uptime_seconds", (co_mono_ms() - node->started_mono_ms) / 1000);
    co_jsonw_kstr(&w, "database", node->backend);
    co_jsonw_kstr(&w, "database_status", db_ok ? "up" : "down");
    if (db_ok && h) {
        co_jsonw_kint(&w, "queue_depth", h->jobs[COORD_JOB_PENDING]);
        co_jsonw_kint(&w, "pending_unfit", h->pending_unfit);
    }
    co_jsonw_kint(&w, "connected_agents", atomic_load(&node->metrics->agents_connected));
    co_jsonw_kint(&w, "connected_dashboards", atomic_load(&node->metrics->dashboards_connected));
    co_jsonw_kint(&w, "db_inflight", node->db ? coord_db_pending(node->db) : 0);
    int64_t agent_loop_us = atomic_load(&node->metrics->agent_loop_max_us);
    co_jsonw_kint(&w, "max_loop_callback_us",
                  node->max_loop_callback_us > agent_loop_us ? node->max_loop_callback_us
                                                             : agent_loop_us);
    co_jsonw_kint(&w, "max_agent_loop_us", agent_loop_us);
    co_jsonw_kint(&w, "max_agent_loop_us_recent", coord_metrics_agent_loop_recent(node->metrics));
    co_jsonw_kint(&w, "max_db_work_us", node->db ? coord_db_max_work_us(node->db) : 0);
    co_jsonw_obj_end(&w);
    co_jsonw_obj_end(&w);
    return db_ok ? 200 : 503;
}

void
coord_render_metrics(struct co_buf *out, const struct coord_render_node *node,
                     const struct coord_health *h, bool db_ok)
{
    coord_metrics_render(node->metrics, db_ok ? h : NULL, db_ok,
                         (co_mono_ms() - node->started_mono_ms) / 1000,
                         node->db ? coord_db_pending(node->db) : 0, out);
}
