#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <unistd.h>

#include "co_config.h"

static char envfile[] = "/tmp/co_test_env_XXXXXX";

static void
write_env(const char *text)
{
    int fd = mkstemp(envfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void
test_env_file(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    unsetenv("CO_T_A");
    unsetenv("CO_T_B");
    unsetenv("CO_T_C");
    unsetenv("CO_T_D");
    setenv("CO_T_KEEP", "from-env", 1);
    write_env("# comment\n\nCO_T_A=1\nexport CO_T_B = \"two words\"\nCO_T_C='x#y'\n"
              "CO_T_D=val # trailing comment\nCO_T_KEEP=from-file\n");
    assert_int_equal(co_config_load_env_file(envfile, false, &err), 0);
    unlink(envfile);
    assert_string_equal(getenv("CO_T_A"), "1");
    assert_string_equal(getenv("CO_T_B"), "two words");
    assert_string_equal(getenv("CO_T_C"), "x#y");
    assert_string_equal(getenv("CO_T_D"), "val");
    assert_string_equal(getenv("CO_T_KEEP"), "from-env"); /* the environment wins */
}

static void
test_env_file_errors(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    assert_int_equal(co_config_load_env_file("/nonexistent/.env", true, &err), 0);
    assert_int_equal(co_config_load_env_file("/nonexistent/.env", false, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/.env"));
    memcpy(envfile + strlen(envfile) - 6, "XXXXXX", 6);
    write_env("JUSTAWORD\n");
    assert_int_equal(co_config_load_env_file(envfile, false, &err), -1);
    assert_non_null(strstr(err.msg, "line 1"));
    unlink(envfile);
    memcpy(envfile + strlen(envfile) - 6, "XXXXXX", 6);
    write_env("BAD-NAME=1\n");
    assert_int_equal(co_config_load_env_file(envfile, false, &err), -1);
    unlink(envfile);
}

static void
test_int(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    unsetenv("PORT");
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), 0);
    assert_int_equal(v, 8000);
    setenv("PORT", "9001", 1);
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), 0);
    assert_int_equal(v, 9001);
    setenv("PORT", "abc", 1);
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), -1);
    assert_string_equal(err.msg, "invalid PORT 'abc': not an integer");
    assert_string_equal(err.field, "PORT");
    setenv("PORT", "70000", 1);
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), -1);
    assert_int_equal(err.code, CO_E_RANGE);
    assert_non_null(strstr(err.msg, "PORT"));
    setenv("PORT", "12abc", 1);
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), -1);
    setenv("PORT", "99999999999999999999999", 1);
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), -1);
    setenv("PORT", "", 1);
    assert_int_equal(co_config_int("PORT", 8000, 1, 65535, &v, &err), 0);
    assert_int_equal(v, 8000);
    unsetenv("PORT");
}

static void
test_bool(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    bool b;
    setenv("DEBUG", "True", 1);
    assert_int_equal(co_config_bool("DEBUG", false, &b, &err), 0);
    assert_true(b);
    setenv("DEBUG", "off", 1);
    assert_int_equal(co_config_bool("DEBUG", true, &b, &err), 0);
    assert_false(b);
    setenv("DEBUG", "maybe", 1);
    assert_int_equal(co_config_bool("DEBUG", true, &b, &err), -1);
    assert_non_null(strstr(err.msg, "DEBUG"));
    unsetenv("DEBUG");
    assert_int_equal(co_config_bool("DEBUG", true, &b, &err), 0);
    assert_true(b);
}

static void
test_credits(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    unsetenv("COST_PER_CORE");
    assert_int_equal(co_config_credits("COST_PER_CORE", "0.1", INT64_MAX, &v, &err), 0);
    assert_int_equal(v, 100000);
    setenv("COST_PER_CORE", "0.001", 1);
    assert_int_equal(co_config_credits("COST_PER_CORE", "0.1", INT64_MAX, &v, &err), 0);
    assert_int_equal(v, 1000);
    setenv("COST_PER_CORE", "-1", 1);
    assert_int_equal(co_config_credits("COST_PER_CORE", "0.1", INT64_MAX, &v, &err), -1);
    assert_non_null(strstr(err.msg, "COST_PER_CORE"));
    setenv("COST_PER_CORE", "0.0000001", 1);
    assert_int_equal(co_config_credits("COST_PER_CORE", "0.1", INT64_MAX, &v, &err), -1);
    assert_non_null(strstr(err.msg, "more than 6 decimals"));
    setenv("COST_PER_CORE", "free", 1);
    assert_int_equal(co_config_credits("COST_PER_CORE", "0.1", INT64_MAX, &v, &err), -1);
    unsetenv("COST_PER_CORE");
}

static void
test_sizes_and_durations(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    assert_int_equal(co_parse_size("1048576", "s", &v, &err), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(co_parse_size("64K", "s", &v, &err), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(co_parse_size("256M", "s", &v, &err), 0);
    assert_int_equal(v, 256 << 20);
    assert_int_equal(co_parse_size("1GiB", "s", &v, &err), 0);
    assert_int_equal(v, 1 << 30);
    assert_int_equal(co_parse_size("1MB", "s", &v, &err), 0);
    assert_int_equal(co_parse_size("1X", "s", &v, &err), -1);
    assert_int_equal(co_parse_size("-1", "s", &v, &err), -1);
    assert_int_equal(co_parse_size("", "s", &v, &err), -1);
    assert_int_equal(co_parse_size("99999999999T", "s", &v, &err), -1);
    setenv("MAX_BODY_BYTES", "2M", 1);
    assert_int_equal(co_config_size("MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30, &v, &err), 0);
    assert_int_equal(v, 2 << 20);
    setenv("MAX_BODY_BYTES", "1", 1);
    assert_int_equal(co_config_size("MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30, &v, &err), -1);
    unsetenv("MAX_BODY_BYTES");

    assert_int_equal(co_parse_duration_ms("10s", "t", &v, &err), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(co_parse_duration_ms("250ms", "t", &v, &err), 0);
    assert_int_equal(v, 250);
    assert_int_equal(co_parse_duration_ms("0.2s", "t", &v, &err), 0);
    assert_int_equal(v, 200);
    assert_int_equal(co_parse_duration_ms("2m", "t", &v, &err), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(co_parse_duration_ms("1h", "t", &v, &err), 0);
    assert_int_equal(v, 3600000);
    assert_int_equal(co_parse_duration_ms("1.5", "t", &v, &err), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(co_parse_duration_ms("10x", "t", &v, &err), -1);
    assert_int_equal(co_parse_duration_ms("s", "t", &v, &err), -1);
    assert_int_equal(co_parse_duration_ms("1..2s", "t", &v, &err), -1);
}

static void
test_parse_int(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    assert_int_equal(co_parse_int("-5", "n", -10, 10, &v, &err), 0);
    assert_int_equal(v, -5);
    assert_int_equal(co_parse_int("11", "n", -10, 10, &v, &err), -1);
    assert_int_equal(co_parse_int("1.5", "n", -10, 10, &v, &err), -1);
    assert_string_equal(co_config_str("CO_T_UNSET_X", "dflt"), "dflt");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_file),  cmocka_unit_test(test_env_file_errors),
        cmocka_unit_test(test_int),       cmocka_unit_test(test_bool),
        cmocka_unit_test(test_credits),   cmocka_unit_test(test_sizes_and_durations),
        cmocka_unit_test(test_parse_int),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
