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

    free(built.filter);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_builds), cmocka_unit_test(test_denied),
        cmocka_unit_test(test_allowed),        cmocka_unit_test(test_foreign_arch_killed),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
