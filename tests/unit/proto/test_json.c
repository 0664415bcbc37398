/* Tests for proto_json: capped loading, compact dumping, exact credits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
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

    for (int i = 0; i < 50000; i++) {
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

/* A small deterministic generator of JSON trees for the differential tests. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void
put_cp(char *buf, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        buf[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        buf[(*n)++] = (char)(0xc0 | cp >> 6);
        buf[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        buf[(*n)++] = (char)(0xe0 | cp >> 12);
        buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        buf[(*n)++] = (char)(0xf0 | cp >> 18);
        buf[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static json_t *
random_string(void)
{
    static const uint32_t special[] = {'"',  '\\', '/',  '\n', '\t',   '\r',   '\b',    '\f',
                                       0x01, 0x1f, 0x7f, 0xe9, 0x20ac, 0x2028, 0x1f600, 0x10ffff};
    char buf[128];
    size_t n = 0, len = next() % 12;

    for (size_t i = 0; i < len; i++) {
        uint64_t r = next();
        uint32_t cp;
        if (r % 3 == 0)
            cp = special[(r >> 8) % (sizeof(special) / sizeof(special[0]))];
        else
            cp = 0x20 + (uint32_t)((r >> 8) % 0x5f);
        put_cp(buf, &n, cp);
    }
    return json_stringn(buf, n);
}

static json_t *
random_value(int depth, bool reals)
{
    uint64_t r = next() % (depth > 3 ? 6 : 8);
    json_t *v;

    switch (r) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(next() & 1);
    case 2:
        return json_integer((json_int_t)next());
    case 3:
        return json_integer((json_int_t)(next() % 2000) - 1000);
    case 4:
        if (reals) {
            double d;
            do {
                uint64_t bits = next();
                memcpy(&d, &bits, sizeof(d));
            } while (d != d || d - d != 0); /* no NaN, no infinity */
            return json_real(next() & 1 ? d : (double)(int64_t)(next() % 2000000) / 1000.0);
        }
        return json_integer(7);
    case 5:
        return random_string();
    case 6:
        v = json_array();
        for (uint64_t i = next() % 5; i > 0; i--)
            json_array_append_new(v, random_value(depth + 1, reals));
        return v;
    default:
        v = json_object();
        for (uint64_t i = next() % 5; i > 0; i--) {
            json_t *k = random_string();
            json_object_set_new(v, json_string_value(k), random_value(depth + 1, reals));
            json_decref(k);
        }
        return v;
    }
}

/* Without reals the output is byte for byte jansson's compact output, for every flag we offer. */
static void
test_dumps_matches_jansson(void **state)
{
    (void)state;
    static const size_t flag_sets[] = {0, JSON_SORT_KEYS, JSON_ESCAPE_SLASH, JSON_ENSURE_ASCII,
                                       JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH};

    for (int i = 0; i < 5000; i++) {
        json_t *v = random_value(0, false);
        size_t flags = flag_sets[i % (sizeof(flag_sets) / sizeof(flag_sets[0]))];
        char *ours = proto_json_dumps(v, flags, NULL);
        char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | flags);
        assert_non_null(ours);
        assert_non_null(theirs);
        if (strcmp(ours, theirs) != 0)
            fail_msg("flags %zx:\nours   %s\njansson %s", flags, ours, theirs);
        free(ours);
        free(theirs);
        json_decref(v);
    }
}

/* With reals, the text reads back as an equal tree (every double exactly). */
static void
test_dumps_reals_round_trip(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;

    for (int i = 0; i < 5000; i++) {
        json_t *v = random_value(0, true);
        size_t len = 0;
        char *text = proto_json_dumps(v, 0, &len);
        json_t *back = proto_json_loadb(text, len, len, &err);
        if (back == NULL || !json_equal(v, back))
            fail_msg("does not read back equal: %s (%s)", text, err.msg);
        json_decref(back);
        json_decref(v);
        free(text);
    }
}

static void
expect_real_text(double d, const char *want)
{
    json_t *j = json_real(d);
    char *s = proto_json_dumps(j, 0, NULL);
    if (strcmp(s, want) != 0)
        fail_msg("%.17g prints as %s, want %s", d, s, want);
    free(s);
    json_decref(j);
}

static void
test_dumps_reals(void **state)
{
    (void)state;
    expect_real_text(0.1, "0.1");
    expect_real_text(0.1 + 0.2, "0.30000000000000004");
    expect_real_text(100.0, "100.0");
    expect_real_text(-0.0, "-0.0");
    expect_real_text(1e300, "1e300");
    expect_real_text(1e-7, "1e-7");
    expect_real_text(-2.5e-10, "-2.5e-10");
    expect_real_text(3.141592653589793, "3.141592653589793");
    expect_real_text(123456789012345680.0, "1.2345678901234568e17");

    /* A reference cycle (or absurd depth) is refused rather than recursing forever. */
    json_t *a = json_array();
    json_t *inner = a;
    for (int i = 0; i < 5000; i++) {
        json_t *next_arr = json_array();
        json_array_append_new(inner, next_arr);
        inner = next_arr;
    }
    assert_null(proto_json_dumps(a, 0, NULL));
    json_decref(a);
    assert_null(proto_json_dumps(NULL, 0, NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_dumps),
        cmocka_unit_test(test_dumps_matches_jansson),
        cmocka_unit_test(test_dumps_reals_round_trip),
        cmocka_unit_test(test_dumps_reals),
        cmocka_unit_test(test_credits_print),
        cmocka_unit_test(test_credits_round_trip),
        cmocka_unit_test(test_get_credits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
