/*
 * System-call denylist probes.  Every call is made with raw syscall() so the exact kernel entry is
 * exercised (glibc wrappers may emulate or reject arguments before the kernel sees them), and with
 * arguments that are harmless should the call ever be allowed.
 */
#include "attack.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <asm/unistd.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <sys/ioctl.h>

#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

static void
check(const char *name, long r)
{
    attack_verdict(name, r);
}

static int
cmd_unshare(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    check("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    check("unshare_ns", syscall(SYS_unshare, CLONE_NEWNS));
    check("unshare_net", syscall(SYS_unshare, CLONE_NEWNET));
    check("unshare_pid", syscall(SYS_unshare, CLONE_NEWPID));
    check("unshare_files", syscall(SYS_unshare, CLONE_FILES));
    return 0;
}

static int
cmd_setns(int argc, char **argv)
{
    const char *ns[] = {"net", "mnt", "user", "pid"};

    (void)argc;
    (void)argv;
    for (size_t i = 0; i < 4; i++) {
        char path[64];
        char name[64];
        snprintf(path, sizeof(path), "/proc/self/ns/%s", ns[i]);
        snprintf(name, sizeof(name), "setns_%s", ns[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            /* Without the fd, setns on a bogus fd still tells whether the call is filtered. */
            check(name, syscall(SYS_setns, 1000, 0));
            continue;
        }
        check(name, syscall(SYS_setns, fd, 0));
        close(fd);
    }
    return 0;
}

static void *
nop_thread(void *p)
{
    return p;
}

static void
try_clone(const char *name, unsigned long flags)
{
    long r = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);

    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    check(name, r);
}

/* clone with namespace flags must fail; clone3 must say ENOSYS; threads and fork still work. */
static int
cmd_clone(int argc, char **argv)
{
    struct clone_args ca;
    pthread_t t;
    pid_t pid;

    (void)argc;
    (void)argv;
    try_clone("clone_newuser", CLONE_NEWUSER);
    try_clone("clone_newnet", CLONE_NEWNET);
    try_clone("clone_newns", CLONE_NEWNS);
    try_clone("clone_newpid", CLONE_NEWPID);
    try_clone("clone_newcgroup", CLONE_NEWCGROUP);
    memset(&ca, 0, sizeof(ca));
    ca.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &ca, sizeof(ca));
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    check("clone3", r);
    errno = pthread_create(&t, NULL, nop_thread, NULL);
    check("pthread_create", errno ? -1 : 0);
    if (errno == 0)
        pthread_join(t, NULL);
    pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    check("fork", pid);
    return 0;
}

