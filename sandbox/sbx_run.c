/*
 * sbx_run(), the parent's side: prepare everything (slot, cgroup, image, mount options,
 * argv/envp, seccomp program, work file descriptors), clone one child into new mount, pid, net,
 * ipc and uts namespaces, wait for it while streaming its output, and collect the result.  The
 * steps work on one struct run (below).  The child's side, pid 1 of the sandbox ("init"), is in
 * sbx_child.c; the janitor of sbx_async_cleanup() in sbx_janitor.c.
 *
 * When init exits the kernel kills every other process of the pid namespace, so nothing a job
 * leaves behind survives it; the cgroup is then killed and removed as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_time.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_image.h"
#include "sbx_internal.h"
#include "sbx_seccomp.h"
#include "sbx_child.h"
#include "sbx_userns.h"

#define SBX_MEMLOCK_BYTES (8 << 20)
#define SBX_STACK_BYTES (8 << 20)

/* ---- slots ---------------------------------------------------------------------------------- */

static atomic_uint next_slot;

/* Slots whose cgroup the janitor kept for reuse (sbx_cgroup_recycle()), most recent last. */
static pthread_mutex_t recycled_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned recycled[SBX_MAX_SLOTS];
static unsigned n_recycled;

void
sbx_slot_recycled(unsigned slot)
{
    pthread_mutex_lock(&recycled_mu);
    if (n_recycled < SBX_MAX_SLOTS)
        recycled[n_recycled++] = slot;
    pthread_mutex_unlock(&recycled_mu);
}

/* Lock slot @s: 1 when taken, 0 when busy, -1 on errors. */
static int
slot_try(const char *lock_dir, unsigned s, int *lock_fd, co_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%u.lock", lock_dir, s);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        /* The folder is made on first use (not checked on every run: a few path walks). */
        if (sbx_mkdir_p(lock_dir, 0700, err) < 0)
            return -1;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return co_err_sys(err, errno, "cannot open slot lock '%s'", path);
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        *lock_fd = fd;
        return 1;
    }
    int saved = errno;
    close(fd);
    if (saved != EWOULDBLOCK)
        return co_err_sys(err, saved, "cannot lock '%s'", path);
    return 0;
}

int
sbx_slot_acquire(const char *lock_dir, unsigned *slot, int *lock_fd, co_err *err)
{
    /* First a slot whose emptied cgroup this process kept (no mkdir/rmdir), if one is free. */
    for (;;) {
        pthread_mutex_lock(&recycled_mu);
        bool have = n_recycled > 0;
        unsigned s = have ? recycled[--n_recycled] : 0;
        pthread_mutex_unlock(&recycled_mu);
        if (!have)
            break;
        int rc = slot_try(lock_dir, s, lock_fd, err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *slot = s;
            return 0;
        }
    }
    unsigned start = atomic_fetch_add(&next_slot, 1);
    for (unsigned k = 0; k < SBX_MAX_SLOTS; k++) {
        unsigned s = (start + k) % SBX_MAX_SLOTS;
        int rc = slot_try(lock_dir, s, lock_fd, err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *slot = s;
            return 0;
        }
    }
    return co_err_set(err, CO_E_LIMIT, "all %d sandbox slots are busy", SBX_MAX_SLOTS);
}

/* ---- environment ---------------------------------------------------------------------------- */

const char **
sbx_build_env(const char *const *extra)
{
    size_t n = 0;
    while (extra && extra[n])
        n++;
    const char **env = co_xcalloc(n + 4, sizeof(*env));
    size_t k = 0;
    env[k++] = "PATH=" SBX_DEFAULT_PATH;
    env[k++] = "HOME=/work";
    env[k++] = "LANG=C.UTF-8";
    for (size_t i = 0; i < n; i++) {
        size_t klen = (size_t)(strchr(extra[i], '=') - extra[i]) + 1;
        size_t j = 0;
        for (; j < k; j++) {
            if (strncmp(env[j], extra[i], klen) == 0)
                break;
        }
        env[j] = extra[i];
        if (j == k)
            k++;
    }
    env[k] = NULL;
    return env;
}

/* A copy of the NULL-terminated string array @v in one allocation (freed with free()). */
static char **
copy_strv(const char *const *v)
{
    size_t n = 0, bytes = 0;
    for (; v[n]; n++)
        bytes += strlen(v[n]) + 1;
    char **out = co_xmalloc((n + 1) * sizeof(char *) + bytes);
    char *p = (char *)(out + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        memcpy(p, v[i], len);
        out[i] = p;
        p += len;
    }
    out[n] = NULL;
    return out;
}

/* ---- the parent ----------------------------------------------------------------------------- */

struct stream {
    int fd;
    enum sbx_stream which;
    int64_t bytes;
    bool truncated;
    struct co_buf buf;
};

