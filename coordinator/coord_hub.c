/* coord_hub: agent sessions, job and worker indexes, capacity, write lanes (see coord_hub.h). */
#include "coord_hub.h"

#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "proto_job.h"

/* ------------------------------------------------------------------------------------------ */
/* life cycle                                                                                 */

struct coord_agents *
agent_hub_new(const struct coord_config *cfg, struct coord_db *db, struct coord_events *events,
              struct coord_metrics *metrics, struct lws_context *ctx,
              const struct agent_hub_hooks *hooks)
{
    struct coord_agents *hub = co_xcalloc(1, sizeof(*hub));
    hub->cfg = cfg;
    hub->db = db;
    hub->events = events;
    hub->metrics = metrics;
    hub->ctx = ctx;
    if (hooks)
        hub->hooks = *hooks;
    hub->lease_ms = cfg->worker_timeout_seconds * 1000;
    if (hub->lease_ms < 1000)
        hub->lease_ms = 1000;
    hub->heartbeat_ms = hub->lease_ms / 3;
    if (hub->heartbeat_ms > 5000)
        hub->heartbeat_ms = 5000;
    if (hub->heartbeat_ms < 100)
        hub->heartbeat_ms = 100;
    hub->next_serial = 1;
    for (int i = 0; i < AGENT_WLANES; i++)
        hub->wl[i].hub = hub;
    /* More lanes than writer threads only split batches into more transactions (SQLite: one). */
    hub->n_wl = db && coord_db_writers(db) < AGENT_WLANES ? coord_db_writers(db) : AGENT_WLANES;
    return hub;
}

static void
hub_free_now(struct coord_agents *hub)
{
    for (size_t i = 0; i < hub->n_changed; i++)
        agent_sess_unref(hub->changed[i]);
    free(hub->changed);
    agent_ix_free(&hub->jobs);
    agent_ix_free(&hub->workers);
    free(hub->sess);
    if (hub->hooks.release)
        hub->hooks.release(hub->hooks.ud);
    free(hub);
}

/*
 * Shutdown: the writes still queued on @wl never run.  Each is undone (CO_E_UNAVAILABLE) and its
 * completion runs as for a failed batch, which on a dead hub only frees its item.
 */
static void
wl_release(struct agent_wlane *wl)
{
    co_err err = CO_ERR_INIT;
    co_err_set(&err, CO_E_UNAVAILABLE, "the coordinator is stopping: write not run");
    struct agent_wop *op = wl->head;
    wl->head = wl->tail = NULL;
    while (op) {
        struct agent_wop *next = op->next;
        if (op->undo)
            op->undo(op->arg, &err);
        if (op->done)
            op->done(op->arg);
        free(op);
        op = next;
    }
}

/*
 * The context is going away.  Sessions were closed by lws before this (CLOSED for each); the
 * database items still in flight keep the hub alive until their completions ran.
 */
void
agent_hub_destroy(struct coord_agents *hub)
{
    for (int i = 0; i < AGENT_WLANES; i++) {
        if (hub->wl[i].scheduled)
            lws_sul_cancel(&hub->wl[i].sul);
        hub->wl[i].scheduled = false;
    }
    hub->dead = true;
    /*
     * Writes kept through an outage that is still on: given up (with the hub dead their
     * completions only free them).  The writes still queued on idle lanes never run: released
     * (undone, then completed); a busy lane releases its queue when its batch completes.  The
     * extra count keeps the hub alive meanwhile.
     */
    hub->inflight++;
    for (int i = 0; i < AGENT_WLANES; i++) {
        struct agent_wlane *wl = &hub->wl[i];
        for (struct agent_wop **pp = &wl->head; *pp;) {
            struct agent_wop *op = *pp;
            if (!op->again) {
                pp = &op->next;
                continue;
            }
            *pp = op->next;
            if (op->done)
                op->done(op->arg); /* dead hub: the completion only frees */
            free(op);
        }
        wl->tail = NULL;
        for (struct agent_wop *op = wl->head; op; op = op->next)
            wl->tail = op;
        if (!wl->busy)
            wl_release(wl);
    }
    agent_hub_complete(hub);
}

/* ------------------------------------------------------------------------------------------ */
/* database work: submits and the write lanes                                                 */

int
agent_hub_submit(struct coord_agents *hub, enum coord_db_lane lane, coord_db_work_fn work,
                 coord_db_done_fn done, void *arg)
{
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(hub->db, lane, work, done, arg, &err) < 0) {
        co_warn("agent database item refused error=\"%s\"", err.msg);
        return -1;
    }
    hub->inflight++;
    return 0;
}

