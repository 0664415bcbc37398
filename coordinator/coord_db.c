/* coord_db: database executor (see coord_db.h). */
#include "coord_db.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"

struct db_item {
    struct db_item *next;
    coord_db_work_fn work;
    coord_db_done_fn done;
    void *arg;
};

struct db_lane {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_item *head, *tail;
    int len;
};

struct db_thread {
    struct coord_db *db;
    struct coord_store *store;
    enum coord_db_lane lane;
    pthread_t tid;
    bool started;
};

struct coord_db {
    struct db_lane lanes[COORD_DB_LANES];
    struct db_thread *threads;
    int n_threads;
    int writers;
    int max_queue;
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

static void *
db_thread_main(void *p)
{
    struct db_thread *t = p;
    struct coord_db *db = t->db;
    struct db_lane *lane = &db->lanes[t->lane];
    for (;;) {
        pthread_mutex_lock(&lane->mu);
        while (!lane->head && !atomic_load(&db->stopping))
            pthread_cond_wait(&lane->cv, &lane->mu);
        struct db_item *it = lane->head;
        if (!it) {
            pthread_mutex_unlock(&lane->mu);
            break; /* stopping and drained */
        }
        lane->head = it->next;
        if (!lane->head)
            lane->tail = NULL;
        lane->len--;
        pthread_mutex_unlock(&lane->mu);

        int64_t t0 = co_mono_ns();
        it->work(t->store, it->arg);
        int64_t us = (co_mono_ns() - t0) / 1000;
        int64_t prev = atomic_load(&db->max_work_us);
        while (us > prev && !atomic_compare_exchange_weak(&db->max_work_us, &prev, us))
            ;
        if (it->done) {
            db_push_done(db, it);
        } else {
            atomic_fetch_sub(&db->inflight, 1);
            free(it);
        }
    }
    return NULL;
}

int
coord_db_start(const struct coord_db_options *opt, struct coord_db **out, co_err *err)
{
    struct coord_db *db = co_xcalloc(1, sizeof(*db));
    int writers = opt->writers > 0 ? opt->writers : 1;
    int readers = opt->readers > 0 ? opt->readers : 1;
    db->max_queue = opt->max_queue > 0 ? opt->max_queue : 10000;
    for (int i = 0; i < COORD_DB_LANES; i++) {
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
        t->lane = i < writers ? COORD_DB_WRITE : COORD_DB_READ;
        if (coord_store_open(opt->store, &t->store, err) < 0) {
            co_err_wrap(err, "database thread %d", i);
            goto fail;
        }
    }
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
    struct db_lane *lane = &db->lanes[lane_id];
    struct db_item *it = co_xmalloc(sizeof(*it));
    it->next = NULL;
    it->work = work;
    it->done = done;
    it->arg = arg;
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
    for (int i = 0; i < COORD_DB_LANES; i++) {
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
    for (int i = 0; i < db->n_threads; i++)
        coord_store_close(db->threads[i].store);
    free(db->threads);
    for (int i = 0; i < COORD_DB_LANES; i++) {
        pthread_mutex_destroy(&db->lanes[i].mu);
        pthread_cond_destroy(&db->lanes[i].cv);
    }
    pthread_mutex_destroy(&db->done_mu);
    free(db);
}
