/*
 * co_err: the error type every fallible function takes last.  A failing function fills it with a
 * code and a message that names the problem first and the subject quoted, and returns -1.
 * Callers add context with co_err_wrap() while propagating.
 */
#ifndef CO_ERR_H
#define CO_ERR_H

#include <stddef.h>

enum co_errcode {
    CO_OK = 0,
    CO_E_INVAL,       /* bad input: a value, a field, a request */
    CO_E_RANGE,       /* a number outside its allowed range or overflowing */
    CO_E_NOTFOUND,    /* a thing that does not exist */
    CO_E_CONFLICT,    /* a state transition that is not allowed */
    CO_E_FUNDS,       /* insufficient credits */
    CO_E_UNAVAILABLE, /* a dependency is down (database, network) */
    CO_E_TOOLARGE,    /* input over a size cap */
    CO_E_AUTH,        /* missing or wrong credentials */
    CO_E_FORBIDDEN,   /* a known credential that may not do this */
    CO_E_LIMIT,       /* a configured limit reached (e.g. MAX_WORKERS) */
    CO_E_SYS,         /* a system call failed; sys_errno says which errno */
    CO_E_INTERNAL,    /* a bug or an unexpected state */
};

#define CO_ERR_MSG_MAX 1024

typedef struct co_err {
    enum co_errcode code;
    int sys_errno;            /* errno for CO_E_SYS, else 0 */
    char field[64];           /* the input field concerned, "" if none */
    char msg[CO_ERR_MSG_MAX]; /* human-readable, lower-case, no full stop */
} co_err;

#define CO_ERR_INIT                                                                                \
    {                                                                                              \
        CO_OK, 0, "", ""                                                                           \
    }

/** Reset @err to "no error". */
void co_err_clear(co_err *err);

/**
 * Set @err to @code with a printf-formatted message.  Always returns -1 so that callers can write
 * `return co_err_set(err, CO_E_INVAL, "...")`.  @err may be NULL (the error is then dropped).
 */
int co_err_set(co_err *err, enum co_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Like co_err_set() with CO_E_SYS: the message gets ": <strerror(errnum)>" appended and
 * sys_errno is @errnum.  Returns -1.
 */
int co_err_sys(co_err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Like co_err_set() but also records the input @field the error is about (for 422 answers).
 * Returns -1.
 */
int co_err_field(co_err *err, enum co_errcode code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Prefix the message of @err with a formatted context and ": ", keeping code and field.
 * Returns -1.  Example: co_err_wrap(err, "job %s", id) turns "cannot open 'x'" into
 * "job 42: cannot open 'x'".
 */
int co_err_wrap(co_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** A stable lower-case name for @code ("invalid", "not_found", ...), never NULL. */
const char *co_err_code_name(enum co_errcode code);

#endif
