/*
 * The sandbox's side of sbx_run() (see sbx_child.h): pid 1 of the sandbox ("init").  It sets
 * up the root, drops privileges, loads the seccomp filter and vforks the job (pid 2), then
 * reaps until the job exits and reports its wait status on the status pipe.  When init exits the
 * kernel kills every other process of the pid namespace, so nothing a job leaves behind survives
 * it.  A job process is never pid 1, so it gets normal signal semantics.
 *
 * Between clone() and execve() the child allocates nothing, logs nothing and uses raw system
 * calls for credentials (glibc's setuid() would try to signal the parent's threads).  Failures
 * travel to the parent as {step, errno} on the status pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_image.h"
#include "sbx_internal.h"
#include "sbx_child.h"

/* The new mount API's flags (<linux/mount.h> conflicts with <sys/mount.h> in glibc 2.36). */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

static const char *const step_names[STEP_COUNT] = {
    [STEP_NONE] = "none",
    [STEP_FDS] = "close_fds",
    [STEP_PDEATHSIG] = "pdeathsig",
    [STEP_SIGNALS] = "signals",
    [STEP_SCHED] = "scheduler",
    [STEP_WAIT_PARENT] = "wait_parent",
    [STEP_CGROUP_JOIN] = "cgroup_join",
    [STEP_CGROUP_NS] = "cgroup_namespace",
    [STEP_NETNS] = "network_namespace",
    [STEP_IPCNS] = "ipc_namespace",
    [STEP_UTSNS] = "uts_namespace",
    [STEP_MOUNT_PRIVATE] = "mount_private",
    [STEP_MOUNT_TEMPLATE] = "mount_template",
    [STEP_ROOT_BIND] = "root_bind",
    [STEP_ROOT_CHDIR] = "root_chdir",
    [STEP_BIND] = "bind_host_dir",
    [STEP_BIND_RO] = "bind_read_only",
    [STEP_MOUNT_TMP] = "mount_tmp",
    [STEP_MOUNT_WORK] = "mount_work",
    [STEP_WORK_FILES] = "work_files",
    [STEP_MOUNT_PROC] = "mount_proc",
    [STEP_PROC_RO] = "proc_read_only",
    [STEP_PROC_MASK] = "proc_mask",
    [STEP_MOUNT_DEV] = "mount_dev",
    [STEP_MKNOD] = "mknod_dev",
    [STEP_DEV_BIND] = "bind_dev",
    [STEP_DEV_LINKS] = "dev_links",
    [STEP_MOUNT_SHM] = "mount_shm",
    [STEP_ROOT_RO] = "root_read_only",
    [STEP_PIVOT_ROOT] = "pivot_root",
    [STEP_UMOUNT_OLD] = "umount_old_root",
    [STEP_HOSTNAME] = "hostname",
    [STEP_LOOPBACK] = "loopback",
    [STEP_RLIMIT] = "rlimits",
    [STEP_CAPS] = "drop_capabilities",
    [STEP_SETGROUPS] = "setgroups",
    [STEP_SETGID] = "setgid",
    [STEP_SETUID] = "setuid",
    [STEP_NO_NEW_PRIVS] = "no_new_privs",
    [STEP_SECCOMP] = "seccomp",
    [STEP_FORK] = "fork_job",
    [STEP_STDIO] = "stdio",
    [STEP_CHDIR_WORK] = "chdir_work",
    [STEP_EXECVE] = "execve",
};

