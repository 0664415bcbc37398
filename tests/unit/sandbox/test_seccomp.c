/*
 * Unit tests for the seccomp program: it is built once, then loaded for real in forked children
 * (seccomp with no_new_privs needs no privileges) that check what is denied and what is not.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "sbx_seccomp.h"
#include "sbx_seccomp_key.h"

#ifndef AF_TIPC
#define AF_TIPC 30
#endif
#ifndef AF_RDS
#define AF_RDS 21
#endif
#ifndef AF_CAN
#define AF_CAN 29
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#ifndef PR_SET_MM
#define PR_SET_MM 35
#endif

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

/* Run @fn in a child under the filter; returns the child's wait status. */
static int
in_filtered_child(int (*fn)(void))
{
    const struct sock_fprog *prog;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_seccomp_prog(&prog, &err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
            _exit(100);
        _exit(fn());
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

/* Each check returns a distinct non-zero code when it fails, so a failure names the call. */
#define EXPECT_ERRNO(code, call, e)                                                                \
    do {                                                                                           \
        errno = 0;                                                                                 \
        if ((call) != -1 || errno != (e))                                                          \
            return (code);                                                                         \
    } while (0)

static int
denied_calls(void)
{
    EXPECT_ERRNO(1, unshare(CLONE_NEWUSER), EPERM);
    EXPECT_ERRNO(2, unshare(CLONE_NEWNS), EPERM);
    EXPECT_ERRNO(3, setns(0, 0), EPERM);
    EXPECT_ERRNO(4, syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0), EPERM);
    EXPECT_ERRNO(5, syscall(SYS_clone3, NULL, 0), ENOSYS);
    EXPECT_ERRNO(6, ioctl(0, TIOCSTI, "x"), EPERM);
    /* The high-bits variant: the kernel compares 64 bits, the filter masks to 32. */
    EXPECT_ERRNO(7, syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, "x"), EPERM);
    EXPECT_ERRNO(8, socket(AF_NETLINK, SOCK_RAW, 0), EPERM);
    EXPECT_ERRNO(9, socket(AF_PACKET, SOCK_RAW, 0), EPERM);
    EXPECT_ERRNO(10, syscall(SYS_socket, (1UL << 32) | AF_NETLINK, SOCK_RAW, 0), EPERM);
    EXPECT_ERRNO(11, syscall(SYS_ptrace, 0, 0, 0, 0), EPERM);
    EXPECT_ERRNO(12, syscall(SYS_bpf, 0, NULL, 0), EPERM);
    EXPECT_ERRNO(13, syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM);
    EXPECT_ERRNO(14, syscall(SYS_userfaultfd, 0), EPERM);
    EXPECT_ERRNO(15, syscall(SYS_io_uring_setup, 1, NULL), EPERM);
    EXPECT_ERRNO(16, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
    EXPECT_ERRNO(17, personality(ADDR_NO_RANDOMIZE), EPERM);
    EXPECT_ERRNO(18, syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL), EPERM);
    EXPECT_ERRNO(19, syscall(SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 0), EPERM);
    EXPECT_ERRNO(20, syscall(SYS_open_by_handle_at, 0, NULL, 0), EPERM);
    EXPECT_ERRNO(21, syscall(SYS_settimeofday, NULL, NULL), EPERM);
    /* F4: NUMA placement and the LDT. */
    EXPECT_ERRNO(22, syscall(SYS_modify_ldt, 0, NULL, 0), EPERM);
    EXPECT_ERRNO(23, syscall(SYS_mbind, NULL, 0, 0, NULL, 0, 0), EPERM);
    EXPECT_ERRNO(24, syscall(SYS_set_mempolicy, 0, NULL, 0), EPERM);
    EXPECT_ERRNO(25, syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0), EPERM);
    EXPECT_ERRNO(26, syscall(SYS_migrate_pages, 0, 0, NULL, NULL), EPERM);
    /* F3: families and protocols that load modules, also with high bits set. */
    EXPECT_ERRNO(27, socket(AF_TIPC, SOCK_SEQPACKET, 0), EPERM);
    EXPECT_ERRNO(28, socket(AF_RDS, SOCK_SEQPACKET, 0), EPERM);
    EXPECT_ERRNO(29, socket(AF_CAN, SOCK_RAW, 1), EPERM);
    EXPECT_ERRNO(30, socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP), EPERM);
    EXPECT_ERRNO(31, socket(AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP), EPERM);
    EXPECT_ERRNO(32, syscall(SYS_socket, (1UL << 32) | AF_TIPC, SOCK_SEQPACKET, 0), EPERM);
    EXPECT_ERRNO(33, syscall(SYS_socket, AF_INET, SOCK_STREAM, (1UL << 32) | IPPROTO_SCTP), EPERM);
    EXPECT_ERRNO(34, socketpair(AF_TIPC, SOCK_SEQPACKET, 0, (int[2]){0, 0}), EPERM);
    EXPECT_ERRNO(35, socket(0, SOCK_STREAM, 0), EPERM);
    EXPECT_ERRNO(36, socket(AF_INET, SOCK_DGRAM, 33 /* DCCP */), EPERM);
    /* Calls newer than the policy look absent: open_tree_attr (467), an unassigned number. */
    EXPECT_ERRNO(37, syscall(467, -1, "", 0, NULL, 0), ENOSYS);
    EXPECT_ERRNO(38, syscall(470, 0, 0, 0), ENOSYS);
    EXPECT_ERRNO(39, syscall(1000, 0, 0, 0), ENOSYS);
    /* Not in the allowlist, not dangerous enough for EPERM: ENOSYS. */
    EXPECT_ERRNO(40, syscall(SYS_landlock_create_ruleset, NULL, 0, 0), ENOSYS);
    /* Arguments outside the lists. */
    EXPECT_ERRNO(41, syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0),
                 EPERM);
    EXPECT_ERRNO(42, ioctl(0, TIOCLINUX, "x"), EPERM);
    EXPECT_ERRNO(43, ioctl(0, 0x5401 + 0x7000 /* unknown */, NULL), ENOSYS);
    EXPECT_ERRNO(44, prctl(PR_SET_MM, 0, 0, 0, 0), EINVAL);
    EXPECT_ERRNO(45, syscall(SYS_prctl, (1UL << 32) | PR_SET_MM, 0, 0, 0, 0), EINVAL);
    EXPECT_ERRNO(46, personality(0x0008 /* PER_LINUX32 */), EPERM);
    EXPECT_ERRNO(47, syscall(SYS_personality, 0xfffffffeUL), EPERM);
    EXPECT_ERRNO(48, syscall(SYS_sethostname, "x", 1), EPERM);
    /* Allowed values are compared on 64 bits: high bits set make any of them a refused one. */
    EXPECT_ERRNO(49, syscall(SYS_socket, (1UL << 32) | AF_UNIX, SOCK_STREAM, 0), EPERM);
    EXPECT_ERRNO(50, syscall(SYS_prctl, (1UL << 32) | PR_SET_NAME, "x", 0, 0, 0), EINVAL);
    EXPECT_ERRNO(51, personality(0), EPERM);
    EXPECT_ERRNO(52, socket(AF_INET, SOCK_STREAM, 7), EPERM); /* between allowed protocols */
    EXPECT_ERRNO(53, socket(9, SOCK_STREAM, 0), EPERM);       /* between allowed families */
    EXPECT_ERRNO(54, socketpair(0, SOCK_STREAM, 0, (int[2]){0, 0}), EPERM);
    EXPECT_ERRNO(55, prctl(0x53564d41 /* PR_SET_VMA */, 0, 0, 0, 0), EINVAL);
    return 0;
}

