/* coord_dash: the dashboard hub (see coord_dash.h). */
#include "coord_dash.h"

#include <inttypes.h>
#include <jansson.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_log.h"
#include "co_time.h"
#include "co_jsonw.h"
#include "coord_agent.h"
#include "coord_db.h"
#include "coord_events.h"
#include "coord_limits.h"
#include "coord_render.h"
#include "coord_sched.h"
#include "coord_ws_common.h"

#define TICK_US (250 * LWS_US_PER_MS)
#define COORD_DASH_WRITE_BYTES (128 * 1024)
#define COORD_DASH_FAN_BUDGET 0.05 /* share of the loop the fan-out may take before adapting */
#define COORD_DASH_BATCH_MAX_MS 5000
#define HEALTH_MIN_MS 1000
#define SNAP_JOBS 100
#define COORD_DASH_OVERLOAD_JOBS SNAP_JOBS /* more job events in one batch: resync instead */

enum dash_msg_kind {
    DM_EVENT = 0, /* text = head "seq": | tail */
    DM_SNAPSHOT,  /* as DM_EVENT, the session object goes after the number */
    DM_CONTROL,   /* no seq (auth.result, error) */
};

/* One shared message: refcounted, never changed once built. */
struct dash_msg {
    int refs;
    enum dash_msg_kind kind;
    bool health;  /* a health.updated (coalesced in queues) */
    size_t split; /* bytes before the seq number */
    size_t len;
    char text[];
};

/* A changed object waiting to be loaded. */
struct dash_key {
    enum coord_event_kind kind;
    char id[CO_ID_MAX + 1];
};

/* Result slice of one key in a batch's output buffer (len 0: nothing to send). */
struct dash_slice {
    size_t start, split, len;
    size_t pstart, plen;       /* the public view of the same event (plen 0: none) */
    char owner[CO_ID_MAX + 1]; /* the job's buyer, the credits' user */
};

struct dash_batch {
    struct coord_dash *d;
    struct dash_key *keys;
    size_t n;
    struct dash_slice *slices;
    struct co_buf out;
    int64_t timeout_ms;
    bool want_health;
    bool skip_jobs; /* overload: the job keys are numbered, not loaded or sent */
    bool reasons;   /* pending reasons changed: the newest pending jobs are sent again */
    size_t n_jobs;  /* job keys in the batch */
    bool health_ok;
    struct coord_health health;
};

struct dash_snap {
    struct coord_dash *d;
    uint64_t gen;
    int64_t timeout_ms;
    bool ok;
    bool health_ok;
    struct coord_health health;
    /* Each view rendered once: workers with and without owner_id, each job full and public. */
    struct co_buf workers_full, workers_pub;
    struct co_buf jobs_full, jobs_pub;
    size_t n_jobs;
    size_t *jf_end, *jp_end;       /* end offsets of each job's object in jobs_full/_pub */
    char (*buyers)[CO_ID_MAX + 1]; /* each job's buyer */
    char err[CO_ERR_MSG_MAX];
};

struct coord_dash {
    const struct coord_dash_env *env;
    struct lws_context *ctx;
    bool dead;
    int inflight; /* database items whose completion still refers to the hub */
    int ev_handle;
    bool agents_attached;
    lws_sorted_usec_list_t sul;
    lws_sorted_usec_list_t batch_sul; /* armed: the next batch waits for batch_ms */
    bool batch_timer;
    int64_t batch_ms;      /* minimum time between two batch starts (adapted) */
    int64_t batch_ms_base; /* DASHBOARD_BATCH_MS: the interval when fan-out is cheap */
    int64_t fan_ns;        /* loop time spent fanning out since fan_at_ms */
    int64_t fan_at_ms;
    uint64_t skipped_batches; /* batches whose job events were replaced by resyncs */
    int64_t overload_at_ms;   /* monotonic ms of the last skipped batch */
    int64_t batch_start_ms;   /* monotonic ms of the last batch start */

    struct coord_dash_sess *sessions;
    size_t n_sessions, n_admin;
    uint64_t sess_next_id;

    /* limits */
    size_t max_msgs, max_bytes;
    int64_t slow_close_ms;

    /* dirty set: keys + open-addressing index (slot = key index + 1) */
    struct dash_key *dirty;
    size_t n_dirty, cap_dirty;
    uint32_t *slots;
    size_t n_slots;
    bool batch_inflight;
    bool health_dirty;
    /* coord_sched_reasons_generation() last seen; a change sends the pending jobs again */
    uint64_t reasons_gen;
    bool reasons_dirty;
    int64_t health_at_ms; /* monotonic ms of the last health load */
    bool have_health;
    struct coord_health last_health;

    /* snapshot builds */
    uint64_t gen_next; /* generation the next build will have */
    bool snap_inflight;
    size_t snap_waiting;   /* sessions with a placeholder */
    int64_t snap_retry_ms; /* after a failed build: not before */
    int64_t snap_start_ms; /* monotonic ms of the last build start */

    /* write scratch (LWS_PRE headroom) */
    unsigned char *scratch;
    size_t scratch_cap;
};

/* ------------------------------------------------------------------ messages */

static struct dash_msg *
msg_new(enum dash_msg_kind kind, const char *text, size_t len, size_t split)
{
    struct dash_msg *m = co_xmalloc(sizeof(*m) + len + 1);
    m->refs = 1;
    m->kind = kind;
    m->health = false;
    m->split = split;
    m->len = len;
    memcpy(m->text, text, len);
    m->text[len] = '\0';
    return m;
}

static void
msg_unref(struct dash_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* ------------------------------------------------------------------ session queues */

static struct dash_qent *
q_at(struct coord_dash_sess *s, size_t i)
{
    return &s->q[(s->q_head + i) % s->q_cap];
}

static void
q_grow(struct coord_dash_sess *s)
{
    size_t ncap = s->q_cap ? s->q_cap * 2 : 8;
    struct dash_qent *nq = co_xreallocarray(NULL, ncap, sizeof(*nq));
    for (size_t i = 0; i < s->q_len; i++)
        nq[i] = *q_at(s, i);
    free(s->q);
    s->q = nq;
    s->q_cap = ncap;
    s->q_head = 0;
}

static void
q_push(struct coord_dash_sess *s, struct dash_msg *m, uint64_t seq)
{
    if (s->q_len == s->q_cap)
        q_grow(s);
    struct dash_qent *e = &s->q[(s->q_head + s->q_len) % s->q_cap];
    e->m = m;
    e->seq = seq;
    s->q_len++;
    if (m) {
        m->refs++;
        s->q_bytes += m->len;
    }
}

static void
sess_want_write(struct coord_dash_sess *s)
{
    if (s->want_write || !s->wsi)
        return;
    /* Nothing to write while the head waits for its snapshot (pings aside). */
    if (!s->ping_due && !s->close_code && (s->q_len == 0 || !q_at(s, 0)->m))
        return;
    s->want_write = true;
    lws_callback_on_writable(s->wsi);
}

static bool
sess_full(const struct coord_dash *d, const struct coord_dash_sess *s, size_t len)
{
    return s->q_len >= d->max_msgs || s->q_bytes + len > d->max_bytes;
}

/* Close @s soon: at its next WRITEABLE, or by timeout if it never becomes writeable. */
static void
sess_close_soon(struct coord_dash_sess *s, int code, const char *reason)
{
    if (s->close_code || !s->wsi)
        return;
    s->close_code = code;
    co_strlcpy(s->close_reason, reason, sizeof(s->close_reason));
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, 3);
    s->want_write = false;
    sess_want_write(s);
}

/*
 * Give @m (a state-carrying message) to @s with the session's next seq.  A full queue drops it
 * (the number is used anyway: the client sees the gap).  health.updated replaces an unsent one.
 */
