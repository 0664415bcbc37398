/*
 * sbx_run(): prepare everything in the parent (slot, cgroup, image, mount options, argv/envp,
 * seccomp program, work file descriptors), clone one child into new mount, pid, net, ipc and uts
 * namespaces, and let it build the sandbox and exec the job.
 *
 * Processes: the cloned child is pid 1 of the sandbox ("init").  It sets up the root, drops
 * privileges, loads the seccomp filter and vforks the job (pid 2), then reaps until the job exits
 * and reports its wait status on the status pipe.  When init exits the kernel kills every other
 * process of the pid namespace, so nothing a job leaves behind survives it; the cgroup is then
 * killed and removed as well.  A job process is never pid 1, so it gets normal signal semantics.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
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
#include "sbx_userns.h"

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

/* The steps of the child, reported by number and named in errors. */
enum step {
    STEP_NONE = 0,
    STEP_FDS,
    STEP_PDEATHSIG,
    STEP_SIGNALS,
    STEP_SCHED,
    STEP_WAIT_PARENT,
    STEP_CGROUP_JOIN,
    STEP_CGROUP_NS,
    STEP_NETNS,
    STEP_MOUNT_PRIVATE,
    STEP_ROOT_BIND,
    STEP_ROOT_CHDIR,
    STEP_BIND,
    STEP_BIND_RO,
    STEP_MOUNT_TMP,
    STEP_MOUNT_WORK,
    STEP_WORK_FILES,
    STEP_MOUNT_PROC,
    STEP_PROC_RO,
    STEP_PROC_MASK,
    STEP_MOUNT_DEV,
    STEP_MKNOD,
    STEP_DEV_BIND,
    STEP_DEV_LINKS,
    STEP_MOUNT_SHM,
    STEP_ROOT_RO,
    STEP_PIVOT_ROOT,
    STEP_UMOUNT_OLD,
    STEP_HOSTNAME,
    STEP_LOOPBACK,
    STEP_RLIMIT,
    STEP_CAPS,
    STEP_SETGROUPS,
    STEP_SETGID,
    STEP_SETUID,
    STEP_NO_NEW_PRIVS,
    STEP_SECCOMP,
    STEP_FORK,
    STEP_STDIO,
    STEP_CHDIR_WORK,
    STEP_EXECVE,
    STEP_COUNT
};

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
    [STEP_MOUNT_PRIVATE] = "mount_private",
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
    [STEP_MOUNT_PRIVATE] = "make mounts private",
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

enum msg_kind { MSG_SETUP_ERR = 1, MSG_EXEC_ERR, MSG_EXIT };

struct msg {
    int32_t kind;
    int32_t step;
    int32_t err;
    int32_t wstatus;
    int64_t maxrss_kb; /* MSG_EXIT: largest RSS of the processes init reaped so far */
};

/* Everything the child needs, prepared by the parent (the child only reads it). */
struct child_ctx {
    const struct sbx_image *img;
    const struct sbx_cgroup *cg;
    int status_w, out_w, err_w;
    int go_r;          /* the parent writes one byte once the cgroup exists */
    bool netns_via_go; /* network "none": the namespace comes with the parent's "go" */
    /*
     * Rootless: the child lives in the sandboxes' user namespace (see clone_in_userns()).  Its
     * device nodes are binds of the host's (mknod is not allowed in a user namespace), and
     * every remount keeps the flags the kernel locked on the host's mounts (noexec, the atime
     * mode), which a user namespace may not clear.
     */
    bool userns;
    unsigned long root_flags;
    unsigned long dev_flags;
    unsigned long bind_flags[SBX_IMAGE_MAX_BINDS];
    int keep[16 + SBX_FILES_MAX];
    int n_keep;
    const struct sbx_spec *spec;
    const int *file_fds; /* per work file: host fd, or -1 for in-memory data */
    const mode_t *file_modes;
    char tmp_opts[128], work_opts[160], shm_opts[128];
    int cap_last;
    uid_t uid;
    gid_t gid;
    struct rlimit nproc, nofile, cpu;
    bool cpu_rlimit;
    struct rlimit fixed[5]; /* rlimits set whatever the caller had (see fixed_rlimits) */
    const struct sock_fprog *prog;
    char *const *argv;
    char *const *envp;
    const char *path; /* PATH used to find argv[0] */
};

