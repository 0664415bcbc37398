/*
 * Unit tests of coordinator/coord_db.c: the database executor (threads, lanes, completions), and
 * its group commit: REST writes queued behind each other on SQLite's writer thread share one
 * transaction and one COMMIT, each in its own savepoint; an item's own failure stays its own; a
 * failed COMMIT answers every item of the group with an error and keeps nothing, Idempotency-Key
 * records included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "co_alloc.h"
#include "coord_api.h"
#include "coord_db.h"
#include "coord_idem.h"
#include "coord_req.h"

static char dir[] = "/tmp/cacheout-test-db-XXXXXX";
static char url[128];
static struct coord_store_config scfg;
static struct coord_store *side; /* a connection of its own: sees only what was committed */

static int
setup_dir(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(url, sizeof(url), "sqlite:///%s/t.db", dir);
    scfg = (struct coord_store_config){.url = url,
                                       .starting_credits = 1,
                                       .worker_timeout_ms = 1000,
                                       .max_workers = 10,
                                       .output_cap_bytes = 1024};
    const char *src = getenv("CO_SRC_DIR");
    char sql[512];
    snprintf(sql, sizeof(sql), "%s/sql", src ? src : ".");
    co_err err = CO_ERR_INIT;
    if (coord_store_open(&scfg, &side, &err) < 0 || coord_store_migrate(side, sql, &err) < 0) {
        fprintf(stderr, "test_db: cannot open or migrate %s (%s; CO_SRC_DIR set?): %s\n", url, sql,
                err.msg);
        return -1;
    }
    return 0;
}

static int
teardown_dir(void **state)
{
    (void)state;
    coord_store_close(side);
    static const char *const f[] = {"t.db", "t.db-wal", "t.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, f[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

struct item {
    pthread_t ran_on;
    struct coord_store *store;
    atomic_int *done_count;
    atomic_bool *block; /* spin while true */
    atomic_bool *started;
    bool completed;
};

static void
work(struct coord_store *store, void *arg)
{
    struct item *it = arg;
    it->ran_on = pthread_self();
    it->store = store;
    if (it->started)
        atomic_store(it->started, true);
    while (it->block && atomic_load(it->block))
        usleep(1000);
}

static void
done(void *arg)
{
    struct item *it = arg;
    it->completed = true;
    atomic_fetch_add(it->done_count, 1);
}

static struct coord_db *
start(int writers, int readers, int max_queue, int group_max)
{
    struct coord_db_options o = {.store = &scfg,
                                 .writers = writers,
                                 .readers = readers,
                                 .max_queue = max_queue,
                                 .group_max = group_max};
    struct coord_db *db = NULL;
    co_err err = CO_ERR_INIT;
    if (coord_db_start(&o, &db, &err) < 0)
        fail_msg("start: %s", err.msg);
    return db;
}

static void
wait_done(struct coord_db *db, atomic_int *count, int want)
{
    for (int i = 0; i < 5000 && atomic_load(count) < want; i++) {
        if (coord_db_drain_completions(db) == 0)
            usleep(1000);
    }
    assert_int_equal(atomic_load(count), want);
}

static void
test_work_runs_off_thread_and_completes_on_drain(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 2, 0, 0);
    atomic_int count = 0;
    struct item items[40];
    memset(items, 0, sizeof(items));
    co_err err = CO_ERR_INIT;
    for (int i = 0; i < 40; i++) {
        items[i].done_count = &count;
        assert_int_equal(coord_db_submit(db, i % 2 ? COORD_DB_READ : COORD_DB_WRITE, work, done,
                                         &items[i], &err),
                         0);
    }
    /* Completions run only when drained, on the draining thread. */
    wait_done(db, &count, 40);
    pthread_t writer = items[0].ran_on;
    for (int i = 0; i < 40; i++) {
        assert_true(items[i].completed);
        assert_false(pthread_equal(items[i].ran_on, pthread_self()));
        assert_non_null(items[i].store);
        if (i % 2 == 0) /* one writer thread: every write item ran on it */
            assert_true(pthread_equal(items[i].ran_on, writer));
        else
            assert_false(pthread_equal(items[i].ran_on, writer));
    }
    assert_int_equal(coord_db_pending(db), 0);
    coord_db_stop(db);
}

static void
test_queue_cap(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 2, 0);
    atomic_int count = 0;
    atomic_bool block = true, started = false;
    struct item blocker = {.done_count = &count, .block = &block, .started = &started};
    struct item more[3];
    memset(more, 0, sizeof(more));
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, work, done, &blocker, &err), 0);
    for (int i = 0; i < 2000 && !atomic_load(&started); i++)
        usleep(1000);
    assert_true(atomic_load(&started));
    for (int i = 0; i < 3; i++)
        more[i].done_count = &count;
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, work, done, &more[0], &err), 0);
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, work, done, &more[1], &err), 0);
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, work, done, &more[2], &err), -1);
    assert_int_equal(err.code, CO_E_UNAVAILABLE);
    /* The read lane has its own queue. */
    assert_int_equal(coord_db_submit(db, COORD_DB_READ, work, done, &more[2], &err), 0);
    atomic_store(&block, false);
    wait_done(db, &count, 4);
    coord_db_stop(db);
}