static void
sess_event(struct coord_dash *d, struct coord_dash_sess *s, struct dash_msg *m)
{
    if (s->close_code)
        return;
    if (m->health && s->health_abs > s->q_popped) {
        struct dash_qent *e = q_at(s, (size_t)(s->health_abs - 1 - s->q_popped));
        if (e->m && e->m->health) {
            s->q_bytes -= e->m->len;
            msg_unref(e->m);
            e->m = m;
            m->refs++;
            s->q_bytes += m->len;
            return;
        }
    }
    s->seq++;
    if (sess_full(d, s, m->len)) {
        s->dropped++;
        if (!s->full_since_ms)
            s->full_since_ms = co_mono_ms();
        if (s->dropped > COORD_DASH_MAX_DROPS)
            sess_close_soon(s, COORD_DASH_CLOSE_SLOW, "slow consumer");
        return;
    }
    q_push(s, m, s->seq);
    if (m->health)
        s->health_abs = s->q_popped + s->q_len;
    sess_want_write(s);
}

/* A message without seq for one session (dropped silently when the queue is full). */
static void
sess_control(struct coord_dash *d, struct coord_dash_sess *s, const char *text, size_t len)
{
    if (s->close_code || sess_full(d, s, len))
        return;
    struct dash_msg *m = msg_new(DM_CONTROL, text, len, 0);
    q_push(s, m, 0);
    msg_unref(m);
    sess_want_write(s);
}

static void
broadcast(struct coord_dash *d, struct dash_msg *m)
{
    for (struct coord_dash_sess *s = d->sessions; s; s = s->next)
        sess_event(d, s, m);
}

/* The session sees @buyer_id's jobs in full (and their output): the rule of GET /jobs. */
static bool
sess_sees_full(const struct coord_dash_sess *s, const char *buyer_id)
{
    return coord_render_sees_full(&s->p, buyer_id);
}

/* Who owns which worker is shown to sessions with a credential only (GET /workers). */
static bool
sess_sees_owners(const struct coord_dash_sess *s)
{
    return coord_render_sees_owners(&s->p);
}

/* A user's credits are shown to that user and to admins only. */
static bool
sess_sees_credits(const struct coord_dash_sess *s, const char *user_id)
{
    return coord_auth_is_self_or_admin(&s->p, user_id);
}

/*
 * Start writing the members that follow `"seq":N` in an event: the writer is put inside an
 * object that already has a member, so each key comes out as `,"key":value`; the caller closes
 * the object with '}'.
 */
static void
members_after_seq(struct co_jsonw *w, struct co_buf *out)
{
    co_jsonw_init(w, out);
    w->depth = 1;
    w->need_comma[1] = true;
}

/* ------------------------------------------------------------------ hub lifetime */

static void hub_tick(lws_sorted_usec_list_t *sul);
static void on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq);
static void batch_start(struct coord_dash *d);
static void batch_soon(struct coord_dash *d);
static void snap_start(struct coord_dash *d);
enum auth_why { AUTH_UPGRADE, AUTH_MESSAGE, AUTH_RECHECK };
static void key_lookup_start(struct coord_dash *d, struct coord_dash_sess *s, const char *hash,
                             enum auth_why why);
static void sess_request_snapshot(struct coord_dash *d, struct coord_dash_sess *s);
static void recheck_keys(struct coord_dash *d, enum coord_event_kind kind, const char *id);
static void auth_result(struct coord_dash *d, struct coord_dash_sess *s, bool ok, const char *code,
                        const char *msg);
static int auth_rejected(struct coord_dash *d, struct coord_dash_sess *s, const char *msg);
static bool sess_set_principal(struct coord_dash *d, struct coord_dash_sess *s,
                               const struct coord_principal *p, const char *key_hash);
static void sess_view_changed(struct coord_dash *d, struct coord_dash_sess *s, bool changed);

struct coord_dash *
coord_dash_new(const struct coord_dash_env *env, struct lws_context *ctx)
{
    struct coord_dash *d = co_xcalloc(1, sizeof(*d));
    d->env = env;
    d->ctx = ctx;
    d->max_msgs = (size_t)env->cfg->dash_queue_messages;
    d->max_bytes = (size_t)env->cfg->dash_queue_bytes;
    d->slow_close_ms = env->cfg->dash_slow_close_ms;
    d->batch_ms = d->batch_ms_base = env->cfg->dash_batch_ms;
    d->fan_at_ms = co_mono_ms();
    d->gen_next = 1;
    d->ev_handle = coord_events_subscribe(env->events, on_event, d);
    lws_sul_schedule(ctx, 0, &d->sul, hub_tick, TICK_US);
    return d;
}

static void
hub_release(struct coord_dash *d)
{
    free(d->dirty);
    free(d->slots);
    free(d->scratch);
    free(d);
}

void
coord_dash_free(struct coord_dash *d)
{
    if (!d)
        return;
    coord_events_unsubscribe(d->env->events, d->ev_handle);
    lws_sul_cancel(&d->sul);
    lws_sul_cancel(&d->batch_sul);
    /* Sessions were closed by lws before PROTOCOL_DESTROY; forget any left. */
    d->sessions = NULL;
    d->dead = true;
    if (d->inflight == 0)
        hub_release(d);
}

/* A completion ran: returns true if the hub is gone (and frees it with the last one). */
static bool
hub_done(struct coord_dash *d)
{
    d->inflight--;
    if (!d->dead)
        return false;
    if (d->inflight == 0)
        hub_release(d);
    return true;
}

size_t
coord_dash_sessions(const struct coord_dash *d)
{
    return d->n_sessions;
}

/* ------------------------------------------------------------------ change feed -> batches */

static uint32_t
key_hash(enum coord_event_kind kind, const char *id)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void
dirty_rehash(struct coord_dash *d, size_t nslots)
{
    free(d->slots);
    d->slots = co_xcalloc(nslots, sizeof(*d->slots));
    d->n_slots = nslots;
    for (size_t i = 0; i < d->n_dirty; i++) {
        size_t j = key_hash(d->dirty[i].kind, d->dirty[i].id) & (nslots - 1);
        while (d->slots[j])
            j = (j + 1) & (nslots - 1);
        d->slots[j] = (uint32_t)(i + 1);
    }
}

static void
dirty_add(struct coord_dash *d, enum coord_event_kind kind, const char *id)
{
    if (strlen(id) > CO_ID_MAX)
        return;
    if ((d->n_dirty + 1) * 2 > d->n_slots)
        dirty_rehash(d, d->n_slots ? d->n_slots * 2 : 64);
    size_t mask = d->n_slots - 1;
    size_t j = key_hash(kind, id) & mask;
    while (d->slots[j]) {
        struct dash_key *k = &d->dirty[d->slots[j] - 1];
        if (k->kind == kind && strcmp(k->id, id) == 0)
            return;
        j = (j + 1) & mask;
    }
    if (d->n_dirty == d->cap_dirty) {
        d->cap_dirty = d->cap_dirty ? d->cap_dirty * 2 : 64;
        d->dirty = co_xreallocarray(d->dirty, d->cap_dirty, sizeof(*d->dirty));
    }
    d->dirty[d->n_dirty].kind = kind;
    co_strlcpy(d->dirty[d->n_dirty].id, id, sizeof(d->dirty[0].id));
    d->n_dirty++;
    d->slots[j] = (uint32_t)d->n_dirty;
}

