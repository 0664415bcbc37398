/* cacheout-agent: the CacheOut seller agent (see agent/README.md). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent_config.h"
#include "agent_core.h"
#include "agent_enroll.h"
#include "agent_job.h"
#include "co_config.h"
#include "co_log.h"
#include "sbx.h"

/* Atomic: the signal may run its handler on any thread (a job thread), which the loop reads. */
static _Atomic int stop_requests;

static void
on_stop_signal(int sig)
{
    (void)sig;
    if (stop_requests < 100)
        stop_requests++;
}

static void
usage(FILE *f)
{
    fputs(
        "usage: cacheout-agent [options]\n"
        "       cacheout-agent enroll --coordinator URL --key KEY [--tls-ca-file PATH]\n"
        "                             [--env-file PATH]   (see cacheout-agent enroll --help)\n"
        "\n"
        "The CacheOut seller agent: keeps one WebSocket to the coordinator, runs the jobs it is\n"
        "given in libsandbox (each with exactly the cores and RAM the job asks for), streams\n"
        "their output and reports their results.  Settings come from flags, the environment and\n"
        "an optional .env file in the current folder (flags win, then the environment).\n"
        "\n"
        "Options (environment variable in brackets):\n"
        "  --coordinator URL    [COORDINATOR_URL] ws://host:port/ws/agent or wss://...; "
        "http(s)://\n"
        "                       is accepted too; the path defaults to /ws/agent (required).\n"
        "                       A comma-separated list (up to 16, each checked at start) gives\n"
        "                       fail-over coordinators: one connection at a time, the next URL\n"
        "                       after a failure or close, round again; retry delays 1, 2, 4, 8,\n"
        "                       15, 30 s (+0-30% random), back to 1 s after a welcome\n"
        "  --token TOKEN        [AGENT_TOKEN] the coordinator's shared agent token (prefer the\n"
        "                       environment: flags are visible to other users in ps); its\n"
        "                       agents belong to the coordinator's AGENT_TOKEN_OWNER\n"
        "                       [AGENT_KEY] (environment or .env only) a seller's API key with\n"
        "                       the sell scope, sent as Authorization: Bearer; its workers\n"
        "                       belong to the key's user.  One of AGENT_KEY or AGENT_TOKEN is\n"
        "                       needed unless the coordinator has OPEN_REGISTRATION=true\n"
        "  --tls-ca-file PATH   [TLS_CA_FILE] CA bundle for wss:// (default: the system's);\n"
        "                       AGENT_TLS_CA_FILE is accepted too\n"
        "  --tls-insecure       [AGENT_TLS_INSECURE=1] accept any server certificate (testing)\n"
        "  --worker-id ID       [WORKER_ID] default: the host name\n"
        "  --owner-id ID        [OWNER_ID] optional; with AGENT_KEY it must be the key's user\n"
        "                       (else refused), with AGENT_TOKEN it is ignored: the coordinator\n"
        "                       pays the owner it has stored for the worker id\n"
        "  --cores N            [AGENT_CORES] cores offered; default: all usable CPUs\n"
        "  --ram-mb N           [AGENT_RAM_MB] RAM offered in MiB; default: MemTotal minus\n"
        "                       max(512 MiB, 10%)\n"
        "  --images LIST        [AGENT_IMAGES] comma-separated job images; default: default\n"
        "  --work-root DIR      [AGENT_WORK_ROOT] where job files are staged; default:\n"
        "                       /var/lib/cacheout-agent as root, else\n"
        "                       $XDG_STATE_HOME/cacheout-agent or\n"
        "                       $HOME/.local/state/cacheout-agent\n"
        "  --grace-seconds N    [AGENT_GRACE_SECONDS] on SIGTERM/SIGINT, how long running jobs\n"
        "                       may finish before they are killed; default: 30\n"
        "  --auth-retry-seconds N [AGENT_AUTH_RETRY_SECONDS] delay before retrying after the\n"
        "                       coordinator rejected the token; default: 300\n"
        "  --exit-on-auth-error [AGENT_EXIT_ON_AUTH_ERROR=1] exit with status 3 instead of\n"
        "                       retrying when the token is rejected\n"
        "  --output-limit SIZE  [AGENT_OUTPUT_LIMIT] output kept per stream and job (1M, 64K..);\n"
        "                       default: 1M\n"
        "  --job-pids N         [AGENT_JOB_PIDS] process limit per job; default: 256\n"
        "  --max-artifact-bytes SIZE [AGENT_MAX_ARTIFACT_BYTES] bytes of /work/out sent back\n"
        "                       per attempt (the cap holds while reading); default: 64M\n"
        "  --max-artifact-files N [AGENT_MAX_ARTIFACT_FILES] files of /work/out sent back per\n"
        "                       attempt; default: 1000\n"
        "  --log-level LEVEL    [LOG_LEVEL] DEBUG, INFO, WARNING or ERROR; default: INFO\n"
        "  --log-file PATH      [LOG_FILE] also log to this file\n"
        "  --env-file PATH      read this file instead of ./.env (it must exist)\n"
        "  --bench-no-sandbox   [AGENT_BENCH_NO_SANDBOX=1] BENCHMARKS ONLY: run nothing, report\n"
        "                       every job as an instant success with zero usage\n"
        "  --help               show this help\n"
        "  --version            show the version\n"
        "\n"
        "Before connecting, the agent runs /bin/true in a small sandbox; if that fails (as\n"
        "another user than root: no subordinate ids in /etc/subuid, no delegated cgroup, ...)\n"
        "it logs the failing step and why, and exits 1.\n"
        "\n"
        "Exit status: 0 after a clean shutdown, 1 for bad settings or a start-up failure, 3 when\n"
        "the credential was refused and --exit-on-auth-error is set.  Refusals are logged as\n"
        "\"unauthorized: check AGENT_TOKEN\" (wrong token), \"key rejected: check AGENT_KEY\"\n"
        "(unknown or revoked key, disabled user, or no credential) or \"forbidden: worker id X\n"
        "belongs to another user\" (or the key may not sell as this owner); by default the agent\n"
        "retries them every AGENT_AUTH_RETRY_SECONDS, while network errors are retried with\n"
        "exponential backoff (1 s to 30 s, with jitter) forever.  The key is never logged.\n"
        "Signals: SIGTERM or SIGINT stops taking jobs and waits for running ones up to the grace\n"
        "period, then kills them, reports them and exits; a second signal kills them at once.\n",
        f);
}

