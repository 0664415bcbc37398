/*
 * cacheout-coordinator: reads the configuration (environment and ./.env), opens and migrates the
 * store, starts the database executor and serves HTTP and WebSockets until SIGINT/SIGTERM.
 * Exit codes: 0 clean shutdown, 1 runtime failure (database, port), 2 configuration error.
 *
 * Thread: the main thread, which becomes the lws service thread inside coord_server_run().  Life
 * cycle: main() owns what outlives the server -- the settings, the debug faults, the node id and
 * instance lock, the database executor -- and creates them before coord_server_run(); the
 * migration store is closed once the executor started; the executor is stopped and the settings
 * released after coord_server_run() returned.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "co_alloc.h"
#include "co_config.h"
#include "co_err.h"
#include "co_log.h"
#include "coord_config.h"
#include "coord_db.h"
#include "coord_fault.h"
#include "coord_node.h"
#include "coord_server.h"
#include "coord_store.h"

#ifndef CACHEOUT_VERSION
#define CACHEOUT_VERSION "0.1.0"
#endif

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
usage(FILE *f)
{
    fprintf(
        f, "usage: cacheout-coordinator [--help] [--version]\n"
           "\n"
           "The CacheOut coordinator: REST API, dashboard, agent and dashboard WebSockets.\n"
           "Settings come from the environment and from ./.env (environment wins):\n"
           "  HOST (0.0.0.0)  PORT (8000)  DEBUG  ADMIN_TOKEN (generated when unset)\n"
           "  AGENT_TOKEN (the operator's agents)  AGENT_TOKEN_OWNER (platform)\n"
           "  OPEN_REGISTRATION (false; development only)  DATABASE_URL (sqlite var/cacheout.db)\n"
           "  COST_PER_CORE (0.1)  COST_PER_100MB_RAM (0.001)  DEFAULT_STARTING_CREDITS (100)\n"
           "  WORKER_TIMEOUT_SECONDS (60)  MAX_WORKERS (10000)  LOG_LEVEL (INFO)  LOG_FILE\n"
           "  CORS_ORIGINS (http://localhost:5173)  MAX_BODY_BYTES (16MiB)  MAX_JOB_CORES (256)\n"
           "  MAX_JOB_FILES_BYTES (8MiB)  MAX_ARTIFACT_BYTES (64MiB)  MAX_JOB_RAM_MB (1048576)\n"
           "  FRONTEND_DIR (<bindir>/../share/cacheout/frontend,\n"
           "  else ./frontend/dist)  SQL_DIR (unset: the migrations built into this binary)\n"
           "  TLS_CERT_FILE, TLS_KEY_FILE (PEM; both set: HTTPS and WSS on PORT)\n"
           "  TLS_REDIRECT_HTTP (false; true: plain HTTP on PORT is redirected to https)\n"
           "  DB_THREADS (database threads; default: sqlite 1 writer + 1 reader,\n"
           "              postgres 4 writers + 2 readers)\n"
           "  WEBHOOK_ALLOW_PRIVATE (false)  WEBHOOK_TIMEOUT_SECONDS (10)  WEBHOOK_MAX_HOURS (24)\n"
           "  WEBHOOK_CONCURRENCY (16)\n"
           "Tests only (never in production; each logs a warning at start):\n"
           "  RECORD_ANSWERS (a file: every REST answer appended as a JSON line)\n"
           "  DEBUG_FAULTS (unset: off; e.g. commit_lost:claim:2,hello_gap_ms:1500,\n"
           "                claim_hold_ms:3000: injected faults, coordinator/README.md)\n"
           "See .env.example for details.\n");
}

static void
install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the service loop's poll returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/*
 * Every agent is one descriptor: take the hard RLIMIT_NOFILE (Debian's soft default of 1024 would
 * stop at about 1,000 agents) and say so when even that is short of MAX_WORKERS.
 */