static void
on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq)
{
    struct coord_dash *d = ud;
    (void)seq;
    /* Nobody watching: nothing to load (a new session starts from a snapshot anyway). */
    if (d->n_sessions == 0 || !id || !*id)
        return;
    /* Key and user changes end or change the sessions of that key or user. */
    if (kind == COORD_EVENT_KEY || kind == COORD_EVENT_USER) {
        recheck_keys(d, kind, id);
        return;
    }
    if (kind != COORD_EVENT_JOB && kind != COORD_EVENT_WORKER && kind != COORD_EVENT_CREDITS)
        return;
    dirty_add(d, kind, id);
    d->health_dirty = true;
    batch_soon(d);
}

static void
batch_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct coord_dash *d = lws_container_of(sul, struct coord_dash, batch_sul);
    d->batch_timer = false;
    batch_start(d);
}

/*
 * Start a batch now, or when batch_ms have passed since the last one started: changes that
 * arrive meanwhile coalesce (a job that went through several states is loaded once).
 */
static void
batch_soon(struct coord_dash *d)
{
    if (d->batch_inflight || d->batch_timer || d->dead)
        return;
    int64_t wait = d->batch_start_ms + d->batch_ms - co_mono_ms();
    if (wait <= 0) {
        batch_start(d);
        return;
    }
    d->batch_timer = true;
    lws_sul_schedule(d->ctx, 0, &d->batch_sul, batch_timer_cb, wait * LWS_US_PER_MS);
}

/*
 * Pending reasons changed (agents came or went, a buyer reached or left its max_running_jobs):
 * the newest pending jobs join the batch, so that lists and job pages show the reason of now.
 * The snapshot holds the SNAP_JOBS newest jobs, so those pending among them are all covered.
 */
static void
batch_add_pending(struct coord_store *store, struct dash_batch *b)
{
    struct coord_job_filter f = {.status = COORD_JOB_PENDING, .limit = SNAP_JOBS};
    struct coord_job_list l;
    co_err err = CO_ERR_INIT;
    if (coord_store_job_list(store, &f, &l, &err) < 0) {
        co_warn("dashboard: cannot list pending jobs error=\"%s\"", err.msg);
        return;
    }
    b->keys = co_xreallocarray(b->keys, b->n + l.len + 1, sizeof(*b->keys));
    for (size_t k = 0; k < l.len; k++) {
        bool dup = false;
        for (size_t i = 0; i < b->n && !dup; i++)
            dup =
                b->keys[i].kind == COORD_EVENT_JOB && strcmp(b->keys[i].id, l.items[k].job_id) == 0;
        if (dup)
            continue;
        b->keys[b->n].kind = COORD_EVENT_JOB;
        co_strlcpy(b->keys[b->n].id, l.items[k].job_id, sizeof(b->keys[0].id));
        b->n++;
        b->n_jobs++;
    }
    coord_job_list_release(&l);
}

/* Database thread: load and render every key of the batch. */
static void
batch_work(struct coord_store *store, void *arg)
{
    struct dash_batch *b = arg;
    if (b->reasons && !b->skip_jobs)
        batch_add_pending(store, b);
    b->slices = co_xcalloc(b->n ? b->n : 1, sizeof(*b->slices));
    for (size_t i = 0; i < b->n; i++) {
        const struct dash_key *k = &b->keys[i];
        struct dash_slice *sl = &b->slices[i];
        co_err err = CO_ERR_INIT;
        struct co_jsonw w;
        size_t start = b->out.len;
        sl->start = start;
        switch (k->kind) {
        case COORD_EVENT_JOB: {
            if (b->skip_jobs)
                continue;
            struct coord_job j;
            memset(&j, 0, sizeof(j));
            if (coord_store_job_get(store, k->id, false, &j, &err) < 0) {
                if (err.code != CO_E_NOTFOUND)
                    co_warn("dashboard: cannot load job '%s' error=\"%s\"", k->id, err.msg);
                coord_job_release(&j);
                continue;
            }
            co_buf_puts(&b->out, "{\"type\":\"job.updated\",\"seq\":");
            sl->split = b->out.len - start;
            members_after_seq(&w, &b->out);
            co_jsonw_key(&w, "job");
            coord_render_job(&w, &j, false, 0);
            co_buf_putc(&b->out, '}');
            /* The public view: the same envelope, so the same split. */
            sl->pstart = b->out.len;
            co_buf_puts(&b->out, "{\"type\":\"job.updated\",\"seq\":");
            members_after_seq(&w, &b->out);
            co_jsonw_key(&w, "job");
            coord_render_job_public(&w, &j);
            co_buf_putc(&b->out, '}');
            sl->plen = b->out.len - sl->pstart;
            co_strlcpy(sl->owner, j.buyer_id, sizeof(sl->owner));
            coord_job_release(&j);
            sl->len = sl->pstart - start;
            continue;
        }
        case COORD_EVENT_WORKER: {
            struct coord_worker wk;
            if (coord_store_worker_get(store, k->id, &wk, &err) < 0) {
                if (err.code != CO_E_NOTFOUND) {
                    co_warn("dashboard: cannot load worker '%s' error=\"%s\"", k->id, err.msg);
                    continue;
                }
                co_buf_puts(&b->out, "{\"type\":\"worker.removed\",\"seq\":");
                sl->split = b->out.len - start;
                members_after_seq(&w, &b->out);
                co_jsonw_kstr(&w, "worker_id", k->id);
                co_buf_putc(&b->out, '}');
                break;
            }
            co_buf_puts(&b->out, "{\"type\":\"worker.updated\",\"seq\":");
            sl->split = b->out.len - start;
            members_after_seq(&w, &b->out);
            co_jsonw_key(&w, "worker");
            coord_render_worker(&w, &wk, b->timeout_ms, true);
            co_buf_putc(&b->out, '}');
            sl->pstart = b->out.len;
            co_buf_puts(&b->out, "{\"type\":\"worker.updated\",\"seq\":");
            members_after_seq(&w, &b->out);
            co_jsonw_key(&w, "worker");
            coord_render_worker(&w, &wk, b->timeout_ms, false);
            co_buf_putc(&b->out, '}');
            sl->plen = b->out.len - sl->pstart;
            sl->len = sl->pstart - start;
            continue;
        }
        case COORD_EVENT_CREDITS: {
            struct coord_user u;
            if (coord_store_user_get(store, k->id, &u, &err) < 0) {
                if (err.code != CO_E_NOTFOUND)
                    co_warn("dashboard: cannot load user '%s' error=\"%s\"", k->id, err.msg);
                continue;
            }
            co_buf_puts(&b->out, "{\"type\":\"credits.updated\",\"seq\":");
            sl->split = b->out.len - start;
            members_after_seq(&w, &b->out);
            coord_render_credits(&w, &u);
            co_buf_putc(&b->out, '}');
            co_strlcpy(sl->owner, u.user_id, sizeof(sl->owner));
            break;
        }
        default:
            continue;
        }
        sl->len = b->out.len - start;
    }
    if (b->want_health) {
        co_err err = CO_ERR_INIT;
        memset(&b->health, 0, sizeof(b->health));
        b->health_ok =
            coord_store_ping(store, &err) == 0 && coord_store_health(store, &b->health, &err) == 0;
    }
}

/* Render the health body (GET /api/v1/health) on the loop: it reads the node's counters. */
static void
render_health(struct coord_dash *d, const struct coord_health *h, bool ok, struct co_buf *out)
{
    (void)coord_render_health(out, d->env->node, ok ? h : NULL, ok);
}