static int
allowed_calls(void)
{
    /* Ordinary work is unaffected: fork (glibc uses clone without namespace flags), threads
     * (clone3 -> ENOSYS -> clone), sockets of other families, ioctls, the personality query. */
    pid_t p = fork();
    if (p < 0)
        return 1;
    if (p == 0)
        _exit(7);
    int st;
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
        return 2;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0)
        return 3;
    close(s);
    if (personality(0xffffffff) == -1)
        return 4;
    int fds[2];
    if (pipe(fds) < 0)
        return 5;
    int n = 0;
    if (ioctl(fds[0], FIONREAD, &n) < 0)
        return 6;
    /* Internet sockets with the default protocol, TCP, UDP. */
    static const int inet[][3] = {{AF_INET, SOCK_STREAM, 0},   {AF_INET, SOCK_STREAM, 6},
                                  {AF_INET, SOCK_DGRAM, 17},   {AF_INET6, SOCK_STREAM, 0},
                                  {AF_INET6, SOCK_DGRAM, 0},   {AF_INET6, SOCK_STREAM, 6},
                                  {AF_UNIX, SOCK_SEQPACKET, 0}};
    for (size_t i = 0; i < sizeof(inet) / sizeof(inet[0]); i++) {
        s = socket(inet[i][0], inet[i][1], inet[i][2]);
        if (s < 0 && errno != EAFNOSUPPORT) /* a kernel without IPv6 */
            return 10 + (int)i;
        if (s >= 0)
            close(s);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        return 21;
    /* prctl options runtimes use. */
    if (prctl(PR_SET_NAME, "x", 0, 0, 0) < 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) < 0)
        return 22;
    if (isatty(fds[0]) || errno != ENOTTY) /* TCGETS reaches the kernel */
        return 24;
    return 0;
}

static int
x32_call(void)
{
    syscall(__X32_SYSCALL_BIT | SYS_getpid);
    return 0; /* not reached: a foreign-arch call kills the process */
}

static void
test_program_builds(void **state)
{
    (void)state;
    struct sock_fprog p;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_seccomp_build(&p, &err), 0);
    assert_true(p.len > 20);
    free(p.filter);
    /* The cached program is the same every time. */
    const struct sock_fprog *a, *b;
    assert_int_equal(sbx_seccomp_prog(&a, &err), 0);
    assert_int_equal(sbx_seccomp_prog(&b, &err), 0);
    assert_ptr_equal(a, b);
}

