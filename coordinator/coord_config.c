/* coord_config: settings from the environment (see coord_config.h). */
#include "coord_config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_credits.h"
#include "co_config.h"
#include "co_id.h"
#include "coord_artifact.h"
#include "coord_dash.h"
#include "coord_limits.h"
#include "coord_price.h"
#include "proto_files.h"
#include "proto_job.h"

/* A string setting, NULL when unset or empty. */
static char *
cfg_strdup_or_null(const char *name)
{
    const char *v = co_config_str(name, NULL);
    return (v && *v) ? co_xstrdup(v) : NULL;
}

/*
 * The dashboard folder: FRONTEND_DIR, else the copy installed beside the binary
 * (<bindir>/../share/cacheout/frontend, as `cmake --install` and the packages lay it out), else
 * frontend/dist under the working directory (a source tree), else the installed path anyway, so
 * that the start-up log names where it was looked for.
 */
static char *
cfg_frontend_dir(void)
{
    const char *v = co_config_str("FRONTEND_DIR", NULL);
    if (v && *v)
        return co_xstrdup(v);
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *installed = NULL;
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        installed = co_xasprintf("%s/../share/cacheout/frontend", exe);
        if (access(installed, R_OK | X_OK) == 0)
            return installed;
    }
    if (access("frontend/dist", R_OK | X_OK) == 0 || !installed) {
        free(installed);
        return co_xstrdup("frontend/dist");
    }
    return installed;
}

static int
cfg_parse_cors(struct coord_config *cfg, co_err *err)
{
    const char *v = co_config_str("CORS_ORIGINS", "http://localhost:5173");
    co_autofree char *copy = co_xstrdup(v);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t' || tok[len - 1] == '/'))
            tok[--len] = '\0';
        if (len == 0)
            continue;
        if (cfg->n_cors >= COORD_MAX_CORS)
            return co_err_field(err, CO_E_RANGE, "CORS_ORIGINS",
                                "invalid CORS_ORIGINS: more than %d origins", COORD_MAX_CORS);
        cfg->cors[cfg->n_cors++] = co_xstrdup(tok);
    }
    return 0;
}

/* Completion callbacks (coord_webhook.c; coordinator/README.md "Callbacks"). */
static int
cfg_load_webhook(struct coord_config *cfg, co_err *err)
{
    if (co_config_bool("WEBHOOK_ALLOW_PRIVATE", false, &cfg->webhook_allow_private, err) < 0 ||
        co_config_int("WEBHOOK_TIMEOUT_SECONDS", 10, 1, 300, &cfg->webhook_timeout_seconds, err) <
            0 ||
        co_config_int("WEBHOOK_MAX_HOURS", 24, 0, 24 * 30, &cfg->webhook_max_hours, err) < 0 ||
        co_config_int("WEBHOOK_CONCURRENCY", 16, 1, 1024, &cfg->webhook_concurrency, err) < 0 ||
        co_config_int("WEBHOOK_BACKOFF_BASE_MS", 1000, 1, 600000, &cfg->webhook_backoff_base_ms,
                      err) < 0 ||
        co_config_int("WEBHOOK_POLL_MS", 1000, 10, 60000, &cfg->webhook_poll_ms, err) < 0)
        return -1;
    cfg->webhook_debug_hosts = cfg_strdup_or_null("WEBHOOK_DEBUG_HOSTS");
    return 0;
}

/*
 * TLS_CERT_FILE and TLS_KEY_FILE: both or neither; each must be readable now, so that a typo
 * stops the start with the variable's name rather than an lws context error.
 */
