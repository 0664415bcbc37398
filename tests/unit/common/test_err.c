#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "co_err.h"

static int
fails_with_context(co_err *err)
{
    if (co_err_sys(err, ENOENT, "cannot open '%s'", "/nope") < 0)
        return co_err_wrap(err, "job %d", 42);
    return 0;
}

static void
test_set_and_wrap(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    assert_int_equal(fails_with_context(&err), -1);
    assert_int_equal(err.code, CO_E_SYS);
    assert_int_equal(err.sys_errno, ENOENT);
    assert_string_equal(err.msg, "job 42: cannot open '/nope': No such file or directory");
}

static void
test_field(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    assert_int_equal(co_err_field(&err, CO_E_INVAL, "priority", "must be %d-%d", 1, 10), -1);
    assert_string_equal(err.field, "priority");
    assert_string_equal(err.msg, "must be 1-10");
    co_err_wrap(&err, "submit");
    assert_string_equal(err.field, "priority"); /* wrapping keeps the field */
    assert_string_equal(err.msg, "submit: must be 1-10");
    co_err_clear(&err);
    assert_int_equal(err.code, CO_OK);
    assert_string_equal(err.msg, "");
    assert_string_equal(err.field, "");
}

static void
test_null_err_and_long_messages(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    char big[3000];
    assert_int_equal(co_err_set(NULL, CO_E_INVAL, "dropped"), -1);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    co_err_set(&err, CO_E_INVAL, "%s", big);
    assert_int_equal(strlen(err.msg), CO_ERR_MSG_MAX - 1);
    co_err_wrap(&err, "%s", big);
    assert_int_equal(strlen(err.msg), CO_ERR_MSG_MAX - 1);
    assert_string_equal(co_err_code_name(CO_E_NOTFOUND), "not_found");
    assert_string_equal(co_err_code_name(CO_E_FUNDS), "insufficient_credits");
    assert_string_equal(co_err_code_name(CO_E_FORBIDDEN), "forbidden");
    assert_string_equal(co_err_code_name((enum co_errcode)999), "unknown");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_wrap),
        cmocka_unit_test(test_field),
        cmocka_unit_test(test_null_err_and_long_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
