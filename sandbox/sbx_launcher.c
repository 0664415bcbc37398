/*
 * sbx_launcher: sandboxes cloned from a small single-threaded process instead of the caller
 * (see sandbox/README.md, "The launcher").
 *
 * A clone copies the cloning process's page tables and write-protects its private pages; in a
 * large multi-threaded caller (the agent: lws, OpenSSL, several malloc arenas, a thread per job)
 * that copy, and the copy-on-write faults with TLB shoot-downs in its other threads afterwards,
 * cost more than the rest of the clone.  The launcher is this program re-executed
 * (/proc/self/exe, sbx_launcher_entry() at the top of main()), so it holds nothing but its
 * libraries and one run at a time.  The caller sends it a prepared run over a socket pair: the
 * child context and everything it points to as one relocatable blob (lengths and strings, no
 * pointers), the run's descriptors by SCM_RIGHTS.  The launcher clones init with CLONE_PARENT, so
 * that init is the caller's child exactly as before (the caller polls its pidfd, waits for it
 * and reaps it), and answers with init's pid and pidfd, or an errno.  The clone also writes init's
 * pid into a page the caller shares with the launcher (CLONE_PARENT_SETTID), so that a launcher
 * that dies or hangs between its clone and its answer leaves no init the caller does not know of:
 * the caller kills the launcher, then kills and reaps that init.  The caller's socket has a send
 * and receive timeout: a launcher that stops answering fails the run instead of stalling it.
 *
 * The launcher is started, and started again after it died, by a thread of its own in the
 * caller that lives as long as the process: init's parent-death signal is tied to the thread
 * whose child the launcher is, so that thread must never end while a sandbox runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_child.h"
#include "sbx_image.h"
#include "sbx_internal.h"
#include "sbx_userns.h"

#define LAUNCH_MAGIC 0x4c584253u /* "SBXL" */
#define LAUNCH_ARG "--sbx-launcher"
#define LAUNCH_MAX_FDS 200 /* below the kernel's SCM_MAX_FD (253) */
#define LAUNCH_MAX_BLOB (SBX_FILES_MAX * 2 + (64u << 20))
/* Namespace flags a request may ask for; anything else is refused. */
#define LAUNCH_FLAGS                                                                               \
    (CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | CLONE_NEWNET | SIGCHLD)
/* The bound on each send to and receive from a launcher (CACHEOUT_LAUNCHER_TIMEOUT_MS). */
#define LAUNCH_TIMEOUT_MS 10000
/* Test hook (CACHEOUT_LAUNCHER_FAULT in the launcher's environment): after a clone, the
 * launcher exits ("exit_after_clone") or stops itself ("stop_after_clone") instead of answering. */
#define LAUNCH_FAULT_ENV "CACHEOUT_LAUNCHER_FAULT"

struct launch_req {
    uint32_t magic;
    uint32_t n_fds;
    uint64_t flags;
    uint64_t len; /* bytes of the blob that follow */
};

struct launch_ans {
    uint32_t magic;
    int32_t err;     /* 0, or the errno of the clone (or of reading the request) */
    int64_t pid;     /* init's pid, -1 on error; its pidfd comes with the answer */
    uint64_t clones; /* sandboxes this launcher has cloned so far */
};

/* ---- the blob ---- */

static void
put(struct co_buf *b, const void *p, size_t n)
{
    co_buf_append(b, p, n);
}

static void
put_u64(struct co_buf *b, uint64_t v)
{
    put(b, &v, sizeof(v));
}

static void
put_str(struct co_buf *b, const char *s)
{
    size_t n = strlen(s) + 1;
    put_u64(b, n);
    put(b, s, n);
}

static void
put_strv(struct co_buf *b, char *const *v)
{
    uint64_t n = 0;
    while (v[n])
        n++;
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(b, v[i]);
}

/*
 * Pack @c into @b, and its descriptors into @fds (in the order unpack() assigns them).  Returns
 * the number of descriptors, or -1 when there are more than one message carries.
 */
