/*
 * coord_config: the coordinator's settings, read once at start-up from the environment (and the
 * optional .env loaded before).  Every setting of the original README plus AGENT_TOKEN,
 * CORS_ORIGINS, MAX_BODY_BYTES, MAX_JOB_CORES, MAX_JOB_RAM_MB, FRONTEND_DIR and SQL_DIR.
 * Read-only after coord_config_load(); shared by every thread.  Life cycle: main() loads it
 * before starting anything and releases it after the server and the database executor stopped.
 */
#ifndef COORD_CONFIG_H
#define COORD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"
#include "co_log.h"

#define COORD_MAX_CORS 16

struct coord_config {
    char *host;                     /* HOST, default 0.0.0.0 */
    int port;                       /* PORT, default 8000 */
    bool debug;                     /* DEBUG */
    char *admin_token;              /* ADMIN_TOKEN (generated when unset) */
    bool admin_generated;           /* the token was generated at start */
    char *agent_token;              /* AGENT_TOKEN, NULL when unset (open registration) */
    char *database_url;             /* DATABASE_URL, NULL = SQLite default */
    int64_t cost_per_core;          /* COST_PER_CORE, micro-credits */
    int64_t cost_per_100mb_ram;     /* COST_PER_100MB_RAM, micro-credits */
    int64_t starting_credits;       /* DEFAULT_STARTING_CREDITS, micro-credits */
    int64_t worker_timeout_seconds; /* WORKER_TIMEOUT_SECONDS */
    int64_t max_workers;            /* MAX_WORKERS */
    int64_t timeout_grace_seconds;  /* TIMEOUT_GRACE_SECONDS, default 30 */
    int64_t quarantine_seconds;     /* QUARANTINE_SECONDS, default 600 */
    enum co_log_level log_level;    /* LOG_LEVEL */
    char *log_file;                 /* LOG_FILE, NULL = stderr only */
    char *cors[COORD_MAX_CORS];     /* CORS_ORIGINS, comma-separated */
    int n_cors;
    int64_t max_body_bytes;      /* MAX_BODY_BYTES, default 16 MiB */
    int64_t max_job_files_bytes; /* MAX_JOB_FILES_BYTES: decoded input files, default 8 MiB */
    int64_t max_artifact_bytes;  /* MAX_ARTIFACT_BYTES: stored artifacts per attempt, 64 MiB */
    int64_t max_job_cores;       /* MAX_JOB_CORES, default 256 */
    int64_t max_job_ram_mb;      /* MAX_JOB_RAM_MB, default 1 TiB in MB */
    char *frontend_dir;          /* FRONTEND_DIR, else <bindir>/../share/cacheout/frontend */
    char *sql_dir;               /* SQL_DIR, NULL = the migrations compiled in */
    int64_t db_threads;          /* DB_THREADS: database worker threads, 0 = per backend default */
    /* Dashboards (coord_dash.c; proto/DASHBOARD.md). */
    int64_t dash_queue_messages; /* DASHBOARD_QUEUE_MESSAGES, default 1024 */
    int64_t dash_queue_bytes;    /* DASHBOARD_QUEUE_BYTES, default 4 MiB */
    int64_t dash_slow_close_ms;  /* DASHBOARD_SLOW_CLOSE_SECONDS * 1000, default 10 s */
    int64_t dash_batch_ms;       /* DASHBOARD_BATCH_MS, default 100 */
    /* TLS (coord_server.c): HTTPS and WSS on PORT when both files are set. */
    char *tls_cert_file;    /* TLS_CERT_FILE: PEM certificate (chain), NULL = plain HTTP */
    char *tls_key_file;     /* TLS_KEY_FILE: PEM private key */
    bool tls_redirect_http; /* TLS_REDIRECT_HTTP: plain HTTP on PORT gets a redirect to https */
    /* Per-user limits (defaults; users.limits overrides them; admins are exempt). */
    double rate_submit_per_second;    /* RATE_SUBMIT_PER_SECOND, default 100 (0 = none) */
    int64_t max_pending_jobs;         /* MAX_PENDING_JOBS, default 10000 (0 = none) */
    int64_t max_running_jobs;         /* MAX_RUNNING_JOBS, default 0 = none */
    int64_t auth_failures_per_minute; /* AUTH_FAILURES_PER_MINUTE per address, default 20 */
    /* Sellers (API.md "Sellers and workers"). */
    char *agent_token_owner; /* AGENT_TOKEN_OWNER: the user AGENT_TOKEN's agents belong to */
    bool open_registration;  /* OPEN_REGISTRATION: agent routes open without a credential */
    /* Retention (coord_retention.c). */
    int64_t retention_days;             /* RETENTION_DAYS, default 30 */
    int64_t retention_interval_seconds; /* RETENTION_INTERVAL_SECONDS, default 3600 */
    int64_t retention_batch;            /* RETENTION_BATCH: rows per transaction, default 500 */
    /* Pricing (coord_price.h; API.md "Verified results, reputation, pricing"). */
    int pricing;                   /* PRICING: enum coord_pricing, default flat */
    int64_t price_per_core_second; /* PRICE_PER_CORE_SECOND (metered), micro-credits */
    int64_t price_per_gb_second;   /* PRICE_PER_GB_SECOND (metered), micro-credits */
    int64_t platform_fee_percent;  /* PLATFORM_FEE_PERCENT of each payout, 0-100, default 0 */
    /* Debugging: RECORD_ANSWERS=<file> appends every REST answer as a JSON line (coord_openapi). */
    char *record_answers;
    /* Completion callbacks (coord_webhook.c). */
    bool webhook_allow_private;      /* WEBHOOK_ALLOW_PRIVATE: private targets allowed, false */
    int64_t webhook_timeout_seconds; /* WEBHOOK_TIMEOUT_SECONDS: per attempt, default 10 */
    int64_t webhook_max_hours;       /* WEBHOOK_MAX_HOURS: retried this long, default 24 */
    int64_t webhook_concurrency;     /* WEBHOOK_CONCURRENCY: attempts in flight, default 16 */
    int64_t webhook_backoff_base_ms; /* WEBHOOK_BACKOFF_BASE_MS: first wait, default 1000 */
    int64_t webhook_poll_ms;         /* WEBHOOK_POLL_MS: look for due rows, default 1000 */
    char *webhook_debug_hosts;       /* WEBHOOK_DEBUG_HOSTS: "name address" file (tests) */
};

/* ADMIN_TOKEN must have this many characters and not be this value, unless DEBUG=true. */
#define COORD_ADMIN_TOKEN_MIN 24
#define COORD_ADMIN_TOKEN_PLACEHOLDER "change_me_to_a_long_random_string"

/**
 * Read every setting from the environment into @cfg (caller-owned, released with
 * coord_config_release).  Errors name the variable: "invalid PORT 'abc': not an integer".
 */
int coord_config_load(struct coord_config *cfg, co_err *err) __attribute__((warn_unused_result));

/** Free the strings of @cfg. */
void coord_config_release(struct coord_config *cfg);

/** True if @origin (not NUL-terminated, @len bytes) is one of CORS_ORIGINS. */
bool coord_config_cors_allowed(const struct coord_config *cfg, const char *origin, size_t len);

#endif
