/*
 * The seccomp denylist.  Default: allow.  Listed calls fail with EPERM (clone3 with ENOSYS, so
 * that glibc falls back to clone, whose flags can be inspected).  Only the native architecture is
 * allowed; any other (i386, x32) kills the process.  32-bit arguments are compared under a
 * 0xffffffff mask, because the kernel compares all 64 bits (LIBRARIES.md).
 */
#include "sbx_seccomp.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include "co_alloc.h"
#include "sbx_image.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Calls that fail with EPERM whatever their arguments. */
static const char *const denied[] = {
    /* mounts and the new mount API */
    "mount",
    "umount",
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
    /* the kernel itself */
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "syslog",
    "acct",
    "quotactl",
    "quotactl_fd",
    "swapon",
    "swapoff",
    "reboot",
    "vhangup",
    "nfsservctl",
    "fanotify_init",
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
    /* namespaces */
    "unshare",
    "setns",
    /* the clock */
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
};

static const unsigned long ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME,
};

static const int denied_families[] = {AF_NETLINK, AF_PACKET, AF_VSOCK, AF_KEY, AF_ALG};

static int
rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
     const struct scmp_arg_cmp *cmp, co_err *err)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a call of this architecture (e.g. "stime" on x86_64) */
    int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
    if (rc < 0)
        return co_err_sys(err, -rc, "cannot add seccomp rule for '%s'", name);
    return 0;
}

int
sbx_seccomp_build(struct sock_fprog *out, co_err *err)
{
    int rc = -1;
    int memfd = -1;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return co_err_set(err, CO_E_SYS, "cannot create seccomp filter");
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (r < 0) {
        co_err_sys(err, -r, "cannot set seccomp bad-arch action");
        goto out;
    }
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    for (size_t i = 0; i < CO_ARRAY_LEN(denied); i++) {
        if (rule(ctx, eperm, denied[i], 0, NULL, err) < 0)
            goto out;
    }
    if (rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err) < 0)
        goto out;
    for (size_t i = 0; i < CO_ARRAY_LEN(ns_flags); i++) {
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
        if (rule(ctx, eperm, "clone", 1, &c, err) < 0)
            goto out;
    }
    static const unsigned long ioctls[] = {TIOCSTI, TIOCLINUX};
    for (size_t i = 0; i < CO_ARRAY_LEN(ioctls); i++) {
        struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, ioctls[i]);
        if (rule(ctx, eperm, "ioctl", 1, &c, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < CO_ARRAY_LEN(denied_families); i++) {
        struct scmp_arg_cmp c =
            SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)denied_families[i]);
        if (rule(ctx, eperm, "socket", 1, &c, err) < 0)
            goto out;
    }
    /*
     * personality(): only the query (0xffffffff) is allowed.  libseccomp cannot compare one
     * argument twice in a rule, so PER_LINUX (0), a no-op for a Linux job, is denied as well.
     */
    struct scmp_arg_cmp pc = {0, SCMP_CMP_NE, 0xffffffffu, 0};
    if (rule(ctx, eperm, "personality", 1, &pc, err) < 0)
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
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0) {
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

static uint64_t
fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A key that changes whenever the rules, the libseccomp version or the architecture do. */
static uint64_t
rules_key(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    static const char tag[] = "cacheout-seccomp-v1";
    h = fnv1a(h, tag, sizeof(tag));
    const struct scmp_version *v = seccomp_version();
    unsigned ver[3] = {v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0};
    h = fnv1a(h, ver, sizeof(ver));
    uint32_t arch = seccomp_arch_native();
    h = fnv1a(h, &arch, sizeof(arch));
    for (size_t i = 0; i < CO_ARRAY_LEN(denied); i++)
        h = fnv1a(h, denied[i], strlen(denied[i]) + 1);
    h = fnv1a(h, ns_flags, sizeof(ns_flags));
    h = fnv1a(h, denied_families, sizeof(denied_families));
    return h;
}

#define CACHE_MAX (64 * 1024)

static int
load_cache(const char *path, struct sock_fprog *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = -1;
    unsigned char *buf = NULL;
    /* Only a file of our own user (root, or a rootless caller) that nobody else can write. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022) ||
        st.st_size <= (off_t)(sizeof(uint64_t) + sizeof(struct sock_filter)) ||
        st.st_size > CACHE_MAX ||
        (st.st_size - (off_t)sizeof(uint64_t)) % (off_t)sizeof(struct sock_filter) != 0)
        goto out;
    buf = co_xmalloc((size_t)st.st_size);
    if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
        goto out;
    size_t plen = (size_t)st.st_size - sizeof(uint64_t);
    uint64_t want;
    memcpy(&want, buf + plen, sizeof(want));
    if (fnv1a(0xcbf29ce484222325ULL, buf, plen) != want)
        goto out;
    out->len = (unsigned short)(plen / sizeof(struct sock_filter));
    out->filter = (struct sock_filter *)buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static void
save_cache(const char *path, const struct sock_fprog *prog)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%ld", path, (long)getpid(),
                 (long)syscall(SYS_gettid)) >= (int)sizeof(tmp))
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    size_t plen = prog->len * sizeof(struct sock_filter);
    uint64_t sum = fnv1a(0xcbf29ce484222325ULL, prog->filter, plen);
    bool ok = write(fd, prog->filter, plen) == (ssize_t)plen &&
              write(fd, &sum, sizeof(sum)) == (ssize_t)sizeof(sum);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) < 0)
        unlink(tmp);
}

int
sbx_seccomp_cached(struct sock_fprog *out, const char *dir, co_err *err)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/seccomp-%016llx.bpf", dir,
                     (unsigned long long)rules_key());
    if (n < 0 || n >= (int)sizeof(path))
        return sbx_seccomp_build(out, err);
    if (load_cache(path, out) == 0)
        return 0;
    if (sbx_seccomp_build(out, err) < 0)
        return -1;
    co_err e = CO_ERR_INIT;
    if (sbx_mkdir_p(dir, geteuid() == 0 ? 0755 : 0700, &e) == 0)
        save_cache(path, out);
    return 0;
}

static pthread_once_t prog_once = PTHREAD_ONCE_INIT;
static struct sock_fprog prog_cached;
static co_err prog_err;

static void
build_once(void)
{
    co_err_clear(&prog_err);
    if (sbx_seccomp_cached(&prog_cached, sbx_run_dir(), &prog_err) < 0)
        prog_cached.filter = NULL;
}

int
sbx_seccomp_prog(const struct sock_fprog **out, co_err *err)
{
    pthread_once(&prog_once, build_once);
    if (!prog_cached.filter) {
        if (err)
            *err = prog_err;
        return -1;
    }
    *out = &prog_cached;
    return 0;
}
