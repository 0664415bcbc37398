#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_buf.h"

static void
test_append_and_steal(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    co_buf_puts(&b, "abc");
    co_buf_putc(&b, '-');
    co_buf_append(&b, "xyz\0q", 5);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "abc-xyz\0q", 9);
    assert_int_equal(b.data[9], '\0');
    size_t len;
    char *s = co_buf_steal(&b, &len);
    assert_int_equal(len, 9);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(s);
    s = co_buf_steal(&b, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
}

static void
test_printf_growth(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        co_buf_printf(&b, "%04d,", i);
    assert_int_equal(b.len, 5000);
    assert_memory_equal(b.data + 4995, "0999,", 5);
    char big[1000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    co_buf_reset(&b);
    co_buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[1000], '>');
    co_buf_release(&b);
    assert_null(b.data);
}

static void
test_consume(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    co_buf_puts(&b, "hello world");
    co_buf_consume(&b, 6);
    assert_string_equal(b.data, "world");
    co_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    co_buf_release(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_steal),
        cmocka_unit_test(test_printf_growth),
        cmocka_unit_test(test_consume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
