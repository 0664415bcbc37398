/* coord_metrics: counters and Prometheus text (see coord_metrics.h). */
#include "coord_metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include "co_time.h"

static const int metric_codes[COORD_METRICS_CODES] = {
    200, 201, 204, 304, 400, 401, 402, 403, 404, 405,
    409, 411, 413, 415, 422, 429, 500, 503, 206, 0 /* 0 = any other */};

/* Upper bounds of the dispatch latency buckets, in seconds. */
static const double dispatch_le[COORD_METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10,  30};

void
coord_metrics_init(struct coord_metrics *m)
{
    memset(m, 0, sizeof(*m));
}

void
coord_metrics_http(struct coord_metrics *m, int code)
{
    int idx = COORD_METRICS_CODES - 1;
    for (int i = 0; i < COORD_METRICS_CODES - 1; i++) {
        if (metric_codes[i] == code) {
            idx = i;
            break;
        }
    }
    atomic_fetch_add(&m->http[idx], 1);
}

void
coord_metrics_agent_loop(struct coord_metrics *m, int64_t t0_ns)
{
    if (!m)
        return;
    int64_t now_ns = co_mono_ns();
    int64_t us = (now_ns - t0_ns) / 1000;
    int64_t was = atomic_load(&m->agent_loop_max_us);
    if (us > was)
        atomic_store(&m->agent_loop_max_us, us); /* one writer: the lws thread */
    int64_t now_ms = now_ns / 1000000;
    if (now_ms - m->agent_loop_window_ms >= COORD_METRICS_LOOP_WINDOW_MS) {
        /* A window without any agent work in between leaves nothing to carry over. */
        bool next = now_ms - m->agent_loop_window_ms < 2 * COORD_METRICS_LOOP_WINDOW_MS;
        atomic_store(&m->agent_loop_prev_us, next ? atomic_load(&m->agent_loop_cur_us) : 0);
        atomic_store(&m->agent_loop_cur_us, 0);
        m->agent_loop_window_ms = now_ms;
    }
    if (us > atomic_load(&m->agent_loop_cur_us))
        atomic_store(&m->agent_loop_cur_us, us);
}

int64_t
coord_metrics_agent_loop_recent(struct coord_metrics *m)
{
    int64_t cur = atomic_load(&m->agent_loop_cur_us), prev = atomic_load(&m->agent_loop_prev_us);
    return cur > prev ? cur : prev;
}

void
coord_metrics_dispatch(struct coord_metrics *m, int64_t wait_ms)
{
    if (wait_ms < 0)
        wait_ms = 0;
    int i = 0;
    while (i < COORD_METRICS_BUCKETS && (double)wait_ms / 1000.0 > dispatch_le[i])
        i++;
    atomic_fetch_add(&m->dispatch[i], 1);
    atomic_fetch_add(&m->dispatch_count, 1);
    atomic_fetch_add(&m->dispatch_sum_us, (uint64_t)wait_ms * 1000);
    atomic_fetch_add(&m->assignments, 1);
}

