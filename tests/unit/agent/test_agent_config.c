/* Unit tests for agent/agent_config.c: settings from the environment and defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_config.h"
#include "co_alloc.h"

static const char *const vars[] = {
    "COORDINATOR_URL",
    "AGENT_TOKEN",
    "AGENT_KEY",
    "WORKER_ID",
    "OWNER_ID",
    "AGENT_CORES",
    "AGENT_RAM_MB",
    "AGENT_IMAGES",
    "AGENT_WORK_ROOT",
    "AGENT_GRACE_SECONDS",
    "LOG_LEVEL",
    "LOG_FILE",
    "AGENT_BENCH_NO_SANDBOX",
    "AGENT_OUTPUT_LIMIT",
    "AGENT_JOB_PIDS",
    "AGENT_AUTH_RETRY_SECONDS",
    "AGENT_EXIT_ON_AUTH_ERROR",
};

static const struct agent_host_caps caps = {.cpus = 2, .mem_total_mb = 24000, .hostname = "box-1"};

static int
reset_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("COORDINATOR_URL", "ws://127.0.0.1:8000/ws/agent", 1);
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/seller", 1);
    return 0;
}

/* Root keeps /var/lib; another user gets a folder of its own, XDG_STATE_HOME first. */
static void
test_default_work_root(void **state)
{
    (void)state;
    char *root = NULL;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_default_work_root(0, "/x/state", "/root", &root, &err), 0);
    assert_string_equal(root, "/var/lib/cacheout-agent");
    free(root);
    assert_int_equal(agent_default_work_root(1000, "/x/state", "/home/s", &root, &err), 0);
    assert_string_equal(root, "/x/state/cacheout-agent");
    free(root);
    assert_int_equal(agent_default_work_root(1000, NULL, "/home/s", &root, &err), 0);
    assert_string_equal(root, "/home/s/.local/state/cacheout-agent");
    free(root);
    /* A relative or empty XDG_STATE_HOME is ignored, as the XDG rules say. */
    assert_int_equal(agent_default_work_root(1000, "state", "/home/s", &root, &err), 0);
    assert_string_equal(root, "/home/s/.local/state/cacheout-agent");
    free(root);
    assert_int_equal(agent_default_work_root(1000, "", "/home/s", &root, &err), 0);
    assert_string_equal(root, "/home/s/.local/state/cacheout-agent");
    free(root);
    assert_int_equal(agent_default_work_root(1000, NULL, "/", &root, &err), 0);
    assert_string_equal(root, "/.local/state/cacheout-agent");
    free(root);
    /* Neither: an error naming the setting to use instead. */
    assert_int_equal(agent_default_work_root(1000, NULL, NULL, &root, &err), -1);
    assert_null(root);
    assert_string_equal(err.field, "AGENT_WORK_ROOT");
    assert_non_null(strstr(err.msg, "AGENT_WORK_ROOT"));
    assert_int_equal(agent_default_work_root(1000, "rel", "also-rel", &root, &err), -1);
    assert_null(root);
}

/* agent_config_load uses the default only when AGENT_WORK_ROOT is unset. */
static void
test_work_root_env(void **state)
{
    (void)state;
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    setenv("XDG_STATE_HOME", "/srv/state", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.work_root,
                        geteuid() == 0 ? AGENT_DEFAULT_WORK_ROOT : "/srv/state/cacheout-agent");
    agent_config_release(&cfg);
    setenv("AGENT_WORK_ROOT", "/given", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.work_root, "/given");
    agent_config_release(&cfg);
    if (geteuid() != 0) {
        unsetenv("AGENT_WORK_ROOT");
        unsetenv("XDG_STATE_HOME");
        unsetenv("HOME");
        assert_int_equal(agent_config_load(&cfg, &caps, &err), -1);
        assert_string_equal(err.field, "AGENT_WORK_ROOT");
    }
}

static void
test_defaults(void **state)
{
    (void)state;
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_false(cfg.tls);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 8000);
    assert_string_equal(cfg.path, "/ws/agent");
    assert_string_equal(cfg.token, "");
    assert_string_equal(cfg.worker_id, "box-1");
    assert_string_equal(cfg.owner_id, "box-1");
    /* All cores: a 2-core host must be able to take a 2-core job. */
    assert_int_equal(cfg.cores, 2);
    assert_int_equal(cfg.ram_mb, 24000 - 2400);
    assert_int_equal(cfg.n_images, 1);
    assert_string_equal(cfg.images[0], "default");
    /* Root's default here; another user's comes from its HOME (see test_default_work_root). */
    if (geteuid() == 0)
        assert_string_equal(cfg.work_root, AGENT_DEFAULT_WORK_ROOT);
    else
        assert_string_equal(cfg.work_root, "/home/seller/.local/state/cacheout-agent");
    assert_int_equal(cfg.grace_seconds, 30);
    assert_false(cfg.bench_no_sandbox);
    assert_false(cfg.exit_on_auth_error);
    assert_int_equal(cfg.log_level, CO_LOG_INFO);
    assert_null(cfg.log_file);
    agent_config_release(&cfg);
}