static int
cmd_keys(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    check("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    check("add_key", syscall(SYS_add_key, "user", "sbx", "x", 1, KEY_SPEC_PROCESS_KEYRING));
    check("request_key", syscall(SYS_request_key, "user", "sbx", NULL, 0));
    return 0;
}

static int
cmd_bpf(int argc, char **argv)
{
    union bpf_attr attr;

    (void)argc;
    (void)argv;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    check("bpf_map_create", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
    return 0;
}

static int
cmd_perf(int argc, char **argv)
{
    struct perf_event_attr pe;

    (void)argc;
    (void)argv;
    memset(&pe, 0, sizeof(pe));
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof(pe);
    pe.config = PERF_COUNT_SW_TASK_CLOCK;
    pe.disabled = 1;
    pe.exclude_kernel = 1;
    pe.exclude_hv = 1;
    check("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    return 0;
}

static int
cmd_userfaultfd(int argc, char **argv)
{
    struct stat sb;

    (void)argc;
    (void)argv;
    check("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
    check("userfaultfd_user", syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */));
    check("stat:/dev/userfaultfd", stat("/dev/userfaultfd", &sb));
    return 0;
}

static int
cmd_io_uring(int argc, char **argv)
{
    struct io_uring_params p;

    (void)argc;
    (void)argv;
    memset(&p, 0, sizeof(p));
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    check("io_uring_setup", fd);
    check("io_uring_enter", syscall(SYS_io_uring_enter, fd >= 0 ? fd : 1000, 0, 0, 0, NULL, 0));
    check("io_uring_register", syscall(SYS_io_uring_register, fd >= 0 ? fd : 1000, 0, NULL, 0));
    if (fd >= 0)
        close((int)fd);
    return 0;
}

/* Kernel-wide operations: kexec, modules, swap, reboot, accounting, quotas, syslog, handles. */
static int
cmd_kernel(int argc, char **argv)
{
    char handle[sizeof(unsigned int) * 2 + 8];

    (void)argc;
    (void)argv;
    check("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    check("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
    check("init_module", syscall(SYS_init_module, NULL, 0, ""));
    check("finit_module", syscall(SYS_finit_module, -1, "", 0));
    check("delete_module", syscall(SYS_delete_module, "sbx_no_such_module", O_NONBLOCK));
    check("swapon", syscall(SYS_swapon, "/tmp/sbx-no-swap", 0));
    check("swapoff", syscall(SYS_swapoff, "/tmp/sbx-no-swap"));
    /* Wrong magic numbers: the kernel would reject them after its permission check. */
    check("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    /* acct(NULL) only switches accounting off. */
    check("acct", syscall(SYS_acct, NULL));
    /* Q_SYNC (0x800001) of every filesystem: a no-op in effect. */
    check("quotactl", syscall(SYS_quotactl, 0x800001, NULL, 0, NULL));
    check("syslog", syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0));
    memset(handle, 0, sizeof(handle));
    ((unsigned int *)handle)[0] = 8;
    check("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    return 0;
}

/* The new mount API. */
static int
cmd_mountapi(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    check("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    check("fspick", syscall(SYS_fspick, AT_FDCWD, "/tmp", 0));
    check("fsconfig", syscall(SYS_fsconfig, 1000, 0, NULL, NULL, 0));
    check("fsmount", syscall(SYS_fsmount, 1000, 0, 0));
    check("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 /* OPEN_TREE_CLONE */));
    check("move_mount", syscall(SYS_move_mount, 1000, "", AT_FDCWD, "/tmp", 0));
    check("mount_setattr", syscall(SYS_mount_setattr, AT_FDCWD, "/tmp", 0, NULL, 0));
    return 0;
}

static int
cmd_personality(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    check("personality_rie", syscall(SYS_personality, PER_LINUX | READ_IMPLIES_EXEC));
    check("personality_norandom", syscall(SYS_personality, PER_LINUX | ADDR_NO_RANDOMIZE));
    check("personality_linux32", syscall(SYS_personality, PER_LINUX32));
    return 0;
}

/*
 * System calls newer than the policy: open_tree_attr (467, Linux 6.15) returned a file
 * descriptor under the old denylist; an unassigned number and one far past the table.
 */
static int
cmd_newsys(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    check("open_tree_attr", syscall(467, AT_FDCWD, "/", 0, NULL, 0));
    check("syscall_470", syscall(470, 0, 0, 0, 0, 0, 0));
    check("syscall_1000", syscall(1000, 0, 0, 0, 0, 0, 0));
    return 0;
}

/* F4: the LDT and memory placement across NUMA nodes. */
static int
cmd_numa(int argc, char **argv)
{
    unsigned long mask = 1;
    (void)argc;
    (void)argv;
    check("modify_ldt", syscall(SYS_modify_ldt, 0, NULL, 0));
    check("mbind", syscall(SYS_mbind, NULL, 4096, 0, NULL, 0, 0));
    check("set_mempolicy", syscall(SYS_set_mempolicy, 1 /* MPOL_PREFERRED */, &mask, 64));
    check("move_pages", syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0));
    check("migrate_pages", syscall(SYS_migrate_pages, 0, 64, &mask, &mask));
    return 0;
}

/* prctl options: what runtimes use works, the rest (PR_SET_MM ...) fails with EINVAL. */
static int
cmd_prctl(int argc, char **argv)
{
    char name[16];
    (void)argc;
    (void)argv;
    check("pr_set_name", prctl(PR_SET_NAME, "sbx-prctl", 0, 0, 0));
    check("pr_get_name", prctl(PR_GET_NAME, name, 0, 0, 0));
    check("pr_set_pdeathsig", prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0));
    check("pr_set_child_subreaper", prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
    check("pr_set_mm", prctl(35 /* PR_SET_MM */, 8 /* PR_SET_MM_ARG_START */, 0, 0, 0));
    check("pr_set_syscall_user_dispatch", prctl(59, 0, 0, 0, 0));
    check("pr_set_mm_high", syscall(SYS_prctl, (1UL << 32) | 35, 8, 0, 0, 0));
    check("personality_linux", syscall(SYS_personality, 0));
    check("ioctl_unknown", ioctl(1, 0x54ff, NULL));
    return 0;
}

/* The limits the job starts with: "rlimit_<name> VALUE <soft> <hard>" (-1 = unlimited). */
static int
cmd_rlimits(int argc, char **argv)
{
    static const struct {
        const char *name;
        int res;
    } lims[] = {{"rtprio", RLIMIT_RTPRIO},   {"nice", RLIMIT_NICE},
                {"memlock", RLIMIT_MEMLOCK}, {"stack", RLIMIT_STACK},
                {"fsize", RLIMIT_FSIZE},     {"core", RLIMIT_CORE},
                {"nofile", RLIMIT_NOFILE},   {"msgqueue", RLIMIT_MSGQUEUE}};
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
        struct rlimit rl;
        char key[32];
        if (getrlimit(lims[i].res, &rl) < 0)
            return 1;
        snprintf(key, sizeof(key), "rlimit_%s", lims[i].name);
        attack_value(key, "%lld %lld", rl.rlim_cur == RLIM_INFINITY ? -1LL : (long long)rl.rlim_cur,
                     rl.rlim_max == RLIM_INFINITY ? -1LL : (long long)rl.rlim_max);
    }
    /* Real-time scheduling and a higher priority are refused. */
    struct sched_param sp = {1};
    check("sched_fifo", sched_setscheduler(0, SCHED_FIFO, &sp));
    check("nice_raise", setpriority(PRIO_PROCESS, 0, -5));
    return 0;
}

static int
cmd_time(int argc, char **argv)
{
    struct timeval tv;
    struct timespec ts;
    struct timex tx;

    (void)argc;
    (void)argv;
    if (getuid() == 0) {
        printf("REFUSED running as root\n");
        return 3;
    }
    gettimeofday(&tv, NULL);
    check("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* CLOCK_MONOTONIC cannot be set: without the filter this is EINVAL, never success. */
    check("clock_settime", syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
    memset(&tx, 0, sizeof(tx));
    /* modes 0 only reads the clock state, which any process may do unless the call is denied. */
    check("adjtimex", syscall(SYS_adjtimex, &tx));
    memset(&tx, 0, sizeof(tx));
    check("clock_adjtime", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
    return 0;
}

/* TIOCSTI and TIOCLINUX on every standard fd and /dev/null, also with bit 32 of the request set. */
static int
cmd_tiocsti(int argc, char **argv)
{
    int fds[4] = {0, 1, 2, open("/dev/null", O_RDWR | O_CLOEXEC)};
    char c = '\n';
    char name[64];

    (void)argc;
    (void)argv;
    for (int i = 0; i < 4; i++) {
        if (fds[i] < 0)
            continue;
        snprintf(name, sizeof(name), "tiocsti_fd%d", i);
        check(name, syscall(SYS_ioctl, fds[i], (unsigned long)TIOCSTI, &c));
        snprintf(name, sizeof(name), "tiocsti_high_fd%d", i);
        check(name, syscall(SYS_ioctl, fds[i], (1UL << 32) | (unsigned long)TIOCSTI, &c));
        snprintf(name, sizeof(name), "tioclinux_fd%d", i);
        char sub = 3; /* TIOCL_SELLOADLUT-style subcode; only the request number matters */
        check(name, syscall(SYS_ioctl, fds[i], (unsigned long)TIOCLINUX, &sub));
        snprintf(name, sizeof(name), "tioclinux_high_fd%d", i);
        check(name, syscall(SYS_ioctl, fds[i], (1UL << 32) | (unsigned long)TIOCLINUX, &sub));
    }
    /* An ordinary ioctl must still work: FIONREAD on /dev/null's pipe-less fd is ENOTTY or OK. */
    int avail = 0;
    long r = syscall(SYS_ioctl, fds[3], (unsigned long)FIONBIO, &avail);
    check("fionbio", r);
    return 0;
}

/* An x32-ABI system call: the filter must kill the process (bad architecture). */
static int
cmd_x32(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("BEFORE\n");
    fflush(stdout);
    long r = syscall(__X32_SYSCALL_BIT | 39 /* getpid */);
    printf("SURVIVED %ld %s\n", r, r < 0 ? attack_errname(errno) : "-");
    return 0;
}

/* A system call through the i386 entry (int $0x80): also a foreign architecture to the filter. */
static int
cmd_ia32(int argc, char **argv)
{
    long r;

    (void)argc;
    (void)argv;
    printf("BEFORE\n");
    fflush(stdout);
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L /* i386 getpid */) : "memory");
    printf("SURVIVED %ld\n", r);
    return 0;
}

const struct attack_cmd attack_sys_cmds[] = {
    {"unshare", cmd_unshare, ""},
    {"setns", cmd_setns, ""},
    {"clone", cmd_clone, ""},
    {"keys", cmd_keys, ""},
    {"bpf", cmd_bpf, ""},
    {"perf", cmd_perf, ""},
    {"userfaultfd", cmd_userfaultfd, ""},
    {"io_uring", cmd_io_uring, ""},
    {"kernel", cmd_kernel, ""},
    {"mountapi", cmd_mountapi, ""},
    {"personality", cmd_personality, ""},
    {"time", cmd_time, ""},
    {"newsys", cmd_newsys, ""},
    {"numa", cmd_numa, ""},
    {"prctl", cmd_prctl, ""},
    {"rlimits", cmd_rlimits, ""},
    {"tiocsti", cmd_tiocsti, ""},
    {"x32", cmd_x32, ""},
    {"ia32", cmd_ia32, ""},
    {NULL, NULL, NULL},
};
