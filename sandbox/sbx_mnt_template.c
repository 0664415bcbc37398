/*
 * Mount templates (long-lived callers, as root): for each image, a mount namespace holding only
 * the sandbox's root as init builds it (the image folder bound read-only with its host folders,
 * pivot_root'ed, the host's mounts detached), made once by a short-lived helper process and kept
 * as a descriptor.  Init then enters a copy of it (setns + unshare(CLONE_NEWNS)) and adds its
 * fresh mounts (/tmp, /work, /dev, /proc) instead of copying the host's mount table in clone(),
 * making every mount private, binding the root and its folders, remounting, pivot_root'ing and
 * detaching the host's mounts again for every job.
 *
 * What a job can reach of a template: nothing.  Its init's copy is its own (every mount of the
 * template is private, so nothing propagates between the template and its copies), and the job
 * runs without capabilities and with mount, setns and unshare denied by seccomp.  The template
 * itself holds no writable mount: its root and folders are read-only binds of the same folders
 * a per-job build binds.  A template is used only for the very image folder it was built from
 * (device and inode, checked by sbx_image_resolve() on every run); another folder at the same
 * path gets a template of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "sbx_child.h"
#include "sbx_image.h"
#include "sbx_internal.h"

#define TEMPLATES_MAX 8

struct template
{
    struct sbx_image *img; /* sbx_fresh_alloc() */
    int fd;                /* the mount namespace */
};

static pthread_mutex_t tmpl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct template templates[TEMPLATES_MAX];
static unsigned n_templates, next_evict;

static bool
same_image(const struct sbx_image *a, const struct sbx_image *b)
{
    if (a->root_dev != b->root_dev || a->root_ino != b->root_ino || a->n_binds != b->n_binds ||
        strcmp(a->root, b->root) != 0)
        return false;
    for (int i = 0; i < a->n_binds; i++) {
        if (strcmp(a->bind_src[i], b->bind_src[i]) != 0 ||
            strcmp(a->bind_dst[i], b->bind_dst[i]) != 0)
            return false;
    }
    return true;
}

/* Build the template of @img with a helper process; its namespace's descriptor in *@out. */
static int
build(const struct sbx_image *img, int *out, co_err *err)
{
    struct child_ctx *c = sbx_fresh_alloc(sizeof(*c));
    c->img = img;
    int st[2] = {-1, -1}, hold[2] = {-1, -1};
    int rc = -1;
    if (pipe2(st, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
        co_err_sys(err, errno, "mount template: cannot create pipe");
        goto out;
    }
    c->status_w = st[1];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0)
        sbx_child_template_main(c, hold[0]);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(st[1]);
    st[1] = -1;
    close(hold[0]);
    hold[0] = -1;
    if (pid < 0) {
        co_err_sys(err, saved, "mount template: cannot clone the helper");
        goto out;
    }
    struct child_msg m;
    memset(&m, 0, sizeof(m));
    ssize_t n;
    while ((n = read(st[0], &m, sizeof(m))) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(m) && m.kind == MSG_EXIT) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
        *out = open(path, O_RDONLY | O_CLOEXEC);
        if (*out >= 0)
            rc = 0;
        else
            co_err_sys(err, errno, "mount template: cannot open '%s'", path);
    } else if (n == (ssize_t)sizeof(m)) {
        co_err_sys(err, m.err, "mount template: step '%s' failed (%s)", sbx_child_step_name(m.step),
                   sbx_child_step_what(m.step));
    } else {
        co_err_set(err, CO_E_INTERNAL, "mount template: the helper ended without a report");
    }
    /* Let the helper go (a byte, so that a copy of the pipe elsewhere cannot hold it). */
    char byte = 'x';
    (void)!write(hold[1], &byte, 1);
    while (waitpid((pid_t)pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
out:
    for (int i = 0; i < 2; i++) {
        if (st[i] >= 0)
            close(st[i]);
        if (hold[i] >= 0)
            close(hold[i]);
    }
    sbx_fresh_free(c, sizeof(*c));
    return rc;
}

int
sbx_mnt_template_get(const struct sbx_image *img, int *fd, co_err *err)
{
    *fd = -1;
    pthread_mutex_lock(&tmpl_mu);
    for (unsigned i = 0; i < n_templates; i++) {
        if (same_image(templates[i].img, img)) {
            *fd = fcntl(templates[i].fd, F_DUPFD_CLOEXEC, 0);
            int saved = errno;
            pthread_mutex_unlock(&tmpl_mu);
            if (*fd < 0)
                return co_err_sys(err, saved, "mount template: cannot duplicate its descriptor");
            return 0;
        }
    }
    /* Built under the lock: at most one helper at a time, and only once per image. */
    int nfd = -1;
    if (build(img, &nfd, err) < 0) {
        pthread_mutex_unlock(&tmpl_mu);
        return -1;
    }
    struct template *t;
    if (n_templates < TEMPLATES_MAX) {
        t = &templates[n_templates++];
        t->img = sbx_fresh_alloc(sizeof(*t->img));
    } else {
        /* The oldest goes; runs that use it hold copies of its descriptor. */
        t = &templates[next_evict];
        next_evict = (next_evict + 1) % TEMPLATES_MAX;
        close(t->fd);
    }
    *t->img = *img;
    t->fd = nfd;
    *fd = fcntl(nfd, F_DUPFD_CLOEXEC, 0);
    int saved = errno;
    pthread_mutex_unlock(&tmpl_mu);
    if (*fd < 0)
        return co_err_sys(err, saved, "mount template: cannot duplicate its descriptor");
    return 0;
}