static void
test_stop_finishes_queued_work(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 0);
    atomic_int count = 0;
    struct item items[100];
    memset(items, 0, sizeof(items));
    co_err err = CO_ERR_INIT;
    for (int i = 0; i < 100; i++) {
        items[i].done_count = &count;
        assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, work, done, &items[i], &err), 0);
    }
    coord_db_stop(db); /* runs every item and its completion */
    assert_int_equal(atomic_load(&count), 100);
}

/* Wake-ups: one per batch of completions that finish before a drain, not one per item. */
static atomic_int wakes;
static atomic_int ran;
static int order[64];
static int n_order;

static void
count_wake(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wakes, 1);
}

struct seq_item {
    int seq;
    atomic_bool *block;
};

static void
seq_work(struct coord_store *store, void *arg)
{
    (void)store;
    struct seq_item *it = arg;
    while (it->block && atomic_load(it->block))
        usleep(1000);
    atomic_fetch_add(&ran, 1);
}

static void
seq_done(void *arg)
{
    struct seq_item *it = arg;
    order[n_order++] = it->seq;
}

static void
wait_ran(int want)
{
    for (int i = 0; i < 5000 && atomic_load(&ran) < want; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&ran), want);
}

static void
test_one_wake_per_batch_of_completions(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 0);
    coord_db_set_wake_hook(db, count_wake, NULL);
    atomic_store(&wakes, 0);
    atomic_store(&ran, 0);
    n_order = 0;
    atomic_bool block = true;
    struct seq_item items[21];
    co_err err = CO_ERR_INIT;
    /* The first item holds the one writer thread while the other 20 queue behind it. */
    for (int i = 0; i < 21; i++) {
        items[i].seq = i;
        items[i].block = i == 0 ? &block : NULL;
        assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, seq_work, seq_done, &items[i], &err),
                         0);
    }
    assert_int_equal(atomic_load(&wakes), 0);
    atomic_store(&block, false);
    wait_ran(21);
    /* 21 completions wait; the first woke the loop, the 20 others rode on that wake-up. */
    for (int i = 0; i < 1000 && coord_db_wakes_saved(db) < 20; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&wakes), 1);
    assert_int_equal(coord_db_wakes_saved(db), 20);
    /* One drain runs them all, in the order they were submitted (one writer). */
    assert_int_equal(coord_db_drain_completions(db), 21);
    assert_int_equal(n_order, 21);
    for (int i = 0; i < 21; i++)
        assert_int_equal(order[i], i);
    /* After a drain, the next completion wakes the loop again (none is lost). */
    struct seq_item last = {.seq = 21};
    assert_int_equal(coord_db_submit(db, COORD_DB_READ, seq_work, seq_done, &last, &err), 0);
    wait_ran(22);
    for (int i = 0; i < 1000 && atomic_load(&wakes) < 2; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&wakes), 2);
    assert_int_equal(coord_db_drain_completions(db), 1);
    assert_int_equal(order[21], 21);
    /* A drain that finds nothing leaves no wake-up owed: the next completion still sends one. */
    assert_int_equal(coord_db_drain_completions(db), 0);
    struct seq_item again = {.seq = 22};
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, seq_work, seq_done, &again, &err), 0);
    wait_ran(23);
    for (int i = 0; i < 1000 && atomic_load(&wakes) < 3; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&wakes), 3);
    coord_db_stop(db); /* runs the completion left */
    assert_int_equal(n_order, 23);
}

/* ---- group commit ---- */

/* True when @user exists, as a connection other than the writer's sees it. */
static bool
committed(const char *user)
{
    struct coord_user u;
    co_err err = CO_ERR_INIT;
    if (coord_store_user_get(side, user, &u, &err) == 0)
        return true;
    assert_int_equal(err.code, CO_E_NOTFOUND);
    return false;
}

