/* coord_reconcile: sessions' jobs against the store, deadlines (see coord_reconcile.h). */
#include "coord_reconcile.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_hub.h"

struct coord_reconcile {
    struct coord_agents *hub;
    lws_sorted_usec_list_t sul;
    int64_t period_ms;
    bool busy; /* a round's read is in flight */
    /* The mismatches seen by the last round ("L|O job attempt worker"), sorted. */
    char **suspects;
    size_t n_suspects;
    struct coord_reconcile_stats st;
};

/* A round's read. */
struct round_item {
    struct coord_agents *hub;
    struct coord_reconcile *recon;
    int rc;
    co_err err;
    struct coord_job_list jobs; /* assigned and running, sorted by job id here */
    int64_t poll_before;        /* wall ms: poll jobs assigned before this and not started */
    struct coord_job_list poll; /* ... which are given back */
};

/* One fix: a requeue of a lost attempt, or the failure of a job past its deadline. */
struct fix_item {
    struct coord_agents *hub;
    struct coord_reconcile *recon;
    bool timeout;
    char job_id[CO_ID_MAX + 1];
    char worker_id[CO_ID_MAX + 1];
    int attempt;
    int rc;
    bool changed;
    co_err err;
};

static void reconcile_timer_cb(lws_sorted_usec_list_t *sul);

static void
reconcile_arm(struct coord_reconcile *rc)
{
    lws_sul_schedule(rc->hub->ctx, 0, &rc->sul, reconcile_timer_cb,
                     (lws_usec_t)rc->period_ms * LWS_US_PER_MS);
}

struct coord_reconcile *
coord_reconcile_new(struct coord_agents *hub)
{
    struct coord_reconcile *rc = co_xcalloc(1, sizeof(*rc));
    rc->hub = hub;
    rc->period_ms = hub->lease_ms / 2;
    if (rc->period_ms > 5000)
        rc->period_ms = 5000;
    if (rc->period_ms < 500)
        rc->period_ms = 500;
    if (hub->ctx)
        reconcile_arm(rc);
    return rc;
}

static void
suspects_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
coord_reconcile_free(struct coord_reconcile *rc)
{
    if (!rc)
        return;
    if (rc->hub->ctx)
        lws_sul_cancel(&rc->sul);
    co_info("reconciliation stopped rounds=%llu requeued=%llu cancelled=%llu timed_out=%llu",
            (unsigned long long)rc->st.rounds, (unsigned long long)rc->st.requeued,
            (unsigned long long)rc->st.cancelled, (unsigned long long)rc->st.timed_out);
    suspects_free(rc->suspects, rc->n_suspects);
    free(rc);
}

void
coord_reconcile_stats(const struct coord_reconcile *rc, struct coord_reconcile_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (rc)
        *out = rc->st;
}

/* ---- fixes ---- */

static void
fix_work(struct coord_store *store, void *arg)
{
    struct fix_item *it = arg;
    if (it->timeout) {
        struct coord_job_result r = {.status = COORD_JOB_FAILED, .failure = COORD_FAIL_TIMEOUT};
        it->rc = coord_store_job_finish(store, it->job_id, it->worker_id, it->attempt, &r,
                                        &it->changed, &it->err);
    } else {
        it->rc =
            coord_store_job_requeue_free(store, it->job_id, it->worker_id, it->attempt, &it->err);
        it->changed = it->rc == 0;
    }
}

static void
fix_undo(void *arg, const co_err *err)
{
    struct fix_item *it = arg;
    it->rc = -1;
    it->changed = false;
    it->err = *err;
}

/* The session of @worker_id that is welcomed, or NULL. */
static struct agent_sess *
ready_sess(struct coord_agents *hub, const char *worker_id)
{
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (s->wsi && s->state == AS_READY && !s->superseded &&
            strcmp(s->worker_id, worker_id) == 0)
            return s;
    }
    return NULL;
}

/* Tell the agent to stop @attempt of @job_id, if its session holds it. */
static void
stop_attempt(struct agent_sess *s, const char *job_id, int attempt, const char *reason)
{
    struct agent_job *j = agent_sess_find(s, job_id);
    if (j && j->attempt == attempt && j->state != AJ_CANCELLING && j->state != AJ_CLAIMING) {
        j->state = AJ_CANCELLING;
        j->since_ms = co_mono_ms();
    }
    agent_sess_send_cancel(s, job_id, attempt, reason);
}