static void
batch_done(void *arg)
{
    struct dash_batch *b = arg;
    struct coord_dash *d = b->d;
    int64_t t0 = co_mono_ns();
    if (!hub_done(d)) {
        d->batch_inflight = false;
        /*
         * Overload: more changed jobs than a snapshot holds.  Their events are numbered but not
         * sent (DASHBOARD.md's drop rule, for every session at once): each client sees the gap
         * and resyncs, and one shared snapshot of the newest jobs costs less than the events.
         */
        bool skip_jobs = b->skip_jobs;
        if (skip_jobs) {
            for (struct coord_dash_sess *s = d->sessions; s; s = s->next)
                s->seq += b->n_jobs;
            d->skipped_batches++;
            /*
             * Each skipped batch costs every session a snapshot: the interval does not come
             * down while the overload lasts (fan_adapt).
             */
            d->overload_at_ms = co_mono_ms();
        }
        for (size_t i = 0; i < b->n; i++) {
            const struct dash_slice *sl = &b->slices[i];
            if (!sl->len || (skip_jobs && b->keys[i].kind == COORD_EVENT_JOB))
                continue;
            /* One text per view class, shared by the sessions of that class. */
            enum coord_event_kind kind = b->keys[i].kind;
            struct dash_msg *m = msg_new(DM_EVENT, b->out.data + sl->start, sl->len, sl->split);
            struct dash_msg *pub =
                sl->plen ? msg_new(DM_EVENT, b->out.data + sl->pstart, sl->plen, sl->split) : m;
            for (struct coord_dash_sess *s = d->sessions; s; s = s->next) {
                if (kind == COORD_EVENT_CREDITS) {
                    if (sess_sees_credits(s, sl->owner))
                        sess_event(d, s, m);
                } else if (kind == COORD_EVENT_JOB) {
                    sess_event(d, s, sess_sees_full(s, sl->owner) ? m : pub);
                } else {
                    sess_event(d, s, sess_sees_owners(s) ? m : pub);
                }
            }
            if (pub != m)
                msg_unref(pub);
            msg_unref(m);
        }
        bool changed =
            b->want_health && b->health_ok &&
            (!d->have_health || memcmp(&b->health, &d->last_health, sizeof(b->health)) != 0);
        if (b->want_health)
            d->health_at_ms = co_mono_ms();
        if (changed) {
            d->last_health = b->health;
            d->have_health = true;
        }
        /* After skipped events a numbered message must follow, or the gap stays unseen. */
        if ((changed || skip_jobs) && d->have_health) {
            struct co_buf t = CO_BUF_INIT;
            co_buf_puts(&t, "{\"type\":\"health.updated\",\"seq\":");
            size_t split = t.len;
            co_buf_puts(&t, ",\"health\":");
            render_health(d, &d->last_health, true, &t);
            co_buf_putc(&t, '}');
            struct dash_msg *m = msg_new(DM_EVENT, t.data, t.len, split);
            m->health = !skip_jobs; /* a replaced health message would keep its old number */
            broadcast(d, m);
            msg_unref(m);
            co_buf_release(&t);
        }
        if (d->n_dirty)
            batch_soon(d);
        d->fan_ns += co_mono_ns() - t0;
    }
    free(b->keys);
    free(b->slices);
    co_buf_release(&b->out);
    free(b);
}

static void
batch_start(struct coord_dash *d)
{
    if (d->batch_inflight || d->dead)
        return;
    bool want_health = d->health_dirty && co_mono_ms() - d->health_at_ms >= HEALTH_MIN_MS;
    if (!d->n_dirty && !want_health && !d->reasons_dirty)
        return;
    struct dash_batch *b = co_xcalloc(1, sizeof(*b));
    b->d = d;
    b->keys = d->dirty;
    b->n = d->n_dirty;
    b->timeout_ms = d->env->cfg->worker_timeout_seconds * 1000;
    b->want_health = want_health;
    for (size_t i = 0; i < b->n; i++)
        b->n_jobs += b->keys[i].kind == COORD_EVENT_JOB;
    b->skip_jobs = b->n_jobs > COORD_DASH_OVERLOAD_JOBS;
    b->reasons = d->reasons_dirty;
    co_buf_init(&b->out);
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(d->env->db, COORD_DB_READ, batch_work, batch_done, b, &err) < 0) {
        /* Executor full: keep the keys for the next tick. */
        co_debug("dashboard: batch postponed error=\"%s\"", err.msg);
        free(b);
        return;
    }
    if (want_health)
        d->health_dirty = false;
    d->reasons_dirty = false;
    d->dirty = NULL;
    d->n_dirty = d->cap_dirty = 0;
    if (d->slots)
        memset(d->slots, 0, d->n_slots * sizeof(*d->slots));
    d->batch_inflight = true;
    d->batch_start_ms = co_mono_ms();
    d->inflight++;
}

/* ------------------------------------------------------------------ job output */

static void
on_output(void *ud, const char *job_id, const char *buyer_id, int attempt, int stream,
          uint64_t offset, const char *data, size_t len)
{
    struct coord_dash *d = ud;
    if (d->dead || len == 0)
        return;
    /* Output goes to admins and to the job's buyer only. */
    bool any = false;
    for (struct coord_dash_sess *s = d->sessions; s && !any; s = s->next)
        any = sess_sees_full(s, buyer_id);
    if (!any)
        return;
    struct co_buf t = CO_BUF_INIT;
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos;
        if (n > COORD_DASH_OUTPUT_CHUNK) {
            n = COORD_DASH_OUTPUT_CHUNK;
            /* Cut before a UTF-8 continuation byte run where that is possible. */
            size_t back = 0;
            while (back < 3 && n - back > 0 && ((unsigned char)data[pos + n - back] & 0xc0) == 0x80)
                back++;
            if (back < 3 || ((unsigned char)data[pos + n - back] & 0xc0) != 0x80)
                n -= back;
        }
        co_buf_reset(&t);
        co_buf_puts(&t, "{\"type\":\"job.output\",\"seq\":");
        size_t split = t.len;
        struct co_jsonw w;
        members_after_seq(&w, &t);
        co_jsonw_kstr(&w, "job_id", job_id);
        co_jsonw_kint(&w, "attempt", attempt);
        co_jsonw_kstr(&w, "stream", stream == 2 ? "stderr" : "stdout");
        co_jsonw_kint(&w, "offset", (int64_t)(offset + pos));
        co_jsonw_kint(&w, "bytes", (int64_t)n);
        co_jsonw_key(&w, "data");
        co_jsonw_strn(&w, data + pos, n);
        co_buf_putc(&t, '}');
        struct dash_msg *m = msg_new(DM_EVENT, t.data, t.len, split);
        for (struct coord_dash_sess *s = d->sessions; s; s = s->next) {
            if (sess_sees_full(s, buyer_id))
                sess_event(d, s, m);
        }
        msg_unref(m);
        pos += n;
    }
    co_buf_release(&t);
}

void
coord_dash_attach_agents(struct coord_dash *d, struct lws_vhost *vhost)
{
    if (d->agents_attached || !vhost)
        return;
    struct coord_agents *hub = coord_agents_of_vhost(vhost);
    if (!hub)
        return;
    coord_agents_output_subscribe(hub, on_output, d);
    d->agents_attached = true;
}

/* ------------------------------------------------------------------ snapshots */

static void
snap_free(struct dash_snap *sn)
{
    co_buf_release(&sn->workers_full);
    co_buf_release(&sn->workers_pub);
    co_buf_release(&sn->jobs_full);
    co_buf_release(&sn->jobs_pub);
    free(sn->jf_end);
    free(sn->jp_end);
    free(sn->buyers);
    free(sn);
}

