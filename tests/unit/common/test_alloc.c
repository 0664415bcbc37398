#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "co_alloc.h"

static void
test_strings(void **state)
{
    (void)state;
    co_autofree char *a = co_xstrdup("hello");
    co_autofree char *b = co_xstrndup("hello world", 5);
    co_autofree char *c = co_xasprintf("%s-%d", "x", 7);
    assert_string_equal(a, "hello");
    assert_string_equal(b, "hello");
    assert_string_equal(c, "x-7");
    void *z = co_xmalloc(0);
    assert_non_null(z);
    free(z);
}

static void
test_strlcpy(void **state)
{
    (void)state;
    char buf[4];
    assert_int_equal(co_strlcpy(buf, "ab", sizeof(buf)), 2);
    assert_string_equal(buf, "ab");
    assert_int_equal(co_strlcpy(buf, "abcdef", sizeof(buf)), 6);
    assert_string_equal(buf, "abc");
}

static void
test_consttime(void **state)
{
    (void)state;
    assert_true(co_consttime_eq("secret", 6, "secret", 6));
    assert_false(co_consttime_eq("secreT", 6, "secret", 6));
    assert_false(co_consttime_eq("secret1", 7, "secret", 6));
    assert_false(co_consttime_eq("secre", 5, "secret", 6));
    assert_false(co_consttime_eq("", 0, "secret", 6));
    assert_true(co_consttime_eq("", 0, "", 0));
    /* A prefix with NULs must not match an empty or shorter secret. */
    assert_false(co_consttime_eq("\0\0", 2, "", 0));
}

static void
test_steal_and_cleanup(void **state)
{
    (void)state;
    char *p = co_xstrdup("x");
    char *q = co_steal(&p);
    assert_null(p);
    assert_string_equal(q, "x");
    free(q);
    int fd = open("/dev/null", O_RDONLY);
    int moved;
    {
        co_autoclose int tmp = fd;
        moved = co_steal_fd(&tmp);
        assert_int_equal(tmp, -1);
    }
    assert_true(fcntl(moved, F_GETFD) >= 0); /* still open after the scope */
    close(moved);
    {
        co_autoclose int tmp2 = open("/dev/null", O_RDONLY);
        fd = tmp2;
    }
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed by the cleanup */
}

static void
test_arrays(void **state)
{
    (void)state;
    int *v = co_xcalloc(4, sizeof(int));
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i], 0);
    v = co_xreallocarray(v, 8, sizeof(int));
    v[7] = 3;
    assert_int_equal(v[7], 3);
    free(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),   cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_consttime), cmocka_unit_test(test_steal_and_cleanup),
        cmocka_unit_test(test_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