/* What a step did, for messages. */
static const char *const step_what[STEP_COUNT] = {
    [STEP_FDS] = "close inherited file descriptors",
    [STEP_PDEATHSIG] = "set parent-death signal",
    [STEP_SIGNALS] = "reset signals",
    [STEP_SCHED] = "reset the scheduling policy",
    [STEP_WAIT_PARENT] = "wait for the parent to create the cgroup",
    [STEP_CGROUP_JOIN] = "join the job cgroup",
    [STEP_CGROUP_NS] = "create cgroup namespace",
    [STEP_NETNS] = "enter the prepared network namespace",
    [STEP_IPCNS] = "enter or create the IPC namespace",
    [STEP_UTSNS] = "enter or create the UTS namespace",
    [STEP_MOUNT_PRIVATE] = "make mounts private",
    [STEP_MOUNT_TEMPLATE] = "enter a copy of the image's mount template",
    [STEP_ROOT_BIND] = "bind the image root",
    [STEP_ROOT_CHDIR] = "enter the new root",
    [STEP_BIND] = "bind a host folder",
    [STEP_BIND_RO] = "make a bind read-only",
    [STEP_MOUNT_TMP] = "mount tmpfs on /tmp",
    [STEP_MOUNT_WORK] = "mount tmpfs on /work",
    [STEP_WORK_FILES] = "write the work files",
    [STEP_MOUNT_PROC] = "mount /proc",
    [STEP_PROC_RO] = "make a /proc path read-only",
    [STEP_PROC_MASK] = "mask a /proc path",
    [STEP_MOUNT_DEV] = "mount /dev",
    [STEP_MKNOD] = "create device nodes",
    [STEP_DEV_BIND] = "bind the host's device nodes",
    [STEP_DEV_LINKS] = "create /dev links",
    [STEP_MOUNT_SHM] = "mount /dev/shm",
    [STEP_ROOT_RO] = "make the root read-only",
    [STEP_PIVOT_ROOT] = "pivot_root",
    [STEP_UMOUNT_OLD] = "detach the old root",
    [STEP_HOSTNAME] = "set the hostname",
    [STEP_LOOPBACK] = "bring up loopback",
    [STEP_RLIMIT] = "set resource limits",
    [STEP_CAPS] = "drop capabilities",
    [STEP_SETGROUPS] = "drop supplementary groups",
    [STEP_SETGID] = "set the job gid",
    [STEP_SETUID] = "set the job uid",
    [STEP_NO_NEW_PRIVS] = "set no_new_privs",
    [STEP_SECCOMP] = "load the seccomp filter",
    [STEP_FORK] = "fork the job",
    [STEP_STDIO] = "set up stdin/stdout/stderr",
    [STEP_CHDIR_WORK] = "enter /work",
    [STEP_EXECVE] = "execute the program",
};

const char *
sbx_child_step_name(int step)
{
    return step > 0 && step < STEP_COUNT && step_names[step] ? step_names[step] : "none";
}

const char *
sbx_child_step_what(int step)
{
    return step > 0 && step < STEP_COUNT && step_what[step] ? step_what[step] : "?";
}

/*
 * Limits that are set explicitly instead of being inherited from the caller (the values are in
 * child_ctx.fixed, same order): no real-time priority, no nice value below the default, a
 * bounded amount of locked memory, a bounded stack, and no file larger than the largest tmpfs
 * the job can write to.
 */
const int sbx_fixed_rlimits[SBX_FIXED_RLIMITS] = {RLIMIT_RTPRIO, RLIMIT_NICE, RLIMIT_MEMLOCK,
                                                  RLIMIT_STACK, RLIMIT_FSIZE};

_Static_assert(CO_ARRAY_LEN(sbx_fixed_rlimits) == 5, "child_ctx.fixed holds one rlimit per entry");

/*
 * The /proc paths a job may not read or may not write, in one place (Docker's masked and
 * read-only paths, plus the host's boot command line, kernel configuration, interrupt counters
 * and key users).  Masked files become an empty read-only file (a bind of /dev/null), masked
 * folders an empty read-only tmpfs.  Paths the kernel does not have are skipped.
 */
enum proc_rule { PROC_MASK_FILE, PROC_MASK_DIR, PROC_READ_ONLY };

static const struct {
    const char *path; /* below the new root, before pivot_root */
    enum proc_rule rule;
} proc_paths[] = {
    {"proc/cmdline", PROC_MASK_FILE},
    {"proc/config.gz", PROC_MASK_FILE},
    {"proc/interrupts", PROC_MASK_FILE},
    {"proc/kcore", PROC_MASK_FILE},
    {"proc/keys", PROC_MASK_FILE},
    {"proc/key-users", PROC_MASK_FILE},
    {"proc/latency_stats", PROC_MASK_FILE},
    {"proc/sched_debug", PROC_MASK_FILE},
    {"proc/timer_list", PROC_MASK_FILE},
    {"proc/timer_stats", PROC_MASK_FILE},
    {"proc/acpi", PROC_MASK_DIR},
    {"proc/asound", PROC_MASK_DIR},
    {"proc/scsi", PROC_MASK_DIR},
    {"proc/bus", PROC_READ_ONLY},
    {"proc/fs", PROC_READ_ONLY},
    {"proc/irq", PROC_READ_ONLY},
    {"proc/sys", PROC_READ_ONLY},
    {"proc/sysrq-trigger", PROC_READ_ONLY},
};

