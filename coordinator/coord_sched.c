/* coord_sched: the push scheduler (see coord_sched.h). */
#include "coord_sched.h"

#include <pthread.h>
#include <string.h>

#include <libwebsockets.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_credits.h"
#include "co_jsonw.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_hub.h"
#include "coord_node.h"
#include "coord_verify.h"
#include "proto_job.h"

struct coord_sched {
    struct coord_agents *hub;
    lws_sorted_usec_list_t sul;
    bool scheduled; /* the timer is armed */
    bool running;   /* a pending-jobs read is in flight */
    bool again;     /* a kick came during the pass */
    uint64_t passes;
    uint64_t claims, conflicts;
    /*
     * What the connected agents can run, kept up to date with the sessions the hub says changed
     * (coord_sched_refresh): how many open sessions have each size and each image.
     */
    struct fit_count *cores_n, *ram_n; /* sorted by value */
    size_t n_cores_n, n_ram_n;
    struct fit_image *images_n; /* sorted by name */
    size_t n_images_n;
    bool images_dirty;    /* the image set changed: images is written again */
    bool fit_valid;       /* refreshed at least once */
    struct co_buf images; /* their images, a JSON array, each once */
    int64_t max_cores, max_ram_mb;
    /*
     * The terms read last (sorted by worker id; moved to the pass item while a read is in
     * flight), and the sessions opened since that still wait for theirs (coord_sched_refresh).
     */
    struct coord_worker_list terms;
    bool terms_valid; /* terms were applied to every session once */
    struct fresh_sess *fresh;
    size_t n_fresh, cap_fresh;
    /* Fair share: when each buyer last had a job placed (a serial; a buyer not listed: never). */
    struct buyer_turn *turns;
    size_t n_turns;
    uint64_t turn_serial;
};

/* How many open sessions have one value of a size (cores or RAM). */
struct fit_count {
    int64_t v;
    size_t n;
};

/* How many open sessions list one image. */
struct fit_image {
    char *name;
    size_t n;
};

/* A session opened since the last terms read, waiting for its stored terms (a reference). */
struct fresh_sess {
    struct agent_sess *s;
    int64_t since_ms; /* monotonic: a read that began after this knows its worker */
};

/* Fair share: buyers remembered at most, the least recently served forgotten first. */
#define SCHED_TURNS_MAX 4096

struct buyer_turn {
    char buyer_id[CO_ID_MAX + 1];
    uint64_t served; /* turn_serial when a job of the buyer was last placed */
};

/* The read of one pass. */
struct pass_item {
    struct coord_sched *sc;
    struct coord_agents *hub;
    int64_t limit;
    struct coord_job_fit fit;
    char *images_json;   /* owned: fit.images_json */
    int64_t default_cap; /* MAX_RUNNING_JOBS */
    int64_t began_ms;    /* monotonic: when the read was submitted */
    int rc;
    co_err err;
    struct coord_job_list jobs;
    struct coord_buyer_cap_list caps; /* buyers with a max_running_jobs */
    struct coord_worker_list terms;   /* prices and reputation of the workers not offline, sorted */
    struct coord_worker_list prev;    /* the read before (the scheduler's, given back after) */
    size_t *diff;                     /* the rows of terms new or changed since prev */
    size_t n_diff;
};

/* One claim. */
struct claim_item {
    struct coord_agents *hub;
    struct coord_sched *sc; /* freed only with a dead hub: valid once agent_hub_complete() */
    struct agent_sess *s;
    char job_id[CO_ID_MAX + 1];
    char worker_id[CO_ID_MAX + 1];
    int64_t epoch; /* the session's: a claim for a session that moved on is refused */
    int rc;
    co_err err;
    struct coord_job job; /* with code */
};

