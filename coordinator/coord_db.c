/* coord_db: database executor (see coord_db.h). */
#include "coord_db.h"

#include <inttypes.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"

struct db_item {
    struct db_item *next;
    coord_db_work_fn work;
    coord_db_done_fn done;
    void *arg;
    bool group;            /* may share a group transaction (COORD_DB_WRITE_GROUP, grouping on) */
    bool discard;          /* in a group: roll back to the item's savepoint after its work */
    coord_db_fail_fn fail; /* in a group: answers the item when the group's COMMIT fails */
    void *fail_arg;
};

/* The queues: the write lanes share one (and its threads), the read lane has its own. */
enum { DB_QW = 0, DB_QR, DB_QUEUES };

/* REST writes per group transaction by default (SQLite). */
#define DB_GROUP_MAX 32

/* The grouped item whose work runs on this thread (NULL outside a group). */
static _Thread_local struct db_item *tl_group_item;

struct db_lane {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_item *head, *tail;
    int len;
};

struct db_thread {
    struct coord_db *db;
    struct coord_store *store;
    int queue; /* DB_QW or DB_QR */
    pthread_t tid;
    bool started;
};

struct coord_db {
    struct db_lane lanes[DB_QUEUES];
    struct db_thread *threads;
    int n_threads;
    int writers;
    int max_queue;
    int group_max; /* COORD_DB_WRITE_GROUP items per transaction; 1: no grouping */
    _Atomic int64_t groups, grouped;
    _Atomic(coord_db_commit_hook_fn) commit_hook; /* tests */
    void *commit_hook_arg;
    atomic_bool stopping;
    _Atomic(struct lws_context *) ctx;
    _Atomic int64_t inflight;
    _Atomic int64_t max_work_us;

    /* Finished items waiting for the lws thread. */
    pthread_mutex_t done_mu;
    struct db_item *done_head, *done_tail;
    bool wake_sent;      /* a wake-up was sent and no drain took the list since (done_mu) */
    int64_t wakes_saved; /* completions that rode on a wake-up already sent (done_mu) */
    _Atomic(coord_db_wake_fn) wake_hook; /* tests: called instead of lws_cancel_service */
    void *wake_hook_arg;
};

static void
db_push_done(struct coord_db *db, struct db_item *it)
{
    it->next = NULL;
    struct lws_context *ctx = atomic_load(&db->ctx);
    coord_db_wake_fn hook = atomic_load(&db->wake_hook);
    pthread_mutex_lock(&db->done_mu);
    if (db->done_tail)
        db->done_tail->next = it;
    else
        db->done_head = it;
    db->done_tail = it;
    /*
     * One wake-up per batch of completions, not one per item: while a wake-up sent earlier was
     * not followed by a drain, that drain takes this item too (it takes the whole list and clears
     * the flag under this mutex).
     */
    bool wake = !db->wake_sent && (ctx || hook);
    if (wake)
        db->wake_sent = true;
    else
        db->wakes_saved++;
    pthread_mutex_unlock(&db->done_mu);
    if (!wake)
        return;
    if (hook)
        hook(db->wake_hook_arg);
    else
        lws_cancel_service(ctx);
}

/* Unlink the head of @q (q->mu held, q->head not NULL). */
static struct db_item *
db_unlink_head(struct db_lane *q)
{
    struct db_item *it = q->head;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    return it;
}

/* Take the head of @q, waiting for one; NULL when stopping and drained. */
static struct db_item *
db_pop(struct coord_db *db, struct db_lane *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->head && !atomic_load(&db->stopping))
        pthread_cond_wait(&q->cv, &q->mu);
    struct db_item *it = q->head ? db_unlink_head(q) : NULL;
    pthread_mutex_unlock(&q->mu);
    return it;
}

/* Take the head of @q if it is an item that may join a group (no wait); else NULL. */
static struct db_item *
db_pop_group(struct db_lane *q)
{
    pthread_mutex_lock(&q->mu);
    struct db_item *it = q->head && q->head->group ? db_unlink_head(q) : NULL;
    pthread_mutex_unlock(&q->mu);
    return it;
}

/* Run @it's work on @store, timed for coord_db_max_work_us. */
static void
db_work(struct coord_db *db, struct coord_store *store, struct db_item *it)
{
    int64_t t0 = co_mono_ns();
    it->work(store, it->arg);
    int64_t us = (co_mono_ns() - t0) / 1000;
    int64_t prev = atomic_load(&db->max_work_us);
    while (us > prev && !atomic_compare_exchange_weak(&db->max_work_us, &prev, us))
        ;
}

/* The work of @it ran (and its transaction ended): its completion, or nothing. */
static void
db_finish(struct coord_db *db, struct db_item *it)
{
    if (it->done) {
        db_push_done(db, it);
    } else {
        atomic_fetch_sub(&db->inflight, 1);
        free(it);
    }
}

