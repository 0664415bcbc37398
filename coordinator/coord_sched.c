/* coord_sched: the push scheduler (see coord_sched.h). */
#include "coord_sched.h"

#include <string.h>

#include <libwebsockets.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"

struct coord_sched {
    struct coord_agents *hub;
    lws_sorted_usec_list_t sul;
    bool scheduled; /* the timer is armed */
    bool running;   /* a pending-jobs read is in flight */
    bool again;     /* a kick came during the pass */
    uint64_t passes;
    uint64_t claims, conflicts;
};

/* The read of one pass. */
struct pass_item {
    struct coord_sched *sc;
    struct coord_agents *hub;
    int64_t limit;
    int64_t default_cap; /* MAX_RUNNING_JOBS */
    int rc;
    co_err err;
    struct coord_job_list jobs;
    struct coord_buyer_cap_list caps; /* buyers with a max_running_jobs */
};

/* One claim. */
struct claim_item {
    struct coord_agents *hub;
    struct coord_sched *sc; /* NULL once the scheduler is freed */
    struct agent_sess *s;
    char job_id[CO_ID_MAX + 1];
    char worker_id[CO_ID_MAX + 1];
    int rc;
    co_err err;
    struct coord_job job; /* with code */
};

static void sched_timer_cb(lws_sorted_usec_list_t *sul);

struct coord_sched *
coord_sched_new(struct coord_agents *hub)
{
    struct coord_sched *sc = co_xcalloc(1, sizeof(*sc));
    sc->hub = hub;
    return sc;
}

void
coord_sched_free(struct coord_sched *sc)
{
    if (!sc)
        return;
    if (sc->scheduled)
        lws_sul_cancel(&sc->sul);
    co_info("scheduler stopped passes=%llu claims=%llu conflicts=%llu",
            (unsigned long long)sc->passes, (unsigned long long)sc->claims,
            (unsigned long long)sc->conflicts);
    free(sc);
}

uint64_t
coord_sched_passes(const struct coord_sched *sc)
{
    return sc ? sc->passes : 0;
}

/*
 * Free cores over the welcomed agents (0: a pass is pointless).  Every job needs a core, so a
 * pass reads a few times that many pending jobs (enough to see the jobs that fit and the larger,
 * more urgent ones that reserve an agent) instead of the whole queue.
 */
static int64_t
sched_free_cores(struct coord_agents *hub)
{
    int64_t n = 0;
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (s->wsi && s->state == AS_READY && !s->superseded && s->free_cores > 0 &&
            s->free_ram_mb > 0)
            n += s->free_cores;
    }
    return n;
}

void
coord_sched_kick(struct coord_sched *sc)
{
    if (!sc)
        return;
    if (sc->running) {
        sc->again = true;
        return;
    }
    if (sc->scheduled)
        return;
    sc->scheduled = true;
    /* Zero delay: the pass runs on the next loop turn, after the current burst of events. */
    lws_sul_schedule(sc->hub->ctx, 0, &sc->sul, sched_timer_cb, 1);
}

static void
pending_work(struct coord_store *store, void *arg)
{
    struct pass_item *it = arg;
    it->rc = coord_store_job_pending_capped(store, it->limit, it->default_cap, &it->jobs, &it->caps,
                                            &it->err);
}

static void
claim_work(struct coord_store *store, void *arg)
{
    struct claim_item *it = arg;
    it->rc = coord_store_job_claim(store, it->job_id, it->worker_id, &it->job, &it->err);
}

static void
claim_undo(void *arg, const co_err *err)
{
    struct claim_item *it = arg;
    if (it->rc == 0)
        coord_job_release(&it->job);
    it->rc = -1;
    it->err = *err;
}