static void sched_timer_cb(lws_sorted_usec_list_t *sul);
static void board_clear(struct coord_sched *sc);
static void fresh_drop(struct coord_sched *sc, size_t i);

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
    board_clear(sc);
    while (sc->n_fresh > 0)
        fresh_drop(sc, sc->n_fresh - 1);
    free(sc->fresh);
    coord_worker_list_release(&sc->terms);
    for (size_t i = 0; i < sc->n_images_n; i++)
        free(sc->images_n[i].name);
    free(sc->images_n);
    free(sc->cores_n);
    free(sc->ram_n);
    co_buf_release(&sc->images);
    free(sc->turns);
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
    /* The read's size stops growing at COORD_SCHED_BATCH / 4 free cores: no need to count on. */
    for (size_t i = 0; i < hub->n_sess && n < COORD_SCHED_BATCH / 4; i++) {
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

static int
terms_cmp(const void *a, const void *b)
{
    return strcmp(((const struct coord_worker *)a)->worker_id,
                  ((const struct coord_worker *)b)->worker_id);
}

static bool
terms_same(const struct coord_worker *a, const struct coord_worker *b)
{
    return a->reputation == b->reputation && a->price.per_core_second == b->price.per_core_second &&
           a->price.per_gb_second == b->price.per_gb_second;
}

/*
 * Sort a terms read by worker id and list its rows that are new or changed since @it->prev (the
 * read before, sorted): the lws thread then applies those only (database thread).
 */
static void
terms_diff(struct pass_item *it)
{
    struct coord_worker_list *n = &it->terms, *o = &it->prev;
    /* The store reads them by worker id already; a database collation other than bytes may not. */
    bool sorted = true;
    for (size_t i = 1; i < n->len && sorted; i++)
        sorted = terms_cmp(&n->items[i - 1], &n->items[i]) <= 0;
    if (!sorted)
        qsort(n->items, n->len, sizeof(*n->items), terms_cmp);
    it->diff = co_xcalloc(n->len + 1, sizeof(*it->diff));
    size_t j = 0;
    for (size_t i = 0; i < n->len; i++) {
        int c = 1;
        while (j < o->len && (c = strcmp(o->items[j].worker_id, n->items[i].worker_id)) < 0)
            j++;
        if (j >= o->len || c != 0 || !terms_same(&o->items[j], &n->items[i]))
            it->diff[it->n_diff++] = i;
    }
}

static void
pending_work(struct coord_store *store, void *arg)
{
    struct pass_item *it = arg;
    it->rc = coord_store_job_pending_fit_capped(store, it->limit, &it->fit, it->default_cap,
                                                &it->jobs, &it->caps, &it->err);
    if (it->rc == 0)
        it->rc = coord_verify_load_avoid(store, &it->jobs, &it->err); /* replicas' owners */
    if (it->rc == 0 && coord_store_worker_terms(store, &it->terms, &it->err) < 0) {
        /* Placement goes on with the terms the sessions had. */
        co_warn("scheduler cannot read worker prices and reputation error=\"%s\"", it->err.msg);
        coord_worker_list_release(&it->terms);
        /* As if nothing changed: the read before stays the reference. */
        it->terms.items = co_xcalloc(it->prev.len + 1, sizeof(*it->terms.items));
        if (it->prev.len)
            memcpy(it->terms.items, it->prev.items, it->prev.len * sizeof(*it->prev.items));
        it->terms.len = it->prev.len;
    }
    terms_diff(it);
}

/*
 * The session check and the claim in one transaction, the worker's row locked by the check until
 * the claim commits: a hello (which moves the session on and lists the worker's jobs in its own
 * transaction) either comes first, and the check refuses the claim, or waits and lists the job.
 * As two transactions (PostgreSQL, outside a write batch), a claim could commit between a hello's
 * list and its welcome, unknown to both sessions until reconciliation gave it back.
 */
static void
claim_work(struct coord_store *store, void *arg)
{
    struct claim_item *it = arg;
    it->rc = coord_store_batch_begin(store, &it->err);
    if (it->rc < 0)
        return;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, true, &it->err);
    if (it->rc == 0)
        it->rc = coord_store_job_claim(store, it->job_id, it->worker_id, &it->job, &it->err);
    if (it->rc < 0) {
        coord_store_batch_rollback(store);
        return;
    }
    it->rc = coord_store_batch_commit(store, &it->err);
    if (it->rc < 0)
        coord_job_release(&it->job);
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

/* A welcomed live session that does not hold the job @ud (a job id). */
static bool
sess_ready_without(const struct agent_sess *o, const void *ud)
{
    return o->wsi && o->state == AS_READY && !agent_sess_find((struct agent_sess *)o, ud);
}

static void
claim_done(void *arg)
{
    struct claim_item *it = arg;
    struct agent_sess *s = it->s;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub))
        goto out;
    struct coord_sched *sc = it->sc;
    struct agent_job *j = agent_sess_find(s, it->job_id);
    bool mine = j && j->state == AJ_CLAIMING;
    if (it->rc < 0) {
        if (mine)
            agent_sess_remove_job(s, it->job_id);
        if (coord_node_fenced(&it->err))
            agent_sess_moved(s, &it->err);
        else if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND) {
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
        struct agent_sess *o =
            agent_hub_worker_first(hub, it->worker_id, s, sess_ready_without, it->job_id);
        if (o) {
            agent_sess_add_job(o, &it->job, it->job.attempts, AJ_ASSIGNED);
            agent_sess_send_assign(o, &it->job);
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

/* The job's buyer accepts @s: its reputation, and in market pricing its price. */
static bool
sched_terms_allow(const struct agent_sess *s, const struct coord_job *job)
{
    if (s->reputation < job->min_reputation)
        return false;
    return job->pricing != COORD_PRICING_MARKET || coord_rate_within(&s->price, &job->max_rate);
}

/* Placement order before fit: market price (cheapest first), then reputation (highest first). */
static int
sched_terms_cmp(const struct agent_sess *a, const struct agent_sess *b, const struct coord_job *job)
{
    if (job->pricing == COORD_PRICING_MARKET) {
        int c = coord_rate_cmp(&a->price, &b->price, job->required_cores, job->required_ram_mb);
        if (c != 0)
            return c;
    }
    return (a->reputation < b->reputation) - (a->reputation > b->reputation);
}

/* Copy @t's terms to @s; counts a change when they differ. */
static void
sess_take_terms(struct coord_agents *hub, struct agent_sess *s, const struct coord_worker *t)
{
    if (s->reputation == t->reputation && s->price.per_core_second == t->price.per_core_second &&
        s->price.per_gb_second == t->price.per_gb_second)
        return;
    s->price = t->price;
    s->reputation = t->reputation;
    agent_hub_changed(hub, s);
}

/* Copy @t's terms to the sessions of its worker (the worker index). */
static void
worker_take_terms(struct coord_agents *hub, const struct coord_worker *t)
{
    for (struct agent_ix_ent *e = agent_ix_first(&hub->workers, t->worker_id); e; e = e->next) {
        if (strcmp(e->key, t->worker_id) == 0)
            sess_take_terms(hub, e->s, t);
    }
}

void
coord_sched_apply_terms(struct coord_agents *hub, struct coord_worker_list *terms)
{
    /* Each worker's sessions through the worker index: O(terms), no sort. */
    for (size_t i = 0; i < terms->len; i++)
        worker_take_terms(hub, &terms->items[i]);
}

static void
fresh_drop(struct coord_sched *sc, size_t i)
{
    agent_sess_unref(sc->fresh[i].s);
    sc->fresh[i] = sc->fresh[--sc->n_fresh];
}

/*
 * The terms of a pass's read (sorted, @it->diff its changed rows) to the sessions: the first
 * time to every session, then only the rows that changed since the read before and the sessions
 * opened since (O(changed), where every pass applied every worker's terms while agents
 * connected).  A session opened after the read began waits for the next one.
 */
static void
sched_take_terms(struct coord_sched *sc, struct pass_item *it)
{
    struct coord_agents *hub = sc->hub;
    if (!sc->terms_valid) {
        coord_sched_apply_terms(hub, &it->terms);
        sc->terms_valid = true;
        while (sc->n_fresh > 0)
            fresh_drop(sc, sc->n_fresh - 1);
        return;
    }
    for (size_t k = 0; k < it->n_diff; k++)
        worker_take_terms(hub, &it->terms.items[it->diff[k]]);
    for (size_t i = 0; i < sc->n_fresh;) {
        struct agent_sess *s = sc->fresh[i].s;
        struct coord_worker key;
        co_strlcpy(key.worker_id, s->worker_id, sizeof(key.worker_id));
        const struct coord_worker *t = s->wsi ? bsearch(&key, it->terms.items, it->terms.len,
                                                        sizeof(*it->terms.items), terms_cmp)
                                              : NULL;
        if (t)
            sess_take_terms(hub, s, t);
        if (t || !s->wsi || sc->fresh[i].since_ms < it->began_ms)
            fresh_drop(sc, i); /* done, gone, or unknown to a read that came after it */
        else
            i++;
    }
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
    it->epoch = s->session_epoch;
    agent_sess_ref(s);
    agent_hub_write(hub, it->job_id, claim_work, claim_undo, claim_done, it);
}

/*
 * Placement classes.  Open sessions that no job can tell apart (same total and free cores and
 * RAM, same images, same placement terms: prices and reputation) form one class; a class keeps its
 * sessions' positions in hub->sess in a min-heap.  A pass then costs O(sessions) to build the
 * classes plus O(jobs x classes) to place, instead of O(jobs x sessions), and chooses exactly as a
 * scan of every session would: the best terms (sched_terms_cmp), then the least leftover, ties
 * to the session that comes first in hub->sess.  A placed session moves to the class of its new
 * free capacity; a reserved one leaves the pass.
 */
struct pclass {
    struct agent_sess rep; /* a shallow copy of its first member as it was then: the shape */
    uint64_t hash;
    size_t next;  /* the next class in this hash bucket, + 1 (0: none) */
    size_t *heap; /* positions in hub->sess, smallest first */
    size_t n, cap;
};

struct pclasses {
    bool by_owner; /* replicas in the read (coord_verify_owner_ok): the owner is in the shape */
    struct pclass *c;
    size_t n, cap;
    size_t *bucket; /* class index + 1, 0: empty */
    size_t n_bucket;
    size_t members; /* sessions in every class together */
};

static uint64_t
fnv(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The owner a session sells for (the worker id when none is stored). */
static const char *
sess_owner(const struct agent_sess *s)
{
    return s->owner_id[0] ? s->owner_id : s->worker_id;
}

static uint64_t
shape_hash(const struct agent_sess *s, bool by_owner)
{
    int64_t v[7] = {s->cores,
                    s->ram_mb,
                    s->free_cores,
                    s->free_ram_mb,
                    s->reputation,
                    s->price.per_core_second,
                    s->price.per_gb_second};
    uint64_t h = fnv(14695981039346656037ULL, v, sizeof(v));
    for (size_t k = 0; k < s->n_images; k++)
        h = fnv(h, s->images[k], strlen(s->images[k]) + 1);
    if (by_owner)
        h = fnv(h, sess_owner(s), strlen(sess_owner(s)));
    return h;
}

static bool
shape_eq(const struct agent_sess *a, const struct agent_sess *b, bool by_owner)
{
    if (a->cores != b->cores || a->ram_mb != b->ram_mb || a->free_cores != b->free_cores ||
        a->free_ram_mb != b->free_ram_mb || a->n_images != b->n_images ||
        a->reputation != b->reputation || a->price.per_core_second != b->price.per_core_second ||
        a->price.per_gb_second != b->price.per_gb_second ||
        (by_owner && strcmp(sess_owner(a), sess_owner(b)) != 0))
        return false;
    for (size_t k = 0; k < a->n_images; k++) {
        if (strcmp(a->images[k], b->images[k]) != 0)
            return false;
    }
    return true;
}

static void
heap_push(struct pclass *c, size_t pos)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->heap = co_xreallocarray(c->heap, c->cap, sizeof(*c->heap));
    }
    size_t i = c->n++;
    while (i > 0 && c->heap[(i - 1) / 2] > pos) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = pos;
}

static size_t
heap_pop(struct pclass *c)
{
    size_t top = c->heap[0], last = c->heap[--c->n], i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = l + 1 < c->n && c->heap[l + 1] < c->heap[l] ? l + 1 : l;
        if (l >= c->n || c->heap[m] >= last)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (c->n > 0)
        c->heap[i] = last;
    return top;
}

/* Put the session at @pos of hub->sess into the class of its shape. */
static void
pclass_add(struct pclasses *pc, struct coord_agents *hub, size_t pos)
{
    const struct agent_sess *s = hub->sess[pos];
    uint64_t h = shape_hash(s, pc->by_owner);
    size_t *slot = &pc->bucket[h % pc->n_bucket];
    size_t ci = *slot;
    while (ci && !(pc->c[ci - 1].hash == h && shape_eq(&pc->c[ci - 1].rep, s, pc->by_owner)))
        ci = pc->c[ci - 1].next;
    if (!ci) {
        if (pc->n == pc->cap) {
            pc->cap = pc->cap ? pc->cap * 2 : 8;
            pc->c = co_xreallocarray(pc->c, pc->cap, sizeof(*pc->c));
        }
        pc->c[pc->n] = (struct pclass){.rep = *s, .hash = h, .next = *slot};
        ci = *slot = ++pc->n;
    }
    heap_push(&pc->c[ci - 1], pos);
    pc->members++;
}

static void
pclasses_release(struct pclasses *pc)
{
    for (size_t i = 0; i < pc->n; i++)
        free(pc->c[i].heap);
    free(pc->c);
    free(pc->bucket);
}

size_t
coord_sched_plan(struct coord_agents *hub, const struct coord_job_list *jobs,
                 struct sched_pick *picks)
{
    size_t placed = 0;
    if (jobs->len == 0)
        return 0;
    struct pclasses pc = {0};
    for (size_t k = 0; k < jobs->len && !pc.by_owner; k++)
        pc.by_owner = jobs->items[k].parent_job_id[0] || jobs->items[k].avoid_owners;
    pc.n_bucket = hub->n_sess < 64 ? 64 : hub->n_sess;
    pc.bucket = co_xcalloc(pc.n_bucket, sizeof(*pc.bucket));
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        /* A quarantined worker takes no jobs: blocked for the whole pass. */
        s->blocked = agent_hub_quarantined(hub, s->worker_id);
        if (s->wsi && s->state == AS_READY && !s->blocked && !s->superseded)
            pclass_add(&pc, hub, i);
    }
    for (size_t k = 0; k < jobs->len && pc.members > 0; k++) {
        const struct coord_job *job = &jobs->items[k];
        if (agent_hub_holds_job(hub, job->job_id))
            continue; /* claimed already; the read raced with the claim */
        const char *image = job->image && job->image[0] ? job->image : "default";
        struct pclass *best = NULL, *reserve = NULL;
        double best_left = 0, reserve_left = 0;
        for (size_t ci = 0; ci < pc.n; ci++) {
            struct pclass *c = &pc.c[ci];
            const struct agent_sess *s = &c->rep;
            if (c->n == 0 || s->cores < job->required_cores || s->ram_mb < job->required_ram_mb ||
                !agent_sess_has_image(s, image) || !sched_terms_allow(s, job) ||
                !coord_verify_owner_ok(job, sess_owner(s)))
                continue;
            if (s->free_cores >= job->required_cores && s->free_ram_mb >= job->required_ram_mb) {
                double l = leftover(s->free_cores, s->free_ram_mb, job->required_cores,
                                    job->required_ram_mb, s->cores, s->ram_mb);
                int order = best ? sched_terms_cmp(s, &best->rep, job) : -1;
                if (order < 0 || (order == 0 && (l < best_left ||
                                                 (l == best_left && c->heap[0] < best->heap[0])))) {
                    best = c;
                    best_left = l;
                }
            } else {
                double l = leftover(s->cores, s->ram_mb, job->required_cores, job->required_ram_mb,
                                    s->cores, s->ram_mb);
                if (!reserve || l < reserve_left ||
                    (l == reserve_left && c->heap[0] < reserve->heap[0])) {
                    reserve = c;
                    reserve_left = l;
                }
            }
        }
        if (best) {
            size_t pos = heap_pop(best);
            struct agent_sess *s = hub->sess[pos];
            if (job->parent_job_id[0]) /* its sibling replicas go to other owners */
                coord_verify_avoid_add(jobs, job->parent_job_id, sess_owner(s));
            agent_sess_add_job(s, job, 0, AJ_CLAIMING);
            picks[placed].job = k;
            picks[placed].s = s;
            placed++;
            pc.members--;
            pclass_add(&pc, hub, pos); /* its new free capacity (may add a class) */
        } else if (reserve) {
            /*
             * It fits this agent once running jobs end: keep less urgent jobs off it for the
             * rest of the pass, so the job is not starved by a stream of small ones.
             */
            hub->sess[heap_pop(reserve)]->blocked = true;
            pc.members--;
        }
        /* A job that fits no connected agent at all stays pending (health: pending_unfit). */
    }
    pclasses_release(&pc);
    return placed;
}

