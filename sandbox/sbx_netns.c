/*
 * sbx_prewarm(): a pool of fresh network namespaces for jobs with network "none".  Creating a
 * network namespace is the most expensive part of a sandbox start (about 0.8 ms of the kernel's
 * time here, against about 0.1 ms for the pid, ipc and uts namespaces): with sbx_prewarm() a
 * background thread creates them ahead of time.  Each namespace is handed to exactly one job and
 * never reused, so a job still gets a fresh, empty namespace; only the creation moves off its
 * critical path. The janitor of sbx_async_cleanup() is in sbx_janitor.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "co_alloc.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_internal.h"
#include "sbx_userns.h"

#define POOL_MAX 32

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER; /* any change of the pool state */
static int pool_fds[POOL_MAX];
static unsigned pool_n;      /* namespaces ready */
static unsigned pool_target; /* how many to keep ready */
static bool pool_refill;     /* replace the ones taken (else: create pool_budget more, once) */
static unsigned pool_budget;
static bool pool_pending; /* a namespace is being created */
static bool pool_started;

/* Create a namespace from this (dedicated) thread and switch the thread back to @home. */
static int
create_one(int home)
{
    if (unshare(CLONE_NEWNET) < 0)
        return -1;
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int saved = errno;
    if (setns(home, CLONE_NEWNET) < 0) {
        /* This thread cannot return to the host namespace: stop filling the pool. */
        if (fd >= 0)
            close(fd);
        errno = saved;
        return -2;
    }
    errno = saved;
    return fd;
}

static bool
pool_wants_more(void)
{
    return pool_n < pool_target && (pool_refill || pool_budget > 0);
}

static void *
pool_main(void *arg)
{
    int home = (int)(intptr_t)arg;
    for (;;) {
        pthread_mutex_lock(&pool_mu);
        while (!pool_wants_more())
            pthread_cond_wait(&pool_cv, &pool_mu);
        pool_pending = true;
        if (!pool_refill)
            pool_budget--;
        pthread_mutex_unlock(&pool_mu);
        int fd = create_one(home);
        pthread_mutex_lock(&pool_mu);
        pool_pending = false;
        if (fd >= 0)
            pool_fds[pool_n++] = fd;
        if (fd == -2)
            pool_target = 0;
        pthread_cond_broadcast(&pool_cv);
        pthread_mutex_unlock(&pool_mu);
        if (fd == -2)
            break;
        if (fd < 0) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    close(home);
    return NULL;
}

int
sbx_thread_start(void *(*fn)(void *), void *arg, const char *what, co_err *err)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (e != 0)
        return co_err_sys(err, e, "cannot start the thread of %s", what);
    return 0;
}

int
sbx_netns_create(int *out, co_err *err)
{
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return co_err_sys(err, errno, "cannot open '/proc/thread-self/ns/net'");
    int fd = create_one(home);
    int saved = errno;
    close(home);
    if (fd == -2)
        return co_err_sys(err, saved, "cannot return to the host network namespace");
    if (fd < 0)
        return co_err_sys(err, saved, "cannot create a network namespace");
    *out = fd;
    return 0;
}

int
sbx_prewarm(unsigned n, bool refill, co_err *err)
{
    if (n > POOL_MAX)
        n = POOL_MAX;
    /*
     * Rootless: a network namespace needs CAP_SYS_ADMIN over the host's user namespace, so each
     * sandbox makes its own inside the sandboxes' user namespace.  What costs time there is that
     * user namespace (its maps take a few milliseconds to write), made once per process: start
     * making it now, in a thread.
     */
    if (sbx_rootless())
        return n > 0 ? sbx_userns_prepare(err) : 0;
    pthread_mutex_lock(&pool_mu);
    int rc = 0;
    if (n > 0 && !pool_started) {
        int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home < 0) {
            rc = co_err_sys(err, errno, "cannot open '/proc/self/ns/net'");
            goto out;
        }
        rc = sbx_thread_start(pool_main, (void *)(intptr_t)home, "the network namespace pool", err);
        if (rc < 0) {
            close(home);
            goto out;
        }
        pool_started = true;
    }
    pool_target = n;
    pool_refill = refill;
    pool_budget = refill ? 0 : n;
    pthread_cond_broadcast(&pool_cv);
out:
    pthread_mutex_unlock(&pool_mu);
    return rc;
}

int
sbx_netns_take(void)
{
    int fd = -1;
    pthread_mutex_lock(&pool_mu);
    /* One being created is most of the way there: wait for it rather than make another. */
    while (pool_n == 0 && pool_pending)
        pthread_cond_wait(&pool_cv, &pool_mu);
    if (pool_n > 0) {
        fd = pool_fds[--pool_n];
        pthread_cond_broadcast(&pool_cv);
    }
    pthread_mutex_unlock(&pool_mu);
    return fd;
}