static void
claim_done(void *arg)
{
    struct claim_item *it = arg;
    struct agent_sess *s = it->s;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub))
        goto out;
    struct coord_sched *sc = hub->sched;
    struct agent_job *j = agent_sess_find(s, it->job_id);
    bool mine = j && j->state == AJ_CLAIMING;
    if (it->rc < 0) {
        if (mine)
            agent_sess_remove_job(s, it->job_id);
        if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND) {
            co_debug("claim lost job=%s worker=%s: %s", it->job_id, it->worker_id, it->err.msg);
            if (sc)
                sc->conflicts++;
        } else {
            co_warn("cannot claim job=%s worker=%s error=\"%s\"", it->job_id, it->worker_id,
                    it->err.msg);
        }
        goto out;
    }
    if (sc)
        sc->claims++;
    if (hub->metrics) {
        int64_t wait = co_wall_ms() - it->job.created_at;
        coord_metrics_dispatch(hub->metrics, wait < 0 ? 0 : wait);
    }
    if (s->wsi && s->state == AS_READY && mine) {
        j->attempt = it->job.attempts;
        j->state = AJ_ASSIGNED;
        j->since_ms = co_mono_ms();
        agent_sess_send_assign(s, &it->job);
    } else {
        /*
         * The session went away while the claim ran.  If the worker reconnected meanwhile, give
         * the job to its new session (the store counts it against that worker already);
         * otherwise the reconnect releases it (the agent does not hold it), or the lease reaper
         * does.
         */
        if (mine)
            agent_sess_remove_job(s, it->job_id);
        for (size_t i = 0; i < hub->n_sess; i++) {
            struct agent_sess *o = hub->sess[i];
            if (o != s && o->wsi && o->state == AS_READY &&
                strcmp(o->worker_id, it->worker_id) == 0 && !agent_sess_find(o, it->job_id)) {
                agent_sess_add_job(o, &it->job, it->job.attempts, AJ_ASSIGNED);
                agent_sess_send_assign(o, &it->job);
                break;
            }
        }
    }
    agent_hub_publish(hub, COORD_EVENT_JOB, it->job_id);
out:
    if (it->rc == 0)
        coord_job_release(&it->job);
    agent_sess_unref(s);
    free(it);
}

/*
 * Best fit: the agent with the least leftover after placing the job, measured as the sum of
 * the leftover fractions of cores and RAM (so neither resource dominates by its unit).
 */
static double
leftover(int64_t have_c, int64_t have_r, int64_t cores, int64_t ram, int64_t tot_c, int64_t tot_r)
{
    return (double)(have_c - cores) / (double)(tot_c > 0 ? tot_c : 1) +
           (double)(have_r - ram) / (double)(tot_r > 0 ? tot_r : 1);
}

/* Queue the store claim of @job for @s, whose capacity coord_sched_plan() reserved already. */
static void
sched_claim(struct coord_sched *sc, struct agent_sess *s, const struct coord_job *job)
{
    struct coord_agents *hub = sc->hub;
    struct claim_item *it = co_xcalloc(1, sizeof(*it));
    it->hub = hub;
    it->sc = sc;
    it->s = s;
    co_strlcpy(it->job_id, job->job_id, sizeof(it->job_id));
    co_strlcpy(it->worker_id, s->worker_id, sizeof(it->worker_id));
    agent_sess_ref(s);
    agent_hub_write(hub, it->job_id, claim_work, claim_undo, claim_done, it);
}

size_t
coord_sched_plan(struct coord_agents *hub, const struct coord_job_list *jobs,
                 struct sched_pick *picks)
{
    size_t placed = 0;
    for (size_t i = 0; i < hub->n_sess; i++)
        hub->sess[i]->blocked = false;
    for (size_t k = 0; k < jobs->len; k++) {
        const struct coord_job *job = &jobs->items[k];
        if (agent_hub_holds_job(hub, job->job_id))
            continue; /* claimed already; the read raced with the claim */
        const char *image = job->image && job->image[0] ? job->image : "default";
        struct agent_sess *best = NULL, *reserve = NULL;
        double best_left = 0, reserve_left = 0;
        bool any_open = false;
        for (size_t i = 0; i < hub->n_sess; i++) {
            struct agent_sess *s = hub->sess[i];
            if (!s->wsi || s->state != AS_READY || s->blocked || s->superseded)
                continue;
            any_open = true;
            if (s->cores < job->required_cores || s->ram_mb < job->required_ram_mb ||
                !agent_sess_has_image(s, image))
                continue;
            if (s->free_cores >= job->required_cores && s->free_ram_mb >= job->required_ram_mb) {
                double l = leftover(s->free_cores, s->free_ram_mb, job->required_cores,
                                    job->required_ram_mb, s->cores, s->ram_mb);
                if (!best || l < best_left) {
                    best = s;
                    best_left = l;
                }
            } else {
                double l = leftover(s->cores, s->ram_mb, job->required_cores, job->required_ram_mb,
                                    s->cores, s->ram_mb);
                if (!reserve || l < reserve_left) {
                    reserve = s;
                    reserve_left = l;
                }
            }
        }
        if (!any_open)
            break;
        if (best) {
            agent_sess_add_job(best, job, 0, AJ_CLAIMING);
            picks[placed].job = k;
            picks[placed].s = best;
            placed++;
        } else if (reserve) {
            /*
             * It fits this agent once running jobs end: keep less urgent jobs off it for the
             * rest of the pass, so the job is not starved by a stream of small ones.
             */
            reserve->blocked = true;
        }
        /* A job that fits no connected agent at all stays pending (health: pending_unfit). */
    }
    return placed;
}