static struct buyer_turn *
turn_find(struct coord_sched *sc, const char *buyer_id)
{
    for (size_t i = 0; i < sc->n_turns; i++) {
        if (strcmp(sc->turns[i].buyer_id, buyer_id) == 0)
            return &sc->turns[i];
    }
    return NULL;
}

void
coord_sched_served(struct coord_sched *sc, const char *buyer_id)
{
    struct buyer_turn *t = turn_find(sc, buyer_id);
    if (!t) {
        if (sc->n_turns == SCHED_TURNS_MAX) {
            size_t old = 0;
            for (size_t i = 1; i < sc->n_turns; i++) {
                if (sc->turns[i].served < sc->turns[old].served)
                    old = i;
            }
            t = &sc->turns[old];
        } else {
            if (!sc->turns)
                sc->turns = co_xcalloc(SCHED_TURNS_MAX, sizeof(*sc->turns));
            t = &sc->turns[sc->n_turns++];
        }
        co_strlcpy(t->buyer_id, buyer_id, sizeof(t->buyer_id));
    }
    t->served = ++sc->turn_serial;
}

struct turn_key {
    size_t k;         /* index in the read */
    int64_t priority; /* the job's */
    size_t turn;      /* 0 for its buyer's oldest job of that priority in the read, then 1... */
    uint64_t served;  /* when its buyer was last served (0: never) */
};

