/* Unit tests of coordinator/coord_fault.c: DEBUG_FAULTS parsing and the commit counter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord_fault.h"

static void
test_off(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_fault_init(NULL, &err), 0);
    assert_false(coord_fault_armed);
    assert_int_equal(coord_fault_init("", &err), 0);
    assert_false(coord_fault_armed);
    /* Off: no commit is ever lost, the hooks return at once. */
    for (int i = 0; i < 10; i++)
        assert_false(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM));
    coord_fault_claim_hold("j");
    coord_fault_hello_gap("w");
}

static void
test_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "bogus",
        "commit_lost",
        "commit_lost:claim",
        "commit_lost:claim:0",
        "commit_lost:claim:-1",
        "commit_lost:claim:2x",
        "commit_lost:finish:1",
        "commit_lost:claim:1:2",
        "hello_gap_ms",
        "hello_gap_ms:",
        "hello_gap_ms:abc",
        "hello_gap_ms:86400001",
        "claim_hold_ms:0",
        "commit_lost:claim:1,",
        ",hello_gap_ms:10",
        "commit_lost:claim:1,,hello_gap_ms:10",
        "Hello_gap_ms:10",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        co_err err = CO_ERR_INIT;
        assert_int_equal(coord_fault_init(bad[i], &err), -1);
        assert_int_equal(err.code, CO_E_INVAL);
        assert_non_null(strstr(err.msg, "DEBUG_FAULTS"));
        assert_false(coord_fault_armed); /* nothing armed by a bad value */
        assert_false(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM));
    }
}

static void
test_commit_lost_nth(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_fault_init("hello_gap_ms:1,commit_lost:claim:3", &err), 0);
    assert_true(coord_fault_armed);
    /* Transactions without the kind are not counted. */
    assert_false(coord_fault_commit_lost(0));
    assert_false(coord_fault_commit_lost(0));
    assert_false(coord_fault_commit_lost(0));
    assert_false(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM)); /* 1 */
    assert_false(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM)); /* 2 */
    assert_true(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM));  /* 3: lost */
    for (int i = 0; i < 20; i++)
        assert_false(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM)); /* once only */
    /* A new init starts counting again. */
    assert_int_equal(coord_fault_init("commit_lost:claim:1", &err), 0);
    assert_true(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM));
    assert_false(coord_fault_commit_lost(COORD_FAULT_TX_CLAIM));
    assert_int_equal(coord_fault_init(NULL, &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_commit_lost_nth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
