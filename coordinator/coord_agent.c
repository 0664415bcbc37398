/* coord_agent: agent sessions on /ws/agent (see coord_agent.h). */
#include "coord_agent.h"

#include <string.h>
#include <strings.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"
#include "coord_node.h"
#include "coord_artifact.h"
#include "coord_ws_common.h"
#include "coord_server.h"
#include "proto_job.h"
#include "coord_fault.h"

#define AGENT_PATH "/ws/agent"
#define AGENT_TOKEN_HEADER "x-agent-token:"
/* Retry delay for a job.finished that could not be stored because the database was down. */
#define AGENT_FINISH_RETRY_US (500 * LWS_US_PER_MS)

static void hub_on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq);
static void sess_handle(struct agent_sess *s, struct proto_msg *m);

/* ------------------------------------------------------------------------------------------ */
/* hub                                                                                         */

static struct coord_agents *
hub_new(struct coord_server *srv, struct lws_context *ctx)
{
    struct coord_agents *hub = co_xcalloc(1, sizeof(*hub));
    hub->cfg = srv->cfg;
    hub->db = srv->db;
    hub->events = srv->events;
    hub->metrics = &srv->metrics;
    hub->limits = srv->limits;
    hub->ctx = ctx;
    hub->lease_ms = srv->cfg->worker_timeout_seconds * 1000;
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
    if (hub->events)
        hub->ev_handle = coord_events_subscribe(hub->events, hub_on_event, hub);
    hub->sched = coord_sched_new(hub);
    hub->lease = coord_lease_new(hub);
    hub->reconcile = coord_reconcile_new(hub);
    co_info("agent sessions ready lease_ms=%lld heartbeat_ms=%lld", (long long)hub->lease_ms,
            (long long)hub->heartbeat_ms);
    return hub;
}

static void
hub_free_now(struct coord_agents *hub)
{
    agent_ix_free(&hub->jobs);
    agent_ix_free(&hub->workers);
    free(hub->sess);
    free(hub->out_subs);
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
static void
hub_destroy(struct coord_agents *hub)
{
    co_info("agent writes stored writes=%llu items=%llu transactions=%llu undone=%llu",
            (unsigned long long)hub->batched_ops, (unsigned long long)hub->batches,
            (unsigned long long)hub->batch_txs, (unsigned long long)hub->batch_undone);
    co_info("agent results output_duplicates=%llu output_gaps=%llu assigns_resent=%llu",
            (unsigned long long)hub->output_duplicates, (unsigned long long)hub->output_gaps,
            (unsigned long long)hub->assigns_resent);
    coord_sched_free(hub->sched);
    hub->sched = NULL;
    coord_lease_free(hub->lease);
    hub->lease = NULL;
    coord_reconcile_free(hub->reconcile);
    hub->reconcile = NULL;
    if (hub->events && hub->ev_handle > 0)
        coord_events_unsubscribe(hub->events, hub->ev_handle);
    hub->events = NULL;
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
wl_index(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)(key ? key : ""); *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % AGENT_WLANES;
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
    struct agent_wlane *wl = &hub->wl[wl_index(key)];
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
static void
hub_remove_sess(struct coord_agents *hub, struct agent_sess *s)
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

/* A live, welcomed session of @worker_id other than @not, or NULL. */
static struct agent_sess *
hub_find_worker(struct coord_agents *hub, const char *worker_id, const struct agent_sess * not )
{
    return agent_hub_worker_first(hub, worker_id, not, sess_welcomed_live, NULL);
}

bool
agent_hub_holds_job(struct coord_agents *hub, const char *job_id)
{
    return agent_ix_first(&hub->jobs, job_id) != NULL;
}

void
coord_agents_output_subscribe(struct coord_agents *hub, coord_agent_output_fn fn, void *ud)
{
    hub->out_subs = co_xreallocarray(hub->out_subs, hub->n_out_subs + 1, sizeof(*hub->out_subs));
    hub->out_subs[hub->n_out_subs].fn = fn;
    hub->out_subs[hub->n_out_subs].ud = ud;
    hub->n_out_subs++;
}

size_t
coord_agents_connected(const struct coord_agents *hub)
{
    size_t n = 0;
    for (size_t i = 0; i < hub->n_sess; i++)
        n += hub->sess[i]->state == AS_READY;
    return n;
}

struct coord_agents *
coord_agents_of_vhost(struct lws_vhost *vhost)
{
    const struct lws_protocols *p = lws_vhost_name_to_protocol(vhost, PROTO_AGENT_SUBPROTOCOL);
    if (!p)
        return NULL;
    struct coord_agents **slot = lws_protocol_vh_priv_get(vhost, p);
    return slot ? *slot : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* sessions                                                                                    */

void
agent_sess_ref(struct agent_sess *s)
{
    s->refs++;
}

static void
sess_free_frames(struct agent_sess *s)
{
    struct agent_frame *f = s->out_head;
    while (f) {
        struct agent_frame *next = f->next;
        free(f);
        f = next;
    }
    s->out_head = s->out_tail = NULL;
    s->out_frames = s->out_bytes = 0;
}

static void
sess_free_parked(struct agent_sess *s)
{
    for (size_t i = 0; i < s->n_parked; i++)
        proto_msg_release(&s->parked[i]);
    free(s->parked);
    s->parked = NULL;
    s->n_parked = 0;
}

void
agent_sess_unref(struct agent_sess *s)
{
    if (--s->refs > 0)
        return;
    sess_free_frames(s);
    sess_free_parked(s);
    co_buf_release(&s->rx);
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

/* Queue @len bytes of @text as one text message; closes the session when its queue is full. */
static void
sess_queue_text(struct agent_sess *s, const char *text, size_t len)
{
    if (!s->wsi || s->close_code)
        return;
    if (s->out_frames >= AGENT_OUT_MAX_FRAMES || s->out_bytes + len > AGENT_OUT_MAX_BYTES) {
        co_warn("agent send queue full, closing worker=%s frames=%zu bytes=%zu", s->worker_id,
                s->out_frames, s->out_bytes);
        sess_free_frames(s);
        agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
        return;
    }
    struct agent_frame *f = co_xmalloc(sizeof(*f) + LWS_PRE + len);
    f->next = NULL;
    f->len = len;
    memcpy(f->buf + LWS_PRE, text, len);
    if (s->out_tail)
        s->out_tail->next = f;
    else
        s->out_head = f;
    s->out_tail = f;
    s->out_frames++;
    s->out_bytes += len;
    lws_callback_on_writable(s->wsi);
}

static void
sess_send(struct agent_sess *s, const struct proto_msg *m)
{
    size_t len = 0;
    co_autofree char *text = proto_msg_encode(m, &len);
    if (!text) {
        co_error("agent message cannot be encoded type=%s worker=%s", proto_msg_type_name(m->type),
                 s->worker_id);
        return;
    }
    sess_queue_text(s, text, len);
}

static void sess_send_error(struct agent_sess *s, const char *code, const struct proto_job_ref *job,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
sess_send_error(struct agent_sess *s, const char *code, const struct proto_job_ref *job,
                const char *fmt, ...)
{
    struct proto_msg m = {.type = PROTO_MSG_ERROR};
    co_strlcpy(m.u.error.code, code, sizeof(m.u.error.code));
    va_list ap;
    va_start(ap, fmt);
    co_autofree char *msg = co_xvasprintf(fmt, ap);
    va_end(ap);
    m.u.error.message = msg;
    if (job) {
        m.u.error.has_job = true;
        m.u.error.job = *job;
    }
    sess_send(s, &m);
}

void
agent_sess_close(struct agent_sess *s, int code, const char *reason)
{
    if (!s->wsi || s->close_code)
        return;
    s->close_code = code;
    co_strlcpy(s->close_reason, reason, sizeof(s->close_reason));
    s->state = AS_CLOSING;
    agent_hub_changed(s->hub);
    lws_callback_on_writable(s->wsi);
}

int
agent_sess_send_assign(struct agent_sess *s, const struct coord_job *job)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN};
    struct proto_job_assign *a = &m.u.assign;
    co_autofree char *code_file = NULL;
    co_strlcpy(a->job.job_id, job->job_id, sizeof(a->job.job_id));
    a->job.attempt = job->attempts;
    a->title = job->title;
    a->command = job->command;
    a->code = job->code ? job->code : "";
    if (job->code_file && job->code_file[0]) {
        a->code_file = job->code_file;
    } else {
        char **argv = NULL;
        size_t argc = 0;
        co_err err = CO_ERR_INIT;
        if (proto_argv_split(job->command, &argv, &argc, &err) == 0) {
            code_file = co_xstrdup(proto_argv_code_path(argv, argc));
            proto_argv_free(argv);
        } else {
            code_file = co_xstrdup(PROTO_CODE_PATH_DEFAULT);
        }
        a->code_file = code_file;
    }
    a->parameters = job->parameters && job->parameters[0] ? job->parameters : "{}";
    co_strlcpy(a->image, job->image && job->image[0] ? job->image : PROTO_IMAGE_DEFAULT,
               sizeof(a->image));
    a->required_cores = job->required_cores;
    a->required_ram_mb = job->required_ram_mb;
    a->timeout_seconds = job->timeout_seconds;
    a->files = job->files;
    size_t len = 0;
    co_autofree char *text = proto_msg_encode(&m, &len);
    if (!text) {
        co_error("job.assign cannot be encoded job=%s worker=%s", job->job_id, s->worker_id);
        return -1;
    }
    sess_queue_text(s, text, len);
    co_debug("job assigned job=%s attempt=%d worker=%s", job->job_id, job->attempts, s->worker_id);
    return 0;
}

void
agent_sess_send_cancel(struct agent_sess *s, const char *job_id, int attempt, const char *reason)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_CANCEL};
    co_strlcpy(m.u.cancel.job.job_id, job_id, sizeof(m.u.cancel.job.job_id));
    m.u.cancel.job.attempt = attempt;
    m.u.cancel.reason = (char *)reason;
    sess_send(s, &m);
    co_info("job.cancel sent job=%s attempt=%d worker=%s reason=%s", job_id, attempt, s->worker_id,
            reason);
}

/* ------------------------------------------------------------------------------------------ */
/* worker offline on disconnect                                                                */

struct offline_item {
    struct coord_agents *hub;
    char worker_id[CO_ID_MAX + 1];
    int64_t epoch; /* its session's: a session that moved on leaves the worker alone */
    bool stamp;    /* renew the lease first: the agent was heard from until now */
    int rc;
};

/* A write of @s was fenced off: its worker's session moved on (another node, or a newer hello). */
void
agent_sess_moved(struct agent_sess *s, const co_err *err)
{
    if (!s->wsi || s->state == AS_CLOSING)
        return;
    co_warn("agent session moved on, closing worker=%s epoch=%lld: %s", s->worker_id,
            (long long)s->session_epoch, err->msg);
    agent_sess_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "session moved");
}