static int
turn_cmp(const void *a, const void *b)
{
    const struct turn_key *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->turn != y->turn)
        return x->turn < y->turn ? -1 : 1;
    if (x->served != y->served)
        return x->served < y->served ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k); /* the read's order: oldest first */
}

/*
 * Fair share: within a priority level, buyers take turns.  The read comes in the store's order
 * (priority, each buyer's n-th job, age); here a round of turns starts with the buyer served
 * least recently, so that a buyer whose job just ran does not go first again because its next
 * job is older.
 */
void
coord_sched_fair_order(struct coord_sched *sc, struct coord_job_list *jobs)
{
    if (jobs->len < 2 || sc->n_turns == 0)
        return;
    struct turn_key *keys = co_xcalloc(jobs->len, sizeof(*keys));
    for (size_t k = 0; k < jobs->len; k++) {
        const struct coord_job *j = &jobs->items[k];
        keys[k].k = k;
        keys[k].priority = j->priority;
        for (size_t p = 0; p < k; p++) {
            if (jobs->items[p].priority == j->priority &&
                strcmp(jobs->items[p].buyer_id, j->buyer_id) == 0)
                keys[k].turn = keys[p].turn + 1;
        }
        const struct buyer_turn *t = turn_find(sc, j->buyer_id);
        keys[k].served = t ? t->served : 0;
    }
    qsort(keys, jobs->len, sizeof(*keys), turn_cmp);
    struct coord_job *items = co_xcalloc(jobs->len, sizeof(*items));
    for (size_t k = 0; k < jobs->len; k++)
        items[k] = jobs->items[keys[k].k];
    free(jobs->items);
    jobs->items = items;
    free(keys);
}