/* ---- the commit hook: counts the groups' COMMITs, may refuse them ---- */

static atomic_int commits, commit_items;
static atomic_bool refuse;
static const char *const *hook_absent; /* users the hook checks are not yet visible */

static int
count_commit(struct coord_store *store, int items, void *arg)
{
    (void)store;
    (void)arg;
    atomic_fetch_add(&commits, 1);
    atomic_fetch_add(&commit_items, items);
    /* Before the one COMMIT nothing of the group is visible to another connection. */
    for (const char *const *u = hook_absent; u && *u; u++)
        if (committed(*u))
            return -2; /* noticed by the test through the counts below */
    return atomic_load(&refuse) ? -1 : 0;
}

static void
reset_hook(struct coord_db *db)
{
    atomic_store(&commits, 0);
    atomic_store(&commit_items, 0);
    atomic_store(&refuse, false);
    hook_absent = NULL;
    coord_db_set_commit_hook(db, count_commit, NULL);
}

/* ---- items ---- */

/* Holds the writer thread until released, so that the items after it queue up. */
static atomic_bool hold, holding;

static void
hold_work(struct coord_store *s, void *arg)
{
    (void)s;
    (void)arg;
    atomic_store(&holding, true);
    while (atomic_load(&hold))
        usleep(1000);
}

static void
hold_writer(struct coord_db *db)
{
    co_err err = CO_ERR_INIT;
    atomic_store(&hold, true);
    atomic_store(&holding, false);
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, hold_work, NULL, NULL, &err), 0);
    for (int i = 0; i < 5000 && !atomic_load(&holding); i++)
        usleep(1000);
    assert_true(atomic_load(&holding));
}

static atomic_int done_count;

struct gitem {
    const char *user;  /* the account it creates */
    bool discard;      /* fails as a handler does: coord_db_group_discard() */
    bool grouped;      /* coord_db_group_on_fail() said it runs in a group */
    int rc;            /* its store call */
    co_err err;        /* its own error, then the group's if it failed */
    int fails;         /* its failure answer ran (times) */
    bool failed_first; /* the failure answer ran before the completion */
    bool done;
    struct coord_req r; /* REST items (api_work) */
};

/* @items cleared, item i creating account @users[i]. */
static void
gitems_users(struct gitem *items, const char *const *users, int n)
{
    memset(items, 0, (size_t)n * sizeof(*items));
    for (int i = 0; i < n; i++)
        items[i].user = users[i];
}

static void
g_fail(void *arg, const co_err *err)
{
    struct gitem *it = arg;
    it->fails++;
    it->err = *err;
}

static void
g_work(struct coord_store *s, void *arg)
{
    struct gitem *it = arg;
    it->grouped = coord_db_group_on_fail(g_fail, it);
    struct coord_account a;
    memset(&a, 0, sizeof(a));
    co_strlcpy(a.user_id, it->user, sizeof(a.user_id));
    co_err_clear(&it->err);
    it->rc = coord_store_account_create(s, &a, 5, NULL, &it->err);
    if (it->discard)
        coord_db_group_discard();
}

static void
g_done(void *arg)
{
    struct gitem *it = arg;
    it->failed_first = it->fails > 0;
    it->done = true;
    atomic_fetch_add(&done_count, 1);
}

static void
wait_group_done(struct coord_db *db, int want)
{
    for (int i = 0; i < 30000 && atomic_load(&done_count) < want; i++) { /* a bound, not a time */
        if (coord_db_drain_completions(db) == 0)
            usleep(1000);
    }
    assert_int_equal(atomic_load(&done_count), want);
}

/* Queue @n items behind the held writer thread, release it and wait for every completion. */
static void
run_behind_hold(struct coord_db *db, coord_db_work_fn fn, struct gitem *items, int n)
{
    co_err err = CO_ERR_INIT;
    atomic_store(&done_count, 0);
    hold_writer(db);
    for (int i = 0; i < n; i++)
        assert_int_equal(coord_db_submit(db, COORD_DB_WRITE_GROUP, fn, g_done, &items[i], &err), 0);
    atomic_store(&hold, false);
    wait_group_done(db, n);
}

