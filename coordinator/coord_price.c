/* coord_price: hold, charge, refund, payout and fee in micro-credits (see coord_price.h). */
#include "coord_price.h"

#include <string.h>

static const char *const pricing_names[COORD_PRICING_COUNT] = {"flat", "metered", "market"};

const char *
coord_pricing_name(enum coord_pricing p)
{
    return (unsigned)p < COORD_PRICING_COUNT ? pricing_names[p] : "flat";
}

int
coord_pricing_parse(const char *s)
{
    for (int i = 0; s && i < COORD_PRICING_COUNT; i++) {
        if (strcmp(s, pricing_names[i]) == 0)
            return i;
    }
    return -1;
}

/* Micro-credits per 1024 seconds of the reservation: C * pc * 1024 + R * pg (exact). */
static bool
rate_scaled(const struct coord_rate *rate, int64_t cores, int64_t ram_mb, int64_t *out)
{
    int64_t a, b;
    return !__builtin_mul_overflow(cores, rate->per_core_second, &a) &&
           !__builtin_mul_overflow(a, INT64_C(1024), &a) &&
           !__builtin_mul_overflow(ram_mb, rate->per_gb_second, &b) &&
           !__builtin_add_overflow(a, b, out);
}

int
coord_price_amount(const struct coord_rate *rate, int64_t cores, int64_t ram_mb, int64_t seconds,
                   const char *field, int64_t *out, co_err *err)
{
    int64_t scaled, total;
    if (cores < 0 || ram_mb < 0 || seconds < 0 || rate->per_core_second < 0 ||
        rate->per_gb_second < 0)
        return co_err_field(err, CO_E_RANGE, field, "negative price, reservation or time");
    if (!rate_scaled(rate, cores, ram_mb, &scaled) ||
        __builtin_mul_overflow(scaled, seconds, &total))
        return co_err_field(err, CO_E_RANGE, field,
                            "price too high: %lld seconds of %lld cores and %lld MB overflow "
                            "64-bit micro-credits",
                            (long long)seconds, (long long)cores, (long long)ram_mb);
    *out = total / 1024; /* the one rounding: down */
    return 0;
}

int64_t
coord_price_seconds(int64_t wall_ms, int64_t timeout_seconds)
{
    int64_t s = wall_ms <= 0 ? 1 : wall_ms / 1000 + (wall_ms % 1000 != 0);
    if (s > timeout_seconds)
        s = timeout_seconds;
    return s < 1 ? 1 : s;
}

bool
coord_rate_within(const struct coord_rate *a, const struct coord_rate *b)
{
    return a->per_core_second <= b->per_core_second && a->per_gb_second <= b->per_gb_second;
}

int
coord_rate_cmp(const struct coord_rate *a, const struct coord_rate *b, int64_t cores,
               int64_t ram_mb)
{
    __int128 x = (__int128)cores * a->per_core_second * 1024 + (__int128)ram_mb * a->per_gb_second;
    __int128 y = (__int128)cores * b->per_core_second * 1024 + (__int128)ram_mb * b->per_gb_second;
    return (x > y) - (x < y);
}

void
coord_price_split(int64_t hold, int64_t due, int64_t fee_percent, struct coord_settlement *out)
{
    if (hold < 0)
        hold = 0;
    if (due < 0)
        due = 0;
    if (due > hold)
        due = hold;
    if (fee_percent < 0)
        fee_percent = 0;
    if (fee_percent > 100)
        fee_percent = 100;
    out->charge = due;
    out->refund = hold - due;
    /* floor(due * pct / 100) without overflow: split due into hundreds and the rest. */
    out->fee = due / 100 * fee_percent + due % 100 * fee_percent / 100;
    out->payout = due - out->fee;
}

void
coord_price_settle(const struct coord_price_job *j, int64_t fee_percent,
                   struct coord_settlement *out)
{
    int64_t due = j->hold;
    if (j->refund_all) {
        due = 0;
    } else if (j->pricing != COORD_PRICING_FLAT) {
        int64_t secs =
            j->timed_out ? j->timeout_seconds : coord_price_seconds(j->wall_ms, j->timeout_seconds);
        /* Overflow cannot happen below the hold; if it did, the hold caps the charge. */
        if (coord_price_amount(&j->rate, j->cores, j->ram_mb, secs, NULL, &due, NULL) < 0)
            due = j->hold;
    }
    coord_price_split(j->hold, due, fee_percent, out);
}

int
coord_price_check_rate(const struct coord_rate *rate, int64_t max_cores, int64_t max_ram_mb,
                       int64_t max_seconds, const char *core_name, const char *gb_name, co_err *err)
{
    int64_t v;
    struct coord_rate core_only = {rate->per_core_second, 0};
    struct coord_rate gb_only = {0, rate->per_gb_second};
    const char *name = core_name;
    if (coord_price_amount(&core_only, max_cores, max_ram_mb, max_seconds, NULL, &v, NULL) < 0 ||
        (name = gb_name,
         coord_price_amount(&gb_only, max_cores, max_ram_mb, max_seconds, NULL, &v, NULL) < 0) ||
        (name = core_name,
         coord_price_amount(rate, max_cores, max_ram_mb, max_seconds, NULL, &v, NULL) < 0))
        return co_err_field(err, CO_E_RANGE, name,
                            "invalid %s: the hold of the largest job (%lld cores, %lld MB, "
                            "timeout %lld s) overflows 64-bit micro-credits; lower the price",
                            name, (long long)max_cores, (long long)max_ram_mb,
                            (long long)max_seconds);
    return 0;
}