static void
snap_work(struct coord_store *store, void *arg)
{
    struct dash_snap *sn = arg;
    co_err err = CO_ERR_INIT;
    struct coord_job_filter f = {.status = -1, .limit = SNAP_JOBS};
    struct coord_job_list jl = {0};
    struct coord_worker_list wl = {0};
    memset(&sn->health, 0, sizeof(sn->health));
    sn->health_ok = coord_store_health(store, &sn->health, &err) == 0;
    if (!sn->health_ok || coord_store_worker_list(store, &wl, &err) < 0 ||
        coord_store_job_list(store, &f, &jl, &err) < 0) {
        co_strlcpy(sn->err, err.msg, sizeof(sn->err));
        goto out;
    }
    /* Every view rendered once (DASHBOARD.md "Views"); sessions get them joined. */
    struct co_jsonw w;
    co_buf_grow(&sn->workers_full, wl.len * 300 + 16);
    co_buf_grow(&sn->workers_pub, wl.len * 300 + 16);
    for (int view = 0; view < 2; view++) {
        co_jsonw_init(&w, view ? &sn->workers_pub : &sn->workers_full);
        co_jsonw_arr_begin(&w);
        for (size_t i = 0; i < wl.len; i++)
            coord_render_worker(&w, &wl.items[i], sn->timeout_ms, view == 0);
        co_jsonw_arr_end(&w);
    }
    co_buf_grow(&sn->jobs_full, jl.len * 700 + 16);
    co_buf_grow(&sn->jobs_pub, jl.len * 300 + 16);
    sn->n_jobs = jl.len;
    sn->jf_end = co_xcalloc(jl.len + 1, sizeof(*sn->jf_end));
    sn->jp_end = co_xcalloc(jl.len + 1, sizeof(*sn->jp_end));
    sn->buyers = co_xcalloc(jl.len + 1, sizeof(*sn->buyers));
    for (size_t i = 0; i < jl.len; i++) {
        co_jsonw_init(&w, &sn->jobs_full);
        coord_render_job(&w, &jl.items[i], false, 0);
        sn->jf_end[i] = sn->jobs_full.len;
        co_jsonw_init(&w, &sn->jobs_pub);
        coord_render_job_public(&w, &jl.items[i]);
        sn->jp_end[i] = sn->jobs_pub.len;
        co_strlcpy(sn->buyers[i], jl.items[i].buyer_id, sizeof(sn->buyers[i]));
    }
    sn->ok = true;
out:
    coord_job_list_release(&jl);
    coord_worker_list_release(&wl);
}

/*
 * The jobs array for @s: each job in full when the session sees its buyer's jobs in full, else
 * in the public view (a copy of the rendered objects, no re-encoding).  @s NULL: @full for all.
 */
static void
snap_jobs(const struct dash_snap *sn, const struct coord_dash_sess *s, bool full,
          struct co_buf *out)
{
    co_buf_putc(out, '[');
    for (size_t i = 0; i < sn->n_jobs; i++) {
        bool f = s ? sess_sees_full(s, sn->buyers[i]) : full;
        const struct co_buf *b = f ? &sn->jobs_full : &sn->jobs_pub;
        const size_t *end = f ? sn->jf_end : sn->jp_end;
        size_t from = i ? end[i - 1] : 0;
        if (i)
            co_buf_putc(out, ',');
        co_buf_append(out, b->data + from, end[i] - from);
    }
    co_buf_putc(out, ']');
}

static void pricing(struct coord_dash *d, struct co_buf *out);

/* One snapshot message for the view of @s (NULL: @full for every job, the admin or public view). */
static struct dash_msg *
snap_msg(struct coord_dash *d, const struct dash_snap *sn, const struct coord_dash_sess *s,
         bool full)
{
    bool owners = s ? sess_sees_owners(s) : full;
    const struct co_buf *wk = owners ? &sn->workers_full : &sn->workers_pub;
    struct co_buf t = CO_BUF_INIT;
    co_buf_grow(&t, wk->len + sn->jobs_full.len + 4096);
    co_buf_puts(&t, "{\"type\":\"snapshot\",\"seq\":");
    size_t split = t.len;
    char iso[CO_ISO_LEN];
    co_time_iso(co_wall_ms(), iso);
    co_buf_printf(&t, ",\"server_time\":\"%s\",\"health\":", iso);
    render_health(d, &sn->health, sn->health_ok, &t);
    co_buf_puts(&t, ",\"workers\":");
    co_buf_append(&t, wk->data ? wk->data : "[]", wk->data ? wk->len : 2);
    co_buf_puts(&t, ",\"jobs\":");
    snap_jobs(sn, s, full, &t);
    pricing(d, &t);
    co_buf_putc(&t, '}');
    struct dash_msg *m = msg_new(DM_SNAPSHOT, t.data, t.len, split);
    co_buf_release(&t);
    return m;
}

static void
pricing(struct coord_dash *d, struct co_buf *out)
{
    struct co_jsonw w;
    co_buf_puts(out, ",\"pricing\":");
    co_jsonw_init(&w, out);
    coord_render_pricing(&w, d->env->cfg);
}

static void
snap_done(void *arg)
{
    struct dash_snap *sn = arg;
    struct coord_dash *d = sn->d;
    if (!hub_done(d)) {
        d->snap_inflight = false;
        if (!sn->ok) {
            co_warn("dashboard: snapshot failed, retrying error=\"%s\"", sn->err);
            d->snap_retry_ms = co_mono_ms() + 1000;
        } else {
            /* Shared texts for the admin and the public views; a buyer's own view per session. */
            struct dash_msg *m_admin = NULL, *m_pub = NULL;
            if (sn->health_ok && !d->have_health) {
                d->last_health = sn->health;
                d->have_health = true;
            }
            for (struct coord_dash_sess *s = d->sessions; s; s = s->next) {
                if (!s->snap_wait || s->snap_gen > sn->gen)
                    continue;
                struct dash_msg *m;
                if (s->admin) {
                    if (!m_admin)
                        m_admin = snap_msg(d, sn, NULL, true);
                    m = m_admin;
                } else if (s->p.cred == COORD_CRED_NONE) {
                    if (!m_pub)
                        m_pub = snap_msg(d, sn, NULL, false);
                    m = m_pub;
                } else {
                    m = snap_msg(d, sn, s, false);
                }
                /* Fill the placeholders (two after a change of view: both in the new one). */
                for (size_t i = 0; i < s->q_len; i++) {
                    struct dash_qent *e = q_at(s, i);
                    if (!e->m) {
                        e->m = m;
                        m->refs++;
                        s->q_bytes += m->len;
                    }
                }
                if (m != m_admin && m != m_pub)
                    msg_unref(m);
                s->snap_wait = false;
                d->snap_waiting--;
                sess_want_write(s);
            }
            if (m_admin)
                msg_unref(m_admin);
            if (m_pub)
                msg_unref(m_pub);
        }
        if (d->snap_waiting)
            snap_start(d);
    }
    snap_free(sn);
}

static void
snap_start(struct coord_dash *d)
{
    int64_t now = co_mono_ms();
    if (d->snap_inflight || d->dead || !d->snap_waiting || now < d->snap_retry_ms)
        return;
    /*
     * Snapshots follow the batch interval too: under load, sessions that resync within one
     * interval share one build (hub_tick starts the postponed one).
     */
    if (now - d->snap_start_ms < d->batch_ms)
        return;
    d->snap_start_ms = now;
    struct dash_snap *sn = co_xcalloc(1, sizeof(*sn));
    sn->d = d;
    sn->gen = d->gen_next;
    sn->timeout_ms = d->env->cfg->worker_timeout_seconds * 1000;
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(d->env->db, COORD_DB_READ, snap_work, snap_done, sn, &err) < 0) {
        co_debug("dashboard: snapshot postponed error=\"%s\"", err.msg);
        snap_free(sn);
        d->snap_retry_ms = co_mono_ms() + 200;
        return;
    }
    d->gen_next++;
    d->snap_inflight = true;
    d->inflight++;
}

