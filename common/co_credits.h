/*
 * Fixed-point credits: int64 micro-credits (1 credit = 1,000,000).  Never floating point in
 * arithmetic; doubles appear only at the JSON boundary and are converted exactly through their
 * shortest round-trip decimal text.
 */
#ifndef CO_CREDITS_H
#define CO_CREDITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_err.h"

#define CO_MICRO INT64_C(1000000)
/** Longest formatted amount: "-9223372036854.775808" plus NUL. */
#define CO_CREDITS_STRLEN 32

/**
 * Parse a decimal number ("12", "-0.5", "1.250000", "2.5e-3", "1E2") of @len bytes into
 * micro-credits.  Rejects empty input, junk, more than 6 decimals after applying the exponent,
 * NaN/Inf and values outside int64.  @what names the value in error messages.
 */
int co_credits_parse(const char *s, size_t len, const char *what, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Convert a JSON real to micro-credits exactly: the double's shortest round-trip decimal text is
 * parsed with co_credits_parse().  Rejects NaN, Inf, overflow and more than 6 decimals.
 */
int co_credits_from_double(double d, const char *what, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/** Convert a whole number of credits to micro-credits, rejecting overflow. */
int co_credits_from_int(int64_t whole, const char *what, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Format micro-credits as a decimal with the fewest digits that are exact ("100", "0.1",
 * "-2.000001") into @out.
 */
void co_credits_format(int64_t micro, char out[CO_CREDITS_STRLEN]);

/**
 * The job cost of API.md:
 *   cost = cores * per_core + ram_mb / 100 * per_100mb_ram
 * computed exactly and rounded half-up to micro-credits.  Errors on negative inputs or overflow.
 */
int co_credits_cost(int64_t cores, int64_t ram_mb, int64_t per_core_micro,
                    int64_t per_100mb_ram_micro, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/** a + b with overflow detection; returns -1 (and sets @err) on overflow. */
int co_credits_add(int64_t a, int64_t b, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

#endif