/*
 * A group: @first and the grouped items queued right behind it (at most group_max) run in one
 * transaction, each inside a savepoint of its own (coord_store_batch_begin nests), and share one
 * COMMIT.  Their completions are handed back only after it.  When the COMMIT fails, or the
 * transaction was lost on the way, everything is rolled back and each item's failure answer
 * (coord_db_group_on_fail) runs before its completion.
 */
static void
db_run_group(struct db_thread *t, struct db_item *first)
{
    struct coord_db *db = t->db;
    struct coord_store *s = t->store;
    co_err err = CO_ERR_INIT;
    if (coord_store_batch_begin(s, &err) < 0) {
        /* No transaction to share: the item runs alone, as without grouping. */
        db_work(db, s, first);
        db_finish(db, first);
        return;
    }
    struct db_item *head = NULL, **tail = &head, *it = first, *left = NULL;
    int n = 0;
    bool lost = false;
    while (it) {
        if (coord_store_batch_begin(s, &err) < 0) {
            /* The transaction is gone (the last item's doing): this item runs after it. */
            lost = true;
            left = it;
            break;
        }
        it->fail = NULL;
        it->discard = false;
        tl_group_item = it;
        db_work(db, s, it);
        tl_group_item = NULL;
        if (it->discard)
            coord_store_batch_rollback(s);
        else if (coord_store_batch_commit(s, &err) < 0)
            lost = true; /* the savepoint could not be released: the transaction failed */
        it->next = NULL;
        *tail = it;
        tail = &it->next;
        n++;
        if (!it->fail)
            co_warn("database: a grouped write gave no failure answer; its group ends here");
        if (lost || !it->fail || n >= db->group_max)
            break;
        it = db_pop_group(&db->lanes[DB_QW]);
    }
    int rc = -1;
    coord_db_commit_hook_fn hook = atomic_load(&db->commit_hook);
    if (lost) {
        coord_store_batch_rollback(s);
    } else if (hook && hook(s, n, db->commit_hook_arg) < 0) {
        coord_store_batch_rollback(s);
        co_err_set(&err, CO_E_UNAVAILABLE, "commit refused by the test hook");
    } else {
        rc = coord_store_batch_commit(s, &err);
    }
    if (rc < 0) {
        err.code = CO_E_UNAVAILABLE;
        co_warn("database: a group of %d writes did not commit; each is answered with an error "
                "error=\"%s\"",
                n, err.msg);
    }
    atomic_fetch_add(&db->groups, 1);
    atomic_fetch_add(&db->grouped, n);
    for (it = head; it;) {
        struct db_item *next = it->next;
        if (rc < 0 && it->fail)
            it->fail(it->fail_arg, &err);
        db_finish(db, it);
        it = next;
    }
    if (left) {
        db_work(db, s, left);
        db_finish(db, left);
    }
}

static void *
db_thread_main(void *p)
{
    struct db_thread *t = p;
    struct coord_db *db = t->db;
    struct db_lane *q = &db->lanes[t->queue];
    struct db_item *it;
    while ((it = db_pop(db, q))) {
        if (it->group) {
            db_run_group(t, it);
        } else {
            db_work(db, t->store, it);
            db_finish(db, it);
        }
    }
    return NULL;
}

bool
coord_db_group_on_fail(coord_db_fail_fn fail, void *arg)
{
    struct db_item *it = tl_group_item;
    if (!it)
        return false;
    it->fail = fail;
    it->fail_arg = arg;
    return true;
}

void
coord_db_group_discard(void)
{
    if (tl_group_item)
        tl_group_item->discard = true;
}

void
coord_db_set_commit_hook(struct coord_db *db, coord_db_commit_hook_fn fn, void *arg)
{
    db->commit_hook_arg = arg;
    atomic_store(&db->commit_hook, fn);
}

void
coord_db_group_stats(struct coord_db *db, int64_t *groups, int64_t *items)
{
    *groups = atomic_load(&db->groups);
    *items = atomic_load(&db->grouped);
}