/* Queue a placeholder for a snapshot of the next build (no-op if one is outstanding). */
static void
sess_request_snapshot(struct coord_dash *d, struct coord_dash_sess *s)
{
    if (s->snap_wait)
        return;
    for (size_t i = 0; i < s->q_len; i++) {
        struct dash_qent *e = q_at(s, i);
        if (e->m && e->m->kind == DM_SNAPSHOT)
            return; /* one is queued and not yet sent */
    }
    q_push(s, NULL, 0);
    /* The snapshot reflects everything up to the last number assigned before this request. */
    q_at(s, s->q_len - 1)->seq = s->seq;
    s->snap_wait = true;
    s->snap_gen = d->gen_next;
    d->snap_waiting++;
    snap_start(d);
}

/* ------------------------------------------------------------------ timer */

/*
 * Keep the fan-out within its share of the service loop: when writing to the dashboards took
 * more than COORD_DASH_FAN_BUDGET of the last second, batches are made rarer (each session then
 * gets fewer, larger writes, and a job that changes several times within one batch is sent
 * once); when it is cheap again, the interval comes back down.  With few dashboards the interval
 * stays at DASHBOARD_BATCH_MS.
 */
static void
fan_adapt(struct coord_dash *d, int64_t now)
{
    int64_t span = now - d->fan_at_ms;
    if (span < 500)
        return;
    double frac = (double)d->fan_ns / ((double)span * 1e6);
    int64_t was = d->batch_ms;
    if (frac > COORD_DASH_FAN_BUDGET) {
        /* Roughly in proportion: the cost of a batch hardly grows with its interval. */
        for (double f = frac; f > COORD_DASH_FAN_BUDGET && d->batch_ms < COORD_DASH_BATCH_MAX_MS;
             f /= 2)
            d->batch_ms = d->batch_ms * 2 < COORD_DASH_BATCH_MAX_MS ? d->batch_ms * 2
                                                                    : COORD_DASH_BATCH_MAX_MS;
    } else if (frac < COORD_DASH_FAN_BUDGET / 4 && d->batch_ms > d->batch_ms_base &&
               now - d->overload_at_ms > 2 * COORD_DASH_BATCH_MAX_MS) {
        d->batch_ms = d->batch_ms / 2 > d->batch_ms_base ? d->batch_ms / 2 : d->batch_ms_base;
    }
    if (d->batch_ms != was)
        co_debug("dashboard: fan-out took %.1f%% of the loop, batch interval %" PRId64
                 " ms sessions=%zu",
                 frac * 100, d->batch_ms, d->n_sessions);
    d->fan_ns = 0;
    d->fan_at_ms = now;
}

static void
hub_tick(lws_sorted_usec_list_t *sul)
{
    struct coord_dash *d = lws_container_of(sul, struct coord_dash, sul);
    int64_t now = co_mono_ms();
    fan_adapt(d, now);
    uint64_t gen = coord_sched_reasons_generation();
    if (gen != d->reasons_gen) {
        d->reasons_gen = gen;
        d->reasons_dirty = d->n_sessions > 0;
    }
    if (d->n_dirty || d->health_dirty || d->reasons_dirty)
        batch_soon(d);
    if (d->snap_waiting)
        snap_start(d);
    for (struct coord_dash_sess *s = d->sessions; s; s = s->next) {
        if (s->close_code)
            continue;
        if (s->full_since_ms && now - s->full_since_ms >= d->slow_close_ms) {
            co_info("dashboard: closing a slow consumer dropped=%" PRIu64, s->dropped);
            sess_close_soon(s, COORD_DASH_CLOSE_SLOW, "slow consumer");
            continue;
        }
        if (now - s->last_pong_ms >= COORD_DASH_PONG_TIMEOUT_MS) {
            /* Pings go out every COORD_DASH_PING_MS: no pong for a whole timeout. */
            sess_close_soon(s, LWS_CLOSE_STATUS_GOINGAWAY, "ping timeout");
            continue;
        }
        if (now - s->last_ping_ms >= COORD_DASH_PING_MS && !s->ping_due) {
            s->ping_due = true;
            s->want_write = false;
            sess_want_write(s);
        }
    }
    lws_sul_schedule(d->ctx, 0, &d->sul, hub_tick, TICK_US);
}

/* ------------------------------------------------------------------ user keys */

/*
 * A key lookup of one session (database thread).  The completion finds the session by its id:
 * it may have closed meanwhile, and a newer auth message makes an older lookup moot (auth_no).
 */
struct dash_auth {
    struct coord_dash *d;
    uint64_t sess_id, auth_no;
    enum auth_why why;
    char hash[COORD_KEY_HASH_LEN + 1];
    int rc; /* coord_auth_lookup: 1 usable, 0 not, -1 store error */
    struct coord_auth_entry e;
    co_err err;
};

static void
key_lookup_work(struct coord_store *store, void *arg)
{
    struct dash_auth *a = arg;
    a->rc = coord_auth_lookup(store, a->hash, &a->e, &a->err);
}

static struct coord_dash_sess *
sess_by_id(struct coord_dash *d, uint64_t id)
{
    for (struct coord_dash_sess *s = d->sessions; s; s = s->next) {
        if (s->id == id)
            return s;
    }
    return NULL;
}

static void
key_lookup_done(void *arg)
{
    struct dash_auth *a = arg;
    struct coord_dash *d = a->d;
    if (hub_done(d))
        goto out;
    struct coord_dash_sess *s = sess_by_id(d, a->sess_id);
    if (!s)
        goto out;
    s->auth_inflight--;
    if (s->auth_no != a->auth_no || s->close_code)
        goto out;
    if (a->why == AUTH_RECHECK) {
        if (a->rc == 0) {
            /* Revoked key or disabled user: the session ends (the client reconnects anonymous). */
            co_info("dashboard session closed: its key was revoked or its user disabled user=%s "
                    "key=%s",
                    s->p.user_id, s->p.key_id);
            sess_close_soon(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "key revoked");
        } else if (a->rc > 0) {
            /* Other rights: a new snapshot. */
            sess_view_changed(d, s, sess_set_principal(d, s, &a->e.p, a->hash));
        } else {
            co_warn("dashboard: cannot check a session's key again error=\"%s\"", a->err.msg);
        }
        goto out;
    }
    bool first = s->auth_first;
    if (a->rc > 0) {
        bool changed = sess_set_principal(d, s, &a->e.p, a->hash);
        auth_result(d, s, true, NULL, NULL);
        sess_view_changed(d, s, changed);
        /* Revoked or changed while this lookup ran: look again. */
        if (s->auth_stale && !s->auth_inflight) {
            s->auth_stale = false;
            key_lookup_start(d, s, a->hash, AUTH_RECHECK);
        }
    } else if (a->rc == 0) {
        if (auth_rejected(d, s, "key rejected") < 0)
            sess_close_soon(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many rejected tokens");
    } else {
        co_warn("dashboard: cannot check a key error=\"%s\"", a->err.msg);
        auth_result(d, s, false, "unavailable", "the key cannot be checked now");
    }
    if (first) {
        s->auth_first = false;
        sess_request_snapshot(d, s);
    }
out:
    explicit_bzero(a->hash, sizeof(a->hash));
    free(a);
}

static void
key_lookup_start(struct coord_dash *d, struct coord_dash_sess *s, const char *hash,
                 enum auth_why why)
{
    struct dash_auth *a = co_xcalloc(1, sizeof(*a));
    a->d = d;
    a->sess_id = s->id;
    if (why != AUTH_RECHECK)
        s->auth_no++;
    a->auth_no = s->auth_no;
    a->why = why;
    co_strlcpy(a->hash, hash, sizeof(a->hash));
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(d->env->db, COORD_DB_READ, key_lookup_work, key_lookup_done, a, &err) < 0) {
        co_warn("dashboard: cannot check a key now error=\"%s\"", err.msg);
        free(a);
        if (why == AUTH_RECHECK) {
            /* Not knowing whether the key still holds: end the session rather than keep it. */
            sess_close_soon(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "key revoked");
            return;
        }
        auth_result(d, s, false, "unavailable", "the key cannot be checked now");
        if (s->auth_first) {
            s->auth_first = false;
            sess_request_snapshot(d, s);
        }
        return;
    }
    s->auth_inflight++;
    d->inflight++;
}

