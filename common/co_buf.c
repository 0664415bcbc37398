#include "co_buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"

void
co_buf_init(struct co_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
co_buf_release(struct co_buf *b)
{
    free(b->data);
    co_buf_init(b);
}

void
co_buf_grow(struct co_buf *b, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need) || __builtin_add_overflow(need, 1, &need))
        abort();
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    b->data = co_xrealloc(b->data, cap);
    b->cap = cap;
}

void
co_buf_append(struct co_buf *b, const void *data, size_t len)
{
    co_buf_grow(b, len);
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void
co_buf_puts(struct co_buf *b, const char *s)
{
    co_buf_append(b, s, strlen(s));
}

void
co_buf_putc(struct co_buf *b, char c)
{
    co_buf_append(b, &c, 1);
}

void
co_buf_vprintf(struct co_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;

    co_buf_grow(b, 64);
    va_copy(cp, ap);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, cp);
    va_end(cp);
    if (n < 0)
        abort();
    if ((size_t)n >= b->cap - b->len) {
        co_buf_grow(b, (size_t)n);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        if (n < 0)
            abort();
    }
    b->len += (size_t)n;
}

void
co_buf_printf(struct co_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    co_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void
co_buf_reset(struct co_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void
co_buf_consume(struct co_buf *b, size_t n)
{
    if (n >= b->len) {
        co_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *
co_buf_steal(struct co_buf *b, size_t *len)
{
    char *p;
    if (b->data == NULL)
        co_buf_grow(b, 0);
    b->data[b->len] = '\0';
    p = b->data;
    if (len)
        *len = b->len;
    co_buf_init(b);
    return p;
}
