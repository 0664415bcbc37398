#include "co_credits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __int128 i128;

/* Digits kept from a mantissa: more than this cannot fit an int64 of micro-credits anyway. */
#define MAX_DIGITS 64

int
co_credits_parse(const char *s, size_t len, const char *what, int64_t *out, co_err *err)
{
    char digs[MAX_DIGITS];
    size_t nd = 0, i = 0;
    bool neg = false, any = false, nonzero_dropped = false;
    long frac = 0, exp = 0;
    i128 v = 0;

    if (what == NULL)
        what = "amount";
    if (len == 0)
        return co_err_field(err, CO_E_INVAL, what, "invalid %s: empty", what);
    if (s[i] == '-' || s[i] == '+') {
        neg = s[i] == '-';
        i++;
    }
    /* Mantissa: digits, optionally one '.', more digits. Leading zeros are not significant. */
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        any = true;
        if (nd == 0 && s[i] == '0')
            continue;
        if (nd == MAX_DIGITS)
            goto overflow;
        digs[nd++] = s[i];
    }
    if (i < len && s[i] == '.') {
        i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            any = true;
            frac++;
            if (frac > 1000)
                goto decimals;
            if (nd == 0 && s[i] == '0')
                continue;
            if (nd == MAX_DIGITS) {
                if (s[i] != '0')
                    nonzero_dropped = true;
                frac--; /* a trailing zero beyond our digits changes nothing */
                continue;
            }
            digs[nd++] = s[i];
        }
    }
    if (!any)
        goto junk;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false, edig = false;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) {
            eneg = s[i] == '-';
            i++;
        }
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            edig = true;
            if (exp < 100000)
                exp = exp * 10 + (s[i] - '0');
        }
        if (!edig)
            goto junk;
        if (eneg)
            exp = -exp;
    }
    if (i != len)
        goto junk;
    if (nonzero_dropped)
        goto decimals;
    if (nd == 0) {
        *out = 0;
        return 0;
    }
    /* value = digs * 10^(exp - frac); in micro-credits: digs * 10^(6 + exp - frac). */
    long k = 6 + exp - frac;
    while (k < 0) {
        if (nd == 0 || digs[nd - 1] != '0')
            goto decimals;
        nd--;
        k++;
    }
    if ((long)nd + k > 20)
        goto overflow;
    for (size_t j = 0; j < nd; j++)
        v = v * 10 + (digs[j] - '0');
    for (long j = 0; j < k; j++)
        v *= 10;
    if (neg)
        v = -v;
    if (v > INT64_MAX || v < INT64_MIN)
        goto overflow;
    *out = (int64_t)v;
    return 0;

junk:
    return co_err_field(err, CO_E_INVAL, what, "invalid %s '%.*s': not a decimal number", what,
                        (int)(len > 64 ? 64 : len), s);
decimals:
    return co_err_field(err, CO_E_INVAL, what, "invalid %s '%.*s': more than 6 decimals", what,
                        (int)(len > 64 ? 64 : len), s);
overflow:
    return co_err_field(err, CO_E_RANGE, what, "invalid %s '%.*s': too large", what,
                        (int)(len > 64 ? 64 : len), s);
}

int
co_credits_from_double(double d, const char *what, int64_t *out, co_err *err)
{
    char buf[64];

    if (what == NULL)
        what = "amount";
    if (!isfinite(d))
        return co_err_field(err, CO_E_INVAL, what, "invalid %s: not a finite number", what);
    /* The shortest decimal text that reads back as the same double is what the sender wrote. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return co_credits_parse(buf, strlen(buf), what, out, err);
}

int
co_credits_from_int(int64_t whole, const char *what, int64_t *out, co_err *err)
{
    int64_t v;
    if (__builtin_mul_overflow(whole, CO_MICRO, &v))
        return co_err_field(err, CO_E_RANGE, what ? what : "amount", "invalid %s: too large",
                            what ? what : "amount");
    *out = v;
    return 0;
}

void
co_credits_format(int64_t micro, char out[CO_CREDITS_STRLEN])
{
    uint64_t mag = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
    uint64_t whole = mag / 1000000, frac = mag % 1000000;
    const char *sign = micro < 0 ? "-" : "";

    if (frac == 0) {
        snprintf(out, CO_CREDITS_STRLEN, "%s%llu", sign, (unsigned long long)whole);
        return;
    }
    char f[8];
    snprintf(f, sizeof(f), "%06llu", (unsigned long long)frac);
    size_t n = 6;
    while (n > 0 && f[n - 1] == '0')
        n--;
    f[n] = '\0';
    snprintf(out, CO_CREDITS_STRLEN, "%s%llu.%s", sign, (unsigned long long)whole, f);
}

int
co_credits_cost(int64_t cores, int64_t ram_mb, int64_t per_core_micro, int64_t per_100mb_ram_micro,
                int64_t *out, co_err *err)
{
    if (cores < 0 || ram_mb < 0 || per_core_micro < 0 || per_100mb_ram_micro < 0)
        return co_err_set(err, CO_E_RANGE, "cannot compute cost: negative input");
    /* 128-bit intermediates: no product of two int64 values can overflow them. */
    i128 cpu = (i128)cores * per_core_micro;
    i128 ram = ((i128)ram_mb * per_100mb_ram_micro + 50) / 100; /* half-up to micro */
    i128 total = cpu + ram;
    if (total > INT64_MAX)
        return co_err_set(err, CO_E_RANGE, "cannot compute cost: too large");
    *out = (int64_t)total;
    return 0;
}

int
co_credits_add(int64_t a, int64_t b, int64_t *out, co_err *err)
{
    if (__builtin_add_overflow(a, b, out))
        return co_err_set(err, CO_E_RANGE, "credit amount overflows");
    return 0;
}