/*
 * One sandbox run, seen from the parent.  It owns every descriptor and buffer of the run:
 * run_release(), the cleanup of sbx_run_ex()'s local, closes and frees whatever it still holds,
 * so a step that hands something over takes it out (co_steal, co_steal_fd).  The steps, in
 * order (each failing one sets the result to internal_error and returns -1: the job did not run):
 *
 *   run_prepare  spec, privileges, seccomp program, cgroup layout, image, slot, work files,
 *                pipes, the child's context
 *   run_clone    clone init into its namespaces; meanwhile create the cgroup and the network
 *                namespace, then let init go on
 *   run_wait     stream the output; enforce wall and CPU time, cancellation, output limits
 *   run_collect  reap init (or hand it to the janitor), read the cgroup's figures, set the status
 *   run_finish   remove the cgroup (unless the janitor has it)
 */
struct run {
    const struct sbx_spec *spec;
    const struct sbx_run_opts *opts;
    struct sbx_result *res;
    /* run_prepare */
    const struct sbx_userns *uns; /* rootless: the user namespace of the process's sandboxes */
    const struct sbx_cgroup_host *host;
    const struct sock_fprog *prog;
    struct sbx_image *img;
    struct sbx_cgroup *cg; /* NULL once handed to the janitor */
    struct sbx_cg_limits lim;
    int lock_fd;   /* the slot's lock */
    int *file_fds; /* per work file: host fd or -1 */
    mode_t *file_modes;
    int out_r, out_w, err_r, err_w; /* the job's stdout and stderr */
    int status_r, status_w;         /* struct child_msg from init */
    int go_parent, go_child;        /* the parent's "go" (a socket pair) */
    int userns_fd;                  /* rootless: borrowed from sbx_userns_shared() */
    int mnt_fd;                     /* the image's mount template (a copy), or -1 */
    const char **envp;
    char **argv_copy, **envp_copy;
    struct child_ctx *c;
    /* run_clone */
    pid_t pid; /* init; 0 once reaped elsewhere */
    int pidfd;
    struct sbx_nsset ns; /* network "none": the namespaces init enters (ns_via_go) */
    int64_t t0;
    /* run_wait */
    struct stream out, err;
    enum sbx_status killed; /* why the parent killed the job, SBX_OK if it did not */
    bool early;             /* a janitor runs: return as soon as the job's end is reported */
    struct child_msg setup, exec_err, exitm;
    int64_t t_end;
};

/* Fill @res as the internal error of @step; returns -1. */
static int
internal(struct sbx_result *res, co_err *err, const char *step, int errnum)
{
    res->status = SBX_INTERNAL_ERROR;
    res->exit_code = -1;
    res->signal = 0;
    co_strlcpy(res->error_step, step, sizeof(res->error_step));
    res->error_errno = errnum ? errnum : err->sys_errno;
    co_strlcpy(res->error_msg, err->msg, sizeof(res->error_msg));
    return -1;
}

static void
kill_job(struct run *r, enum sbx_status why)
{
    if (r->killed == SBX_OK)
        r->killed = why;
    kill(r->pid, SIGKILL);
}

static void
take_output(struct run *r, struct stream *s, const char *data, size_t n)
{
    int64_t cap = r->spec->output_limit;
    int64_t room = cap - (s->bytes < cap ? s->bytes : cap);
    size_t keep = (int64_t)n < room ? n : (size_t)room;
    s->bytes += (int64_t)n;
    if (keep > 0) {
        if (r->opts && r->opts->on_output)
            r->opts->on_output(r->opts->ud, s->which, data, keep);
        if (!r->opts || r->opts->capture)
            co_buf_append(&s->buf, data, keep);
    }
    if (keep < n && !s->truncated) {
        s->truncated = true;
        if (r->spec->kill_on_output_limit)
            kill_job(r, SBX_OUTPUT_LIMIT);
    }
}

/* Read what is available on @s; closes it at EOF. */
static void
drain(struct run *r, struct stream *s)
{
    char chunk[65536];
    ssize_t n = read(s->fd, chunk, sizeof(chunk));
    if (n > 0) {
        take_output(r, s, chunk, (size_t)n);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(s->fd);
        s->fd = -1;
    }
}

static void
set_status_from_wait(struct sbx_result *res, int st, int64_t oom_kills)
{
    if (WIFEXITED(st)) {
        res->exit_code = WEXITSTATUS(st);
        res->status = res->exit_code == 0 ? SBX_OK : SBX_RUNTIME_ERROR;
    } else if (WIFSIGNALED(st)) {
        res->signal = WTERMSIG(st);
        res->exit_code = -1;
        if (res->signal == SIGSYS)
            res->status = SBX_SECCOMP;
        else if (res->signal == SIGXCPU)
            res->status = SBX_CPU_TIMEOUT;
        else
            res->status = SBX_SIGNALED;
    }
    if (oom_kills > 0 && (res->status == SBX_SIGNALED || res->status == SBX_RUNTIME_ERROR))
        res->status = SBX_OOM;
}

