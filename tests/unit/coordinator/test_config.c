/* Unit tests of coordinator/coord_config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_credits.h"
#include "coord_config.h"

static const char *const vars[] = {"HOST",
                                   "PORT",
                                   "DEBUG",
                                   "ADMIN_TOKEN",
                                   "AGENT_TOKEN",
                                   "DATABASE_URL",
                                   "COST_PER_CORE",
                                   "COST_PER_100MB_RAM",
                                   "DEFAULT_STARTING_CREDITS",
                                   "WORKER_TIMEOUT_SECONDS",
                                   "MAX_WORKERS",
                                   "LOG_LEVEL",
                                   "LOG_FILE",
                                   "CORS_ORIGINS",
                                   "MAX_BODY_BYTES",
                                   "MAX_JOB_FILES_BYTES",
                                   "MAX_ARTIFACT_BYTES",
                                   "MAX_JOB_CORES",
                                   "MAX_JOB_RAM_MB",
                                   "RATE_SUBMIT_PER_SECOND",
                                   "MAX_PENDING_JOBS",
                                   "MAX_RUNNING_JOBS",
                                   "AUTH_FAILURES_PER_MINUTE",
                                   "FRONTEND_DIR",
                                   "SQL_DIR",
                                   "DB_THREADS",
                                   "DASHBOARD_QUEUE_MESSAGES",
                                   "DASHBOARD_QUEUE_BYTES",
                                   "DASHBOARD_SLOW_CLOSE_SECONDS",
                                   "DASHBOARD_BATCH_MS"};

static int
clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    return 0;
}

static void
test_defaults(void **state)
{
    (void)state;
    struct coord_config c;
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_config_load(&c, &err), 0);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 8000);
    assert_true(c.admin_generated);
    assert_int_equal(strlen(c.admin_token), 64);
    assert_null(c.agent_token);
    assert_null(c.database_url);
    assert_int_equal(c.cost_per_core, 100000);
    assert_int_equal(c.cost_per_100mb_ram, 1000);
    assert_int_equal(c.starting_credits, 100 * CO_MICRO);
    assert_int_equal(c.worker_timeout_seconds, 60);
    assert_int_equal(c.max_workers, 10000);
    assert_int_equal(c.max_body_bytes, 16 << 20);
    assert_int_equal(c.max_job_files_bytes, 8 << 20);
    assert_int_equal(c.max_artifact_bytes, INT64_C(64) << 20);
    assert_int_equal(c.dash_queue_messages, 1024);
    assert_int_equal(c.dash_queue_bytes, 4 << 20);
    assert_int_equal(c.dash_slow_close_ms, 10000);
    assert_int_equal(c.dash_batch_ms, 100);
    assert_true(c.rate_submit_per_second == 100.0);
    assert_int_equal(c.max_pending_jobs, 10000);
    assert_int_equal(c.max_running_jobs, 0);
    assert_int_equal(c.auth_failures_per_minute, 20);
    assert_int_equal(c.n_cors, 1);
    assert_true(coord_config_cors_allowed(&c, "http://localhost:5173", 21));
    assert_false(coord_config_cors_allowed(&c, "http://localhost:5174", 21));
    coord_config_release(&c);
}

static void
test_values_and_cors(void **state)
{
    (void)state;
    setenv("PORT", "9001", 1);
    setenv("ADMIN_TOKEN", "tok-0123456789abcdef-0123", 1);
    setenv("AGENT_TOKEN", "ag", 1);
    setenv("COST_PER_CORE", "0.25", 1);
    setenv("MAX_BODY_BYTES", "64K", 1);
    setenv("CORS_ORIGINS", " https://a.example/ , http://b.example:8080,,", 1);
    struct coord_config c;
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_config_load(&c, &err), 0);
    assert_int_equal(c.port, 9001);
    assert_false(c.admin_generated);
    assert_string_equal(c.admin_token, "tok-0123456789abcdef-0123");
    assert_string_equal(c.agent_token, "ag");
    assert_int_equal(c.cost_per_core, 250000);
    assert_int_equal(c.max_body_bytes, 65536);
    assert_int_equal(c.n_cors, 2);
    assert_true(coord_config_cors_allowed(&c, "https://a.example", 17));
    assert_true(coord_config_cors_allowed(&c, "http://b.example:8080", 21));
    assert_false(coord_config_cors_allowed(&c, "https://a.exampl", 16));
    coord_config_release(&c);
}

static void
test_errors_name_the_variable(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"PORT", "abc"},
        {"PORT", "0"},
        {"PORT", "65536"},
        {"MAX_WORKERS", "-1"},
        {"COST_PER_CORE", "x"},
        {"COST_PER_CORE", "0.0000001"},
        {"LOG_LEVEL", "LOUD"},
        {"DEBUG", "maybe"},
        {"MAX_BODY_BYTES", "12Q"},
        {"MAX_JOB_FILES_BYTES", "9MiB"},
        {"WORKER_TIMEOUT_SECONDS", "0"},
        {"DASHBOARD_BATCH_MS", "abc"},
        {"DASHBOARD_QUEUE_MESSAGES", "1"},
        {"DASHBOARD_QUEUE_BYTES", "1K"},
        {"DASHBOARD_SLOW_CLOSE_SECONDS", "0"},
        {"RATE_SUBMIT_PER_SECOND", "-1"},
        {"MAX_PENDING_JOBS", "x"},
        {"MAX_RUNNING_JOBS", "-2"},
        {"ADMIN_TOKEN", "short-token"},
        {"ADMIN_TOKEN", "change_me_to_a_long_random_string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clean_env(NULL);
        setenv(bad[i][0], bad[i][1], 1);
        struct coord_config c;
        co_err err = CO_ERR_INIT;
        assert_int_equal(coord_config_load(&c, &err), -1);
        if (!strstr(err.msg, bad[i][0]))
            fail_msg("%s=%s: message '%s' does not name it", bad[i][0], bad[i][1], err.msg);
    }
}

/* Secure defaults: a weak ADMIN_TOKEN is refused unless DEBUG=true; the message hides it. */
static void
test_admin_token_rules(void **state)
{
    (void)state;
    struct coord_config c;
    co_err err = CO_ERR_INIT;
    setenv("ADMIN_TOKEN", "0123456789abcdefghijklm", 1); /* 23 characters */
    assert_int_equal(coord_config_load(&c, &err), -1);
    assert_non_null(strstr(err.msg, "at least 24"));
    assert_null(strstr(err.msg, "0123456789abcdefghijklm"));
    setenv("ADMIN_TOKEN", "0123456789abcdefghijklmn", 1); /* 24 */
    assert_int_equal(coord_config_load(&c, &err), 0);
    coord_config_release(&c);
    setenv("ADMIN_TOKEN", "change_me_to_a_long_random_string", 1);
    assert_int_equal(coord_config_load(&c, &err), -1);
    assert_non_null(strstr(err.msg, "placeholder"));
    assert_null(strstr(err.msg, "change_me"));
    setenv("DEBUG", "true", 1);
    assert_int_equal(coord_config_load(&c, &err), 0);
    coord_config_release(&c);
    setenv("ADMIN_TOKEN", "x", 1);
    assert_int_equal(coord_config_load(&c, &err), 0);
    coord_config_release(&c);
    unsetenv("ADMIN_TOKEN"); /* generated: always fine */
    unsetenv("DEBUG");
    assert_int_equal(coord_config_load(&c, &err), 0);
    assert_true(c.admin_generated && strlen(c.admin_token) >= 24);
    coord_config_release(&c);
    setenv("RATE_SUBMIT_PER_SECOND", "0.5", 1);
    assert_int_equal(coord_config_load(&c, &err), 0);
    assert_true(c.rate_submit_per_second == 0.5);
    coord_config_release(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_values_and_cors, clean_env),
        cmocka_unit_test_setup(test_errors_name_the_variable, clean_env),
        cmocka_unit_test_setup(test_admin_token_rules, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