/*
 * job.ack: the result of (@job_id, @attempt) is stored, or was a duplicate or stale: the agent
 * may forget it (PROTOCOL.md "Results are kept until acknowledged").  Sent only after the
 * result's transaction committed.
 */
static void
sess_send_result_ack(struct agent_sess *s, const char *job_id, int attempt)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_ACK};
    co_strlcpy(m.u.ack.job.job_id, job_id, sizeof(m.u.ack.job.job_id));
    m.u.ack.job.attempt = attempt;
    sess_send(s, &m);
}

static void
offline_work(struct coord_store *store, void *arg)
{
    struct offline_item *it = arg;
    co_err err = CO_ERR_INIT;
    if (coord_node_fence(store, it->worker_id, it->epoch, false, &err) < 0) {
        it->rc = -1;
        if (!coord_node_fenced(&err))
            co_warn("cannot check the session of worker=%s error=\"%s\"", it->worker_id, err.msg);
        return; /* a newer session (maybe on another node) holds the worker now */
    }
    /*
     * Heartbeats are stored once a second, so the stored one can be older than the agent's last
     * message; stamping it at the disconnect makes the lease run from the last contact.
     */
    if (it->stamp && coord_store_worker_heartbeat(store, it->worker_id, &err) < 0 &&
        err.code != CO_E_NOTFOUND)
        co_warn("cannot store last heartbeat worker=%s error=\"%s\"", it->worker_id, err.msg);
    it->rc = coord_store_worker_set_status(store, it->worker_id, COORD_WORKER_OFFLINE, &err);
    if (it->rc < 0 && err.code != CO_E_NOTFOUND)
        co_warn("cannot mark worker offline worker=%s error=\"%s\"", it->worker_id, err.msg);
}

static void
offline_undo(void *arg, const co_err *err)
{
    struct offline_item *it = arg;
    (void)err;
    it->rc = -1;
}

static void
offline_done(void *arg)
{
    struct offline_item *it = arg;
    if (agent_hub_complete(it->hub) && it->rc == 0)
        agent_hub_publish(it->hub, COORD_EVENT_WORKER, it->worker_id);
    free(it);
}

/* ------------------------------------------------------------------------------------------ */
/* hello                                                                                       */

struct hello_item {
    struct agent_sess *s;
    struct coord_worker w; /* w.owner_id: the credential's owner ("" until a key is looked up) */
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* a user key to look up first, else "" */
    char declared_owner[CO_ID_MAX + 1];    /* the hello's owner_id ("" when absent) */
    struct coord_principal principal;      /* result: the key's principal */
    struct proto_job_ref *running;         /* from the hello */
    size_t n_running;
    /* Results. */
    int rc;
    co_err err;
    int64_t epoch;            /* the session epoch this hello began (coord_node) */
    struct coord_job *active; /* assigned/running jobs of the worker in the store */
    size_t n_active;
    bool *released; /* per active job: the agent does not hold it, it went back to the queue */
    bool *resend;   /* per active job: assigned, never reported: job.assign again, same attempt */
    bool *zombie;   /* per running ref: not a current attempt of this worker, cancel it */
};

/*
 * The key of a hello (database thread): who it belongs to, and may it sell as @declared_owner?
 * CO_E_AUTH for an unknown or revoked key or a disabled user, CO_E_FORBIDDEN for a key without
 * the sell scope or an owner_id other than its user.
 */
static int
hello_key(struct coord_store *store, const char *key_hash, const char *declared_owner,
          struct coord_principal *p, co_err *err)
{
    struct coord_auth_entry e;
    int found = coord_auth_lookup(store, key_hash, &e, err);
    if (found < 0)
        return -1;
    if (found == 0)
        return co_err_set(err, CO_E_AUTH,
                          "key rejected: unknown, revoked, or its user is disabled");
    *p = e.p;
    if (!coord_auth_has_scope(p, COORD_SCOPE_SELL))
        return co_err_set(err, CO_E_FORBIDDEN, "key '%s' has no sell scope", p->key_id);
    if (declared_owner[0] && strcmp(declared_owner, p->user_id) != 0)
        return co_err_field(err, CO_E_FORBIDDEN, "owner_id",
                            "owner_id '%s' is not the key's user '%s'", declared_owner, p->user_id);
    return 0;
}

/*
 * An active job the agent did not list in its hello: if it is still `assigned` (the agent never
 * reported it started), the job.assign was lost and is sent again after the welcome on the same
 * attempt, without using one up.  Loads the job with its code into it->active[@i].  Returns 1 when
 * it is to be re-sent, 0 when not (the caller releases it), -1 with it->rc/err set when the store
 * failed (the hello is refused and retried).
 */
static int
hello_resend_assign(struct coord_store *store, struct hello_item *it, size_t i)
{
    struct coord_job *j = &it->active[i];
    if (j->status != COORD_JOB_ASSIGNED)
        return 0;
    struct coord_job full;
    co_err err = CO_ERR_INIT;
    if (coord_store_job_get(store, j->job_id, true, &full, &err) < 0) {
        if (err.code == CO_E_NOTFOUND)
            return 0;
        it->rc = -1;
        co_err_set(&it->err, err.code, "load job '%s': %s", j->job_id, err.msg);
        return -1;
    }
    if (full.status != COORD_JOB_ASSIGNED || full.attempts != j->attempts ||
        strcmp(full.assigned_worker, it->w.worker_id) != 0) {
        coord_job_release(&full);
        return 0;
    }
    coord_job_release(j);
    *j = full;
    it->resend[i] = true;
    return 1;
}

static void
hello_work(struct coord_store *store, void *arg)
{
    struct hello_item *it = arg;
    if (it->key_hash[0]) {
        it->rc = hello_key(store, it->key_hash, it->declared_owner, &it->principal, &it->err);
        if (it->rc < 0)
            return;
        co_strlcpy(it->w.owner_id, it->principal.user_id, sizeof(it->w.owner_id));
    }
    it->rc = coord_store_worker_upsert(store, &it->w, NULL, &it->err);
    if (it->rc < 0)
        return;
    /* The worker's session is this node's now: older ones (here or elsewhere) are fenced off. */
    it->rc = coord_store_worker_session_begin(store, it->w.worker_id, coord_node_id(), &it->epoch,
                                              &it->err);
    if (it->rc < 0)
        return;
    for (int st = COORD_JOB_ASSIGNED; st <= COORD_JOB_RUNNING; st++) {
        struct coord_job_filter f = {
            .status = st, .buyer_id = NULL, .worker_id = it->w.worker_id, .limit = 1000};
        struct coord_job_list l = {0};
        co_err err = CO_ERR_INIT;
        if (coord_store_job_list(store, &f, &l, &err) < 0) {
            /*
             * Refuse the hello (the agent retries it): welcomed without its jobs, the session
             * would take the agent's running attempts for strays and cancel them.
             */
            it->rc = -1;
            co_err_set(&it->err, err.code, "list the jobs of worker '%s': %s", it->w.worker_id,
                       err.msg);
            return;
        }
        it->active = co_xreallocarray(it->active, it->n_active + l.len + 1, sizeof(*it->active));
        for (size_t i = 0; i < l.len; i++)
            it->active[it->n_active++] = l.items[i];
        free(l.items); /* the rows moved into it->active */
    }
    it->released = co_xcalloc(it->n_active + 1, sizeof(bool));
    it->resend = co_xcalloc(it->n_active + 1, sizeof(bool));
    it->zombie = co_xcalloc(it->n_running + 1, sizeof(bool));
    for (size_t i = 0; i < it->n_active; i++) {
        struct coord_job *j = &it->active[i];
        bool held = false;
        for (size_t k = 0; k < it->n_running; k++) {
            if (strcmp(it->running[k].job_id, j->job_id) == 0 &&
                it->running[k].attempt == j->attempts)
                held = true;
        }
        if (held)
            continue;
        int r = hello_resend_assign(store, it, i);
        if (r < 0)
            return;
        if (r > 0)
            continue;
        /*
         * The agent does not run it (it never got it, or lost it, e.g. it was restarted): that
         * attempt is over.  The job goes back to the queue as attempt + 1 (or fails as
         * worker_lost past max_attempts), so that anything the lost attempt still reports is
         * fenced off and its output is not mixed with the next one's.
         */
        enum coord_job_status after;
        co_err err = CO_ERR_INIT;
        if (coord_store_job_release(store, j->job_id, it->w.worker_id, j->attempts, &after, &err) ==
            0) {
            it->released[i] = true;
            co_info("job released, its agent no longer holds it job=%s attempt=%d worker=%s "
                    "status=%s",
                    j->job_id, j->attempts, it->w.worker_id, coord_job_status_name(after));
        } else if (err.code == CO_E_CONFLICT || err.code == CO_E_NOTFOUND) {
            it->released[i] = true; /* it moved on meanwhile: not this worker's any more */
        } else {
            /* Refuse the hello: the agent retries it, and the release with it. */
            it->rc = -1;
            co_err_set(&it->err, err.code, "release job '%s': %s", j->job_id, err.msg);
            return;
        }
    }
    for (size_t k = 0; k < it->n_running; k++) {
        bool current = false;
        for (size_t i = 0; i < it->n_active; i++) {
            if (strcmp(it->running[k].job_id, it->active[i].job_id) == 0 &&
                it->running[k].attempt == it->active[i].attempts)
                current = true;
        }
        it->zombie[k] = !current;
    }
    coord_fault_hello_gap(it->w.worker_id); /* DEBUG_FAULTS: a window before the welcome */
}

