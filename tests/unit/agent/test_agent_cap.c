/* Unit tests for agent/agent_cap.c: capacity accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_cap.h"

static void
test_fit_take_put(void **state)
{
    (void)state;
    struct agent_cap c;
    agent_cap_init(&c, 2, 1000);
    assert_true(agent_cap_fits(&c, 2, 1000)); /* a job may use the whole machine */
    assert_false(agent_cap_fits(&c, 3, 10));
    assert_false(agent_cap_fits(&c, 1, 1001));
    assert_false(agent_cap_fits(&c, 0, 10));
    assert_false(agent_cap_fits(&c, 1, 0));
    assert_true(agent_cap_take(&c, 1, 600));
    assert_int_equal(agent_cap_free_cores(&c), 1);
    assert_int_equal(agent_cap_free_ram_mb(&c), 400);
    assert_false(agent_cap_take(&c, 1, 500)); /* RAM does not fit: nothing taken */
    assert_int_equal(agent_cap_free_cores(&c), 1);
    assert_true(agent_cap_take(&c, 1, 400));
    assert_false(agent_cap_fits(&c, 1, 1));
    assert_int_equal(c.jobs, 2);
    agent_cap_put(&c, 1, 600);
    assert_int_equal(agent_cap_free_cores(&c), 1);
    assert_int_equal(agent_cap_free_ram_mb(&c), 600);
    agent_cap_put(&c, 1, 400);
    assert_int_equal(agent_cap_free_cores(&c), 2);
    assert_int_equal(agent_cap_free_ram_mb(&c), 1000);
    assert_int_equal(c.jobs, 0);
    /* Over-release is clamped, never more free than the total. */
    agent_cap_put(&c, 5, 5000);
    assert_int_equal(agent_cap_free_cores(&c), 2);
    assert_int_equal(agent_cap_free_ram_mb(&c), 1000);
}

static void
test_huge_requests(void **state)
{
    (void)state;
    struct agent_cap c;
    agent_cap_init(&c, 4, 4096);
    assert_false(agent_cap_fits(&c, INT64_MAX, 1));
    assert_false(agent_cap_fits(&c, 1, INT64_MAX));
    assert_false(agent_cap_take(&c, INT64_MAX, INT64_MAX));
    assert_int_equal(agent_cap_free_cores(&c), 4);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_take_put),
        cmocka_unit_test(test_huge_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