static int
open_work_files(const struct sbx_spec *spec, int *fds, mode_t *modes, co_err *err)
{
    for (size_t i = 0; i < spec->n_files; i++) {
        const struct sbx_file *f = &spec->files[i];
        fds[i] = -1;
        modes[i] = f->mode ? f->mode & 0777 : 0644;
        if (!f->host_path)
            continue;
        int fd = open(f->host_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return co_err_sys(err, errno, "cannot open work file '%s'", f->host_path);
        fds[i] = fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
            return co_err_sys(err, errno, "cannot stat work file '%s'", f->host_path);
        if (!S_ISREG(st.st_mode))
            return co_err_set(err, CO_E_INVAL, "work file '%s' is not a regular file",
                              f->host_path);
        if (!f->mode)
            modes[i] = st.st_mode & 0777;
    }
    return 0;
}

int
sbx_cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The intermediate process of clone_in_userns(): what it needs, and what it reports. */
struct bridge {
    const struct child_ctx *c;
    int userns_fd;
    unsigned long flags;
    int out_fd; /* the write end of a pipe to the caller */
};

struct bridge_out {
    long pid; /* init's pid, or -1 */
    int pidfd;
    int err;
    int failed_setns; /* which call failed: setns (1) or clone (0) */
};

/*
 * The intermediate process: enter the sandbox's user namespace, clone init into new namespaces
 * owned by it, as a child of the caller (CLONE_PARENT), report and exit.  It shares the caller's
 * file table, and normally its memory too while the caller is suspended (CLONE_VFORK): raw
 * system calls only.
 */
static int
bridge_main(void *arg)
{
    const struct bridge *b = arg;
    struct bridge_out o = {-1, -1, 0, 1};
    if (syscall(SYS_setns, b->userns_fd, CLONE_NEWUSER) == 0) {
        o.failed_setns = 0;
        o.pid =
            syscall(SYS_clone, b->flags | CLONE_PARENT | CLONE_PIDFD, NULL, &o.pidfd, NULL, NULL);
        if (o.pid == 0)
            sbx_child_main(b->c);
    }
    if (o.pid < 0)
        o.err = errno;
    return write(b->out_fd, &o, sizeof(o)) == (ssize_t)sizeof(o) ? 0 : 1;
}

/*
 * Rootless: clone init with @flags inside the user namespace @userns_fd, so that its other
 * namespaces belong to that user namespace, where it has the capabilities to build the sandbox.
 * Only a single-threaded process may enter a user namespace, hence the intermediate process.
 * It shares this process's memory (no page-table copy: CLONE_VM | CLONE_VFORK, on a stack of its
 * own that init inherits as a copy), except in AddressSanitizer builds, whose run-time cannot
 * follow a switch to such a stack: there it is a plain copy.  Init becomes a child of this
 * process, with its pidfd in *@pidfd.  Returns init's pid, or -1 with *@errnum and *@what set.
 */
static long __attribute__((noinline))
clone_in_userns(const struct child_ctx *c, int userns_fd, unsigned long flags, int *pidfd,
                int *errnum, const char **what)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        *errnum = errno;
        *what = "cannot create pipe";
        return -1;
    }
    struct bridge b = {c, userns_fd, flags, p[1]};
#if defined(__SANITIZE_ADDRESS__)
    pid_t mid = (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, NULL, NULL, NULL, NULL);
    if (mid == 0)
        sbx_exit_group(bridge_main(&b));
    char *stack = NULL;
#else
    static const size_t stack_size = 128 * 1024; /* room for sbx_child_main() */
    char *stack = co_xmalloc(stack_size);
    pid_t mid =
        clone(bridge_main, stack + stack_size, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &b);
#endif
    int saved = errno;
    struct bridge_out o = {-1, -1, 0, 0};
    if (mid > 0) {
        /* The file table is shared: the write end stays open until the intermediate is gone. */
        while (waitpid(mid, NULL, __WALL) < 0 && errno == EINTR)
            ;
        if (read(p[0], &o, sizeof(o)) != (ssize_t)sizeof(o))
            o.pid = -1;
    }
    close(p[1]);
    close(p[0]);
    free(stack);
    if (mid < 0) {
        *errnum = saved;
        *what = "rootless sandbox: cannot start the process that enters the user namespace";
        return -1;
    }
    if (o.pid < 0) {
        *errnum = o.err;
        *what = o.failed_setns ? "rootless sandbox: cannot enter its user namespace"
                               : "cannot clone the sandbox (namespaces, in its user namespace)";
        return -1;
    }
    *pidfd = o.pidfd;
    return o.pid;
}

/* Kill and reap a child that has not been let go yet; run_finish() removes its cgroup. */
static void
abort_child(struct run *r)
{
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    r->pid = 0;
}
/* Lower @want to what this process may set without privileges (its hard limit). */
static void
clamp_rlimit(int resource, struct rlimit *want)
{
    struct rlimit have;
    if (getrlimit(resource, &have) < 0 || have.rlim_max == RLIM_INFINITY)
        return;
    if (want->rlim_max > have.rlim_max)
        want->rlim_max = have.rlim_max;
    if (want->rlim_cur > want->rlim_max)
        want->rlim_cur = want->rlim_max;
}

/*
 * The flags of the mount holding @path that a user namespace cannot change when it remounts a
 * bind of it (the kernel locks them): noexec and the atime mode.  0 if @path cannot be read.
 */
