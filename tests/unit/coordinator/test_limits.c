/* Unit tests of coordinator/coord_limits.c: token buckets, the failed-auth throttle, parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord_limits.h"

static void
test_bucket(void **state)
{
    (void)state;
    struct coord_limits *l = coord_limits_new(COORD_AUTH_FAIL_MAX);
    /* 10 per second: a burst of 20, then one every 100 ms. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(coord_limits_submit(l, "a", 10, 1000), 0);
    int64_t wait = coord_limits_submit(l, "a", 10, 1000);
    assert_int_equal(wait, 1); /* whole seconds, at least 1 */
    assert_int_equal(coord_limits_submit(l, "a", 10, 1100), 0);
    assert_true(coord_limits_submit(l, "a", 10, 1100) > 0);
    /* Another user has its own bucket. */
    assert_int_equal(coord_limits_submit(l, "b", 10, 1100), 0);
    /* Refill is capped at the burst. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(coord_limits_submit(l, "a", 10, 100000), 0);
    assert_true(coord_limits_submit(l, "a", 10, 100000) > 0);
    /* Slow rates: capacity 1, Retry-After in whole seconds up to the next token. */
    assert_int_equal(coord_limits_submit(l, "slow", 0.05, 0), 0);
    assert_int_equal(coord_limits_submit(l, "slow", 0.05, 0), 20);
    assert_int_equal(coord_limits_submit(l, "slow", 0.05, 10000), 10);
    assert_int_equal(coord_limits_submit(l, "slow", 0.05, 20000), 0);
    /* A user whose rate is lowered is held to the new burst at once, even in the same ms. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(coord_limits_submit(l, "lowered", 100, 50000), 0);
    assert_int_equal(coord_limits_submit(l, "lowered", 0.05, 50000), 0);
    assert_true(coord_limits_submit(l, "lowered", 0.05, 50000) > 0);
    /* 0 = no limit. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(coord_limits_submit(l, "free", 0, 0), 0);
    coord_limits_free(l);
}

static void
test_many_users_are_swept(void **state)
{
    (void)state;
    struct coord_limits *l = coord_limits_new(COORD_AUTH_FAIL_MAX);
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        assert_int_equal(coord_limits_submit(l, id, 100, (int64_t)i * 100), 0);
    }
    /* Idle, refilled buckets are dropped as the table grows. */
    assert_true(coord_limits_size(l) < 20000);
    coord_limits_free(l);
}

static void
test_auth_throttle(void **state)
{
    (void)state;
    struct coord_limits *l = coord_limits_new(COORD_AUTH_FAIL_MAX);
    for (int i = 0; i < COORD_AUTH_FAIL_MAX; i++) {
        assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.1", 1000 + i), 0);
        coord_limits_auth_failed(l, "10.0.0.1", 1000 + i);
    }
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.1", 2000), 0); /* 20 are allowed */
    coord_limits_auth_failed(l, "10.0.0.1", 2000);                       /* the 21st */
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.1", 2000), 60);
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.2", 2000), 0); /* per address */
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.1", 61999), 1);
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.1", 62000), 0);
    /* Failures spread over more than a window do not add up. */
    for (int i = 0; i < 40; i++)
        coord_limits_auth_failed(l, "10.0.0.3", (int64_t)i * 4000);
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.3", 160000), 0);
    coord_limits_free(l);
    /* 0: no throttle. */
    l = coord_limits_new(0);
    for (int i = 0; i < 100; i++)
        coord_limits_auth_failed(l, "10.0.0.1", 1000);
    assert_int_equal(coord_limits_auth_blocked(l, "10.0.0.1", 1000), 0);
    coord_limits_free(l);
}

static void
test_parse(void **state)
{
    (void)state;
    struct coord_user_limits u;
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_limits_parse(NULL, &u, &err), 0);
    assert_true(u.submit_per_second < 0 && u.max_pending_jobs < 0 && u.max_running_jobs < 0);
    assert_int_equal(coord_limits_parse("{\"submit_per_second\": 0.5, \"max_pending_jobs\": 3, "
                                        "\"max_running_jobs\": null}",
                                        &u, &err),
                     0);
    assert_true(u.submit_per_second == 0.5);
    assert_int_equal(u.max_pending_jobs, 3);
    assert_true(u.max_running_jobs < 0);
    static const char *const bad[] = {"[]",
                                      "{\"nope\": 1}",
                                      "{\"submit_per_second\": -1}",
                                      "{\"submit_per_second\": \"1\"}",
                                      "{\"max_pending_jobs\": 1.5}",
                                      "{\"max_running_jobs\": -1}",
                                      "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        co_err_clear(&err);
        assert_int_equal(coord_limits_parse(bad[i], &u, &err), -1);
        assert_string_equal(err.field, "limits");
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_many_users_are_swept),
        cmocka_unit_test(test_auth_throttle),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
