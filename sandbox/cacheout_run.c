/*
 * cacheout-run: run one command in the CacheOut sandbox (like `isolate --run` or nsjail).  The
 * job's stdout/stderr appear on ours; the result is one JSON object written to --result FILE,
 * --result-fd N, or fd 3 when it is open.  Exit code: the job's; 128+N when it was killed by
 * signal N; 125 when the sandbox itself failed; 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_config.h"
#include "co_credits.h"
#include "co_err.h"
#include "sbx.h"

#define EXIT_USAGE 2
#define EXIT_INTERNAL 125

static const char usage_text[] =
    "usage: cacheout-run [options] -- PROGRAM [ARGS...]\n"
    "\n"
    "Run PROGRAM in the CacheOut sandbox: new mount, pid, network, ipc, uts and cgroup\n"
    "namespaces; a read-only root built from an image; tmpfs /work (the working directory)\n"
    "and /tmp; fresh /proc; minimal /dev; no /sys; an unprivileged uid of its own, no\n"
    "capabilities, no_new_privs, a seccomp allowlist; cgroup limits on CPU, memory and pids.\n"
    "PROGRAM is looked up in the job's PATH; no shell runs on the host.\n"
    "\n"
    "Options:\n"
    "  --cores N              CPU quota in cores, decimals allowed (0.5); default 1\n"
    "  --memory SIZE          memory limit (256M, 1G); swap disabled; default 256M\n"
    "  --pids N               pids limit; default 64\n"
    "  --wall-time DUR        wall-clock limit (250ms, 10s, 2m); default 10s; 0 = none\n"
    "  --cpu-time DUR         CPU-time limit (user+sys, all processes); default none\n"
    "  --image NAME|PATH      \"default\" (host /usr, /bin, /sbin, /lib* read-only plus a\n"
    "                         generated /etc), a registered image name (a rootfs folder under\n"
    "                         /var/lib/cacheout/images, or $CACHEOUT_IMAGE_DIR), or an absolute\n"
    "                         path to a rootfs folder; default \"default\"\n"
    "  --work-file NAME=PATH  copy host file PATH into /work/NAME before start (mode kept);\n"
    "                         repeatable\n"
    "  --env KEY=VALUE        add to the job's clean environment (PATH, HOME=/work,\n"
    "                         LANG=C.UTF-8); repeatable; nothing else is inherited\n"
    "  --tmp-size SIZE        size of the /tmp tmpfs; default 64M\n"
    "  --work-size SIZE       size of the /work tmpfs; default 64M\n"
    "  --shm-size SIZE        size of the /dev/shm tmpfs; default 16M\n"
    "  --network MODE         none (default: no interface up) | loopback (only lo up)\n"
    "  --output-limit SIZE    per-stream cap (stdout, stderr); default 1M; output past it is\n"
    "                         dropped and flagged, the job keeps running\n"
    "  --kill-on-output-limit kill the job when a stream passes its cap (status output_limit)\n"
    "  --result FILE          write the result JSON object to FILE\n"
    "  --result-fd N          write the result JSON object to fd N\n"
    "                         (default: fd 3 if it is open, else nothing)\n"
    "  --help                 show this text\n"
    "\n"
    "       cacheout-run --setup-rootless USER\n"
    "\n"
    "As root, prepare USER to run sandboxes without root (cacheout-run or cacheout-agent run\n"
    "as USER): a range of subordinate uids/gids for the job uids (added with usermod when\n"
    "missing) and, on cgroup v1 and hybrid hosts, job cgroup folders USER may use\n"
    "(<hierarchy>/cacheout-<uid>).  On pure cgroup2 hosts start the agent in a delegated cgroup\n"
    "instead (systemd: User=USER and Delegate=yes).  Rootless sandboxes need newuidmap and\n"
    "newgidmap (package uidmap) and unprivileged user namespaces.\n"
    "\n"
    "Result JSON: status (ok, runtime_error, signaled, timeout, cpu_timeout, oom, seccomp,\n"
    "output_limit, internal_error, cancelled), exit_code, signal, wall_ms, cpu_ms,\n"
    "memory_peak_kb, max_rss_kb, oom_killed, stdout_truncated, stderr_truncated, stdout_bytes,\n"
    "stderr_bytes, error (null or {step, errno, message}), slot, uid (inside), host_uid (the\n"
    "same uid seen from the host: for a rootless caller, its subordinate uid + slot).\n"
    "\n"
    "Exit code: the job's exit code; 128+N if it was killed by signal N (timeouts, OOM and\n"
    "output-limit kills are SIGKILL: 137); 125 if the sandbox failed (the job did not run);\n"
    "2 for usage errors.  SIGINT/SIGTERM cancel the job (status cancelled).\n"
    "\n"
    "Environment: CACHEOUT_IMAGE_DIR (registered images), CACHEOUT_RUN_DIR (locks and the\n"
    "default image skeleton; default /run/cacheout, rootless /run/user/<uid>/cacheout or\n"
    "/tmp/cacheout-<uid>), CACHEOUT_CGROUP_PARENT (cgroup folder of the jobs; default cacheout,\n"
    "rootless cacheout-<uid>), CACHEOUT_CGROUP_BASE (pure cgroup2: the delegated cgroup).\n"
    "Runs as root, or rootless: as another user each sandbox gets a user namespace of its own.\n";

enum opt {
    OPT_CORES = 1000,
    OPT_MEMORY,
    OPT_PIDS,
    OPT_WALL,
    OPT_CPU,
    OPT_IMAGE,
    OPT_WORK_FILE,
    OPT_ENV,
    OPT_TMP_SIZE,
    OPT_WORK_SIZE,
    OPT_SHM_SIZE,
    OPT_NETWORK,
    OPT_OUTPUT_LIMIT,
    OPT_KILL_OUTPUT,
    OPT_RESULT,
    OPT_RESULT_FD,
    OPT_HELP,
    OPT_SETUP_ROOTLESS,
};

static const struct option long_opts[] = {
    {"cores", required_argument, NULL, OPT_CORES},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"pids", required_argument, NULL, OPT_PIDS},
    {"wall-time", required_argument, NULL, OPT_WALL},
    {"cpu-time", required_argument, NULL, OPT_CPU},
    {"image", required_argument, NULL, OPT_IMAGE},
    {"work-file", required_argument, NULL, OPT_WORK_FILE},
    {"env", required_argument, NULL, OPT_ENV},
    {"tmp-size", required_argument, NULL, OPT_TMP_SIZE},
    {"work-size", required_argument, NULL, OPT_WORK_SIZE},
    {"shm-size", required_argument, NULL, OPT_SHM_SIZE},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"output-limit", required_argument, NULL, OPT_OUTPUT_LIMIT},
    {"kill-on-output-limit", no_argument, NULL, OPT_KILL_OUTPUT},
    {"result", required_argument, NULL, OPT_RESULT},
    {"result-fd", required_argument, NULL, OPT_RESULT_FD},
    {"help", no_argument, NULL, OPT_HELP},
    {"setup-rootless", required_argument, NULL, OPT_SETUP_ROOTLESS},
    {NULL, 0, NULL, 0},
};

/*
 * The cancellation handle the signal handlers use.  Set once before the handlers are installed
 * and never changed: a signal handler has no other way to reach it.
 */
