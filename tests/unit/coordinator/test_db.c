/* Unit tests of coordinator/coord_db.c: the database executor (threads, lanes, completions). */
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
#include "coord_db.h"

static char dir[] = "/tmp/cacheout-test-db-XXXXXX";
static char url[128];

static int
setup_dir(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(url, sizeof(url), "sqlite:///%s/t.db", dir);
    return 0;
}

static int
teardown_dir(void **state)
{
    (void)state;
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
start(int writers, int readers, int max_queue)
{
    struct coord_store_config sc = {.url = url,
                                    .starting_credits = 1,
                                    .worker_timeout_ms = 1000,
                                    .max_workers = 10,
                                    .output_cap_bytes = 1024};
    struct coord_db_options o = {
        .store = &sc, .writers = writers, .readers = readers, .max_queue = max_queue};
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
    struct coord_db *db = start(1, 2, 0);
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
    struct coord_db *db = start(1, 1, 2);
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
    struct coord_db *db = start(1, 1, 0);
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
    struct coord_db *db = start(1, 1, 0);
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_runs_off_thread_and_completes_on_drain),
        cmocka_unit_test(test_queue_cap),
        cmocka_unit_test(test_stop_finishes_queued_work),
        cmocka_unit_test(test_one_wake_per_batch_of_completions),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
