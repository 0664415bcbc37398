#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "co_credits.h"

static int64_t
parse_ok(const char *s)
{
    co_err err = CO_ERR_INIT;
    int64_t v = -42;
    int rc = co_credits_parse(s, strlen(s), "amount", &v, &err);
    if (rc != 0)
        fail_msg("'%s' should parse: %s", s, err.msg);
    return v;
}

static co_err
parse_bad(const char *s)
{
    co_err err = CO_ERR_INIT;
    int64_t v = 0;
    if (co_credits_parse(s, strlen(s), "amount", &v, &err) == 0)
        fail_msg("'%s' should not parse (got %lld)", s, (long long)v);
    return err;
}

static void
test_parse_plain(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("0"), 0);
    assert_int_equal(parse_ok("100"), 100000000);
    assert_int_equal(parse_ok("100.0"), 100000000);
    assert_int_equal(parse_ok("0.1"), 100000);
    assert_int_equal(parse_ok("0.001"), 1000);
    assert_int_equal(parse_ok("0.000001"), 1);
    assert_int_equal(parse_ok("1.250000"), 1250000);
    assert_int_equal(parse_ok("-0.5"), -500000);
    assert_int_equal(parse_ok("+2"), 2000000);
    assert_int_equal(parse_ok("007.5"), 7500000);
    assert_int_equal(parse_ok(".5"), 500000);
    assert_int_equal(parse_ok("5."), 5000000);
    assert_int_equal(parse_ok("0.1000000000"), 100000); /* trailing zeros are not decimals */
}

static void
test_parse_exponent(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1e2"), 100000000);
    assert_int_equal(parse_ok("1E2"), 100000000);
    assert_int_equal(parse_ok("2.5e-3"), 2500);
    assert_int_equal(parse_ok("1e-6"), 1);
    assert_int_equal(parse_ok("0e999999"), 0);
    assert_int_equal(parse_ok("123456e-6"), 123456);
    parse_bad("1e-7");
    parse_bad("1e99");
    parse_bad("1e");
    parse_bad("1e+");
}

static void
test_parse_rejects(void **state)
{
    (void)state;
    co_err e = parse_bad("0.0000001");
    assert_non_null(strstr(e.msg, "more than 6 decimals"));
    assert_string_equal(e.field, "amount");
    parse_bad("");
    parse_bad("-");
    parse_bad(".");
    parse_bad("abc");
    parse_bad("1.2.3");
    parse_bad("1,5");
    parse_bad(" 1");
    parse_bad("1 ");
    parse_bad("NaN");
    parse_bad("inf");
    parse_bad("0x10");
    e = parse_bad("9223372036855");
    assert_int_equal(e.code, CO_E_RANGE);
    parse_bad("99999999999999999999999999999999999");
}

static void
test_parse_limits(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("9223372036854.775807"), INT64_MAX);
    assert_int_equal(parse_ok("-9223372036854.775808"), INT64_MIN);
    parse_bad("9223372036854.775808");
    parse_bad("-9223372036854.775809");
}

static void
test_from_double(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    assert_int_equal(co_credits_from_double(0.1, "x", &v, &err), 0);
    assert_int_equal(v, 100000);
    assert_int_equal(co_credits_from_double(0.3, "x", &v, &err), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(co_credits_from_double(0.001, "x", &v, &err), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(co_credits_from_double(1234567.891011, "x", &v, &err), 0);
    assert_int_equal(v, 1234567891011);
    assert_int_equal(co_credits_from_double(-2.5, "x", &v, &err), 0);
    assert_int_equal(v, -2500000);
    assert_int_equal(co_credits_from_double(0.1234567, "x", &v, &err), -1);
    assert_int_equal(co_credits_from_double(1e300, "x", &v, &err), -1);
    assert_int_equal(co_credits_from_double(__builtin_nan(""), "x", &v, &err), -1);
    assert_int_equal(co_credits_from_double(__builtin_inf(), "x", &v, &err), -1);
}

static void
test_from_int(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    assert_int_equal(co_credits_from_int(100, "x", &v, &err), 0);
    assert_int_equal(v, 100000000);
    assert_int_equal(co_credits_from_int(INT64_MAX / 1000, "x", &v, &err), -1);
    assert_int_equal(err.code, CO_E_RANGE);
}

static void
test_format(void **state)
{
    (void)state;
    char b[CO_CREDITS_STRLEN];
    co_credits_format(0, b);
    assert_string_equal(b, "0");
    co_credits_format(100000000, b);
    assert_string_equal(b, "100");
    co_credits_format(100000, b);
    assert_string_equal(b, "0.1");
    co_credits_format(1, b);
    assert_string_equal(b, "0.000001");
    co_credits_format(-2000001, b);
    assert_string_equal(b, "-2.000001");
    co_credits_format(INT64_MIN, b);
    assert_string_equal(b, "-9223372036854.775808");
    co_credits_format(INT64_MAX, b);
    assert_string_equal(b, "9223372036854.775807");
    /* Round trip. */
    int64_t vals[] = {0, 1, 999999, 1000000, 123456789, -5, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        co_credits_format(vals[i], b);
        assert_int_equal(parse_ok(b), vals[i]);
    }
}

static void
test_cost(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t c;
    /* The original example: 2 cores at 0.1 + 4096 MB at 0.001 per 100 MB = 0.24096. */
    assert_int_equal(co_credits_cost(2, 4096, 100000, 1000, &c, &err), 0);
    assert_int_equal(c, 240960);
    /* 150 MB at 0.000001 per 100 MB = 0.0000015 -> half-up to 0.000002. */
    assert_int_equal(co_credits_cost(0, 150, 0, 1, &c, &err), 0);
    assert_int_equal(c, 2);
    /* 149 MB -> 0.00000149 -> 0.000001 (down). */
    assert_int_equal(co_credits_cost(0, 149, 0, 1, &c, &err), 0);
    assert_int_equal(c, 1);
    /* 50 MB -> exactly half a micro-credit -> rounds up. */
    assert_int_equal(co_credits_cost(0, 50, 0, 1, &c, &err), 0);
    assert_int_equal(c, 1);
    assert_int_equal(co_credits_cost(0, 49, 0, 1, &c, &err), 0);
    assert_int_equal(c, 0);
    assert_int_equal(co_credits_cost(1, 1, 0, 0, &c, &err), 0);
    assert_int_equal(c, 0);
    assert_int_equal(co_credits_cost(-1, 1, 1, 1, &c, &err), -1);
    assert_int_equal(co_credits_cost(1, -1, 1, 1, &c, &err), -1);
    assert_int_equal(co_credits_cost(INT64_MAX, 1, INT64_MAX, 1, &c, &err), -1);
    assert_int_equal(err.code, CO_E_RANGE);
    assert_int_equal(co_credits_cost(INT64_MAX / 2, 0, 2, 0, &c, &err), 0);
}

static void
test_add(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    assert_int_equal(co_credits_add(1, 2, &v, &err), 0);
    assert_int_equal(v, 3);
    assert_int_equal(co_credits_add(INT64_MAX, 1, &v, &err), -1);
    assert_int_equal(co_credits_add(INT64_MIN, -1, &v, &err), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),   cmocka_unit_test(test_parse_exponent),
        cmocka_unit_test(test_parse_rejects), cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_from_double),   cmocka_unit_test(test_from_int),
        cmocka_unit_test(test_format),        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
