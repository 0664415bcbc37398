/* Time helpers: monotonic clocks for durations, wall-clock milliseconds and ISO-8601 UTC text. */
#ifndef CO_TIME_H
#define CO_TIME_H

#include <stdint.h>

#include "co_err.h"

/** "2026-11-29T13:51:14.123Z" plus NUL. */
#define CO_ISO_LEN 25

/** Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
int64_t co_mono_ns(void);
/** Monotonic clock in milliseconds. */
int64_t co_mono_ms(void);
/** Wall clock: milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t co_wall_ms(void);

/** Format @ms since the epoch as ISO-8601 UTC with milliseconds into @out. */
void co_time_iso(int64_t ms, char out[CO_ISO_LEN]);

/**
 * Parse ISO-8601 UTC ("2026-11-29T13:51:14Z", "...14.123Z", "...14.123456+00:00",
 * "2026-11-29 13:51:14") into milliseconds since the epoch.
 */
int co_time_parse_iso(const char *s, int64_t *out_ms, co_err *err)
    __attribute__((warn_unused_result));

#endif