/*
 * Hold back the jobs of buyers at their max_running_jobs: each buyer with a cap keeps, in
 * scheduling order, only as many jobs of the read as its cap leaves room for, counting its
 * running jobs in the store and the claims of this coordinator still in flight (which the store
 * may not count yet: a claim that committed meanwhile is counted twice, which only delays a job
 * to the next pass).  The other buyers' jobs stay, so a held buyer blocks nobody.
 */
static void
sched_hold_back(struct coord_agents *hub, struct coord_job_list *jobs,
                const struct coord_buyer_cap_list *caps)
{
    if (caps->len == 0)
        return;
    int64_t *room = co_xcalloc(caps->len, sizeof(*room));
    for (size_t c = 0; c < caps->len; c++)
        room[c] = caps->items[c].cap - caps->items[c].running;
    for (size_t i = 0; i < hub->n_sess; i++) {
        const struct agent_sess *s = hub->sess[i];
        for (size_t k = 0; k < s->n_jobs; k++) {
            if (s->jobs[k].state != AJ_CLAIMING)
                continue;
            for (size_t c = 0; c < caps->len; c++) {
                if (strcmp(caps->items[c].buyer_id, s->jobs[k].buyer_id) == 0)
                    room[c]--;
            }
        }
    }
    size_t kept = 0;
    for (size_t k = 0; k < jobs->len; k++) {
        bool keep = true;
        for (size_t c = 0; c < caps->len; c++) {
            if (strcmp(caps->items[c].buyer_id, jobs->items[k].buyer_id) == 0) {
                keep = room[c] > 0;
                room[c]--;
                break;
            }
        }
        if (keep)
            jobs->items[kept++] = jobs->items[k];
        else
            coord_job_release(&jobs->items[k]);
    }
    jobs->len = kept;
    free(room);
}

/* Place the pending jobs of one read on the agents and claim them (lws thread). */
static size_t
sched_place(struct coord_sched *sc, const struct coord_job_list *jobs)
{
    struct sched_pick *picks = co_xcalloc(jobs->len + 1, sizeof(*picks));
    size_t n = coord_sched_plan(sc->hub, jobs, picks);
    for (size_t i = 0; i < n; i++)
        sched_claim(sc, picks[i].s, &jobs->items[picks[i].job]);
    free(picks);
    return n;
}

static void
pass_done(void *arg)
{
    struct pass_item *it = arg;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub) || !hub->sched)
        goto out;
    struct coord_sched *sc = hub->sched;
    sc->running = false;
    if (it->rc < 0) {
        co_warn("scheduler cannot read pending jobs error=\"%s\"", it->err.msg);
        goto out; /* the lease tick kicks again */
    }
    size_t read = it->jobs.len;
    sched_hold_back(hub, &it->jobs, &it->caps);
    size_t placed = sched_place(sc, &it->jobs);
    if (sc->again || (placed > 0 && (int64_t)read >= it->limit)) {
        sc->again = false;
        coord_sched_kick(sc);
    }
out:
    coord_job_list_release(&it->jobs);
    free(it->caps.items);
    free(it);
}

static void
sched_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct coord_sched *sc = lws_container_of(sul, struct coord_sched, sul);
    struct coord_agents *hub = sc->hub;
    sc->scheduled = false;
    sc->again = false;
    int64_t free_cores = sched_free_cores(hub);
    if (sc->running || free_cores == 0)
        return;
    struct pass_item *it = co_xcalloc(1, sizeof(*it));
    it->sc = sc;
    it->hub = hub;
    it->default_cap = hub->cfg->max_running_jobs;
    it->limit = free_cores * 4 < 32 ? 32 : free_cores * 4;
    if (it->limit > COORD_SCHED_BATCH)
        it->limit = COORD_SCHED_BATCH;
    sc->running = true;
    sc->passes++;
    if (agent_hub_submit(hub, COORD_DB_READ, pending_work, pass_done, it) < 0) {
        sc->running = false;
        free(it);
    }
}
