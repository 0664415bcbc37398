/*
 * Unit tests of the agent hub (coord_hub): the hooks are the only way up (each dispatcher calls
 * its hook, a hub without hooks is safe), the hub is freed (and the release hook called) only when
 * the last item in flight completed after agent_hub_destroy, the worker and job indexes, the O(1)
 * removal of a session, the capacity a session's jobs hold, and the write lanes on a database
 * with one writer thread (SQLite): the writes of one loop turn, whatever their job, run in order
 * in one database item and one transaction, and each gets its own completion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libwebsockets.h>
#include <stdatomic.h>
#include <unistd.h>

#include "co_alloc.h"
#include "coord_db.h"
#include "coord_hub.h"
#include "coord_store.h"

static int fake_wsi; /* any non-NULL pointer: nothing here calls lws with it */

/* What the hooks saw. */
static struct {
    int kicks, assigns, cancels, closes, moved, releases;
    struct agent_sess *last;
    char last_job[CO_ID_MAX + 1];
    int last_code;
    void *release_ud;
} seen;

static void
h_kick(void *ud)
{
    assert_ptr_equal(ud, &seen);
    seen.kicks++;
}

static int
h_assign(struct agent_sess *s, const struct coord_job *job)
{
    seen.assigns++;
    seen.last = s;
    co_strlcpy(seen.last_job, job->job_id, sizeof(seen.last_job));
    return 7;
}

static void
h_cancel(struct agent_sess *s, const char *job_id, int attempt, const char *reason)
{
    (void)attempt;
    (void)reason;
    seen.cancels++;
    seen.last = s;
    co_strlcpy(seen.last_job, job_id, sizeof(seen.last_job));
}

static void
h_close(struct agent_sess *s, int code, const char *reason)
{
    (void)reason;
    seen.closes++;
    seen.last = s;
    seen.last_code = code;
}

static void
h_moved(struct agent_sess *s, const co_err *err)
{
    (void)err;
    seen.moved++;
    seen.last = s;
}

static void
h_release(void *ud)
{
    seen.releases++;
    seen.release_ud = ud;
}

static const struct agent_hub_hooks hooks = {
    .ud = &seen,
    .kick = h_kick,
    .send_assign = h_assign,
    .send_cancel = h_cancel,
    .close = h_close,
    .moved = h_moved,
    .release = h_release,
};

static struct coord_config cfg;

static struct coord_agents *
mk_hub(const struct agent_hub_hooks *h)
{
    memset(&seen, 0, sizeof(seen));
    memset(&cfg, 0, sizeof(cfg));
    cfg.worker_timeout_seconds = 30;
    return agent_hub_new(&cfg, NULL, NULL, NULL, NULL, h);
}

/* Close every session as the protocol's CLOSED does, then stop the hub. */
static void
end_hub(struct coord_agents *hub)
{
    while (hub->n_sess > 0) {
        struct agent_sess *s = hub->sess[hub->n_sess - 1];
        s->wsi = NULL;
        agent_hub_sess_remove(hub, s);
        while (s->n_jobs > 0)
            agent_sess_remove_job(s, s->jobs[s->n_jobs - 1].job_id);
        agent_sess_unref(s);
    }
    agent_hub_destroy(hub);
}

static struct agent_sess *
mk_sess(struct coord_agents *hub, const char *worker_id, int64_t cores, int64_t ram_mb)
{
    struct agent_sess *s = agent_hub_sess_new(hub, (struct lws *)&fake_wsi);
    co_strlcpy(s->worker_id, worker_id, sizeof(s->worker_id));
    s->cores = s->free_cores = cores;
    s->ram_mb = s->free_ram_mb = ram_mb;
    s->state = AS_READY;
    agent_hub_index_worker(hub, s);
    return s;
}

static void
test_hooks_called(void **state)
{
    (void)state;
    struct coord_agents *hub = mk_hub(&hooks);
    assert_int_equal(hub->lease_ms, 30000);
    assert_int_equal(hub->heartbeat_ms, 5000);
    struct agent_sess *s = mk_sess(hub, "w1", 4, 4096);
    struct coord_job job = {0};
    co_strlcpy(job.job_id, "j1", sizeof(job.job_id));

    agent_hub_kick(hub);
    assert_int_equal(seen.kicks, 1);
    assert_int_equal(agent_sess_send_assign(s, &job), 7);
    assert_int_equal(seen.assigns, 1);
    assert_ptr_equal(seen.last, s);
    assert_string_equal(seen.last_job, "j1");
    agent_sess_send_cancel(s, "j2", 3, "cancelled");
    assert_int_equal(seen.cancels, 1);
    assert_string_equal(seen.last_job, "j2");
    agent_sess_close(s, 4001, "test");
    assert_int_equal(seen.closes, 1);
    assert_int_equal(seen.last_code, 4001);
    co_err err = CO_ERR_INIT;
    agent_sess_moved(s, &err);
    assert_int_equal(seen.moved, 1);

    end_hub(hub);
    assert_int_equal(seen.releases, 1);
    assert_ptr_equal(seen.release_ud, &seen);
}