static int
cfg_load_tls(struct coord_config *cfg, co_err *err)
{
    cfg->tls_cert_file = cfg_strdup_or_null("TLS_CERT_FILE");
    cfg->tls_key_file = cfg_strdup_or_null("TLS_KEY_FILE");
    if (!cfg->tls_cert_file != !cfg->tls_key_file)
        return co_err_field(err, CO_E_INVAL, cfg->tls_cert_file ? "TLS_KEY_FILE" : "TLS_CERT_FILE",
                            "TLS_CERT_FILE and TLS_KEY_FILE must be set together");
    static const char *const names[] = {"TLS_CERT_FILE", "TLS_KEY_FILE"};
    const char *paths[] = {cfg->tls_cert_file, cfg->tls_key_file};
    for (size_t i = 0; i < CO_ARRAY_LEN(names); i++) {
        if (paths[i] && access(paths[i], R_OK) != 0)
            return co_err_field(err, CO_E_INVAL, names[i], "invalid %s '%s': %s", names[i],
                                paths[i], strerror(errno));
    }
    if (co_config_bool("TLS_REDIRECT_HTTP", false, &cfg->tls_redirect_http, err) < 0)
        return -1;
    if (cfg->tls_redirect_http && !cfg->tls_cert_file)
        return co_err_field(err, CO_E_INVAL, "TLS_REDIRECT_HTTP",
                            "TLS_REDIRECT_HTTP needs TLS_CERT_FILE and TLS_KEY_FILE");
    return 0;
}

/*
 * Secure defaults: an ADMIN_TOKEN that is short or the placeholder of .env.example is refused
 * unless DEBUG=true (development).  The message never shows the token.
 */
static int
cfg_check_admin_token(const struct coord_config *cfg, co_err *err)
{
    if (cfg->admin_generated || cfg->debug)
        return 0;
    size_t len = strlen(cfg->admin_token);
    if (co_consttime_eq(cfg->admin_token, len, COORD_ADMIN_TOKEN_PLACEHOLDER,
                        strlen(COORD_ADMIN_TOKEN_PLACEHOLDER)))
        return co_err_field(err, CO_E_INVAL, "ADMIN_TOKEN",
                            "invalid ADMIN_TOKEN: it is the placeholder of .env.example; set a "
                            "long random value (e.g. openssl rand -hex 32), or unset it to get "
                            "a generated one, or set DEBUG=true for development");
    if (len < COORD_ADMIN_TOKEN_MIN)
        return co_err_field(err, CO_E_INVAL, "ADMIN_TOKEN",
                            "invalid ADMIN_TOKEN: %zu characters, at least %d are required "
                            "(e.g. openssl rand -hex 32), or set DEBUG=true for development",
                            len, COORD_ADMIN_TOKEN_MIN);
    return 0;
}

/*
 * PRICING and its prices: metered prices whose hold for the largest job (MAX_JOB_CORES,
 * MAX_JOB_RAM_MB, the longest timeout_seconds) overflows int64 stop the start.
 */
static int
cfg_load_pricing(struct coord_config *cfg, co_err *err)
{
    const char *mode = co_config_str("PRICING", "flat");
    cfg->pricing = coord_pricing_parse(mode);
    if (cfg->pricing < 0)
        return co_err_field(err, CO_E_INVAL, "PRICING",
                            "invalid PRICING '%s': one of flat, metered, market", mode);
    if (co_config_credits("PRICE_PER_CORE_SECOND", "0.0001", INT64_MAX, &cfg->price_per_core_second,
                          err) < 0 ||
        co_config_credits("PRICE_PER_GB_SECOND", "0.00005", INT64_MAX, &cfg->price_per_gb_second,
                          err) < 0 ||
        co_config_int("PLATFORM_FEE_PERCENT", 0, 0, 100, &cfg->platform_fee_percent, err) < 0)
        return -1;
    struct coord_rate rate = {cfg->price_per_core_second, cfg->price_per_gb_second};
    if (cfg->pricing == COORD_PRICING_METERED &&
        coord_price_check_rate(&rate, cfg->max_job_cores, cfg->max_job_ram_mb, PROTO_TIMEOUT_MAX,
                               "PRICE_PER_CORE_SECOND", "PRICE_PER_GB_SECOND", err) < 0)
        return -1;
    return 0;
}

