/*
 * Configuration: the process environment plus an optional .env file.  Variables already in the
 * environment win over the file.  Typed getters check ranges and name the variable in errors:
 *   invalid PORT 'abc': not an integer
 */
#ifndef CO_CONFIG_H
#define CO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"

/**
 * Load KEY=VALUE lines from @path into the environment (without overwriting variables that are
 * already set).  Blank lines and lines starting with '#' are ignored; an optional "export "
 * prefix is accepted; values may be wrapped in single or double quotes.  A missing file is not an
 * error when @optional is true.  Call before starting threads.
 */
int co_config_load_env_file(const char *path, bool optional, co_err *err)
    __attribute__((warn_unused_result));

/** The value of @name, or @def when unset or empty.  Borrowed from the environment. */
const char *co_config_str(const char *name, const char *def);

/** An integer in [min, max]; @def when unset or empty. */
int co_config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                  co_err *err) __attribute__((warn_unused_result));

/** A boolean (1/0, true/false, yes/no, on/off, case-insensitive); @def when unset or empty. */
int co_config_bool(const char *name, bool def, bool *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * A credit amount ("0.1", "100", "2.5e-3") as micro-credits in [0, max_micro]; @def (a decimal
 * string) when unset or empty.
 */
int co_config_credits(const char *name, const char *def, int64_t max_micro, int64_t *out,
                      co_err *err) __attribute__((warn_unused_result));

/**
 * A size in bytes ("1048576", "64K", "256M", "1G", "1MiB"; powers of 1024) in [min, max]; @def
 * when unset or empty.
 */
int co_config_size(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                   co_err *err) __attribute__((warn_unused_result));

/** Parse a size as co_config_size() does; @what names the value in errors. */
int co_parse_size(const char *s, const char *what, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Parse a duration in milliseconds: "250ms", "10s", "2m", "1h", or a bare number of seconds
 * ("1.5").  @what names the value in errors.
 */
int co_parse_duration_ms(const char *s, const char *what, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/** Parse a whole decimal integer (optional sign, no trailing junk) in [min, max]. */
int co_parse_int(const char *s, const char *what, int64_t min, int64_t max, int64_t *out,
                 co_err *err) __attribute__((warn_unused_result));

#endif
