/* co_jsonw: streaming JSON writer (see co_jsonw.h). */
#include "co_jsonw.h"

#include <inttypes.h>
#include <string.h>

#include "co_credits.h"
#include "co_time.h"

void
co_jsonw_init(struct co_jsonw *w, struct co_buf *out)
{
    co_jsonw_init_flags(w, out, CO_JSONW_DEFAULT);
}

void
co_jsonw_init_flags(struct co_jsonw *w, struct co_buf *out, unsigned flags)
{
    w->out = out;
    w->flags = flags;
    w->depth = 0;
    w->need_comma[0] = false;
    w->after_key = false;
}

/* Separator before a value or key at the current level. */
static void
jw_sep(struct co_jsonw *w)
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
jw_open(struct co_jsonw *w, char c)
{
    jw_sep(w);
    co_buf_putc(w->out, c);
    if (w->depth + 1 < CO_JSONW_DEPTH)
        w->depth++;
    w->need_comma[w->depth] = false;
}

static void
jw_close(struct co_jsonw *w, char c)
{
    co_buf_putc(w->out, c);
    if (w->depth > 0)
        w->depth--;
}

void
co_jsonw_obj_begin(struct co_jsonw *w)
{
    jw_open(w, '{');
}

void
co_jsonw_obj_end(struct co_jsonw *w)
{
    jw_close(w, '}');
}

void
co_jsonw_arr_begin(struct co_jsonw *w)
{
    jw_open(w, '[');
}

void
co_jsonw_arr_end(struct co_jsonw *w)
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

/* Whether byte @c is copied as it is under @flags (the fast path of jw_escape). */
static inline bool
jw_plain(unsigned char c, unsigned flags)
{
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
        return false;
    if (c == 0x7f)
        return !(flags & CO_JSONW_ASCII);
    if (c == '<' || c == '>' || c == '&')
        return !(flags & CO_JSONW_HTML_SAFE);
    return true;
}

static void
jw_escape(struct co_buf *b, const char *s, size_t len, unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    co_buf_grow(b, len + 2);
    co_buf_putc(b, '"');
    while (i < len) {
        size_t start = i;
        /* Copy a run of plain ASCII in one go. */
        while (i < len && jw_plain(p[i], flags))
            i++;
        if (i > start) {
            co_buf_append(b, p + start, i - start);
            continue;
        }
        unsigned char c = p[i];
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
                /* Control characters, DEL (ASCII mode), and <, >, & (HTML-safe mode). */
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
        if (flags & CO_JSONW_ASCII) {
            co_buf_putc(b, '?');
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
co_jsonw_key(struct co_jsonw *w, const char *key)
{
    jw_sep(w);
    jw_escape(w->out, key, strlen(key), w->flags);
    co_buf_putc(w->out, ':');
    w->after_key = true;
}

void
co_jsonw_strn(struct co_jsonw *w, const char *s, size_t len)
{
    jw_sep(w);
    jw_escape(w->out, s, len, w->flags);
}

void
co_jsonw_str(struct co_jsonw *w, const char *s)
{
    if (!s) {
        co_jsonw_null(w);
        return;
    }
    co_jsonw_strn(w, s, strlen(s));
}

void
co_jsonw_int(struct co_jsonw *w, int64_t v)
{
    jw_sep(w);
    co_buf_printf(w->out, "%" PRId64, v);
}

void
co_jsonw_bool(struct co_jsonw *w, bool v)
{
    jw_sep(w);
    co_buf_puts(w->out, v ? "true" : "false");
}

void
co_jsonw_null(struct co_jsonw *w)
{
    jw_sep(w);
    co_buf_puts(w->out, "null");
}

void
co_jsonw_credits(struct co_jsonw *w, int64_t micro)
{
    char s[CO_CREDITS_STRLEN];
    co_credits_format(micro, s);
    jw_sep(w);
    co_buf_puts(w->out, s);
}

void
co_jsonw_time(struct co_jsonw *w, int64_t ms)
{
    char s[CO_ISO_LEN];
    if (ms <= 0) {
        co_jsonw_null(w);
        return;
    }
    co_time_iso(ms, s);
    jw_sep(w);
    co_buf_putc(w->out, '"');
    co_buf_puts(w->out, s);
    co_buf_putc(w->out, '"');
}

void
co_jsonw_raw(struct co_jsonw *w, const char *json, size_t len)
{
    jw_sep(w);
    co_buf_append(w->out, json, len);
}

void
co_jsonw_kstr(struct co_jsonw *w, const char *key, const char *s)
{
    co_jsonw_key(w, key);
    co_jsonw_str(w, s);
}

void
co_jsonw_kint(struct co_jsonw *w, const char *key, int64_t v)
{
    co_jsonw_key(w, key);
    co_jsonw_int(w, v);
}

void
co_jsonw_kbool(struct co_jsonw *w, const char *key, bool v)
{
    co_jsonw_key(w, key);
    co_jsonw_bool(w, v);
}

void
co_jsonw_kcredits(struct co_jsonw *w, const char *key, int64_t micro)
{
    co_jsonw_key(w, key);
    co_jsonw_credits(w, micro);
}

void
co_jsonw_ktime(struct co_jsonw *w, const char *key, int64_t ms)
{
    co_jsonw_key(w, key);
    co_jsonw_time(w, ms);
}
