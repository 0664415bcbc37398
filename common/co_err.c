#include "co_err.h"

#include "co_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
co_err_clear(co_err *err)
{
    if (err == NULL)
        return;
    err->code = CO_OK;
    err->sys_errno = 0;
    err->field[0] = '\0';
    err->msg[0] = '\0';
}

static void
set_msg(co_err *err, const char *fmt, va_list ap)
{
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    if (n < 0)
        err->msg[0] = '\0';
}

int
co_err_set(co_err *err, enum co_errcode code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    err->sys_errno = 0;
    err->field[0] = '\0';
    va_start(ap, fmt);
    set_msg(err, fmt, ap);
    va_end(ap);
    return -1;
}

int
co_err_sys(co_err *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    char ebuf[128];
    size_t len;

    if (err == NULL)
        return -1;
    err->code = CO_E_SYS;
    err->sys_errno = errnum;
    err->field[0] = '\0';
    va_start(ap, fmt);
    set_msg(err, fmt, ap);
    va_end(ap);
    len = strlen(err->msg);
    snprintf(err->msg + len, sizeof(err->msg) - len, ": %s",
             strerror_r(errnum, ebuf, sizeof(ebuf)));
    return -1;
}

int
co_err_field(co_err *err, enum co_errcode code, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    err->sys_errno = 0;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    set_msg(err, fmt, ap);
    va_end(ap);
    return -1;
}

int
co_err_wrap(co_err *err, const char *fmt, ...)
{
    va_list ap;
    char prefix[CO_ERR_MSG_MAX];
    char old[CO_ERR_MSG_MAX];

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    if (vsnprintf(prefix, sizeof(prefix), fmt, ap) < 0)
        prefix[0] = '\0';
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Truncation is acceptable here: a long message keeps its beginning. */
    size_t n = strlen(prefix);
    if (n > sizeof(err->msg) - 3)
        n = sizeof(err->msg) - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    co_strlcpy(err->msg + n + 2, old, sizeof(err->msg) - n - 2);
    return -1;
}

const char *
co_err_code_name(enum co_errcode code)
{
    switch (code) {
    case CO_OK:
        return "ok";
    case CO_E_INVAL:
        return "invalid";
    case CO_E_RANGE:
        return "out_of_range";
    case CO_E_NOTFOUND:
        return "not_found";
    case CO_E_CONFLICT:
        return "conflict";
    case CO_E_FUNDS:
        return "insufficient_credits";
    case CO_E_UNAVAILABLE:
        return "unavailable";
    case CO_E_TOOLARGE:
        return "too_large";
    case CO_E_AUTH:
        return "unauthorized";
    case CO_E_FORBIDDEN:
        return "forbidden";
    case CO_E_LIMIT:
        return "limit_reached";
    case CO_E_SYS:
        return "system_error";
    case CO_E_INTERNAL:
        return "internal";
    }
    return "unknown";
}