static void
test_explicit(void **state)
{
    (void)state;
    setenv("COORDINATOR_URL", "wss://coord.example.org", 1);
    setenv("AGENT_TOKEN", "tok", 1);
    setenv("WORKER_ID", "w-9", 1);
    setenv("OWNER_ID", "seller_1", 1);
    setenv("AGENT_CORES", "8", 1);
    setenv("AGENT_RAM_MB", "4096", 1);
    setenv("AGENT_IMAGES", " default , python3,default,", 1);
    setenv("AGENT_WORK_ROOT", "/srv/agent", 1);
    setenv("AGENT_GRACE_SECONDS", "5", 1);
    setenv("AGENT_BENCH_NO_SANDBOX", "yes", 1);
    setenv("LOG_LEVEL", "debug", 1);
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_true(cfg.tls);
    assert_string_equal(cfg.host, "coord.example.org");
    assert_int_equal(cfg.port, 443);
    assert_string_equal(cfg.path, "/ws/agent");
    assert_string_equal(cfg.token, "tok");
    assert_string_equal(cfg.worker_id, "w-9");
    assert_string_equal(cfg.owner_id, "seller_1");
    assert_int_equal(cfg.cores, 8);
    assert_int_equal(cfg.ram_mb, 4096);
    assert_int_equal(cfg.n_images, 2);
    assert_string_equal(cfg.images[1], "python3");
    assert_true(agent_config_has_image(&cfg, "python3"));
    assert_false(agent_config_has_image(&cfg, "python"));
    assert_string_equal(cfg.work_root, "/srv/agent");
    assert_int_equal(cfg.grace_seconds, 5);
    assert_true(cfg.bench_no_sandbox);
    assert_int_equal(cfg.log_level, CO_LOG_DEBUG);
    agent_config_release(&cfg);
}

/* Each bad value fails and the error names its variable. */
static void
check_bad(const char *var, const char *value)
{
    reset_env(NULL);
    setenv(var, value, 1);
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &caps, &err), -1);
    if (!strstr(err.msg, var))
        fail_msg("error for %s='%s' does not name it: %s", var, value, err.msg);
    assert_null(cfg.url); /* released on error */
}

static void
test_bad_values(void **state)
{
    (void)state;
    check_bad("COORDINATOR_URL", "ftp://x");
    check_bad("COORDINATOR_URL", "ws://");
    check_bad("COORDINATOR_URL", "ws://host:0/");
    check_bad("COORDINATOR_URL", "ws://host:99999/");
    /* A list: every entry is checked, an empty one too. */
    check_bad("COORDINATOR_URL", "ws://a:1,ftp://b");
    check_bad("COORDINATOR_URL", "ws://a:1,,ws://b:2");
    check_bad("COORDINATOR_URL", "ws://a:1,");
    check_bad("COORDINATOR_URL", "ws://a:1,ws://b:0");
    check_bad("COORDINATOR_URL",
              "ws://a,ws://a,ws://a,ws://a,ws://a,ws://a,ws://a,ws://a,ws://a,ws://a,ws://a,"
              "ws://a,ws://a,ws://a,ws://a,ws://a,ws://a");
    check_bad("COORDINATOR_URL", "ws://host:12ab/");
    check_bad("COORDINATOR_URL", "ws://us er@host/");
    check_bad("COORDINATOR_URL", "ws://user@host/");
    check_bad("WORKER_ID", "has space");
    check_bad("WORKER_ID", "a/b");
    check_bad("OWNER_ID", "x;y");
    check_bad("AGENT_CORES", "0");
    check_bad("AGENT_CORES", "two");
    check_bad("AGENT_RAM_MB", "-1");
    check_bad("AGENT_IMAGES", "ok,not ok");
    check_bad("AGENT_IMAGES", ",,");
    check_bad("AGENT_WORK_ROOT", "relative/dir");
    check_bad("AGENT_GRACE_SECONDS", "-3");
    check_bad("AGENT_BENCH_NO_SANDBOX", "maybe");
    check_bad("LOG_LEVEL", "loud");
    check_bad("AGENT_OUTPUT_LIMIT", "lots");

    reset_env(NULL);
    unsetenv("COORDINATOR_URL");
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &caps, &err), -1);
    assert_non_null(strstr(err.msg, "COORDINATOR_URL"));
}

