/*
 * Unit tests of coordinator/coord_price.c: hand-computed amounts at the rounding edges, the
 * start-up overflow check of the settings, and a property test of settlement (random prices,
 * reservations and wall times: nothing created or lost, nobody negative, charge <= hold).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord_config.h"
#include "coord_price.h"
#include "proto_job.h"

static void
test_seconds_round_up(void **state)
{
    (void)state;
    assert_int_equal(coord_price_seconds(1, 60), 1);       /* 1 ms is a started second */
    assert_int_equal(coord_price_seconds(1000, 60), 1);    /* exactly 1 s */
    assert_int_equal(coord_price_seconds(1001, 60), 2);    /* 1 s + 1 ms */
    assert_int_equal(coord_price_seconds(0, 60), 1);       /* ran: at least one second */
    assert_int_equal(coord_price_seconds(600000, 60), 60); /* never past the timeout */
}

static void
test_amount_hand_computed(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    int64_t v;
    /* 2 cores at 100 micro/core-s, 512 MB at 50 micro/GB-s: 200 + 25 = 225 micro per second. */
    struct coord_rate r = {100, 50};
    assert_int_equal(coord_price_amount(&r, 2, 512, 1, NULL, &v, &err), 0);
    assert_int_equal(v, 225);
    assert_int_equal(coord_price_amount(&r, 2, 512, 3600, NULL, &v, &err), 0);
    assert_int_equal(v, 810000);
    /* 100 MB at 7 micro/GB-s: 700/1024 per second, rounded down once at the end. */
    struct coord_rate g = {0, 7};
    assert_int_equal(coord_price_amount(&g, 1, 100, 1, NULL, &v, &err), 0);
    assert_int_equal(v, 0); /* 0.68 */
    assert_int_equal(coord_price_amount(&g, 1, 100, 2, NULL, &v, &err), 0);
    assert_int_equal(v, 1); /* 1.37 */
    assert_int_equal(coord_price_amount(&g, 1, 100, 1024, NULL, &v, &err), 0);
    assert_int_equal(v, 700); /* exact */
    /* Overflow is an error naming the field. */
    struct coord_rate big = {INT64_MAX / 2, 0};
    assert_int_equal(coord_price_amount(&big, 4, 1, 1, "max_price_per_core_second", &v, &err), -1);
    assert_string_equal(err.field, "max_price_per_core_second");
}

static void
test_split_and_fee(void **state)
{
    (void)state;
    struct coord_settlement st;
    coord_price_split(1000, 333, 10, &st);
    assert_int_equal(st.charge, 333);
    assert_int_equal(st.refund, 667);
    assert_int_equal(st.fee, 33); /* floor(33.3) */
    assert_int_equal(st.payout, 300);
    coord_price_split(1000, 5000, 0, &st); /* never more than the hold */
    assert_int_equal(st.charge, 1000);
    assert_int_equal(st.refund, 0);
    coord_price_split(INT64_MAX, INT64_MAX, 100, &st); /* no overflow in the fee */
    assert_int_equal(st.fee, INT64_MAX);
    assert_int_equal(st.payout, 0);
}

static void
test_settle_modes(void **state)
{
    (void)state;
    struct coord_settlement st;
    struct coord_price_job j = {.pricing = COORD_PRICING_FLAT, .hold = 110000, .wall_ms = 5};
    coord_price_settle(&j, 0, &st);
    assert_int_equal(st.charge, 110000); /* flat: the original formula, the whole hold */
    j.refund_all = true;
    coord_price_settle(&j, 0, &st);
    assert_int_equal(st.charge, 0);
    assert_int_equal(st.refund, 110000);

    struct coord_price_job m = {.pricing = COORD_PRICING_METERED,
                                .rate = {100, 50},
                                .cores = 2,
                                .ram_mb = 512,
                                .timeout_seconds = 10,
                                .hold = 2250};
    int64_t want[][2] = {{1, 225}, {1000, 225}, {1001, 450}, {9999, 2250}, {50000, 2250}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        m.wall_ms = want[i][0];
        coord_price_settle(&m, 0, &st);
        assert_int_equal(st.charge, want[i][1]);
        assert_int_equal(st.refund, 2250 - want[i][1]);
    }
    m.wall_ms = 1;
    m.timed_out = true; /* ended by its timeout: every second of it */
    coord_price_settle(&m, 0, &st);
    assert_int_equal(st.charge, 2250);
}