static void
test_queued_writes_share_one_commit(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 0);
    reset_hook(db);
    static const char *const users[] = {"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", NULL};
    hook_absent = users;
    struct gitem items[8];
    gitems_users(items, users, 8);
    run_behind_hold(db, g_work, items, 8);
    /* One COMMIT for the eight, and nothing was visible before it. */
    assert_int_equal(atomic_load(&commits), 1);
    assert_int_equal(atomic_load(&commit_items), 8);
    int64_t groups, grouped;
    coord_db_group_stats(db, &groups, &grouped);
    assert_int_equal(groups, 1);
    assert_int_equal(grouped, 8);
    for (int i = 0; i < 8; i++) {
        assert_true(items[i].grouped);
        assert_int_equal(items[i].rc, 0);
        assert_int_equal(items[i].fails, 0);
        assert_true(committed(users[i]));
    }
    /* A plain write ends a group: the grouped items after it form a group of their own. */
    struct gitem more[2] = {{.user = "g8"}, {.user = "g9"}};
    hook_absent = NULL;
    co_err err = CO_ERR_INIT;
    atomic_store(&done_count, 0);
    hold_writer(db);
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE_GROUP, g_work, g_done, &more[0], &err), 0);
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE, hold_work, NULL, NULL, &err), 0);
    assert_int_equal(coord_db_submit(db, COORD_DB_WRITE_GROUP, g_work, g_done, &more[1], &err), 0);
    atomic_store(&hold, false);
    wait_group_done(db, 2);
    assert_int_equal(atomic_load(&commits), 3);
    assert_true(committed("g8") && committed("g9"));
    assert_int_equal(more[0].fails + more[1].fails, 0);
    coord_db_stop(db);
}

static void
test_group_max_splits(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 3);
    reset_hook(db);
    struct gitem items[7];
    static const char *const users[] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6"};
    gitems_users(items, users, 7);
    run_behind_hold(db, g_work, items, 7);
    assert_int_equal(atomic_load(&commits), 3); /* 3 + 3 + 1 */
    assert_int_equal(atomic_load(&commit_items), 7);
    for (int i = 0; i < 7; i++)
        assert_true(committed(users[i]));
    coord_db_stop(db);
}

static void
test_item_failure_is_its_own(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 0);
    reset_hook(db);
    struct gitem items[4];
    memset(items, 0, sizeof(items));
    items[0].user = "f_a";
    items[1].user = "f_a"; /* exists by then: a constraint, rolled back alone */
    items[2].user = "f_c";
    items[2].discard = true; /* a handler that fails after writing: all of it undone */
    items[3].user = "f_d";
    run_behind_hold(db, g_work, items, 4);
    assert_int_equal(atomic_load(&commits), 1);
    assert_int_equal(atomic_load(&commit_items), 4);
    assert_int_equal(items[0].rc, 0);
    assert_int_equal(items[1].rc, -1);
    assert_int_equal(items[1].err.code, CO_E_CONFLICT);
    assert_int_equal(items[2].rc, 0);
    assert_int_equal(items[3].rc, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(items[i].fails, 0);
    assert_true(committed("f_a"));
    assert_false(committed("f_c"));
    assert_true(committed("f_d"));
    coord_db_stop(db);
}

static void
test_failed_commit_fails_every_item(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 0);
    reset_hook(db);
    atomic_store(&refuse, true);
    struct gitem items[5];
    static const char *const users[] = {"x0", "x1", "x2", "x0", "x4"};
    gitems_users(items, users, 5);
    run_behind_hold(db, g_work, items, 5);
    assert_int_equal(atomic_load(&commits), 1);
    for (int i = 0; i < 5; i++) {
        /* Every item is told, once, before its completion; even the one that failed alone. */
        assert_int_equal(items[i].fails, 1);
        assert_true(items[i].failed_first);
        assert_int_equal(items[i].err.code, CO_E_UNAVAILABLE);
        assert_false(committed(users[i]));
    }
    /* The writer goes on: the same writes commit in the next group. */
    atomic_store(&refuse, false);
    memset(items, 0, sizeof(items));
    gitems_users(items, users, 3);
    run_behind_hold(db, g_work, items, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(items[i].fails, 0);
        assert_true(committed(users[i]));
    }
    coord_db_stop(db);
}

/* Without grouping (group_max 1, as on PostgreSQL) an item runs alone and commits by itself. */
static void
test_no_grouping(void **state)
{
    (void)state;
    struct coord_db *db = start(1, 1, 0, 1);
    reset_hook(db);
    atomic_store(&refuse, true); /* never asked: no group COMMIT */
    struct gitem items[3] = {{.user = "n0"}, {.user = "n1"}, {.user = "n2", .discard = true}};
    run_behind_hold(db, g_work, items, 3);
    assert_int_equal(atomic_load(&commits), 0);
    for (int i = 0; i < 3; i++) {
        assert_false(items[i].grouped);
        assert_int_equal(items[i].fails, 0);
        assert_true(committed(items[i].user)); /* discard is a no-op alone */
    }
    coord_db_stop(db);
}