static void
hello_undo(void *arg, const co_err *err)
{
    struct hello_item *it = arg;
    /* The welcome is not sent: the agent reconnects and says hello again. */
    it->rc = -1;
    it->err = *err;
}

static void
hello_item_free(struct hello_item *it)
{
    for (size_t i = 0; i < it->n_active; i++)
        coord_job_release(&it->active[i]);
    free(it->active);
    free(it->released);
    free(it->resend);
    free(it->zombie);
    free(it->running);
    free(it);
}

static void
sess_welcome(struct agent_sess *s)
{
    struct proto_msg m = {.type = PROTO_MSG_WELCOME};
    char now[CO_ISO_LEN];
    co_time_iso(co_wall_ms(), now);
    co_strlcpy(m.u.welcome.worker_id, s->worker_id, sizeof(m.u.welcome.worker_id));
    m.u.welcome.heartbeat_interval_ms = s->hub->heartbeat_ms;
    m.u.welcome.lease_timeout_ms = s->hub->lease_ms;
    m.u.welcome.server_time = now;
    sess_send(s, &m);
}

/*
 * The hello of @s was decided: on success the older sessions of its worker are replaced (closed);
 * otherwise they go on (they were only kept from new assignments while it was checked).
 */
static void
hello_settle_older(struct agent_sess *s, bool accepted)
{
    struct coord_agents *hub = s->hub;
    bool checking = false;
    struct agent_ix_ent *first = agent_ix_first(&hub->workers, s->worker_id);
    for (struct agent_ix_ent *e = first; e; e = e->next) {
        struct agent_sess *o = e->s;
        if (o != s && o->wsi && o->state == AS_HELLO_DB && strcmp(e->key, s->worker_id) == 0)
            checking = true;
    }
    for (struct agent_ix_ent *e = first; e; e = e->next) {
        struct agent_sess *o = e->s;
        if (o == s || !o->wsi || o->state != AS_READY || strcmp(e->key, s->worker_id) != 0)
            continue;
        if (accepted) {
            co_info("agent reconnected, closing its previous session worker=%s", s->worker_id);
            agent_sess_close(o, LWS_CLOSE_STATUS_GOINGAWAY, "replaced by a new connection");
        } else if (!checking) {
            o->superseded = false;
            agent_hub_changed(hub);
        }
    }
    if (!accepted && hub->sched)
        coord_sched_kick(hub->sched);
}

/* A credential of @s did not match: counted against its address (coord_limits). */
static void
sess_auth_failed(struct agent_sess *s)
{
    if (s->hub->limits)
        coord_limits_auth_failed(s->hub->limits, s->peer, co_mono_ms());
}

/* Refuse a hello whose credential or worker id is not acceptable (CO_E_AUTH, CO_E_FORBIDDEN). */
static void
hello_refuse(struct agent_sess *s, const co_err *err)
{
    co_warn("agent refused worker=%s owner=%s error=\"%s\"", s->worker_id[0] ? s->worker_id : "-",
            s->owner_id[0] ? s->owner_id : "-", err->msg);
    s->refused = true;
    if (err->code == CO_E_FORBIDDEN) {
        sess_send_error(s, PROTO_ERR_FORBIDDEN, NULL, "%s", err->msg);
        agent_sess_close(s, PROTO_CLOSE_FORBIDDEN, "forbidden");
    } else {
        sess_auth_failed(s);
        sess_send_error(s, PROTO_ERR_UNAUTHORIZED, NULL, "%s", err->msg);
        agent_sess_close(s, PROTO_CLOSE_KEY_REJECTED, "key rejected");
    }
}

static void
hello_done(void *arg)
{
    struct hello_item *it = arg;
    struct agent_sess *s = it->s;
    struct coord_agents *hub = s->hub;
    if (!agent_hub_complete(hub))
        goto out;
    if (!s->wsi || s->state != AS_HELLO_DB) {
        if (!hub->dead)
            hello_settle_older(s, false);
        goto out;
    }
    if (it->rc < 0) {
        hello_settle_older(s, false);
        if (it->err.code == CO_E_AUTH || it->err.code == CO_E_FORBIDDEN) {
            hello_refuse(s, &it->err);
            goto out;
        }
        co_warn("agent hello refused worker=%s error=\"%s\"", s->worker_id, it->err.msg);
        if (it->err.code == CO_E_LIMIT) {
            sess_send_error(s, "max_workers", NULL, "%s", it->err.msg);
            agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "max_workers");
        } else {
            sess_send_error(s, "unavailable", NULL, "%s", it->err.msg);
            agent_sess_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "unavailable");
        }
        goto out;
    }
    if (it->key_hash[0]) {
        s->principal = it->principal;
        co_strlcpy(s->owner_id, it->principal.user_id, sizeof(s->owner_id));
    }
    hello_settle_older(s, true);
    s->session_epoch = it->epoch;
    s->state = AS_READY;
    agent_hub_changed(hub);
    while (s->n_jobs > 0)
        agent_sess_remove_job(s, s->jobs[s->n_jobs - 1].job_id);
    s->free_cores = s->cores;
    s->free_ram_mb = s->ram_mb;
    sess_welcome(s);
    size_t released = 0, zombies = 0;
    for (size_t i = 0; i < it->n_active; i++) {
        struct coord_job *j = &it->active[i];
        if (it->released[i]) {
            agent_hub_publish(hub, COORD_EVENT_JOB, j->job_id);
            released++;
            continue;
        }
        if (it->resend[i]) {
            /* Never reported by the agent: the assignment was lost; same attempt again. */
            agent_sess_add_job(s, j, j->attempts, AJ_ASSIGNED);
            if (agent_sess_send_assign(s, j) == 0) {
                hub->assigns_resent++;
                co_info("job.assign sent again job=%s attempt=%d worker=%s", j->job_id, j->attempts,
                        s->worker_id);
            }
            continue;
        }
        enum agent_job_state st = j->status == COORD_JOB_RUNNING ? AJ_RUNNING : AJ_ACCEPTED;
        agent_sess_add_job(s, j, j->attempts, st);
    }
    for (size_t k = 0; k < it->n_running; k++) {
        if (it->zombie[k]) {
            agent_sess_send_cancel(s, it->running[k].job_id, (int)it->running[k].attempt,
                                   "stale attempt");
            zombies++;
        }
    }
    if (hub->metrics && !s->counted) {
        atomic_fetch_add(&hub->metrics->agents_connected, 1);
        s->counted = true;
    }
    co_info("agent welcomed worker=%s owner=%s cores=%lld ram_mb=%lld jobs=%zu released=%zu "
            "cancelled=%zu",
            s->worker_id, s->owner_id, (long long)s->cores, (long long)s->ram_mb, s->n_jobs,
            released, zombies);
    /* Messages that arrived while the hello was being stored. */
    struct proto_msg *parked = s->parked;
    size_t n_parked = s->n_parked;
    s->parked = NULL;
    s->n_parked = 0;
    for (size_t i = 0; i < n_parked; i++) {
        if (s->wsi && s->state == AS_READY)
            sess_handle(s, &parked[i]);
        proto_msg_release(&parked[i]);
    }
    free(parked);
    agent_hub_publish(hub, COORD_EVENT_WORKER, s->worker_id);
    if (hub->sched)
        coord_sched_kick(hub->sched);
out:
    agent_sess_unref(s);
    hello_item_free(it);
}