static unsigned long
locked_mount_flags(const char *path)
{
    struct statfs sf;
    if (statfs(path, &sf) < 0)
        return 0;
    unsigned long f = 0;
    if (sf.f_flags & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sf.f_flags & ST_NOATIME)
        f |= MS_NOATIME;
    if (sf.f_flags & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sf.f_flags & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

static int cap_last_value = 63;

static void
read_cap_last_once(void)
{
    char buf[32];
    co_err e = CO_ERR_INIT;
    if (sbx_read_file("/proc/sys/kernel/cap_last_cap", buf, sizeof(buf), &e) == 0)
        cap_last_value = atoi(buf);
}

/* The highest capability the kernel knows, read once per process (it cannot change). */
static int
read_cap_last(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_cap_last_once);
    return cap_last_value;
}

int
sbx_run(const struct sbx_spec *spec, struct sbx_result *res, co_err *err)
{
    return sbx_run_ex(spec, NULL, res, err);
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void *
sbx_fresh_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        static const char msg[] = "fatal: out of memory\n";
        (void)!write(2, msg, sizeof(msg) - 1);
        abort();
    }
    return p;
}

void
sbx_fresh_free(void *p, size_t len)
{
    if (p)
        munmap(p, len);
}

/* One fresh mapping holds a run's image and child context (r->img, then r->c). */
#define RUN_MEM_CTX_OFF ((sizeof(struct sbx_image) + 63) & ~(size_t)63)
#define RUN_MEM_LEN (RUN_MEM_CTX_OFF + sizeof(struct child_ctx))

/* The cleanup of a struct run: whatever it still holds (see struct run). */
static void
run_release(struct run *r)
{
    int *fds[] = {&r->lock_fd,  &r->out_r,     &r->out_w,    &r->err_r, &r->err_w,  &r->status_r,
                  &r->status_w, &r->go_parent, &r->go_child, &r->pidfd, &r->ns.net, &r->ns.ipc,
                  &r->ns.uts,   &r->out.fd,    &r->err.fd,   &r->mnt_fd};
    for (size_t i = 0; i < CO_ARRAY_LEN(fds); i++)
        close_fd(fds[i]);
    if (r->file_fds) {
        for (size_t i = 0; i < r->spec->n_files; i++)
            close_fd(&r->file_fds[i]);
    }
    co_buf_release(&r->out.buf);
    co_buf_release(&r->err.buf);
    free(r->file_fds);
    free(r->file_modes);
    free(r->envp);
    free(r->argv_copy);
    free(r->envp_copy);
    sbx_fresh_free(r->cg, sizeof(*r->cg));
    sbx_fresh_free(r->img, RUN_MEM_LEN);
}

static int
make_pipe(int *rd, int *wr, int flags)
{
    int p[2];
    if (pipe2(p, flags) < 0)
        return -1;
    *rd = p[0];
    *wr = p[1];
    return 0;
}

/*
 * Whether init enters a copy of the image's mount template (sbx_mnt_template.c) instead of
 * building the root: as root (not in a user namespace) in long-lived callers, which run many
 * sandboxes (sbx_async_cleanup() says so); a one-shot run would pay the template's helper on
 * top.  CACHEOUT_MOUNT_TEMPLATE=1 uses it in any root caller (the escape suite runs cacheout-run
 * so), =0 never (to compare).
 */
static bool
use_mnt_template(const struct run *r)
{
    if (r->uns)
        return false;
    const char *v = getenv("CACHEOUT_MOUNT_TEMPLATE");
    if (v && strcmp(v, "0") == 0)
        return false;
    if (v && strcmp(v, "1") == 0)
        return true;
    return sbx_janitor_enabled();
}

