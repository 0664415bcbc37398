#include "co_id.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

void
co_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            static const char msg[] = "fatal: getrandom failed\n";
            (void)!write(2, msg, sizeof(msg) - 1);
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

static const char hexdigits[] = "0123456789abcdef";

void
co_random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    size_t o = 0;
    while (nbytes > 0) {
        size_t n = nbytes < sizeof(b) ? nbytes : sizeof(b);
        co_random_bytes(b, n);
        for (size_t i = 0; i < n; i++) {
            out[o++] = hexdigits[b[i] >> 4];
            out[o++] = hexdigits[b[i] & 15];
        }
        nbytes -= n;
    }
    out[o] = '\0';
}

void
co_uuid4(char out[CO_UUID_STRLEN + 1])
{
    unsigned char b[16];
    size_t o = 0;

    co_random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hexdigits[b[i] >> 4];
        out[o++] = hexdigits[b[i] & 15];
    }
    out[o] = '\0';
}

static int
id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool
co_id_valid(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        if (n >= CO_ID_MAX || !id_char(s[n]))
            return false;
    }
    return n > 0;
}

int
co_id_check(const char *s, const char *what, co_err *err)
{
    size_t n;
    if (s == NULL || s[0] == '\0')
        return co_err_field(err, CO_E_INVAL, what, "%s must not be empty", what);
    n = strlen(s);
    if (n > CO_ID_MAX)
        return co_err_field(err, CO_E_INVAL, what, "%s is too long (%zu characters, at most %d)",
                            what, n, CO_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!id_char(s[i]))
            return co_err_field(err, CO_E_INVAL, what,
                                "%s has a character outside [A-Za-z0-9._-] at position %zu", what,
                                i + 1);
    }
    return 0;
}
