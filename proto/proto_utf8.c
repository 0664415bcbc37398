/* proto_utf8: UTF-8 validation and repair, base64 (see proto_utf8.h). */
#include "proto_utf8.h"

#include <stdint.h>
#include <string.h>

#include "co_alloc.h"
#include "co_buf.h"

/*
 * Look at the sequence starting at @s (@len >= 1 bytes left).  Returns true and its length in
 * *adv when it is a well-formed UTF-8 character (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF); else false and the length of its maximal ill-formed subpart in *adv (>= 1).
 */
static bool
utf8_next(const unsigned char *s, size_t len, size_t *adv)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;

    if (c < 0x80) {
        *adv = 1;
        return true;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c == 0xe0) {
        need = 2;
        lo = 0xa0;
    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
        need = 2;
    } else if (c == 0xed) {
        need = 2;
        hi = 0x9f; /* U+D800..U+DFFF are surrogates */
    } else if (c == 0xf0) {
        need = 3;
        lo = 0x90;
    } else if (c >= 0xf1 && c <= 0xf3) {
        need = 3;
    } else if (c == 0xf4) {
        need = 3;
        hi = 0x8f;
    } else {
        *adv = 1;
        return false;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= len || s[i] < lo || s[i] > hi) {
            *adv = i;
            return false;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    *adv = need + 1;
    return true;
}

bool
proto_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, adv;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (!utf8_next(p + i, len - i, &adv))
            return false;
        i += adv;
    }
    return true;
}

size_t
proto_utf8_count(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    }
    return n;
}

size_t
proto_utf8_cut(const char *s, size_t len, size_t max)
{
    size_t n = max;

    if (len <= max)
        return len;
    /* s[n] starts the part that is cut off: if it continues a character, cut before its lead. */
    for (int back = 0; back < 4 && n > 0; back++) {
        if (((unsigned char)s[n] & 0xc0) != 0x80)
            return n;
        n--;
    }
    if (((unsigned char)s[n] & 0xc0) != 0x80)
        return n;
    return max; /* not UTF-8 anyway: any cut is as good */
}

char *
proto_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    struct co_buf b = CO_BUF_INIT;
    size_t i = 0, adv;

    co_buf_grow(&b, len);
    while (i < len) {
        if (p[i] == 0) {
            co_buf_append(&b, repl, 3);
            i++;
        } else if (utf8_next(p + i, len - i, &adv)) {
            co_buf_append(&b, p + i, adv);
            i += adv;
        } else {
            co_buf_append(&b, repl, 3);
            i += adv;
        }
    }
    return co_buf_steal(&b, out_len);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
proto_base64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

char *
proto_base64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = co_xmalloc(proto_base64_len(len) + 1);
    size_t o = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int
proto_base64_decode(const char *s, size_t len, char **out, size_t *out_len, co_err *err)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char *buf;
    size_t o = 0;

    if (len % 4 != 0)
        return co_err_set(err, CO_E_INVAL, "invalid base64: length %zu is not a multiple of 4",
                          len);
    buf = co_xmalloc(len / 4 * 3 + 1);
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        size_t pad = 0;
        bool last = i + 4 == len;

        for (int k = 0; k < 4; k++) {
            if (last && k >= 2 && p[i + k] == '=') {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = pad > 0 ? -1 : b64_value(p[i + k]);
            if (v[k] < 0) {
                free(buf);
                return co_err_set(err, CO_E_INVAL, "invalid base64: bad character at %zu",
                                  i + (size_t)k);
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Canonical form only: the bits dropped by the padding must be zero. */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0)) {
            free(buf);
            return co_err_set(err, CO_E_INVAL, "invalid base64: non-zero padding bits");
        }
        buf[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            buf[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            buf[o++] = (unsigned char)w;
    }
    buf[o] = '\0';
    *out = (char *)buf;
    *out_len = o;
    return 0;
}
