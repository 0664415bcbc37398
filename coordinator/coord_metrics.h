/*
 * coord_metrics: process counters and their Prometheus text rendering (/metrics).  Counters are
 * atomics so any thread (HTTP, scheduler, agent sessions) may update them.  Life cycle: one
 * struct coord_metrics inside the server, set up by coord_metrics_init() in coord_server_run()
 * and gone when it returns; the agent protocol and the dashboards borrow it.
 */
#ifndef COORD_METRICS_H
#define COORD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "co_buf.h"
#include "coord_store.h"

#define COORD_METRICS_CODES 20
#define COORD_METRICS_BUCKETS 12

struct coord_metrics {
    _Atomic uint64_t http[COORD_METRICS_CODES]; /* by status code, see coord_metrics.c */
    _Atomic uint64_t assignments;               /* jobs handed to a worker (any attempt) */
    _Atomic uint64_t dispatch[COORD_METRICS_BUCKETS + 1]; /* cumulative later; +Inf last */
    _Atomic uint64_t dispatch_count;
    _Atomic uint64_t dispatch_sum_us;
    _Atomic int64_t agents_connected;
    _Atomic int64_t dashboards_connected;
    _Atomic uint64_t auth_key_lookups;    /* bearer keys looked up in the store */
    _Atomic uint64_t auth_key_cache_hits; /* bearer keys found in the lookup cache */
    /* The longest agent callback or agent timer (scheduler pass, lease tick, write flush) on the
     * service loop, wall clock (HTTP callbacks are the server's max_loop_callback_us). */
    _Atomic int64_t agent_loop_max_us;
    /* The same over recent windows of COORD_METRICS_LOOP_WINDOW_MS: the longest of the current
     * window and the one before (coord_metrics_agent_loop_recent). */
    _Atomic int64_t agent_loop_cur_us, agent_loop_prev_us;
    int64_t agent_loop_window_ms; /* monotonic start of the current window (lws thread) */
};

#define COORD_METRICS_LOOP_WINDOW_MS 5000

/** Zero every counter. */
void coord_metrics_init(struct coord_metrics *m);
/** Count one HTTP answer with status @code. */
void coord_metrics_http(struct coord_metrics *m, int code);
/** Count one assignment that waited @wait_ms since the job was submitted. */
void coord_metrics_dispatch(struct coord_metrics *m, int64_t wait_ms);
/** Note an agent callback or timer that began at @t0_ns (co_mono_ns) and ends now, on the
 *  service loop (@m may be NULL). */
void coord_metrics_agent_loop(struct coord_metrics *m, int64_t t0_ns);
/** The longest agent callback or timer of the last 5 to 10 s with agent work (any thread). */
int64_t coord_metrics_agent_loop_recent(struct coord_metrics *m);

/**
 * Append the Prometheus text exposition to @out: the counters of @m, job counts and queue depth
 * from @h (NULL when the database is unreachable), and process figures.
 */
void coord_metrics_render(struct coord_metrics *m, const struct coord_health *h, bool db_up,
                          int64_t uptime_s, int64_t db_inflight, struct co_buf *out);

#endif
