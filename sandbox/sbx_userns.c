/* Rootless sandboxes: subordinate ids and the uid/gid maps of a sandbox (see sbx_userns.h). */
#include "sbx_userns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_image.h"
#include "sbx_internal.h"

bool
sbx_rootless(void)
{
    return geteuid() != 0;
}

/* The next line of @p (NUL-terminated) into @line; returns the rest, or NULL at the end. */
static const char *
next_line(const char *p, char *line, size_t size)
{
    if (!p || !*p)
        return NULL;
    size_t len = strcspn(p, "\n");
    size_t keep = len < size ? len : size - 1;
    memcpy(line, p, keep);
    line[keep] = '\0';
    return p[len] ? p + len + 1 : p + len;
}

/*
 * Split the /etc/subuid line @line ("name-or-id:first:count") in place: the owner becomes a
 * NUL-terminated prefix of @line.  Returns 0, or -1 for a comment or a malformed line.
 */
static int
subid_fields(char *line, unsigned long *start, unsigned long *count)
{
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || line[0] == '#')
        return -1;
    char *end1, *end2;
    errno = 0;
    *start = strtoul(c1 + 1, &end1, 10);
    *count = strtoul(c2 + 1, &end2, 10);
    if (errno || end1 != c2 || end1 == c1 + 1 || end2 == c2 + 1 ||
        (*end2 != '\0' && *end2 != ' ' && *end2 != '\r'))
        return -1;
    *c1 = '\0';
    return 0;
}

int
sbx_subid_find(const char *text, const char *user, unsigned long id, unsigned long need,
               unsigned long *first)
{
    char line[512], idstr[32];
    snprintf(idstr, sizeof(idstr), "%lu", id);
    for (const char *p = text; (p = next_line(p, line, sizeof(line))) != NULL;) {
        unsigned long start, count;
        if (subid_fields(line, &start, &count) < 0)
            continue;
        if (!((user[0] && strcmp(line, user) == 0) || strcmp(line, idstr) == 0))
            continue;
        /* The job ids must fit in 32 bits, and so must the highest one. */
        if (count >= need && start <= 0xfffffffful - need) {
            *first = start;
            return 0;
        }
    }
    return -1;
}

/*
 * Split the /etc/passwd line @line ("name:password:uid:gid:...") in place: the name becomes a
 * NUL-terminated prefix of @line.  Returns 0, or -1 for a malformed line.
 */
static int
passwd_fields(char *line, uid_t *uid, gid_t *gid)
{
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || c1 == line)
        return -1;
    char *end, *end2;
    errno = 0;
    unsigned long u = strtoul(c2 + 1, &end, 10);
    if (errno || end == c2 + 1 || *end != ':' || u > 0xfffffffful)
        return -1;
    unsigned long g = strtoul(end + 1, &end2, 10);
    if (errno || end2 == end + 1 || *end2 != ':' || g > 0xfffffffful)
        return -1;
    *c1 = '\0';
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return 0;
}

void
sbx_passwd_name(const char *passwd, uid_t uid, char *out, size_t size)
{
    char line[1024];
    out[0] = '\0';
    for (const char *p = passwd; (p = next_line(p, line, sizeof(line))) != NULL;) {
        uid_t u;
        gid_t g;
        if (passwd_fields(line, &u, &g) < 0 || u != uid)
            continue;
        if (strlen(line) < size)
            memcpy(out, line, strlen(line) + 1);
        return;
    }
}

int
sbx_passwd_lookup(const char *passwd, const char *name, uid_t *uid, gid_t *gid)
{
    char line[1024];
    for (const char *p = passwd; (p = next_line(p, line, sizeof(line))) != NULL;) {
        if (passwd_fields(line, uid, gid) == 0 && strcmp(line, name) == 0)
            return 0;
    }
    return -1;
}

unsigned long
sbx_subid_next_free(const char *subuid, const char *subgid)
{
    unsigned long next = 100000;
    char line[512];
    const char *texts[] = {subuid, subgid};
    for (int i = 0; i < 2; i++) {
        for (const char *p = texts[i]; (p = next_line(p, line, sizeof(line))) != NULL;) {
            unsigned long start, count;
            if (subid_fields(line, &start, &count) == 0 && start + count > next &&
                start + count >= start)
                next = start + count;
        }
    }
    /* Whole blocks of 65536 from 100000, as useradd hands them out, clear of the uids that
     * root's sandboxes use (SBX_UID_BASE + slot). */
    next = 100000 + (next - 100000 + 65535) / 65536 * 65536;
    if (next < SBX_UID_BASE + SBX_MAX_SLOTS && next + 65536 > SBX_UID_BASE)
        next = 100000 + (SBX_UID_BASE + SBX_MAX_SLOTS - 100000 + 65535) / 65536 * 65536;
    return next;
}

