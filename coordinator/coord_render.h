/*
 * coord_render: the JSON of the objects REST answers and dashboard events share -- jobs (the full
 * and the public view, and who sees which), workers, a user's credits, the pricing settings and
 * health -- written once here so that a job or a worker looks the same in GET /jobs, in
 * `job.updated`, in a snapshot and in a callback body.  Also the /metrics text.
 *
 * Thread: pure writers, any thread (the REST handlers and the dashboard builds call them on
 * database threads, the health renderers run on the lws thread, which owns the node's figures).
 * No state, no life cycle.
 */
#ifndef COORD_RENDER_H
#define COORD_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "co_buf.h"
#include "co_jsonw.h"
#include "coord_auth.h"
#include "coord_config.h"
#include "coord_store.h"

struct coord_db;
struct coord_metrics;

/**
 * The figures of this coordinator that health and /metrics show next to the store's counts.
 * Owned by coord_server (lws thread), read by the renderers on the lws thread.
 */
struct coord_render_node {
    const char *backend;           /* "sqlite" or "postgres" */
    int64_t started_mono_ms;       /* co_mono_ms() at start */
    struct coord_metrics *metrics; /* borrowed: counters (atomics) */
    struct coord_db *db;           /* borrowed: queue length, longest item (NULL: 0) */
    int64_t max_loop_callback_us;  /* longest HTTP callback on the lws thread */
};

/**
 * Whether @p sees @buyer_id's jobs in full (code, command, parameters, output): admins, and the
 * buyer itself with the buy scope; everyone else gets the public view (API.md "Visibility and
 * rights").
 */
bool coord_render_sees_full(const struct coord_principal *p, const char *buyer_id);

/** Whether @p sees who owns which worker (`owner_id`): any credential, not anonymous users. */
bool coord_render_sees_owners(const struct coord_principal *p);

/**
 * The job object of API.md (with `code` and `code_file` when @with_code, with `attempt` when
 * @attempt > 0).  @w and @j are borrowed.
 */
void coord_render_job(struct co_jsonw *w, const struct coord_job *j, bool with_code, int attempt);

/** The public view of a job (what anonymous users and other buyers see). */
void coord_render_job_public(struct co_jsonw *w, const struct coord_job *j);

/**
 * The worker object of API.md; a worker silent for @timeout_ms shows as offline.  Without
 * `owner_id` unless @with_owner (the anonymous view of GET /workers).
 */
void coord_render_worker(struct co_jsonw *w, const struct coord_worker *wk, int64_t timeout_ms,
                         bool with_owner);

/** The members `user_id`, `credits`, `held` of a user's balance (in an open object). */
void coord_render_credits(struct co_jsonw *w, const struct coord_user *u);

/** The members "pricing", "charged" (null until settled), "min_reputation", a job's prices. */
void coord_render_job_price(struct co_jsonw *w, const struct coord_job *j);

/** The members "price_per_core_second", "price_per_gb_second", "reputation", "owner_reputation". */
void coord_render_worker_price(struct co_jsonw *w, const struct coord_worker *wk);

/**
 * The pricing settings for the dashboard's cost preview (inside its "pricing" object): "mode"
 * (flat, metered, market), "price_per_core_second", "price_per_gb_second" (metered),
 * "platform_fee_percent".
 */
void coord_render_pricing_settings(struct co_jsonw *w, const struct coord_config *cfg);

/** The pricing object of a dashboard snapshot: base costs, the settings, the job size limits. */
void coord_render_pricing(struct co_jsonw *w, const struct coord_config *cfg);

/**
 * The body of GET /api/v1/health into @out (appended): counts from @h (NULL or !@db_ok: the
 * database is down), figures of @node.  Returns the HTTP status (200, or 503 when down).
 */
int coord_render_health(struct co_buf *out, const struct coord_render_node *node,
                        const struct coord_health *h, bool db_ok);

/** The /metrics text of @node's counters and @h into @out (appended). */
void coord_render_metrics(struct co_buf *out, const struct coord_render_node *node,
                          const struct coord_health *h, bool db_ok);

#endif
