/* Tests for proto_utf8: validation, counting, cutting, repair and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_utf8.h"

#define VALID(lit) assert_true(proto_utf8_valid(lit, sizeof(lit) - 1))
#define INVALID(lit) assert_false(proto_utf8_valid(lit, sizeof(lit) - 1))

static void
test_valid(void **state)
{
    (void)state;
    VALID("");
    VALID("plain ascii");
    VALID("a\0b");
    VALID("caf\xc3\xa9");
    VALID("\xe2\x82\xac");
    VALID("\xf0\x9f\x98\x80");
    VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    VALID("\xed\x9f\xbf");     /* U+D7FF */
    VALID("\xee\x80\x80");     /* U+E000 */
    INVALID("\x80");
    INVALID("\xbf");
    INVALID("\xc0\xaf");         /* overlong '/' */
    INVALID("\xc1\xbf");         /* overlong */
    INVALID("\xe0\x80\xaf");     /* overlong */
    INVALID("\xf0\x80\x80\xaf"); /* overlong */
    INVALID("\xed\xa0\x80");     /* surrogate U+D800 */
    INVALID("\xed\xbf\xbf");     /* surrogate U+DFFF */
    INVALID("\xf4\x90\x80\x80"); /* above U+10FFFF */
    INVALID("\xf5\x80\x80\x80");
    INVALID("\xff");
    INVALID("\xc3");           /* truncated */
    INVALID("\xe2\x82");       /* truncated */
    INVALID("\xc3\x28");       /* bad continuation */
    INVALID("ok\xe2\x82\x28"); /* bad continuation */
}

static void
test_count_cut(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"; /* a é € 😀 z: 11 bytes */

    assert_int_equal(proto_utf8_count(s, strlen(s)), 5);
    assert_int_equal(proto_utf8_cut(s, 11, 20), 11);
    assert_int_equal(proto_utf8_cut(s, 11, 11), 11);
    assert_int_equal(proto_utf8_cut(s, 11, 1), 1);
    assert_int_equal(proto_utf8_cut(s, 11, 2), 1); /* inside é */
    assert_int_equal(proto_utf8_cut(s, 11, 3), 3);
    assert_int_equal(proto_utf8_cut(s, 11, 4), 3); /* inside € */
    assert_int_equal(proto_utf8_cut(s, 11, 5), 3);
    assert_int_equal(proto_utf8_cut(s, 11, 6), 6);
    assert_int_equal(proto_utf8_cut(s, 11, 9), 6); /* inside 😀 */
    assert_int_equal(proto_utf8_cut(s, 11, 10), 10);
    assert_int_equal(proto_utf8_cut(s, 11, 0), 0);
    /* Garbage of continuation bytes: no better cut exists. */
    assert_int_equal(proto_utf8_cut("\x80\x80\x80\x80\x80\x80", 6, 5), 5);
}

static void
expect_sanitized(const char *in, size_t len, const char *want)
{
    size_t out_len = 0;
    char *out = proto_utf8_sanitize(in, len, &out_len);

    assert_int_equal(out_len, strlen(want));
    assert_string_equal(out, want);
    assert_true(proto_utf8_valid(out, out_len));
    free(out);
}

#define FFFD "\xef\xbf\xbd"

static void
test_sanitize(void **state)
{
    (void)state;
    expect_sanitized("", 0, "");
    expect_sanitized("caf\xc3\xa9", 5, "caf\xc3\xa9");
    expect_sanitized("a\0b", 3, "a" FFFD "b");
    expect_sanitized("a\xff"
                     "b",
                     3, "a" FFFD "b");
    /* One replacement per maximal ill-formed subpart. */
    expect_sanitized("\xe2\x82z", 3, FFFD "z");
    expect_sanitized("\xc0\xaf", 2, FFFD FFFD);
    expect_sanitized("\xed\xa0\x80", 3, FFFD FFFD FFFD);
    expect_sanitized("\xf0\x9f\x98", 3, FFFD);
    expect_sanitized("ok\xc3", 3, "ok" FFFD);
}

struct b64_case {
    const char *raw;
    const char *text;
};

static void
test_base64(void **state)
{
    (void)state;
    /* RFC 4648 test vectors. */
    static const struct b64_case cases[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    co_err err = CO_ERR_INIT;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t rl = strlen(cases[i].raw), n = 99;
        char *t = proto_base64_encode(cases[i].raw, rl), *back = NULL;
        assert_string_equal(t, cases[i].text);
        assert_int_equal(proto_base64_len(rl), strlen(t));
        assert_int_equal(proto_base64_decode(t, strlen(t), &back, &n, &err), 0);
        assert_int_equal(n, rl);
        assert_memory_equal(back, cases[i].raw, rl);
        assert_int_equal(back[n], '\0');
        free(back);
        free(t);
    }
    /* Every byte value survives. */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 250; len <= 256; len++) {
        char *t = proto_base64_encode(all, len), *back = NULL;
        size_t n = 0;
        assert_int_equal(proto_base64_decode(t, strlen(t), &back, &n, &err), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, all, len);
        free(back);
        free(t);
    }
    /* Rejected: bad length, bad characters, misplaced or excess padding, non-zero pad bits. */
    static const char *const bad[] = {"Zg=",   "Zg",   "Z===", "====",     "Zm9v=g==", "Zm 9",
                                      "Zm9\n", "Zm-_", "Zh==", "Zm9=Zm9v", "Zm=v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *back = NULL;
        size_t n = 0;
        if (proto_base64_decode(bad[i], strlen(bad[i]), &back, &n, &err) == 0)
            fail_msg("'%s' decoded", bad[i]);
        assert_int_equal(err.code, CO_E_INVAL);
        assert_null(back);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_count_cut),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
