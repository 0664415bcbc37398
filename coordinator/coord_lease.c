/* coord_lease: heartbeat flush and lease reaper (see coord_lease.h). */
#include "coord_lease.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"

struct coord_lease {
    struct coord_agents *hub;
    lws_sorted_usec_list_t sul;
    bool busy; /* a tick's database item is in flight */
    uint64_t reaped;
    int64_t started_wall_ms; /* when this coordinator started its reaper */
};

/* One tick's database work: heartbeats to store, then expired workers to reap. */
struct tick_item {
    struct coord_agents *hub;
    char (*beats)[CO_ID_MAX + 1]; /* workers that sent a heartbeat since the last tick */
    size_t n_beats;
    char (*live)[CO_ID_MAX + 1]; /* workers connected here: never reaped */
    size_t n_live;
    int64_t lease_ms;
    int64_t started_wall_ms;
    /* Results. */
    char (*reaped)[CO_ID_MAX + 1];
    size_t n_reaped;
    char **changed; /* jobs released */
    size_t n_changed;
};

static void lease_timer_cb(lws_sorted_usec_list_t *sul);

static void
lease_arm(struct coord_lease *le)
{
    lws_sul_schedule(le->hub->ctx, 0, &le->sul, lease_timer_cb,
                     (lws_usec_t)COORD_LEASE_TICK_MS * LWS_US_PER_MS);
}

struct coord_lease *
coord_lease_new(struct coord_agents *hub)
{
    struct coord_lease *le = co_xcalloc(1, sizeof(*le));
    le->hub = hub;
    le->started_wall_ms = co_wall_ms();
    lease_arm(le);
    return le;
}

void
coord_lease_free(struct coord_lease *le)
{
    if (!le)
        return;
    lws_sul_cancel(&le->sul);
    free(le);
}

uint64_t
coord_lease_reaped(const struct coord_lease *le)
{
    return le ? le->reaped : 0;
}

static int
id_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* @it->live is sorted by tick_work before the first call. */
static bool
is_live(const struct tick_item *it, const char *worker_id)
{
    return bsearch(worker_id, it->live, it->n_live, sizeof(*it->live), id_cmp) != NULL;
}

/*
 * After a restart, a worker not heard from since this coordinator started is given the time its
 * agent needs to come back (its reconnect back-off) before its jobs are released: it may hold
 * finished results that it sends again after its hello (an outage that outlived the lease must
 * not turn them into requeued attempts).
 */
static bool
restart_grace(const struct tick_item *it, const struct coord_worker *w)
{
    return w->last_heartbeat < it->started_wall_ms &&
           co_wall_ms() < it->started_wall_ms + it->lease_ms + COORD_LEASE_RESTART_GRACE_MS;
}

/* Release the jobs of the workers whose lease ran out (inside the reaper's transaction). */
static void
reap_expired(struct coord_store *store, struct tick_item *it, int64_t now_ms)
{
    co_err err = CO_ERR_INIT;
    struct coord_worker_list exp = {0};
    if (coord_store_worker_expired(store, now_ms - it->lease_ms, &exp, &err) < 0) {
        co_warn("cannot list expired workers error=\"%s\"", err.msg);
        return;
    }
    it->reaped = co_xcalloc(exp.len + 1, sizeof(*it->reaped));
    for (size_t i = 0; i < exp.len; i++) {
        const struct coord_worker *w = &exp.items[i];
        if (is_live(it, w->worker_id) || restart_grace(it, w))
            continue;
        char **ids = NULL;
        size_t n = 0;
        if (coord_store_worker_release_jobs(store, w->worker_id, &ids, &n, &err) < 0) {
            co_warn("cannot release jobs of worker=%s error=\"%s\"", w->worker_id, err.msg);
            continue;
        }
        if (coord_store_worker_set_status(store, w->worker_id, COORD_WORKER_OFFLINE, &err) < 0)
            co_warn("cannot mark worker offline worker=%s error=\"%s\"", w->worker_id, err.msg);
        co_info("worker lease expired worker=%s jobs_released=%zu", w->worker_id, n);
        co_strlcpy(it->reaped[it->n_reaped++], w->worker_id, CO_ID_MAX + 1);
        if (n > 0) {
            it->changed = co_xreallocarray(it->changed, it->n_changed + n, sizeof(char *));
            memcpy(it->changed + it->n_changed, ids, n * sizeof(char *));
            it->n_changed += n;
        }
        free(ids);
    }
    coord_worker_list_release(&exp);
}

static void tick_undo(void *arg, const co_err *err);