/*
 * Decide the credential of a hello (lws thread): a user key (from the upgrade's Authorization
 * header, or a "co_" token in the hello) is looked up later with the hello's write; the shared
 * AGENT_TOKEN (header or hello token) stands for AGENT_TOKEN_OWNER whatever owner_id the agent
 * sends; no credential is refused unless OPEN_REGISTRATION (then the declared owner, as in the
 * original).  Fills s->principal and s->owner_id (not for keys); -1 when the session was refused.
 */
static int
sess_hello_credential(struct agent_sess *s, const struct proto_hello *h)
{
    const struct coord_config *cfg = s->hub->cfg;
    const char *want = cfg->agent_token, *got = h->token ? h->token : "";
    bool token_ok =
        want && want[0] && got[0] && co_consttime_eq(got, strlen(got), want, strlen(want));
    memset(&s->principal, 0, sizeof(s->principal));
    /* A key at the upgrade wins: the hello's token is then not looked at. */
    if (!s->key_hash[0] && got[0] && !token_ok) {
        if (strncmp(got, COORD_KEY_PREFIX, strlen(COORD_KEY_PREFIX)) != 0) {
            co_warn("agent refused: wrong token worker=%s", h->worker_id);
            sess_auth_failed(s);
            sess_send_error(s, PROTO_ERR_UNAUTHORIZED, NULL, "wrong agent token");
            agent_sess_close(s, PROTO_CLOSE_UNAUTHORIZED, "unauthorized");
            return -1;
        }
        coord_auth_hash(got, strlen(got), s->key_hash);
    }
    if (s->key_hash[0]) {
        s->principal.cred = COORD_CRED_KEY;
        s->owner_id[0] = '\0'; /* the key's user, once looked up */
        return 0;
    }
    if (token_ok || s->upgrade_agent_token) {
        s->principal.cred = COORD_CRED_AGENT_TOKEN;
        s->principal.scopes = COORD_SCOPE_SELL;
        co_strlcpy(s->principal.user_id, cfg->agent_token_owner, sizeof(s->principal.user_id));
        co_strlcpy(s->owner_id, cfg->agent_token_owner, sizeof(s->owner_id));
        if (h->owner_id[0] && strcmp(h->owner_id, cfg->agent_token_owner) != 0)
            co_info("agent token: owner_id '%s' ignored, AGENT_TOKEN's agents belong to '%s' "
                    "worker=%s",
                    h->owner_id, cfg->agent_token_owner, h->worker_id);
        return 0;
    }
    if (cfg->open_registration) {
        s->principal.cred = COORD_CRED_OPEN;
        co_strlcpy(s->owner_id, h->owner_id[0] ? h->owner_id : h->worker_id, sizeof(s->owner_id));
        co_strlcpy(s->principal.user_id, s->owner_id, sizeof(s->principal.user_id));
        return 0;
    }
    co_warn("agent refused: no credential worker=%s", h->worker_id);
    sess_send_error(
        s, PROTO_ERR_UNAUTHORIZED, NULL,
        "a credential is required: Authorization: Bearer <sell key> or the agent token");
    agent_sess_close(s, PROTO_CLOSE_KEY_REJECTED, "key rejected");
    return -1;
}

static void
sess_on_hello(struct agent_sess *s, struct proto_msg *m)
{
    struct coord_agents *hub = s->hub;
    struct proto_hello *h = &m->u.hello;
    if (s->state != AS_AWAIT_HELLO) {
        sess_send_error(s, "bad_message", NULL, "hello sent twice");
        agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "hello sent twice");
        return;
    }
    if (sess_hello_credential(s, h) < 0)
        return;
    co_strlcpy(s->worker_id, h->worker_id, sizeof(s->worker_id));
    ix_add(&hub->workers, s->worker_id, s);
    s->cores = h->cores;
    s->ram_mb = h->ram_mb;
    s->images = h->images;
    s->n_images = h->n_images;
    /* Placement terms until the scheduler reads the stored ones: the hello's, the prior's. */
    s->price.per_core_second = h->price_per_core_second;
    s->price.per_gb_second = h->price_per_gb_second;
    s->reputation = COORD_REPUTATION_PPM * 4 / 5;
    h->images = NULL;
    h->n_images = 0;
    /*
     * A second connection of the same worker replaces the first (likely a dead half-open one)
     * once its hello is accepted (hello_done): until then the first one gets no new jobs, and if
     * the hello is refused (another user's credential) the first one goes on.
     */
    for (struct agent_ix_ent *e = agent_ix_first(&hub->workers, s->worker_id); e; e = e->next) {
        if (e->s != s && e->s->wsi && strcmp(e->key, s->worker_id) == 0) {
            e->s->superseded = true;
            agent_hub_changed(hub);
        }
    }
    coord_fault_hello_arrived(s->worker_id); /* DEBUG_FAULTS: held claims go on */
    struct hello_item *it = co_xcalloc(1, sizeof(*it));
    it->s = s;
    co_strlcpy(it->w.worker_id, s->worker_id, sizeof(it->w.worker_id));
    co_strlcpy(it->w.owner_id, s->owner_id, sizeof(it->w.owner_id));
    co_strlcpy(it->key_hash, s->key_hash, sizeof(it->key_hash));
    /* The field defaults to the worker id (proto_agent.c): that value says nothing. */
    if (strcmp(h->owner_id, h->worker_id) != 0)
        co_strlcpy(it->declared_owner, h->owner_id, sizeof(it->declared_owner));
    it->w.cpu_cores = s->cores;
    it->w.ram_mb = s->ram_mb;
    it->w.status = COORD_WORKER_IDLE;
    it->w.websocket = true;
    /* The seller's prices (AGENT_PRICE_PER_*), when the agent sends them. */
    it->w.has_price = h->has_price;
    it->w.price.per_core_second = h->price_per_core_second;
    it->w.price.per_gb_second = h->price_per_gb_second;
    it->running = h->running;
    it->n_running = h->n_running;
    h->running = NULL;
    h->n_running = 0;
    s->state = AS_HELLO_DB;
    agent_sess_ref(s);
    /* Through the write batch: ordered with this worker's other writes (e.g. a disconnect's). */
    agent_hub_write(hub, s->worker_id, hello_work, hello_undo, hello_done, it);
}

/* ------------------------------------------------------------------------------------------ */
/* job messages                                                                                */

struct job_item {
    struct agent_sess *s;
    char job_id[CO_ID_MAX + 1];
    char worker_id[CO_ID_MAX + 1];
    int attempt;
    int64_t epoch; /* the session's (fencing) */
    int rc;
    co_err err;
    /* job.finished / job.rejected */
    struct coord_job_result res;
    bool changed;
    bool requeued; /* a platform fault: back to the queue, attempt given back (not a result) */
    char buyer_id[CO_ID_MAX + 1];
    char owner_id[CO_ID_MAX + 1];
    lws_sorted_usec_list_t retry;
    int retries;
    /* job.output (offset above: where the chunk starts in its stream, -1 unknown) */
    bool late; /* sent again for an attempt this session does not hold (its result is stored) */
    int stream;
    char *data;
    size_t len;
    /* job.artifact (data, len above) and job.artifacts */
    char *path;
    int64_t offset;
    bool eof;
    struct coord_artifact_set set;
    int64_t max_bytes; /* MAX_ARTIFACT_BYTES (artifact items) */
    char *notes;
};

static struct job_item *
job_item_new(struct agent_sess *s, const struct proto_job_ref *ref)
{
    struct job_item *it = co_xcalloc(1, sizeof(*it));
    it->s = s;
    agent_sess_ref(s);
    co_strlcpy(it->job_id, ref->job_id, sizeof(it->job_id));
    co_strlcpy(it->worker_id, s->worker_id, sizeof(it->worker_id));
    co_strlcpy(it->owner_id, s->owner_id, sizeof(it->owner_id));
    it->attempt = (int)ref->attempt;
    it->epoch = s->session_epoch;
    it->max_bytes = s->hub->cfg->max_artifact_bytes;
    return it;
}

static void
job_item_free(struct job_item *it)
{
    agent_sess_unref(it->s);
    free(it->data);
    free(it->path);
    free(it->notes);
    free(it);
}

/* started, output, finished: their batch was not committed (finished is then retried). */
static void
job_item_undo(void *arg, const co_err *err)
{
    struct job_item *it = arg;
    it->rc = -1;
    it->err = *err;
    it->changed = false;
}

static void
job_item_submit(struct job_item *it, coord_db_work_fn work, coord_db_done_fn done)
{
    agent_hub_write(it->s->hub, it->job_id, work, job_item_undo, done, it);
}

/*
 * started, output, the artifact summary: not stored because the database was unavailable (run
 * again, in order).
 */
static bool
job_item_again(void *arg)
{
    struct job_item *it = arg;
    return it->rc < 0 && it->err.code == CO_E_UNAVAILABLE;
}

/* A write that waits out a database outage on the job's lane (agent_hub_write_kept). */
static void
job_item_submit_kept(struct job_item *it, coord_db_work_fn work, coord_db_done_fn done)
{
    agent_hub_write_kept(it->s->hub, it->job_id, work, job_item_undo, done, job_item_again, it);
}

static void
started_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
    if (it->rc == 0)
        it->rc = coord_store_job_started(store, it->job_id, it->worker_id, it->attempt, &it->err);
}

