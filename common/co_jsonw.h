/*
 * co_jsonw: a small streaming JSON writer over a co_buf.  It exists because credits must print
 * as exact decimals ("0.1", never 0.10000000000000001), because job output may hold bytes that
 * are not UTF-8 (they are replaced by U+FFFD instead of failing the answer), and because the
 * sandbox, which may depend on common/ only, needs the same writer for its result JSON.
 * Commas are inserted automatically; the caller keeps keys and values in order.  No whitespace
 * is written.
 */
#ifndef CO_JSONW_H
#define CO_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_buf.h"

#define CO_JSONW_DEPTH 16

/*
 * How strings are escaped.  Every mode escapes '"', '\\' and the control characters below 0x20
 * ("\n", "\r", "\t" by name, the others as \u00XX), so the output is always valid JSON.
 */
enum co_jsonw_flags {
    /* Escape '<', '>' and '&' as \u003c, \u003e, \u0026 so the text can sit inside HTML. */
    CO_JSONW_HTML_SAFE = 1u << 0,
    /*
     * Write printable ASCII only: DEL becomes \u007f and every byte >= 0x80 becomes '?'.  Without
     * this flag valid UTF-8 is copied and each invalid byte becomes \ufffd.
     */
    CO_JSONW_ASCII = 1u << 1,
};

/* The flags co_jsonw_init() uses: what HTTP and WebSocket answers need. */
#define CO_JSONW_DEFAULT CO_JSONW_HTML_SAFE

struct co_jsonw {
    struct co_buf *out; /* borrowed */
    unsigned flags;     /* enum co_jsonw_flags */
    int depth;
    bool need_comma[CO_JSONW_DEPTH];
    bool after_key;
};

/** Start writing into @out (borrowed, appended to) with CO_JSONW_DEFAULT escaping. */
void co_jsonw_init(struct co_jsonw *w, struct co_buf *out);
/** Start writing into @out (borrowed, appended to) with @flags (enum co_jsonw_flags). */
void co_jsonw_init_flags(struct co_jsonw *w, struct co_buf *out, unsigned flags);
/** Open/close an object or array.  Nesting deeper than CO_JSONW_DEPTH loses comma tracking. */
void co_jsonw_obj_begin(struct co_jsonw *w);
void co_jsonw_obj_end(struct co_jsonw *w);
void co_jsonw_arr_begin(struct co_jsonw *w);
void co_jsonw_arr_end(struct co_jsonw *w);
/** Write an object key (a C string, escaped like values); the next call writes its value. */
void co_jsonw_key(struct co_jsonw *w, const char *key);
/** A string value from @len bytes (borrowed); escaped according to the writer's flags. */
void co_jsonw_strn(struct co_jsonw *w, const char *s, size_t len);
/** A string value from a C string (borrowed), or null when @s is NULL. */
void co_jsonw_str(struct co_jsonw *w, const char *s);
/** An integer value. */
void co_jsonw_int(struct co_jsonw *w, int64_t v);
/** true or false. */
void co_jsonw_bool(struct co_jsonw *w, bool v);
/** null. */
void co_jsonw_null(struct co_jsonw *w);
/** Micro-credits as an exact JSON number ("100", "0.1"). */
void co_jsonw_credits(struct co_jsonw *w, int64_t micro);
/** An ISO-8601 UTC time string, or null when @ms is 0 or negative. */
void co_jsonw_time(struct co_jsonw *w, int64_t ms);
/** Pre-encoded JSON text (borrowed; trusted: produced by jansson or this writer). */
void co_jsonw_raw(struct co_jsonw *w, const char *json, size_t len);

/** Key + value shorthands: co_jsonw_key() followed by the value call of the same name. */
void co_jsonw_kstr(struct co_jsonw *w, const char *key, const char *s);
void co_jsonw_kint(struct co_jsonw *w, const char *key, int64_t v);
void co_jsonw_kbool(struct co_jsonw *w, const char *key, bool v);
void co_jsonw_kcredits(struct co_jsonw *w, const char *key, int64_t micro);
void co_jsonw_ktime(struct co_jsonw *w, const char *key, int64_t ms);

#endif