static void
tick_work(struct coord_store *store, void *arg)
{
    struct tick_item *it = arg;
    co_err err = CO_ERR_INIT;
    /* One statement for the tick's heartbeats (not one UPDATE each: 2,000 a second with
     * 10,000 agents). */
    if (coord_store_worker_heartbeat_many(store, it->beats, it->n_beats, &err) < 0)
        co_warn("cannot store heartbeats workers=%zu error=\"%s\"", it->n_beats, err.msg);
    co_err rerr = CO_ERR_INIT;
    if (coord_store_worker_repute_pending(store, &rerr) < 0)
        co_warn("cannot update reputations error=\"%s\"", rerr.msg);
    qsort(it->live, it->n_live, sizeof(*it->live), id_cmp);
    /*
     * Several nodes: one reaps at a time, judging leases by the database's clock.  The reaper's
     * transaction takes a transaction-level advisory lock (PostgreSQL) and holds every release
     * of the tick; its commit releases the lock.
     */
    int64_t now_ms = 0;
    co_err lerr = CO_ERR_INIT;
    if (coord_store_batch_begin(store, &lerr) < 0) {
        co_warn("cannot begin the reaper's transaction error=\"%s\"", lerr.msg);
        return;
    }
    int may_reap = coord_store_reaper_lock(store, &lerr);
    if (may_reap > 0 && coord_store_now_ms(store, &now_ms, &lerr) < 0)
        may_reap = -1;
    if (may_reap <= 0) {
        if (may_reap < 0)
            co_warn("cannot take the reaper's turn error=\"%s\"", lerr.msg);
        coord_store_batch_rollback(store); /* 0: another node reaps this time */
        return;
    }
    reap_expired(store, it, now_ms);
    if (coord_store_batch_commit(store, &lerr) < 0) {
        co_warn("the reaper's transaction was not committed error=\"%s\"", lerr.msg);
        tick_undo(it, &lerr);
    }
}

/* The tick's batch was not committed: nothing was released or reaped. */
static void
tick_undo(void *arg, const co_err *err)
{
    struct tick_item *it = arg;
    (void)err;
    for (size_t i = 0; i < it->n_changed; i++)
        free(it->changed[i]);
    it->n_changed = 0;
    it->n_reaped = 0;
}

static void
tick_item_free(struct tick_item *it)
{
    for (size_t i = 0; i < it->n_changed; i++)
        free(it->changed[i]);
    free(it->changed);
    free(it->reaped);
    free(it->beats);
    free(it->live);
    free(it);
}

static void
tick_done(void *arg)
{
    struct tick_item *it = arg;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub))
        goto out;
    if (hub->lease) {
        hub->lease->busy = false;
        hub->lease->reaped += it->n_reaped;
    }
    for (size_t i = 0; i < it->n_changed; i++)
        agent_hub_publish(hub, COORD_EVENT_JOB, it->changed[i]);
    for (size_t i = 0; i < it->n_reaped; i++)
        agent_hub_publish(hub, COORD_EVENT_WORKER, it->reaped[i]);
    if (it->n_changed > 0 && hub->sched)
        coord_sched_kick(hub->sched);
out:
    tick_item_free(it);
}

static void
lease_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct coord_lease *le = lws_container_of(sul, struct coord_lease, sul);
    struct coord_agents *hub = le->hub;
    int64_t t0 = co_mono_ns();
    int64_t now = co_mono_ms();
    lease_arm(le);

    /* Sessions silent past the lease are dead even if TCP says otherwise; so are old cancels. */
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (!s->wsi || s->state == AS_CLOSING)
            continue;
        if (now - s->last_seen_ms > hub->lease_ms) {
            co_warn("agent silent past its lease, closing worker=%s", s->worker_id);
            agent_sess_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "lease expired");
            continue;
        }
        for (size_t k = 0; k < s->n_jobs;) {
            struct agent_job *j = &s->jobs[k];
            if (j->state == AJ_CANCELLING && now - j->since_ms > hub->lease_ms) {
                agent_sess_remove_job(s, j->job_id);
                continue;
            }
            k++;
        }
    }
    /* A safety net: anything missed (a claim error, a database hiccup) is retried. */
    if (hub->sched)
        coord_sched_kick(hub->sched);
    if (le->busy) {
        coord_metrics_agent_loop(hub->metrics, t0);
        return;
    }

    struct tick_item *it = co_xcalloc(1, sizeof(*it));
    it->hub = hub;
    it->lease_ms = hub->lease_ms;
    it->started_wall_ms = le->started_wall_ms;
    it->beats = co_xcalloc(hub->n_sess + 1, sizeof(*it->beats));
    it->live = co_xcalloc(hub->n_sess + 1, sizeof(*it->live));
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (!s->wsi || !s->worker_id[0] || s->state == AS_AWAIT_HELLO)
            continue;
        if (s->state != AS_CLOSING)
            co_strlcpy(it->live[it->n_live++], s->worker_id, CO_ID_MAX + 1);
        if (s->hb_dirty && s->state == AS_READY) {
            co_strlcpy(it->beats[it->n_beats++], s->worker_id, CO_ID_MAX + 1);
            s->hb_dirty = false;
        }
    }
    le->busy = true;
    agent_hub_write(hub, NULL, tick_work, tick_undo, tick_done, it);
    coord_metrics_agent_loop(hub->metrics, t0);
}
