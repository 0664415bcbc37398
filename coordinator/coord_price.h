/*
 * coord_price: the money of a job under PRICING=flat, metered or market, as pure integer
 * arithmetic on micro-credits (no I/O, no state: any thread).  The store's settlement and
 * coord_verify call it; nothing else computes a hold, a charge, a refund, a payout or a fee.
 *
 * The one rounding rule: every amount is computed exactly in integers and divided once, at the
 * end, rounding down (a fraction of a micro-credit is dropped).  So a charge never exceeds its
 * exact value, a fee never exceeds its percentage, and a longer run never costs less.
 *
 *   metered/market unit rate (micro-credits per second of a reservation of C cores, R MB):
 *       rate = C * per_core_second + R * per_gb_second / 1024      (1 GB = 1024 MB)
 *   amount for S seconds = floor(S * (C * per_core_second * 1024 + R * per_gb_second) / 1024)
 *   hold   = amount for timeout_seconds (metered: the configured prices; market: the buyer's
 *            maximum)
 *   charge = amount for the started seconds of wall time: ceil(wall_ms / 1000), at least 1,
 *            at most timeout_seconds (metered: the configured prices; market: the seller's)
 *   refund = hold - charge
 *   fee    = floor(charge * PLATFORM_FEE_PERCENT / 100), payout = charge - fee
 *   flat:    hold = the original cost formula, charge = hold when the job ran, 0 when refunded.
 */
#ifndef COORD_PRICE_H
#define COORD_PRICE_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"

enum coord_pricing {
    COORD_PRICING_FLAT = 0,
    COORD_PRICING_METERED,
    COORD_PRICING_MARKET,
    COORD_PRICING_COUNT
};

/** "flat", "metered", "market"; never NULL. */
const char *coord_pricing_name(enum coord_pricing p);
/** Parse a mode name; -1 if unknown. */
int coord_pricing_parse(const char *s);

/** Prices in micro-credits per core-second and per GB-second (both >= 0). */
struct coord_rate {
    int64_t per_core_second;
    int64_t per_gb_second;
};

/**
 * The amount for @seconds of a reservation of @cores and @ram_mb at @rate (the formula above).
 * CO_E_RANGE (naming @field when not NULL) if a value is negative or anything overflows int64.
 */
int coord_price_amount(const struct coord_rate *rate, int64_t cores, int64_t ram_mb,
                       int64_t seconds, const char *field, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/** Started seconds of @wall_ms: ceil(wall_ms / 1000), at least 1, at most @timeout_seconds. */
int64_t coord_price_seconds(int64_t wall_ms, int64_t timeout_seconds);

/** True when @a is at most @b in both prices (a seller's price within a buyer's maximum). */
bool coord_rate_within(const struct coord_rate *a, const struct coord_rate *b);

/** Order of two prices for the same reservation: <0 when @a is cheaper, 0 equal, >0 dearer. */
int coord_rate_cmp(const struct coord_rate *a, const struct coord_rate *b, int64_t cores,
                   int64_t ram_mb);

/** How a job's hold is split at settlement (all >= 0, charge + refund == hold). */
struct coord_settlement {
    int64_t charge; /* leaves the buyer's hold */
    int64_t refund; /* goes back to the buyer */
    int64_t payout; /* to the seller: charge - fee */
    int64_t fee;    /* to the platform */
};

/**
 * Split @hold given the amount @due for the work (clamped to 0..@hold) and @fee_percent
 * (0-100).  Nothing is created or lost: charge + refund == hold, payout + fee == charge.
 */
void coord_price_split(int64_t hold, int64_t due, int64_t fee_percent,
                       struct coord_settlement *out);

/** What settling a job needs to know (a snapshot of its row and its end). */
struct coord_price_job {
    enum coord_pricing pricing;
    int64_t hold;            /* the job's cost: what was held at submit */
    struct coord_rate rate;  /* metered: the prices at submit; market: the chosen seller's */
    int64_t cores, ram_mb;   /* the paid reservation */
    int64_t timeout_seconds; /* the hold covers this many seconds */
    int64_t wall_ms;         /* wall time used */
    bool timed_out;          /* ended by its timeout: charged every second of it */
    bool refund_all;         /* not run (platform fault, cancelled before start, lost) */
};

/**
 * The settlement of @j with @fee_percent.  Flat: the whole hold is charged (or refunded when
 * @j->refund_all).  Metered and market: the started seconds at @j->rate, never above the hold.
 */
void coord_price_settle(const struct coord_price_job *j, int64_t fee_percent,
                        struct coord_settlement *out);

/**
 * Start-up check of configured prices: the hold of the largest job (@max_cores, @max_ram_mb,
 * @max_seconds) must fit int64.  The error names @core_name or @gb_name (the setting to lower).
 */
int coord_price_check_rate(const struct coord_rate *rate, int64_t max_cores, int64_t max_ram_mb,
                           int64_t max_seconds, const char *core_name, const char *gb_name,
                           co_err *err) __attribute__((warn_unused_result));

#endif