static void
started_done(void *arg)
{
    struct job_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(s->hub))
        goto out;
    if (it->rc == 0) {
        agent_hub_publish(s->hub, COORD_EVENT_JOB, it->job_id);
    } else if (coord_node_fenced(&it->err)) {
        agent_sess_moved(s, &it->err);
    } else if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND) {
        /* A stale attempt (or a job cancelled meanwhile): stop it on the agent. */
        co_debug("job.started ignored job=%s attempt=%d worker=%s: %s", it->job_id, it->attempt,
                 it->worker_id, it->err.msg);
        s->hub->stale_dropped++;
        struct agent_job *j = agent_sess_find(s, it->job_id);
        if (s->wsi && j && j->attempt == it->attempt && j->state != AJ_CANCELLING) {
            j->state = AJ_CANCELLING;
            j->since_ms = co_mono_ms();
            agent_sess_send_cancel(s, it->job_id, it->attempt, "cancelled");
        }
    } else {
        co_warn("cannot store job.started job=%s error=\"%s\"", it->job_id, it->err.msg);
    }
out:
    job_item_free(it);
}

static void
output_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    /* Fenced: output of an attempt that is no longer current never lands in the new one's. */
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
    if (it->rc == 0)
        it->rc = coord_store_output_put(store, it->job_id, it->worker_id, it->attempt, it->late,
                                        it->stream, it->offset, it->data, it->len, &it->err);
    if (it->rc < 0 && (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND))
        co_debug("job output of a stale attempt dropped job=%s attempt=%d: %s", it->job_id,
                 it->attempt, it->err.msg);
    else if (it->rc < 0 && it->err.code == CO_E_UNAVAILABLE)
        co_debug("job output kept until the database is back job=%s error=\"%s\"", it->job_id,
                 it->err.msg);
    else if (it->rc < 0)
        co_warn("cannot store job output job=%s error=\"%s\"", it->job_id, it->err.msg);
}

static void
output_done(void *arg)
{
    struct job_item *it = arg;
    agent_hub_complete(it->s->hub);
    job_item_free(it);
}

/* Store @o (its data taken) on the job's write lane; @late: see job_item.late. */
static void
output_submit(struct agent_sess *s, struct proto_job_output *o, int stream, bool late)
{
    struct job_item *it = job_item_new(s, &o->job);
    it->stream = stream;
    it->offset = o->offset;
    it->late = late;
    it->data = o->data;
    it->len = o->data_len;
    o->data = NULL;
    o->data_len = 0;
    job_item_submit_kept(it, output_work, output_done);
}

static void
lane_noop_work(struct coord_store *store, void *arg)
{
    (void)store;
    ((struct job_item *)arg)->rc = 0;
}

static void
lane_ack_done(void *arg)
{
    struct job_item *it = arg;
    if (agent_hub_complete(it->s->hub))
        sess_send_result_ack(it->s, it->job_id, it->attempt);
    job_item_free(it);
}

/* ---- artifacts: stored in order on the job's write lane, before its job.finished ---- */

static struct agent_job *sess_current(struct agent_sess *s, const struct proto_job_ref *ref,
                                      const char *what);

static void
artifact_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    bool capped = false;
    it->rc = coord_store_artifact_append(store, it->job_id, it->worker_id, it->attempt, it->path,
                                         it->offset, it->data, it->len, it->eof, it->max_bytes,
                                         &capped, &it->err);
    if (capped)
        co_debug("artifact chunk over MAX_ARTIFACT_BYTES cut off job=%s attempt=%d path=\"%s\"",
                 it->job_id, it->attempt, it->path);
    if (it->rc < 0)
        co_warn("artifact chunk not stored job=%s attempt=%d path=\"%s\" error=\"%s\"", it->job_id,
                it->attempt, it->path, it->err.msg);
}

static void
artifact_done(void *arg)
{
    struct job_item *it = arg;
    struct agent_sess *s = it->s;
    s->art_pending -= it->len;
    if (s->rx_paused && s->art_pending < COORD_ARTIFACT_PENDING_MAX / 2) {
        s->rx_paused = false;
        if (s->wsi)
            lws_rx_flow_control(s->wsi, 1);
    }
    agent_hub_complete(s->hub);
    job_item_free(it);
}

static void
artifacts_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    it->set.notes = it->notes;
    it->rc = coord_store_artifact_finish(store, it->job_id, it->worker_id, it->attempt, &it->set,
                                         it->max_bytes, &it->err);
    if (it->rc < 0)
        co_warn("artifact summary not stored job=%s attempt=%d error=\"%s\"", it->job_id,
                it->attempt, it->err.msg);
}

static void
artifacts_done(void *arg)
{
    struct job_item *it = arg;
    if (agent_hub_complete(it->s->hub) && it->rc == 0)
        agent_hub_publish(it->s->hub, COORD_EVENT_JOB, it->job_id);
    job_item_free(it);
}

static void
sess_on_artifact(struct agent_sess *s, struct proto_msg *m)
{
    struct job_item *it;
    if (m->type == PROTO_MSG_JOB_ARTIFACT) {
        struct proto_job_artifact *a = &m->u.artifact;
        if (!sess_current(s, &a->job, "job.artifact"))
            return;
        it = job_item_new(s, &a->job);
        it->path = co_steal(&a->path);
        it->offset = a->offset;
        it->eof = a->eof;
        it->data = co_steal(&a->data);
        it->len = a->data_len;
        s->art_pending += it->len;
        if (!s->rx_paused && s->art_pending > COORD_ARTIFACT_PENDING_MAX && s->wsi) {
            s->rx_paused = true;
            lws_rx_flow_control(s->wsi, 0);
        }
        job_item_submit(it, artifact_work, artifact_done);
        return;
    }
    struct proto_job_artifacts *a = &m->u.artifacts;
    if (!sess_current(s, &a->job, "job.artifacts"))
        return;
    it = job_item_new(s, &a->job);
    it->set.files = a->files;
    it->set.bytes = a->bytes;
    it->set.skipped = a->skipped;
    it->set.truncated = a->truncated;
    it->notes = co_steal(&a->notes);
    job_item_submit_kept(it, artifacts_work, artifacts_done);
}

static void finish_submit(struct job_item *it);

static void
finish_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    it->changed = false;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
    if (it->rc < 0)
        return;
    if (it->res.platform_fault && it->attempt < COORD_PLATFORM_ATTEMPTS_MAX) {
        /* Not the buyer's fault: the job goes back to the queue, the attempt is given back. */
        it->rc =
            coord_store_job_requeue_free(store, it->job_id, it->worker_id, it->attempt, &it->err);
        /* It counts against the seller's reputation (best effort: the requeue stands). */
        co_err oerr = CO_ERR_INIT;
        if (it->rc == 0 && coord_store_outcome_record(store, it->worker_id, it->job_id,
                                                      COORD_OUTCOME_REJECTED, &oerr) < 0)
            co_warn("cannot record a rejection worker=%s error=\"%s\"", it->worker_id, oerr.msg);
        it->changed = it->rc == 0;
        it->requeued = it->changed;
        return;
    }
    it->rc = coord_store_job_finish(store, it->job_id, it->worker_id, it->attempt, &it->res,
                                    &it->changed, &it->err);
}

/* Count a stored end towards the worker's streak of platform-side failures (quarantine). */
static void
agent_quarantine_note(struct agent_sess *s, const struct job_item *it)
{
    if (it->res.status == COORD_JOB_CANCELLED)
        return;
    bool fault = it->res.platform_fault;
    if (coord_quarantine_record(it->worker_id, fault, coord_failure_name(it->res.failure),
                                s->hub->cfg->quarantine_seconds * 1000))
        co_warn("worker quarantined after %d consecutive platform-side failures worker=%s "
                "seconds=%lld",
                COORD_QUARANTINE_FAILURES, it->worker_id,
                (long long)s->hub->cfg->quarantine_seconds);
}

static void
finish_retry_cb(lws_sorted_usec_list_t *sul)
{
    struct job_item *it = lws_container_of(sul, struct job_item, retry);
    struct coord_agents *hub = it->s->hub;
    hub->inflight--; /* the timer held it */
    if (hub->dead) {
        job_item_free(it);
        if (hub->inflight == 0)
            hub_free_now(hub);
        return;
    }
    finish_submit(it);
}

