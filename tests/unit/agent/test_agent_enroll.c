/*
 * Unit tests for agent/agent_enroll.c (the env file update; the HTTP check is covered by
 * tests/packaging against a stand-in /api/v1/me) and for TLS_CA_FILE in agent_config.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_config.h"
#include "agent_enroll.h"

static const char *const keys[] = {"COORDINATOR_URL", "AGENT_KEY", "TLS_CA_FILE"};
static const char *const values[] = {"wss://c.example:443/ws/agent", "k-1", "/etc/ca.pem"};

static void
check_update(const char *before, size_t n, const char *want)
{
    char *got = agent_enroll_env_update(before, keys, values, n);
    assert_string_equal(got, want);
    free(got);
}

/* Set keys replace their first line in place, later ones go, missing ones are appended. */
static void
test_env_update(void **state)
{
    (void)state;
    check_update(NULL, 2, "COORDINATOR_URL=wss://c.example:443/ws/agent\nAGENT_KEY=k-1\n");
    check_update("", 3,
                 "COORDINATOR_URL=wss://c.example:443/ws/agent\nAGENT_KEY=k-1\n"
                 "TLS_CA_FILE=/etc/ca.pem\n");
    check_update("# c\nAGENT_CORES=2\n  export AGENT_KEY=old\n#AGENT_KEY=x\nAGENT_KEY=again\n"
                 "COORDINATOR_URL = ws://old\nAGENT_KEYS=other",
                 2,
                 "# c\nAGENT_CORES=2\nAGENT_KEY=k-1\n#AGENT_KEY=x\n"
                 "COORDINATOR_URL=wss://c.example:443/ws/agent\nAGENT_KEYS=other\n");
    /* TLS_CA_FILE is left alone when not given. */
    check_update("TLS_CA_FILE=/keep.pem\n", 2,
                 "TLS_CA_FILE=/keep.pem\nCOORDINATOR_URL=wss://c.example:443/ws/agent\n"
                 "AGENT_KEY=k-1\n");
}

static struct agent_host_caps caps = {.cpus = 2, .mem_total_mb = 4096, .hostname = "h"};

static void
test_tls_ca_file(void **state)
{
    (void)state;
    struct agent_config cfg;
    co_err err = CO_ERR_INIT;
    setenv("COORDINATOR_URL", "wss://c.example/ws/agent", 1);
    setenv("AGENT_WORK_ROOT", "/srv/agent", 1);
    unsetenv("AGENT_TLS_CA_FILE");
    setenv("TLS_CA_FILE", "/dev/null", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.tls_ca_file, "/dev/null");
    agent_config_release(&cfg);

    /* The older name still works; the new one wins when both are set. */
    unsetenv("TLS_CA_FILE");
    setenv("AGENT_TLS_CA_FILE", "/dev/zero", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.tls_ca_file, "/dev/zero");
    agent_config_release(&cfg);
    setenv("TLS_CA_FILE", "/dev/null", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), 0);
    assert_string_equal(cfg.tls_ca_file, "/dev/null");
    agent_config_release(&cfg);

    /* Unreadable: the error names the variable that was set. */
    setenv("TLS_CA_FILE", "/nonexistent/ca.pem", 1);
    assert_int_equal(agent_config_load(&cfg, &caps, &err), -1);
    assert_non_null(strstr(err.msg, "TLS_CA_FILE '/nonexistent/ca.pem'"));
    unsetenv("TLS_CA_FILE");
    unsetenv("AGENT_TLS_CA_FILE");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_update),
        cmocka_unit_test(test_tls_ca_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