static int
find_range(const char *file, const struct sbx_userns *u, unsigned long id, unsigned long *first,
           co_err *err)
{
    struct co_buf b = CO_BUF_INIT;
    int rc = sbx_read_text(file, &b, err);
    if (rc == 0 && sbx_subid_find(b.data, u->user, id, SBX_MAX_SLOTS, first) < 0)
        rc = co_err_set(err, CO_E_UNAVAILABLE,
                        "rootless sandbox: no range of %d subordinate ids for user '%s' (id %lu) "
                        "in '%s'; as root, run 'cacheout-run --setup-rootless %s'",
                        SBX_MAX_SLOTS, u->user[0] ? u->user : "?", id, file,
                        u->user[0] ? u->user : "USER");
    co_buf_release(&b);
    return rc;
}

static int
find_helper(const char *name, char *out, size_t size, co_err *err)
{
    static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin"};
    for (size_t i = 0; i < CO_ARRAY_LEN(dirs); i++) {
        snprintf(out, size, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    out[0] = '\0';
    return co_err_set(err, CO_E_UNAVAILABLE,
                      "rootless sandbox: '%s' not found (install the package uidmap)", name);
}

/* The run folder holds the slot locks and the default image: it must be the caller's alone. */
static int
check_run_dir(uid_t uid, co_err *err)
{
    const char *run = sbx_run_dir();
    if (sbx_mkdir_p(run, 0700, err) < 0)
        return co_err_wrap(err, "rootless sandbox: run folder (CACHEOUT_RUN_DIR)");
    struct stat st;
    if (lstat(run, &st) < 0)
        return co_err_sys(err, errno, "cannot stat '%s'", run);
    if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 022))
        return co_err_set(err, CO_E_UNAVAILABLE,
                          "rootless sandbox: run folder '%s' must be a folder owned by uid %u "
                          "that nobody else can write (set CACHEOUT_RUN_DIR)",
                          run, (unsigned)uid);
    return 0;
}

static pthread_once_t userns_once = PTHREAD_ONCE_INIT;
static struct sbx_userns *userns_cached;
static co_err userns_err;

static void
userns_detect_once(void)
{
    struct sbx_userns *u = co_xcalloc(1, sizeof(*u));
    co_err_clear(&userns_err);
    u->uid = geteuid();
    u->gid = getegid();
    struct co_buf pw = CO_BUF_INIT;
    co_err ignored = CO_ERR_INIT; /* without a name, the uid is looked up alone */
    if (sbx_read_text("/etc/passwd", &pw, &ignored) == 0)
        sbx_passwd_name(pw.data, u->uid, u->user, sizeof(u->user));
    co_buf_release(&pw);
    if (find_range("/etc/subuid", u, u->uid, &u->subuid, &userns_err) == 0 &&
        find_range("/etc/subgid", u, u->uid, &u->subgid, &userns_err) == 0 &&
        find_helper("newuidmap", u->newuidmap, sizeof(u->newuidmap), &userns_err) == 0 &&
        find_helper("newgidmap", u->newgidmap, sizeof(u->newgidmap), &userns_err) == 0 &&
        check_run_dir(u->uid, &userns_err) == 0) {
        userns_cached = u;
        return;
    }
    free(u);
}

int
sbx_userns_get(const struct sbx_userns **out, co_err *err)
{
    pthread_once(&userns_once, userns_detect_once);
    if (!userns_cached) {
        if (err)
            *err = userns_err;
        return -1;
    }
    *out = userns_cached;
    return 0;
}

