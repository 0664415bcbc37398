/*
 * sbx_prewarm(): a pool of fresh namespaces for jobs with network "none".  Creating a network
 * namespace is the most expensive part of a sandbox start (about 0.8 ms of the kernel's time
 * here, against about 0.05 ms for each of the pid, ipc and uts namespaces): with sbx_prewarm() a
 * background thread creates them ahead of time, each set (network, IPC, UTS) with one unshare().
 * Each set is handed to exactly one job and never reused, so a job still gets fresh, empty
 * namespaces; only the creation moves off its critical path.  The janitor of
 * sbx_async_cleanup() is in sbx_janitor.c.
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
static struct sbx_nsset pool_sets[POOL_MAX];
static unsigned pool_n;      /* namespaces ready */
static unsigned pool_target; /* how many to keep ready */
static bool pool_refill;     /* replace the ones taken (else: create pool_budget more, once) */
static unsigned pool_budget;
static bool pool_pending; /* a namespace is being created */
static bool pool_started;

/* The namespaces of a set, in the order of struct sbx_nsset. */
static const struct {
    int flag;
    const char *path;
} ns_kinds[3] = {{CLONE_NEWNET, "/proc/thread-self/ns/net"},
                 {CLONE_NEWIPC, "/proc/thread-self/ns/ipc"},
                 {CLONE_NEWUTS, "/proc/thread-self/ns/uts"}};

static int *
nsset_fd(struct sbx_nsset *s, int k)
{
    return k == 0 ? &s->net : k == 1 ? &s->ipc : &s->uts;
}

static void
nsset_close(struct sbx_nsset *s)
{
    for (int k = 0; k < 3; k++) {
        int *fd = nsset_fd(s, k);
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
    }
}

/*
 * Create @n_kinds namespaces of ns_kinds (1: the network one only) from this thread, into *@out,
 * and switch the thread back to @home's.  Returns 0, -1 (nothing made) or -2 (the thread could
 * not return to a host namespace).  Unsharing the IPC namespace also detaches the thread from
 * its SysV semaphore undo list: the pool's thread has none.
 */
static int
create_set(struct sbx_nsset *home, int n_kinds, struct sbx_nsset *out)
{
    *out = (struct sbx_nsset){-1, -1, -1};
    int flags = 0;
    for (int k = 0; k < n_kinds; k++)
        flags |= ns_kinds[k].flag;
    if (unshare(flags) < 0)
        return -1;
    int rc = 0, saved = 0;
    for (int k = 0; k < n_kinds; k++) {
        int fd = open(ns_kinds[k].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && rc == 0) {
            rc = -1;
            saved = errno;
        }
        *nsset_fd(out, k) = fd;
    }
    for (int k = 0; k < n_kinds; k++) {
        if (setns(*nsset_fd(home, k), ns_kinds[k].flag) < 0) {
            /* This thread cannot return to the host namespace: stop filling the pool. */
            saved = errno;
            rc = -2;
        }
    }
    if (rc < 0)
        nsset_close(out);
    errno = saved;
    return rc;
}

static bool
pool_wants_more(void)
{
    return pool_n < pool_target && (pool_refill || pool_budget > 0);
}

static void *
pool_main(void *arg)
{
    struct sbx_nsset *home = arg;
    for (;;) {
        pthread_mutex_lock(&pool_mu);
        while (!pool_wants_more())
            pthread_cond_wait(&pool_cv, &pool_mu);
        pool_pending = true;
        if (!pool_refill)
            pool_budget--;
        pthread_mutex_unlock(&pool_mu);
        struct sbx_nsset set;
        int rc = create_set(home, 3, &set);
        pthread_mutex_lock(&pool_mu);
        pool_pending = false;
        if (rc == 0)
            pool_sets[pool_n++] = set;
        if (rc == -2)
            pool_target = 0;
        pthread_cond_broadcast(&pool_cv);
        pthread_mutex_unlock(&pool_mu);
        if (rc == -2)
            break;
        if (rc < 0) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    nsset_close(home);
    free(home);
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
    struct sbx_nsset home = {-1, -1, -1}, set;
    home.net = open(ns_kinds[0].path, O_RDONLY | O_CLOEXEC);
    if (home.net < 0)
        return co_err_sys(err, errno, "cannot open '%s'", ns_kinds[0].path);
    int rc = create_set(&home, 1, &set);
    int saved = errno;
    close(home.net);
    if (rc == -2)
        return co_err_sys(err, saved, "cannot return to the host network namespace");
    if (rc < 0)
        return co_err_sys(err, saved, "cannot create a network namespace");
    *out = set.net;
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
        /* The pool's thread returns to the namespaces of this one after each set. */
        struct sbx_nsset *home = co_xcalloc(1, sizeof(*home));
        *home = (struct sbx_nsset){-1, -1, -1};
        for (int k = 0; k < 3; k++) {
            *nsset_fd(home, k) = open(ns_kinds[k].path, O_RDONLY | O_CLOEXEC);
            if (*nsset_fd(home, k) < 0) {
                rc = co_err_sys(err, errno, "cannot open '%s'", ns_kinds[k].path);
                nsset_close(home);
                free(home);
                goto out;
            }
        }
        rc = sbx_thread_start(pool_main, home, "the namespace pool", err);
        if (rc < 0) {
            nsset_close(home);
            free(home);
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
sbx_nsset_take(struct sbx_nsset *out)
{
    int rc = -1;
    *out = (struct sbx_nsset){-1, -1, -1};
    pthread_mutex_lock(&pool_mu);
    /* One being created is most of the way there: wait for it rather than make another. */
    while (pool_n == 0 && pool_pending)
        pthread_cond_wait(&pool_cv, &pool_mu);
    if (pool_n > 0) {
        *out = pool_sets[--pool_n];
        pthread_cond_broadcast(&pool_cv);
        rc = 0;
    }
    pthread_mutex_unlock(&pool_mu);
    return rc;
}
