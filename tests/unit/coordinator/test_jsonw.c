/* Unit tests of coordinator/coord_jsonw.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "co_buf.h"
#include "coord_jsonw.h"

static void
test_object_and_array_commas(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct coord_jsonw w;
    coord_jsonw_init(&w, &b);
    coord_jsonw_obj_begin(&w);
    coord_jsonw_kint(&w, "a", 1);
    coord_jsonw_key(&w, "b");
    coord_jsonw_arr_begin(&w);
    coord_jsonw_int(&w, -2);
    coord_jsonw_null(&w);
    coord_jsonw_bool(&w, true);
    coord_jsonw_obj_begin(&w);
    coord_jsonw_obj_end(&w);
    coord_jsonw_arr_end(&w);
    coord_jsonw_kstr(&w, "c", NULL);
    coord_jsonw_obj_end(&w);
    assert_string_equal(b.data, "{\"a\":1,\"b\":[-2,null,true,{}],\"c\":null}");
    co_buf_release(&b);
}

static void
test_credits_are_exact(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct coord_jsonw w;
    coord_jsonw_init(&w, &b);
    coord_jsonw_arr_begin(&w);
    coord_jsonw_credits(&w, 100000);    /* 0.1 */
    coord_jsonw_credits(&w, 240960);    /* 0.24096 */
    coord_jsonw_credits(&w, 100000000); /* 100 */
    coord_jsonw_credits(&w, -2000001);  /* -2.000001 */
    coord_jsonw_credits(&w, 0);
    coord_jsonw_arr_end(&w);
    assert_string_equal(b.data, "[0.1,0.24096,100,-2.000001,0]");
    co_buf_release(&b);
}

static void
test_escapes_and_invalid_utf8(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct coord_jsonw w;
    coord_jsonw_init(&w, &b);
    /* quote, backslash, newline, control, HTML-sensitive, valid é, lone 0xff, truncated 0xe2 */
    static const char in[] = "\"\\\n\x01<&>\xc3\xa9\xff\xe2\x82";
    coord_jsonw_strn(&w, in, sizeof(in) - 1);
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
    struct coord_jsonw w;
    coord_jsonw_init(&w, &b);
    static const char in[] = "\xed\xa0\x80" /* surrogate */ "\xc0\xaf" /* overlong '/' */
                             "\xf0\x9f\x98\x80";                       /* U+1F600, valid */
    coord_jsonw_strn(&w, in, sizeof(in) - 1);
    assert_string_equal(b.data, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\xf0\x9f\x98\x80\"");
    co_buf_release(&b);
}

static void
test_time(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct coord_jsonw w;
    coord_jsonw_init(&w, &b);
    coord_jsonw_obj_begin(&w);
    coord_jsonw_ktime(&w, "t", INT64_C(1795960274123));
    coord_jsonw_ktime(&w, "none", 0);
    coord_jsonw_obj_end(&w);
    assert_string_equal(b.data, "{\"t\":\"2026-11-29T13:51:14.123Z\",\"none\":null}");
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