static int
pack(const struct child_ctx *c, struct co_buf *b, int *fds)
{
    int n = 0;
    fds[n++] = c->status_w;
    fds[n++] = c->out_w;
    fds[n++] = c->err_w;
    fds[n++] = c->go_r;
    /* The scalars; unpack() replaces every pointer and descriptor (sent as NULL and -1: no
     * address of this process reaches the launcher's memory, which init inherits). */
    struct child_ctx flat = *c;
    flat.img = NULL;
    flat.cg = NULL;
    flat.spec = NULL;
    flat.file_fds = NULL;
    flat.file_modes = NULL;
    flat.prog = NULL;
    flat.argv = NULL;
    flat.envp = NULL;
    flat.path = NULL;
    flat.arg_start = flat.arg_end = 0;
    flat.n_keep = 0;
    memset(flat.keep, 0, sizeof(flat.keep));
    put(b, &flat, sizeof(flat));
    put_str(b, c->img->root);
    put(b, &c->img->root_dev, sizeof(c->img->root_dev));
    put(b, &c->img->root_ino, sizeof(c->img->root_ino));
    put_u64(b, (uint64_t)c->img->n_binds);
    for (int i = 0; i < c->img->n_binds; i++) {
        put_str(b, c->img->bind_src[i]);
        put_str(b, c->img->bind_dst[i]);
    }
    put_u64(b, (uint64_t)c->cg->n_dirs);
    for (int i = 0; i < c->cg->n_dirs; i++) {
        put_str(b, c->cg->join_rel[i]);
        put_u64(b, c->cg->join_dirfd[i] >= 0);
        if (c->cg->join_dirfd[i] >= 0)
            fds[n++] = c->cg->join_dirfd[i];
    }
    if (c->mnt_template_fd >= 0)
        fds[n++] = c->mnt_template_fd;
    const struct sbx_spec *s = c->spec;
    put_u64(b, s->keep_work);
    put_u64(b, (uint64_t)s->network);
    put_u64(b, s->n_files);
    for (size_t i = 0; i < s->n_files; i++) {
        put_str(b, s->files[i].name);
        put_u64(b, (uint64_t)c->file_modes[i]);
        put_u64(b, c->file_fds[i] >= 0);
        if (c->file_fds[i] >= 0) {
            if (n >= LAUNCH_MAX_FDS)
                return -1;
            fds[n++] = c->file_fds[i];
        } else {
            put_u64(b, s->files[i].len);
            put(b, s->files[i].data, s->files[i].len);
        }
    }
    put_u64(b, c->prog->len);
    put(b, c->prog->filter, c->prog->len * sizeof(*c->prog->filter));
    put_strv(b, c->argv);
    put_strv(b, c->envp);
    put_str(b, c->path);
    return n;
}

/* A cursor over a received blob; every read is bounds-checked (a garbage blob fails). */
struct cur {
    const char *p, *end;
    bool bad;
};

static const void *
get(struct cur *k, size_t n)
{
    if (k->bad || (size_t)(k->end - k->p) < n) {
        k->bad = true;
        return NULL;
    }
    const void *r = k->p;
    k->p += n;
    return r;
}

static uint64_t
get_u64(struct cur *k)
{
    uint64_t v = 0;
    const void *p = get(k, sizeof(v));
    if (p)
        memcpy(&v, p, sizeof(v));
    return v;
}

static const char *
get_str(struct cur *k)
{
    uint64_t n = get_u64(k);
    const char *s = n ? get(k, n) : NULL;
    if (!s || s[n - 1] != '\0') {
        k->bad = true;
        return "";
    }
    return s;
}

static void
get_str_to(struct cur *k, char *dst, size_t cap)
{
    const char *s = get_str(k);
    if (strlen(s) >= cap)
        k->bad = true;
    else
        memcpy(dst, s, strlen(s) + 1);
}

/* Strings of a vector into @v (at most @max + a NULL). */
static void
get_strv(struct cur *k, char **v, size_t max)
{
    uint64_t n = get_u64(k);
    if (n > max) {
        k->bad = true;
        n = 0;
    }
    for (uint64_t i = 0; i < n; i++)
        v[i] = (char *)get_str(k);
    v[n] = NULL;
}

/* The launcher's copy of one run (static: the launcher handles one run at a time). */
static struct {
    struct child_ctx c;
    struct sbx_image img;
    struct sbx_cgroup cg;
    struct sbx_spec spec;
    struct sbx_file files[SBX_FILES_MAX];
    int file_fds[SBX_FILES_MAX];
    mode_t file_modes[SBX_FILES_MAX];
    struct sock_fprog prog;
    char *argv[SBX_ARGV_MAX + 1];
    char *envp[SBX_ENV_MAX + 8];
} L;