/* A hub without hooks (the scheduler's unit tests build one): the dispatchers do nothing. */
static void
test_no_hooks(void **state)
{
    (void)state;
    struct coord_agents *hub = mk_hub(NULL);
    struct agent_sess *s = mk_sess(hub, "w1", 1, 1024);
    struct coord_job job = {0};
    co_strlcpy(job.job_id, "j1", sizeof(job.job_id));
    agent_hub_kick(hub);
    assert_int_equal(agent_sess_send_assign(s, &job), -1);
    agent_sess_send_cancel(s, "j1", 1, "x");
    agent_sess_close(s, 1000, "x");
    assert_int_equal(seen.kicks + seen.assigns + seen.cancels + seen.closes, 0);
    end_hub(hub);
    assert_int_equal(seen.releases, 0);
}

/* Freed when the last item in flight completes, not at the destroy. */
static void
test_life_cycle(void **state)
{
    (void)state;
    struct coord_agents *hub = mk_hub(&hooks);
    agent_hub_hold(hub); /* e.g. a retry timer */
    agent_hub_hold(hub);
    assert_true(agent_hub_complete(hub)); /* alive: the completion acts */
    end_hub(hub);
    assert_int_equal(seen.releases, 0); /* one still in flight */
    assert_true(hub->dead);
    assert_false(agent_hub_complete(hub)); /* dead: the completion only frees its item */
    assert_int_equal(seen.releases, 1);
}

static void
test_indexes_and_capacity(void **state)
{
    (void)state;
    struct coord_agents *hub = mk_hub(&hooks);
    struct agent_sess *a = mk_sess(hub, "w1", 8, 8192);
    struct agent_sess *b = mk_sess(hub, "w2", 4, 4096);
    struct agent_sess *c = mk_sess(hub, "w1", 8, 8192); /* a reconnect of w1 */
    assert_int_equal(hub->n_sess, 3);
    assert_ptr_equal(agent_hub_find_worker(hub, "w1", NULL), a); /* first in hub->sess */
    assert_ptr_equal(agent_hub_find_worker(hub, "w1", a), c);
    assert_null(agent_hub_find_worker(hub, "w3", NULL));
    b->state = AS_AWAIT_HELLO; /* not welcomed: not found */
    assert_null(agent_hub_find_worker(hub, "w2", NULL));
    b->state = AS_READY;

    struct coord_job job = {0};
    co_strlcpy(job.job_id, "j1", sizeof(job.job_id));
    job.required_cores = 3;
    job.required_ram_mb = 1000;
    uint64_t gen = hub->open_gen;
    struct agent_job *j = agent_sess_add_job(a, &job, 2, AJ_ASSIGNED);
    assert_int_equal(j->attempt, 2);
    assert_int_equal(j->out_next_seq, 0);
    assert_int_equal(a->free_cores, 5);
    assert_int_equal(a->free_ram_mb, 7192);
    assert_true(agent_hub_holds_job(hub, "j1"));
    assert_non_null(agent_sess_find(a, "j1"));
    assert_null(agent_sess_find(b, "j1"));
    agent_sess_remove_job(a, "j1");
    assert_false(agent_hub_holds_job(hub, "j1"));
    assert_int_equal(a->free_cores, 8);
    assert_int_equal(a->peak_cores, 3);
    agent_hub_changed(hub, a);
    agent_hub_changed(hub, a); /* queued once, with one reference */
    assert_true(hub->open_gen != gen);
    struct agent_sess **ch = NULL;
    assert_int_equal(agent_hub_take_changed(hub, &ch), 1);
    assert_ptr_equal(ch[0], a);
    assert_false(a->queued_changed);
    agent_sess_unref(ch[0]);
    free(ch);
    assert_int_equal(agent_hub_take_changed(hub, &ch), 0);
    free(ch);
    agent_hub_changed(hub, b); /* still queued at the end: the hub drops its reference */

    /* O(1) removal: the last session takes the place of the removed one. */
    a->wsi = NULL;
    agent_hub_sess_remove(hub, a);
    assert_int_equal(hub->n_sess, 2);
    assert_ptr_equal(hub->sess[0], c);
    assert_int_equal(c->pos, 0);
    assert_ptr_equal(agent_hub_find_worker(hub, "w1", NULL), c);
    agent_sess_unref(a);

    assert_true(agent_sess_has_image(b, "default")); /* no images listed: the default only */
    assert_false(agent_sess_has_image(b, "python"));
    end_hub(hub);
    assert_int_equal(seen.releases, 1);
}

