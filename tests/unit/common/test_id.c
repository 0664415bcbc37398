#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_id.h"

static void
test_uuid(void **state)
{
    (void)state;
    char a[CO_UUID_STRLEN + 1], b[CO_UUID_STRLEN + 1];
    co_uuid4(a);
    co_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[13], '-');
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_true(co_id_valid(a));
}

static void
test_hex(void **state)
{
    (void)state;
    char h[65];
    co_random_hex(h, 32);
    assert_int_equal(strlen(h), 64);
    for (int i = 0; i < 64; i++)
        assert_true(strchr("0123456789abcdef", h[i]) != NULL);
}

static void
test_valid(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    char long_id[70];
    assert_true(co_id_valid("default-buyer"));
    assert_true(co_id_valid("worker_001.a"));
    assert_false(co_id_valid(""));
    assert_false(co_id_valid(NULL));
    assert_false(co_id_valid("a b"));
    assert_false(co_id_valid("a/b"));
    assert_false(co_id_valid("é"));
    memset(long_id, 'a', 64);
    long_id[64] = 0;
    assert_true(co_id_valid(long_id));
    long_id[64] = 'a';
    long_id[65] = 0;
    assert_false(co_id_valid(long_id));
    assert_int_equal(co_id_check(long_id, "buyer_id", &err), -1);
    assert_string_equal(err.field, "buyer_id");
    assert_int_equal(co_id_check("x;y", "buyer_id", &err), -1);
    assert_non_null(strstr(err.msg, "position 2"));
    assert_int_equal(co_id_check("", "buyer_id", &err), -1);
    assert_int_equal(co_id_check("ok", "buyer_id", &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
