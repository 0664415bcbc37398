/*
 * coord_retention: periodic removal of old job data in small transactions (coord_retention.h).
 */
#include "coord_retention.h"

#include <inttypes.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"

struct coord_retention {
    lws_sorted_usec_list_t sul;
    struct lws_context *ctx;
    struct coord_db *db;
    int64_t retention_ms, interval_ms, batch;
    bool inflight; /* a step is queued or running */
    bool stopped;  /* coord_retention_stop ran: the step's completion frees */
    /* The current run. */
    int64_t cutoff_ms;
    struct coord_retention_counts step, total;
    int step_rc;
    co_err err;
};

static int64_t
counts_sum(const struct coord_retention_counts *c)
{
    return c->job_code + c->output_chunks + c->outputs + c->artifacts + c->workers + c->idem_keys +
           c->deliveries + c->outcomes;
}

static void
counts_add(struct coord_retention_counts *to, const struct coord_retention_counts *c)
{
    to->job_code += c->job_code;
    to->output_chunks += c->output_chunks;
    to->outputs += c->outputs;
    to->artifacts += c->artifacts;
    to->workers += c->workers;
    to->idem_keys += c->idem_keys;
    to->deliveries += c->deliveries;
    to->outcomes += c->outcomes;
}

int
coord_retention_run(struct coord_store *s, int64_t cutoff_ms, int64_t batch,
                    struct coord_retention_counts *total, co_err *err)
{
    struct coord_retention_counts c;
    memset(total, 0, sizeof(*total));
    do {
        if (coord_store_retention_step(s, cutoff_ms, co_wall_ms(), batch, &c, err) < 0)
            return -1;
        counts_add(total, &c);
    } while (counts_sum(&c) > 0);
    return 0;
}

static void retention_timer_cb(lws_sorted_usec_list_t *sul);

static void
retention_arm(struct coord_retention *rt, int64_t delay_ms)
{
    lws_sul_schedule(rt->ctx, 0, &rt->sul, retention_timer_cb,
                     (lws_usec_t)delay_ms * LWS_US_PER_MS);
}

/* Database thread: one transaction. */
static void
retention_step_work(struct coord_store *s, void *arg)
{
    struct coord_retention *rt = arg;
    co_err_clear(&rt->err);
    rt->step_rc =
        coord_store_retention_step(s, rt->cutoff_ms, co_wall_ms(), rt->batch, &rt->step, &rt->err);
}

static void retention_queue_step(struct coord_retention *rt);

/* lws thread: the next step, or the end of this run. */
static void
retention_step_done(void *arg)
{
    struct coord_retention *rt = arg;
    rt->inflight = false;
    if (rt->stopped) {
        free(rt);
        return;
    }
    if (rt->step_rc < 0) {
        co_warn("retention step failed, retried at the next run error=\"%s\"", rt->err.msg);
        retention_arm(rt, rt->interval_ms);
        return;
    }
    counts_add(&rt->total, &rt->step);
    if (counts_sum(&rt->step) > 0) {
        retention_queue_step(rt);
        return;
    }
    if (counts_sum(&rt->total) > 0)
        co_info("retention removed job_code=%" PRId64 " output_chunks=%" PRId64 " outputs=%" PRId64
                " artifacts=%" PRId64 " workers=%" PRId64 " idempotency_keys=%" PRId64
                " deliveries=%" PRId64 " outcomes=%" PRId64,
                rt->total.job_code, rt->total.output_chunks, rt->total.outputs, rt->total.artifacts,
                rt->total.workers, rt->total.idem_keys, rt->total.deliveries, rt->total.outcomes);
    retention_arm(rt, rt->interval_ms);
}

static void
retention_queue_step(struct coord_retention *rt)
{
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(rt->db, COORD_DB_WRITE, retention_step_work, retention_step_done, rt,
                        &err) < 0) {
        co_warn("retention not queued, retried at the next run error=\"%s\"", err.msg);
        retention_arm(rt, rt->interval_ms);
        return;
    }
    rt->inflight = true;
}

static void
retention_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct coord_retention *rt = lws_container_of(sul, struct coord_retention, sul);
    if (rt->inflight)
        return;
    rt->cutoff_ms = co_wall_ms() - rt->retention_ms;
    memset(&rt->total, 0, sizeof(rt->total));
    retention_queue_step(rt);
}

struct coord_retention *
coord_retention_start(struct lws_context *ctx, struct coord_db *db, int64_t retention_ms,
                      int64_t interval_ms, int64_t batch)
{
    struct coord_retention *rt = co_xcalloc(1, sizeof(*rt));
    rt->ctx = ctx;
    rt->db = db;
    rt->retention_ms = retention_ms;
    rt->interval_ms = interval_ms;
    rt->batch = batch;
    retention_arm(rt, COORD_RETENTION_FIRST_DELAY_MS);
    return rt;
}

void
coord_retention_stop(struct coord_retention *rt)
{
    if (!rt)
        return;
    lws_sul_cancel(&rt->sul);
    if (rt->inflight) {
        rt->stopped = true;
        return;
    }
    free(rt);
}