static struct sbx_cancel *cancel_handle;

static void
on_signal(int sig)
{
    (void)sig;
    sbx_cancel(cancel_handle);
}

static void
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* a closed stdout must not stop the job's accounting */
        }
        p += n;
        len -= (size_t)n;
    }
}

static void
on_output(void *ud, enum sbx_stream stream, const char *data, size_t len)
{
    (void)ud;
    write_all(stream == SBX_STDOUT ? STDOUT_FILENO : STDERR_FILENO, data, len);
}

static int
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "cacheout-run: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\ntry 'cacheout-run --help'\n");
    return EXIT_USAGE;
}

static int
parse_cores(const char *s, int64_t *milli, co_err *err)
{
    int64_t micro;
    if (co_credits_parse(s, strlen(s), "cores", &micro, err) < 0)
        return -1;
    if (micro <= 0 || micro % 1000 != 0)
        return co_err_set(err, CO_E_INVAL, "invalid cores '%s': need > 0, at most 3 decimals", s);
    *milli = micro / 1000;
    return 0;
}

static int
setup_rootless(const char *user)
{
    struct co_buf report = CO_BUF_INIT;
    co_err err = CO_ERR_INIT;
    int rc = sbx_setup_rootless(user, &report, &err);
    if (report.len)
        fwrite(report.data, 1, report.len, stdout);
    co_buf_release(&report);
    if (rc < 0) {
        fprintf(stderr, "cacheout-run: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    sbx_launcher_entry(argc, argv); /* CACHEOUT_LAUNCHER=1 (the escape suite's launcher pass) */
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    co_err err = CO_ERR_INIT;
    const char *result_file = NULL;
    int result_fd = fcntl(3, F_GETFD) >= 0 ? 3 : -1;
    co_autofree const char **env = co_xcalloc((size_t)argc + 1, sizeof(*env));
    size_t n_env = 0;
    co_autofree struct sbx_file *files = co_xcalloc((size_t)argc + 1, sizeof(*files));
    size_t n_files = 0;
    int64_t v;
    int c;

    while ((c = getopt_long(argc, argv, "+", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CORES:
            if (parse_cores(optarg, &spec.cores_milli, &err) < 0)
                return usage_error("%s", err.msg);
            break;
        case OPT_MEMORY:
        case OPT_TMP_SIZE:
        case OPT_WORK_SIZE:
        case OPT_SHM_SIZE:
        case OPT_OUTPUT_LIMIT:
            if (co_parse_size(optarg, long_opts[c - OPT_CORES].name, &v, &err) < 0)
                return usage_error("%s", err.msg);
            if (c == OPT_MEMORY)
                spec.memory_bytes = v;
            else if (c == OPT_TMP_SIZE)
                spec.tmp_bytes = v;
            else if (c == OPT_WORK_SIZE)
                spec.work_bytes = v;
            else if (c == OPT_SHM_SIZE)
                spec.shm_bytes = v;
            else
                spec.output_limit = v;
            break;
        case OPT_PIDS:
            if (co_parse_int(optarg, "pids", 1, 1 << 22, &spec.pids, &err) < 0)
                return usage_error("%s", err.msg);
            break;
        case OPT_WALL:
        case OPT_CPU:
            if (co_parse_duration_ms(optarg, long_opts[c - OPT_CORES].name, &v, &err) < 0)
                return usage_error("%s", err.msg);
            if (c == OPT_WALL)
                spec.wall_ms = v;
            else
                spec.cpu_ms = v;
            break;
        case OPT_IMAGE:
            spec.image = optarg;
            break;
        case OPT_WORK_FILE: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1])
                return usage_error("--work-file needs NAME=PATH, got '%s'", optarg);
            *eq = '\0';
            files[n_files].name = optarg;
            files[n_files].host_path = eq + 1;
            n_files++;
            break;
        }
        case OPT_ENV:
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return usage_error("--env needs KEY=VALUE, got '%s'", optarg);
            env[n_env++] = optarg;
            break;
        case OPT_NETWORK:
            if (strcmp(optarg, "none") == 0)
                spec.network = SBX_NET_NONE;
            else if (strcmp(optarg, "loopback") == 0)
                spec.network = SBX_NET_LOOPBACK;
            else
                return usage_error("unknown --network '%s' (none or loopback)", optarg);
            break;
        case OPT_KILL_OUTPUT:
            spec.kill_on_output_limit = true;
            break;
        case OPT_RESULT:
            result_file = optarg;
            break;
        case OPT_RESULT_FD:
            if (co_parse_int(optarg, "result-fd", 0, 1 << 20, &v, &err) < 0)
                return usage_error("%s", err.msg);
            result_fd = (int)v;
            if (fcntl(result_fd, F_GETFD) < 0)
                return usage_error("--result-fd %s is not an open file descriptor", optarg);
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 0;
        case OPT_SETUP_ROOTLESS:
            return setup_rootless(optarg);
        default:
            return usage_error("%s", "invalid option");
        }
    }
    if (optind >= argc)
        return usage_error("%s", "no program given (use -- PROGRAM [ARGS...])");
    spec.argv = (const char *const *)argv + optind;
    spec.env = n_env ? env : NULL;
    spec.files = files;
    spec.n_files = n_files;
    if (sbx_spec_validate(&spec, &err) < 0)
        return usage_error("%s", err.msg);

    /*
     * Start making the job's network namespace now, in a thread, while this one prepares the
     * cgroup and the rest: it is the most expensive namespace to create.  If the thread cannot
     * start, clone() makes the namespace instead.  Rootless, the thread makes the job's user
     * namespace and its maps (the most expensive part there) the same way.
     */
    if ((spec.network == SBX_NET_NONE || geteuid() != 0) && sbx_prewarm(1, false, &err) < 0)
        co_err_clear(&err);

    int out_fd = -1;
    if (result_file) {
        out_fd = open(result_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out_fd < 0) {
            fprintf(stderr, "cacheout-run: cannot open '%s': %s\n", result_file, strerror(errno));
            return EXIT_USAGE;
        }
    } else if (result_fd >= 0) {
        out_fd = result_fd;
    }

    if (sbx_cancel_new(&cancel_handle, &err) < 0) {
        fprintf(stderr, "cacheout-run: %s\n", err.msg);
        return EXIT_INTERNAL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    struct sbx_run_opts opts = {on_output, NULL, false, cancel_handle};
    struct sbx_result res;
    int rc = sbx_run_ex(&spec, &opts, &res, &err);
    if (rc < 0)
        fprintf(stderr, "cacheout-run: %s\n", err.msg);
    else if (res.error_step[0])
        fprintf(stderr, "cacheout-run: %s\n", res.error_msg);
    else if (err.msg[0])
        fprintf(stderr, "cacheout-run: warning: %s\n", err.msg);

    if (out_fd >= 0) {
        struct co_buf b = CO_BUF_INIT;
        sbx_result_json(&res, &b);
        co_buf_putc(&b, '\n');
        write_all(out_fd, b.data, b.len);
        co_buf_release(&b);
        if (result_file)
            close(out_fd);
    }

    int code;
    if (res.status == SBX_INTERNAL_ERROR)
        code = EXIT_INTERNAL;
    else if (res.signal > 0)
        code = 128 + res.signal;
    else
        code = res.exit_code >= 0 ? res.exit_code : EXIT_INTERNAL;
    sbx_result_release(&res);
    sbx_cancel_free(cancel_handle);
    return code;
}
