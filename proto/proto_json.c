/* proto_json: capped JSON loading, compact dumping and exact credits (see proto_json.h). */
#include "proto_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_credits.h"

/*
 * jansson's error text may quote input bytes ("near '...'"), which need not be valid UTF-8 and
 * would then break the JSON error answer that carries the message.  Keep printable ASCII only.
 */
static void
ascii_only(char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c > 0x7e)
            *s = '?';
    }
}

json_t *
proto_json_loadb(const char *buf, size_t len, size_t max, co_err *err)
{
    json_error_t jerr;
    json_t *j;

    if (len > max) {
        co_err_set(err, CO_E_TOOLARGE, "input too large: %zu bytes, at most %zu", len, max);
        return NULL;
    }
    if (buf == NULL)
        buf = "";
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        ascii_only(jerr.text);
        co_err_field(err, CO_E_INVAL, "", "invalid JSON: %s at byte %d", jerr.text, jerr.position);
        return NULL;
    }
    return j;
}

json_t *
proto_json_load_object(const char *buf, size_t len, size_t max, co_err *err)
{
    json_t *j = proto_json_loadb(buf, len, max, err);

    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        co_err_field(err, CO_E_INVAL, "", "invalid JSON: expected an object");
        return NULL;
    }
    return j;
}

/*
 * The writer below replaces json_dumps() so that reals are printed in their shortest form that
 * reads back as the same double (0.1 as "0.1", 0.30000000000000004 as itself): jansson only
 * offers one fixed precision, which either rounds values (15 digits) or prints 0.1 as
 * 0.10000000000000001 (17 digits).  Everything else matches jansson's compact output.
 */
#define DUMP_MAX_DEPTH 4096

static void
put_real(struct co_buf *b, double d)
{
    char buf[40];
    int n = 0;

    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* Exponents as jansson writes them: "1e-6", "1e300" rather than "1e-06", "1e+300". */
    char *e = strchr(buf, 'e');
    if (e != NULL) {
        char *src = e + 1, *dst = e + 1;
        if (*src == '+')
            src++;
        else if (*src == '-')
            *dst++ = *src++;
        while (*src == '0' && src[1] != '\0')
            src++;
        memmove(dst, src, strlen(src) + 1);
        n = (int)strlen(buf);
    }
    co_buf_append(b, buf, (size_t)n);
    /* Keep it a real when read back. */
    if (strpbrk(buf, ".e") == NULL)
        co_buf_puts(b, ".0");
}

static void
put_string(struct co_buf *b, const char *s, size_t len, size_t flags)
{
    static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the pending run of bytes that need no escaping */

    co_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[16];

        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '/' && (flags & JSON_ESCAPE_SLASH))
            esc = "\\/";
        else if (c < 0x20) {
            ubuf[0] = '\\';
            ubuf[1] = 'u';
            ubuf[2] = '0';
            ubuf[3] = '0';
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            ubuf[6] = '\0';
            esc = ubuf;
        } else if (c >= 0x80 && (flags & JSON_ENSURE_ASCII)) {
            /* The string is valid UTF-8 (jansson guarantees it): decode one code point. */
            uint32_t cp;
            size_t extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
            if (i + extra >= len) /* cannot happen with valid UTF-8; stay in bounds anyway */
                extra = len - 1 - i;
            cp = c & (0x3f >> extra);
            for (size_t k = 1; k <= extra; k++)
                cp = cp << 6 | (p[i + k] & 0x3f);
            co_buf_append(b, s + run, i - run);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                co_buf_printf(b, "\\u%04X\\u%04X", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                co_buf_printf(b, "\\u%04X", cp);
            }
            i += extra;
            run = i + 1;
            continue;
        }
        if (esc != NULL) {
            co_buf_append(b, s + run, i - run);
            co_buf_puts(b, esc);
            run = i + 1;
        }
    }
    co_buf_append(b, s + run, len - run);
    co_buf_putc(b, '"');
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
put_value(struct co_buf *b, const json_t *j, size_t flags, int depth)
{
    if (depth > DUMP_MAX_DEPTH)
        return -1; /* a reference cycle, or absurd nesting */
    switch (json_typeof(j)) {
    case JSON_NULL:
        co_buf_puts(b, "null");
        return 0;
    case JSON_TRUE:
        co_buf_puts(b, "true");
        return 0;
    case JSON_FALSE:
        co_buf_puts(b, "false");
        return 0;
    case JSON_INTEGER:
        co_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return 0;
    case JSON_REAL:
        put_real(b, json_real_value(j));
        return 0;
    case JSON_STRING:
        put_string(b, json_string_value(j), json_string_length(j), flags);
        return 0;
    case JSON_ARRAY:
        co_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i > 0)
                co_buf_putc(b, ',');
            if (put_value(b, json_array_get(j, i), flags, depth + 1) < 0)
                return -1;
        }
        co_buf_putc(b, ']');
        return 0;
    case JSON_OBJECT: {
        size_t n = json_object_size(j), i = 0;
        const char **keys = co_xcalloc(n + 1, sizeof(*keys));
        const char *key;
        json_t *v;
        int rc = 0;

        json_object_foreach((json_t *)j, key, v)
        {
            if (i < n)
                keys[i++] = key;
        }
        if (flags & JSON_SORT_KEYS)
            qsort(keys, i, sizeof(*keys), key_cmp);
        co_buf_putc(b, '{');
        for (size_t k = 0; k < i && rc == 0; k++) {
            if (k > 0)
                co_buf_putc(b, ',');
            put_string(b, keys[k], strlen(keys[k]), flags);
            co_buf_putc(b, ':');
            rc = put_value(b, json_object_get(j, keys[k]), flags, depth + 1);
        }
        co_buf_putc(b, '}');
        free(keys);
        return rc;
    }
    }
    return -1;
}

char *
proto_json_dumps(const json_t *j, size_t flags, size_t *len)
{
    struct co_buf b = CO_BUF_INIT;

    if (j == NULL || put_value(&b, j, flags, 0) < 0) {
        co_buf_release(&b);
        return NULL;
    }
    return co_buf_steal(&b, len);
}

json_t *
proto_json_credits(int64_t micro)
{
    json_t *j;

    if (micro % CO_MICRO == 0)
        j = json_integer(micro / CO_MICRO);
    else
        /*
         * Both operands are exact doubles for |micro| < 2^53, so the quotient is the double
         * nearest to the decimal amount, and proto_json_dumps() prints that decimal back
         * whenever it has at most 15 significant digits.
         */
        j = json_real((double)micro / (double)CO_MICRO);
    if (j == NULL)
        abort(); /* only on out of memory */
    return j;
}

int
proto_json_get_credits(const json_t *v, const char *what, int64_t *out, co_err *err)
{
    if (what == NULL)
        what = "amount";
    if (json_is_integer(v))
        return co_credits_from_int(json_integer_value(v), what, out, err);
    if (json_is_real(v))
        return co_credits_from_double(json_real_value(v), what, out, err);
    return co_err_field(err, CO_E_INVAL, what, "invalid %s: must be a number", what);
}