void
sbx_exit_group(int code)
{
    for (;;)
        syscall(SYS_exit_group, code);
}

static void __attribute__((noreturn)) child_fail(const struct child_ctx *c, int kind, int step)
{
    struct child_msg m = {kind, step, errno, 0, 0};
    (void)!write(c->status_w, &m, sizeof(m));
    sbx_exit_group(kind == MSG_EXEC_ERR ? (m.err == ENOENT ? 127 : 126) : 125);
}

#define TRY(step, expr)                                                                            \
    do {                                                                                           \
        if ((expr) < 0)                                                                            \
            child_fail(c, MSG_SETUP_ERR, (step));                                                  \
    } while (0)

static int
close_all_except(const int *keep, int n)
{
    unsigned next = 3;
    for (int i = 0; i < n; i++) {
        unsigned k = (unsigned)keep[i];
        if (k < next)
            continue;
        if (k > next && close_range(next, k - 1, 0) < 0)
            return -1;
        next = k + 1;
    }
    return close_range(next, ~0U, 0);
}

static int
write_all_fd(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Open the folder of @name (relative to @workfd) for writing its last component, creating the
 * missing folders owned by the job: one component at a time with mkdirat and openat
 * (O_DIRECTORY|O_NOFOLLOW), so no symbolic link is ever followed.  Returns a descriptor (the
 * caller closes it) and sets *@base to the last component, or -1 with errno.
 */
static int
open_work_parent(const struct child_ctx *c, int workfd, char *name, const char **base)
{
    int dfd = fcntl(workfd, F_DUPFD_CLOEXEC, 0);
    char *comp = name;
    for (char *slash; dfd >= 0 && (slash = strchr(comp, '/')); comp = slash + 1) {
        *slash = '\0';
        int nfd = -1;
        if (mkdirat(dfd, comp, 0755) == 0 || errno == EEXIST)
            nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd >= 0 && fchown(nfd, c->uid, c->gid) < 0) {
            close(nfd);
            nfd = -1;
        }
        int saved = errno;
        close(dfd);
        errno = saved;
        dfd = nfd;
    }
    *base = comp;
    return dfd;
}

