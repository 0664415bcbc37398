#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_time.h"

static void
test_format(void **state)
{
    (void)state;
    char b[CO_ISO_LEN];
    co_time_iso(0, b);
    assert_string_equal(b, "1970-01-01T00:00:00.000Z");
    co_time_iso(1796046674123LL, b);
    assert_string_equal(b, "2026-11-30T13:51:14.123Z");
    co_time_iso(-1, b);
    assert_string_equal(b, "1969-12-31T23:59:59.999Z");
}

static void
test_parse(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t ms;
    assert_int_equal(co_time_parse_iso("2026-11-30T13:51:14.123Z", &ms, &err), 0);
    assert_int_equal(ms, 1796046674123LL);
    assert_int_equal(co_time_parse_iso("2026-11-30T13:51:14Z", &ms, &err), 0);
    assert_int_equal(ms, 1796046674000LL);
    assert_int_equal(co_time_parse_iso("2026-11-30 13:51:14.123456+00:00", &ms, &err), 0);
    assert_int_equal(ms, 1796046674123LL);
    assert_int_equal(co_time_parse_iso("2026-11-30T13:51:14.1Z", &ms, &err), 0);
    assert_int_equal(ms, 1796046674100LL);
    assert_int_equal(co_time_parse_iso("2026-13-30T13:51:14Z", &ms, &err), -1);
    assert_int_equal(co_time_parse_iso("2026-11-30", &ms, &err), -1);
    assert_int_equal(co_time_parse_iso("2026-11-30T13:51:14+02:00", &ms, &err), -1);
    assert_int_equal(co_time_parse_iso("yesterday", &ms, &err), -1);
    char b[CO_ISO_LEN];
    int64_t now = co_wall_ms();
    co_time_iso(now, b);
    assert_int_equal(co_time_parse_iso(b, &ms, &err), 0);
    assert_int_equal(ms, now);
}

static void
test_clocks(void **state)
{
    (void)state;
    int64_t a = co_mono_ns();
    int64_t b = co_mono_ns();
    assert_true(b >= a);
    assert_true(co_wall_ms() > 1700000000000LL);
    assert_true(co_mono_ms() >= a / 1000000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