/*
 * The room each buyer of @caps has left under its max_running_jobs: its cap minus its running
 * jobs in the store, minus the claims of this coordinator still in flight (which the store may
 * not count yet: a claim that committed meanwhile is counted twice, which only delays a job to
 * the next pass).  Caller frees.
 */
static int64_t *
sched_room(struct coord_agents *hub, const struct coord_buyer_cap_list *caps, int64_t read_began_ms)
{
    int64_t *room = co_xcalloc(caps->len + 1, sizeof(*room));
    if (caps->len == 0)
        return room; /* no buyer with a cap: no walk over the sessions */
    for (size_t c = 0; c < caps->len; c++)
        room[c] = caps->items[c].cap - caps->items[c].running;
    for (size_t i = 0; i < hub->n_sess; i++) {
        const struct agent_sess *s = hub->sess[i];
        for (size_t k = 0; k < s->n_jobs; k++) {
            /*
             * Claims in flight, and claims that landed after the read began (on PostgreSQL the
             * read can see the store from before their commit).
             */
            const struct agent_job *aj = &s->jobs[k];
            if (aj->state != AJ_CLAIMING &&
                (aj->state == AJ_CANCELLING || aj->since_ms < read_began_ms))
                continue;
            for (size_t c = 0; c < caps->len; c++) {
                if (strcmp(caps->items[c].buyer_id, s->jobs[k].buyer_id) == 0)
                    room[c]--;
            }
        }
    }
    return room;
}

/*
 * Hold back the jobs of buyers at their max_running_jobs: each buyer with a cap keeps, in
 * scheduling order, only as many jobs of the read as its room (sched_room) allows.  The other
 * buyers' jobs stay, so a held buyer blocks nobody.
 */