/* Create the work files in the /work tmpfs (@workfd), owned by the job. */
static int
write_work_files(const struct child_ctx *c, int workfd)
{
    const struct sbx_spec *s = c->spec;
    for (size_t i = 0; i < s->n_files; i++) {
        const struct sbx_file *f = &s->files[i];
        char name[SBX_FILE_NAME_MAX];
        const char *base;
        memcpy(name, f->name, strlen(f->name) + 1);
        int dfd = open_work_parent(c, workfd, name, &base);
        if (dfd < 0)
            return -1;
        int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        int saved = errno;
        close(dfd);
        errno = saved;
        if (fd < 0)
            return -1;
        int rc = 0;
        if (c->file_fds[i] >= 0) {
            ssize_t n;
            while ((n = sendfile(fd, c->file_fds[i], NULL, 1 << 30)) > 0)
                ;
            rc = n < 0 ? -1 : 0;
        } else {
            rc = write_all_fd(fd, f->data, f->len);
        }
        if (rc == 0 && fchown(fd, c->uid, c->gid) < 0)
            rc = -1;
        if (rc == 0 && fchmod(fd, c->file_modes[i]) < 0)
            rc = -1;
        saved = errno;
        close(fd);
        if (c->file_fds[i] >= 0)
            close(c->file_fds[i]);
        errno = saved;
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int
bind_ro(const char *src, const char *dst, unsigned long extra)
{
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        return -1;
    return mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | extra,
                 NULL);
}

/*
 * Make @name ("dev/null") a bind of the host's node "/dev/null" (before pivot_root), nosuid and
 * noexec, keeping the host mount's locked @flags.
 */
static int
bind_dev(const char *name, unsigned long flags)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    close(fd);
    char host[32];
    size_t len = strlen(name);
    if (len + 2 > sizeof(host)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    host[0] = '/';
    memcpy(host + 1, name, len + 1);
    if (mount(host, name, NULL, MS_BIND, NULL) < 0)
        return -1;
    return mount(NULL, name, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC | flags, NULL);
}

/* Mask the file @path with a read-only bind of the null device @null (reads give nothing). */
static int
mask_file(const char *null, const char *path, unsigned long locked)
{
    if (mount(null, path, NULL, MS_BIND, NULL) < 0)
        return -1;
    return mount(NULL, path, NULL,
                 MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC | locked, NULL);
}

static int
loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    int rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

/* Search PATH like execvp() without allocating; returns only on failure with errno set. */
static void
exec_path(const struct child_ctx *c)
{
    const char *file = c->argv[0];
    if (strchr(file, '/')) {
        execve(file, c->argv, c->envp);
        return;
    }
    char buf[PATH_MAX];
    size_t flen = strlen(file);
    bool eacces = false;
    int last = ENOENT;
    for (const char *p = c->path; p;) {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        if (dlen == 0) {
            buf[0] = '.';
            dlen = 1;
        } else if (dlen < sizeof(buf)) {
            memcpy(buf, p, dlen);
        }
        if (dlen + 1 + flen < sizeof(buf)) {
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
            execve(buf, c->argv, c->envp);
            if (errno == EACCES)
                eacces = true;
            else if (errno != ENOENT && errno != ENOTDIR)
                last = errno;
        }
        p = *end ? end + 1 : NULL;
    }
    errno = eacces ? EACCES : last;
}

static void __attribute__((noreturn)) job_main(const struct child_ctx *c)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    TRY(STEP_SIGNALS, sigprocmask(SIG_SETMASK, &none, NULL));
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    TRY(STEP_STDIO, nullfd);
    TRY(STEP_STDIO, dup2(nullfd, 0));
    TRY(STEP_STDIO, dup2(c->out_w, 1));
    TRY(STEP_STDIO, dup2(c->err_w, 2));
    /* Everything else closes at execve(); the status pipe stays usable until then. */
    TRY(STEP_FDS, close_range(3, ~0U, CLOSE_RANGE_CLOEXEC));
    TRY(STEP_CHDIR_WORK, chdir("/work"));
    umask(022); /* init worked with 0 to create exact modes; jobs get the usual default */
    exec_path(c);
    child_fail(c, MSG_EXEC_ERR, STEP_EXECVE);
}

/*
 * The "go" message: one byte, GO_BASE with a bit per namespace descriptor it carries (GO_NET,
 * GO_IPC, GO_UTS, in that order; init's /work descriptor travels back as GO_NET's slot).
 */
#define GO_BASE 0x40
#define GO_FDS_MAX 3

/*
 * Wait for the parent's "go" on the socket @fd; it may carry up to GO_FDS_MAX file descriptors
 * (the namespaces), stored in @passed[i] for each bit i of the byte (-1 where the bit is clear).
 * Returns -1 if the parent went away or the message does not match its byte.
 */
