/*
 * Logging: one line per event to stderr and, if configured, to a file:
 *   2026-11-29T13:51:14.123Z level=INFO http request method=GET path=/api/v1/health status=200
 * Messages are "what happened" followed by key=value fields.  Thread-safe.
 */
#ifndef CO_LOG_H
#define CO_LOG_H

#include "co_err.h"

enum co_log_level { CO_LOG_DEBUG = 0, CO_LOG_INFO, CO_LOG_WARNING, CO_LOG_ERROR, CO_LOG_OFF };

/**
 * Configure the log sink: the minimum @level, and @file (appended to, created 0640) in addition to
 * stderr when not NULL/"".  May be called again to reconfigure.  Errors: the file cannot be opened.
 */
int co_log_init(enum co_log_level level, const char *file, co_err *err)
    __attribute__((warn_unused_result));

/** Parse "DEBUG", "INFO", "WARNING" (or "WARN"), "ERROR", case-insensitive. */
int co_log_parse_level(const char *s, enum co_log_level *out, co_err *err)
    __attribute__((warn_unused_result));

/** Close the log file (stderr logging continues). */
void co_log_close(void);

/** True if messages at @level are written. */
int co_log_enabled(enum co_log_level level);

/** Write one log line at @level. */
void co_log(enum co_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define co_debug(...) co_log(CO_LOG_DEBUG, __VA_ARGS__)
#define co_info(...) co_log(CO_LOG_INFO, __VA_ARGS__)
#define co_warn(...) co_log(CO_LOG_WARNING, __VA_ARGS__)
#define co_error(...) co_log(CO_LOG_ERROR, __VA_ARGS__)

#endif