static void
sched_hold_back(struct coord_agents *hub, struct coord_job_list *jobs,
                const struct coord_buyer_cap_list *caps, int64_t read_began_ms)
{
    if (caps->len == 0)
        return;
    int64_t *room = sched_room(hub, caps, read_began_ms);
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
sched_place(struct coord_sched *sc, struct coord_job_list *jobs)
{
    coord_sched_fair_order(sc, jobs);
    struct sched_pick *picks = co_xcalloc(jobs->len + 1, sizeof(*picks));
    size_t n = coord_sched_plan(sc->hub, jobs, picks);
    for (size_t i = 0; i < n; i++) {
        coord_sched_served(sc, jobs->items[picks[i].job].buyer_id);
        sched_claim(sc, picks[i].s, &jobs->items[picks[i].job]);
    }
    free(picks);
    return n;
}

static void
pass_done(void *arg)
{
    struct pass_item *it = arg;
    struct coord_agents *hub = it->hub;
    if (!agent_hub_complete(hub) || !it->sc)
        goto out;
    struct coord_sched *sc = it->sc;
    sc->running = false;
    if (it->rc < 0) {
        co_warn("scheduler cannot read pending jobs error=\"%s\"", it->err.msg);
        sc->terms = it->prev; /* still the reference for the next read */
        it->prev = (struct coord_worker_list){0};
        goto out; /* the lease tick kicks again */
    }
    size_t read = it->jobs.len;
    int64_t t0 = co_mono_ns();
    sched_take_terms(sc, it);
    sc->terms = it->terms; /* the reference of the next read */
    it->terms = (struct coord_worker_list){0};
    coord_sched_refresh(sc); /* the board shows the terms just read */
    sched_hold_back(hub, &it->jobs, &it->caps, it->began_ms);
    size_t placed = sched_place(sc, &it->jobs);
    coord_sched_note_caps(sc, &it->caps, it->began_ms);
    coord_metrics_agent_loop(hub->metrics, t0);
    if (sc->again || (placed > 0 && (int64_t)read >= it->limit)) {
        sc->again = false;
        coord_sched_kick(sc);
    }
out:
    coord_job_list_release(&it->jobs);
    coord_worker_list_release(&it->terms);
    coord_worker_list_release(&it->prev);
    free(it->diff);
    free(it->images_json);
    free(it->caps.items);
    free(it);
}

/* ---- the board of connected agents (pending_reason) ---- */

struct board_agent {
    struct agent_sess *s; /* lws thread only: whose entry (its board_pos moves with the entry) */
    char worker_id[CO_ID_MAX + 1];
    int64_t cores, ram_mb;
    struct coord_rate price;
    int64_t reputation;
    char *images;    /* its images, one after the other, each ending with a NUL (owned) */
    size_t n_images; /* at least one: no images means the default image */
};

/* A buyer at its max_running_jobs after the last pass (pending_reason running_limit). */
struct board_held {
    char buyer_id[CO_ID_MAX + 1];
    int64_t cap, running;
};

/*
 * The board: an entry per open session, added, replaced or removed as the hub reports sessions
 * changed (coord_sched_refresh), so that agents connecting cost O(changed) per pass where the
 * whole board was rebuilt on each pass with a change.  Readers look under board_mu.
 */
static pthread_mutex_t board_mu = PTHREAD_MUTEX_INITIALIZER;
static struct board_agent *board_a; /* under board_mu */
static size_t board_n, board_cap;
static struct board_held *board_held;
static size_t board_held_n;
static uint64_t board_gen; /* bumped whenever a reason may have changed (under board_mu) */

static bool
sess_open(const struct agent_sess *s)
{
    return s->wsi && s->state == AS_READY && !s->superseded;
}

static bool
board_has_image(const struct board_agent *a, const char *image)
{
    const char *p = a->images;
    for (size_t k = 0; k < a->n_images; k++, p += strlen(p) + 1) {
        if (strcmp(p, image) == 0)
            return true;
    }
    return false;
}

/* Count @v in (@d > 0) or out of (@d < 0) the sorted counts @*arr. */
static void
fit_count_add(struct fit_count **arr, size_t *n, int64_t v, int d)
{
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((*arr)[mid].v < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < *n && (*arr)[lo].v == v) {
        if (d > 0) {
            (*arr)[lo].n++;
        } else if (--(*arr)[lo].n == 0) {
            memmove(&(*arr)[lo], &(*arr)[lo + 1], (*n - lo - 1) * sizeof(**arr));
            (*n)--;
        }
        return;
    }
    if (d < 0)
        return;
    *arr = co_xreallocarray(*arr, *n + 1, sizeof(**arr));
    memmove(&(*arr)[lo + 1], &(*arr)[lo], (*n - lo) * sizeof(**arr));
    (*arr)[lo] = (struct fit_count){.v = v, .n = 1};
    (*n)++;
}

/* Count @name in or out of the images of the open sessions; a new or gone image marks them. */
static void
fit_image_add(struct coord_sched *sc, const char *name, int d)
{
    size_t lo = 0, hi = sc->n_images_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(sc->images_n[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sc->n_images_n && strcmp(sc->images_n[lo].name, name) == 0) {
        if (d > 0) {
            sc->images_n[lo].n++;
        } else if (--sc->images_n[lo].n == 0) {
            free(sc->images_n[lo].name);
            memmove(&sc->images_n[lo], &sc->images_n[lo + 1],
                    (sc->n_images_n - lo - 1) * sizeof(*sc->images_n));
            sc->n_images_n--;
            sc->images_dirty = true;
        }
        return;
    }
    if (d < 0)
        return;
    sc->images_n = co_xreallocarray(sc->images_n, sc->n_images_n + 1, sizeof(*sc->images_n));
    memmove(&sc->images_n[lo + 1], &sc->images_n[lo],
            (sc->n_images_n - lo) * sizeof(*sc->images_n));
    sc->images_n[lo] = (struct fit_image){.name = co_xstrdup(name), .n = 1};
    sc->n_images_n++;
    sc->images_dirty = true;
}

/* Count the board entry @a in or out of the fit. */
static void
fit_count_entry(struct coord_sched *sc, const struct board_agent *a, int d)
{
    fit_count_add(&sc->cores_n, &sc->n_cores_n, a->cores, d);
    fit_count_add(&sc->ram_n, &sc->n_ram_n, a->ram_mb, d);
    const char *p = a->images;
    for (size_t k = 0; k < a->n_images; k++, p += strlen(p) + 1)
        fit_image_add(sc, p, d);
}

/* Remove @s's entry from the board (board_mu held): the last entry takes its place. */
static void
board_remove(struct coord_sched *sc, struct agent_sess *s)
{
    size_t i = s->board_pos - 1;
    fit_count_entry(sc, &board_a[i], -1);
    free(board_a[i].images);
    board_a[i] = board_a[--board_n];
    if (i < board_n)
        board_a[i].s->board_pos = i + 1;
    s->board_pos = 0;
}

/* Add an entry for the open session @s (board_mu held). */
static void
board_add(struct coord_sched *sc, struct agent_sess *s)
{
    if (board_n == board_cap) {
        board_cap = board_cap ? board_cap * 2 : 64;
        board_a = co_xreallocarray(board_a, board_cap, sizeof(*board_a));
    }
    struct board_agent *a = &board_a[board_n++];
    memset(a, 0, sizeof(*a));
    a->s = s;
    co_strlcpy(a->worker_id, s->worker_id, sizeof(a->worker_id));
    a->cores = s->cores;
    a->ram_mb = s->ram_mb;
    a->price = s->price;
    a->reputation = s->reputation;
    a->n_images = s->n_images ? s->n_images : 1;
    size_t len = 0;
    for (size_t k = 0; k < a->n_images; k++)
        len += strlen(s->n_images ? s->images[k] : PROTO_IMAGE_DEFAULT) + 1;
    a->images = co_xmalloc(len);
    char *p = a->images;
    for (size_t k = 0; k < a->n_images; k++) {
        const char *img = s->n_images ? s->images[k] : PROTO_IMAGE_DEFAULT;
        size_t l = strlen(img) + 1;
        memcpy(p, img, l);
        p += l;
    }
    s->board_pos = board_n;
    fit_count_entry(sc, a, +1);
}

/* Empty the board (the scheduler stops; its sessions are all still allocated). */
static void
board_clear(struct coord_sched *sc)
{
    pthread_mutex_lock(&board_mu);
    while (board_n > 0)
        board_remove(sc, board_a[board_n - 1].s);
    free(board_a);
    board_a = NULL;
    board_cap = 0;
    board_gen++;
    pthread_mutex_unlock(&board_mu);
}

uint64_t
coord_sched_reasons_generation(void)
{
    pthread_mutex_lock(&board_mu);
    uint64_t g = board_gen;
    pthread_mutex_unlock(&board_mu);
    return g;
}

void
coord_sched_note_caps(struct coord_sched *sc, const struct coord_buyer_cap_list *caps,
                      int64_t read_began_ms)
{
    int64_t *room = sched_room(sc->hub, caps, read_began_ms);
    struct board_held *h = co_xcalloc(caps->len + 1, sizeof(*h));
    size_t n = 0;
    for (size_t c = 0; c < caps->len; c++) {
        if (room[c] > 0)
            continue;
        co_strlcpy(h[n].buyer_id, caps->items[c].buyer_id, sizeof(h[n].buyer_id));
        h[n].cap = caps->items[c].cap;
        h[n].running = caps->items[c].cap - room[c];
        n++;
    }
    free(room);
    pthread_mutex_lock(&board_mu);
    bool same = n == board_held_n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(h[i].buyer_id, board_held[i].buyer_id) == 0 && h[i].cap == board_held[i].cap;
    struct board_held *old = board_held;
    board_held = h;
    board_held_n = n;
    if (!same)
        board_gen++;
    pthread_mutex_unlock(&board_mu);
    free(old);
}

/* Whether the last pass saw a buyer at its limit (a pass runs without free capacity then). */
static bool
board_holds_buyers(void)
{
    pthread_mutex_lock(&board_mu);
    bool any = board_held_n > 0;
    pthread_mutex_unlock(&board_mu);
    return any;
}

/*
 * The fit of the pending read (largest cores and RAM, images) and the board follow the sessions
 * the hub reports changed (agent_hub_changed): each leaves the board and, if open, comes back
 * with its current size, images and terms.  O(changed): the whole board was rebuilt, a walk over
 * every session, on each pass after any change.  A session that opens waits for its stored
 * terms (the next read).
 */
void
coord_sched_refresh(struct coord_sched *sc)
{
    struct coord_agents *hub = sc->hub;
    struct agent_sess **ch = NULL;
    size_t n = agent_hub_take_changed(hub, &ch);
    if (n > 0 || !sc->fit_valid) {
        pthread_mutex_lock(&board_mu);
        for (size_t i = 0; i < n; i++) {
            struct agent_sess *s = ch[i];
            bool was = s->board_pos > 0;
            if (was)
                board_remove(sc, s);
            if (!sess_open(s))
                continue;
            board_add(sc, s);
            if (was)
                continue;
            if (sc->n_fresh == sc->cap_fresh) {
                sc->cap_fresh = sc->cap_fresh ? sc->cap_fresh * 2 : 64;
                sc->fresh = co_xreallocarray(sc->fresh, sc->cap_fresh, sizeof(*sc->fresh));
            }
            agent_sess_ref(s);
            sc->fresh[sc->n_fresh++] = (struct fresh_sess){.s = s, .since_ms = co_mono_ms()};
        }
        board_gen++;
        pthread_mutex_unlock(&board_mu);
        sc->max_cores = sc->n_cores_n ? sc->cores_n[sc->n_cores_n - 1].v : 0;
        sc->max_ram_mb = sc->n_ram_n ? sc->ram_n[sc->n_ram_n - 1].v : 0;
    }
    for (size_t i = 0; i < n; i++)
        agent_sess_unref(ch[i]);
    free(ch);
    if (sc->images_dirty || !sc->fit_valid) {
        /* Each image once: the pending read matches the jobs' images against this list. */
        co_buf_reset(&sc->images);
        struct co_jsonw w;
        co_jsonw_init(&w, &sc->images);
        co_jsonw_arr_begin(&w);
        for (size_t i = 0; i < sc->n_images_n; i++)
            co_jsonw_str(&w, sc->images_n[i].name);
        co_jsonw_arr_end(&w);
        sc->images_dirty = false;
    }
    sc->fit_valid = true;
}

/* The held entry of @buyer_id (board_mu held). */
static const struct board_held *
board_held_find(const char *buyer_id)
{
    for (size_t i = 0; i < board_held_n; i++) {
        if (strcmp(board_held[i].buyer_id, buyer_id) == 0)
            return &board_held[i];
    }
    return NULL;
}

void
coord_sched_write_pending_reason(struct co_jsonw *w, const struct coord_job *j)
{
    if (coord_verify_write_pending_reason(w, j))
        return; /* a replica waits for a distinct owner */
    co_jsonw_key(w, "pending_reason");
    if (j->status != COORD_JOB_PENDING) {
        co_jsonw_null(w);
        return;
    }
    const char *image = j->image && j->image[0] ? j->image : PROTO_IMAGE_DEFAULT;
    const char *code;
    struct co_buf msg = CO_BUF_INIT;
    pthread_mutex_lock(&board_mu);
    const struct board_agent *largest = NULL, *cheapest = NULL;
    const struct board_held *held;
    bool image_seen = false, fits = false, priced = false, reputed = false;
    for (size_t i = 0; i < board_n; i++) {
        const struct board_agent *a = &board_a[i];
        if (!board_has_image(a, image))
            continue;
        image_seen = true;
        if (a->cores >= j->required_cores && a->ram_mb >= j->required_ram_mb) {
            fits = true;
            if (a->reputation >= j->min_reputation) {
                reputed = true;
                if (!cheapest || coord_rate_cmp(&a->price, &cheapest->price, j->required_cores,
                                                j->required_ram_mb) < 0)
                    cheapest = a;
                if (coord_rate_within(&a->price, &j->max_rate))
                    priced = true;
            }
        }
        if (!largest || a->cores > largest->cores ||
            (a->cores == largest->cores && a->ram_mb > largest->ram_mb))
            largest = a;
    }
    if (board_n == 0) {
        code = "no_agents";
        co_buf_puts(&msg, "no agent is connected");
    } else if (!image_seen) {
        code = "no_agent_with_image";
        co_buf_printf(&msg, "no connected agent has the image '%s'", image);
    } else if (!fits) {
        code = "exceeds_largest_agent";
        co_buf_printf(&msg,
                      "needs %lld cores and %lld MB of RAM; the largest connected agent with "
                      "the image '%s' is %s (%lld cores, %lld MB)",
                      (long long)j->required_cores, (long long)j->required_ram_mb, image,
                      largest->worker_id, (long long)largest->cores, (long long)largest->ram_mb);
    } else if (!reputed) {
        code = "no_agent_with_reputation";
        co_buf_printf(&msg, "no connected agent that fits has a reputation of at least %.6g",
                      (double)j->min_reputation / 1e6);
    } else if (j->pricing == COORD_PRICING_MARKET && !priced) {
        char c[CO_CREDITS_STRLEN], g[CO_CREDITS_STRLEN], mc[CO_CREDITS_STRLEN],
            mg[CO_CREDITS_STRLEN];
        co_credits_format(cheapest->price.per_core_second, c);
        co_credits_format(cheapest->price.per_gb_second, g);
        co_credits_format(j->max_rate.per_core_second, mc);
        co_credits_format(j->max_rate.per_gb_second, mg);
        code = "no_agent_within_price";
        co_buf_printf(&msg,
                      "no fitting agent is within the maximum price (%s per core-second, %s per "
                      "GB-second); the cheapest fitting agent is %s at %s per core-second and %s "
                      "per GB-second",
                      mc, mg, cheapest->worker_id, c, g);
    } else if ((held = board_held_find(j->buyer_id)) != NULL) {
        code = "running_limit";
        co_buf_printf(&msg,
                      "the buyer '%s' is at its limit of running jobs (max_running_jobs = %lld): "
                      "%lld assigned or running",
                      j->buyer_id, (long long)held->cap, (long long)held->running);
    } else {
        code = "waiting_for_capacity";
        co_buf_printf(&msg,
                      "waiting for a connected agent to free %lld cores and %lld MB of RAM "
                      "(jobs of higher priority or of other buyers go first)",
                      (long long)j->required_cores, (long long)j->required_ram_mb);
    }
    pthread_mutex_unlock(&board_mu);
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "code", code);
    co_jsonw_kstr(w, "message", msg.data);
    co_jsonw_obj_end(w);
    co_buf_release(&msg);
}

static void
sched_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct coord_sched *sc = lws_container_of(sul, struct coord_sched, sul);
    struct coord_agents *hub = sc->hub;
    int64_t t0 = co_mono_ns();
    sc->scheduled = false;
    sc->again = false;
    coord_sched_refresh(sc);
    int64_t free_cores = sched_free_cores(hub);
    coord_metrics_agent_loop(hub->metrics, t0);
    /* Without free capacity nothing can be placed; a pass still refreshes the held buyers. */
    if (sc->running || (free_cores == 0 && !board_holds_buyers()))
        return;
    struct pass_item *it = co_xcalloc(1, sizeof(*it));
    it->sc = sc;
    it->hub = hub;
    it->default_cap = hub->cfg->max_running_jobs;
    it->began_ms = co_mono_ms();
    it->limit = free_cores * 4 < 32 ? 32 : free_cores * 4;
    if (it->limit > COORD_SCHED_BATCH)
        it->limit = COORD_SCHED_BATCH;
    it->prev = sc->terms; /* the pass's until it completes */
    sc->terms = (struct coord_worker_list){0};
    it->images_json = co_xstrdup(sc->images.data);
    it->fit.images_json = it->images_json;
    it->fit.max_cores = sc->max_cores;
    it->fit.max_ram_mb = sc->max_ram_mb;
    sc->running = true;
    sc->passes++;
    if (agent_hub_submit(hub, COORD_DB_READ, pending_work, pass_done, it) < 0) {
        sc->running = false;
        sc->terms = it->prev;
        free(it->images_json);
        free(it);
    }
}
