/*
 * Unit tests of coordinator/coord_verify.c's pure parts: the result digest's byte layout, the
 * majority decision with tie-breaks, and a property test of the per-replica settlement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord_price.h"
#include "coord_verify.h"

static void
test_digest_layout(void **state)
{
    (void)state;
    char a[65], b[65];
    memset(a, 'a', 64);
    a[64] = '\0';
    memset(b, 'b', 64);
    b[64] = '\0';
    /* Artifacts given out of order: the digest sorts them by path. */
    const char *paths[] = {"b.txt", "a.txt"};
    const char *shas[] = {b, a};
    struct coord_verify_result r = {
        .has_exit_code = true,
        .exit_code = 0,
        .out = "hello\n",
        .out_len = 6,
        .n_artifacts = 2,
        .paths = paths,
        .sha256s = shas,
    };
    char hex[65];
    coord_verify_digest(&r, hex);
    /* sha256 of the README's layout, computed independently. */
    assert_string_equal(hex, "b465ae277d19ed40cc4547182ff2eb1a3a53a9307e5d165d5f91b926114ad83e");

    struct coord_verify_result t = {.failure = "timeout"};
    coord_verify_digest(&t, hex);
    assert_string_equal(hex, "cce81fb923002d1ac702c45c5c9e93c155a839c49e384d42555babdb3a5d88ec");

    /* One byte of stdout or another exit code changes it. */
    char h2[65];
    r.out = "hellO\n";
    coord_verify_digest(&r, h2);
    assert_string_not_equal(h2, "b465ae277d19ed40cc4547182ff2eb1a3a53a9307e5d165d5f91b926114ad83e");
    r.out = "hello\n";
    r.exit_code = 1;
    coord_verify_digest(&r, h2);
    assert_string_not_equal(h2, "b465ae277d19ed40cc4547182ff2eb1a3a53a9307e5d165d5f91b926114ad83e");
}

static void
test_decide(void **state)
{
    (void)state;
    size_t w = 99;
    bool closed[7] = {false};
    bool open1[7] = {false, true};
    assert_int_equal(coord_verify_majority(2), 2);
    assert_int_equal(coord_verify_majority(3), 2);
    assert_int_equal(coord_verify_majority(5), 3);
    /* Waits while a replica runs. */
    const char *d1[] = {"x", NULL};
    assert_int_equal(coord_verify_decide(2, 2, d1, open1, 0, &w), COORD_VERIFY_WAIT);
    /* 3 agree. */
    const char *d3[] = {"x", "x", "x"};
    assert_int_equal(coord_verify_decide(3, 3, d3, closed, 0, &w), COORD_VERIFY_AGREED);
    /* 2 of 3: the cheater loses. */
    const char *dc[] = {"x", "bad", "x"};
    assert_int_equal(coord_verify_decide(3, 3, dc, closed, 0, &w), COORD_VERIFY_AGREED);
    assert_string_equal(dc[w], "x");
    /* replicas 2 disagreeing: a tie-break, which decides. */
    const char *dt[] = {"x", "y", "y"};
    assert_int_equal(coord_verify_decide(2, 2, dt, closed, 0, &w), COORD_VERIFY_TIEBREAK);
    assert_int_equal(coord_verify_decide(2, 3, dt, closed, 1, &w), COORD_VERIFY_AGREED);
    assert_string_equal(dt[w], "y");
    /* All different: tie-breaks until none can help, then unverified. */
    const char *du[] = {"a", "b", "c", "d"};
    assert_int_equal(coord_verify_decide(2, 3, du, closed, 1, &w), COORD_VERIFY_TIEBREAK);
    assert_int_equal(coord_verify_decide(2, 4, du, closed, 2, &w), COORD_VERIFY_UNVERIFIED);
    /* replicas 5, all different: even 2 tie-breaks cannot make 3, so no tie-break is wasted. */
    const char *d5[] = {"a", "b", "c", "d", "e"};
    assert_int_equal(coord_verify_decide(5, 5, d5, closed, 0, &w), COORD_VERIFY_TIEBREAK);
    const char *d5b[] = {"a", "b", "c", "d", "e", "f"};
    assert_int_equal(coord_verify_decide(5, 6, d5b, closed, 1, &w), COORD_VERIFY_UNVERIFIED);
    /* Rows without a result (void) never agree. */
    const char *dv[] = {NULL, NULL, "x"};
    assert_int_equal(coord_verify_decide(3, 3, dv, closed, 0, &w), COORD_VERIFY_TIEBREAK);
}