static void
raise_nofile(int64_t max_workers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && (int64_t)rl.rlim_cur < max_workers + 256)
        co_warn("RLIMIT_NOFILE is %llu: fewer descriptors than MAX_WORKERS=%lld agents need "
                "(raise the hard limit, e.g. LimitNOFILE= in the service unit)",
                (unsigned long long)rl.rlim_cur, (long long)max_workers);
}

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("cacheout-coordinator %s\n", CACHEOUT_VERSION);
            return 0;
        }
        fprintf(stderr, "cacheout-coordinator: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }

    co_err err = CO_ERR_INIT;
    json_object_seed(0);
    if (co_config_load_env_file(".env", true, &err) < 0) {
        fprintf(stderr, "cacheout-coordinator: %s\n", err.msg);
        return 2;
    }
    struct coord_config cfg;
    if (coord_config_load(&cfg, &err) < 0) {
        fprintf(stderr, "cacheout-coordinator: %s\n", err.msg);
        return 2;
    }
    if (co_log_init(cfg.log_level, cfg.log_file, &err) < 0) {
        fprintf(stderr, "cacheout-coordinator: LOG_FILE: %s\n", err.msg);
        coord_config_release(&cfg);
        return 2;
    }
    if (cfg.admin_generated) {
        /* Printed once, on stdout, so that it can be captured. */
        printf("ADMIN_TOKEN was not set; generated for this run: %s\n", cfg.admin_token);
        fflush(stdout);
        co_warn("ADMIN_TOKEN not set: generated one for this run (printed on stdout)");
    }
    if (!cfg.admin_generated && (strlen(cfg.admin_token) < COORD_ADMIN_TOKEN_MIN ||
                                 strcmp(cfg.admin_token, COORD_ADMIN_TOKEN_PLACEHOLDER) == 0))
        co_warn("ADMIN_TOKEN is weak (under %d characters or the .env.example placeholder): "
                "accepted only because DEBUG=true",
                COORD_ADMIN_TOKEN_MIN);
    if (coord_fault_init(getenv("DEBUG_FAULTS"), &err) < 0) {
        fprintf(stderr, "cacheout-coordinator: %s\n", err.msg);
        co_log_close();
        coord_config_release(&cfg);
        return 2;
    }
    if (cfg.open_registration)
        co_warn("OPEN_REGISTRATION=true: the agent routes (/ws/agent, register, unregister, task, "
                "status) accept agents without a credential; for development only");

    raise_nofile(cfg.max_workers);

    int rc = 1;
    struct coord_store *mig = NULL;
    struct coord_db *db = NULL;
    coord_node_init();
    struct coord_store_config scfg = {
        .url = cfg.database_url,
        .starting_credits = cfg.starting_credits,
        .worker_timeout_ms = cfg.worker_timeout_seconds * 1000,
        .max_workers = cfg.max_workers,
        .output_cap_bytes = 1 << 20,
        .fee_percent = cfg.platform_fee_percent,
        .node_id = coord_node_id(),
    };
    if (coord_store_open(&scfg, &mig, &err) < 0) {
        co_error("cannot open the database error=\"%s\"", err.msg);
        goto out;
    }
    if (coord_node_instance_lock(cfg.database_url, &err) < 0) {
        co_error("refusing to start: %s", err.msg);
        goto out;
    }
    if (coord_store_migrate(mig, cfg.sql_dir, &err) < 0) {
        co_error("cannot migrate the database error=\"%s\"", err.msg);
        goto out;
    }
    /* A copy: the migrations' store is closed before the server runs. */
    char backend[16];
    co_strlcpy(backend, coord_store_backend(mig), sizeof(backend));
    bool pg = strcmp(backend, "postgres") == 0;
    struct coord_db_options dopt = {
        .store = &scfg,
        .writers = pg ? 4 : 1,
        .readers = pg ? 2 : 1,
    };
    if (cfg.db_threads > 0) {
        dopt.writers = pg ? (int)cfg.db_threads : 1;
        dopt.readers = pg ? (int)(cfg.db_threads + 1) / 2 : (int)cfg.db_threads;
    }
    if (coord_db_start(&dopt, &db, &err) < 0) {
        co_error("cannot start the database threads error=\"%s\"", err.msg);
        goto out;
    }
    coord_store_close(mig);
    mig = NULL;
    install_signals();
    if (coord_server_run(&cfg, db, backend, &stop_flag, &err) < 0) {
        co_error("cannot serve error=\"%s\"", err.msg);
        goto out;
    }
    rc = 0;
out:
    coord_db_stop(db);
    coord_store_close(mig);
    co_info("stopped");
    co_log_close();
    coord_config_release(&cfg);
    return rc;
}