static void
fix_done(void *arg)
{
    struct fix_item *it = arg;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub))
        goto out;
    struct coord_reconcile *rc = it->recon;
    if (it->rc < 0) {
        if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND)
            co_debug("reconcile: job=%s attempt=%d moved on meanwhile: %s", it->job_id, it->attempt,
                     it->err.msg);
        else
            co_warn("reconcile: cannot %s job=%s attempt=%d error=\"%s\"",
                    it->timeout ? "fail (timeout)" : "requeue", it->job_id, it->attempt,
                    it->err.msg);
        goto out;
    }
    if (!it->changed)
        goto out;
    if (it->timeout) {
        co_warn("job past its deadline failed as timeout job=%s attempt=%d worker=%s", it->job_id,
                it->attempt, it->worker_id);
        if (rc)
            rc->st.timed_out++;
        struct agent_sess *s = ready_sess(hub, it->worker_id);
        if (s)
            stop_attempt(s, it->job_id, it->attempt, "timeout");
    } else {
        co_warn("job requeued: its worker does not hold it job=%s attempt=%d worker=%s "
                "(the attempt is not counted)",
                it->job_id, it->attempt, it->worker_id);
        if (rc)
            rc->st.requeued++;
    }
    agent_hub_publish(hub, COORD_EVENT_JOB, it->job_id);
    agent_hub_kick(hub);
out:
    free(it);
}

static void
fix_submit(struct coord_reconcile *rc, bool timeout, const struct coord_job *j)
{
    struct coord_agents *hub = rc->hub;
    struct fix_item *it = co_xcalloc(1, sizeof(*it));
    it->hub = hub;
    it->recon = rc;
    it->timeout = timeout;
    co_strlcpy(it->job_id, j->job_id, sizeof(it->job_id));
    co_strlcpy(it->worker_id, j->assigned_worker, sizeof(it->worker_id));
    it->attempt = j->attempts;
    agent_hub_write(hub, it->job_id, fix_work, fix_undo, fix_done, it);
}

/* ---- job.assign without an answer on a live connection ---- */

/* A job.assign sent again: the job is read with its code first. */
struct resend_item {
    struct coord_agents *hub;
    struct agent_sess *s; /* referenced */
    char job_id[CO_ID_MAX + 1];
    int attempt;
    int rc;
    co_err err;
    struct coord_job job;
};

static void
resend_work(struct coord_store *store, void *arg)
{
    struct resend_item *it = arg;
    it->rc = coord_store_job_get(store, it->job_id, true, &it->job, &it->err);
}

static void
resend_done(void *arg)
{
    struct resend_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(it->hub) || it->rc < 0)
        goto out;
    const struct agent_job *aj = agent_sess_find(s, it->job_id);
    /* Still unanswered, and the store still gives this attempt to the worker. */
    if (s->wsi && s->state == AS_READY && aj && aj->state == AJ_ASSIGNED &&
        aj->attempt == it->attempt && it->job.status == COORD_JOB_ASSIGNED &&
        it->job.attempts == it->attempt && strcmp(it->job.assigned_worker, s->worker_id) == 0 &&
        agent_sess_send_assign(s, &it->job) == 0) {
        it->hub->assigns_resent++;
        co_info("job.assign sent again (no answer) job=%s attempt=%d worker=%s", it->job_id,
                it->attempt, s->worker_id);
    }
out:
    if (it->rc == 0)
        coord_job_release(&it->job);
    agent_sess_unref(s);
    free(it);
}

/*
 * @aj on @s was assigned COORD_ASSIGN_RESEND_MS ago and the agent has not answered (job.accepted
 * or job.rejected come at once): the job.assign was lost.  It is sent again on the same attempt
 * (no attempt used), up to COORD_ASSIGN_RESENDS times; then the session lets go of the job and
 * the next rounds give it back to the queue without using up an attempt.  Returns false if @aj
 * was removed.
 */
static bool
assign_unanswered(struct coord_agents *hub, struct agent_sess *s, struct agent_job *aj)
{
    if (aj->assign_resends >= COORD_ASSIGN_RESENDS) {
        co_warn("job.assign never answered, the job goes back to the queue job=%s attempt=%d "
                "worker=%s",
                aj->job_id, aj->attempt, s->worker_id);
        agent_sess_remove_job(s, aj->job_id);
        return false;
    }
    aj->assign_resends++;
    aj->since_ms = co_mono_ms();
    struct resend_item *it = co_xcalloc(1, sizeof(*it));
    it->hub = hub;
    it->s = s;
    co_strlcpy(it->job_id, aj->job_id, sizeof(it->job_id));
    it->attempt = aj->attempt;
    agent_sess_ref(s);
    if (agent_hub_submit(hub, COORD_DB_READ, resend_work, resend_done, it) < 0) {
        agent_sess_unref(s);
        free(it);
    }
    return true;
}

