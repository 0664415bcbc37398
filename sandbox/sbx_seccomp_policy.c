/*
 * The job's seccomp policy: an allowlist.
 *
 * - Default action ENOSYS: a system call the policy does not name looks absent, as on an older
 *   kernel, so that a call added to the kernel later is closed until someone allows it here.
 * - Known-dangerous calls fail with EPERM (explicit rules), whatever their arguments.
 * - Some calls are allowed only for some argument values (socket families and protocols,
 *   clone flags, ioctl requests, personality values, prctl options); the other values get an
 *   error.  The kernel passes all 64 bits of the register to the filter and truncates a 32-bit
 *   argument only afterwards (LIBRARIES.md): denials by value are compared under a 0xffffffff
 *   mask, allowed values (socket, prctl, personality) on all 64 bits, with everything else
 *   denied, so that no high-bits variant of a refused value gets through.
 * - Only the native architecture: any other (i386, x32) kills the process.
 *
 * The rules of one call never overlap (libseccomp does not define which of two matching rules
 * wins): "every other value" is covered by disjoint rules (allow_values()).
 * Every name must be known to libseccomp for the native architecture: a policy that cannot be
 * built as written is an error (fail closed), never silently shorter.
 *
 * The groups below were measured (strace -f of python3, node, sh with coreutils, awk, sed,
 * grep, tar, gzip, perl and the suite's programs) and completed from what the common runtimes
 * of custom images call (Python, Node, Go, a shell); sandbox/README.md explains each group.
 * The program is compiled once, at build time too (sbx-seccomp-key), whose hash names the
 * cache file (sbx_seccomp.c).
 */
#include "sbx_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "co_alloc.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* ---- calls allowed whatever their arguments ------------------------------------------------ */

/* Processes and threads: create, wait, signal (own pid namespace), identify. */
static const char *const allow_process[] = {
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "vfork",
    "wait4",
    "waitid",
    "kill",
    "tkill",
    "tgkill",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "setpgid",
    "getpgrp",
    "getsid",
    "setsid",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "futex",
    "futex_waitv",
    "futex_wake",
    "pidfd_open",
    "pidfd_send_signal",
    "restart_syscall",
    "getrusage",
    "times",
    "capget",
    "capset",
    "seccomp",
#if defined(__x86_64__)
    "arch_prctl",
#endif
};

/* Scheduling and limits: only within the job's own cgroup and rlimits (RTPRIO and NICE are 0). */
static const char *const allow_sched[] = {
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_getattr",
    "sched_setattr",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "getpriority",
    "setpriority",
    "getrlimit",
    "setrlimit",
    "prlimit64",
    "ioprio_get",
    "ioprio_set",
    "membarrier",
    "getcpu",
};

/* Credentials: without capabilities these only move between the job's own ids. */
static const char *const allow_creds[] = {
    "getuid",    "geteuid",   "getgid",   "getegid",  "getresuid", "getresgid",
    "getgroups", "setuid",    "setgid",   "setreuid", "setregid",  "setresuid",
    "setresgid", "setgroups", "setfsuid", "setfsgid",
};

/* Signals. */
static const char *const allow_signals[] = {
    "rt_sigaction",  "rt_sigprocmask",  "rt_sigreturn",    "rt_sigsuspend",
    "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "sigaltstack",   "signalfd4",
#if defined(__x86_64__)
    "signalfd",      "pause",           "alarm",
#endif
};

/* Memory of the job's own processes (MEMLOCK is bounded by an rlimit). */
static const char *const allow_memory[] = {
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "msync",
    "mincore",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "memfd_create",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "get_mempolicy",
    "remap_file_pages",
    "map_shadow_stack",
};