enum {
    OPT_COORDINATOR = 256,
    OPT_TOKEN,
    OPT_TLS_CA,
    OPT_TLS_INSECURE,
    OPT_WORKER_ID,
    OPT_OWNER_ID,
    OPT_CORES,
    OPT_RAM_MB,
    OPT_IMAGES,
    OPT_WORK_ROOT,
    OPT_GRACE,
    OPT_AUTH_RETRY,
    OPT_EXIT_AUTH,
    OPT_OUTPUT_LIMIT,
    OPT_JOB_PIDS,
    OPT_MAX_ART_BYTES,
    OPT_MAX_ART_FILES,
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
    OPT_ENV_FILE,
    OPT_BENCH,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"coordinator", required_argument, NULL, OPT_COORDINATOR},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"tls-ca-file", required_argument, NULL, OPT_TLS_CA},
    {"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
    {"worker-id", required_argument, NULL, OPT_WORKER_ID},
    {"owner-id", required_argument, NULL, OPT_OWNER_ID},
    {"cores", required_argument, NULL, OPT_CORES},
    {"ram-mb", required_argument, NULL, OPT_RAM_MB},
    {"images", required_argument, NULL, OPT_IMAGES},
    {"work-root", required_argument, NULL, OPT_WORK_ROOT},
    {"grace-seconds", required_argument, NULL, OPT_GRACE},
    {"auth-retry-seconds", required_argument, NULL, OPT_AUTH_RETRY},
    {"exit-on-auth-error", no_argument, NULL, OPT_EXIT_AUTH},
    {"output-limit", required_argument, NULL, OPT_OUTPUT_LIMIT},
    {"job-pids", required_argument, NULL, OPT_JOB_PIDS},
    {"max-artifact-bytes", required_argument, NULL, OPT_MAX_ART_BYTES},
    {"max-artifact-files", required_argument, NULL, OPT_MAX_ART_FILES},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"env-file", required_argument, NULL, OPT_ENV_FILE},
    {"bench-no-sandbox", no_argument, NULL, OPT_BENCH},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* The environment variable a flag sets (flags are applied by overriding the environment). */