/* ---- write lanes with one writer thread ---- */

#define N_WRITES 8

struct wr {
    int seq;
    bool done, undone;
};

static atomic_int ran_n;
static int ran_order[2 * N_WRITES];
static int done_n;
static int done_order[2 * N_WRITES];
static struct coord_agents *wr_hub;

static void
wr_work(struct coord_store *store, void *arg)
{
    (void)store;
    struct wr *w = arg;
    ran_order[atomic_fetch_add(&ran_n, 1)] = w->seq; /* the one writer thread */
}

static void
wr_undo(void *arg, const co_err *err)
{
    (void)err;
    ((struct wr *)arg)->undone = true;
}

static void
wr_done(void *arg)
{
    struct wr *w = arg;
    w->done = true;
    done_order[done_n++] = w->seq;
    agent_hub_complete(wr_hub); /* each write's completion ends its count, as the protocol's do */
}

static int
proto_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)wsi;
    (void)reason;
    (void)user;
    (void)in;
    (void)len;
    return 0;
}

static void
service_until(struct lws_context *ctx, struct coord_db *db, int want)
{
    for (int i = 0; i < 2000 && done_n < want; i++) {
        lws_service(ctx, 0); /* the lane's flush timer; wakes from the database's completions */
        coord_db_drain_completions(db);
    }
    assert_int_equal(done_n, want);
}

static void
test_one_lane_per_writer_thread(void **state)
{
    (void)state;
    char dir[] = "/tmp/cacheout-test-hub-XXXXXX", url[128];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:///%s/t.db", dir);
    struct coord_store_config sc = {.url = url,
                                    .starting_credits = 1,
                                    .worker_timeout_ms = 1000,
                                    .max_workers = 10,
                                    .output_cap_bytes = 1024};
    struct coord_db_options o = {.store = &sc, .writers = 1, .readers = 1};
    struct coord_db *db = NULL;
    co_err err = CO_ERR_INIT;
    if (coord_db_start(&o, &db, &err) < 0)
        fail_msg("start: %s", err.msg);
    static const struct lws_protocols protocols[] = {{"test", proto_cb, 0, 0, 0, NULL, 0},
                                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *ctx = lws_create_context(&info);
    assert_non_null(ctx);
    coord_db_set_context(db, ctx);

    memset(&seen, 0, sizeof(seen));
    memset(&cfg, 0, sizeof(cfg));
    cfg.worker_timeout_seconds = 30;
    struct coord_agents *hub = agent_hub_new(&cfg, db, NULL, NULL, ctx, &hooks);
    assert_int_equal(hub->n_wl, 1);
    wr_hub = hub;
    atomic_store(&ran_n, 0);
    done_n = 0;

    /* Writes about eight different jobs in one loop turn: one item, one transaction. */
    struct wr w[2 * N_WRITES];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N_WRITES; i++) {
        char key[32];
        snprintf(key, sizeof(key), "job-%d", i);
        w[i].seq = i;
        agent_hub_write(hub, key, wr_work, wr_undo, wr_done, &w[i]);
    }
    service_until(ctx, db, N_WRITES);
    assert_int_equal(hub->batches, 1);
    assert_int_equal(hub->batched_ops, N_WRITES);
    assert_int_equal(hub->batch_txs, 1);
    assert_int_equal(hub->batch_undone, 0);
    /* A second turn: its own batch, after the first; order kept, each write answered once. */
    for (int i = N_WRITES; i < 2 * N_WRITES; i++) {
        char key[32];
        snprintf(key, sizeof(key), "job-%d", i % 3);
        w[i].seq = i;
        agent_hub_write(hub, key, wr_work, wr_undo, wr_done, &w[i]);
    }
    service_until(ctx, db, 2 * N_WRITES);
    assert_int_equal(hub->batches, 2);
    assert_int_equal(hub->batch_txs, 2);
    assert_int_equal(atomic_load(&ran_n), 2 * N_WRITES);
    for (int i = 0; i < 2 * N_WRITES; i++) {
        assert_int_equal(ran_order[i], i);
        assert_int_equal(done_order[i], i);
        assert_true(w[i].done);
        assert_false(w[i].undone);
    }

    end_hub(hub);
    /* The hub is freed by its last completion; none is in flight any more. */
    assert_int_equal(seen.releases, 1);
    lws_context_destroy(ctx);
    coord_db_stop(db);
    static const char *const f[] = {"t.db", "t.db-wal", "t.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, f[i]);
        unlink(p);
    }
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_called),
        cmocka_unit_test(test_no_hooks),
        cmocka_unit_test(test_life_cycle),
        cmocka_unit_test(test_indexes_and_capacity),
        cmocka_unit_test(test_one_lane_per_writer_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