static void
finish_done(void *arg)
{
    struct job_item *it = arg;
    struct agent_sess *s = it->s;
    struct coord_agents *hub = s->hub;
    if (!agent_hub_complete(hub)) {
        job_item_free(it);
        return;
    }
    if (it->rc < 0 && it->err.code == CO_E_UNAVAILABLE) {
        /*
         * The database is down: keep the result and try again until it is back (it is money,
         * and the agent forgets a result once it was delivered).  Back off up to 5 s.
         */
        int64_t delay = (int64_t)AGENT_FINISH_RETRY_US << (it->retries < 4 ? it->retries : 4);
        if (delay > 5 * LWS_US_PER_SEC)
            delay = 5 * LWS_US_PER_SEC;
        if (it->retries++ % 10 == 0)
            co_warn("cannot store job result, retrying job=%s attempt=%d error=\"%s\"", it->job_id,
                    it->attempt, it->err.msg);
        hub->inflight++;
        lws_sul_schedule(hub->ctx, 0, &it->retry, finish_retry_cb, (lws_usec_t)delay);
        return;
    }
    if (coord_node_fenced(&it->err)) {
        /* Not acknowledged: the agent sends it again on its current session. */
        agent_sess_moved(s, &it->err);
        job_item_free(it);
        return;
    }
    struct agent_job *j = agent_sess_find(s, it->job_id);
    if (j && j->attempt == it->attempt)
        agent_sess_remove_job(s, it->job_id);
    /* Stored (committed), or refused for good (stale, unknown): the agent may forget it. */
    if (it->rc == 0 || it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND)
        sess_send_result_ack(s, it->job_id, it->attempt);
    if (it->rc == 0 && it->changed)
        agent_quarantine_note(s, it);
    if (it->rc == 0) {
        if (it->changed && it->requeued) {
            co_debug("job requeued after a platform fault job=%s attempt=%d worker=%s", it->job_id,
                     it->attempt, it->worker_id);
            agent_hub_publish(hub, COORD_EVENT_JOB, it->job_id);
        } else if (it->changed) {
            co_debug("job finished job=%s attempt=%d worker=%s status=%s", it->job_id, it->attempt,
                     it->worker_id, coord_job_status_name(it->res.status));
            agent_hub_publish(hub, COORD_EVENT_JOB, it->job_id);
            agent_hub_publish(hub, COORD_EVENT_CREDITS, it->buyer_id);
            if (it->owner_id[0] && strcmp(it->owner_id, it->buyer_id) != 0)
                agent_hub_publish(hub, COORD_EVENT_CREDITS, it->owner_id);
        }
    } else if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND) {
        co_debug("job.finished ignored job=%s attempt=%d worker=%s: %s", it->job_id, it->attempt,
                 it->worker_id, it->err.msg);
        hub->stale_dropped++;
    } else {
        co_error("cannot store job result job=%s attempt=%d code=%s error=\"%s\"", it->job_id,
                 it->attempt, co_err_code_name(it->err.code), it->err.msg);
    }
    if (hub->sched)
        coord_sched_kick(hub->sched);
    job_item_free(it);
}

static void
finish_submit(struct job_item *it)
{
    job_item_submit(it, finish_work, finish_done);
}

/* Map the sandbox outcome of job.finished to the job's final state. */
static void
result_of(const struct proto_job_finished *f, struct coord_job_result *r)
{
    memset(r, 0, sizeof(*r));
    r->status = COORD_JOB_FAILED;
    r->has_exit_code = f->has_exit_code;
    r->exit_code = f->exit_code;
    r->has_usage = true;
    r->usage.wall_ms = f->wall_ms;
    r->usage.cpu_ms = f->cpu_ms;
    r->usage.max_rss_kb = f->max_rss_kb > f->memory_peak_kb ? f->max_rss_kb : f->memory_peak_kb;
    switch (f->status) {
    case PROTO_RUN_OK:
        if (!f->has_exit_code || f->exit_code == 0) {
            r->status = COORD_JOB_COMPLETED;
            r->failure = COORD_FAIL_NONE;
        } else {
            r->failure = COORD_FAIL_EXIT_CODE;
        }
        break;
    case PROTO_RUN_RUNTIME_ERROR:
        r->failure = COORD_FAIL_EXIT_CODE;
        break;
    case PROTO_RUN_SIGNALED:
    case PROTO_RUN_SECCOMP:
    case PROTO_RUN_OUTPUT_LIMIT:
        r->failure = COORD_FAIL_KILLED;
        break;
    case PROTO_RUN_TIMEOUT:
    case PROTO_RUN_CPU_TIMEOUT:
        r->failure = COORD_FAIL_TIMEOUT;
        break;
    case PROTO_RUN_OOM:
        r->failure = COORD_FAIL_OOM;
        break;
    case PROTO_RUN_INTERNAL_ERROR:
        r->failure = COORD_FAIL_SANDBOX_ERROR;
        r->platform_fault = true;
        break;
    case PROTO_RUN_CANCELLED:
        r->status = COORD_JOB_CANCELLED;
        r->failure = COORD_FAIL_CANCELLED;
        break;
    }
}

/* The entry of a job message if it is for the current attempt this session holds, else NULL. */
static struct agent_job *
sess_current(struct agent_sess *s, const struct proto_job_ref *ref, const char *what)
{
    struct agent_job *j = agent_sess_find(s, ref->job_id);
    if (j && j->attempt == ref->attempt && j->state != AJ_CLAIMING)
        return j;
    co_debug("%s of a stale or unknown attempt ignored job=%s attempt=%lld worker=%s", what,
             ref->job_id, (long long)ref->attempt, s->worker_id);
    s->hub->stale_dropped++;
    return NULL;
}

/*
 * The job.output sequence check of one attempt: false for a chunk already received (a duplicate:
 * dropped); a gap is logged and counted, and the chunk kept.
 */
static bool
sess_output_seq_ok(struct agent_sess *s, struct agent_job *j, int64_t seq)
{
    if (j->out_next_seq >= 0 && seq < j->out_next_seq) {
        co_debug("duplicate job.output dropped job=%s attempt=%d seq=%lld expected=%lld", j->job_id,
                 j->attempt, (long long)seq, (long long)j->out_next_seq);
        s->hub->output_duplicates++;
        return false;
    }
    if (j->out_next_seq >= 0 && seq > j->out_next_seq) {
        co_warn("gap in job.output job=%s attempt=%d worker=%s seq=%lld expected=%lld", j->job_id,
                j->attempt, s->worker_id, (long long)seq, (long long)j->out_next_seq);
        s->hub->output_gaps++;
    }
    j->out_next_seq = seq + 1;
    return true;
}

static void
sess_on_job(struct agent_sess *s, struct proto_msg *m)
{
    struct agent_job *j;
    struct job_item *it;
    switch (m->type) {
    case PROTO_MSG_JOB_ACCEPTED:
        j = sess_current(s, &m->u.ack.job, "job.accepted");
        if (j && j->state == AJ_ASSIGNED)
            j->state = AJ_ACCEPTED;
        return;
    case PROTO_MSG_JOB_REJECTED:
        j = sess_current(s, &m->u.ack.job, "job.rejected");
        if (!j || j->finishing)
            return;
        co_warn("job rejected by agent job=%s attempt=%d worker=%s reason=\"%s\"", j->job_id,
                j->attempt, s->worker_id, m->u.ack.reason ? m->u.ack.reason : "");
        j->finishing = true;
        it = job_item_new(s, &m->u.ack.job);
        co_strlcpy(it->buyer_id, j->buyer_id, sizeof(it->buyer_id));
        it->res.status = COORD_JOB_FAILED;
        it->res.failure = COORD_FAIL_SANDBOX_ERROR;
        it->res.platform_fault = true;
        finish_submit(it);
        return;
    case PROTO_MSG_JOB_STARTED:
        j = agent_sess_find(s, m->u.started.job.job_id);
        if (!j || j->attempt != m->u.started.job.attempt || j->state == AJ_CLAIMING) {
            /* The agent runs an attempt that is not current: stop it. */
            s->hub->stale_dropped++;
            agent_sess_send_cancel(s, m->u.started.job.job_id, (int)m->u.started.job.attempt,
                                   "stale attempt");
            return;
        }
        if (j->state == AJ_CANCELLING)
            return;
        j->state = AJ_RUNNING;
        j->since_ms = co_mono_ms();
        it = job_item_new(s, &m->u.started.job);
        job_item_submit_kept(it, started_work, started_done);
        return;
    case PROTO_MSG_JOB_OUTPUT: {
        struct proto_job_output *o = &m->u.output;
        int stream = o->stream == PROTO_STREAM_STDERR ? 2 : 1;
        j = sess_current(s, &o->job, "job.output");
        if (!j && o->offset >= 0 && o->data_len > 0) {
            /*
             * Output sent again with the result of an attempt this session does not hold: if
             * that result is stored already, the store still takes the bytes it lacks (fenced to
             * the job's last attempt on this worker), before the result's ack (same lane).
             */
            output_submit(s, o, stream, true);
            return;
        }
        if (!j || !sess_output_seq_ok(s, j, o->seq))
            return;
        uint64_t offset = o->offset >= 0 ? (uint64_t)o->offset : j->out_bytes[stream - 1];
        j->out_bytes[stream - 1] += o->data_len;
        if (offset < COORD_AGENT_OUTPUT_CAP) {
            size_t fwd = o->data_len;
            if (offset + fwd > COORD_AGENT_OUTPUT_CAP)
                fwd = (size_t)(COORD_AGENT_OUTPUT_CAP - offset);
            for (size_t i = 0; i < s->hub->n_out_subs; i++)
                s->hub->out_subs[i].fn(s->hub->out_subs[i].ud, j->job_id, j->buyer_id, j->attempt,
                                       stream, offset, o->data, fwd);
        }
        if (o->data_len == 0)
            return;
        output_submit(s, o, stream, false);
        return;
    }
    case PROTO_MSG_JOB_ARTIFACT:
    case PROTO_MSG_JOB_ARTIFACTS:
        sess_on_artifact(s, m);
        return;
    case PROTO_MSG_JOB_FINISHED:
        j = agent_sess_find(s, m->u.finished.job.job_id);
        if (!j || j->attempt != m->u.finished.job.attempt) {
            /* A duplicate after settlement, or a stale attempt: the store would refuse it. */
            co_debug("job.finished of a stale or settled attempt ignored job=%s attempt=%lld",
                     m->u.finished.job.job_id, (long long)m->u.finished.job.attempt);
            s->hub->stale_dropped++;
            /* On the job's lane: after any output sent again before it is stored. */
            it = job_item_new(s, &m->u.finished.job);
            job_item_submit(it, lane_noop_work, lane_ack_done);
            return;
        }
        if (j->finishing)
            return;
        j->finishing = true;
        it = job_item_new(s, &m->u.finished.job);
        co_strlcpy(it->buyer_id, j->buyer_id, sizeof(it->buyer_id));
        result_of(&m->u.finished, &it->res);
        finish_submit(it);
        return;
    default:
        return;
    }
}