int
coord_config_load(struct coord_config *cfg, co_err *err)
{
    int64_t v;
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = co_xstrdup(co_config_str("HOST", "0.0.0.0"));
    if (co_config_int("PORT", 8000, 1, 65535, &v, err) < 0)
        goto fail;
    cfg->port = (int)v;
    if (co_config_bool("DEBUG", false, &cfg->debug, err) < 0)
        goto fail;
    cfg->admin_token = cfg_strdup_or_null("ADMIN_TOKEN");
    if (!cfg->admin_token) {
        char hex[65];
        co_random_hex(hex, 32);
        cfg->admin_token = co_xstrdup(hex);
        cfg->admin_generated = true;
    }
    if (cfg_check_admin_token(cfg, err) < 0)
        goto fail;
    cfg->agent_token = cfg_strdup_or_null("AGENT_TOKEN");
    cfg->database_url = cfg_strdup_or_null("DATABASE_URL");
    if (co_config_credits("COST_PER_CORE", "0.1", INT64_C(1000000) * CO_MICRO, &cfg->cost_per_core,
                          err) < 0)
        goto fail;
    if (co_config_credits("COST_PER_100MB_RAM", "0.001", INT64_C(1000000) * CO_MICRO,
                          &cfg->cost_per_100mb_ram, err) < 0)
        goto fail;
    if (co_config_credits("DEFAULT_STARTING_CREDITS", "100", INT64_C(1000000000000) * CO_MICRO,
                          &cfg->starting_credits, err) < 0)
        goto fail;
    if (co_config_int("WORKER_TIMEOUT_SECONDS", 60, 1, 86400, &cfg->worker_timeout_seconds, err) <
        0)
        goto fail;
    if (co_config_int("MAX_WORKERS", 10000, 1, 1000000, &cfg->max_workers, err) < 0)
        goto fail;
    if (co_config_int("RETENTION_DAYS", 30, 1, 36500, &cfg->retention_days, err) < 0 ||
        co_config_int("RETENTION_INTERVAL_SECONDS", 3600, 1, 7 * 86400,
                      &cfg->retention_interval_seconds, err) < 0 ||
        co_config_int("RETENTION_BATCH", 500, 1, 100000, &cfg->retention_batch, err) < 0)
        goto fail;
    if (co_config_int("TIMEOUT_GRACE_SECONDS", 30, 0, 86400, &cfg->timeout_grace_seconds, err) < 0)
        goto fail;
    if (co_config_int("QUARANTINE_SECONDS", 600, 1, 86400 * 7, &cfg->quarantine_seconds, err) < 0)
        goto fail;
    if (co_log_parse_level(co_config_str("LOG_LEVEL", "INFO"), &cfg->log_level, err) < 0) {
        co_err_field(err, err->code, "LOG_LEVEL", "invalid LOG_LEVEL '%s': %s",
                     co_config_str("LOG_LEVEL", "INFO"), err->msg);
        goto fail;
    }
    cfg->log_file = cfg_strdup_or_null("LOG_FILE");
    cfg->record_answers = cfg_strdup_or_null("RECORD_ANSWERS");
    if (cfg_parse_cors(cfg, err) < 0)
        goto fail;
    if (co_config_size("MAX_BODY_BYTES", INT64_C(16) << 20, 1024, INT64_C(64) << 20,
                       &cfg->max_body_bytes, err) < 0)
        goto fail;
    if (co_config_size("MAX_JOB_FILES_BYTES", PROTO_FILES_BYTES_DEFAULT, 1024,
                       PROTO_FILES_BYTES_MAX, &cfg->max_job_files_bytes, err) < 0)
        goto fail;
    if (co_config_size("MAX_ARTIFACT_BYTES", COORD_ARTIFACT_BYTES_DEFAULT, 0, INT64_C(1) << 40,
                       &cfg->max_artifact_bytes, err) < 0)
        goto fail;
    if (co_config_int("MAX_JOB_CORES", 256, 1, 1 << 20, &cfg->max_job_cores, err) < 0)
        goto fail;
    if (co_config_int("MAX_JOB_RAM_MB", INT64_C(1) << 20, 1, INT64_C(1) << 40, &cfg->max_job_ram_mb,
                      err) < 0)
        goto fail;
    if (co_config_int("DB_THREADS", 0, 0, 64, &cfg->db_threads, err) < 0)
        goto fail;
    /* Limits per user (API.md "Limits"; coord_limits.h). */
    if (co_config_credits("RATE_SUBMIT_PER_SECOND", "100", INT64_C(1000000) * CO_MICRO, &v, err) <
        0)
        goto fail;
    cfg->rate_submit_per_second = (double)v / CO_MICRO;
    if (co_config_int("MAX_PENDING_JOBS", 10000, 0, INT64_C(1000000000), &cfg->max_pending_jobs,
                      err) < 0)
        goto fail;
    if (co_config_int("MAX_RUNNING_JOBS", 0, 0, INT64_C(1000000000), &cfg->max_running_jobs, err) <
        0)
        goto fail;
    if (co_config_int("AUTH_FAILURES_PER_MINUTE", COORD_AUTH_FAIL_MAX, 0, 1000000,
                      &cfg->auth_failures_per_minute, err) < 0)
        goto fail;
    if (co_config_int("DASHBOARD_QUEUE_MESSAGES", COORD_DASH_QUEUE_MSGS, 4, 1 << 20,
                      &cfg->dash_queue_messages, err) < 0)
        goto fail;
    if (co_config_size("DASHBOARD_QUEUE_BYTES", COORD_DASH_QUEUE_BYTES, 65536, INT64_C(1) << 32,
                       &cfg->dash_queue_bytes, err) < 0)
        goto fail;
    if (co_config_int("DASHBOARD_SLOW_CLOSE_SECONDS", COORD_DASH_SLOW_CLOSE_MS / 1000, 1, 3600,
                      &cfg->dash_slow_close_ms, err) < 0)
        goto fail;
    cfg->dash_slow_close_ms *= 1000;
    if (co_config_int("DASHBOARD_BATCH_MS", COORD_DASH_BATCH_MS, 0, 10000, &cfg->dash_batch_ms,
                      err) < 0)
        goto fail;
    cfg->agent_token_owner = co_xstrdup(co_config_str("AGENT_TOKEN_OWNER", "platform"));
    if (!co_id_valid(cfg->agent_token_owner)) {
        co_err_field(err, CO_E_INVAL, "AGENT_TOKEN_OWNER",
                     "invalid AGENT_TOKEN_OWNER '%s': 1-64 characters of A-Z a-z 0-9 . _ -",
                     cfg->agent_token_owner);
        goto fail;
    }
    if (co_config_bool("OPEN_REGISTRATION", false, &cfg->open_registration, err) < 0)
        goto fail;
    if (cfg_load_tls(cfg, err) < 0 || cfg_load_pricing(cfg, err) < 0 ||
        cfg_load_webhook(cfg, err) < 0)
        goto fail;
    cfg->frontend_dir = cfg_frontend_dir();
    /* Unset: the migrations compiled into the binary (store_migrations.h). */
    cfg->sql_dir = cfg_strdup_or_null("SQL_DIR");
    return 0;
fail:
    coord_config_release(cfg);
    return -1;
}

void
coord_config_release(struct coord_config *cfg)
{
    free(cfg->host);
    free(cfg->admin_token);
    free(cfg->agent_token);
    free(cfg->database_url);
    free(cfg->log_file);
    free(cfg->record_answers);
    free(cfg->frontend_dir);
    free(cfg->sql_dir);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->agent_token_owner);
    free(cfg->webhook_debug_hosts);
    for (int i = 0; i < cfg->n_cors; i++)
        free(cfg->cors[i]);
    memset(cfg, 0, sizeof(*cfg));
}

bool
coord_config_cors_allowed(const struct coord_config *cfg, const char *origin, size_t len)
{
    for (int i = 0; i < cfg->n_cors; i++) {
        if (strcmp(cfg->cors[i], "*") == 0)
            return true;
        if (strlen(cfg->cors[i]) == len && memcmp(cfg->cors[i], origin, len) == 0)
            return true;
    }
    return false;
}