/* The policy names only calls libseccomp knows: an unknown name is an error, never skipped. */
static void
test_unknown_name_fails_closed(void **state)
{
    (void)state;
    int nr = -1;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_seccomp_resolve("getpid", &nr, &err), 0);
    assert_int_equal(nr, SYS_getpid);
    assert_int_equal(sbx_seccomp_resolve("no_such_call", &nr, &err), -1);
    assert_non_null(strstr(err.msg, "no_such_call"));
    /* A call of another architecture only (libseccomp's pseudo numbers). */
    assert_int_equal(sbx_seccomp_resolve("socketcall", &nr, &err), -1);
}

/* The build-time key is the hash of the program this process builds. */
static void
test_key_is_program_hash(void **state)
{
    (void)state;
    struct sock_fprog p;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_seccomp_build(&p, &err), 0);
    assert_true(sbx_seccomp_hash(&p) == SBX_SECCOMP_KEY);
    assert_int_equal(p.len, SBX_SECCOMP_LEN);
    /* Any change to the program changes the hash, e.g. one argument value of one rule. */
    p.filter[p.len / 2].k ^= 1;
    assert_true(sbx_seccomp_hash(&p) != SBX_SECCOMP_KEY);
    free(p.filter);
}

static void
test_denied(void **state)
{
    (void)state;
    int st = in_filtered_child(denied_calls);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_allowed(void **state)
{
    (void)state;
    int st = in_filtered_child(allowed_calls);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_foreign_arch_killed(void **state)
{
    (void)state;
    int st = in_filtered_child(x32_call);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

/* The one cache file in @dir, or "" if none. */
static void
cache_file(const char *dir, char *out, size_t size)
{
    out[0] = '\0';
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "seccomp-", 8) == 0)
            snprintf(out, size, "%s/%s", dir, e->d_name);
    }
    closedir(d);
}

static void
test_cache(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: the seccomp cache is only written as root\n");
        skip();
    }
    char dir[] = "/tmp/sbx-seccomp-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    co_err err = CO_ERR_INIT;
    struct sock_fprog built, first, second;
    assert_int_equal(sbx_seccomp_build(&built, &err), 0);
    /* First use builds and saves; the second loads the same program from the file. */
    assert_int_equal(sbx_seccomp_cached(&first, dir, &err), 0);
    char path[512];
    cache_file(dir, path, sizeof(path));
    assert_true(path[0] != '\0');
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sbx_seccomp_cached(&second, dir, &err), 0);
    assert_int_equal(first.len, built.len);
    assert_int_equal(second.len, built.len);
    assert_memory_equal(second.filter, built.filter, built.len * sizeof(struct sock_filter));
    free(first.filter);
    free(second.filter);

    /* A corrupted file fails its checksum: the program is rebuilt and the file replaced. */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\xff\xff\xff\xff", 4, 16), 4);
    close(fd);
    assert_int_equal(sbx_seccomp_cached(&second, dir, &err), 0);
    assert_memory_equal(second.filter, built.filter, built.len * sizeof(struct sock_filter));
    free(second.filter);
    assert_int_equal(sbx_seccomp_cached(&second, dir, &err), 0);
    assert_memory_equal(second.filter, built.filter, built.len * sizeof(struct sock_filter));
    free(second.filter);

    /* A file others could have written is not trusted (and not used). */
    assert_int_equal(chmod(path, 0666), 0);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sbx_seccomp_cached(&second, dir, &err), 0);
    assert_memory_equal(second.filter, built.filter, built.len * sizeof(struct sock_filter));
    free(second.filter);

    /* F6: a valid program of another policy stored under the key's name is not loaded. */
    struct sock_fprog other = {built.len, malloc(built.len * sizeof(struct sock_filter))};
    memcpy(other.filter, built.filter, built.len * sizeof(struct sock_filter));
    other.filter[built.len / 2].k ^= 1;
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(write(fd, other.filter, other.len * sizeof(struct sock_filter)),
                     (ssize_t)(other.len * sizeof(struct sock_filter)));
    close(fd);
    assert_int_equal(sbx_seccomp_cached(&second, dir, &err), 0);
    assert_memory_equal(second.filter, built.filter, built.len * sizeof(struct sock_filter));
    free(second.filter);
    /* Under its own key it would be (so the rejection above is the key's doing). */
    char other_path[600];
    snprintf(other_path, sizeof(other_path), "%s/seccomp-%016llx.bpf", dir,
             (unsigned long long)sbx_seccomp_hash(&other));
    fd = open(other_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, other.filter, other.len * sizeof(struct sock_filter)),
                     (ssize_t)(other.len * sizeof(struct sock_filter)));
    close(fd);
    assert_int_equal(sbx_seccomp_cached_key(&second, dir, sbx_seccomp_hash(&other), &err), 0);
    assert_memory_equal(second.filter, other.filter, other.len * sizeof(struct sock_filter));
    free(second.filter);
    free(other.filter);
    unlink(other_path);

    free(built.filter);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_builds),
        cmocka_unit_test(test_denied),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_foreign_arch_killed),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_unknown_name_fails_closed),
        cmocka_unit_test(test_key_is_program_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