static int
recv_go(int fd, int passed[GO_FDS_MAX])
{
    unsigned char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * GO_FDS_MAX)];
        struct cmsghdr align;
    } u;
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    ssize_t n;
    do {
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        if (n == 0)
            errno = EPIPE;
        return -1;
    }
    int got[GO_FDS_MAX], n_got = 0;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len >= CMSG_LEN(0) && cm->cmsg_len <= CMSG_LEN(sizeof(got))) {
        n_got = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(got, CMSG_DATA(cm), sizeof(int) * (size_t)n_got);
    }
    int k = 0, bits = 0;
    for (int i = 0; i < GO_FDS_MAX; i++) {
        bool set = byte & (1u << i);
        bits += set;
        passed[i] = set && k < n_got ? got[k++] : -1;
    }
    if ((byte & ~((1u << GO_FDS_MAX) - 1)) != GO_BASE || k != n_got || bits != n_got) {
        for (int i = 0; i < n_got; i++)
            close(got[i]);
        for (int i = 0; i < GO_FDS_MAX; i++)
            passed[i] = -1;
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
sbx_child_send_go(int fd, const int *pass, int n)
{
    unsigned char byte = GO_BASE;
    int fds[GO_FDS_MAX], n_fds = 0;
    for (int i = 0; i < n && i < GO_FDS_MAX; i++) {
        if (pass[i] >= 0) {
            byte |= (unsigned char)(1u << i);
            fds[n_fds++] = pass[i];
        }
    }
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * GO_FDS_MAX)];
        struct cmsghdr align;
    } u;
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    memset(&u, 0, sizeof(u));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (n_fds > 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n_fds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static pthread_once_t args_once = PTHREAD_ONCE_INIT;
static unsigned long args_start, args_end;

/* Fields 48 and 49 of /proc/self/stat: the argument area.  Best effort (0, 0 if not found). */
static void
find_args_area(void)
{
    char buf[2048];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    unsigned long start = 0, end = 0;
    /* p points at ")"; the space after it precedes field 3, so the k-th space precedes field
     * k + 2: arg_start (field 48) and arg_end (field 49) follow the 46th and 47th spaces. */
    for (int k = 1; p && k <= 47; k++) {
        p = strchr(p + 1, ' ');
        if (p && k == 46)
            start = strtoul(p + 1, NULL, 10);
        else if (p && k == 47)
            end = strtoul(p + 1, NULL, 10);
    }
    if (start == 0 || end <= start || end - start > (1ul << 20))
        return;
    args_start = start;
    args_end = end;
}

void
sbx_child_args_area(unsigned long *start, unsigned long *end)
{
    pthread_once(&args_once, find_args_area);
    *start = args_start;
    *end = args_end;
}

/*
 * Init is a copy of the host process, command line included: blank it and name the process
 * "cacheout-init", so that a job reading /proc/1/cmdline does not learn the host's arguments.
 * (PR_SET_MM would be neater but needs CAP_SYS_RESOURCE, which some hosts withhold from root.)
 * The parent found the argument area once per process (sbx_child_args_area()): init's memory is
 * a copy of the parent's, at the same addresses.
 */
static void
hide_host_cmdline(const struct child_ctx *c)
{
    static const char name[] = "cacheout-init";
    (void)prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
    if (c->arg_start == 0 || c->arg_end <= c->arg_start)
        return;
    char *area = (char *)c->arg_start;
    size_t len = c->arg_end - c->arg_start;
    memset(area, 0, len);
    memcpy(area, name, len < sizeof(name) ? len - 1 : sizeof(name) - 1);
}

/*
 * spec->keep_work: pass a descriptor of /work to the parent over the "go" socket pair, then
 * close it; the parent reads the folder after the job (sbx_child_recv_work()).
 */
static void
send_work_fd(const struct child_ctx *c)
{
    int workfd = open("/work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    TRY(STEP_WORK_FILES, workfd);
    TRY(STEP_WORK_FILES, sbx_child_send_go(c->go_r, &workfd, 1));
    close(workfd);
    close(c->go_r);
}

int
sbx_child_recv_work(int fd, int *work_fd)
{
    *work_fd = -1;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
        return -1;
    int got[GO_FDS_MAX];
    if (recv_go(fd, got) < 0)
        return -1;
    for (int i = 1; i < GO_FDS_MAX; i++) {
        if (got[i] >= 0)
            close(got[i]);
    }
    *work_fd = got[0];
    return *work_fd < 0 ? -1 : 0;
}

/*
 * Wait for the parent's "go" (see recv_go()) and, with c->ns_via_go, enter the namespaces it
 * carries: the network one always (made by the parent or its pool meanwhile), the IPC and UTS
 * ones when the pool made them with it (sbx_prewarm()); without them init makes its own now, as
 * the clone would have.  Each is fresh and used by this sandbox only.
 */
static void
wait_go(const struct child_ctx *c)
{
    int ns[GO_FDS_MAX];
    TRY(STEP_WAIT_PARENT, recv_go(c->go_r, ns));
    if (!c->spec->keep_work)
        close(c->go_r);
    if (c->ns_via_go) {
        if (ns[0] < 0) {
            errno = EBADF;
            child_fail(c, MSG_SETUP_ERR, STEP_NETNS);
        }
        TRY(STEP_NETNS, setns(ns[0], CLONE_NEWNET));
        TRY(STEP_IPCNS, ns[1] >= 0 ? setns(ns[1], CLONE_NEWIPC) : unshare(CLONE_NEWIPC));
        TRY(STEP_UTSNS, ns[2] >= 0 ? setns(ns[2], CLONE_NEWUTS) : unshare(CLONE_NEWUTS));
    }
    for (int i = 0; i < GO_FDS_MAX; i++) {
        if (ns[i] >= 0)
            close(ns[i]);
    }
}

/*
 * Bind the image folder onto itself and enter the bind.  The folder is looked up once: the
 * descriptor is checked against what the parent checked (device and inode), cloned as a mount
 * (open_tree) and attached over that very folder (move_mount), and the child enters the mount
 * through its descriptor.  Looking the path up twice (mount, then chdir) let a folder swapped in
 * between, e.g. a symlink to the host's "/", become the job's root.
 */
static void
enter_root(const struct child_ctx *c)
{
    int dir = open(c->img->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    TRY(STEP_ROOT_BIND, dir);
    struct stat st;
    TRY(STEP_ROOT_BIND, fstat(dir, &st));
    if (st.st_dev != c->img->root_dev || st.st_ino != c->img->root_ino) {
        errno = ESTALE;
        child_fail(c, MSG_SETUP_ERR, STEP_ROOT_BIND);
    }
    int mnt =
        (int)syscall(SYS_open_tree, dir, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    TRY(STEP_ROOT_BIND, mnt);
    TRY(STEP_ROOT_BIND, syscall(SYS_move_mount, mnt, "", dir, "",
                                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
    TRY(STEP_ROOT_CHDIR, fchdir(mnt));
    close(mnt);
    close(dir);
}

/* The root's skeleton: mounts made private, the image folder bound and entered, host folders
 * bound read-only (all relative to the new root, entered as the working folder). */
static void
build_root(const struct child_ctx *c)
{
    TRY(STEP_MOUNT_PRIVATE, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    enter_root(c);
    for (int i = 0; i < c->img->n_binds; i++)
        TRY(STEP_BIND, bind_ro(c->img->bind_src[i], c->img->bind_dst[i], c->bind_flags[i]));
}

/* The root made read-only and made "/": pivot_root, the old root detached. */
static void
seal_root(const struct child_ctx *c)
{
    TRY(STEP_ROOT_RO,
        mount(NULL, ".", NULL,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | c->root_flags, NULL));
    TRY(STEP_PIVOT_ROOT, syscall(SYS_pivot_root, ".", "."));
    TRY(STEP_UMOUNT_OLD, umount2(".", MNT_DETACH));
    TRY(STEP_ROOT_CHDIR, chdir("/"));
}

static void
mount_tmp_work(const struct child_ctx *c)
{
    TRY(STEP_MOUNT_TMP, mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, c->tmp_opts));
    TRY(STEP_MOUNT_WORK, mount("tmpfs", "work", "tmpfs", MS_NOSUID | MS_NODEV, c->work_opts));
}

/*
 * A fresh /proc of the sandbox's pid namespace, with the paths of proc_paths masked or read-only.
 * @null is the null device whose bind masks a file: the host's before pivot_root, the sandbox's
 * own (dev/null) in a copy of a mount template.
 */
static void
mount_proc(const struct child_ctx *c, const char *null)
{
    TRY(STEP_MOUNT_PROC, mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    /*
     * Paths the kernel lacks (ENOENT: no ACPI, no CONFIG_MAGIC_SYSRQ ...) are skipped.  The first
     * masked file gets a read-only, nosuid bind of the null device; the others bind that one, and
     * a bind keeps the flags of the mount it copies (one mount call each instead of two).
     */
    const char *null_mask = NULL;
    for (size_t i = 0; i < CO_ARRAY_LEN(proc_paths); i++) {
        const char *p = proc_paths[i].path;
        int rc;
        switch (proc_paths[i].rule) {
        case PROC_MASK_FILE:
            rc = null_mask ? mount(null_mask, p, NULL, MS_BIND, NULL)
                           : mask_file(null, p, c->dev_flags);
            if (rc == 0 && !null_mask)
                null_mask = p;
            break;
        case PROC_MASK_DIR:
            rc = mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       "size=4k,mode=0555");
            break;
        default:
            rc = bind_ro(p, p, MS_NOEXEC);
            break;
        }
        if (rc < 0 && errno != ENOENT)
            child_fail(c, MSG_SETUP_ERR,
                       proc_paths[i].rule == PROC_READ_ONLY ? STEP_PROC_RO : STEP_PROC_MASK);
    }
}

/*
 * /dev: a small tmpfs with the usual nodes (rootless: binds of the host's), links, and the
 * folder /dev/shm (mount_shm() mounts its tmpfs).
 */
static void
make_dev(const struct child_ctx *c)
{
    TRY(STEP_MOUNT_DEV,
        mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"));
    static const struct {
        const char *name; /* below the new root; the host's node is "/" + name */
        unsigned minor;
    } devs[] = {
        {"dev/null", 3}, {"dev/zero", 5}, {"dev/full", 7}, {"dev/random", 8}, {"dev/urandom", 9}};
    for (size_t i = 0; i < CO_ARRAY_LEN(devs); i++) {
        if (c->userns)
            TRY(STEP_DEV_BIND, bind_dev(devs[i].name, c->dev_flags));
        else
            TRY(STEP_MKNOD, mknod(devs[i].name, S_IFCHR | 0666, makedev(1, devs[i].minor)));
    }
    TRY(STEP_DEV_LINKS, symlink("/proc/self/fd", "dev/fd"));
    TRY(STEP_DEV_LINKS, symlink("/proc/self/fd/0", "dev/stdin"));
    TRY(STEP_DEV_LINKS, symlink("/proc/self/fd/1", "dev/stdout"));
    TRY(STEP_DEV_LINKS, symlink("/proc/self/fd/2", "dev/stderr"));
    TRY(STEP_MOUNT_SHM, mkdir("dev/shm", 01777));
}

/* The sandbox's own /dev/shm: a fresh tmpfs on the folder make_dev() made. */
static void
mount_shm(const struct child_ctx *c)
{
    TRY(STEP_MOUNT_SHM,
        mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, c->shm_opts));
}

int
sbx_child_template_main(const struct child_ctx *c, int hold_r)
{
    TRY(STEP_PDEATHSIG, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    int keep[2] = {c->status_w < hold_r ? c->status_w : hold_r,
                   c->status_w < hold_r ? hold_r : c->status_w};
    TRY(STEP_FDS, close_all_except(keep, 2));
    umask(0); /* exact modes for /dev, as init makes them */
    build_root(c);
    /*
     * /dev is built here once, then made read-only: its nodes and links are the same for every
     * job, and each copy of the template mounts only a fresh /dev/shm on it (sbx_child_main()).
     */
    make_dev(c);
    TRY(STEP_MOUNT_DEV,
        mount(NULL, "dev", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL));
    seal_root(c);
    struct child_msg m = {MSG_EXIT, 0, 0, 0, 0};
    if (write(c->status_w, &m, sizeof(m)) != (ssize_t)sizeof(m))
        sbx_exit_group(1);
    char byte;
    while (read(hold_r, &byte, 1) < 0 && errno == EINTR)
        ;
    sbx_exit_group(0);
}

int
sbx_child_main(const struct child_ctx *c)
{
    /* Die with the thread that started us. */
    TRY(STEP_PDEATHSIG, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    TRY(STEP_FDS, close_all_except(c->keep, c->n_keep));
    umask(0);
    /* A real-time host thread must not hand its policy to a job (nice values are kept). */
    struct sched_param sp = {0};
    TRY(STEP_SCHED, sched_setscheduler(0, SCHED_OTHER, &sp));

    if (c->mnt_template_fd >= 0) {
        /*
         * A copy of the image's mount template: its root is the image, bound read-only with
         * its host folders and a read-only /dev, the host's mounts detached (built once,
         * sbx_mnt_template.c).  The copy is this sandbox's own; the fresh mounts below are made
         * in it only (every mount of the template is private, so nothing propagates back or
         * between copies).
         */
        TRY(STEP_MOUNT_TEMPLATE, setns(c->mnt_template_fd, CLONE_NEWNS));
        TRY(STEP_MOUNT_TEMPLATE, unshare(CLONE_NEWNS));
        close(c->mnt_template_fd);
        TRY(STEP_ROOT_CHDIR, chdir("/"));
        mount_tmp_work(c);
        mount_shm(c);
        mount_proc(c, "dev/null");
    } else {
        /* The new root: the image folder bound onto itself, with host folders bound read-only. */
        build_root(c);
        mount_tmp_work(c);
        mount_proc(c, "/dev/null");
        make_dev(c);
        mount_shm(c);
        seal_root(c);
    }

    /*
     * The parent creates the cgroup while this child builds the root.  Join it now, before
     * anything of the job is written or run (the work files' tmpfs pages are charged to it),
     * through folders the parent opened (the host's /sys is no longer visible), then hide the
     * hierarchy.
     */
    wait_go(c);
    for (int i = 0; i < c->cg->n_dirs; i++) {
        int fd = openat(c->cg->join_dirfd[i], c->cg->join_rel[i], O_WRONLY | O_CLOEXEC);
        TRY(STEP_CGROUP_JOIN, fd);
        if (write(fd, "0", 1) != 1)
            child_fail(c, MSG_SETUP_ERR, STEP_CGROUP_JOIN);
        close(fd);
    }
    for (int i = 0; i < c->cg->n_dirs; i++) {
        if (c->cg->join_dirfd[i] >= 0)
            close(c->cg->join_dirfd[i]);
    }
    TRY(STEP_CGROUP_NS, unshare(CLONE_NEWCGROUP));
    if (c->spec->n_files) {
        int workfd = open("/work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        TRY(STEP_WORK_FILES, workfd);
        TRY(STEP_WORK_FILES, write_work_files(c, workfd));
        close(workfd);
    }
    if (c->spec->keep_work)
        send_work_fd(c);

    TRY(STEP_HOSTNAME, sethostname("cacheout", 8));
    if (c->spec->network == SBX_NET_LOOPBACK)
        TRY(STEP_LOOPBACK, loopback_up());

    struct rlimit zero = {0, 0};
    TRY(STEP_RLIMIT, setrlimit(RLIMIT_CORE, &zero));
    TRY(STEP_RLIMIT, setrlimit(RLIMIT_NPROC, &c->nproc));
    TRY(STEP_RLIMIT, setrlimit(RLIMIT_NOFILE, &c->nofile));
    if (c->cpu_rlimit)
        TRY(STEP_RLIMIT, setrlimit(RLIMIT_CPU, &c->cpu));
    for (size_t i = 0; i < CO_ARRAY_LEN(sbx_fixed_rlimits); i++)
        TRY(STEP_RLIMIT, setrlimit(sbx_fixed_rlimits[i], &c->fixed[i]));

    /* Credentials: empty bounding and ambient sets, then the job's uid/gid (which clears the
     * permitted and effective sets).  Raw system calls: this process has one thread. */
    for (int cap = 0; cap <= c->cap_last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(c, MSG_SETUP_ERR, STEP_CAPS);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        child_fail(c, MSG_SETUP_ERR, STEP_CAPS);
    TRY(STEP_SETGROUPS, syscall(SYS_setgroups, 0, NULL));
    TRY(STEP_SETGID, syscall(SYS_setresgid, c->gid, c->gid, c->gid));
    TRY(STEP_SETUID, syscall(SYS_setresuid, c->uid, c->uid, c->uid));
    /*
     * The kernel clears the parent-death signal when the credentials change: set it again, then
     * catch a parent that died in between (the read end of the status pipe is closed then), or
     * the sandbox would outlive a killed caller.
     */
    TRY(STEP_PDEATHSIG, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    struct pollfd alive = {c->status_w, 0, 0};
    if (poll(&alive, 1, 0) > 0 && (alive.revents & (POLLERR | POLLHUP)))
        sbx_exit_group(125);
    /* Init keeps the host's memory image (copy-on-write): not dumpable means the job, which has
     * the same uid, cannot read its /proc/1/environ or memory. */
    TRY(STEP_NO_NEW_PRIVS, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    TRY(STEP_NO_NEW_PRIVS, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    TRY(STEP_SECCOMP, syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c->prog));

    /* argv and envp were copied by the parent: the host's argument area can go now. */
    hide_host_cmdline(c);
    pid_t job = vfork();
    if (job < 0)
        child_fail(c, MSG_SETUP_ERR, STEP_FORK);
    if (job == 0)
        job_main(c);
    close(c->out_w);
    close(c->err_w);
    for (;;) {
        int st;
        pid_t p = wait4(-1, &st, __WALL, NULL);
        if (p == job) {
            struct rusage ru;
            memset(&ru, 0, sizeof(ru));
            (void)getrusage(RUSAGE_CHILDREN, &ru);
            struct child_msg m = {MSG_EXIT, 0, 0, st, ru.ru_maxrss};
            (void)!write(c->status_w, &m, sizeof(m));
            sbx_exit_group(0);
        }
        if (p < 0 && errno != EINTR)
            sbx_exit_group(0);
    }
}