/* AGENT_KEY: kept as given, "" when unset; a bad one is refused without echoing it. */
static void
test_agent_key(void **state)
{
    (void)state;
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.key, "");
    agent_config_release(&cfg);
    setenv("AGENT_KEY", "co_abcDEF-123_xyz", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.key, "co_abcDEF-123_xyz");
    assert_string_equal(cfg.token, "");
    agent_config_release(&cfg);
    check_bad("AGENT_KEY", "co_secret with-space");
    setenv("AGENT_KEY", "co_secret\tpart", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), -1);
    assert_null(strstr(err.msg, "co_secret"));
}

static void
test_hostname_not_an_id(void **state)
{
    (void)state;
    struct agent_host_caps odd = caps;
    co_strlcpy(odd.hostname, "bad host", sizeof(odd.hostname));
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &odd, &err), -1);
    assert_non_null(strstr(err.msg, "WORKER_ID"));
    setenv("WORKER_ID", "fine", 1);
    assert_int_equal(agent_config_load(&cfg, &odd, &err), 0);
    assert_string_equal(cfg.worker_id, "fine");
    agent_config_release(&cfg);
}

static void
test_urls(void **state)
{
    (void)state;
    struct agent_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_parse_url(&cfg, "ws://h", &err), 0);
    assert_string_equal(cfg.host, "h");
    assert_int_equal(cfg.port, 80);
    assert_string_equal(cfg.path, "/ws/agent");
    assert_int_equal(agent_config_parse_url(&cfg, "http://h:8000/", &err), 0);
    assert_false(cfg.tls);
    assert_int_equal(cfg.port, 8000);
    assert_string_equal(cfg.path, "/ws/agent");
    assert_int_equal(agent_config_parse_url(&cfg, "https://h/custom/path?x=1#frag", &err), 0);
    assert_true(cfg.tls);
    assert_int_equal(cfg.port, 443);
    assert_string_equal(cfg.path, "/custom/path?x=1");
    assert_int_equal(agent_config_parse_url(&cfg, "ws://[::1]:9000/ws/agent", &err), 0);
    assert_string_equal(cfg.host, "::1");
    assert_int_equal(cfg.port, 9000);
    assert_int_equal(agent_config_parse_url(&cfg, "ws://[::1/x", &err), -1);
    agent_config_release(&cfg);
}

/* COORDINATOR_URL as a list: every entry parsed, in order; the first one is cfg.url. */
static void
test_url_list(void **state)
{
    (void)state;
    reset_env(NULL);
    setenv("COORDINATOR_URL", "ws://c1:8000 , wss://[::1]:9443/x,ws://c3", 1);
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_int_equal(cfg.n_urls, 3);
    assert_string_equal(cfg.urls[0].url, "ws://c1:8000");
    assert_string_equal(cfg.urls[0].host, "c1");
    assert_int_equal(cfg.urls[0].port, 8000);
    assert_false(cfg.urls[0].tls);
    assert_string_equal(cfg.urls[1].host, "::1");
    assert_int_equal(cfg.urls[1].port, 9443);
    assert_string_equal(cfg.urls[1].path, "/x");
    assert_true(cfg.urls[1].tls);
    assert_string_equal(cfg.urls[2].path, "/ws/agent");
    assert_int_equal(cfg.urls[2].port, 80);
    assert_true(cfg.any_tls);
    assert_string_equal(cfg.url, "ws://c1:8000");
    assert_string_equal(cfg.host, "c1");
    agent_config_release(&cfg);
    assert_null(cfg.urls);

    setenv("COORDINATOR_URL", "ws://only", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_int_equal(cfg.n_urls, 1);
    assert_false(cfg.any_tls);
    assert_string_equal(cfg.urls[0].host, "only");
    agent_config_release(&cfg);

    /* The error names the bad entry. */
    setenv("COORDINATOR_URL", "ws://good:1,http//bad", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), -1);
    assert_non_null(strstr(err.msg, "http//bad"));
}

static void
test_default_ram(void **state)
{
    (void)state;
    assert_int_equal(agent_default_ram_mb(24000), 21600); /* 10% reserve */
    assert_int_equal(agent_default_ram_mb(2048), 1536);   /* 512 MiB reserve */
    assert_int_equal(agent_default_ram_mb(300), 1);       /* never below 1 */
}

static void
test_detect(void **state)
{
    (void)state;
    struct agent_host_caps c;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_host_caps_detect(&c, &err), 0);
    assert_true(c.cpus >= 1);
    assert_true(c.mem_total_mb >= 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, reset_env),
        cmocka_unit_test_setup(test_explicit, reset_env),
        cmocka_unit_test_setup(test_bad_values, reset_env),
        cmocka_unit_test_setup(test_hostname_not_an_id, reset_env),
        cmocka_unit_test_setup(test_agent_key, reset_env),
        cmocka_unit_test(test_default_work_root),
        cmocka_unit_test_setup(test_work_root_env, reset_env),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_url_list),
        cmocka_unit_test(test_default_ram),
        cmocka_unit_test(test_detect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
