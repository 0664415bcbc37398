/* Unit tests for the pure parts of libsandbox: spec defaults and validation, environment,
 * status names and the result JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_config.h"
#include "sbx.h"
#include "sbx_internal.h"

static const char *const argv_true[] = {"true", NULL};

static void
valid_spec(struct sbx_spec *s)
{
    sbx_spec_init(s);
    s->argv = argv_true;
}

static void
test_defaults(void **state)
{
    (void)state;
    struct sbx_spec s;
    sbx_spec_init(&s);
    assert_null(s.argv);
    assert_string_equal(s.image, "default");
    assert_int_equal(s.cores_milli, 1000);
    assert_int_equal(s.memory_bytes, 256 << 20);
    assert_int_equal(s.pids, 64);
    assert_int_equal(s.tmp_bytes, 64 << 20);
    assert_int_equal(s.work_bytes, 64 << 20);
    assert_int_equal(s.wall_ms, 10000);
    assert_int_equal(s.cpu_ms, 0);
    assert_int_equal(s.output_limit, 1 << 20);
    assert_int_equal(s.network, SBX_NET_NONE);
    assert_false(s.kill_on_output_limit);
    co_err err = CO_ERR_INIT;
    /* Without argv the defaults are not runnable. */
    assert_int_equal(sbx_spec_validate(&s, &err), -1);
    assert_string_equal(err.field, "argv");
    s.argv = argv_true;
    assert_int_equal(sbx_spec_validate(&s, &err), 0);
}

static void
expect_invalid(const struct sbx_spec *s, const char *field)
{
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_spec_validate(s, &err), -1);
    assert_string_equal(err.field, field);
    assert_true(err.msg[0] != '\0');
}

static void
test_limits_out_of_range(void **state)
{
    (void)state;
    struct sbx_spec s;
    valid_spec(&s);
    s.cores_milli = 0;
    expect_invalid(&s, "cores");
    valid_spec(&s);
    s.cores_milli = 5; /* below 0.01 core the CFS quota would be under 1 ms */
    expect_invalid(&s, "cores");
    valid_spec(&s);
    s.memory_bytes = 1 << 20;
    expect_invalid(&s, "memory");
    valid_spec(&s);
    s.pids = 0;
    expect_invalid(&s, "pids");
    valid_spec(&s);
    s.tmp_bytes = 0;
    expect_invalid(&s, "tmp_size");
    valid_spec(&s);
    s.work_bytes = -1;
    expect_invalid(&s, "work_size");
    valid_spec(&s);
    s.wall_ms = -5;
    expect_invalid(&s, "wall_time");
    valid_spec(&s);
    s.cpu_ms = -1;
    expect_invalid(&s, "cpu_time");
    valid_spec(&s);
    s.output_limit = -1;
    expect_invalid(&s, "output_limit");
    valid_spec(&s);
    s.network = (enum sbx_network)7;
    expect_invalid(&s, "network");
    /* The edges are accepted. */
    valid_spec(&s);
    s.cores_milli = 10;
    s.memory_bytes = 4 << 20;
    s.pids = 1;
    s.wall_ms = 0;
    s.output_limit = 0;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_spec_validate(&s, &err), 0);
}

static void
test_argv_env(void **state)
{
    (void)state;
    struct sbx_spec s;
    valid_spec(&s);
    const char *const empty[] = {"", NULL};
    s.argv = empty;
    expect_invalid(&s, "argv");
    valid_spec(&s);
    const char *const bad_env[] = {"A=1", "NOEQUALS", NULL};
    s.env = bad_env;
    expect_invalid(&s, "env");
    const char *const bad_env2[] = {"=value", NULL};
    s.env = bad_env2;
    expect_invalid(&s, "env");
    const char *const good_env[] = {"A=1", "B=", NULL};
    s.env = good_env;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_spec_validate(&s, &err), 0);
}

static void
test_file_names(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_file_name_check("main.py", &err), 0);
    assert_int_equal(sbx_file_name_check("src/pkg/mod.py", &err), 0);
    assert_int_equal(sbx_file_name_check(".hidden", &err), 0);
    assert_int_equal(sbx_file_name_check("a..b", &err), 0);
    static const char *const bad[] = {"",      "/etc/passwd", "..",   "../x", "a/../b",
                                      "a/./b", ".",           "a//b", "a/",   "./a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        co_err e = CO_ERR_INIT;
        assert_int_equal(sbx_file_name_check(bad[i], &e), -1);
        assert_string_equal(e.field, "files");
    }
    char longname[SBX_FILE_NAME_MAX + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(sbx_file_name_check(longname, &err), -1);
}

