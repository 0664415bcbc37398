/* coord_jsonw: streaming JSON writer (see coord_jsonw.h). */
#include "coord_jsonw.h"

#include <inttypes.h>

#include "co_credits.h"
#include "co_time.h"

void
coord_jsonw_init(struct coord_jsonw *w, struct co_buf *out)
{
    w->out = out;
    w->depth = 0;
    w->need_comma[0] = false;
    w->after_key = false;
}

/* Separator before a value or key at the current level. */
static void
jw_sep(struct coord_jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->need_comma[w->depth])
        co_buf_putc(w->out, ',');
    w->need_comma[w->depth] = true;
}

static void
jw_open(struct coord_jsonw *w, char c)
{
    jw_sep(w);
    co_buf_putc(w->out, c);
    if (w->depth + 1 < COORD_JSONW_DEPTH)
        w->depth++;
    w->need_comma[w->depth] = false;
}

static void
jw_close(struct coord_jsonw *w, char c)
{
    co_buf_putc(w->out, c);
    if (w->depth > 0)
        w->depth--;
}

void
coord_jsonw_obj_begin(struct coord_jsonw *w)
{
    jw_open(w, '{');
}

void
coord_jsonw_obj_end(struct coord_jsonw *w)
{
    jw_close(w, '}');
}

void
coord_jsonw_arr_begin(struct coord_jsonw *w)
{
    jw_open(w, '[');
}

void
coord_jsonw_arr_end(struct coord_jsonw *w)
{
    jw_close(w, ']');
}

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), or 0 if invalid. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void
jw_escape(struct co_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    co_buf_grow(b, len + 2);
    co_buf_putc(b, '"');
    while (i < len) {
        unsigned char c = p[i];
        size_t start = i;
        /* Copy a run of plain ASCII in one go. */
        while (i < len && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\' &&
               p[i] != '<' && p[i] != '>' && p[i] != '&')
            i++;
        if (i > start) {
            co_buf_append(b, p + start, i - start);
            continue;
        }
        c = p[i];
        if (c < 0x80) {
            char esc[7];
            switch (c) {
            case '"':
                co_buf_puts(b, "\\\"");
                break;
            case '\\':
                co_buf_puts(b, "\\\\");
                break;
            case '\n':
                co_buf_puts(b, "\\n");
                break;
            case '\r':
                co_buf_puts(b, "\\r");
                break;
            case '\t':
                co_buf_puts(b, "\\t");
                break;
            default:
                /* Control characters and <, >, & (safe to embed in HTML). */
                esc[0] = '\\';
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                co_buf_append(b, esc, 6);
                break;
            }
            i++;
            continue;
        }
        size_t n = utf8_seq_len(p + i, len - i);
        if (n == 0) {
            co_buf_puts(b, "\\ufffd");
            i++;
        } else {
            co_buf_append(b, p + i, n);
            i += n;
        }
    }
    co_buf_putc(b, '"');
}

void
coord_jsonw_key(struct coord_jsonw *w, const char *key)
{
    jw_sep(w);
    jw_escape(w->out, key, strlen(key));
    co_buf_putc(w->out, ':');
    w->after_key = true;
}

void
coord_jsonw_strn(struct coord_jsonw *w, const char *s, size_t len)
{
    jw_sep(w);
    jw_escape(w->out, s, len);
}

void
coord_jsonw_str(struct coord_jsonw *w, const char *s)
{
    if (!s) {
        coord_jsonw_null(w);
        return;
    }
    coord_jsonw_strn(w, s, strlen(s));
}

void
coord_jsonw_int(struct coord_jsonw *w, int64_t v)
{
    jw_sep(w);
    co_buf_printf(w->out, "%" PRId64, v);
}

void
coord_jsonw_bool(struct coord_jsonw *w, bool v)
{
    jw_sep(w);
    co_buf_puts(w->out, v ? "true" : "false");
}

void
coord_jsonw_null(struct coord_jsonw *w)
{
    jw_sep(w);
    co_buf_puts(w->out, "null");
}

void
coord_jsonw_credits(struct coord_jsonw *w, int64_t micro)
{
    char s[CO_CREDITS_STRLEN];
    co_credits_format(micro, s);
    jw_sep(w);
    co_buf_puts(w->out, s);
}

void
coord_jsonw_time(struct coord_jsonw *w, int64_t ms)
{
    char s[CO_ISO_LEN];
    if (ms <= 0) {
        coord_jsonw_null(w);
        return;
    }
    co_time_iso(ms, s);
    jw_sep(w);
    co_buf_putc(w->out, '"');
    co_buf_puts(w->out, s);
    co_buf_putc(w->out, '"');
}

void
coord_jsonw_raw(struct coord_jsonw *w, const char *json, size_t len)
{
    jw_sep(w);
    co_buf_append(w->out, json, len);
}

void
coord_jsonw_kstr(struct coord_jsonw *w, const char *key, const char *s)
{
    coord_jsonw_key(w, key);
    coord_jsonw_str(w, s);
}

void
coord_jsonw_kint(struct coord_jsonw *w, const char *key, int64_t v)
{
    coord_jsonw_key(w, key);
    coord_jsonw_int(w, v);
}

void
coord_jsonw_kcredits(struct coord_jsonw *w, const char *key, int64_t micro)
{
    coord_jsonw_key(w, key);
    coord_jsonw_credits(w, micro);
}

void
coord_jsonw_ktime(struct coord_jsonw *w, const char *key, int64_t ms)
{
    coord_jsonw_key(w, key);
    coord_jsonw_time(w, ms);
}