/* Files, folders and descriptors (the mount table is fixed: mount calls are denied). */
static const char *const allow_files[] = {
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "openat",
    "openat2",
    "close",
    "close_range",
    "lseek",
    "dup",
    "dup3",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "truncate",
    "ftruncate",
    "fallocate",
    "fadvise64",
    "readahead",
    "fstat",
    "newfstatat",
    "statx",
    "statfs",
    "fstatfs",
    "faccessat",
    "faccessat2",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "renameat",
    "renameat2",
    "mkdirat",
    "unlinkat",
    "linkat",
    "symlinkat",
    "readlinkat",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "umask",
    "utimensat",
    "mknodat",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "pipe2",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "eventfd2",
    "io_setup",
    "io_destroy",
    "io_submit",
    "io_cancel",
    "io_getevents",
    "io_pgetevents",
#if defined(__x86_64__)
    "open",
    "creat",
    "stat",
    "lstat",
    "access",
    "getdents",
    "rename",
    "mkdir",
    "rmdir",
    "link",
    "unlink",
    "symlink",
    "readlink",
    "chmod",
    "chown",
    "lchown",
    "utime",
    "utimes",
    "futimesat",
    "mknod",
    "pipe",
    "dup2",
    "inotify_init",
    "eventfd",
#endif
};

/* Waiting and time (setting the clock is denied). */
static const char *const allow_time[] = {
    "pselect6",     "ppoll",          "epoll_create1",   "epoll_ctl",       "epoll_pwait",
    "epoll_pwait2", "nanosleep",      "clock_nanosleep", "clock_gettime",   "clock_getres",
    "gettimeofday", "timer_create",   "timer_settime",   "timer_gettime",   "timer_getoverrun",
    "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime", "getitimer",
    "setitimer",
#if defined(__x86_64__)
    "select",       "poll",           "epoll_create",    "epoll_wait",      "time",
#endif
};

/* Sockets once made (socket() and socketpair() filter the family, see below). */
static const char *const allow_net[] = {
    "bind",        "listen",   "accept",     "accept4",    "connect", "getsockname",
    "getpeername", "sendto",   "recvfrom",   "sendmsg",    "recvmsg", "sendmmsg",
    "recvmmsg",    "shutdown", "setsockopt", "getsockopt",
};

/* System V and POSIX IPC: the job's own ipc namespace. */
static const char *const allow_ipc[] = {
    "shmget",     "shmat",     "shmdt",        "shmctl",          "semget",    "semop",
    "semtimedop", "semctl",    "msgget",       "msgsnd",          "msgrcv",    "msgctl",
    "mq_open",    "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
};

/* The system, read-only. */
static const char *const allow_info[] = {"uname", "sysinfo", "getrandom"};

static const struct {
    const char *const *names;
    size_t n;
} allow_groups[] = {
    {allow_process, CO_ARRAY_LEN(allow_process)}, {allow_sched, CO_ARRAY_LEN(allow_sched)},
    {allow_creds, CO_ARRAY_LEN(allow_creds)},     {allow_signals, CO_ARRAY_LEN(allow_signals)},
    {allow_memory, CO_ARRAY_LEN(allow_memory)},   {allow_files, CO_ARRAY_LEN(allow_files)},
    {allow_time, CO_ARRAY_LEN(allow_time)},       {allow_net, CO_ARRAY_LEN(allow_net)},
    {allow_ipc, CO_ARRAY_LEN(allow_ipc)},         {allow_info, CO_ARRAY_LEN(allow_info)},
};

/* ---- calls denied with EPERM whatever their arguments -------------------------------------- */

static const char *const denied[] = {
    /* mounts and the new mount API */
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "chroot",
    /* other processes' memory */
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "process_madvise",
    "process_mrelease",
    /* the kernel itself */
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "syslog",
    "acct",
    "quotactl",
    "quotactl_fd",
    "swapon",
    "swapoff",
    "reboot",
    "vhangup",
    "fanotify_init",
    "sethostname",
    "setdomainname",
    /* memory placement across NUMA nodes (F4) */
    "mbind",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "move_pages",
    "migrate_pages",
    /* keyrings */
    "keyctl",
    "add_key",
    "request_key",
    /* attack surface with a history of exploits */
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "memfd_secret",
    /* namespaces */
    "unshare",
    "setns",
    /* the clock */
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
#if defined(__x86_64__)
    "modify_ldt",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "nfsservctl",
    "uselib",
    "sysfs",
    "ustat",
#endif
};

/* ---- argument filters ---------------------------------------------------------------------- */

static const unsigned long ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME,
};

/* Internet protocols a job may open (other protocols load modules: SCTP, DCCP, L2TP ...). */