/* Rebuild the run from @k and the received descriptors @fds (@n_fds); false if malformed. */
static bool
unpack(struct cur *k, const int *fds, int n_fds)
{
    int n = 0;
#define NEXT_FD() (n < n_fds ? fds[n++] : (k->bad = true, -1))
    const struct child_ctx *src = get(k, sizeof(L.c));
    if (!src)
        return false;
    memcpy(&L.c, src, sizeof(L.c));
    struct child_ctx *c = &L.c;
    c->n_keep = 0;
    c->status_w = NEXT_FD();
    c->out_w = NEXT_FD();
    c->err_w = NEXT_FD();
    c->go_r = NEXT_FD();
    memset(&L.img, 0, sizeof(L.img));
    get_str_to(k, L.img.root, sizeof(L.img.root));
    const void *p = get(k, sizeof(L.img.root_dev));
    if (p)
        memcpy(&L.img.root_dev, p, sizeof(L.img.root_dev));
    p = get(k, sizeof(L.img.root_ino));
    if (p)
        memcpy(&L.img.root_ino, p, sizeof(L.img.root_ino));
    uint64_t nb = get_u64(k);
    if (nb > SBX_IMAGE_MAX_BINDS)
        return false;
    L.img.n_binds = (int)nb;
    for (int i = 0; i < L.img.n_binds; i++) {
        get_str_to(k, L.img.bind_src[i], sizeof(L.img.bind_src[i]));
        get_str_to(k, L.img.bind_dst[i], sizeof(L.img.bind_dst[i]));
    }
    uint64_t nd = get_u64(k);
    if (nd > SBX_CG_MAX_DIRS)
        return false;
    L.cg.n_dirs = (int)nd;
    for (int i = 0; i < L.cg.n_dirs; i++) {
        get_str_to(k, L.cg.join_rel[i], sizeof(L.cg.join_rel[i]));
        L.cg.join_dirfd[i] = get_u64(k) ? NEXT_FD() : -1;
    }
    if (c->mnt_template_fd >= 0)
        c->mnt_template_fd = NEXT_FD();
    memset(&L.spec, 0, sizeof(L.spec));
    L.spec.keep_work = get_u64(k) != 0;
    L.spec.network = (enum sbx_network)get_u64(k);
    uint64_t nf = get_u64(k);
    if (nf > SBX_FILES_MAX)
        return false;
    L.spec.n_files = nf;
    L.spec.files = L.files;
    for (size_t i = 0; i < nf && !k->bad; i++) {
        memset(&L.files[i], 0, sizeof(L.files[i]));
        L.files[i].name = get_str(k);
        L.file_modes[i] = (mode_t)get_u64(k);
        L.file_fds[i] = -1;
        if (get_u64(k)) {
            L.file_fds[i] = NEXT_FD();
        } else {
            L.files[i].len = get_u64(k);
            L.files[i].data = get(k, L.files[i].len);
        }
    }
    L.prog.len = (unsigned short)get_u64(k);
    L.prog.filter = (struct sock_filter *)get(k, L.prog.len * sizeof(struct sock_filter));
    get_strv(k, L.argv, SBX_ARGV_MAX);
    get_strv(k, L.envp, SBX_ENV_MAX + 7);
    c->path = get_str(k);
#undef NEXT_FD
    if (k->bad || n != n_fds || k->p != k->end || !L.argv[0] || !L.prog.filter)
        return false;
    c->img = &L.img;
    c->cg = &L.cg;
    c->spec = &L.spec;
    c->file_fds = L.file_fds;
    c->file_modes = L.file_modes;
    c->prog = &L.prog;
    c->argv = L.argv;
    c->envp = L.envp;
    /* Init blanks this process's argument area, not the caller's. */
    sbx_child_args_area(&c->arg_start, &c->arg_end);
    for (int i = 0; i < n_fds; i++)
        c->keep[c->n_keep++] = fds[i];
    qsort(c->keep, (size_t)c->n_keep, sizeof(int), sbx_cmp_int);
    return true;
}

