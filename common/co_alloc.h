/*
 * Aborting allocators and cleanup helpers.  Out of memory aborts the process with a message:
 * callers never check the result of co_x*() for NULL.
 */
#ifndef CO_ALLOC_H
#define CO_ALLOC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/** malloc() that aborts on failure; co_xmalloc(0) returns a unique non-NULL pointer. */
void *co_xmalloc(size_t size) __attribute__((malloc, returns_nonnull));
/** calloc() that aborts on failure or on nmemb * size overflow. */
void *co_xcalloc(size_t nmemb, size_t size) __attribute__((malloc, returns_nonnull));
/** realloc() that aborts on failure. */
void *co_xrealloc(void *ptr, size_t size) __attribute__((returns_nonnull));
/** reallocarray() that aborts on failure or overflow. */
void *co_xreallocarray(void *ptr, size_t nmemb, size_t size) __attribute__((returns_nonnull));
/** strdup() that aborts on failure. */
char *co_xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
/** strndup() that aborts on failure. */
char *co_xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/** asprintf() that aborts on failure; the caller frees the result. */
char *co_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));
/** vasprintf() that aborts on failure; the caller frees the result. */
char *co_xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0), returns_nonnull));

/**
 * Copy @src into @dst of @size bytes, always NUL-terminating (when size > 0).  Returns
 * strlen(src); a result >= size means the copy was truncated.
 */
size_t co_strlcpy(char *dst, const char *src, size_t size);

/** Compare two byte strings in time that depends only on their lengths.  Returns 1 if equal. */
int co_consttime_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Cleanup helpers for locals (GCC/Clang cleanup attribute). */
void co_freep(void *p);
void co_closep(int *fd);
void co_fclosep(FILE **f);
#define co_autofree __attribute__((cleanup(co_freep)))
#define co_autoclose __attribute__((cleanup(co_closep)))
#define co_autofclose __attribute__((cleanup(co_fclosep)))

/** Take ownership of *pp, leaving NULL behind: `*out = co_steal(&job);`. */
#define co_steal(pp)                                                                               \
    ({                                                                                             \
        __typeof__(*(pp)) co_steal_tmp_ = *(pp);                                                   \
        *(pp) = NULL;                                                                              \
        co_steal_tmp_;                                                                             \
    })

/** Take ownership of an fd, leaving -1 behind. */
#define co_steal_fd(fdp)                                                                           \
    ({                                                                                             \
        int co_steal_fd_tmp_ = *(fdp);                                                             \
        *(fdp) = -1;                                                                               \
        co_steal_fd_tmp_;                                                                          \
    })

#define CO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