static void
sess_handle(struct agent_sess *s, struct proto_msg *m)
{
    switch (m->type) {
    case PROTO_MSG_HELLO:
        sess_on_hello(s, m);
        return;
    case PROTO_MSG_HEARTBEAT: {
        const struct proto_heartbeat *hb = &m->u.heartbeat;
        if (s->state == AS_READY || s->state == AS_HELLO_DB)
            s->hb_dirty = true;
        /* The agent's own view of its use (absent fields are -1), for the logs and tests. */
        if (hb->free_cores >= 0 && s->cores - hb->free_cores > s->agent_peak_cores)
            s->agent_peak_cores = s->cores - hb->free_cores;
        if (hb->free_ram_mb >= 0 && s->ram_mb - hb->free_ram_mb > s->agent_peak_ram_mb)
            s->agent_peak_ram_mb = s->ram_mb - hb->free_ram_mb;
        return;
    }
    case PROTO_MSG_ERROR:
        co_warn("agent reported an error worker=%s code=%s message=\"%s\"", s->worker_id,
                m->u.error.code, m->u.error.message ? m->u.error.message : "");
        return;
    case PROTO_MSG_JOB_ACCEPTED:
    case PROTO_MSG_JOB_REJECTED:
    case PROTO_MSG_JOB_STARTED:
    case PROTO_MSG_JOB_OUTPUT:
    case PROTO_MSG_JOB_FINISHED:
    case PROTO_MSG_JOB_ARTIFACT:
    case PROTO_MSG_JOB_ARTIFACTS:
        if (s->state == AS_HELLO_DB) {
            /* Keep it until the worker's jobs are known (the welcome). */
            if (s->n_parked >= AGENT_PARK_MAX) {
                agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many messages");
                return;
            }
            s->parked = co_xreallocarray(s->parked, s->n_parked + 1, sizeof(*s->parked));
            s->parked[s->n_parked++] = *m;
            memset(m, 0, sizeof(*m));
            return;
        }
        if (s->state != AS_READY) {
            if (s->state == AS_AWAIT_HELLO) {
                sess_send_error(s, "bad_message", NULL, "expected hello first");
                agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "expected hello");
            }
            return;
        }
        sess_on_job(s, m);
        return;
    default:
        sess_send_error(s, "bad_message", NULL, "unexpected message type '%s'",
                        proto_msg_type_name(m->type));
        return;
    }
}

static void
sess_on_message(struct agent_sess *s, const char *buf, size_t len)
{
    struct proto_msg m;
    co_err err = CO_ERR_INIT;
    s->last_seen_ms = co_mono_ms();
    if (proto_msg_decode(buf, len, &m, &err) < 0) {
        co_debug("bad agent message worker=%s error=\"%s\"", s->worker_id, err.msg);
        sess_send_error(s, "bad_message", NULL, "%s%s%s", err.field[0] ? err.field : "",
                        err.field[0] ? ": " : "", err.msg);
        if (s->state == AS_AWAIT_HELLO)
            agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad hello");
        return;
    }
    sess_handle(s, &m);
    proto_msg_release(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* job events: cancellation                                                                    */

struct check_item {
    struct agent_sess *s;
    char job_id[CO_ID_MAX + 1];
    int attempt;
    int rc;
    struct coord_job job;
};

static void
check_work(struct coord_store *store, void *arg)
{
    struct check_item *it = arg;
    co_err err = CO_ERR_INIT;
    it->rc = coord_store_job_get(store, it->job_id, false, &it->job, &err);
}

static void
check_done(void *arg)
{
    struct check_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(s->hub) || !s->wsi)
        goto out;
    struct agent_job *j = agent_sess_find(s, it->job_id);
    if (!j || j->attempt != it->attempt || j->state == AJ_CANCELLING || j->state == AJ_CLAIMING)
        goto out;
    bool gone =
        it->rc == 0 &&
        (it->job.status == COORD_JOB_CANCELLED || it->job.status == COORD_JOB_COMPLETED ||
         it->job.status == COORD_JOB_FAILED || it->job.status == COORD_JOB_PENDING ||
         it->job.attempts != it->attempt || strcmp(it->job.assigned_worker, s->worker_id) != 0);
    if (gone) {
        j->state = AJ_CANCELLING;
        j->since_ms = co_mono_ms();
        agent_sess_send_cancel(s, it->job_id, it->attempt,
                               it->job.status == COORD_JOB_CANCELLED ? "cancelled"
                                                                     : "attempt no longer current");
    }
out:
    if (it->rc == 0)
        coord_job_release(&it->job);
    agent_sess_unref(s);
    free(it);
}

/* ------------------------------------------------------------------------------------------ */
/* key and user events: revocation and disabling                                               */

struct recheck_item {
    struct agent_sess *s;
    char key_hash[COORD_KEY_HASH_LEN + 1];
    int rc; /* 1 still usable for selling, 0 not, -1 the database could not tell */
    co_err err;
};

static void
recheck_work(struct coord_store *store, void *arg)
{
    struct recheck_item *it = arg;
    struct coord_auth_entry e;
    int found = coord_auth_lookup(store, it->key_hash, &e, &it->err);
    it->rc = found < 0 ? -1 : found > 0 && coord_auth_has_scope(&e.p, COORD_SCOPE_SELL);
}

static void
recheck_done(void *arg)
{
    struct recheck_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(s->hub) || !s->wsi)
        goto out;
    if (it->rc < 0) {
        co_warn("cannot check the key of worker=%s again error=\"%s\"", s->worker_id, it->err.msg);
    } else if (it->rc == 0) {
        co_warn("agent disconnected: its key was revoked or its user disabled worker=%s key=%s "
                "owner=%s",
                s->worker_id, s->principal.key_id, s->principal.user_id);
        sess_send_error(s, PROTO_ERR_UNAUTHORIZED, NULL, "key revoked or user disabled");
        agent_sess_close(s, PROTO_CLOSE_KEY_REJECTED, "key rejected");
    }
out:
    agent_sess_unref(s);
    free(it);
}

/*
 * A key was revoked (@id is its key_id) or a user changed (@id is its user_id): look the key of
 * each session it concerns up again, and close those that may no longer sell.
 */
static void
hub_recheck_keys(struct coord_agents *hub, enum coord_event_kind kind, const char *id)
{
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (!s->wsi || s->principal.cred != COORD_CRED_KEY || !s->key_hash[0] ||
            s->state == AS_CLOSING)
            continue;
        /* A hello still being checked has no key_id yet: it is checked against the store now. */
        bool hit = kind == COORD_EVENT_KEY ? strcmp(s->principal.key_id, id) == 0
                                           : strcmp(s->principal.user_id, id) == 0;
        if (!hit && s->state != AS_HELLO_DB)
            continue;
        struct recheck_item *it = co_xcalloc(1, sizeof(*it));
        it->s = s;
        co_strlcpy(it->key_hash, s->key_hash, sizeof(it->key_hash));
        agent_sess_ref(s);
        if (agent_hub_submit(hub, COORD_DB_READ, recheck_work, recheck_done, it) < 0) {
            agent_sess_unref(s);
            free(it);
        }
    }
}

/* Another node changed a worker that has a session here: is this session still the current? */
struct moved_item {
    struct agent_sess *s;
    char worker_id[CO_ID_MAX + 1];
    int64_t epoch;
    int rc;
    co_err err;
};

static void
moved_work(struct coord_store *store, void *arg)
{
    struct moved_item *it = arg;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
}

static void
moved_done(void *arg)
{
    struct moved_item *it = arg;
    if (agent_hub_complete(it->s->hub) && it->rc < 0 && coord_node_fenced(&it->err))
        agent_sess_moved(it->s, &it->err);
    agent_sess_unref(it->s);
    free(it);
}

static void
hub_check_moved(struct coord_agents *hub, const char *worker_id)
{
    struct agent_sess *s = hub_find_worker(hub, worker_id, NULL);
    if (!s || s->state != AS_READY || s->session_epoch <= 0)
        return;
    struct moved_item *it = co_xcalloc(1, sizeof(*it));
    it->s = s;
    agent_sess_ref(s);
    co_strlcpy(it->worker_id, worker_id, sizeof(it->worker_id));
    it->epoch = s->session_epoch;
    if (agent_hub_submit(hub, COORD_DB_READ, moved_work, moved_done, it) < 0) {
        agent_sess_unref(s);
        free(it);
    }
}

/*
 * Another module changed a job (submit, cancel, poll status...): schedule, and stop it here.  A
 * key or a user changed: close the sessions that may no longer sell.
 */