/* ---- socket I/O ---- */

static int
send_all(int sock, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(sock, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int
recv_all(int sock, char *p, size_t len)
{
    while (len > 0) {
        ssize_t r = recv(sock, p, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EPIPE;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Send @len bytes at @p with the descriptors @fds attached to the first byte. */
static int
send_with_fds(int sock, const void *p, size_t len, const int *fds, int n_fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * LAUNCH_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {(void *)p, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n_fds > 0) {
        memset(&u, 0, sizeof(u));
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n_fds);
    }
    ssize_t w;
    do
        w = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w <= 0)
        return -1;
    return send_all(sock, (const char *)p + w, len - (size_t)w);
}

/*
 * Receive exactly @len bytes into @p and up to @max descriptors (close-on-exec) into @fds,
 * *@n_fds set.  Descriptors are taken from the first message only.
 */
static int
recv_with_fds(int sock, void *p, size_t len, int *fds, int max, int *n_fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * LAUNCH_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {p, len};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    *n_fds = 0;
    ssize_t r;
    do
        r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1; /* the control buffer was not filled in */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        const int *got = (const int *)CMSG_DATA(cm);
        for (int i = 0; i < k; i++) {
            if (*n_fds < max)
                fds[(*n_fds)++] = got[i];
            else
                close(got[i]);
        }
    }
    if (r == 0) {
        errno = EPIPE;
        return -1;
    }
    if (m.msg_flags & MSG_CTRUNC) {
        errno = EPROTO;
        return -1;
    }
    return recv_all(sock, (char *)p + r, len - (size_t)r);
}

/* ---- the launcher process ---- */

/* Set by sbx_launcher_entry() in a process that is not a launcher: it may start one (a program
 * re-executed without that call at the top of its main() would not serve, but run again). */
static atomic_bool l_entry;

/* In the launcher: the page shared with the caller that each clone writes init's pid into (NULL
 * if it could not be mapped), and the test hook's fault (0 none, 1 exit, 2 stop). */
static pid_t *srv_tid;
static int srv_fault;

/*
 * Clone init with @flags (namespaces and exit signal) as the caller's child, its pidfd in
 * *@pidfd, its pid also written to the shared page before the clone returns (clone3: the old
 * clone() takes one pointer for the pidfd and the parent's copy of the pid).
 */
static long
clone_init(uint64_t flags, int *pidfd)
{
    struct clone_args ca;
    memset(&ca, 0, sizeof(ca));
    /* clone3() takes no exit signal with CLONE_PARENT: the child gets the launcher's own, which
     * is SIGCHLD (posix_spawn()), the signal @flags ask for. */
    ca.flags = (flags & ~(uint64_t)CSIGNAL) | CLONE_PARENT | CLONE_PIDFD;
    ca.pidfd = (uint64_t)(uintptr_t)pidfd;
    if (srv_tid) {
        ca.flags |= CLONE_PARENT_SETTID;
        ca.parent_tid = (uint64_t)(uintptr_t)srv_tid;
    }
    long pid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid < 0 && errno == ENOSYS)
        pid = syscall(SYS_clone, (unsigned long)flags | CLONE_PARENT | CLONE_PIDFD, NULL, pidfd,
                      NULL, NULL);
    return pid;
}

/* Serve one request on @sock; false when the caller is gone or broke the protocol. */
static bool
serve_one(int sock, uint64_t *clones)
{
    struct launch_req q;
    int fds[LAUNCH_MAX_FDS];
    int n_fds = 0;
    struct launch_ans a = {LAUNCH_MAGIC, 0, -1, 0};
    int pidfd = -1;
    bool ok = recv_with_fds(sock, &q, sizeof(q), fds, LAUNCH_MAX_FDS, &n_fds) == 0 &&
              q.magic == LAUNCH_MAGIC && q.n_fds == (uint32_t)n_fds && q.len <= LAUNCH_MAX_BLOB &&
              (q.flags & ~(uint64_t)LAUNCH_FLAGS) == 0;
    char *blob = MAP_FAILED;
    if (ok) {
        /* A mapping of its own per run, unmapped after: no run's data stays in this process. */
        blob = mmap(NULL, q.len ? q.len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
        ok = blob != MAP_FAILED && recv_all(sock, blob, q.len) == 0;
    }
    if (ok) {
        struct cur k = {blob, blob + q.len, false};
        if (unpack(&k, fds, n_fds)) {
            long pid = clone_init(q.flags, &pidfd);
            if (pid == 0)
                sbx_child_main(&L.c);
            a.pid = pid;
            a.err = pid < 0 ? errno : 0;
            if (pid > 0)
                (*clones)++;
            if (pid > 0 && srv_fault == 1)
                _exit(0);
            if (pid > 0 && srv_fault == 2)
                raise(SIGSTOP);
        } else {
            a.err = EPROTO;
        }
        a.clones = *clones;
        ok = send_with_fds(sock, &a, sizeof(a), &pidfd, pidfd >= 0 ? 1 : 0) == 0;
    }
    if (blob != MAP_FAILED)
        munmap(blob, q.len ? q.len : 1);
    for (int i = 0; i < n_fds; i++)
        close(fds[i]);
    if (pidfd >= 0)
        close(pidfd);
    return ok;
}

void
sbx_launcher_entry(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], LAUNCH_ARG) != 0) {
        atomic_store(&l_entry, true);
        return;
    }
    int sock = atoi(argv[2]);
    /* The next descriptor is the page shared with the caller (launcher_spawn()). */
    void *page = mmap(NULL, sizeof(pid_t), PROT_READ | PROT_WRITE, MAP_SHARED, sock + 1, 0);
    srv_tid = page == MAP_FAILED ? NULL : page;
    /* Not inherited by the inits it clones (the kernel writes the pid into this process's copy). */
    if (srv_tid)
        madvise(page, sizeof(pid_t), MADV_DONTFORK);
    const char *fault = getenv(LAUNCH_FAULT_ENV);
    srv_fault = !fault                                   ? 0
                : strcmp(fault, "exit_after_clone") == 0 ? 1
                : strcmp(fault, "stop_after_clone") == 0 ? 2
                                                         : 0;
    /* Nothing of the caller's but the socket; dies with the thread that started it. */
    close_range((unsigned)sock + 1, ~0U, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_NAME, "cacheout-launch", 0, 0, 0);
    uint64_t clones = 0;
    while (serve_one(sock, &clones))
        ;
    _exit(0);
}