struct wbatch {
    struct agent_wlane *lane;
    struct agent_wop *ops;
    size_t n;
    size_t txs, undone; /* batch transactions committed, writes undone by a failed commit */
};

/*
 * One transaction per batch (at most AGENT_TX_MAX_WRITES writes): a commit per write was what
 * limited dispatch.  Each store call runs in a savepoint, so a failing write undoes only itself;
 * when the commit fails every write of the transaction is undone, and told so.  The completions
 * run after this returns, so nothing is acted upon before its transaction committed.
 *
 * SQLite only.  There one writer thread runs the batches one after the other.  On PostgreSQL
 * several writer threads run batches at once, and a batch holds the row locks of all its writes
 * until its commit: a batch that settled a job (buyer and owner rows locked) and then claims
 * one (worker row) meets another that did the same in the other order, and they deadlock.
 * Measured with bench/e2e, 300 jobs of one buyer on one agent: 2 jobs/s, every result retried
 * after "deadlock detected".  PostgreSQL keeps one transaction per write.
 */
static bool
wbatch_useful(struct coord_store *store)
{
    return strcmp(coord_store_backend(store), "sqlite") == 0;
}

static void
wbatch_work(struct coord_store *store, void *arg)
{
    struct wbatch *b = arg;
    struct agent_wop *op = b->ops;
    bool batch = wbatch_useful(store);
    while (op) {
        co_err err = CO_ERR_INIT;
        /* A lone write needs no batch; without a transaction each write commits alone. */
        if (!batch || !op->next || coord_store_batch_begin(store, &err) < 0) {
            for (; op; op = op->next)
                op->work(store, op->arg);
            return;
        }
        struct agent_wop *first = op;
        size_t n = 0;
        for (; op && n < AGENT_TX_MAX_WRITES; op = op->next, n++)
            op->work(store, op->arg);
        if (coord_store_batch_commit(store, &err) < 0) {
            co_warn("write batch not committed, its %zu writes are undone error=\"%s\"", n,
                    err.msg);
            err.code = CO_E_UNAVAILABLE;
            for (struct agent_wop *u = first; u != op; u = u->next)
                u->undo(u->arg, &err);
            b->undone += n;
        } else {
            b->txs++;
        }
    }
}

static void wl_flush(struct agent_wlane *wl);
static void wl_timer_cb(lws_sorted_usec_list_t *sul);

static void
wbatch_done(void *arg)
{
    struct wbatch *b = arg;
    struct agent_wlane *wl = b->lane;
    struct coord_agents *hub = wl->hub;
    struct agent_wop *op = b->ops;
    struct agent_wop *kept = NULL, *kept_last = NULL;
    hub->batch_txs += b->txs;
    hub->batch_undone += b->undone;
    free(b);
    while (op) {
        struct agent_wop *next = op->next;
        if (op->again && !hub->dead && op->again(op->arg)) {
            /* The database was unavailable: kept, in order, to run again. */
            op->next = NULL;
            if (kept_last)
                kept_last->next = op;
            else
                kept = op;
            kept_last = op;
            op = next;
            continue;
        }
        if (op->done)
            op->done(op->arg);
        free(op);
        op = next;
    }
    /* The batch held its own count, so the completions above cannot have freed the hub. */
    if (hub->dead) {
        wl->busy = false;
        wl_release(wl); /* nothing more runs: the writes queued behind this batch neither */
    }
    if (!agent_hub_complete(hub))
        return;
    wl->busy = false;
    if (kept) {
        /* Back at the head of the lane, before the writes that came meanwhile. */
        kept_last->next = wl->head;
        if (!wl->head)
            wl->tail = kept_last;
        wl->head = kept;
        int64_t delay = (int64_t)AGENT_FINISH_RETRY_US << (wl->retries < 4 ? wl->retries : 4);
        if (delay > 5 * LWS_US_PER_SEC)
            delay = 5 * LWS_US_PER_SEC;
        if (wl->retries++ % 10 == 0)
            co_warn("database unavailable: agent writes kept to run again delay_ms=%lld",
                    (long long)(delay / LWS_US_PER_MS));
        if (wl->scheduled)
            lws_sul_cancel(&wl->sul);
        wl->scheduled = true;
        lws_sul_schedule(hub->ctx, 0, &wl->sul, wl_timer_cb, (lws_usec_t)delay);
        return;
    }
    wl->retries = 0;
    if (wl->head)
        wl_flush(wl);
}

