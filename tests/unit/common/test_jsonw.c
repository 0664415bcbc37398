/* Unit tests of common/co_jsonw.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "co_buf.h"
#include "co_jsonw.h"

static void
test_object_and_array_commas(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    co_jsonw_obj_begin(&w);
    co_jsonw_kint(&w, "a", 1);
    co_jsonw_key(&w, "b");
    co_jsonw_arr_begin(&w);
    co_jsonw_int(&w, -2);
    co_jsonw_null(&w);
    co_jsonw_bool(&w, true);
    co_jsonw_obj_begin(&w);
    co_jsonw_obj_end(&w);
    co_jsonw_arr_end(&w);
    co_jsonw_kstr(&w, "c", NULL);
    co_jsonw_obj_end(&w);
    assert_string_equal(b.data, "{\"a\":1,\"b\":[-2,null,true,{}],\"c\":null}");
    co_buf_release(&b);
}

static void
test_credits_are_exact(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    co_jsonw_arr_begin(&w);
    co_jsonw_credits(&w, 100000);    /* 0.1 */
    co_jsonw_credits(&w, 240960);    /* 0.24096 */
    co_jsonw_credits(&w, 100000000); /* 100 */
    co_jsonw_credits(&w, -2000001);  /* -2.000001 */
    co_jsonw_credits(&w, 0);
    co_jsonw_arr_end(&w);
    assert_string_equal(b.data, "[0.1,0.24096,100,-2.000001,0]");
    co_buf_release(&b);
}

static void
test_escapes_and_invalid_utf8(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    /* quote, backslash, newline, control, HTML-sensitive, valid é, lone 0xff, truncated 0xe2 */
    static const char in[] = "\"\\\n\x01<&>\xc3\xa9\xff\xe2\x82";
    co_jsonw_strn(&w, in, sizeof(in) - 1);
    assert_string_equal(b.data,
                        "\"\\\"\\\\\\n\\u0001\\u003c\\u0026\\u003e\xc3\xa9\\ufffd\\ufffd\\ufffd\"");
    /* The result is JSON that jansson accepts. */
    json_error_t jerr;
    json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    json_decref(v);
    co_buf_release(&b);
}

static void
test_surrogates_and_overlong_rejected(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    static const char in[] = "\xed\xa0\x80" /* surrogate */ "\xc0\xaf" /* overlong '/' */
                             "\xf0\x9f\x98\x80";                       /* U+1F600, valid */
    co_jsonw_strn(&w, in, sizeof(in) - 1);
    assert_string_equal(b.data, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\xf0\x9f\x98\x80\"");
    co_buf_release(&b);
}

static void
test_time(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    co_jsonw_obj_begin(&w);
    co_jsonw_ktime(&w, "t", INT64_C(1795960274123));
    co_jsonw_ktime(&w, "none", 0);
    co_jsonw_obj_end(&w);
    assert_string_equal(b.data, "{\"t\":\"2026-11-29T13:51:14.123Z\",\"none\":null}");
    co_buf_release(&b);
}

static void
test_flags_ascii_and_html(void **state)
{
    (void)state;
    static const char in[] = "<&>\x7f\x01\t\xc3\xa9\xff";
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    /* ASCII mode (the sandbox's result JSON): DEL escaped, each high byte '?', no HTML escapes. */
    co_jsonw_init_flags(&w, &b, CO_JSONW_ASCII);
    co_jsonw_strn(&w, in, sizeof(in) - 1);
    assert_string_equal(b.data, "\"<&>\\u007f\\u0001\\t???\"");
    co_buf_release(&b);
    /* No flags: UTF-8 checked, DEL and <, >, & copied. */
    co_jsonw_init_flags(&w, &b, 0);
    co_jsonw_strn(&w, in, sizeof(in) - 1);
    assert_string_equal(b.data, "\"<&>\x7f\\u0001\\t\xc3\xa9\\ufffd\"");
    co_buf_release(&b);
    /* Both: printable ASCII that can also sit in HTML. */
    co_jsonw_init_flags(&w, &b, CO_JSONW_ASCII | CO_JSONW_HTML_SAFE);
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "k<", in);
    co_jsonw_kbool(&w, "b", false);
    co_jsonw_obj_end(&w);
    assert_string_equal(b.data, "{\"k\\u003c\":\"\\u003c\\u0026\\u003e\\u007f\\u0001\\t???\","
                                "\"b\":false}");
    json_error_t jerr;
    json_t *v = json_loadb(b.data, b.len, 0, &jerr);
    assert_non_null(v);
    json_decref(v);
    co_buf_release(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_and_array_commas),
        cmocka_unit_test(test_credits_are_exact),
        cmocka_unit_test(test_escapes_and_invalid_utf8),
        cmocka_unit_test(test_surrogates_and_overlong_rejected),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_flags_ascii_and_html),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
