/* Tests for proto_json: capped loading, compact dumping, exact credits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_credits.h"
#include "proto_json.h"

static void
test_load(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    json_t *j;

    j = proto_json_loadb("{\"a\":[1,2]}", 11, 11, &err);
    assert_non_null(j);
    json_decref(j);
    j = proto_json_loadb("{\"a\":[1,2]}", 11, 10, &err);
    assert_null(j);
    assert_int_equal(err.code, CO_E_TOOLARGE);
    /* Scalars are values for the general loader, not for the object loader. */
    j = proto_json_loadb("42", 2, 100, &err);
    assert_true(json_is_integer(j));
    json_decref(j);
    j = proto_json_load_object("42", 2, 100, &err);
    assert_null(j);
    assert_int_equal(err.code, CO_E_INVAL);
    assert_string_equal(err.field, "");
    j = proto_json_load_object("[]", 2, 100, &err);
    assert_null(j);
    /* Duplicate keys at any depth. */
    j = proto_json_load_object("{\"a\":1,\"a\":1}", 13, 100, &err);
    assert_null(j);
    assert_non_null(strstr(err.msg, "duplicate"));
    j = proto_json_load_object("{\"a\":{\"b\":1,\"b\":1}}", 19, 100, &err);
    assert_null(j);
    /* Trailing garbage. */
    j = proto_json_load_object("{} {}", 5, 100, &err);
    assert_null(j);
    /* A NULL buffer of length 0 is an empty (invalid) document, not a crash. */
    j = proto_json_loadb(NULL, 0, 100, &err);
    assert_null(j);
    assert_int_equal(err.code, CO_E_INVAL);
    /* Invalid UTF-8 in the input does not leak into the (ASCII) message. */
    j = proto_json_load_object("{\"\xff\xfe\":1}", 8, 100, &err);
    assert_null(j);
    for (const char *p = err.msg; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

static void
test_dumps(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:i,s:s,s:f}", "n", 1, "s", "</script>", "r", 0.1);
    size_t len = 0;
    char *s;

    s = proto_json_dumps(j, 0, &len);
    assert_string_equal(s, "{\"n\":1,\"s\":\"</script>\",\"r\":0.1}");
    assert_int_equal(len, strlen(s));
    free(s);
    s = proto_json_dumps(j, JSON_ESCAPE_SLASH, NULL);
    assert_string_equal(s, "{\"n\":1,\"s\":\"<\\/script>\",\"r\":0.1}");
    free(s);
    json_decref(j);
    /* Scalars can be dumped. */
    j = json_integer(7);
    s = proto_json_dumps(j, 0, NULL);
    assert_string_equal(s, "7");
    free(s);
    json_decref(j);
}

static char *
credits_text(int64_t micro)
{
    json_t *j = proto_json_credits(micro);
    char *s = proto_json_dumps(j, 0, NULL);
    json_decref(j);
    return s;
}

static void
expect_credits_text(int64_t micro, const char *want)
{
    char *s = credits_text(micro);
    if (strcmp(s, want) != 0)
        fail_msg("%lld micro-credits print as %s, want %s", (long long)micro, s, want);
    free(s);
}

static void
test_credits_print(void **state)
{
    (void)state;
    expect_credits_text(100000000, "100");
    expect_credits_text(0, "0");
    expect_credits_text(100000, "0.1");
    expect_credits_text(300000, "0.3");
    expect_credits_text(1234567891011, "1234567.891011");
    expect_credits_text(-2500000, "-2.5");
    expect_credits_text(1000, "0.001");
    expect_credits_text(999999999999999, "999999999.999999");
    /* Whole amounts are integers, exact at any size. */
    expect_credits_text(INT64_C(9223372036854000000), "9223372036854");
    /* Below 0.0001 jansson uses exponent notation: still an exact JSON number. */
    expect_credits_text(1, "1e-6");
    expect_credits_text(10, "1e-5");
    expect_credits_text(100, "0.0001");
}

/* Every amount with at most 15 significant digits survives dump -> load -> read exactly. */
static void
test_credits_round_trip(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ULL; /* xorshift64 */
    co_err err = CO_ERR_INIT;

    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t micro = (int64_t)(x % INT64_C(1000000000000000)); /* < 10^15 */
        if (i % 2)
            micro = -micro;
        if (i % 5 == 0)
            micro %= 1000000000; /* small amounts too */
        char *s = credits_text(micro);
        json_t *j = proto_json_loadb(s, strlen(s), 100, &err);
        int64_t back = 0;
        assert_non_null(j);
        if (proto_json_get_credits(j, "amount", &back, &err) != 0 || back != micro)
            fail_msg("%lld -> %s -> %lld (%s)", (long long)micro, s, (long long)back, err.msg);
        json_decref(j);
        free(s);
    }
}

static void
test_get_credits(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v = 0;
    json_t *j;

    j = json_integer(100);
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), 0);
    assert_int_equal(v, 100000000);
    json_decref(j);
    j = json_real(0.000001);
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), 0);
    assert_int_equal(v, 1);
    json_decref(j);
    /* More than 6 decimals. */
    j = json_real(0.0000001);
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), -1);
    assert_string_equal(err.field, "amount");
    json_decref(j);
    /* Overflow. */
    j = json_integer(INT64_MAX);
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), -1);
    assert_string_equal(err.field, "amount");
    json_decref(j);
    j = json_real(1e300);
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), -1);
    json_decref(j);
    /* Not numbers. */
    j = json_true();
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), -1);
    assert_int_equal(err.code, CO_E_INVAL);
    assert_string_equal(err.field, "amount");
    j = json_string("1");
    assert_int_equal(proto_json_get_credits(j, "amount", &v, &err), -1);
    json_decref(j);
    assert_int_equal(proto_json_get_credits(NULL, "amount", &v, &err), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),          cmocka_unit_test(test_dumps),
        cmocka_unit_test(test_credits_print), cmocka_unit_test(test_credits_round_trip),
        cmocka_unit_test(test_get_credits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