/* Start @path with @argv, stdin/stdout on /dev/null and stderr on a pipe returned in *@err_fd. */
static int
spawn_helper(const char *path, char *const argv[], pid_t *pid, int *err_fd, co_err *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return co_err_sys(err, errno, "cannot create pipe");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    static char *const empty_env[] = {NULL};
    int e = posix_spawn(pid, path, &fa, &attr, argv, empty_env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(p[1]);
    if (e != 0) {
        close(p[0]);
        return co_err_sys(err, e, "cannot start '%s'", path);
    }
    *err_fd = p[0];
    return 0;
}

/* The helpers of one namespace: newuidmap and newgidmap. */
struct idmap_run {
    pid_t pid[2];  /* 0 when not running */
    int err_fd[2]; /* their stderr, read once they exit; -1 when closed */
};

static int map_finish(struct idmap_run *run, co_err *err);

/* Start newuidmap and newgidmap for @child: "0 <uid> 1 <SBX_UID_BASE> <subuid> <slots>". */
static int
map_start(const struct sbx_userns *u, pid_t child, struct idmap_run *run, co_err *err)
{
    run->pid[0] = run->pid[1] = 0;
    run->err_fd[0] = run->err_fd[1] = -1;
    char pid_s[24], inside[24], count[24];
    snprintf(pid_s, sizeof(pid_s), "%ld", (long)child);
    snprintf(inside, sizeof(inside), "%u", SBX_UID_BASE);
    snprintf(count, sizeof(count), "%d", SBX_MAX_SLOTS);
    for (int i = 0; i < 2; i++) {
        char self[24], outside[24];
        snprintf(self, sizeof(self), "%lu", i == 0 ? (unsigned long)u->uid : (unsigned long)u->gid);
        snprintf(outside, sizeof(outside), "%lu", i == 0 ? u->subuid : u->subgid);
        const char *path = i == 0 ? u->newuidmap : u->newgidmap;
        char *const argv[] = {(char *)path, pid_s, "0", self, "1", inside, outside, count, NULL};
        if (spawn_helper(path, argv, &run->pid[i], &run->err_fd[i], err) < 0) {
            co_err e = CO_ERR_INIT;
            if (map_finish(run, &e) < 0) {
                /* the start failure is what matters */
            }
            return -1;
        }
    }
    return 0;
}

/* Wait for the helpers of @run.  Errors: one failed; the message quotes what it said. */
static int
map_finish(struct idmap_run *run, co_err *err)
{
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        int st = 0;
        if (run->pid[i] > 0) {
            while (waitpid(run->pid[i], &st, 0) < 0 && errno == EINTR)
                ;
        }
        char said[256] = "";
        if (run->err_fd[i] >= 0) {
            ssize_t n = read(run->err_fd[i], said, sizeof(said) - 1);
            said[n > 0 ? n : 0] = '\0';
            said[strcspn(said, "\n")] = '\0';
            close(run->err_fd[i]);
            run->err_fd[i] = -1;
        }
        if (run->pid[i] > 0 && rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            rc = co_err_set(err, CO_E_UNAVAILABLE, "%s failed (status 0x%x): %s",
                            i == 0 ? "newuidmap" : "newgidmap", (unsigned)st,
                            said[0] ? said : "no message");
        run->pid[i] = 0;
    }
    return rc;
}

/* Make a user namespace with the maps described at sbx_userns_shared(). */
static int
userns_create(const struct sbx_userns *u, int *out, co_err *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return co_err_sys(err, errno, "cannot create pipe");
    /*
     * The holder: a process of its own in the new namespace, alive until the maps are written
     * and the namespace is opened.  It waits for the end of the pipe and exits.  (A thread of
     * this process cannot unshare a user namespace: the process has other threads.)
     */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        /* Keep nothing of the caller's open files (other sandboxes' pipes among them). */
        char b;
        if (dup2(p[0], 0) < 0)
            sbx_exit_group(1);
        close_range(1, ~0U, 0);
        while (read(0, &b, 1) < 0 && errno == EINTR)
            ;
        sbx_exit_group(0);
    }
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        return co_err_sys(err, clone_errno,
                          "rootless sandbox: cannot create a user namespace (are unprivileged "
                          "user namespaces allowed? see user.max_user_namespaces)");
    }
    struct idmap_run run;
    int rc = map_start(u, (pid_t)pid, &run, err);
    if (rc == 0)
        rc = map_finish(&run, err);
    if (rc < 0)
        co_err_wrap(err, "rootless sandbox: write the uid/gid maps");
    int fd = -1;
    if (rc == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            rc = co_err_sys(err, errno, "cannot open '%s'", path);
    }
    close(p[1]);
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (rc == 0)
        *out = fd;
    return rc;
}

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static int shared_fd = -1;

int
sbx_userns_shared(const struct sbx_userns *u, int *out, co_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&shared_mu);
    if (shared_fd < 0)
        rc = userns_create(u, &shared_fd, err);
    if (rc == 0)
        *out = shared_fd;
    pthread_mutex_unlock(&shared_mu);
    return rc;
}

static void *
prepare_main(void *arg)
{
    const struct sbx_userns *u = arg;
    int fd;
    co_err e = CO_ERR_INIT;
    if (sbx_userns_shared(u, &fd, &e) < 0) {
        /* sbx_run() tries again and reports the error */
    }
    return NULL;
}

int
sbx_userns_prepare(co_err *err)
{
    const struct sbx_userns *u;
    if (sbx_userns_get(&u, NULL) < 0)
        return 0;
    pthread_mutex_lock(&shared_mu);
    bool done = shared_fd >= 0;
    pthread_mutex_unlock(&shared_mu);
    if (done)
        return 0;
    return sbx_thread_start(prepare_main, (void *)u, "the rootless user namespace", err);
}