/* Everything before the clone; see struct run. */
static int
run_prepare(struct run *r, co_err *err)
{
    const struct sbx_spec *spec = r->spec;
    struct sbx_result *res = r->res;
    r->cg = sbx_fresh_alloc(sizeof(*r->cg));
    r->img = sbx_fresh_alloc(RUN_MEM_LEN);
    r->c = (struct child_ctx *)((char *)r->img + RUN_MEM_CTX_OFF);

    if (sbx_spec_validate(spec, err) < 0)
        return internal(res, err, "spec", 0);
    if (sbx_rootless() && sbx_userns_get(&r->uns, err) < 0)
        return internal(res, err, "privileges", EPERM);
    if (sbx_seccomp_prog(&r->prog, err) < 0)
        return internal(res, err, "seccomp_build", 0);
    if (sbx_cgroup_host_get(&r->host, err) < 0)
        return internal(res, err, "cgroup_detect", 0);
    if (sbx_image_resolve(spec->image, r->img, err) < 0)
        return internal(res, err, "image", err->code == CO_E_NOTFOUND ? ENOENT : 0);
    char lock_dir[PATH_MAX];
    snprintf(lock_dir, sizeof(lock_dir), "%s/slots", sbx_run_dir());
    if (sbx_slot_acquire(lock_dir, &res->slot, &r->lock_fd, err) < 0)
        return internal(res, err, "slot", 0);
    res->uid = SBX_UID_BASE + res->slot;
    res->host_uid = r->uns ? (uid_t)(r->uns->subuid + res->slot) : res->uid;
    char cg_name[32];
    snprintf(cg_name, sizeof(cg_name), "slot-%u", res->slot);
    r->lim = (struct sbx_cg_limits){spec->cores_milli, spec->memory_bytes, spec->pids,
                                    spec->network != SBX_NET_NONE};
    if (sbx_cgroup_prepare(r->cg, r->host, cg_name, err) < 0) {
        co_err_wrap(err, "set up cgroup (%s)", sbx_cgroup_mode_name(r->host->mode));
        return internal(res, err, "cgroup", 0);
    }
    r->file_fds = co_xcalloc(spec->n_files + 1, sizeof(*r->file_fds));
    r->file_modes = co_xcalloc(spec->n_files + 1, sizeof(*r->file_modes));
    for (size_t i = 0; i < spec->n_files; i++)
        r->file_fds[i] = -1;
    if (open_work_files(spec, r->file_fds, r->file_modes, err) < 0)
        return internal(res, err, "work_file", 0);
    /* The status pipe is read without blocking once init has exited.  The "go" channel is a
     * socket pair, so that writing to a child that died cannot raise SIGPIPE. */
    int go[2];
    if (make_pipe(&r->out_r, &r->out_w, O_CLOEXEC) < 0 ||
        make_pipe(&r->err_r, &r->err_w, O_CLOEXEC) < 0 ||
        make_pipe(&r->status_r, &r->status_w, O_CLOEXEC | O_NONBLOCK) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) < 0) {
        co_err_sys(err, errno, "cannot create pipe");
        return internal(res, err, "pipe", 0);
    }
    r->go_parent = go[1];
    r->go_child = go[0];
    r->envp = sbx_build_env(spec->env);

    /* The child's context. */
    struct child_ctx *c = r->c;
    c->img = r->img;
    c->cg = r->cg;
    c->spec = spec;
    c->status_w = r->status_w;
    c->out_w = r->out_w;
    c->err_w = r->err_w;
    c->keep[c->n_keep++] = c->status_w;
    c->keep[c->n_keep++] = c->out_w;
    c->keep[c->n_keep++] = c->err_w;
    c->go_r = r->go_child;
    c->keep[c->n_keep++] = c->go_r;
    for (int i = 0; i < r->cg->n_dirs; i++)
        c->keep[c->n_keep++] = r->cg->join_dirfd[i];
    c->ns_via_go = spec->network == SBX_NET_NONE;
    c->mnt_template_fd = -1;
    if (use_mnt_template(r)) {
        /* Without one (the helper failed), init builds the root itself, as before. */
        co_err terr = CO_ERR_INIT;
        if (sbx_mnt_template_get(r->img, &r->mnt_fd, &terr) == 0) {
            c->mnt_template_fd = r->mnt_fd;
            c->keep[c->n_keep++] = r->mnt_fd;
        }
    }
    for (size_t i = 0; i < spec->n_files; i++) {
        if (r->file_fds[i] >= 0)
            c->keep[c->n_keep++] = r->file_fds[i];
    }
    qsort(c->keep, (size_t)c->n_keep, sizeof(int), sbx_cmp_int);
    c->file_fds = r->file_fds;
    c->file_modes = r->file_modes;
    snprintf(c->tmp_opts, sizeof(c->tmp_opts), "size=%lld,mode=1777", (long long)spec->tmp_bytes);
    snprintf(c->work_opts, sizeof(c->work_opts), "size=%lld,mode=0755,uid=%u,gid=%u",
             (long long)spec->work_bytes, (unsigned)res->uid, (unsigned)res->uid);
    snprintf(c->shm_opts, sizeof(c->shm_opts), "size=%lld,mode=1777", (long long)spec->shm_bytes);
    c->cap_last = read_cap_last();
    sbx_child_args_area(&c->arg_start, &c->arg_end);
    c->uid = res->uid;
    c->gid = (gid_t)res->uid;
    c->nproc.rlim_cur = c->nproc.rlim_max = (rlim_t)spec->pids;
    c->nofile.rlim_cur = c->nofile.rlim_max = 4096;
    if (spec->cpu_ms > 0) {
        /* A per-process backstop only: the parent enforces the limit on the whole cgroup. */
        c->cpu_rlimit = true;
        c->cpu.rlim_cur = (rlim_t)(spec->cpu_ms / 1000 + 2);
        c->cpu.rlim_max = c->cpu.rlim_cur + 1;
    }
    int64_t fsize = spec->tmp_bytes;
    if (spec->work_bytes > fsize)
        fsize = spec->work_bytes;
    if (spec->shm_bytes > fsize)
        fsize = spec->shm_bytes;
    const struct rlimit fixed[SBX_FIXED_RLIMITS] = {
        {0, 0},
        {0, 0},
        {SBX_MEMLOCK_BYTES, SBX_MEMLOCK_BYTES},
        /* The usual 8 MiB; a job may raise it up to its memory limit. */
        {SBX_STACK_BYTES, (rlim_t)spec->memory_bytes > SBX_STACK_BYTES ? (rlim_t)spec->memory_bytes
                                                                       : SBX_STACK_BYTES},
        {(rlim_t)fsize, (rlim_t)fsize},
    };
    memcpy(c->fixed, fixed, sizeof(fixed));
    c->userns = r->uns != NULL;
    if (c->userns) {
        /* No raising a hard limit without CAP_SYS_RESOURCE on the host: stay below ours. */
        clamp_rlimit(RLIMIT_NPROC, &c->nproc);
        clamp_rlimit(RLIMIT_NOFILE, &c->nofile);
        clamp_rlimit(RLIMIT_CPU, &c->cpu);
        for (size_t i = 0; i < SBX_FIXED_RLIMITS; i++)
            clamp_rlimit(sbx_fixed_rlimits[i], &c->fixed[i]);
        c->root_flags = locked_mount_flags(r->img->root);
        c->dev_flags = locked_mount_flags("/dev/null");
        for (int i = 0; i < r->img->n_binds; i++)
            c->bind_flags[i] = locked_mount_flags(r->img->bind_src[i]);
        c->ns_via_go = false; /* the clone makes them, inside the user namespace */
        /* The user namespace of this process's sandboxes (borrowed). */
        if (sbx_userns_shared(r->uns, &r->userns_fd, err) < 0)
            return internal(res, err, "user_namespace", 0);
    }
    c->prog = r->prog;
    /* Copies: init blanks the host's argument area, where the CLI's strings live. */
    r->argv_copy = copy_strv(spec->argv);
    r->envp_copy = copy_strv(r->envp);
    c->argv = r->argv_copy;
    c->envp = r->envp_copy;
    c->path = SBX_DEFAULT_PATH;
    for (size_t i = 0; r->envp_copy[i]; i++) {
        if (strncmp(r->envp_copy[i], "PATH=", 5) == 0)
            c->path = r->envp_copy[i] + 5;
    }
    return 0;
}

