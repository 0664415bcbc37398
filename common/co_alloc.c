#include "co_alloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static void __attribute__((noreturn)) oom(size_t size)
{
    /* No allocation here: we are out of memory. */
    static const char msg[] = "fatal: out of memory\n";
    (void)size;
    (void)!write(2, msg, sizeof(msg) - 1);
    abort();
}

void *
co_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *
co_xcalloc(size_t nmemb, size_t size)
{
    void *p;
    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    p = calloc(nmemb, size);
    if (p == NULL)
        oom(size);
    return p;
}

void *
co_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *
co_xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total))
        oom(SIZE_MAX);
    return co_xrealloc(ptr, total);
}

char *
co_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        oom(strlen(s));
    return p;
}

char *
co_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        oom(n);
    return p;
}

char *
co_xvasprintf(const char *fmt, va_list ap)
{
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        oom(0);
    return p;
}

char *
co_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    va_start(ap, fmt);
    p = co_xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

size_t
co_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int
co_consttime_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile unsigned char *pa = a;
    const volatile unsigned char *pb = b;
    unsigned char diff = alen != blen;
    size_t i;

    /*
     * Walk the expected string (b) whatever the input, so the time depends only on the length of
     * the secret, never on where the first difference is.
     */
    for (i = 0; i < blen; i++) {
        unsigned char ca = i < alen ? pa[i] : 0;
        diff |= ca ^ pb[i];
    }
    return diff == 0;
}

void
co_freep(void *p)
{
    void **pp = p;
    free(*pp);
    *pp = NULL;
}

void
co_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}

void
co_fclosep(FILE **f)
{
    if (*f != NULL) {
        fclose(*f);
        *f = NULL;
    }
}
