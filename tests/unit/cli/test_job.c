/* Tests for cli_job: the exit status of `submit --wait` for every way a job can end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli_job.h"

static int
status_of(const char *json)
{
    json_error_t je;
    json_t *job = json_loads(json, 0, &je);
    assert_non_null(job);
    int s = cli_job_exit_status(job);
    json_decref(job);
    return s;
}

static void
test_unfinished(void **state)
{
    (void)state;
    assert_int_equal(status_of("{\"status\":\"pending\"}"), -1);
    assert_int_equal(status_of("{\"status\":\"assigned\"}"), -1);
    assert_int_equal(status_of("{\"status\":\"running\"}"), -1);
    assert_int_equal(status_of("{}"), -1);
}

static void
test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(status_of("{\"status\":\"completed\",\"exit_code\":0}"), 0);
    assert_int_equal(
        status_of("{\"status\":\"failed\",\"failure_reason\":\"exit_code\",\"exit_code\":3}"), 3);
    assert_int_equal(
        status_of("{\"status\":\"failed\",\"failure_reason\":\"exit_code\",\"exit_code\":255}"),
        255);
    /* A failure with no usable code is still a failure. */
    assert_int_equal(
        status_of("{\"status\":\"failed\",\"failure_reason\":\"exit_code\",\"exit_code\":null}"),
        1);
    assert_int_equal(
        status_of("{\"status\":\"failed\",\"failure_reason\":\"exit_code\",\"exit_code\":0}"), 1);
}

static void
test_signals_and_limits(void **state)
{
    (void)state;
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"timeout\"}"), 124);
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"killed\"}"), 137);
    assert_int_equal(
        status_of("{\"status\":\"failed\",\"failure_reason\":\"killed\",\"signal\":15}"), 143);
    assert_int_equal(
        status_of("{\"status\":\"failed\",\"failure_reason\":\"killed\",\"signal\":99}"), 137);
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"oom\"}"), 137);
    assert_int_equal(status_of("{\"status\":\"cancelled\",\"failure_reason\":\"cancelled\"}"), 143);
}

static void
test_platform_failures(void **state)
{
    (void)state;
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"sandbox_error\"}"),
                     125);
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"worker_lost\"}"), 125);
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"unverified\"}"), 125);
    assert_int_equal(status_of("{\"status\":\"failed\",\"failure_reason\":\"new_reason\"}"), 125);
    assert_int_equal(status_of("{\"status\":\"failed\"}"), 125);
}

static void
test_outcome_text(void **state)
{
    (void)state;
    char buf[64];
    json_t *j = json_pack("{s:s,s:s,s:i}", "status", "failed", "failure_reason", "exit_code",
                          "exit_code", 7);
    assert_string_equal(cli_job_outcome(j, buf, sizeof(buf)), "failed: exit code 7");
    json_object_set_new(j, "failure_reason", json_string("timeout"));
    assert_string_equal(cli_job_outcome(j, buf, sizeof(buf)), "failed: timed out");
    json_object_set_new(j, "status", json_string("completed"));
    assert_string_equal(cli_job_outcome(j, buf, sizeof(buf)), "completed");
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unfinished),         cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_signals_and_limits), cmocka_unit_test(test_platform_failures),
        cmocka_unit_test(test_outcome_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