static const char *
opt_env(int opt)
{
    switch (opt) {
    case OPT_COORDINATOR:
        return "COORDINATOR_URL";
    case OPT_TOKEN:
        return "AGENT_TOKEN";
    case OPT_TLS_CA:
        return "TLS_CA_FILE";
    case OPT_WORKER_ID:
        return "WORKER_ID";
    case OPT_OWNER_ID:
        return "OWNER_ID";
    case OPT_CORES:
        return "AGENT_CORES";
    case OPT_RAM_MB:
        return "AGENT_RAM_MB";
    case OPT_IMAGES:
        return "AGENT_IMAGES";
    case OPT_WORK_ROOT:
        return "AGENT_WORK_ROOT";
    case OPT_GRACE:
        return "AGENT_GRACE_SECONDS";
    case OPT_AUTH_RETRY:
        return "AGENT_AUTH_RETRY_SECONDS";
    case OPT_OUTPUT_LIMIT:
        return "AGENT_OUTPUT_LIMIT";
    case OPT_JOB_PIDS:
        return "AGENT_JOB_PIDS";
    case OPT_MAX_ART_BYTES:
        return "AGENT_MAX_ARTIFACT_BYTES";
    case OPT_MAX_ART_FILES:
        return "AGENT_MAX_ARTIFACT_FILES";
    case OPT_LOG_LEVEL:
        return "LOG_LEVEL";
    case OPT_LOG_FILE:
        return "LOG_FILE";
    default:
        return NULL;
    }
}

