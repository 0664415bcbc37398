/* Resource-limit probes: exit codes, signals, fork and memory bombs, disk fills, CPU hogs. */
#include "attack.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int
cmd_exit(int argc, char **argv)
{
    printf("RAN\n");
    return argc > 0 ? (int)attack_num(argv[0]) : 0;
}

static int
cmd_signal(int argc, char **argv)
{
    int sig = argc > 0 ? (int)attack_num(argv[0]) : SIGSEGV;

    printf("RAN\n");
    fflush(stdout);
    signal(sig, SIG_DFL);
    raise(sig);
    printf("SURVIVED\n");
    return 0;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * Every process keeps forking; a child that cannot fork waits a little and tries again, so the
 * pids limit stays saturated until the sandbox kills the whole tree.  The first process reports
 * how many forks it managed before the first failure, keeps the pressure on for a moment, and
 * exits 0: the bomb's children must not outlive the job.
 */
static int
cmd_forkbomb(int argc, char **argv)
{
    long hold_ms = argc > 0 ? attack_num(argv[0]) : 1500;
    long forks = 0;
    int first_errno = 0;
    double deadline = attack_now() + 10.0;

    while (attack_now() < deadline) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) {
                if (fork() < 0)
                    sleep_ms(10);
            }
        }
        if (pid < 0) {
            first_errno = errno;
            break;
        }
        forks++;
    }
    if (first_errno == 0) {
        printf("fork OK\n");
    } else {
        printf("fork ERRNO %s\n", attack_errname(first_errno));
    }
    attack_value("forks", "%ld", forks);
    sleep_ms(hold_ms);
    return 0;
}

/* Touch MB megabytes in 8 MiB steps, reporting progress; a memory limit must stop it. */
static int
cmd_membomb(int argc, char **argv)
{
    long mb = argc > 0 ? attack_num(argv[0]) : 2048;
    long touched = 0;

    for (long done = 0; done < mb; done += 8) {
        char *p = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            attack_verdict("mmap", -1);
            break;
        }
        memset(p, 0xa5, 8 << 20);
        touched += 8;
        if (touched % 64 == 0)
            attack_value("touched_mb", "%ld", touched);
    }
    attack_value("touched_mb", "%ld", touched);
    printf("SURVIVED\n");
    return 0;
}

/*
 * Write 1 MiB chunks to PATH until a write fails or MAXMB is reached; the error must come back to
 * the job (ENOSPC), not be silently dropped.
 */
static int
cmd_fill(int argc, char **argv)
{
    static char chunk[1 << 20];
    long maxmb;
    long long bytes = 0;
    int fd;
    int err = 0;

    if (argc < 2) {
        fprintf(stderr, "fill PATH MAXMB\n");
        return 64;
    }
    maxmb = attack_num(argv[1]);
    memset(chunk, 'f', sizeof(chunk));
    fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        attack_verdict("open", -1);
        return 0;
    }
    while (bytes < (long long)maxmb << 20) {
        ssize_t n = write(fd, chunk, sizeof(chunk));
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0) {
            err = ENOSPC;
            break;
        }
        bytes += n;
    }
    if (err == 0 && fsync(fd) < 0)
        err = errno;
    if (close(fd) < 0 && err == 0)
        err = errno;
    if (err)
        printf("fill ERRNO %s\n", attack_errname(err));
    else
        printf("fill OK\n");
    attack_value("bytes", "%lld", bytes);
    unlink(argv[0]);
    return 0;
}

struct spin_arg {
    double deadline;
};

static void *
spin_thread(void *p)
{
    const struct spin_arg *a = p;
    volatile unsigned long x = 0;

    while (attack_now() < a->deadline)
        for (int i = 0; i < 10000; i++)
            x++;
    return NULL;
}

static double
cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* THREADS threads spin until SECONDS of wall time have passed (0 seconds: spin forever). */
static int
cmd_spin(int argc, char **argv)
{
    long nthreads = argc > 0 ? attack_num(argv[0]) : 4;
    double secs = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    double start = attack_now();
    struct spin_arg a = {secs > 0 ? start + secs : 1e18};
    pthread_t tids[64];
    long started = 0;

    if (nthreads > 64)
        nthreads = 64;
    for (long i = 1; i < nthreads; i++) {
        if (pthread_create(&tids[started], NULL, spin_thread, &a) != 0)
            break;
        started++;
    }
    spin_thread(&a);
    for (long i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    attack_value("threads", "%ld", started + 1);
    attack_value("wall_ms", "%.0f", (attack_now() - start) * 1000.0);
    attack_value("cpu_ms", "%.0f", cpu_seconds() * 1000.0);
    return 0;
}

static int
cmd_sleep(int argc, char **argv)
{
    double secs = argc > 0 ? strtod(argv[0], NULL) : 0.5;

    printf("SLEEPING\n");
    sleep_ms((long)(secs * 1000.0));
    printf("WOKE\n");
    return 0;
}

static void *
idle_thread(void *p)
{
    (void)p;
    for (;;)
        pause();
    return NULL;
}

/* Create threads until creation fails (a pids limit counts threads too). */
static int
cmd_threads(int argc, char **argv)
{
    long want = argc > 0 ? attack_num(argv[0]) : 1000;
    long made = 0;
    int rc = 0;
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    while (made < want) {
        pthread_t t;
        rc = pthread_create(&t, &attr, idle_thread, NULL);
        if (rc != 0)
            break;
        made++;
    }
    if (rc != 0)
        printf("thread ERRNO %s\n", attack_errname(rc));
    else
        printf("thread OK\n");
    attack_value("threads", "%ld", made);
    fflush(stdout);
    _exit(0);
}

/* Write BYTES bytes of 'x' to stdout (or stderr with "err"), in 64 KiB writes. */
static int
cmd_output(int argc, char **argv)
{
    static char chunk[64 * 1024];
    long long want = argc > 0 ? attack_num(argv[0]) : 1 << 20;
    int fd = (argc > 1 && strcmp(argv[1], "err") == 0) ? 2 : 1;
    long long done = 0;

    memset(chunk, 'x', sizeof(chunk));
    while (done < want) {
        size_t n = (size_t)(want - done) < sizeof(chunk) ? (size_t)(want - done) : sizeof(chunk);
        ssize_t w = write(fd, chunk, n);
        if (w < 0) {
            fprintf(fd == 1 ? stderr : stdout, "output ERRNO %s after %lld\n",
                    attack_errname(errno), done);
            return 3;
        }
        done += w;
    }
    return 0;
}

const struct attack_cmd attack_limits_cmds[] = {
    {"exit", cmd_exit, "[CODE]"},
    {"signal", cmd_signal, "[SIGNUM]"},
    {"forkbomb", cmd_forkbomb, "[HOLD_MS]"},
    {"membomb", cmd_membomb, "[MB]"},
    {"fill", cmd_fill, "PATH MAXMB"},
    {"spin", cmd_spin, "[THREADS] [SECONDS]"},
    {"sleep", cmd_sleep, "[SECONDS]"},
    {"threads", cmd_threads, "[N]"},
    {"output", cmd_output, "BYTES [out|err]"},
    {NULL, NULL, NULL},
};