static void
wl_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct agent_wlane *wl = lws_container_of(sul, struct agent_wlane, sul);
    int64_t t0 = co_mono_ns();
    wl->scheduled = false;
    if (!wl->busy && wl->head)
        wl_flush(wl);
    coord_metrics_agent_loop(wl->hub->metrics, t0);
}

static void
wl_flush(struct agent_wlane *wl)
{
    struct coord_agents *hub = wl->hub;
    struct wbatch *b = co_xcalloc(1, sizeof(*b));
    b->lane = wl;
    b->ops = wl->head;
    for (struct agent_wop *op = b->ops; op; op = op->next)
        b->n++;
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(hub->db, COORD_DB_WRITE, wbatch_work, wbatch_done, b, &err) < 0) {
        /* The executor is full: keep the writes and try again shortly. */
        free(b);
        if (!wl->scheduled) {
            wl->scheduled = true;
            lws_sul_schedule(hub->ctx, 0, &wl->sul, wl_timer_cb, 50 * LWS_US_PER_MS);
        }
        return;
    }
    wl->head = wl->tail = NULL;
    hub->inflight++;
    wl->busy = true;
    hub->batches++;
    hub->batched_ops += b->n;
}

/* FNV-1a: spreads job and worker ids over the write lanes. */
static unsigned
wl_index(const struct coord_agents *hub, const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)(key ? key : ""); *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % (unsigned)hub->n_wl;
}

void
agent_hub_write(struct coord_agents *hub, const char *key, coord_db_work_fn work,
                agent_undo_fn undo, coord_db_done_fn done, void *arg)
{
    agent_hub_write_kept(hub, key, work, undo, done, NULL, arg);
}

void
agent_hub_write_kept(struct coord_agents *hub, const char *key, coord_db_work_fn work,
                     agent_undo_fn undo, coord_db_done_fn done, agent_again_fn again, void *arg)
{
    struct agent_wlane *wl = &hub->wl[wl_index(hub, key)];
    struct agent_wop *op = co_xcalloc(1, sizeof(*op));
    op->work = work;
    op->undo = undo;
    op->done = done;
    op->again = again;
    op->arg = arg;
    if (wl->tail)
        wl->tail->next = op;
    else
        wl->head = op;
    wl->tail = op;
    hub->inflight++;
    /* Flush at the end of this loop turn, so that the writes of a burst share one item. */
    if (!wl->busy && !wl->scheduled) {
        wl->scheduled = true;
        lws_sul_schedule(hub->ctx, 0, &wl->sul, wl_timer_cb, 1);
    }
}

void
agent_hub_hold(struct coord_agents *hub)
{
    hub->inflight++;
}

bool
agent_hub_complete(struct coord_agents *hub)
{
    hub->inflight--;
    if (hub->dead) {
        if (hub->inflight == 0)
            hub_free_now(hub);
        return false;
    }
    return true;
}

void
agent_hub_publish(struct coord_agents *hub, enum coord_event_kind kind, const char *id)
{
    if (!hub->events || !id || !id[0])
        return;
    hub->self_publish = true;
    coord_events_publish(hub->events, kind, id);
    hub->self_publish = false;
}

/* ---- indexes of live sessions: by job id held, by worker id ---- */