/*
 * Clone init, then, while it builds the root, create the cgroup and (network "none") take or
 * make the network namespace, and let init go on.
 */
static int
run_clone(struct run *r, co_err *err)
{
    struct child_ctx *c = r->c;
    /* Block signals around clone so that no handler of this process runs in the child. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r->t0 = co_mono_ns();
    unsigned long flags = CLONE_NEWPID | SIGCHLD;
    if (c->mnt_template_fd < 0)
        flags |= CLONE_NEWNS; /* else init enters a copy of the template */
    if (!c->ns_via_go)        /* loopback: made here, the child brings "lo" up */
        flags |= CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    /* CLONE_PIDFD: the parent learns of init's exit by polling a pidfd (no pid reuse race). */
    long pid;
    int clone_errno;
    const char *clone_what = "cannot clone the sandbox (namespaces)";
    if (r->userns_fd >= 0) {
        pid = clone_in_userns(c, r->userns_fd, flags, &r->pidfd, &clone_errno, &clone_what);
    } else if (sbx_launcher_wanted(c)) {
        /* From the small launcher process (sbx_launcher.c), as this process's child. */
        pid = sbx_launcher_clone(c, flags, &r->pidfd, &clone_errno, &clone_what);
    } else {
        pid = syscall(SYS_clone, flags | CLONE_PIDFD, NULL, &r->pidfd, NULL, NULL);
        if (pid == 0)
            sbx_child_main(c);
        clone_errno = errno;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        co_err_sys(err, clone_errno, "%s", clone_what);
        return internal(r->res, err, "clone", clone_errno);
    }
    r->pid = (pid_t)pid;
    close_fd(&r->mnt_fd);
    close_fd(&r->out_w);
    close_fd(&r->err_w);
    close_fd(&r->status_w);
    close_fd(&r->go_child);
    /* Create the cgroup while the child builds the root, then let it join (see sbx_child.c). */
    if (sbx_cgroup_make(r->cg, &r->lim, err) < 0) {
        abort_child(r);
        co_err_wrap(err, "set up cgroup (%s)", sbx_cgroup_mode_name(r->host->mode));
        return internal(r->res, err, "cgroup", 0);
    }
    /*
     * Network "none": fresh network, IPC and UTS namespaces from the pool (made in parallel
     * since the caller's sbx_prewarm()), or a network namespace made now while the child is
     * still building its root (init then makes its IPC and UTS ones).  Without one the child is
     * killed: it never runs in the host's namespace.
     */
    if (c->ns_via_go && sbx_nsset_take(&r->ns) < 0 && sbx_netns_create(&r->ns.net, err) < 0) {
        abort_child(r);
        return internal(r->res, err, "network_namespace", 0);
    }
    const int go_fds[3] = {r->ns.net, r->ns.ipc, r->ns.uts};
    if (sbx_child_send_go(r->go_parent, go_fds, 3) < 0) {
        /* The child is gone already: its status tells why. */
    }
    close_fd(&r->ns.net);
    close_fd(&r->ns.ipc);
    close_fd(&r->ns.uts);
    if (!r->spec->keep_work)
        close_fd(&r->go_parent); /* else kept for the /work descriptor (run_take_work()) */
    for (size_t i = 0; i < r->spec->n_files; i++)
        close_fd(&r->file_fds[i]);
    r->out.fd = co_steal_fd(&r->out_r);
    r->out.which = SBX_STDOUT;
    r->err.fd = co_steal_fd(&r->err_r);
    r->err.which = SBX_STDERR;
    return 0;
}