static void
test_plan_examples(void **state)
{
    (void)state;
    struct coord_verify_plan p;
    bool agree3[] = {true, true, false};
    assert_int_equal(coord_verify_settle_plan(700, 3, 3, agree3, &p, NULL), 0);
    assert_int_equal(p.pay[0], 700);
    assert_int_equal(p.pay[1], 700);
    assert_int_equal(p.pay[2], 0);
    assert_int_equal(p.charge, 1400);
    assert_int_equal(p.refund, 700);
    /* replicas 2 + a tie-break agreeing with the first: the tie-break is paid what the loser
     * forfeited, the buyer pays exactly the hold. */
    bool tb[] = {true, false, true};
    assert_int_equal(coord_verify_settle_plan(500, 2, 3, tb, &p, NULL), 0);
    assert_int_equal(p.pay[0] + p.pay[2], 1000);
    assert_int_equal(p.pay[1], 0);
    assert_int_equal(p.refund, 0);
    /* Unverified: nobody paid, all refunded. */
    bool none[] = {false, false, false, false};
    assert_int_equal(coord_verify_settle_plan(500, 2, 4, none, &p, NULL), 0);
    assert_int_equal(p.charge, 0);
    assert_int_equal(p.refund, 1000);
    /* Bad input. */
    assert_int_equal(coord_verify_settle_plan(INT64_MAX, 3, 3, agree3, &p, NULL), -1);
    assert_int_equal(coord_verify_settle_plan(-1, 3, 3, agree3, &p, NULL), -1);
    assert_int_equal(coord_verify_settle_plan(1, 6, 3, agree3, &p, NULL), -1);
}

/*
 * Property: random unit costs, replica counts and agree/disagree/void patterns run through the
 * decision (with its tie-breaks) and the settlement.  Nothing is created or lost (payouts +
 * refund == hold), nobody goes negative, the buyer never pays more than the hold, and exactly
 * the agreeing replicas are paid, each the unit.
 */
static void
test_plan_property(void **state)
{
    (void)state;
    srand(14);
    const char *names[] = {"A", "B", "C"};
    for (int iter = 0; iter < 200000; iter++) {
        int replicas = 2 + rand() % 4;
        int64_t unit = rand() % 4 == 0 ? (int64_t)rand() % 10
                                       : ((int64_t)rand() << 20 ^ rand()) % INT64_C(1000000000000);
        const char *digests[COORD_VERIFY_RUNS_MAX];
        bool open[COORD_VERIFY_RUNS_MAX] = {false};
        size_t n = 0, winner = 0;
        int tiebreaks = 0;
        /* Each result: one of few digests (so majorities happen) or void. */
        for (; n < (size_t)replicas; n++)
            digests[n] = rand() % 8 == 0 ? NULL : names[rand() % (1 + rand() % 3)];
        enum coord_verify_step st;
        while ((st = coord_verify_decide(replicas, n, digests, open, tiebreaks, &winner)) ==
               COORD_VERIFY_TIEBREAK) {
            assert_true(n < COORD_VERIFY_RUNS_MAX);
            digests[n++] = rand() % 8 == 0 ? NULL : names[rand() % 3];
            tiebreaks++;
        }
        assert_true(st == COORD_VERIFY_AGREED || st == COORD_VERIFY_UNVERIFIED);
        assert_true(tiebreaks <= COORD_VERIFY_TIEBREAKS_MAX);
        bool agrees[COORD_VERIFY_RUNS_MAX] = {false};
        int n_agree = 0;
        for (size_t i = 0; i < n; i++) {
            agrees[i] =
                st == COORD_VERIFY_AGREED && digests[i] && strcmp(digests[i], digests[winner]) == 0;
            n_agree += agrees[i];
        }
        if (st == COORD_VERIFY_AGREED)
            assert_true(n_agree >= coord_verify_majority(replicas) && n_agree <= replicas);
        struct coord_verify_plan p;
        assert_int_equal(coord_verify_settle_plan(unit, replicas, n, agrees, &p, NULL), 0);
        int64_t hold = unit * replicas, paid = 0;
        for (size_t i = 0; i < n; i++) {
            assert_true(p.pay[i] >= 0);
            assert_int_equal(p.pay[i], agrees[i] ? unit : 0);
            paid += p.pay[i];
        }
        assert_int_equal(paid, p.charge);
        assert_true(p.charge >= 0 && p.charge <= hold);
        assert_true(p.refund >= 0);
        assert_int_equal(p.charge + p.refund, hold);
    }
}

/*
 * Priced replicas: each agreeing row is charged what its own run cost (metered: its wall time;
 * market: its seller's price), the fee comes out of that charge, the rest of the hold goes back.
 */