int
main(int argc, char **argv)
{
    sbx_launcher_entry(argc, argv); /* returns unless this process is the sandbox launcher */
    if (argc > 1 && strcmp(argv[1], "enroll") == 0)
        return agent_enroll_main(argc - 1, argv + 1);
    const char *env_file = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        const char *var = opt_env(opt);
        if (var) {
            setenv(var, optarg, 1);
            continue;
        }
        switch (opt) {
        case OPT_TLS_INSECURE:
            setenv("AGENT_TLS_INSECURE", "1", 1);
            break;
        case OPT_EXIT_AUTH:
            setenv("AGENT_EXIT_ON_AUTH_ERROR", "1", 1);
            break;
        case OPT_BENCH:
            setenv("AGENT_BENCH_NO_SANDBOX", "1", 1);
            break;
        case OPT_ENV_FILE:
            env_file = optarg;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("%s\n", AGENT_VERSION_STRING);
            return 0;
        default:
            usage(stderr);
            return AGENT_EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cacheout-agent: unexpected argument '%s' (see --help)\n", argv[optind]);
        return AGENT_EXIT_CONFIG;
    }

    co_err err = CO_ERR_INIT;
    if (co_config_load_env_file(env_file ? env_file : ".env", env_file == NULL, &err) != 0) {
        fprintf(stderr, "cacheout-agent: %s\n", err.msg);
        return AGENT_EXIT_CONFIG;
    }
    struct agent_host_caps caps;
    if (agent_host_caps_detect(&caps, &err) != 0) {
        fprintf(stderr, "cacheout-agent: cannot detect capacity: %s\n", err.msg);
        return AGENT_EXIT_CONFIG;
    }
    struct agent_config cfg;
    if (agent_config_load(&cfg, &caps, &err) != 0) {
        fprintf(stderr, "cacheout-agent: %s\n", err.msg);
        return AGENT_EXIT_CONFIG;
    }
    if (co_log_init(cfg.log_level, cfg.log_file, &err) != 0) {
        fprintf(stderr, "cacheout-agent: %s\n", err.msg);
        agent_config_release(&cfg);
        return AGENT_EXIT_CONFIG;
    }
    if (!cfg.token[0] && !cfg.key[0])
        co_warn("neither AGENT_KEY nor AGENT_TOKEN is set: only a coordinator with "
                "OPEN_REGISTRATION=true will accept this agent");

    if ((cfg.token[0] || cfg.key[0]) && !cfg.tls && strcmp(cfg.host, "127.0.0.1") != 0 &&
        strcmp(cfg.host, "localhost") != 0 && strcmp(cfg.host, "::1") != 0)
        co_warn("%s travels unencrypted to '%s': use wss:// outside a trusted network",
                cfg.key[0] ? "AGENT_KEY" : "AGENT_TOKEN", cfg.host);
    if (cfg.tls_insecure)
        co_warn("AGENT_TLS_INSECURE is set: the coordinator's certificate is not checked");
    if (!cfg.bench_no_sandbox && agent_job_root_prepare(cfg.work_root, &err) != 0) {
        co_error("cannot prepare the work root error=\"%s\"", err.msg);
        agent_config_release(&cfg);
        co_log_close();
        return AGENT_EXIT_CONFIG;
    }

    /*
     * Run one tiny sandbox before taking jobs: an agent whose sandbox cannot work (typically a
     * rootless one without subordinate ids or a delegated cgroup) must stop here, naming what is
     * missing, rather than connect and fail every job it accepts.
     */
    /*
     * Clone sandboxes from a small launcher process rather than from this one (whose page
     * tables every clone would copy); CACHEOUT_LAUNCHER=0 turns it off.  The self-test below
     * runs through it.
     */
    if (!cfg.bench_no_sandbox && sbx_launcher_enable(&err) != 0) {
        co_error("cannot start the sandbox launcher error=\"%s\"", err.msg);
        agent_config_release(&cfg);
        co_log_close();
        return AGENT_EXIT_CONFIG;
    }
    if (!cfg.bench_no_sandbox) {
        bool rootless = geteuid() != 0;
        int64_t ms = 0;
        if (agent_sandbox_selftest(&ms, &err) != 0) {
            co_error("the sandbox does not work, not starting rootless=%s error=\"%s\"",
                     rootless ? "yes" : "no", err.msg);
            agent_config_release(&cfg);
            co_log_close();
            return AGENT_EXIT_CONFIG;
        }
        co_info("sandbox self-test ok rootless=%s uid=%u ms=%" PRId64, rootless ? "yes" : "no",
                (unsigned)geteuid(), ms);
    }

    /*
     * Keep empty network namespaces ready and let a janitor thread remove finished sandboxes, so
     * neither costs time on a job's critical path (the agent is long-lived, as both require).
     */
    if (!cfg.bench_no_sandbox &&
        (sbx_prewarm(2, true, &err) != 0 || sbx_async_cleanup(&err) != 0)) {
        co_error("cannot start the sandbox helpers error=\"%s\"", err.msg);
        agent_config_release(&cfg);
        co_log_close();
        return AGENT_EXIT_CONFIG;
    }

    json_object_seed(0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct agent *agent = NULL;
    int rc = AGENT_EXIT_CONFIG;
    if (agent_new(&cfg, &agent, &err) != 0) {
        co_error("cannot start agent error=\"%s\"", err.msg);
    } else {
        rc = agent_run(agent, &stop_requests);
        agent_free(agent);
    }
    agent_config_release(&cfg);
    co_log_close();
    return rc;
}
