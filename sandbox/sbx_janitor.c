/*
 * sbx_async_cleanup(): a janitor thread that reaps the init of a finished sandbox, kills and
 * removes its cgroup and then releases its slot, so that sbx_run() can return as soon as the
 * job's results are in.  The slot stays locked until the clean-up is done, so nothing is shared
 * early.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_internal.h"

struct janitor_item {
    pid_t pid;
    unsigned slot;
    struct sbx_cgroup *cg;
    int lock_fd;
    struct janitor_item *next;
};

static pthread_mutex_t jan_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jan_cv = PTHREAD_COND_INITIALIZER;
static struct janitor_item *jan_head, *jan_tail;
static bool jan_started;

static void *
janitor_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&jan_mu);
        while (!jan_head)
            pthread_cond_wait(&jan_cv, &jan_mu);
        struct janitor_item *it = jan_head;
        jan_head = it->next;
        if (!jan_head)
            jan_tail = NULL;
        pthread_mutex_unlock(&jan_mu);

        int st;
        while (waitpid(it->pid, &st, __WALL) < 0 && errno == EINTR)
            ;
        co_err e = CO_ERR_INIT;
        /* A cgroup that cannot be emptied or removed is left for the next run of this slot,
         * which removes leftovers before it starts. */
        bool kept = sbx_cgroup_recycle(it->cg, &e) == 1;
        close(it->lock_fd);
        if (kept)
            sbx_slot_recycled(it->slot);
        sbx_fresh_free(it->cg, sizeof(*it->cg));
        free(it);
    }
    return NULL;
}

bool
sbx_janitor_enabled(void)
{
    pthread_mutex_lock(&jan_mu);
    bool on = jan_started;
    pthread_mutex_unlock(&jan_mu);
    return on;
}

void
sbx_janitor_add(pid_t pid, unsigned slot, struct sbx_cgroup *cg, int lock_fd)
{
    struct janitor_item *it = co_xmalloc(sizeof(*it));
    it->pid = pid;
    it->slot = slot;
    it->cg = cg;
    it->lock_fd = lock_fd;
    it->next = NULL;
    pthread_mutex_lock(&jan_mu);
    if (jan_tail)
        jan_tail->next = it;
    else
        jan_head = it;
    jan_tail = it;
    pthread_cond_signal(&jan_cv);
    pthread_mutex_unlock(&jan_mu);
}

int
sbx_async_cleanup(co_err *err)
{
    pthread_mutex_lock(&jan_mu);
    int rc = 0;
    if (!jan_started) {
        rc = sbx_thread_start(janitor_main, NULL, "the sandbox janitor", err);
        jan_started = rc == 0;
    }
    pthread_mutex_unlock(&jan_mu);
    return rc;
}
