/* Unit tests for agent/agent_pool.c: tasks run, threads are reused, idle workers are capped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdbool.h>

#include "agent_pool.h"

/* A task that waits until released, so that several run at once. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int running, ran;
    pthread_t seen[16];
};

static void
gated_task(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->seen[g->ran % 16] = pthread_self();
    g->running++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    g->running--;
    g->ran++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void
gate_init(struct gate *g, bool open)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = open;
    g->running = g->ran = 0;
}

static void
gate_wait(struct gate *g, int running, int ran)
{
    pthread_mutex_lock(&g->mu);
    while (g->running != running || g->ran != ran)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void
gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static unsigned
started(struct agent_pool *p)
{
    unsigned n, idle;
    agent_pool_stats(p, &n, &idle);
    return n;
}

/* Wait until @n workers are idle (each goes idle just after its task returns). */
static void
wait_idle(struct agent_pool *p, unsigned n)
{
    for (;;) {
        unsigned s, idle;
        agent_pool_stats(p, &s, &idle);
        if (idle == n)
            return;
        sched_yield();
    }
}

static void *
open_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    gate_open(arg);
    return NULL;
}

static void
test_reuse(void **state)
{
    (void)state;
    struct agent_pool *p = agent_pool_new(2);
    struct gate g;
    gate_init(&g, true);
    co_err err = CO_ERR_INIT;
    /* One task after another: the first thread serves them all. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(agent_pool_run(p, gated_task, &g, &err), 0);
        gate_wait(&g, 0, i + 1);
        wait_idle(p, 1);
    }
    assert_int_equal(started(p), 1);
    agent_pool_free(p);
}

static void
test_concurrent(void **state)
{
    (void)state;
    struct agent_pool *p = agent_pool_new(2);
    struct gate g;
    gate_init(&g, false);
    co_err err = CO_ERR_INIT;
    /* Four tasks at once: four workers, none waits for another's task. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(agent_pool_run(p, gated_task, &g, &err), 0);
    gate_wait(&g, 4, 0);
    assert_int_equal(started(p), 4);
    gate_open(&g);
    gate_wait(&g, 0, 4);
    /* Two of them stay idle (keep_idle), two exit; the next tasks start no thread. */
    wait_idle(p, 2);
    pthread_mutex_lock(&g.mu);
    g.open = false;
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(agent_pool_run(p, gated_task, &g, &err), 0);
    assert_int_equal(agent_pool_run(p, gated_task, &g, &err), 0);
    gate_wait(&g, 2, 4);
    assert_int_equal(started(p), 4);
    gate_open(&g);
    agent_pool_free(p);
    assert_int_equal(g.ran, 6);
}

static void
test_free_waits(void **state)
{
    (void)state;
    struct agent_pool *p = agent_pool_new(0);
    struct gate g;
    gate_init(&g, false);
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_pool_run(p, gated_task, &g, &err), 0);
    gate_wait(&g, 1, 0);
    /* Free waits for the task still running to end (opened a little later by another thread). */
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_later, &g), 0);
    agent_pool_free(p);
    pthread_join(opener, NULL);
    assert_int_equal(g.ran, 1);
    agent_pool_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_free_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