/* ---- rounds ---- */

static int
cmp_job_id(const void *a, const void *b)
{
    return strcmp(((const struct coord_job *)a)->job_id, ((const struct coord_job *)b)->job_id);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct coord_job *
store_find(const struct coord_job_list *l, const char *job_id)
{
    size_t lo = 0, hi = l->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->items[mid].job_id, job_id);
        if (c == 0)
            return &l->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

struct suspect_set {
    char **v;
    size_t n, cap;
};

/* Note a mismatch; true if the last round saw it too (act now). */
static bool
suspect(struct coord_reconcile *rc, struct suspect_set *now, char kind, const char *job_id,
        int attempt, const char *worker_id)
{
    char *key = co_xasprintf("%c %s %d %s", kind, job_id, attempt, worker_id);
    bool seen = rc->n_suspects > 0 &&
                bsearch(&key, rc->suspects, rc->n_suspects, sizeof(char *), cmp_str) != NULL;
    if (now->n == now->cap) {
        now->cap = now->cap ? now->cap * 2 : 16;
        now->v = co_xreallocarray(now->v, now->cap, sizeof(*now->v));
    }
    now->v[now->n++] = key;
    return seen;
}

static void
round_compare(struct coord_reconcile *rc, const struct coord_job_list *jobs,
              const struct coord_job_list *poll)
{
    struct coord_agents *hub = rc->hub;
    struct suspect_set now = {0};
    int64_t wall = co_wall_ms(), mono = co_mono_ms();
    int64_t grace_ms = hub->cfg ? hub->cfg->timeout_grace_seconds * 1000 : 30000;

    /* What the store gives out. */
    for (size_t k = 0; k < jobs->len; k++) {
        const struct coord_job *j = &jobs->items[k];
        if (!j->assigned_worker[0])
            continue;
        if (j->status == COORD_JOB_RUNNING && j->started_at > 0 &&
            wall > j->started_at + j->timeout_seconds * 1000 + grace_ms) {
            fix_submit(rc, true, j);
            continue;
        }
        struct agent_sess *s = ready_sess(hub, j->assigned_worker);
        if (!s)
            continue; /* not connected here: the lease reaper's business */
        const struct agent_job *held = agent_sess_find(s, j->job_id);
        if (held && (held->state == AJ_CLAIMING || held->attempt == j->attempts))
            continue;
        if (suspect(rc, &now, 'L', j->job_id, j->attempts, j->assigned_worker))
            fix_submit(rc, false, j);
    }

    /*
     * Poll workers (GET /task) hold nothing here: a job handed out a lease ago and never
     * reported started was lost on the way (or dropped by the worker).
     */
    for (size_t k = 0; k < poll->len; k++) {
        const struct coord_job *j = &poll->items[k];
        if (j->assigned_worker[0] &&
            suspect(rc, &now, 'P', j->job_id, j->attempts, j->assigned_worker))
            fix_submit(rc, false, j);
    }

    /* What the sessions hold. */
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (!s->wsi || s->state != AS_READY || s->superseded)
            continue;
        for (size_t k = 0; k < s->n_jobs; k++) {
            struct agent_job *aj = &s->jobs[k];
            if (aj->state == AJ_CLAIMING || aj->state == AJ_CANCELLING)
                continue;
            const struct coord_job *j = store_find(jobs, aj->job_id);
            if (j && j->attempts == aj->attempt && strcmp(j->assigned_worker, s->worker_id) == 0) {
                if (aj->state == AJ_ASSIGNED && j->status == COORD_JOB_ASSIGNED &&
                    mono - aj->since_ms >= COORD_ASSIGN_RESEND_MS && !assign_unanswered(hub, s, aj))
                    k--; /* removed: the next entry moved to k */
                continue;
            }
            if (!suspect(rc, &now, 'O', aj->job_id, aj->attempt, s->worker_id))
                continue;
            co_warn("attempt held by an agent but not by the store, cancelling job=%s "
                    "attempt=%d worker=%s",
                    aj->job_id, aj->attempt, s->worker_id);
            rc->st.cancelled++;
            char job_id[CO_ID_MAX + 1];
            co_strlcpy(job_id, aj->job_id, sizeof(job_id));
            stop_attempt(s, job_id, aj->attempt, "not assigned to this worker");
        }
    }

    if (now.n > 1)
        qsort(now.v, now.n, sizeof(char *), cmp_str);
    suspects_free(rc->suspects, rc->n_suspects);
    rc->suspects = now.v;
    rc->n_suspects = now.n;
}