/* ioctl requests that runtimes use on terminals, pipes, sockets and files. */
static const uint32_t allowed_ioctls[] = {
    TCGETS,    TCSETS,          TCSETSW,  TCSETSF, TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP,
    TIOCSPGRP, TIOCOUTQ,        FIONREAD, FIONBIO, FIOCLEX,    FIONCLEX,   FIOASYNC,
    FICLONE,   FS_IOC_GETFLAGS, TCFLSH,   TCXONC,  TIOCGSID,   TIOCGPTN,
};

/* Denied outright (EPERM): faking terminal input, the Linux console. */
static const uint32_t denied_ioctls[] = {TIOCSTI, TIOCLINUX};

/*
 * prctl options a job may use: its own name, death signal, dumpability, capabilities (drop
 * and read only, it has none), seccomp, no_new_privs, subreaper, timer slack, THP, speculation
 * controls.  Others (PR_SET_MM, PR_SET_SYSCALL_USER_DISPATCH, ...) fail with EINVAL,
 * as options unknown to the kernel do.
 */
static const uint64_t allowed_prctls[] = {
    PR_SET_PDEATHSIG,        PR_GET_PDEATHSIG,    PR_GET_DUMPABLE,     PR_SET_DUMPABLE,
    PR_GET_KEEPCAPS,         PR_SET_KEEPCAPS,     PR_SET_NAME,         PR_GET_NAME,
    PR_GET_SECCOMP,          PR_SET_SECCOMP,      PR_CAPBSET_READ,     PR_CAPBSET_DROP,
    PR_GET_SECUREBITS,       PR_GET_TIMERSLACK,   PR_SET_TIMERSLACK,   PR_SET_CHILD_SUBREAPER,
    PR_GET_CHILD_SUBREAPER,  PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS,
    PR_SET_THP_DISABLE,      PR_GET_THP_DISABLE,  PR_CAP_AMBIENT,      PR_GET_SPECULATION_CTRL,
    PR_SET_SPECULATION_CTRL,
};

/* ---- building ------------------------------------------------------------------------------ */

int
sbx_seccomp_resolve(const char *name, int *nr, co_err *err)
{
    int n = seccomp_syscall_resolve_name(name);
    /* Negative numbers other than __NR_SCMP_ERROR are libseccomp's pseudo numbers for calls
     * that exist on other architectures only: a rule on them would do nothing. */
    if (n == __NR_SCMP_ERROR || n < 0)
        return co_err_set(err, CO_E_INTERNAL,
                          "seccomp policy: libseccomp does not know system call '%s' on this "
                          "architecture (too old a libseccomp?)",
                          name);
    *nr = n;
    return 0;
}