/* ---- the caller's side ---- */

/* One launcher, used by one run at a time. */
struct launcher {
    pthread_mutex_t mu; /* held over a request and its answer */
    int sock;           /* the caller's end; -1: none, the next run starts one */
    pid_t pid;
    pid_t *tid;      /* the page shared with it: the pid of the last init it cloned, 0 if none */
    bool want;       /* with l_mu: a run waits for the keeper to start it */
    int start_errno; /* with l_mu: why the keeper could not */
};

/* l_mu: the fields below, the launcher's pid, want and start_errno. */
static pthread_mutex_t l_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t l_cv = PTHREAD_COND_INITIALIZER;
static bool l_enabled, l_keeper;
static unsigned l_starts;
static _Atomic uint64_t l_clones;
/* One launcher: a second one, for the runs of other threads to use while one waits, was measured
 * in the agent and did not win (bench/README.md, "Seventh wave: the launcher's limits"). */
static struct launcher l_one = {PTHREAD_MUTEX_INITIALIZER, -1, 0, NULL, false, 0};

/* Move @fd to a number of at least 5, so that the spawn's dup2()s onto 3 and 4 cannot clobber
 * it; closes @fd.  -1 on failure. */
static int
fd_above_4(int fd)
{
    if (fd >= 5 || fd < 0)
        return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 5);
    close(fd);
    return h;
}

/* The bound on each send and receive of the exchange with a launcher, in milliseconds. */
static long
launcher_timeout_ms(void)
{
    const char *v = getenv("CACHEOUT_LAUNCHER_TIMEOUT_MS");
    long ms = v ? strtol(v, NULL, 10) : 0;
    return ms > 0 ? ms : LAUNCH_TIMEOUT_MS;
}

/*
 * Start a launcher into @l: /proc/self/exe re-executed, with its end of a socket pair as fd 3
 * and the shared page (a memfd) as fd 4.  Returns 0 or an errno.
 */