static void
hub_on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq)
{
    (void)seq;
    struct coord_agents *hub = ud;
    if (hub->dead)
        return;
    if (kind == COORD_EVENT_KEY || kind == COORD_EVENT_USER) {
        hub_recheck_keys(hub, kind, id);
        return;
    }
    if (kind == COORD_EVENT_WORKER && (coord_events_remote(hub->events) || !hub->self_publish)) {
        /* A hello on another node, or a POST /register (a REST change), ends the session here. */
        hub_check_moved(hub, id);
        return;
    }
    if (hub->self_publish || kind != COORD_EVENT_JOB)
        return;
    if (hub->sched)
        coord_sched_kick(hub->sched);
    for (struct agent_ix_ent *e = agent_ix_first(&hub->jobs, id); e; e = e->next) {
        if (strcmp(e->key, id) != 0)
            continue;
        struct agent_sess *s = e->s;
        struct agent_job *j = agent_sess_find(s, id);
        if (!j || j->state == AJ_CLAIMING || j->state == AJ_CANCELLING || j->finishing)
            continue;
        struct check_item *it = co_xcalloc(1, sizeof(*it));
        it->s = s;
        agent_sess_ref(s);
        co_strlcpy(it->job_id, id, sizeof(it->job_id));
        it->attempt = j->attempt;
        if (agent_hub_submit(hub, COORD_DB_READ, check_work, check_done, it) < 0) {
            agent_sess_unref(s);
            free(it);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* lws callback                                                                                */

/*
 * Check the path, the X-Agent-Token header when the agent sends one, and keep the hash of an
 * Authorization: Bearer key in @pss (looked up with the hello, on a database thread).
 */
static int
filter_connection(struct coord_agents *hub, struct lws *wsi, struct coord_agent_pss *pss)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (n <= 0 || strncmp(uri, AGENT_PATH, strlen(AGENT_PATH)) != 0 ||
        (uri[strlen(AGENT_PATH)] != '\0' && uri[strlen(AGENT_PATH)] != '?')) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return 1;
    }
    /* An address with too many failed authentications (REST or agents) is refused for now. */
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    if (pss)
        co_strlcpy(pss->peer, peer, sizeof(pss->peer));
    if (hub && hub->limits && coord_limits_auth_blocked(hub->limits, peer, co_mono_ms()) > 0) {
        co_warn("agent upgrade refused: too many failed authentications from %s", peer);
        lws_return_http_status(wsi, 429, NULL);
        return 1;
    }
    const char *want = hub ? hub->cfg->agent_token : NULL;
    char tok[PROTO_TOKEN_MAX + 1];
    int tl = lws_hdr_custom_length(wsi, AGENT_TOKEN_HEADER, (int)strlen(AGENT_TOKEN_HEADER));
    if (want && want[0] && tl > 0) {
        if (tl > PROTO_TOKEN_MAX ||
            lws_hdr_custom_copy(wsi, tok, sizeof(tok), AGENT_TOKEN_HEADER,
                                (int)strlen(AGENT_TOKEN_HEADER)) < 0 ||
            !co_consttime_eq(tok, strlen(tok), want, strlen(want))) {
            co_warn("agent upgrade refused: wrong X-Agent-Token");
            if (hub->limits)
                coord_limits_auth_failed(hub->limits, peer, co_mono_ms());
            lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
            return 1;
        }
        if (pss)
            pss->agent_token = true;
    }
    char hash[COORD_KEY_HASH_LEN + 1];
    if (coord_ws_bearer_hash(wsi, hash) < 0) {
        co_warn("agent upgrade refused: Authorization is not a bearer token");
        if (hub && hub->limits)
            coord_limits_auth_failed(hub->limits, peer, co_mono_ms());
        lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
        return 1;
    }
    if (pss)
        co_strlcpy(pss->key_hash, hash, sizeof(pss->key_hash));
    return 0;
}

static int
sess_writeable(struct agent_sess *s, struct lws *wsi)
{
    struct agent_frame *f = s->out_head;
    if (f) {
        s->out_head = f->next;
        if (!s->out_head)
            s->out_tail = NULL;
        s->out_frames--;
        s->out_bytes -= f->len;
        int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
        size_t want = f->len;
        free(f);
        if (n < (int)want) {
            co_warn("agent write failed worker=%s", s->worker_id);
            return -1;
        }
        if (s->out_head || s->close_code)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    return 0;
}

static void
sess_closed(struct agent_sess *s)
{
    struct coord_agents *hub = s->hub;
    s->wsi = NULL;
    hub_remove_sess(hub, s);
    agent_hub_changed(hub);
    size_t n_jobs = s->n_jobs;
    /*
     * Its jobs stay in the store: a reconnect keeps those the agent still runs and releases the
     * others (attempt + 1); the lease reaper releases them all if it does not come back.
     */
    while (s->n_jobs > 0)
        agent_sess_remove_job(s, s->jobs[s->n_jobs - 1].job_id);
    if (s->counted && hub->metrics)
        atomic_fetch_sub(&hub->metrics->agents_connected, 1);
    s->counted = false;
    co_info("agent disconnected worker=%s jobs=%zu peak_cores=%lld peak_ram_mb=%lld "
            "agent_peak_cores=%lld agent_peak_ram_mb=%lld",
            s->worker_id[0] ? s->worker_id : "-", n_jobs, (long long)s->peak_cores,
            (long long)s->peak_ram_mb, (long long)s->agent_peak_cores,
            (long long)s->agent_peak_ram_mb);
    bool welcomed =
        !s->refused && (s->state == AS_READY || s->state == AS_CLOSING || s->state == AS_HELLO_DB);
    s->state = AS_CLOSING;
    if (welcomed && s->worker_id[0] && !hub_find_worker(hub, s->worker_id, s) && !hub->dead) {
        struct offline_item *it = co_xcalloc(1, sizeof(*it));
        it->hub = hub;
        co_strlcpy(it->worker_id, s->worker_id, sizeof(it->worker_id));
        it->epoch = s->session_epoch;
        /* Not for a session closed for silence: its last contact is a lease ago. */
        it->stamp = co_mono_ms() - s->last_seen_ms < hub->lease_ms / 2;
        agent_hub_write(hub, it->worker_id, offline_work, offline_undo, offline_done, it);
    }
}

static int agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len);

/* Every agent callback is timed (the health's max_agent_loop_us): a stall of the service loop
 * caused by agent work shows there. */
int
coord_agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    int64_t t0 = co_mono_ns();
    struct lws_context *cx = lws_get_context(wsi);
    struct coord_server *srv = cx ? lws_context_user(cx) : NULL;
    int rc = agent_callback(wsi, reason, user, in, len);
    coord_metrics_agent_loop(srv ? &srv->metrics : NULL, t0);
    return rc;
}

static int
agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct coord_agent_pss *pss = user;
    struct lws_vhost *vh = lws_get_vhost(wsi);
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    struct coord_agents **slot = vh && proto ? lws_protocol_vh_priv_get(vh, proto) : NULL;
    struct coord_agents *hub = slot ? *slot : NULL;

    switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT: {
        struct lws_context *ctx = lws_get_context(wsi);
        struct coord_server *srv = lws_context_user(ctx);
        if (!srv || !srv->cfg || !srv->db) {
            co_error("agent protocol: no coordinator server as the context user");
            return -1;
        }
        slot = lws_protocol_vh_priv_zalloc(vh, proto, sizeof(*slot));
        if (!slot)
            return -1;
        *slot = hub_new(srv, ctx);
        return 0;
    }
    case LWS_CALLBACK_PROTOCOL_DESTROY:
        if (hub) {
            hub_destroy(hub);
            *slot = NULL;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return filter_connection(hub, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED: {
        if (!hub || hub->dead)
            return -1;
        struct agent_sess *s = co_xcalloc(1, sizeof(*s));
        s->hub = hub;
        s->wsi = wsi;
        s->refs = 1;
        s->serial = hub->next_serial++;
        s->state = AS_AWAIT_HELLO;
        s->last_seen_ms = co_mono_ms();
        s->agent_peak_cores = s->agent_peak_ram_mb = -1;
        s->upgrade_agent_token = pss->agent_token;
        co_strlcpy(s->peer, pss->peer, sizeof(s->peer));
        co_strlcpy(s->key_hash, pss->key_hash, sizeof(s->key_hash));
        co_buf_init(&s->rx);
        pss->s = s;
        hub_add_sess(hub, s);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        struct agent_sess *s = pss ? pss->s : NULL;
        if (!s || !s->wsi)
            return -1;
        if (s->rx.len + len > PROTO_MSG_MAX) {
            co_warn("agent message too large worker=%s", s->worker_id);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                             (unsigned char *)"message too large", 17);
            return -1;
        }
        co_buf_append(&s->rx, in, len);
        if (!lws_is_final_fragment(wsi))
            return 0;
        sess_on_message(s, s->rx.data ? s->rx.data : "", s->rx.len);
        co_buf_reset(&s->rx);
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        struct agent_sess *s = pss ? pss->s : NULL;
        if (!s)
            return -1;
        return sess_writeable(s, wsi);
    }
    case LWS_CALLBACK_CLOSED: {
        struct agent_sess *s = pss ? pss->s : NULL;
        if (!s)
            return 0;
        pss->s = NULL;
        sess_closed(s);
        agent_sess_unref(s);
        return 0;
    }
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