static void
test_files_in_spec(void **state)
{
    (void)state;
    struct sbx_spec s;
    valid_spec(&s);
    struct sbx_file f[2] = {{"a.py", "print(1)", 8, NULL, 0}, {"b", NULL, 0, "/etc/hostname", 0}};
    s.files = f;
    s.n_files = 2;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_spec_validate(&s, &err), 0);
    /* Both sources, or a length without data. */
    f[1].data = "x";
    f[1].len = 1;
    expect_invalid(&s, "files");
    f[1].data = NULL;
    f[1].len = 5;
    f[1].host_path = NULL;
    expect_invalid(&s, "files");
    /* Neither: an empty file. */
    f[1].len = 0;
    assert_int_equal(sbx_spec_validate(&s, &err), 0);
    /* Duplicates. */
    f[1] = f[0];
    expect_invalid(&s, "files");
    /* Bad mode. */
    f[1] = (struct sbx_file){"c", "x", 1, NULL, 0170000};
    expect_invalid(&s, "files");
    /* An empty in-memory file is fine (data non-NULL, len 0). */
    f[1] = (struct sbx_file){"empty", "", 0, NULL, 0};
    assert_int_equal(sbx_spec_validate(&s, &err), 0);
}

static void
test_image_names(void **state)
{
    (void)state;
    struct sbx_spec s;
    valid_spec(&s);
    co_err err = CO_ERR_INIT;
    static const char *const good[] = {"default", "debian-12", "py3.11_slim", "/srv/images/x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        s.image = good[i];
        assert_int_equal(sbx_spec_validate(&s, &err), 0);
    }
    static const char *const bad[] = {"../etc", "a/b", ".hidden", "with space"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s.image = bad[i];
        expect_invalid(&s, "image");
    }
}

static void
test_build_env(void **state)
{
    (void)state;
    const char **env = sbx_build_env(NULL);
    assert_string_equal(env[0], "PATH=" SBX_DEFAULT_PATH);
    assert_string_equal(env[1], "HOME=/work");
    assert_string_equal(env[2], "LANG=C.UTF-8");
    assert_null(env[3]);
    free(env);
    const char *const extra[] = {"FOO=1", "HOME=/tmp", "FOO=2", "BAR=x=y", NULL};
    env = sbx_build_env(extra);
    assert_string_equal(env[0], "PATH=" SBX_DEFAULT_PATH);
    assert_string_equal(env[1], "HOME=/tmp");
    assert_string_equal(env[2], "LANG=C.UTF-8");
    assert_string_equal(env[3], "FOO=2");
    assert_string_equal(env[4], "BAR=x=y");
    assert_null(env[5]);
    free(env);
    /* A key that is a prefix of another is a different key. */
    const char *const prefix[] = {"PATHX=1", NULL};
    env = sbx_build_env(prefix);
    assert_string_equal(env[0], "PATH=" SBX_DEFAULT_PATH);
    assert_string_equal(env[3], "PATHX=1");
    free(env);
}

static void
test_status_names(void **state)
{
    (void)state;
    static const char *const want[] = {
        "ok",  "runtime_error", "signaled",     "timeout",        "cpu_timeout",
        "oom", "seccomp",       "output_limit", "internal_error", "cancelled"};
    for (int i = SBX_OK; i <= SBX_CANCELLED; i++)
        assert_string_equal(sbx_status_name((enum sbx_status)i), want[i]);
    assert_string_equal(sbx_status_name((enum sbx_status)99), "internal_error");
}

static json_t *
result_json(const struct sbx_result *res)
{
    struct co_buf b = CO_BUF_INIT;
    sbx_result_json(res, &b);
    json_error_t jerr;
    json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("result JSON does not parse: %s: %s", jerr.text, b.data);
    co_buf_release(&b);
    return j;
}

