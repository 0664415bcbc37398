#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "co_log.h"

static void
test_levels(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    enum co_log_level l;
    assert_int_equal(co_log_parse_level("debug", &l, &err), 0);
    assert_int_equal(l, CO_LOG_DEBUG);
    assert_int_equal(co_log_parse_level("WARNING", &l, &err), 0);
    assert_int_equal(l, CO_LOG_WARNING);
    assert_int_equal(co_log_parse_level("WARN", &l, &err), 0);
    assert_int_equal(co_log_parse_level("loud", &l, &err), -1);
    assert_non_null(strstr(err.msg, "LOG_LEVEL"));
}

static void
test_file_output(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    char path[] = "/tmp/co_test_log_XXXXXX";
    int fd = mkstemp(path);
    char buf[4096];
    ssize_t n;

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(co_log_init(CO_LOG_INFO, path, &err), 0);
    co_debug("hidden event n=%d", 1);
    co_info("http request method=%s status=%d", "GET", 200);
    co_error("two\nlines");
    co_log_close();
    fd = open(path, O_RDONLY);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = 0;
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "level=INFO http request method=GET status=200\n"));
    assert_non_null(strstr(buf, "level=ERROR two lines\n")); /* no forged line */
    assert_int_equal(buf[4], '-');
    assert_int_equal(co_log_init(CO_LOG_INFO, "/nonexistent/dir/log", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/log"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_file_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