/* Read the messages of init that are waiting on the status pipe; closes it at its end. */
static void
read_status(struct run *r)
{
    while (r->status_r >= 0) {
        struct child_msg m;
        ssize_t got = read(r->status_r, &m, sizeof(m));
        if (got == (ssize_t)sizeof(m)) {
            if (m.kind == MSG_SETUP_ERR)
                r->setup = m;
            else if (m.kind == MSG_EXEC_ERR)
                r->exec_err = m;
            else if (m.kind == MSG_EXIT) {
                r->exitm = m;
                r->t_end = co_mono_ns();
            }
            continue;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got == 0 || (got < 0 && errno != EAGAIN))
            close_fd(&r->status_r);
        break;
    }
}

/*
 * Wait for the sandbox.  Every wake-up costs a scheduling round on a busy host, so the parent
 * waits on as few events as it can: the output pipes, and init's pidfd, which fires once init
 * has exited (the status pipe is then read without waiting).  With a janitor the status pipe is
 * watched too, so that the call can return as soon as the job has exited.
 */
static void
run_wait(struct run *r)
{
    const struct sbx_spec *spec = r->spec;
    int cancel_fd = sbx_cancel_fd(r->opts ? r->opts->cancel : NULL);
    r->early = sbx_janitor_enabled();
    bool alive = true;
    int64_t deadline = spec->wall_ms ? r->t0 + spec->wall_ms * 1000000 : 0;
    int64_t drain_deadline = 0;
    for (;;) {
        if (r->early && r->exitm.kind && r->out.fd < 0 && r->err.fd < 0)
            break;
        if (!alive && r->out.fd < 0 && r->err.fd < 0)
            break;
        int64_t now = co_mono_ns();
        int timeout = -1;
        if (alive && r->killed == SBX_OK) {
            if (deadline) {
                if (now >= deadline) {
                    kill_job(r, SBX_TIMEOUT);
                    continue;
                }
                timeout = (int)((deadline - now + 999999) / 1000000);
            }
            if (spec->cpu_ms) {
                int64_t used = 0;
                co_err e = CO_ERR_INIT;
                if (sbx_cgroup_cpu_us(r->cg, &used, &e) == 0 && used / 1000 >= spec->cpu_ms) {
                    kill_job(r, SBX_CPU_TIMEOUT);
                    continue;
                }
                if (timeout < 0 || timeout > 20)
                    timeout = 20;
            }
        }
        if (!alive) {
            /* Init is gone, so is every process of the sandbox: the pipes close shortly. */
            if (!drain_deadline)
                drain_deadline = now + INT64_C(2000000000);
            if (now >= drain_deadline)
                break;
            timeout = (int)((drain_deadline - now) / 1000000) + 1;
        }
        struct pollfd pfd[5];
        int n = 0;
        int i_out = -1, i_err = -1, i_pid = -1, i_st = -1, i_cancel = -1;
        if (r->out.fd >= 0) {
            i_out = n;
            pfd[n++] = (struct pollfd){r->out.fd, POLLIN, 0};
        }
        if (r->err.fd >= 0) {
            i_err = n;
            pfd[n++] = (struct pollfd){r->err.fd, POLLIN, 0};
        }
        if (alive) {
            i_pid = n;
            pfd[n++] = (struct pollfd){r->pidfd, POLLIN, 0};
        }
        if (r->early && r->status_r >= 0 && !r->exitm.kind) {
            i_st = n;
            pfd[n++] = (struct pollfd){r->status_r, POLLIN, 0};
        }
        if (cancel_fd >= 0 && alive && r->killed == SBX_OK) {
            i_cancel = n;
            pfd[n++] = (struct pollfd){cancel_fd, POLLIN, 0};
        }
        int pr = poll(pfd, (nfds_t)n, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            kill_job(r, SBX_INTERNAL_ERROR);
            break;
        }
        if (i_out >= 0 && pfd[i_out].revents)
            drain(r, &r->out);
        if (i_err >= 0 && pfd[i_err].revents)
            drain(r, &r->err);
        bool status = (i_st >= 0 && pfd[i_st].revents) || (i_pid >= 0 && pfd[i_pid].revents);
        if (i_pid >= 0 && pfd[i_pid].revents) {
            alive = false;
            if (!r->t_end)
                r->t_end = co_mono_ns();
        }
        if (status)
            read_status(r);
        if (i_cancel >= 0 && pfd[i_cancel].revents)
            kill_job(r, SBX_CANCELLED);
    }
    close_fd(&r->status_r);
    close_fd(&r->out.fd);
    close_fd(&r->err.fd);
    close_fd(&r->pidfd);
}

/* spec->keep_work: the job has ended; take the /work descriptor init sent before it started. */
static void
run_take_work(struct run *r)
{
    if (!r->spec->keep_work || r->go_parent < 0)
        return;
    int fd = -1;
    if (sbx_child_recv_work(r->go_parent, &fd) == 0) {
        r->res->has_work_fd = true;
        r->res->work_fd = fd;
    }
    close_fd(&r->go_parent);
}