static void
test_due_examples(void **state)
{
    (void)state;
    struct coord_verify_plan p;
    /* 3 replicas holding 3 x 6000; two agree, charged 2000 and 3000; 10% fee; one mismatch. */
    bool agree[] = {true, false, true};
    int64_t due[] = {2000, 6000, 3000};
    assert_int_equal(coord_verify_settle_due(18000, 3, agree, due, 10, &p, NULL), 0);
    assert_int_equal(p.pay[0], 1800);
    assert_int_equal(p.fee[0], 200);
    assert_int_equal(p.pay[1] + p.fee[1], 0);
    assert_int_equal(p.pay[2], 2700);
    assert_int_equal(p.fee[2], 300);
    assert_int_equal(p.charge, 5000);
    assert_int_equal(p.refund, 13000);
    /* Rounding: the fee rounds down (floor(999 x 7 / 100) = 69). */
    bool one[] = {true};
    int64_t d999[] = {999};
    assert_int_equal(coord_verify_settle_due(1000, 1, one, d999, 7, &p, NULL), 0);
    assert_int_equal(p.fee[0], 69);
    assert_int_equal(p.pay[0], 930);
    assert_int_equal(p.refund, 1);
    /* Dues beyond the hold are cut at it, in row order. */
    bool both[] = {true, true};
    int64_t big[] = {700, 700};
    assert_int_equal(coord_verify_settle_due(1000, 2, both, big, 0, &p, NULL), 0);
    assert_int_equal(p.pay[0], 700);
    assert_int_equal(p.pay[1], 300);
    assert_int_equal(p.refund, 0);
    /* Bad input. */
    int64_t neg[] = {-1};
    assert_int_equal(coord_verify_settle_due(1000, 1, one, neg, 0, &p, NULL), -1);
    assert_int_equal(coord_verify_settle_due(-1, 1, one, d999, 0, &p, NULL), -1);
    assert_int_equal(coord_verify_settle_due(1000, 1, one, d999, 101, &p, NULL), -1);
    assert_int_equal(
        coord_verify_settle_due(1000, COORD_VERIFY_RUNS_MAX + 1, one, d999, 0, &p, NULL), -1);
}

/*
 * Property: random per-replica holds, prices, wall times, fees and agreement patterns, each
 * row's due computed by coord_price as the store does.  Nothing is created or lost (payouts +
 * fees + refund == hold), no amount is negative, an agreeing row is charged exactly its due (a
 * due never exceeds the per-replica hold, and at most `replicas` rows agree), a fee never exceeds
 * its percentage, and a row that does not agree moves nothing.
 */
static void
test_due_property(void **state)
{
    (void)state;
    srand(1414);
    for (int iter = 0; iter < 200000; iter++) {
        int replicas = 2 + rand() % 4;
        size_t n = (size_t)replicas + (size_t)(rand() % 3);
        int64_t cores = 1 + rand() % 8, ram = 64 + rand() % 8192, timeout = 1 + rand() % 3600;
        int64_t fee_pct = rand() % 3 == 0 ? 0 : rand() % 101;
        struct coord_rate max = {rand() % 100000, rand() % 100000};
        int64_t unit;
        assert_int_equal(coord_price_amount(&max, cores, ram, timeout, NULL, &unit, NULL), 0);
        bool agrees[COORD_VERIFY_RUNS_MAX] = {false};
        int64_t due[COORD_VERIFY_RUNS_MAX] = {0};
        int n_agree = 0;
        for (size_t i = 0; i < n; i++) {
            struct coord_price_job pj = {
                .pricing = rand() % 2 ? COORD_PRICING_METERED : COORD_PRICING_MARKET,
                .hold = unit,
                /* a seller's price within the maximum (metered: the configured one) */
                .rate = {max.per_core_second ? rand() % (max.per_core_second + 1) : 0,
                         max.per_gb_second ? rand() % (max.per_gb_second + 1) : 0},
                .cores = cores,
                .ram_mb = ram,
                .timeout_seconds = timeout,
                .wall_ms = (int64_t)rand() % (timeout * 1000 + 5000),
                .timed_out = rand() % 10 == 0,
            };
            struct coord_settlement st;
            coord_price_settle(&pj, 0, &st);
            due[i] = st.charge;
            agrees[i] = n_agree < replicas && rand() % 3 != 0;
            n_agree += agrees[i];
        }
        struct coord_verify_plan p;
        int64_t hold = unit * replicas, moved = 0;
        assert_int_equal(coord_verify_settle_due(hold, n, agrees, due, fee_pct, &p, NULL), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(p.pay[i] >= 0 && p.fee[i] >= 0);
            assert_true(due[i] <= unit);
            assert_int_equal(p.pay[i] + p.fee[i], agrees[i] ? due[i] : 0);
            assert_true(p.fee[i] * 100 <= (p.pay[i] + p.fee[i]) * fee_pct);
            moved += p.pay[i] + p.fee[i];
        }
        assert_int_equal(moved, p.charge);
        assert_true(p.refund >= 0);
        assert_int_equal(p.charge + p.refund, hold);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_layout), cmocka_unit_test(test_decide),
        cmocka_unit_test(test_plan_examples), cmocka_unit_test(test_plan_property),
        cmocka_unit_test(test_due_examples),  cmocka_unit_test(test_due_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