int
coord_db_start(const struct coord_db_options *opt, struct coord_db **out, co_err *err)
{
    struct coord_db *db = co_xcalloc(1, sizeof(*db));
    int writers = opt->writers > 0 ? opt->writers : 1;
    int readers = opt->readers > 0 ? opt->readers : 1;
    db->max_queue = opt->max_queue > 0 ? opt->max_queue : 10000;
    for (int i = 0; i < DB_QUEUES; i++) {
        pthread_mutex_init(&db->lanes[i].mu, NULL);
        pthread_cond_init(&db->lanes[i].cv, NULL);
    }
    pthread_mutex_init(&db->done_mu, NULL);
    db->writers = writers;
    db->n_threads = writers + readers;
    db->threads = co_xcalloc((size_t)db->n_threads, sizeof(*db->threads));
    for (int i = 0; i < db->n_threads; i++) {
        struct db_thread *t = &db->threads[i];
        t->db = db;
        t->queue = i < writers ? DB_QW : DB_QR;
        if (coord_store_open(opt->store, &t->store, err) < 0) {
            co_err_wrap(err, "database thread %d", i);
            goto fail;
        }
    }
    /*
     * Group transactions on SQLite only: its one writer thread takes no row locks.  On PostgreSQL
     * a group would hold the row locks of all its items until its COMMIT, and two groups (on two
     * writer threads, or two coordinators) taking two buyers' rows in opposite orders would
     * deadlock; there each REST write keeps its own transaction.
     */
    db->group_max = 1;
    if (writers == 1 && strcmp(coord_store_backend(db->threads[0].store), "sqlite") == 0)
        db->group_max = opt->group_max > 0 ? opt->group_max : DB_GROUP_MAX;
    for (int i = 0; i < db->n_threads; i++) {
        struct db_thread *t = &db->threads[i];
        int rc = pthread_create(&t->tid, NULL, db_thread_main, t);
        if (rc != 0) {
            co_err_sys(err, rc, "cannot start database thread %d", i);
            goto fail;
        }
        t->started = true;
    }
    *out = db;
    return 0;
fail:
    coord_db_stop(db);
    return -1;
}

void
coord_db_set_context(struct coord_db *db, struct lws_context *ctx)
{
    atomic_store(&db->ctx, ctx);
}

void
coord_db_set_wake_hook(struct coord_db *db, coord_db_wake_fn wake, void *arg)
{
    db->wake_hook_arg = arg;
    atomic_store(&db->wake_hook, wake);
}

int64_t
coord_db_wakes_saved(struct coord_db *db)
{
    pthread_mutex_lock(&db->done_mu);
    int64_t n = db->wakes_saved;
    pthread_mutex_unlock(&db->done_mu);
    return n;
}

int
coord_db_submit(struct coord_db *db, enum coord_db_lane lane_id, coord_db_work_fn work,
                coord_db_done_fn done, void *arg, co_err *err)
{
    struct db_lane *lane = &db->lanes[lane_id == COORD_DB_READ ? DB_QR : DB_QW];
    struct db_item *it = co_xcalloc(1, sizeof(*it));
    it->work = work;
    it->done = done;
    it->arg = arg;
    it->group = lane_id == COORD_DB_WRITE_GROUP && db->group_max > 1;
    pthread_mutex_lock(&lane->mu);
    if (atomic_load(&db->stopping) || lane->len >= db->max_queue) {
        pthread_mutex_unlock(&lane->mu);
        free(it);
        return co_err_set(err, CO_E_UNAVAILABLE, "database queue full or stopping");
    }
    if (lane->tail)
        lane->tail->next = it;
    else
        lane->head = it;
    lane->tail = it;
    lane->len++;
    atomic_fetch_add(&db->inflight, 1);
    pthread_cond_signal(&lane->cv);
    pthread_mutex_unlock(&lane->mu);
    return 0;
}

int
coord_db_drain_completions(struct coord_db *db)
{
    pthread_mutex_lock(&db->done_mu);
    struct db_item *it = db->done_head;
    db->done_head = db->done_tail = NULL;
    db->wake_sent = false;
    pthread_mutex_unlock(&db->done_mu);
    int n = 0;
    while (it) {
        struct db_item *next = it->next;
        atomic_fetch_sub(&db->inflight, 1);
        it->done(it->arg);
        free(it);
        it = next;
        n++;
    }
    return n;
}

int
coord_db_writers(const struct coord_db *db)
{
    return db->writers;
}

int64_t
coord_db_pending(struct coord_db *db)
{
    return atomic_load(&db->inflight);
}

int64_t
coord_db_max_work_us(struct coord_db *db)
{
    return atomic_load(&db->max_work_us);
}

void
coord_db_stop(struct coord_db *db)
{
    if (!db)
        return;
    for (int i = 0; i < DB_QUEUES; i++) {
        pthread_mutex_lock(&db->lanes[i].mu);
        atomic_store(&db->stopping, true);
        pthread_cond_broadcast(&db->lanes[i].cv);
        pthread_mutex_unlock(&db->lanes[i].mu);
    }
    for (int i = 0; i < db->n_threads; i++) {
        if (db->threads[i].started)
            pthread_join(db->threads[i].tid, NULL);
    }
    atomic_store(&db->ctx, NULL);
    coord_db_drain_completions(db);
    if (atomic_load(&db->groups) > 0)
        co_info("database: %" PRId64 " REST writes shared %" PRId64 " group transactions",
                atomic_load(&db->grouped), atomic_load(&db->groups));
    for (int i = 0; i < db->n_threads; i++)
        coord_store_close(db->threads[i].store);
    free(db->threads);
    for (int i = 0; i < DB_QUEUES; i++) {
        pthread_mutex_destroy(&db->lanes[i].mu);
        pthread_cond_destroy(&db->lanes[i].cv);
    }
    pthread_mutex_destroy(&db->done_mu);
    free(db);
}