static void
round_work(struct coord_store *store, void *arg)
{
    struct round_item *it = arg;
    it->rc = coord_store_job_active(store, &it->jobs, &it->err);
    if (it->rc == 0)
        it->rc = coord_store_job_poll_unstarted(store, it->poll_before, &it->poll, &it->err);
}

static void
round_done(void *arg)
{
    struct round_item *it = arg;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub) || !it->recon)
        goto out;
    struct coord_reconcile *rc = it->recon;
    rc->busy = false;
    if (it->rc < 0) {
        co_warn("reconcile: cannot read the active jobs error=\"%s\"", it->err.msg);
        goto out;
    }
    rc->st.rounds++;
    if (it->jobs.len > 1)
        qsort(it->jobs.items, it->jobs.len, sizeof(*it->jobs.items), cmp_job_id);
    round_compare(rc, &it->jobs, &it->poll);
out:
    coord_job_list_release(&it->jobs);
    coord_job_list_release(&it->poll);
    free(it);
}

static void
reconcile_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct coord_reconcile *rc = lws_container_of(sul, struct coord_reconcile, sul);
    reconcile_arm(rc);
    if (rc->busy)
        return;
    struct round_item *it = co_xcalloc(1, sizeof(*it));
    it->hub = rc->hub;
    it->recon = rc;
    it->poll_before = co_wall_ms() - rc->hub->lease_ms;
    rc->busy = true;
    if (agent_hub_submit(rc->hub, COORD_DB_READ, round_work, round_done, it) < 0) {
        rc->busy = false;
        free(it);
    }
}

/* ---- quarantine ---- */

struct quarantine_ent {
    char worker_id[CO_ID_MAX + 1];
    int streak;       /* consecutive platform-side failures */
    int64_t until_ms; /* wall clock; 0: not quarantined */
    char reason[160]; /* the status_reason */
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct quarantine_ent *q_tab;
static size_t q_n, q_cap;
/* The latest until_ms of any entry: nobody is in quarantine past it (read without q_mu). */
static _Atomic int64_t q_max_until;

static struct quarantine_ent *
q_find(const char *worker_id)
{
    for (size_t i = 0; i < q_n; i++) {
        if (strcmp(q_tab[i].worker_id, worker_id) == 0)
            return &q_tab[i];
    }
    return NULL;
}

bool
coord_quarantine_record(const char *worker_id, bool fault, const char *what, int64_t quarantine_ms)
{
    bool now_quarantined = false;
    pthread_mutex_lock(&q_mu);
    struct quarantine_ent *e = q_find(worker_id);
    if (!fault) {
        if (e)
            e->streak = 0;
        pthread_mutex_unlock(&q_mu);
        return false;
    }
    if (!e) {
        if (q_n == q_cap) {
            q_cap = q_cap ? q_cap * 2 : 16;
            q_tab = co_xreallocarray(q_tab, q_cap, sizeof(*q_tab));
        }
        e = &q_tab[q_n++];
        memset(e, 0, sizeof(*e));
        co_strlcpy(e->worker_id, worker_id, sizeof(e->worker_id));
    }
    if (++e->streak >= COORD_QUARANTINE_FAILURES) {
        int64_t now = co_wall_ms();
        now_quarantined = e->until_ms <= now;
        e->until_ms = now + quarantine_ms;
        if (e->until_ms > atomic_load(&q_max_until))
            atomic_store(&q_max_until, e->until_ms);
        snprintf(e->reason, sizeof(e->reason),
                 "%d consecutive platform-side failures (last: %s); no assignments for %lld s",
                 e->streak, what ? what : "?", (long long)(quarantine_ms / 1000));
        e->streak = 0;
    }
    pthread_mutex_unlock(&q_mu);
    return now_quarantined;
}

bool
coord_quarantine_check(const char *worker_id, char *reason, size_t size)
{
    bool q = false;
    /* The common case, asked for every session of a pass: nobody in quarantine, no lock. */
    if (atomic_load(&q_max_until) <= co_wall_ms())
        return false;
    pthread_mutex_lock(&q_mu);
    if (q_n > 0) {
        const struct quarantine_ent *e = q_find(worker_id);
        if (e && e->until_ms > co_wall_ms()) {
            q = true;
            if (reason && size > 0)
                co_strlcpy(reason, e->reason, size);
        }
    }
    pthread_mutex_unlock(&q_mu);
    return q;
}
