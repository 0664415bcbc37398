/*
 * co_buf: a growable byte buffer.  data is always NUL-terminated (so it can be used as a C
 * string when it holds text) and owned by the buffer.
 */
#ifndef CO_BUF_H
#define CO_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct co_buf {
    char *data; /* NULL until the first append; NUL-terminated after */
    size_t len;
    size_t cap;
};

#define CO_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/** Initialise an empty buffer (no allocation). */
void co_buf_init(struct co_buf *b);
/** Free the contents; the buffer is empty and reusable afterwards. */
void co_buf_release(struct co_buf *b);
/** Make room for @extra more bytes (plus the NUL). */
void co_buf_grow(struct co_buf *b, size_t extra);
/** Append @len bytes. */
void co_buf_append(struct co_buf *b, const void *data, size_t len);
/** Append a C string. */
void co_buf_puts(struct co_buf *b, const char *s);
/** Append one byte. */
void co_buf_putc(struct co_buf *b, char c);
/** Append printf-formatted text. */
void co_buf_printf(struct co_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Append vprintf-formatted text. */
void co_buf_vprintf(struct co_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/** Set the length to 0, keeping the allocation. */
void co_buf_reset(struct co_buf *b);
/** Drop the first @n bytes (n <= len). */
void co_buf_consume(struct co_buf *b, size_t n);
/**
 * Hand the data to the caller (who frees it) and leave the buffer empty.  Never NULL: an empty
 * buffer yields an allocated "".  If @len is not NULL it receives the length.
 */
char *co_buf_steal(struct co_buf *b, size_t *len);

#endif