void
coord_metrics_render(struct coord_metrics *m, const struct coord_health *h, bool db_up,
                     int64_t uptime_s, int64_t db_inflight, struct co_buf *out)
{
    co_buf_puts(out, "# HELP cacheout_up Whether the database answered the last check.\n"
                     "# TYPE cacheout_up gauge\n");
    co_buf_printf(out, "cacheout_up %d\n", db_up ? 1 : 0);
    co_buf_puts(out, "# HELP cacheout_uptime_seconds Seconds since the coordinator started.\n"
                     "# TYPE cacheout_uptime_seconds gauge\n");
    co_buf_printf(out, "cacheout_uptime_seconds %" PRId64 "\n", uptime_s);
    if (h) {
        co_buf_puts(out, "# HELP cacheout_jobs Jobs by status.\n# TYPE cacheout_jobs gauge\n");
        for (int s = 0; s < COORD_JOB_STATUS_COUNT; s++)
            co_buf_printf(out, "cacheout_jobs{status=\"%s\"} %" PRId64 "\n",
                          coord_job_status_name((enum coord_job_status)s), h->jobs[s]);
        co_buf_puts(out, "# HELP cacheout_queue_depth Jobs waiting for a worker.\n"
                         "# TYPE cacheout_queue_depth gauge\n");
        co_buf_printf(out, "cacheout_queue_depth %" PRId64 "\n", h->jobs[COORD_JOB_PENDING]);
        co_buf_puts(out, "# HELP cacheout_workers Registered workers by status.\n"
                         "# TYPE cacheout_workers gauge\n");
        for (int s = 0; s < COORD_WORKER_STATUS_COUNT; s++)
            co_buf_printf(out, "cacheout_workers{status=\"%s\"} %" PRId64 "\n",
                          coord_worker_status_name((enum coord_worker_status)s), h->workers[s]);
        co_buf_puts(out, "# HELP cacheout_credits_total Credits held by all users "
                         "(available plus held).\n# TYPE cacheout_credits_total gauge\n");
        co_buf_printf(out, "cacheout_credits_total %.6f\n", (double)h->total_credits / 1e6);
    }
    co_buf_puts(out, "# HELP cacheout_assignments_total Jobs assigned to workers.\n"
                     "# TYPE cacheout_assignments_total counter\n");
    co_buf_printf(out, "cacheout_assignments_total %" PRIu64 "\n",
                  (uint64_t)atomic_load(&m->assignments));
    co_buf_puts(out, "# HELP cacheout_dispatch_latency_seconds Time from submit to assignment.\n"
                     "# TYPE cacheout_dispatch_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < COORD_METRICS_BUCKETS; i++) {
        cum += atomic_load(&m->dispatch[i]);
        co_buf_printf(out, "cacheout_dispatch_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                      dispatch_le[i], cum);
    }
    cum += atomic_load(&m->dispatch[COORD_METRICS_BUCKETS]);
    co_buf_printf(out, "cacheout_dispatch_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    co_buf_printf(out, "cacheout_dispatch_latency_seconds_sum %.6f\n",
                  (double)atomic_load(&m->dispatch_sum_us) / 1e6);
    co_buf_printf(out, "cacheout_dispatch_latency_seconds_count %" PRIu64 "\n", cum);
    co_buf_puts(out, "# HELP cacheout_agents_connected Agents holding a WebSocket.\n"
                     "# TYPE cacheout_agents_connected gauge\n");
    co_buf_printf(out, "cacheout_agents_connected %" PRId64 "\n",
                  (int64_t)atomic_load(&m->agents_connected));
    co_buf_puts(out, "# HELP cacheout_dashboards_connected Dashboards holding a WebSocket.\n"
                     "# TYPE cacheout_dashboards_connected gauge\n");
    co_buf_printf(out, "cacheout_dashboards_connected %" PRId64 "\n",
                  (int64_t)atomic_load(&m->dashboards_connected));
    co_buf_puts(out, "# HELP cacheout_auth_key_lookups_total Bearer keys looked up in the store.\n"
                     "# TYPE cacheout_auth_key_lookups_total counter\n");
    co_buf_printf(out, "cacheout_auth_key_lookups_total %" PRIu64 "\n",
                  (uint64_t)atomic_load(&m->auth_key_lookups));
    co_buf_puts(out, "# HELP cacheout_auth_key_cache_hits_total Bearer keys found in the cache.\n"
                     "# TYPE cacheout_auth_key_cache_hits_total counter\n");
    co_buf_printf(out, "cacheout_auth_key_cache_hits_total %" PRIu64 "\n",
                  (uint64_t)atomic_load(&m->auth_key_cache_hits));
    co_buf_puts(out, "# HELP cacheout_db_inflight Database work items queued or running.\n"
                     "# TYPE cacheout_db_inflight gauge\n");
    co_buf_printf(out, "cacheout_db_inflight %" PRId64 "\n", db_inflight);
    co_buf_puts(out, "# HELP cacheout_http_requests_total HTTP answers by status code.\n"
                     "# TYPE cacheout_http_requests_total counter\n");
    for (int i = 0; i < COORD_METRICS_CODES; i++) {
        uint64_t v = atomic_load(&m->http[i]);
        if (metric_codes[i] == 0)
            co_buf_printf(out, "cacheout_http_requests_total{code=\"other\"} %" PRIu64 "\n", v);
        else
            co_buf_printf(out, "cacheout_http_requests_total{code=\"%d\"} %" PRIu64 "\n",
                          metric_codes[i], v);
    }
}