/*
 * A key was revoked (@id: its key_id) or a user changed (@id: its user_id): the sessions of that
 * key or user look their key up again; those whose key no longer holds are closed.
 */
static void
recheck_keys(struct coord_dash *d, enum coord_event_kind kind, const char *id)
{
    for (struct coord_dash_sess *s = d->sessions; s; s = s->next) {
        if (s->close_code)
            continue;
        if (s->auth_inflight)
            s->auth_stale = true;
        if (s->p.cred != COORD_CRED_KEY || !s->key_hash[0])
            continue;
        bool hit =
            kind == COORD_EVENT_KEY ? strcmp(s->p.key_id, id) == 0 : strcmp(s->p.user_id, id) == 0;
        if (hit)
            key_lookup_start(d, s, s->key_hash, AUTH_RECHECK);
    }
}

/* ------------------------------------------------------------------ sessions */

void
coord_dash_open(struct coord_dash *d, struct coord_dash_sess *s, struct lws *wsi, bool admin,
                const char *key_hash, const char *peer)
{
    s->wsi = wsi;
    s->admin = admin;
    memset(&s->p, 0, sizeof(s->p));
    if (admin)
        coord_auth_principal_admin(&s->p);
    s->id = ++d->sess_next_id;
    co_strlcpy(s->peer, peer ? peer : "", sizeof(s->peer));
    s->open = true;
    s->last_pong_ms = s->last_ping_ms = co_mono_ms();
    s->prev = NULL;
    s->next = d->sessions;
    if (d->sessions)
        d->sessions->prev = s;
    d->sessions = s;
    d->n_sessions++;
    if (admin)
        d->n_admin++;
    /* A key on the upgrade: the first snapshot is the view of its user, once it is known. */
    if (!admin && key_hash && key_hash[0]) {
        s->auth_first = true;
        key_lookup_start(d, s, key_hash, AUTH_UPGRADE);
        return;
    }
    sess_request_snapshot(d, s);
}

void
coord_dash_close(struct coord_dash *d, struct coord_dash_sess *s)
{
    if (s->open && d && !d->dead) {
        if (s->prev)
            s->prev->next = s->next;
        else
            d->sessions = s->next;
        if (s->next)
            s->next->prev = s->prev;
        d->n_sessions--;
        if (s->admin)
            d->n_admin--;
        if (s->snap_wait)
            d->snap_waiting--;
    }
    s->open = false;
    for (size_t i = 0; i < s->q_len; i++)
        msg_unref(q_at(s, i)->m);
    free(s->q);
    s->q = NULL;
    s->q_len = s->q_cap = s->q_head = 0;
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
    s->wsi = NULL;
}

/* Make the scratch buffer hold @need bytes, keeping its first @keep bytes. */
static unsigned char *
scratch(struct coord_dash *d, size_t need, size_t keep)
{
    if (need > d->scratch_cap) {
        size_t cap = need + need / 2;
        unsigned char *nb = co_xmalloc(cap);
        if (d->scratch && keep)
            memcpy(nb, d->scratch, keep < d->scratch_cap ? keep : d->scratch_cap);
        free(d->scratch);
        d->scratch = nb;
        d->scratch_cap = cap;
    }
    return d->scratch;
}

/* RFC 6455 header of an unmasked, final text frame of @len bytes; returns its length. */
static size_t
frame_header(unsigned char *h, size_t len)
{
    h[0] = 0x81;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/*
 * SERVER_WRITEABLE.  The queued messages at the head are written as complete WebSocket frames,
 * several in one lws_write (LWS_WRITE_RAW: the frames are built here; lws buffers a partial
 * send and calls back when it is flushed), up to COORD_DASH_WRITE_BYTES per callback.  With
 * many dashboards this is what keeps the cost per event low: a busy session gets a few large
 * writes instead of one system call per event.
 */
static int sess_write(struct coord_dash *d, struct coord_dash_sess *s);

int
coord_dash_writeable(struct coord_dash *d, struct coord_dash_sess *s)
{
    int64_t t0 = co_mono_ns();
    int rc = sess_write(d, s);
    d->fan_ns += co_mono_ns() - t0;
    return rc;
}

static int
sess_write(struct coord_dash *d, struct coord_dash_sess *s)
{
    s->want_write = false;
    if (s->close_code) {
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    if (s->ping_due) {
        unsigned char buf[LWS_PRE + 8];
        s->ping_due = false;
        s->last_ping_ms = co_mono_ms();
        if (lws_write(s->wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0)
            return -1;
        sess_want_write(s);
        return 0;
    }
    size_t n = 0; /* bytes of frames built after LWS_PRE */
    while (s->q_len > 0 && q_at(s, 0)->m) {
        struct dash_qent *e = q_at(s, 0);
        struct dash_msg *m = e->m;
        char num[24] = "";
        char sess[48 + CO_ID_MAX] = "";
        if (m->kind != DM_CONTROL)
            snprintf(num, sizeof(num), "%" PRIu64, e->seq);
        /* The session's identity (user ids are plain id characters: no escaping needed). */
        if (m->kind == DM_SNAPSHOT && s->p.user_id[0])
            snprintf(sess, sizeof(sess), ",\"session\":{\"admin\":%s,\"user_id\":\"%s\"}",
                     s->admin ? "true" : "false", s->p.user_id);
        else if (m->kind == DM_SNAPSHOT)
            snprintf(sess, sizeof(sess), ",\"session\":{\"admin\":%s,\"user_id\":null}",
                     s->admin ? "true" : "false");
        size_t numlen = strlen(num), sesslen = strlen(sess);
        size_t plen = m->len + numlen + sesslen;
        if (n > 0 && n + plen + 10 > COORD_DASH_WRITE_BYTES)
            break;
        unsigned char *base = scratch(d, LWS_PRE + n + plen + 10, LWS_PRE + n);
        unsigned char *p = base + LWS_PRE + n;
        p += frame_header(p, plen);
        if (m->kind == DM_CONTROL) {
            memcpy(p, m->text, m->len);
            p += m->len;
        } else {
            memcpy(p, m->text, m->split);
            p += m->split;
            memcpy(p, num, numlen);
            p += numlen;
            memcpy(p, sess, sesslen);
            p += sesslen;
            memcpy(p, m->text + m->split, m->len - m->split);
            p += m->len - m->split;
        }
        n = (size_t)(p - (base + LWS_PRE));
        s->q_head = (s->q_head + 1) % s->q_cap;
        s->q_len--;
        s->q_popped++;
        s->q_bytes -= m->len;
        msg_unref(m);
    }
    if (n == 0)
        return 0; /* empty, or the snapshot is being built */
    /* A reader is forgiven once it has drained half its queue, not as soon as one message left:
     * one that takes a message now and then at the end of a flood stays marked, and is closed. */
    if (s->full_since_ms && s->q_len <= d->max_msgs / 2 && s->q_bytes <= d->max_bytes / 2)
        s->full_since_ms = 0;
    if (lws_write(s->wsi, d->scratch + LWS_PRE, n, LWS_WRITE_RAW) < (int)n)
        return -1;
    sess_want_write(s);
    return 0;
}

/* ------------------------------------------------------------------ client messages */

/* The member `"error":{"code":..,"message":..}` of a control message. */
static void
error_member(struct co_jsonw *w, const char *code, const char *msg)
{
    co_jsonw_key(w, "error");
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "code", code);
    co_jsonw_kstr(w, "message", msg);
    co_jsonw_obj_end(w);
}

static void
send_error(struct coord_dash *d, struct coord_dash_sess *s, const char *code, const char *msg)
{
    struct co_buf t = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &t);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "type", "error");
    error_member(&w, code, msg);
    co_jsonw_obj_end(&w);
    sess_control(d, s, t.data, t.len);
    co_buf_release(&t);
}