static int
rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
     const struct scmp_arg_cmp *cmp, co_err *err)
{
    int nr = -1;
    if (sbx_seccomp_resolve(name, &nr, err) < 0)
        return -1;
    int rc = seccomp_rule_add_exact_array(ctx, action, nr, n, cmp);
    if (rc < 0)
        return co_err_sys(err, -rc, "cannot add seccomp rule for '%s'", name);
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* A rule for @name: the @extra comparisons (on other arguments) and one on argument @arg. */
static int
rule_with(scmp_filter_ctx ctx, uint32_t action, const char *name, const struct scmp_arg_cmp *extra,
          unsigned n_extra, struct scmp_arg_cmp last, co_err *err)
{
    struct scmp_arg_cmp c[4];
    unsigned k = 0;
    for (unsigned i = 0; i < n_extra && i < 3; i++)
        c[k++] = extra[i];
    c[k++] = last;
    return rule(ctx, action, name, k, c, err);
}

/*
 * Give @action to @name for the values [@lo, @end) of argument @arg (with the @extra
 * comparisons): the range split into aligned power-of-two blocks, one masked comparison each.
 */
static int
range_rules(scmp_filter_ctx ctx, uint32_t action, const char *name,
            const struct scmp_arg_cmp *extra, unsigned n_extra, unsigned arg, uint64_t lo,
            uint64_t end, co_err *err)
{
    while (lo < end) {
        /* The largest aligned block starting at lo that fits. */
        uint64_t size = lo ? lo & -lo : UINT64_C(1) << 63;
        while (size > end - lo)
            size >>= 1;
        struct scmp_arg_cmp blk = {arg, SCMP_CMP_MASKED_EQ, ~(size - 1), lo};
        if (rule_with(ctx, action, name, extra, n_extra, blk, err) < 0)
            return -1;
        lo += size;
    }
    return 0;
}

/*
 * Allow @name when argument @arg is exactly one of @vals (all 64 bits: a value with high bits
 * set is not allowed), with the @extra comparisons; every other value gets @other.  The other
 * values are covered by disjoint rules: each gap between allowed values split into aligned
 * power-of-two blocks (one masked comparison each), and "greater or equal" past the largest.
 * Few rules when the values are small integers; no rule overlaps another (libseccomp does not
 * define which of two matching rules wins).
 */
static int
allow_values(scmp_filter_ctx ctx, const char *name, unsigned arg, const uint64_t *vals, size_t n,
             uint32_t other, const struct scmp_arg_cmp *extra, unsigned n_extra, co_err *err)
{
    uint64_t sorted[64];
    if (n == 0 || n > CO_ARRAY_LEN(sorted) || n_extra > 2)
        return co_err_set(err, CO_E_INTERNAL, "seccomp policy: bad value list for '%s'", name);
    memcpy(sorted, vals, n * sizeof(*vals));
    qsort(sorted, n, sizeof(*sorted), cmp_u64);
    uint64_t next = 0; /* the smallest value not covered yet */
    for (size_t i = 0; i <= n; i++) {
        uint64_t end = i < n ? sorted[i] : 0; /* the gap is [next, end) */
        if (i == n) {
            struct scmp_arg_cmp ge = {arg, SCMP_CMP_GE, next, 0};
            return rule_with(ctx, other, name, extra, n_extra, ge, err);
        }
        if (range_rules(ctx, other, name, extra, n_extra, arg, next, end, err) < 0)
            return -1;
        struct scmp_arg_cmp eq = {arg, SCMP_CMP_EQ, end, 0};
        if (rule_with(ctx, SCMP_ACT_ALLOW, name, extra, n_extra, eq, err) < 0)
            return -1;
        next = end + 1;
        if (next == 0)
            return 0; /* UINT64_MAX was allowed: nothing past it */
    }
    return 0;
}

static int
add_argument_filters(scmp_filter_ctx ctx, co_err *err)
{
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    /* clone: allowed without namespace flags; each flag is a denial of its own (disjoint from
     * the allow rule, which requires all of them clear).  clone3's flags sit in memory the
     * filter cannot read: it is not allowed, so it gets the default ENOSYS and glibc falls back
     * to clone (libseccomp refuses a rule whose action is the default's). */
    unsigned long all_ns = 0;
    for (size_t i = 0; i < CO_ARRAY_LEN(ns_flags); i++) {
        all_ns |= ns_flags[i];
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
        /* Several flags at once match several of these: all of them deny with EPERM. */
        if (rule(ctx, eperm, "clone", 1, &c, err) < 0)
            return -1;
    }
    struct scmp_arg_cmp no_ns = SCMP_A0(SCMP_CMP_MASKED_EQ, all_ns, 0);
    if (rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_ns, err) < 0)
        return -1;

    /* socket: AF_UNIX with any type; AF_INET and AF_INET6 with TCP, UDP or the default
     * protocol.  Other families (netlink, packet, vsock, TIPC, RDS, CAN, ... which load modules
     * or reach the host's kernel) and other internet protocols (SCTP, DCCP, L2TP, MPTCP ...) fail
     * with EPERM.  The family and the protocol are compared on all 64 bits, so that the kernel's
     * truncation to int cannot turn a refused value into an allowed one. */
    static const uint64_t families[] = {AF_UNIX, AF_INET, AF_INET6};
    static const uint64_t protocols[] = {0, IPPROTO_TCP, IPPROTO_UDP};
    uint64_t next = 0;
    for (size_t i = 0; i < CO_ARRAY_LEN(families); i++) {
        /* The families between the allowed ones: refused. */
        if (range_rules(ctx, eperm, "socket", NULL, 0, 0, next, families[i], err) < 0)
            return -1;
        struct scmp_arg_cmp fam = SCMP_A0(SCMP_CMP_EQ, families[i]);
        if (families[i] == AF_UNIX) {
            if (rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &fam, err) < 0)
                return -1;
        } else if (allow_values(ctx, "socket", 2, protocols, CO_ARRAY_LEN(protocols), eperm, &fam,
                                1, err) < 0) {
            return -1;
        }
        next = families[i] + 1;
    }
    struct scmp_arg_cmp rest = SCMP_A0(SCMP_CMP_GE, next);
    if (rule(ctx, eperm, "socket", 1, &rest, err) < 0)
        return -1;
    /* socketpair: only AF_UNIX pairs exist, but the family's module is loaded first. */
    static const uint64_t unix_family[] = {AF_UNIX};
    if (allow_values(ctx, "socketpair", 0, unix_family, 1, eperm, NULL, 0, err) < 0)
        return -1;

    /* ioctl: the listed requests; TIOCSTI and TIOCLINUX EPERM; others ENOSYS (the default). */
    for (size_t i = 0; i < CO_ARRAY_LEN(allowed_ioctls); i++) {
        struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, allowed_ioctls[i]);
        if (rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < CO_ARRAY_LEN(denied_ioctls); i++) {
        struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, denied_ioctls[i]);
        if (rule(ctx, eperm, "ioctl", 1, &c, err) < 0)
            return -1;
    }

    /*
     * personality(): the query (0xffffffff) only, as before the allowlist.  Allowing PER_LINUX
     * as well would take dozens of rules (libseccomp compares an argument once per rule), for a
     * call that is a no-op for a Linux job.
     */
    struct scmp_arg_cmp query = SCMP_A0(SCMP_CMP_EQ, 0xffffffffu);
    struct scmp_arg_cmp not_query = SCMP_A0(SCMP_CMP_NE, 0xffffffffu);
    if (rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &query, err) < 0 ||
        rule(ctx, eperm, "personality", 1, &not_query, err) < 0)
        return -1;
    return allow_values(ctx, "prctl", 0, allowed_prctls, CO_ARRAY_LEN(allowed_prctls),
                        SCMP_ACT_ERRNO(EINVAL), NULL, 0, err);
}