/* ---- REST writes through coord_api, with an Idempotency-Key ---- */

static struct coord_config acfg;

static void
api_work(struct coord_store *s, void *arg)
{
    struct gitem *it = arg;
    coord_api_handle(s, &it->r);
}

/* POST /api/v1/users {"user_id": @user} by the admin token, with Idempotency-Key @key. */
static void
api_item(struct gitem *it, const char *user, const char *key)
{
    memset(it, 0, sizeof(*it));
    coord_req_init(&it->r, &acfg);
    it->user = user;
    it->r.route = COORD_R_USERS_CREATE;
    it->r.lane = COORD_DB_WRITE_GROUP;
    it->r.method = COORD_M_POST;
    co_strlcpy(it->r.method_name, "POST", sizeof(it->r.method_name));
    co_strlcpy(it->r.path, "/api/v1/users", sizeof(it->r.path));
    co_strlcpy(it->r.idem_key, key, sizeof(it->r.idem_key));
    it->r.principal.cred = COORD_CRED_ADMIN_TOKEN;
    it->r.principal.is_admin = true;
    char body[128];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", user);
    co_buf_append(&it->r.body, body, strlen(body));
}

static bool
body_has(const struct gitem *it, const char *s)
{
    return it->r.resp.len && strstr((const char *)it->r.resp.data, s) != NULL;
}

static void
test_failed_commit_rolls_back_idempotency_records(void **state)
{
    (void)state;
    memset(&acfg, 0, sizeof(acfg));
    acfg.max_body_bytes = 65536;
    acfg.starting_credits = 1;
    struct coord_db *db = start(1, 1, 0, 0);
    reset_hook(db);
    atomic_store(&refuse, true);
    struct gitem items[3];
    api_item(&items[0], "i_a", "key-a");
    api_item(&items[1], "i_a", "key-a"); /* the same request again, in the same group */
    api_item(&items[2], "i_b", "key-b");
    run_behind_hold(db, api_work, items, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(items[i].r.status, 503);
        assert_true(body_has(&items[i], "\"unavailable\""));
        assert_int_equal(items[i].r.n_changes, 0);
        assert_false(items[i].r.wrote_state);
        assert_false(items[i].r.idem_replayed);
        coord_req_release(&items[i].r);
    }
    assert_false(committed("i_a"));
    assert_false(committed("i_b"));
    /* No key was kept: the client's retry runs the request, once; a second retry replays. */
    atomic_store(&refuse, false);
    api_item(&items[0], "i_a", "key-a");
    api_item(&items[1], "i_a", "key-a");
    api_item(&items[2], "i_b", "key-b");
    run_behind_hold(db, api_work, items, 3);
    assert_int_equal(atomic_load(&commits), 2);
    assert_int_equal(items[0].r.status, 201);
    assert_false(items[0].r.idem_replayed);
    assert_int_equal(items[1].r.status, 201);
    assert_true(items[1].r.idem_replayed);
    assert_int_equal(items[2].r.status, 201);
    assert_true(committed("i_a"));
    assert_true(committed("i_b"));
    for (int i = 0; i < 3; i++)
        coord_req_release(&items[i].r);
    /* A request of its own that fails (a 409: the user exists) commits nothing, alone. */
    api_item(&items[0], "i_a", "key-c");
    api_item(&items[1], "i_c", "key-d");
    run_behind_hold(db, api_work, items, 2);
    assert_int_equal(items[0].r.status, 409);
    assert_int_equal(items[1].r.status, 201);
    assert_true(committed("i_c"));
    for (int i = 0; i < 2; i++)
        coord_req_release(&items[i].r);
    coord_db_stop(db);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_runs_off_thread_and_completes_on_drain),
        cmocka_unit_test(test_queue_cap),
        cmocka_unit_test(test_stop_finishes_queued_work),
        cmocka_unit_test(test_one_wake_per_batch_of_completions),
        cmocka_unit_test(test_queued_writes_share_one_commit),
        cmocka_unit_test(test_group_max_splits),
        cmocka_unit_test(test_item_failure_is_its_own),
        cmocka_unit_test(test_failed_commit_fails_every_item),
        cmocka_unit_test(test_no_grouping),
        cmocka_unit_test(test_failed_commit_rolls_back_idempotency_records),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