/* Reap init (or hand it to the janitor) and turn what happened into the result. */
static int
run_collect(struct run *r, co_err *err)
{
    struct sbx_result *res = r->res;
    /*
     * A job that ended by itself, in a process with a janitor (sbx_async_cleanup()): init has
     * closed its files and is exiting, and the kernel kills what is left of the pid namespace as
     * it does.  Reaping it and removing the cgroup (a few hundred microseconds) are left to the
     * janitor thread, which releases the slot afterwards.  Otherwise both happen here.
     */
    bool handed_off = r->early && r->exitm.kind && !r->setup.kind && r->killed == SBX_OK;
    int ist = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    if (!handed_off) {
        while (wait4(r->pid, &ist, __WALL, &ru) < 0 && errno == EINTR)
            ;
    }
    if (!r->t_end)
        r->t_end = co_mono_ns();
    res->wall_ms = (r->t_end - r->t0) / 1000000;
    res->max_rss_kb = ru.ru_maxrss > r->exitm.maxrss_kb ? ru.ru_maxrss : r->exitm.maxrss_kb;

    struct sbx_cg_stats stats = {0, -1, 0};
    co_err serr = CO_ERR_INIT;
    if (sbx_cgroup_stats(r->cg, &stats, &serr) == 0) {
        res->cpu_ms = stats.cpu_us / 1000;
        res->memory_peak_kb = stats.mem_peak >= 0 ? stats.mem_peak / 1024 : 0;
        res->oom_killed = stats.oom_kills > 0;
    }
    if (handed_off) {
        sbx_janitor_add(r->pid, res->slot, co_steal(&r->cg), co_steal_fd(&r->lock_fd));
        r->pid = 0;
    }

    res->stdout_bytes = r->out.bytes;
    res->stderr_bytes = r->err.bytes;
    res->stdout_truncated = r->out.truncated;
    res->stderr_truncated = r->err.truncated;
    if (!r->opts || r->opts->capture) {
        res->stdout_data = co_buf_steal(&r->out.buf, &res->stdout_len);
        res->stderr_data = co_buf_steal(&r->err.buf, &res->stderr_len);
    }

    if (r->setup.kind) {
        int s = r->setup.step;
        co_err_sys(err, r->setup.err, "sandbox setup failed at step '%s' (%s)",
                   sbx_child_step_name(s), sbx_child_step_what(s));
        return internal(res, err, sbx_child_step_name(s), r->setup.err);
    }
    if (r->killed != SBX_OK && r->killed != SBX_INTERNAL_ERROR) {
        res->status = r->killed;
        res->signal = SIGKILL;
        res->exit_code = -1;
    } else if (r->exitm.kind) {
        set_status_from_wait(res, r->exitm.wstatus, stats.oom_kills);
    } else if (WIFSIGNALED(ist) && WTERMSIG(ist) == SIGKILL && stats.oom_kills > 0) {
        /* The OOM killer chose init: the whole sandbox died of memory exhaustion. */
        res->status = SBX_OOM;
        res->signal = SIGKILL;
    } else {
        co_err_set(err, CO_E_INTERNAL, "sandbox init ended without reporting the job (status 0x%x)",
                   ist);
        return internal(res, err, "init", 0);
    }
    if (r->exec_err.kind) {
        co_err cerr = CO_ERR_INIT;
        co_err_sys(&cerr, r->exec_err.err, "cannot execute '%s'", r->spec->argv[0]);
        co_strlcpy(res->error_step, "execve", sizeof(res->error_step));
        res->error_errno = r->exec_err.err;
        co_strlcpy(res->error_msg, cerr.msg, sizeof(res->error_msg));
    }
    return 0;
}

/*
 * Whatever happened, nothing of the job may outlive the call: kill and remove the cgroup (unless
 * the janitor has it).  A job that ran keeps its result when this fails; the error says so.
 */
static void
run_finish(struct run *r, int rc, co_err *err)
{
    if (!r->cg)
        return; /* handed to the janitor */
    co_err kerr = CO_ERR_INIT;
    if (sbx_cgroup_destroy(r->cg, &kerr) < 0 && r->pid > 0 && rc == 0) {
        *err = kerr;
        co_err_wrap(err, "clean up cgroup");
    }
}

int
sbx_run_ex(const struct sbx_spec *spec, const struct sbx_run_opts *opts, struct sbx_result *res,
           co_err *err)
{
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
    struct run r __attribute__((cleanup(run_release))) = {
        .spec = spec,
        .opts = opts,
        .res = res,
        .lock_fd = -1,
        .out_r = -1,
        .out_w = -1,
        .err_r = -1,
        .err_w = -1,
        .status_r = -1,
        .status_w = -1,
        .go_parent = -1,
        .go_child = -1,
        .userns_fd = -1,
        .mnt_fd = -1,
        .pidfd = -1,
        .ns = {-1, -1, -1},
        .out = {.fd = -1},
        .err = {.fd = -1},
    };
    int rc = run_prepare(&r, err);
    if (rc == 0)
        rc = run_clone(&r, err);
    if (rc == 0) {
        run_wait(&r);
        run_take_work(&r);
        rc = run_collect(&r, err);
    }
    run_finish(&r, rc, err);
    return rc;
}