int
sbx_seccomp_build(struct sock_fprog *out, co_err *err)
{
    int rc = -1;
    int memfd = -1;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
    if (!ctx)
        return co_err_set(err, CO_E_SYS, "cannot create seccomp filter");
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* A binary tree of system call numbers instead of a chain: a few comparisons per call. */
    if (r == 0)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (r < 0) {
        co_err_sys(err, -r, "cannot set seccomp filter attributes");
        goto out;
    }
    for (size_t g = 0; g < CO_ARRAY_LEN(allow_groups); g++) {
        for (size_t i = 0; i < allow_groups[g].n; i++) {
            if (rule(ctx, SCMP_ACT_ALLOW, allow_groups[g].names[i], 0, NULL, err) < 0)
                goto out;
        }
    }
    for (size_t i = 0; i < CO_ARRAY_LEN(denied); i++) {
        if (rule(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0, NULL, err) < 0)
            goto out;
    }
    if (add_argument_filters(ctx, err) < 0)
        goto out;

    memfd = memfd_create("cacheout-seccomp", MFD_CLOEXEC);
    if (memfd < 0) {
        co_err_sys(err, errno, "cannot create memfd for seccomp program");
        goto out;
    }
    r = seccomp_export_bpf(ctx, memfd);
    if (r < 0) {
        co_err_sys(err, -r, "cannot export seccomp program");
        goto out;
    }
    off_t size = lseek(memfd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        co_err_set(err, CO_E_INTERNAL, "bad seccomp program size %lld", (long long)size);
        goto out;
    }
    struct sock_filter *prog = co_xmalloc((size_t)size);
    if (pread(memfd, prog, (size_t)size, 0) != size) {
        free(prog);
        co_err_sys(err, errno, "cannot read seccomp program");
        goto out;
    }
    out->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    out->filter = prog;
    rc = 0;
out:
    if (memfd >= 0)
        close(memfd);
    seccomp_release(ctx);
    return rc;
}

uint64_t
sbx_seccomp_hash(const struct sock_fprog *prog)
{
    /* FNV-1a over the instructions. */
    const unsigned char *p = (const unsigned char *)prog->filter;
    size_t len = (size_t)prog->len * sizeof(struct sock_filter);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