static uint32_t
ix_hash(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void
ix_grow(struct agent_ix *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : 256;
    struct agent_ix_ent **nb = co_xcalloc(cap, sizeof(*nb));
    for (size_t i = 0; i < ix->cap; i++) {
        struct agent_ix_ent *e = ix->b[i];
        while (e) {
            struct agent_ix_ent *next = e->next;
            size_t b = ix_hash(e->key) & (cap - 1);
            e->next = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(ix->b);
    ix->b = nb;
    ix->cap = cap;
}

static void
ix_add(struct agent_ix *ix, const char *key, struct agent_sess *s)
{
    if (ix->n >= ix->cap)
        ix_grow(ix);
    struct agent_ix_ent *e = co_xcalloc(1, sizeof(*e));
    e->s = s;
    co_strlcpy(e->key, key, sizeof(e->key));
    size_t b = ix_hash(key) & (ix->cap - 1);
    e->next = ix->b[b];
    ix->b[b] = e;
    ix->n++;
}

static void
ix_del(struct agent_ix *ix, const char *key, struct agent_sess *s)
{
    if (!ix->cap)
        return;
    struct agent_ix_ent **pp = &ix->b[ix_hash(key) & (ix->cap - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->s == s && strcmp((*pp)->key, key) == 0) {
            struct agent_ix_ent *e = *pp;
            *pp = e->next;
            free(e);
            ix->n--;
            return;
        }
    }
}

struct agent_ix_ent *
agent_ix_first(const struct agent_ix *ix, const char *key)
{
    if (!ix->cap)
        return NULL;
    for (struct agent_ix_ent *e = ix->b[ix_hash(key) & (ix->cap - 1)]; e; e = e->next) {
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

void
agent_ix_free(struct agent_ix *ix)
{
    for (size_t i = 0; i < ix->cap; i++) {
        struct agent_ix_ent *e = ix->b[i];
        while (e) {
            struct agent_ix_ent *next = e->next;
            free(e);
            e = next;
        }
    }
    free(ix->b);
    ix->b = NULL;
    ix->cap = ix->n = 0;
}

static void
hub_add_sess(struct coord_agents *hub, struct agent_sess *s)
{
    if (hub->n_sess == hub->cap_sess) {
        hub->cap_sess = hub->cap_sess ? hub->cap_sess * 2 : 16;
        hub->sess = co_xreallocarray(hub->sess, hub->cap_sess, sizeof(*hub->sess));
    }
    s->pos = hub->n_sess;
    hub->sess[hub->n_sess++] = s;
}

/* O(1): the last session takes its place (the order a scan of hub->sess sees, as before). */
void
agent_hub_sess_remove(struct coord_agents *hub, struct agent_sess *s)
{
    if (s->pos >= hub->n_sess || hub->sess[s->pos] != s)
        return;
    if (s->worker_id[0])
        ix_del(&hub->workers, s->worker_id, s);
    hub->sess[s->pos] = hub->sess[--hub->n_sess];
    hub->sess[s->pos]->pos = s->pos;
}

struct agent_sess *
agent_hub_worker_first(struct coord_agents *hub, const char *worker_id,
                       const struct agent_sess * not,
                       bool (*pred)(const struct agent_sess *o, const void *ud), const void *ud)
{
    struct agent_sess *best = NULL;
    for (struct agent_ix_ent *e = agent_ix_first(&hub->workers, worker_id); e; e = e->next) {
        struct agent_sess *o = e->s;
        if (o == not || strcmp(e->key, worker_id) != 0 || (pred && !pred(o, ud)))
            continue;
        if (!best || o->pos < best->pos)
            best = o;
    }
    return best;
}

static bool
sess_welcomed_live(const struct agent_sess *o, const void *ud)
{
    (void)ud;
    return o->wsi && o->state != AS_CLOSING && o->state != AS_AWAIT_HELLO;
}

struct agent_sess *
agent_hub_find_worker(struct coord_agents *hub, const char *worker_id,
                      const struct agent_sess * not )
{
    return agent_hub_worker_first(hub, worker_id, not, sess_welcomed_live, NULL);
}

void
agent_hub_changed(struct coord_agents *hub, struct agent_sess *s)
{
    hub->open_gen++;
    if (!s || s->queued_changed)
        return;
    if (hub->n_changed == hub->cap_changed) {
        hub->cap_changed = hub->cap_changed ? hub->cap_changed * 2 : 64;
        hub->changed = co_xreallocarray(hub->changed, hub->cap_changed, sizeof(*hub->changed));
    }
    s->queued_changed = true;
    agent_sess_ref(s);
    hub->changed[hub->n_changed++] = s;
}

size_t
agent_hub_take_changed(struct coord_agents *hub, struct agent_sess ***out)
{
    size_t n = hub->n_changed;
    *out = hub->changed;
    for (size_t i = 0; i < n; i++)
        hub->changed[i]->queued_changed = false;
    hub->changed = NULL;
    hub->n_changed = hub->cap_changed = 0;
    return n;
}

bool
agent_hub_holds_job(struct coord_agents *hub, const char *job_id)
{
    return agent_ix_first(&hub->jobs, job_id) != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* sessions                                                                                   */

struct agent_sess *
agent_hub_sess_new(struct coord_agents *hub, struct lws *wsi)
{
    struct agent_sess *s = co_xcalloc(1, sizeof(*s));
    s->hub = hub;
    s->wsi = wsi;
    s->refs = 1;
    s->serial = hub->next_serial++;
    s->state = AS_AWAIT_HELLO;
    s->last_seen_ms = co_mono_ms();
    s->conn_free = hub->hooks.conn_free;
    hub_add_sess(hub, s);
    return s;
}

void
agent_hub_index_worker(struct coord_agents *hub, struct agent_sess *s)
{
    ix_add(&hub->workers, s->worker_id, s);
}

void
agent_sess_ref(struct agent_sess *s)
{
    s->refs++;
}

void
agent_sess_unref(struct agent_sess *s)
{
    if (--s->refs > 0)
        return;
    if (s->conn && s->conn_free)
        s->conn_free(s->conn);
    for (size_t i = 0; i < s->n_images; i++)
        free(s->images[i]);
    free(s->images);
    free(s->jobs);
    free(s);
}

struct agent_job *
agent_sess_find(struct agent_sess *s, const char *job_id)
{
    for (size_t i = 0; i < s->n_jobs; i++) {
        if (strcmp(s->jobs[i].job_id, job_id) == 0)
            return &s->jobs[i];
    }
    return NULL;
}

struct agent_job *
agent_sess_add_job(struct agent_sess *s, const struct coord_job *job, int attempt,
                   enum agent_job_state st)
{
    int64_t cores = job->required_cores, ram_mb = job->required_ram_mb;
    if (s->n_jobs == s->cap_jobs) {
        s->cap_jobs = s->cap_jobs ? s->cap_jobs * 2 : 8;
        s->jobs = co_xreallocarray(s->jobs, s->cap_jobs, sizeof(*s->jobs));
    }
    struct agent_job *j = &s->jobs[s->n_jobs++];
    memset(j, 0, sizeof(*j));
    co_strlcpy(j->job_id, job->job_id, sizeof(j->job_id));
    co_strlcpy(j->buyer_id, job->buyer_id, sizeof(j->buyer_id));
    j->attempt = attempt;
    j->cores = cores;
    j->ram_mb = ram_mb;
    j->state = st;
    j->since_ms = co_mono_ms();
    /* A fresh assignment starts at seq 0; an attempt taken over at hello continues its own. */
    j->out_next_seq = st == AJ_CLAIMING || st == AJ_ASSIGNED ? 0 : -1;
    s->free_cores -= cores;
    s->free_ram_mb -= ram_mb;
    ix_add(&s->hub->jobs, job->job_id, s);
    if (s->cores - s->free_cores > s->peak_cores)
        s->peak_cores = s->cores - s->free_cores;
    if (s->ram_mb - s->free_ram_mb > s->peak_ram_mb)
        s->peak_ram_mb = s->ram_mb - s->free_ram_mb;
    return j;
}

void
agent_sess_remove_job(struct agent_sess *s, const char *job_id)
{
    for (size_t i = 0; i < s->n_jobs; i++) {
        if (strcmp(s->jobs[i].job_id, job_id) == 0) {
            ix_del(&s->hub->jobs, job_id, s);
            s->free_cores += s->jobs[i].cores;
            s->free_ram_mb += s->jobs[i].ram_mb;
            s->jobs[i] = s->jobs[--s->n_jobs];
            return;
        }
    }
}

bool
agent_sess_has_image(const struct agent_sess *s, const char *image)
{
    /* An agent that lists no images runs the default image only. */
    if (s->n_images == 0)
        return strcmp(image, PROTO_IMAGE_DEFAULT) == 0;
    for (size_t i = 0; i < s->n_images; i++) {
        if (strcmp(s->images[i], image) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* up through the hooks                                                                       */

void
agent_hub_kick(struct coord_agents *hub)
{
    if (hub->hooks.kick)
        hub->hooks.kick(hub->hooks.ud);
}

int
agent_sess_send_assign(struct agent_sess *s, const struct coord_job *job)
{
    return s->hub->hooks.send_assign ? s->hub->hooks.send_assign(s, job) : -1;
}

void
agent_sess_send_cancel(struct agent_sess *s, const char *job_id, int attempt, const char *reason)
{
    if (s->hub->hooks.send_cancel)
        s->hub->hooks.send_cancel(s, job_id, attempt, reason);
}

void
agent_sess_close(struct agent_sess *s, int code, const char *reason)
{
    if (s->hub->hooks.close)
        s->hub->hooks.close(s, code, reason);
}

void
agent_sess_moved(struct agent_sess *s, const co_err *err)
{
    if (s->hub->hooks.moved)
        s->hub->hooks.moved(s, err);
}

bool
agent_hub_quarantined(struct coord_agents *hub, const char *worker_id)
{
    return hub->hooks.quarantined && hub->hooks.quarantined(worker_id);
}