static int
close_now(struct coord_dash_sess *s, enum lws_close_status code, const char *reason)
{
    lws_close_reason(s->wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

static int
bad_message(struct coord_dash *d, struct coord_dash_sess *s, const char *msg)
{
    if (++s->bad_msgs >= COORD_DASH_MAX_BAD)
        return close_now(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many bad messages");
    send_error(d, s, "bad_message", msg);
    return 0;
}

/* Make @s act for @p (anonymous: cred NONE); keeps the admin count.  True if the view changed. */
static bool
sess_set_principal(struct coord_dash *d, struct coord_dash_sess *s, const struct coord_principal *p,
                   const char *key_hash)
{
    bool admin = p->is_admin;
    if (admin != s->admin) {
        if (admin)
            d->n_admin++;
        else
            d->n_admin--;
    }
    bool same_view = s->admin == admin && s->p.cred == p->cred && s->p.scopes == p->scopes &&
                     strcmp(s->p.user_id, p->user_id) == 0;
    s->admin = admin;
    s->p = *p;
    co_strlcpy(s->key_hash, key_hash ? key_hash : "", sizeof(s->key_hash));
    return !same_view;
}

/*
 * After a change of view: what the client holds was rendered for the old one, so a fresh
 * snapshot in the new view follows (the first snapshot of a key given at the upgrade is still
 * to come anyway).
 */
static void
sess_view_changed(struct coord_dash *d, struct coord_dash_sess *s, bool changed)
{
    if (!changed || s->auth_first)
        return;
    /*
     * Not the one-outstanding-resync rule: a snapshot or events already queued were rendered for
     * the old view, so the new snapshot goes after them (every placeholder of the session is
     * filled by the next build, in the view of that moment).
     */
    q_push(s, NULL, 0);
    q_at(s, s->q_len - 1)->seq = s->seq;
    if (!s->snap_wait)
        d->snap_waiting++;
    s->snap_wait = true;
    s->snap_gen = d->gen_next;
    snap_start(d);
}

static void
auth_result(struct coord_dash *d, struct coord_dash_sess *s, bool ok, const char *code,
            const char *msg)
{
    struct co_buf t = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &t);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "type", "auth.result");
    co_jsonw_kbool(&w, "ok", ok);
    co_jsonw_kbool(&w, "admin", s->admin);
    co_jsonw_kstr(&w, "user_id", s->p.user_id[0] ? s->p.user_id : NULL);
    if (!ok)
        error_member(&w, code, msg);
    co_jsonw_obj_end(&w);
    sess_control(d, s, t.data, t.len);
    co_buf_release(&t);
}

/*
 * A rejected credential: counted against the address (the throttle shared with REST and the
 * agents) and against the session; the session is anonymous from now on.  Returns -1 when the
 * session is to be closed (too many rejected credentials).
 */
static int
auth_rejected(struct coord_dash *d, struct coord_dash_sess *s, const char *msg)
{
    struct coord_principal anon = {0};
    bool changed = sess_set_principal(d, s, &anon, NULL);
    if (d->env->limits)
        coord_limits_auth_failed(d->env->limits, s->peer, co_mono_ms());
    if (++s->bad_tokens >= COORD_DASH_MAX_BAD_TOKENS)
        return -1;
    auth_result(d, s, false, "unauthorized", msg);
    sess_view_changed(d, s, changed);
    return 0;
}

static int
handle_auth(struct coord_dash *d, struct coord_dash_sess *s, json_t *root)
{
    json_t *bearer = json_object_get(root, "bearer");
    if (d->env->limits && coord_limits_auth_blocked(d->env->limits, s->peer, co_mono_ms()) > 0) {
        auth_result(d, s, false, "rate_limited", "too many failed authentications");
        return 0;
    }
    if (bearer) {
        const char *v = json_string_value(bearer);
        if (!json_is_string(bearer) || json_string_length(bearer) == 0 ||
            json_string_length(bearer) > COORD_WS_BEARER_MAX) {
            if (auth_rejected(d, s, "key rejected") < 0)
                return close_now(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many rejected tokens");
            return 0;
        }
        char hash[COORD_KEY_HASH_LEN + 1];
        coord_auth_hash(v, json_string_length(bearer), hash);
        key_lookup_start(d, s, hash, AUTH_MESSAGE);
        return 0;
    }
    json_t *tok = json_object_get(root, "token");
    const char *want = d->env->cfg->admin_token;
    bool ok =
        json_is_string(tok) && want &&
        co_consttime_eq(json_string_value(tok), json_string_length(tok), want, strlen(want)) == 1;
    /* A lookup still in flight must not overwrite what this message decides. */
    s->auth_no++;
    if (ok) {
        struct coord_principal p;
        coord_auth_principal_admin(&p);
        bool changed = sess_set_principal(d, s, &p, NULL);
        auth_result(d, s, true, NULL, NULL);
        sess_view_changed(d, s, changed);
        return 0;
    }
    if (auth_rejected(d, s, "admin token rejected") < 0)
        return close_now(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many rejected tokens");
    return 0;
}

static int
handle_message(struct coord_dash *d, struct coord_dash_sess *s, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (!root || !json_is_object(root)) {
        rc = bad_message(d, s, root ? "message is not a JSON object" : "message is not JSON");
        goto out;
    }
    json_t *type = json_object_get(root, "type");
    const char *t = json_is_string(type) ? json_string_value(type) : NULL;
    if (t && strcmp(t, "auth") == 0) {
        rc = handle_auth(d, s, root);
    } else if (t && strcmp(t, "resync") == 0) {
        sess_request_snapshot(d, s);
    } else if (t) {
        char msg[96];
        char shown[32];
        co_strlcpy(shown, t, sizeof(shown));
        for (char *c = shown; *c; c++) {
            if ((unsigned char)*c < 0x20 || *c == '\'' || (unsigned char)*c >= 0x7f)
                *c = '?';
        }
        snprintf(msg, sizeof(msg), "unknown message type '%s'", shown);
        rc = bad_message(d, s, msg);
    } else {
        rc = bad_message(d, s, "message has no string 'type'");
    }
out:
    json_decref(root);
    return rc;
}

int
coord_dash_receive(struct coord_dash *d, struct coord_dash_sess *s, const void *in, size_t len)
{
    if (s->rx_len + len > COORD_DASH_RX_MAX) {
        free(s->rx);
        s->rx = NULL;
        s->rx_len = 0;
        return close_now(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
    }
    if (!s->rx)
        s->rx = co_xmalloc(COORD_DASH_RX_MAX + 1);
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
    if (!lws_is_final_fragment(s->wsi))
        return 0;
    size_t n = s->rx_len;
    s->rx_len = 0;
    if (lws_frame_is_binary(s->wsi))
        return bad_message(d, s, "binary messages are not accepted");
    return handle_message(d, s, s->rx, n);
}

void
coord_dash_pong(struct coord_dash_sess *s)
{
    s->last_pong_ms = co_mono_ms();
}