static void
test_result_json_ok(void **state)
{
    (void)state;
    struct sbx_result res;
    memset(&res, 0, sizeof(res));
    res.status = SBX_OK;
    res.exit_code = 0;
    res.wall_ms = 12;
    res.cpu_ms = 3;
    res.memory_peak_kb = 2048;
    res.max_rss_kb = 1500;
    res.stdout_bytes = 5000000000LL;
    res.stdout_truncated = true;
    res.slot = 4;
    res.uid = SBX_UID_BASE + 4;
    json_t *j = result_json(&res);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 0);
    assert_true(json_is_null(json_object_get(j, "signal")));
    assert_int_equal(json_integer_value(json_object_get(j, "wall_ms")), 12);
    assert_int_equal(json_integer_value(json_object_get(j, "cpu_ms")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "memory_peak_kb")), 2048);
    assert_int_equal(json_integer_value(json_object_get(j, "max_rss_kb")), 1500);
    assert_true(json_is_false(json_object_get(j, "oom_killed")));
    assert_true(json_is_true(json_object_get(j, "stdout_truncated")));
    assert_true(json_is_false(json_object_get(j, "stderr_truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "stdout_bytes")), 5000000000LL);
    assert_int_equal(json_integer_value(json_object_get(j, "stderr_bytes")), 0);
    assert_true(json_is_null(json_object_get(j, "error")));
    assert_int_equal(json_integer_value(json_object_get(j, "slot")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "uid")), SBX_UID_BASE + 4);
    json_decref(j);
}

static void
test_result_json_error(void **state)
{
    (void)state;
    struct sbx_result res;
    memset(&res, 0, sizeof(res));
    res.status = SBX_INTERNAL_ERROR;
    res.exit_code = -1;
    co_strlcpy(res.error_step, "mount_proc", sizeof(res.error_step));
    res.error_errno = 1;
    co_strlcpy(res.error_msg, "cannot \"mount\"\n\x01 \xff", sizeof(res.error_msg));
    json_t *j = result_json(&res);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "internal_error");
    assert_true(json_is_null(json_object_get(j, "exit_code")));
    assert_true(json_is_null(json_object_get(j, "slot")));
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "step")), "mount_proc");
    assert_int_equal(json_integer_value(json_object_get(e, "errno")), 1);
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "cannot \"mount\"\n\x01 ?");
    json_decref(j);

    memset(&res, 0, sizeof(res));
    res.status = SBX_TIMEOUT;
    res.exit_code = -1;
    res.signal = 9;
    j = result_json(&res);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "timeout");
    assert_int_equal(json_integer_value(json_object_get(j, "signal")), 9);
    json_decref(j);
}

static void
test_size_duration_parsing_reused(void **state)
{
    (void)state;
    /* cacheout-run parses sizes and durations with common's parsers: check the forms its
     * --help documents. */
    int64_t v;
    co_err err = CO_ERR_INIT;
    assert_int_equal(co_parse_size("256M", "memory", &v, &err), 0);
    assert_int_equal(v, 256 << 20);
    assert_int_equal(co_parse_size("1G", "memory", &v, &err), 0);
    assert_int_equal(v, 1 << 30);
    assert_int_equal(co_parse_duration_ms("250ms", "wall-time", &v, &err), 0);
    assert_int_equal(v, 250);
    assert_int_equal(co_parse_duration_ms("10s", "wall-time", &v, &err), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(co_parse_duration_ms("2m", "wall-time", &v, &err), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(co_parse_duration_ms("0.2s", "wall-time", &v, &err), 0);
    assert_int_equal(v, 200);
}

static void
test_cancel_handle(void **state)
{
    (void)state;
    struct sbx_cancel *c = NULL;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cancel_new(&c, &err), 0);
    int fd = sbx_cancel_fd(c);
    assert_true(fd >= 0);
    uint64_t v = 0;
    assert_int_equal(read(fd, &v, sizeof(v)), -1); /* nothing yet (non-blocking) */
    sbx_cancel(c);
    sbx_cancel(c);
    assert_int_equal(read(fd, &v, sizeof(v)), (int)sizeof(v));
    assert_int_equal(v, 2);
    sbx_cancel(NULL);
    sbx_cancel_free(c);
    sbx_cancel_free(NULL);
    assert_int_equal(sbx_cancel_fd(NULL), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_limits_out_of_range),
        cmocka_unit_test(test_argv_env),
        cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_files_in_spec),
        cmocka_unit_test(test_image_names),
        cmocka_unit_test(test_build_env),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_result_json_ok),
        cmocka_unit_test(test_result_json_error),
        cmocka_unit_test(test_size_duration_parsing_reused),
        cmocka_unit_test(test_cancel_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