/*
 * Limits that are set explicitly instead of being inherited from the caller (the values are in
 * child_ctx.fixed, same order): no real-time priority, no nice value below the default, a
 * bounded amount of locked memory, a bounded stack, and no file larger than the largest tmpfs
 * the job can write to.
 */
static const int fixed_rlimits[] = {RLIMIT_RTPRIO, RLIMIT_NICE, RLIMIT_MEMLOCK, RLIMIT_STACK,
                                    RLIMIT_FSIZE};

_Static_assert(CO_ARRAY_LEN(fixed_rlimits) == 5, "child_ctx.fixed holds one rlimit per entry");

#define SBX_MEMLOCK_BYTES (8 << 20)
#define SBX_STACK_BYTES (8 << 20)

/*
 * The /proc paths a job may not read or may not write, in one place (Docker's masked and
 * read-only paths, plus the host's boot command line, kernel configuration, interrupt counters
 * and key users).  Masked files become an empty read-only file (a bind of /dev/null), masked
 * folders an empty read-only tmpfs.  Paths the kernel does not have are skipped.
 */
enum proc_rule { PROC_MASK, PROC_READ_ONLY };

static const struct {
    const char *path; /* below the new root, before pivot_root */
    enum proc_rule rule;
} proc_paths[] = {
    {"proc/acpi", PROC_MASK},          {"proc/asound", PROC_MASK},
    {"proc/cmdline", PROC_MASK},       {"proc/config.gz", PROC_MASK},
    {"proc/interrupts", PROC_MASK},    {"proc/kcore", PROC_MASK},
    {"proc/keys", PROC_MASK},          {"proc/key-users", PROC_MASK},
    {"proc/latency_stats", PROC_MASK}, {"proc/sched_debug", PROC_MASK},
    {"proc/scsi", PROC_MASK},          {"proc/timer_list", PROC_MASK},
    {"proc/timer_stats", PROC_MASK},   {"proc/bus", PROC_READ_ONLY},
    {"proc/fs", PROC_READ_ONLY},       {"proc/irq", PROC_READ_ONLY},
    {"proc/sys", PROC_READ_ONLY},      {"proc/sysrq-trigger", PROC_READ_ONLY},
};