static void
test_config_rejects_overflowing_prices(void **state)
{
    (void)state;
    struct coord_config c;
    co_err err = CO_ERR_INIT;
    setenv("DEBUG", "true", 1);
    setenv("PRICING", "metered", 1);
    setenv("PRICE_PER_CORE_SECOND", "1000000", 1); /* 10^12 micro x 256 x 1024 x 604800 */
    assert_int_equal(coord_config_load(&c, &err), -1);
    assert_string_equal(err.field, "PRICE_PER_CORE_SECOND");
    assert_non_null(strstr(err.msg, "overflows"));
    setenv("PRICE_PER_CORE_SECOND", "0.0001", 1);
    setenv("PRICE_PER_GB_SECOND", "100000", 1);
    err = (co_err)CO_ERR_INIT;
    assert_int_equal(coord_config_load(&c, &err), -1);
    assert_string_equal(err.field, "PRICE_PER_GB_SECOND");
    setenv("PRICE_PER_GB_SECOND", "0.00005", 1);
    assert_int_equal(coord_config_load(&c, &err), 0);
    assert_int_equal(c.pricing, COORD_PRICING_METERED);
    assert_int_equal(c.price_per_core_second, 100);
    coord_config_release(&c);
    setenv("PRICING", "auction", 1);
    assert_int_equal(coord_config_load(&c, &err), -1);
    assert_string_equal(err.field, "PRICING");
    setenv("PRICING", "flat", 1);
    setenv("PLATFORM_FEE_PERCENT", "101", 1);
    assert_int_equal(coord_config_load(&c, &err), -1);
    assert_string_equal(err.field, "PLATFORM_FEE_PERCENT");
    unsetenv("PLATFORM_FEE_PERCENT");
    unsetenv("PRICING");
    unsetenv("PRICE_PER_CORE_SECOND");
    unsetenv("PRICE_PER_GB_SECOND");
    unsetenv("DEBUG");
}

/* A small deterministic generator, so a failure repeats. */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int64_t
rnd_range(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

/*
 * Property: for random prices (the buyer's maximum and a seller at or below it), reservations,
 * timeouts, wall times and fees, the settlement moves exactly the hold (charge + refund ==
 * hold, payout + fee == charge), no part is negative, the charge never exceeds the hold, and a
 * longer run never costs less.  Balances of buyer, seller and platform after hold and settlement
 * add up to what there was.
 */
static void
test_property_settlement(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 200000; i++) {
        struct coord_rate max = {rnd_range(&seed, 0, 5000000), rnd_range(&seed, 0, 5000000)};
        struct coord_rate seller = {rnd_range(&seed, 0, max.per_core_second),
                                    rnd_range(&seed, 0, max.per_gb_second)};
        int64_t cores = rnd_range(&seed, 1, 256), ram = rnd_range(&seed, 1, INT64_C(1) << 20);
        int64_t timeout = rnd_range(&seed, 1, PROTO_TIMEOUT_MAX);
        int64_t wall = rnd_range(&seed, 0, (timeout + 60) * 1000);
        int64_t fee = rnd_range(&seed, 0, 100);
        int pricing = (int)rnd_range(&seed, 0, 2);
        co_err err = CO_ERR_INIT;
        int64_t hold;
        if (coord_price_amount(pricing == COORD_PRICING_MARKET ? &max : &seller, cores, ram,
                               timeout, NULL, &hold, &err) < 0)
            continue; /* overflow is refused at submit */
        struct coord_price_job j = {
            .pricing = (enum coord_pricing)pricing,
            .hold = hold,
            .rate = seller,
            .cores = cores,
            .ram_mb = ram,
            .timeout_seconds = timeout,
            .wall_ms = wall,
            .timed_out = rnd_range(&seed, 0, 9) == 0,
            .refund_all = rnd_range(&seed, 0, 9) == 0,
        };
        struct coord_settlement st, longer;
        coord_price_settle(&j, fee, &st);
        assert_true(st.charge >= 0 && st.refund >= 0 && st.payout >= 0 && st.fee >= 0);
        assert_true(st.charge <= hold);
        assert_true(st.charge + st.refund == hold);
        assert_true(st.payout + st.fee == st.charge);
        assert_true(st.fee * 100 <= st.charge * fee);
        /* Balances: the buyer had B, paid the hold, got the refund; seller and platform 0. */
        int64_t buyer = INT64_C(1) << 62, before = buyer;
        buyer = buyer - hold + st.refund;
        assert_true(buyer >= 0);
        assert_true(buyer + st.payout + st.fee == before);
        /* Monotone: a longer run of the same job never costs less. */
        j.wall_ms = wall + rnd_range(&seed, 0, 5000);
        coord_price_settle(&j, fee, &longer);
        assert_true(longer.charge >= st.charge);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seconds_round_up),
        cmocka_unit_test(test_amount_hand_computed),
        cmocka_unit_test(test_split_and_fee),
        cmocka_unit_test(test_settle_modes),
        cmocka_unit_test(test_config_rejects_overflowing_prices),
        cmocka_unit_test(test_property_settlement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