static int
launcher_spawn(struct launcher *l)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return errno;
    int child_sock = fd_above_4(sp[1]);
    int page_fd = fd_above_4(memfd_create("cacheout-launch", MFD_CLOEXEC));
    long ms = launcher_timeout_ms();
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    pid_t *page = MAP_FAILED;
    int rc = 0;
    if (child_sock < 0 || page_fd < 0 || ftruncate(page_fd, sizeof(pid_t)) < 0 ||
        setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(sp[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        (page = mmap(NULL, sizeof(pid_t), PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0)) ==
            MAP_FAILED)
        rc = errno ? errno : EBADF;
    pid_t pid = 0;
    if (rc == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, child_sock, 3);
        posix_spawn_file_actions_adddup2(&fa, page_fd, 4);
        posix_spawnattr_init(&at);
        sigset_t all;
        sigfillset(&all);
        posix_spawnattr_setsigmask(&at, &all);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
        char *args[] = {"cacheout-launcher", LAUNCH_ARG, "3", NULL};
        extern char **environ;
        rc = posix_spawn(&pid, "/proc/self/exe", &fa, &at, args, environ);
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
    }
    if (child_sock >= 0)
        close(child_sock);
    if (page_fd >= 0)
        close(page_fd);
    if (rc != 0) {
        close(sp[0]);
        if (page != MAP_FAILED)
            munmap(page, sizeof(pid_t));
        return rc;
    }
    *page = 0;
    l->sock = sp[0];
    l->pid = pid;
    l->tid = page;
    return 0;
}

/*
 * The keeper thread: starts a launcher when a run asks for one.  It never ends (the launchers'
 * sandboxes' parent-death signal is tied to it).
 */
static void *
keeper_main(void *arg)
{
    struct launcher *l = arg;
    pthread_mutex_lock(&l_mu);
    for (;;) {
        while (!l->want)
            pthread_cond_wait(&l_cv, &l_mu);
        int rc = launcher_spawn(l);
        l->start_errno = rc;
        l->want = false;
        if (rc == 0)
            l_starts++;
        pthread_cond_broadcast(&l_cv);
    }
    return NULL;
}

/* With @l's mutex held: its socket, started by the keeper if need be, or -1 with *@errnum set. */
static int
launcher_get(struct launcher *l, int *errnum)
{
    if (l->sock >= 0)
        return l->sock;
    pthread_mutex_lock(&l_mu);
    if (!l_keeper) {
        co_err e = CO_ERR_INIT;
        if (sbx_thread_start(keeper_main, l, "the sandbox launcher's keeper", &e) < 0) {
            pthread_mutex_unlock(&l_mu);
            *errnum = e.sys_errno ? e.sys_errno : EAGAIN;
            return -1;
        }
        l_keeper = true;
    }
    l->want = true;
    pthread_cond_broadcast(&l_cv);
    while (l->want)
        pthread_cond_wait(&l_cv, &l_mu);
    *errnum = l->start_errno;
    pthread_mutex_unlock(&l_mu);
    return l->start_errno == 0 ? l->sock : -1;
}

/*
 * With @l's mutex held: the launcher is unusable (gone, silent past the bound, or answering
 * garbage).  Kill and reap it; then an init it cloned but did not hand over (its pid is on the
 * shared page) is killed and reaped too: it never got its "go", so it ran nothing of the job, and
 * it leaves no zombie.  The next run starts a new launcher.
 */
