/* agent_pool: reused job threads (see agent_pool.h). */
#include "agent_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "co_alloc.h"

struct worker {
    struct worker *next;
    struct agent_pool *pool;
    pthread_t thread;
    pthread_cond_t cv; /* signalled when a task is handed over or the pool stops */
    agent_pool_fn fn;  /* under pool->mu: the task handed over, NULL while idle */
    void *arg;
};

struct agent_pool {
    pthread_mutex_t mu;
    pthread_cond_t done_cv; /* a worker exited (agent_pool_free waits on it) */
    unsigned keep_idle;
    unsigned started;
    unsigned live; /* workers started and not yet on the ended list */
    unsigned n_idle;
    struct worker *idle;  /* workers waiting for a task (a stack: the last one used first) */
    struct worker *ended; /* workers that exited, to be joined */
    bool stopping;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct agent_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!w->fn && !p->stopping)
            pthread_cond_wait(&w->cv, &p->mu);
        if (!w->fn)
            break; /* stopping, idle */
        agent_pool_fn fn = w->fn;
        void *a = w->arg;
        pthread_mutex_unlock(&p->mu);
        fn(a);
        pthread_mutex_lock(&p->mu);
        w->fn = NULL;
        w->arg = NULL;
        if (p->stopping || p->n_idle >= p->keep_idle)
            break;
        w->next = p->idle;
        p->idle = w;
        p->n_idle++;
    }
    /* Not on the idle list here: an idle worker woken by stopping was taken off it by free. */
    w->next = p->ended;
    p->ended = w;
    p->live--;
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Join and free the workers that exited (called without p->mu). */
static void
join_ended(struct agent_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct worker *w = p->ended;
    p->ended = NULL;
    pthread_mutex_unlock(&p->mu);
    while (w) {
        struct worker *next = w->next;
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cv);
        free(w);
        w = next;
    }
}

struct agent_pool *
agent_pool_new(unsigned keep_idle)
{
    struct agent_pool *p = co_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->keep_idle = keep_idle;
    return p;
}

int
agent_pool_run(struct agent_pool *p, agent_pool_fn fn, void *arg, co_err *err)
{
    join_ended(p);
    pthread_mutex_lock(&p->mu);
    struct worker *w = p->idle;
    if (w) {
        p->idle = w->next;
        p->n_idle--;
        w->next = NULL;
        w->fn = fn;
        w->arg = arg;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    pthread_mutex_unlock(&p->mu);

    w = co_xcalloc(1, sizeof(*w));
    w->pool = p;
    w->fn = fn;
    w->arg = arg;
    pthread_cond_init(&w->cv, NULL);
    pthread_mutex_lock(&p->mu);
    p->live++;
    pthread_mutex_unlock(&p->mu);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_mutex_lock(&p->mu);
    if (rc != 0) {
        p->live--;
    } else {
        p->started++;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        pthread_cond_destroy(&w->cv);
        free(w);
        return co_err_sys(err, rc, "cannot start a job thread");
    }
    return 0;
}

void
agent_pool_stats(struct agent_pool *p, unsigned *started, unsigned *idle)
{
    pthread_mutex_lock(&p->mu);
    *started = p->started;
    *idle = p->n_idle;
    pthread_mutex_unlock(&p->mu);
}

void
agent_pool_free(struct agent_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    /* Wake the idle workers: each exits. */
    for (struct worker *w = p->idle; w; w = w->next)
        pthread_cond_signal(&w->cv);
    p->idle = NULL;
    p->n_idle = 0;
    /* Busy workers end their tasks, then exit too (stopping); wait until every worker has. */
    while (p->live > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    join_ended(p);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
