/*
 * coord_jsonw: a small streaming JSON writer over a co_buf, for responses.  It exists because
 * credits must print as exact decimals ("0.1", never 0.10000000000000001) and because job output
 * may hold bytes that are not UTF-8 (they are replaced by U+FFFD instead of failing the answer).
 * Commas are inserted automatically; the caller keeps keys and values in order.
 */
#ifndef COORD_JSONW_H
#define COORD_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_buf.h"

#define COORD_JSONW_DEPTH 16

struct coord_jsonw {
    struct co_buf *out; /* borrowed */
    int depth;
    bool need_comma[COORD_JSONW_DEPTH];
    bool after_key;
};

/** Start writing into @out (borrowed, appended to). */
void coord_jsonw_init(struct coord_jsonw *w, struct co_buf *out);
/** Open/close an object or array. */
void coord_jsonw_obj_begin(struct coord_jsonw *w);
void coord_jsonw_obj_end(struct coord_jsonw *w);
void coord_jsonw_arr_begin(struct coord_jsonw *w);
void coord_jsonw_arr_end(struct coord_jsonw *w);
/** Write an object key; the next call writes its value. */
void coord_jsonw_key(struct coord_jsonw *w, const char *key);
/** A string value from @len bytes; invalid UTF-8 becomes U+FFFD. */
void coord_jsonw_strn(struct coord_jsonw *w, const char *s, size_t len);
/** A string value from a C string, or null when @s is NULL. */
void coord_jsonw_str(struct coord_jsonw *w, const char *s);
void coord_jsonw_int(struct coord_jsonw *w, int64_t v);
void coord_jsonw_bool(struct coord_jsonw *w, bool v);
void coord_jsonw_null(struct coord_jsonw *w);
/** Micro-credits as an exact JSON number ("100", "0.1"). */
void coord_jsonw_credits(struct coord_jsonw *w, int64_t micro);
/** An ISO-8601 UTC time string, or null when @ms is 0. */
void coord_jsonw_time(struct coord_jsonw *w, int64_t ms);
/** Pre-encoded JSON text (trusted: produced by jansson or this writer). */
void coord_jsonw_raw(struct coord_jsonw *w, const char *json, size_t len);

/* key + value shorthands */
void coord_jsonw_kstr(struct coord_jsonw *w, const char *key, const char *s);
void coord_jsonw_kint(struct coord_jsonw *w, const char *key, int64_t v);
void coord_jsonw_kcredits(struct coord_jsonw *w, const char *key, int64_t micro);
void coord_jsonw_ktime(struct coord_jsonw *w, const char *key, int64_t ms);

#endif
