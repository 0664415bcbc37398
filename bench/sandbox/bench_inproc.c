/*
 * sbx-bench-inproc: the per-job overhead of sbx_run() as the agent uses it (one long-lived
 * process running job after job) over plain fork+exec+wait of the same program.
 *   sbx-bench-inproc [ITERATIONS [PROGRAM]]     (default 200, /bin/true)
 * Prints the median and p90 of each, the difference and the ratio of the medians, and the CPU
 * time of this process (all its threads: the caller, the prewarm and clean-up threads) per job
 * of each, next to each other (the agent's CPU per job against fork+exec+wait's).
 * SBX_BENCH_BALLAST_MB=N first maps and touches N MiB of private memory (the caller's size,
 * e.g. a grown agent's heap and thread arenas), which every clone of the caller copies the page
 * tables of: the cost of cloning sandboxes from a large process against a small one.
 * CACHEOUT_LAUNCHER=1 clones the sandboxes from the launcher process (sandbox/README.md); its CPU
 * is added to this process's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_time.h"
#include "sbx.h"

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double
pct(int64_t *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    int i = (int)(p * (n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

/* CPU time (user + system) of this process so far, all threads, in ns. */
static int64_t
self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           (int64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* CPU time of the sandbox launcher so far (0 without one), in ns (schedstat: not in ticks). */
static int64_t
launcher_cpu_ns(void)
{
    pid_t pid = 0;
    uint64_t clones = 0;
    unsigned starts = 0;
    sbx_launcher_stats(&pid, &clones, &starts);
    if (pid <= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long long ns = 0;
    if (fscanf(f, "%lld", &ns) != 1)
        ns = 0;
    fclose(f);
    return ns;
}

static int64_t
self_and_launcher_cpu_ns(void)
{
    return self_cpu_ns() + launcher_cpu_ns();
}

static int64_t
plain_once(char *const *argv)
{
    int64_t t0 = co_mono_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "plain run failed (status 0x%x)\n", st);
        exit(1);
    }
    return co_mono_ns() - t0;
}

static int64_t
sbx_once(const struct sbx_spec *spec)
{
    struct sbx_result res;
    co_err err = CO_ERR_INIT;
    int64_t t0 = co_mono_ns();
    if (sbx_run(spec, &res, &err) < 0 || res.status != SBX_OK) {
        fprintf(stderr, "sbx_run failed: %s (%s)\n", err.msg, sbx_status_name(res.status));
        exit(1);
    }
    int64_t dt = co_mono_ns() - t0;
    sbx_result_release(&res);
    return dt;
}

int
main(int argc, char **argv)
{
    sbx_launcher_entry(argc, argv);
    int n = argc > 1 ? atoi(argv[1]) : 200;
    const char *prog = argc > 2 ? argv[2] : "/bin/true";
    if (n < 5)
        n = 5;
    char *pargv[] = {(char *)prog, NULL};
    const char *sargv[] = {prog, NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = sargv;

    const char *ballast_env = getenv("SBX_BENCH_BALLAST_MB");
    size_t ballast = ballast_env ? (size_t)atol(ballast_env) << 20 : 0;
    if (ballast) {
        char *b = co_xmalloc(ballast);
        for (size_t off = 0; off < ballast; off += 4096)
            b[off] = 1; /* touched: present pages, whose page tables a clone copies */
    }

    /* As the agent does: keep fresh network namespaces ready off the critical path. */
    co_err err = CO_ERR_INIT;
    if (getenv("SBX_NO_PREWARM") == NULL &&
        (sbx_prewarm(2, true, &err) < 0 || sbx_async_cleanup(&err) < 0)) {
        fprintf(stderr, "sbx_prewarm: %s\n", err.msg);
        return 1;
    }
    int64_t *plain = co_xcalloc((size_t)n, sizeof(int64_t));
    int64_t *sbx = co_xcalloc((size_t)n, sizeof(int64_t));
    /* Warm up: the first sbx_run detects cgroups, builds the seccomp program and the default
     * image skeleton once per process. */
    for (int i = 0; i < 5; i++) {
        plain_once(pargv);
        sbx_once(&spec);
    }
    int64_t plain_cpu = 0, sbx_cpu = 0;
    for (int i = 0; i < n; i++) {
        int64_t c0 = self_and_launcher_cpu_ns();
        plain[i] = plain_once(pargv);
        int64_t c1 = self_and_launcher_cpu_ns();
        sbx[i] = sbx_once(&spec);
        int64_t c2 = self_and_launcher_cpu_ns();
        plain_cpu += c1 - c0;
        sbx_cpu += c2 - c1;
    }
    double pm = pct(plain, n, 0.5), p90 = pct(plain, n, 0.9);
    double sm = pct(sbx, n, 0.5), s90 = pct(sbx, n, 0.9);
    pid_t lpid = 0;
    uint64_t clones = 0;
    unsigned starts = 0;
    sbx_launcher_stats(&lpid, &clones, &starts);
    printf("in-process, %d runs of %s (interleaved)%s%s, %zu MiB of ballast:\n", n, prog,
           getenv("SBX_NO_PREWARM") ? "" : ", prewarmed namespaces and async clean-up",
           clones ? ", cloned by the launcher (its CPU included)" : "", ballast >> 20);
    printf("  fork+exec+wait   median %.3f ms  p90 %.3f ms\n", pm, p90);
    printf("  sbx_run          median %.3f ms  p90 %.3f ms\n", sm, s90);
    printf("  overhead per job (median difference): %.3f ms; ratio sbx_run / fork+exec+wait: "
           "%.2f (target <= 1.4)\n",
           sm - pm, sm / pm);
    printf("  CPU of this process per job: fork+exec+wait %.3f ms, sbx_run %.3f ms; ratio %.2f "
           "(target <= 1.5)\n",
           (double)plain_cpu / n / 1e6, (double)sbx_cpu / n / 1e6,
           plain_cpu ? (double)sbx_cpu / (double)plain_cpu : 0.0);
    free(plain);
    free(sbx);
    return 0;
}