static void
launcher_drop(struct launcher *l)
{
    close(l->sock);
    l->sock = -1;
    kill(l->pid, SIGKILL);
    while (waitpid(l->pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&l_mu);
    l->pid = 0;
    pthread_mutex_unlock(&l_mu);
    /* The launcher is gone: nothing writes the page any more. */
    pid_t orphan = __atomic_load_n(l->tid, __ATOMIC_ACQUIRE);
    if (orphan > 0) {
        /* Still this process's unreaped child, so the pid cannot have been reused. */
        kill(orphan, SIGKILL);
        while (waitpid(orphan, NULL, __WALL) < 0 && errno == EINTR)
            ;
    }
    munmap(l->tid, sizeof(pid_t));
    l->tid = NULL;
}

bool
sbx_launcher_wanted(const struct child_ctx *c)
{
    int n = 4 + c->cg->n_dirs + 1;
    for (size_t i = 0; i < c->spec->n_files; i++)
        n += c->file_fds[i] >= 0;
    if (n > LAUNCH_MAX_FDS)
        return false; /* more than one message carries: cloned here */
    const char *v = getenv("CACHEOUT_LAUNCHER");
    if (!atomic_load(&l_entry) || (v && strcmp(v, "0") == 0))
        return false;
    if (v && strcmp(v, "1") == 0)
        return true;
    pthread_mutex_lock(&l_mu);
    bool on = l_enabled;
    pthread_mutex_unlock(&l_mu);
    return on;
}

int
sbx_launcher_enable(co_err *err)
{
    const char *v = getenv("CACHEOUT_LAUNCHER");
    if ((v && strcmp(v, "0") == 0) || sbx_rootless())
        return 0;
    if (!atomic_load(&l_entry))
        return co_err_set(err, CO_E_INTERNAL,
                          "sbx_launcher_enable: main() did not call sbx_launcher_entry()");
    pthread_mutex_lock(&l_mu);
    l_enabled = true;
    pthread_mutex_unlock(&l_mu);
    int errnum = 0;
    pthread_mutex_lock(&l_one.mu);
    int rc = launcher_get(&l_one, &errnum);
    pthread_mutex_unlock(&l_one.mu);
    if (rc < 0)
        return co_err_sys(err, errnum, "cannot start the sandbox launcher");
    return 0;
}

void
sbx_launcher_stats(pid_t *pid, uint64_t *clones, unsigned *starts)
{
    pthread_mutex_lock(&l_mu);
    *pid = l_one.pid;
    *starts = l_starts;
    pthread_mutex_unlock(&l_mu);
    *clones = atomic_load(&l_clones);
}

long
sbx_launcher_clone(const struct child_ctx *c, unsigned long flags, int *pidfd, int *errnum,
                   const char **what)
{
    struct co_buf blob = CO_BUF_INIT;
    int fds[LAUNCH_MAX_FDS];
    int n_fds = pack(c, &blob, fds);
    if (n_fds < 0) {
        co_buf_release(&blob);
        *errnum = E2BIG;
        *what = "too many descriptors for the sandbox launcher";
        return -1;
    }
    struct launch_req q = {LAUNCH_MAGIC, (uint32_t)n_fds, flags, blob.len};
    struct launch_ans a;
    int got[2] = {-1, -1};
    int n_got = 0;
    long pid = -1;
    struct launcher *l = &l_one;
    pthread_mutex_lock(&l->mu);
    int sock = launcher_get(l, errnum);
    if (sock >= 0)
        *l->tid = 0; /* the launcher is idle: it writes the page only while it clones */
    if (sock < 0) {
        *what = "cannot start the sandbox launcher";
    } else if (send_with_fds(sock, &q, sizeof(q), fds, n_fds) < 0 ||
               send_all(sock, blob.data ? blob.data : "", blob.len) < 0 ||
               recv_with_fds(sock, &a, sizeof(a), got, 2, &n_got) < 0) {
        /* A timeout of the socket (SO_RCVTIMEO, SO_SNDTIMEO) shows as EAGAIN. */
        bool late = errno == EAGAIN || errno == EWOULDBLOCK;
        *errnum = late ? ETIMEDOUT : errno;
        *what =
            late ? "the sandbox launcher did not answer in time" : "the sandbox launcher is gone";
        launcher_drop(l);
    } else if (a.magic != LAUNCH_MAGIC || (a.pid > 0) != (n_got == 1) ||
               (a.pid <= 0 && a.err <= 0)) {
        *errnum = EPROTO;
        *what = "the sandbox launcher answered garbage";
        launcher_drop(l);
    } else if (a.pid <= 0) {
        *errnum = a.err;
        *what = a.err == EPROTO ? "the sandbox launcher could not read the run"
                                : "cannot clone the sandbox (namespaces, from the launcher)";
    } else {
        pid = (long)a.pid;
        *pidfd = co_steal_fd(&got[0]);
        atomic_fetch_add(&l_clones, 1);
    }
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < n_got; i++) {
        if (got[i] >= 0)
            close(got[i]);
    }
    co_buf_release(&blob);
    return pid;
}