static void __attribute__((noreturn)) child_fail(const struct child_ctx *c, int kind, int step)
{
    struct msg m = {kind, step, errno, 0, 0};
    (void)!write(c->status_w, &m, sizeof(m));
    _exit(kind == MSG_EXEC_ERR ? (m.err == ENOENT ? 127 : 126) : 125);
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

/* Create the work files in the /work tmpfs (@workfd), owned by the job. */
static int
write_work_files(const struct child_ctx *c, int workfd)
{
    const struct sbx_spec *s = c->spec;
    for (size_t i = 0; i < s->n_files; i++) {
        const struct sbx_file *f = &s->files[i];
        char dir[SBX_FILE_NAME_MAX];
        size_t len = strlen(f->name);
        memcpy(dir, f->name, len + 1);
        for (size_t k = 0; k < len; k++) {
            if (dir[k] != '/')
                continue;
            dir[k] = '\0';
            if (mkdirat(workfd, dir, 0755) < 0 && errno != EEXIST)
                return -1;
            if (fchownat(workfd, dir, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -1;
            dir[k] = '/';
        }
        int fd =
            openat(workfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
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
        int saved = errno;
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

/* Mask the file @path with a read-only bind of the host's /dev/null (reads give nothing). */
static int
mask_file(const char *path, unsigned long locked)
{
    if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0)
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
 * Wait for the parent's "go" on the socket @fd; it may carry a file descriptor (the network
 * namespace), stored in *@passed (-1 if none).  Returns -1 if the parent went away.
 */
static int
recv_go(int fd, int *passed)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
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
    *passed = -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(passed, CMSG_DATA(cm), sizeof(int));
    return 0;
}

/* Send "go" on @fd, with @pass (if >= 0) as a file descriptor. */
static int
send_go(int fd, int pass)
{
    char byte = 'g';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    memset(&u, 0, sizeof(u));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (pass >= 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass, sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/*
 * Init is a copy of the host process, command line included: blank it and name the process
 * "cacheout-init", so that a job reading /proc/1/cmdline does not learn the host's arguments.
 * (PR_SET_MM would be neater but needs CAP_SYS_RESOURCE, which some hosts withhold from root.)
 * The argument area is found through fields 48 and 49 of /proc/self/stat.  Best effort.
 */
static void
hide_host_cmdline(void)
{
    static const char name[] = "cacheout-init";
    (void)prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
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
    char *area = (char *)start;
    size_t len = end - start;
    memset(area, 0, len);
    memcpy(area, name, len < sizeof(name) ? len - 1 : sizeof(name) - 1);
}

/* Wait for the parent's "go" (see recv_go()) and enter the network namespace it may carry. */
static void
wait_go(const struct child_ctx *c)
{
    int netns = -1;
    TRY(STEP_WAIT_PARENT, recv_go(c->go_r, &netns));
    close(c->go_r);
    if (c->netns_via_go) {
        /* A fresh, empty network namespace made by the parent (or its pool) meanwhile. */
        if (netns < 0) {
            errno = EBADF;
            child_fail(c, MSG_SETUP_ERR, STEP_NETNS);
        }
        TRY(STEP_NETNS, setns(netns, CLONE_NEWNET));
    }
    if (netns >= 0)
        close(netns);
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

static int __attribute__((noreturn)) child_main(const struct child_ctx *c)
{
    /* Die with the thread that started us. */
    TRY(STEP_PDEATHSIG, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    TRY(STEP_FDS, close_all_except(c->keep, c->n_keep));
    umask(0);
    /* A real-time host thread must not hand its policy to a job (nice values are kept). */
    struct sched_param sp = {0};
    TRY(STEP_SCHED, sched_setscheduler(0, SCHED_OTHER, &sp));

    /* The new root: the image folder bound onto itself, with host folders bound read-only. */
    TRY(STEP_MOUNT_PRIVATE, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    enter_root(c);
    for (int i = 0; i < c->img->n_binds; i++)
        TRY(STEP_BIND, bind_ro(c->img->bind_src[i], c->img->bind_dst[i], c->bind_flags[i]));
    TRY(STEP_MOUNT_TMP, mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, c->tmp_opts));
    TRY(STEP_MOUNT_WORK, mount("tmpfs", "work", "tmpfs", MS_NOSUID | MS_NODEV, c->work_opts));
    TRY(STEP_MOUNT_PROC, mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    for (size_t i = 0; i < CO_ARRAY_LEN(proc_paths); i++) {
        const char *p = proc_paths[i].path;
        struct stat st;
        if (lstat(p, &st) < 0)
            continue; /* e.g. no CONFIG_MAGIC_SYSRQ, no ACPI */
        if (proc_paths[i].rule == PROC_READ_ONLY)
            TRY(STEP_PROC_RO, bind_ro(p, p, MS_NOEXEC));
        else if (S_ISDIR(st.st_mode))
            TRY(STEP_PROC_MASK,
                mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=4k,mode=0555"));
        else
            TRY(STEP_PROC_MASK, mask_file(p, c->dev_flags));
    }
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
    TRY(STEP_MOUNT_SHM,
        mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, c->shm_opts));
    TRY(STEP_ROOT_RO,
        mount(NULL, ".", NULL,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | c->root_flags, NULL));
    TRY(STEP_PIVOT_ROOT, syscall(SYS_pivot_root, ".", "."));
    TRY(STEP_UMOUNT_OLD, umount2(".", MNT_DETACH));
    TRY(STEP_ROOT_CHDIR, chdir("/"));

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

    TRY(STEP_HOSTNAME, sethostname("cacheout", 8));
    if (c->spec->network == SBX_NET_LOOPBACK)
        TRY(STEP_LOOPBACK, loopback_up());

    struct rlimit zero = {0, 0};
    TRY(STEP_RLIMIT, setrlimit(RLIMIT_CORE, &zero));
    TRY(STEP_RLIMIT, setrlimit(RLIMIT_NPROC, &c->nproc));
    TRY(STEP_RLIMIT, setrlimit(RLIMIT_NOFILE, &c->nofile));
    if (c->cpu_rlimit)
        TRY(STEP_RLIMIT, setrlimit(RLIMIT_CPU, &c->cpu));
    for (size_t i = 0; i < CO_ARRAY_LEN(fixed_rlimits); i++)
        TRY(STEP_RLIMIT, setrlimit(fixed_rlimits[i], &c->fixed[i]));

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
        _exit(125);
    /* Init keeps the host's memory image (copy-on-write): not dumpable means the job, which has
     * the same uid, cannot read its /proc/1/environ or memory. */
    TRY(STEP_NO_NEW_PRIVS, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    TRY(STEP_NO_NEW_PRIVS, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    TRY(STEP_SECCOMP, syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c->prog));

    /* argv and envp were copied by the parent: the host's argument area can go now. */
    hide_host_cmdline();
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
            struct msg m = {MSG_EXIT, 0, 0, st, ru.ru_maxrss};
            (void)!write(c->status_w, &m, sizeof(m));
            _exit(0);
        }
        if (p < 0 && errno != EINTR)
            _exit(0);
    }
}

/* ---- slots ---------------------------------------------------------------------------------- */

static atomic_uint next_slot;

int
sbx_slot_acquire(const char *lock_dir, unsigned *slot, int *lock_fd, co_err *err)
{
    if (sbx_mkdir_p(lock_dir, 0700, err) < 0)
        return -1;
    unsigned start = atomic_fetch_add(&next_slot, 1);
    for (unsigned k = 0; k < SBX_MAX_SLOTS; k++) {
        unsigned s = (start + k) % SBX_MAX_SLOTS;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%u.lock", lock_dir, s);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return co_err_sys(err, errno, "cannot open slot lock '%s'", path);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *slot = s;
            *lock_fd = fd;
            return 0;
        }
        int saved = errno;
        close(fd);
        if (saved != EWOULDBLOCK)
            return co_err_sys(err, saved, "cannot lock '%s'", path);
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

struct run {
    const struct sbx_spec *spec;
    const struct sbx_run_opts *opts;
    struct sbx_result *res;
    struct stream out, err;
    enum sbx_status killed; /* why the parent killed the job, SBX_OK if it did not */
    pid_t pid;
    const struct sbx_cgroup *cg;
};

static void
internal(struct sbx_result *res, co_err *err, const char *step, int errnum)
{
    res->status = SBX_INTERNAL_ERROR;
    res->exit_code = -1;
    res->signal = 0;
    co_strlcpy(res->error_step, step, sizeof(res->error_step));
    res->error_errno = errnum ? errnum : err->sys_errno;
    co_strlcpy(res->error_msg, err->msg, sizeof(res->error_msg));
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

static int
cmp_int(const void *a, const void *b)
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
            child_main(b->c);
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
        _exit(bridge_main(&b));
    char *stack = NULL;
#else
    static const size_t stack_size = 128 * 1024; /* room for child_main() */
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

/* Kill and reap a child that has not been let go yet; its cgroup is removed at "out". */
static void
abort_child(struct run *r, int pidfd)
{
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    close(pidfd);
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

static int
read_cap_last(void)
{
    char buf[32];
    co_err e = CO_ERR_INIT;
    if (sbx_read_file("/proc/sys/kernel/cap_last_cap", buf, sizeof(buf), &e) == 0)
        return atoi(buf);
    return 63;
}

int
sbx_run(const struct sbx_spec *spec, struct sbx_result *res, co_err *err)
{
    return sbx_run_ex(spec, NULL, res, err);
}

int
sbx_run_ex(const struct sbx_spec *spec, const struct sbx_run_opts *opts, struct sbx_result *res,
           co_err *err)
{
    int rc = -1;
    int lock_fd = -1;
    int pipes[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}}; /* out, err, status, go */
    int *file_fds = NULL;
    int netns_fd = -1;
    int userns_fd = -1; /* rootless: borrowed from sbx_userns_shared() */
    mode_t *file_modes = NULL;
    const char **envp = NULL;
    char **argv_copy = NULL, **envp_copy = NULL;
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_image *img = co_xcalloc(1, sizeof(*img));
    struct child_ctx *c = co_xcalloc(1, sizeof(*c));
    const struct sbx_cgroup_host *host;
    const struct sock_fprog *prog;
    struct run r;
    memset(&r, 0, sizeof(r));
    r.out.fd = r.err.fd = -1;

    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
    r.spec = spec;
    r.opts = opts;
    r.res = res;

    if (sbx_spec_validate(spec, err) < 0) {
        internal(res, err, "spec", 0);
        goto out;
    }
    const struct sbx_userns *uns = NULL;
    if (sbx_rootless() && sbx_userns_get(&uns, err) < 0) {
        internal(res, err, "privileges", EPERM);
        goto out;
    }
    if (sbx_seccomp_prog(&prog, err) < 0) {
        internal(res, err, "seccomp_build", 0);
        goto out;
    }
    if (sbx_cgroup_host_get(&host, err) < 0) {
        internal(res, err, "cgroup_detect", 0);
        goto out;
    }
    if (sbx_image_resolve(spec->image, img, err) < 0) {
        internal(res, err, "image", err->code == CO_E_NOTFOUND ? ENOENT : 0);
        goto out;
    }
    char lock_dir[PATH_MAX];
    snprintf(lock_dir, sizeof(lock_dir), "%s/slots", sbx_run_dir());
    if (sbx_slot_acquire(lock_dir, &res->slot, &lock_fd, err) < 0) {
        internal(res, err, "slot", 0);
        goto out;
    }
    res->uid = SBX_UID_BASE + res->slot;
    res->host_uid = uns ? (uid_t)(uns->subuid + res->slot) : res->uid;
    char cg_name[32];
    snprintf(cg_name, sizeof(cg_name), "slot-%u", res->slot);
    struct sbx_cg_limits lim = {spec->cores_milli, spec->memory_bytes, spec->pids,
                                spec->network != SBX_NET_NONE};
    if (sbx_cgroup_prepare(cg, host, cg_name, err) < 0) {
        co_err_wrap(err, "set up cgroup (%s)", sbx_cgroup_mode_name(host->mode));
        internal(res, err, "cgroup", 0);
        goto out;
    }
    file_fds = co_xcalloc(spec->n_files + 1, sizeof(*file_fds));
    file_modes = co_xcalloc(spec->n_files + 1, sizeof(*file_modes));
    for (size_t i = 0; i < spec->n_files; i++)
        file_fds[i] = -1;
    if (open_work_files(spec, file_fds, file_modes, err) < 0) {
        internal(res, err, "work_file", 0);
        goto out;
    }
    for (int i = 0; i < 4; i++) {
        /* The status pipe is read without blocking once init has exited.  The "go" channel is
         * a socket pair, so that writing to a child that died cannot raise SIGPIPE. */
        int prc = i == 3 ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipes[i])
                         : pipe2(pipes[i], O_CLOEXEC | (i == 2 ? O_NONBLOCK : 0));
        if (prc < 0) {
            co_err_sys(err, errno, "cannot create pipe");
            internal(res, err, "pipe", 0);
            goto out;
        }
    }
    envp = sbx_build_env(spec->env);

    /* The child's context. */
    c->img = img;
    c->cg = cg;
    c->spec = spec;
    c->status_w = pipes[2][1];
    c->out_w = pipes[0][1];
    c->err_w = pipes[1][1];
    c->keep[c->n_keep++] = c->status_w;
    c->keep[c->n_keep++] = c->out_w;
    c->keep[c->n_keep++] = c->err_w;
    c->go_r = pipes[3][0];
    c->keep[c->n_keep++] = c->go_r;
    for (int i = 0; i < cg->n_dirs; i++)
        c->keep[c->n_keep++] = cg->join_dirfd[i];
    c->netns_via_go = spec->network == SBX_NET_NONE;
    for (size_t i = 0; i < spec->n_files; i++) {
        if (file_fds[i] >= 0)
            c->keep[c->n_keep++] = file_fds[i];
    }
    qsort(c->keep, (size_t)c->n_keep, sizeof(int), cmp_int);
    c->file_fds = file_fds;
    c->file_modes = file_modes;
    snprintf(c->tmp_opts, sizeof(c->tmp_opts), "size=%lld,mode=1777", (long long)spec->tmp_bytes);
    snprintf(c->work_opts, sizeof(c->work_opts), "size=%lld,mode=0755,uid=%u,gid=%u",
             (long long)spec->work_bytes, (unsigned)res->uid, (unsigned)res->uid);
    snprintf(c->shm_opts, sizeof(c->shm_opts), "size=%lld,mode=1777", (long long)spec->shm_bytes);
    c->cap_last = read_cap_last();
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
    const struct rlimit fixed[CO_ARRAY_LEN(fixed_rlimits)] = {
        {0, 0},
        {0, 0},
        {SBX_MEMLOCK_BYTES, SBX_MEMLOCK_BYTES},
        /* The usual 8 MiB; a job may raise it up to its memory limit. */
        {SBX_STACK_BYTES, (rlim_t)spec->memory_bytes > SBX_STACK_BYTES ? (rlim_t)spec->memory_bytes
                                                                       : SBX_STACK_BYTES},
        {(rlim_t)fsize, (rlim_t)fsize},
    };
    memcpy(c->fixed, fixed, sizeof(fixed));
    c->userns = uns != NULL;
    if (c->userns) {
        /* No raising a hard limit without CAP_SYS_RESOURCE on the host: stay below ours. */
        clamp_rlimit(RLIMIT_NPROC, &c->nproc);
        clamp_rlimit(RLIMIT_NOFILE, &c->nofile);
        clamp_rlimit(RLIMIT_CPU, &c->cpu);
        for (size_t i = 0; i < CO_ARRAY_LEN(fixed_rlimits); i++)
            clamp_rlimit(fixed_rlimits[i], &c->fixed[i]);
        c->root_flags = locked_mount_flags(img->root);
        c->dev_flags = locked_mount_flags("/dev/null");
        for (int i = 0; i < img->n_binds; i++)
            c->bind_flags[i] = locked_mount_flags(img->bind_src[i]);
        c->netns_via_go = false; /* the clone below makes it, inside the user namespace */
        /* The user namespace of this process's sandboxes (borrowed). */
        if (sbx_userns_shared(uns, &userns_fd, err) < 0) {
            internal(res, err, "user_namespace", 0);
            goto out;
        }
    }
    c->prog = prog;
    /* Copies: init blanks the host's argument area, where the CLI's strings live. */
    argv_copy = copy_strv(spec->argv);
    envp_copy = copy_strv(envp);
    c->argv = argv_copy;
    c->envp = envp_copy;
    c->path = SBX_DEFAULT_PATH;
    for (size_t i = 0; envp_copy[i]; i++) {
        if (strncmp(envp_copy[i], "PATH=", 5) == 0)
            c->path = envp_copy[i] + 5;
    }

    /* Block signals around clone so that no handler of this process runs in the child. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int64_t t0 = co_mono_ns();
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
    if (!c->netns_via_go)
        flags |= CLONE_NEWNET; /* loopback: made here, the child brings "lo" up */
    /* CLONE_PIDFD: the parent learns of init's exit by polling a pidfd (no pid reuse race). */
    int pidfd = -1;
    long pid;
    int clone_errno;
    const char *clone_what = "cannot clone the sandbox (namespaces)";
    if (userns_fd >= 0) {
        pid = clone_in_userns(c, userns_fd, flags, &pidfd, &clone_errno, &clone_what);
    } else {
        pid = syscall(SYS_clone, flags | CLONE_PIDFD, NULL, &pidfd, NULL, NULL);
        if (pid == 0)
            child_main(c);
        clone_errno = errno;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        co_err_sys(err, clone_errno, "%s", clone_what);
        internal(res, err, "clone", clone_errno);
        goto out;
    }
    r.pid = (pid_t)pid;
    r.cg = cg;
    for (int i = 0; i < 3; i++) {
        close(pipes[i][1]);
        pipes[i][1] = -1;
    }
    close(pipes[3][0]);
    pipes[3][0] = -1;
    /* Create the cgroup while the child builds the root, then let it join (see child_main). */
    if (sbx_cgroup_make(cg, &lim, err) < 0) {
        abort_child(&r, pidfd);
        co_err_wrap(err, "set up cgroup (%s)", sbx_cgroup_mode_name(host->mode));
        internal(res, err, "cgroup", 0);
        goto out;
    }
    /*
     * Network "none": a fresh namespace from the pool (made in parallel since the caller's
     * sbx_prewarm()), or made now while the child is still building its root.  Without one the
     * child is killed: it never runs in the host's namespace.
     */
    if (c->netns_via_go) {
        netns_fd = sbx_netns_take();
        if (netns_fd < 0 && sbx_netns_create(&netns_fd, err) < 0) {
            abort_child(&r, pidfd);
            internal(res, err, "network_namespace", 0);
            goto out;
        }
    }
    if (send_go(pipes[3][1], netns_fd) < 0) {
        /* The child is gone already: its status tells why. */
    }
    if (netns_fd >= 0) {
        close(netns_fd);
        netns_fd = -1;
    }
    close(pipes[3][1]);
    pipes[3][1] = -1;
    for (size_t i = 0; i < spec->n_files; i++) {
        if (file_fds[i] >= 0) {
            close(file_fds[i]);
            file_fds[i] = -1;
        }
    }
    r.out.fd = pipes[0][0];
    r.out.which = SBX_STDOUT;
    r.err.fd = pipes[1][0];
    r.err.which = SBX_STDERR;
    pipes[0][0] = pipes[1][0] = -1;
    int status_fd = pipes[2][0];
    pipes[2][0] = -1;
    int cancel_fd = sbx_cancel_fd(opts ? opts->cancel : NULL);

    /*
     * Wait for the sandbox.  Every wake-up costs a scheduling round on a busy host, so the parent
     * waits on as few events as it can: the output pipes, and init's pidfd, which fires once
     * init has exited (the status pipe is then read without waiting).  With a janitor the
     * status pipe is watched too, so that the call can return as soon as the job has exited.
     */
    bool early = sbx_janitor_enabled();
    bool alive = true;
    struct msg setup = {0}, exec_err = {0}, exitm = {0};
    int64_t deadline = spec->wall_ms ? t0 + spec->wall_ms * 1000000 : 0;
    int64_t t_end = 0, drain_deadline = 0;
    for (;;) {
        if (early && exitm.kind && r.out.fd < 0 && r.err.fd < 0)
            break;
        if (!alive && r.out.fd < 0 && r.err.fd < 0)
            break;
        int64_t now = co_mono_ns();
        int timeout = -1;
        if (alive && r.killed == SBX_OK) {
            if (deadline) {
                if (now >= deadline) {
                    kill_job(&r, SBX_TIMEOUT);
                    continue;
                }
                timeout = (int)((deadline - now + 999999) / 1000000);
            }
            if (spec->cpu_ms) {
                int64_t used = 0;
                co_err e = CO_ERR_INIT;
                if (sbx_cgroup_cpu_us(cg, &used, &e) == 0 && used / 1000 >= spec->cpu_ms) {
                    kill_job(&r, SBX_CPU_TIMEOUT);
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
        if (r.out.fd >= 0) {
            i_out = n;
            pfd[n++] = (struct pollfd){r.out.fd, POLLIN, 0};
        }
        if (r.err.fd >= 0) {
            i_err = n;
            pfd[n++] = (struct pollfd){r.err.fd, POLLIN, 0};
        }
        if (alive) {
            i_pid = n;
            pfd[n++] = (struct pollfd){pidfd, POLLIN, 0};
        }
        if (early && status_fd >= 0 && !exitm.kind) {
            i_st = n;
            pfd[n++] = (struct pollfd){status_fd, POLLIN, 0};
        }
        if (cancel_fd >= 0 && alive && r.killed == SBX_OK) {
            i_cancel = n;
            pfd[n++] = (struct pollfd){cancel_fd, POLLIN, 0};
        }
        int pr = poll(pfd, (nfds_t)n, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            kill_job(&r, SBX_INTERNAL_ERROR);
            break;
        }
        if (i_out >= 0 && pfd[i_out].revents)
            drain(&r, &r.out);
        if (i_err >= 0 && pfd[i_err].revents)
            drain(&r, &r.err);
        bool read_status = (i_st >= 0 && pfd[i_st].revents) || (i_pid >= 0 && pfd[i_pid].revents);
        if (i_pid >= 0 && pfd[i_pid].revents) {
            alive = false;
            if (!t_end)
                t_end = co_mono_ns();
        }
        while (read_status && status_fd >= 0) {
            struct msg m;
            ssize_t got = read(status_fd, &m, sizeof(m));
            if (got == (ssize_t)sizeof(m)) {
                if (m.kind == MSG_SETUP_ERR)
                    setup = m;
                else if (m.kind == MSG_EXEC_ERR)
                    exec_err = m;
                else if (m.kind == MSG_EXIT) {
                    exitm = m;
                    t_end = co_mono_ns();
                }
                continue;
            }
            if (got < 0 && errno == EINTR)
                continue;
            if (got == 0 || (got < 0 && errno != EAGAIN)) {
                close(status_fd);
                status_fd = -1;
            }
            break;
        }
        if (i_cancel >= 0 && pfd[i_cancel].revents)
            kill_job(&r, SBX_CANCELLED);
    }
    if (status_fd >= 0)
        close(status_fd);
    if (r.out.fd >= 0)
        close(r.out.fd);
    if (r.err.fd >= 0)
        close(r.err.fd);
    r.out.fd = r.err.fd = -1;
    close(pidfd);

    /*
     * A job that ended by itself, in a process with a janitor (sbx_async_cleanup()): init has
     * closed its files and is exiting, and the kernel kills what is left of the pid namespace as it
     * does.  Reaping it and removing the cgroup (a few hundred microseconds) are left to the
     * janitor thread, which releases the slot afterwards.  Otherwise both happen here.
     */
    bool handed_off = early && exitm.kind && !setup.kind && r.killed == SBX_OK;
    int ist = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    if (!handed_off) {
        while (wait4(r.pid, &ist, __WALL, &ru) < 0 && errno == EINTR)
            ;
    }
    if (!t_end)
        t_end = co_mono_ns();
    res->wall_ms = (t_end - t0) / 1000000;
    res->max_rss_kb = ru.ru_maxrss > exitm.maxrss_kb ? ru.ru_maxrss : exitm.maxrss_kb;

    struct sbx_cg_stats stats = {0, -1, 0};
    co_err serr = CO_ERR_INIT;
    if (sbx_cgroup_stats(cg, &stats, &serr) == 0) {
        res->cpu_ms = stats.cpu_us / 1000;
        res->memory_peak_kb = stats.mem_peak >= 0 ? stats.mem_peak / 1024 : 0;
        res->oom_killed = stats.oom_kills > 0;
    }
    if (handed_off) {
        sbx_janitor_add(r.pid, cg, lock_fd);
        cg = NULL;
        lock_fd = -1;
        r.pid = 0;
    }

    res->stdout_bytes = r.out.bytes;
    res->stderr_bytes = r.err.bytes;
    res->stdout_truncated = r.out.truncated;
    res->stderr_truncated = r.err.truncated;
    if (!opts || opts->capture) {
        res->stdout_data = co_buf_steal(&r.out.buf, &res->stdout_len);
        res->stderr_data = co_buf_steal(&r.err.buf, &res->stderr_len);
    }

    if (setup.kind) {
        int s = setup.step > 0 && setup.step < STEP_COUNT ? setup.step : 0;
        co_err_sys(err, setup.err, "sandbox setup failed at step '%s' (%s)", step_names[s],
                   step_what[s] ? step_what[s] : "?");
        internal(res, err, step_names[s], setup.err);
        goto out;
    }
    if (r.killed != SBX_OK && r.killed != SBX_INTERNAL_ERROR) {
        res->status = r.killed;
        res->signal = SIGKILL;
        res->exit_code = -1;
    } else if (exitm.kind) {
        set_status_from_wait(res, exitm.wstatus, stats.oom_kills);
    } else if (WIFSIGNALED(ist) && WTERMSIG(ist) == SIGKILL && stats.oom_kills > 0) {
        /* The OOM killer chose init: the whole sandbox died of memory exhaustion. */
        res->status = SBX_OOM;
        res->signal = SIGKILL;
    } else {
        co_err_set(err, CO_E_INTERNAL, "sandbox init ended without reporting the job (status 0x%x)",
                   ist);
        internal(res, err, "init", 0);
        goto out;
    }
    if (exec_err.kind) {
        co_err cerr = CO_ERR_INIT;
        co_err_sys(&cerr, exec_err.err, "cannot execute '%s'", spec->argv[0]);
        co_strlcpy(res->error_step, "execve", sizeof(res->error_step));
        res->error_errno = exec_err.err;
        co_strlcpy(res->error_msg, cerr.msg, sizeof(res->error_msg));
    }
    rc = 0;
out:
    if (!cg) {
        /* Handed to the janitor. */
    } else if (r.pid > 0) {
        /* Whatever happened, nothing of the job may outlive the call. */
        co_err kerr = CO_ERR_INIT;
        if (sbx_cgroup_destroy(cg, &kerr) < 0 && rc == 0) {
            *err = kerr;
            co_err_wrap(err, "clean up cgroup");
            /* The job ran; report the clean-up failure but keep its result. */
        }
    } else {
        co_err kerr = CO_ERR_INIT;
        if (sbx_cgroup_destroy(cg, &kerr) < 0) {
            /* best effort: the error that got us here matters more */
        }
    }
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 2; j++) {
            if (pipes[i][j] >= 0)
                close(pipes[i][j]);
        }
    }
    if (file_fds) {
        for (size_t i = 0; i < spec->n_files; i++) {
            if (file_fds[i] >= 0)
                close(file_fds[i]);
        }
    }
    if (netns_fd >= 0)
        close(netns_fd);
    if (lock_fd >= 0)
        close(lock_fd);
    co_buf_release(&r.out.buf);
    co_buf_release(&r.err.buf);
    free(file_fds);
    free(file_modes);
    free(envp);
    free(argv_copy);
    free(envp_copy);
    free(cg);
    free(img);
    free(c);
    return rc;
}
