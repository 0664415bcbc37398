/*
 * proto_json: the JSON conventions of the project on top of jansson.  Untrusted input is loaded
 * only from a size-capped buffer with duplicate keys rejected; output is compact with every real
 * in its shortest exact form; credits (int64 micro-credits) cross the JSON boundary exactly.
 */
#ifndef PROTO_JSON_H
#define PROTO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "co_err.h"

/**
 * Parse @len bytes of @buf (need not be NUL-terminated) as one JSON value with
 * JSON_REJECT_DUPLICATES.  Errors: CO_E_TOOLARGE if @len > @max; CO_E_INVAL (field "") for
 * anything jansson rejects (syntax, duplicate key, nesting deeper than 2048, an integer that
 * does not fit int64, invalid UTF-8, a NUL byte outside a string escape), the message giving
 * jansson's reason and position.  Returns a new reference (caller json_decref()s) or NULL.
 */
json_t *proto_json_loadb(const char *buf, size_t len, size_t max, co_err *err)
    __attribute__((warn_unused_result));

/**
 * As proto_json_loadb(), and the value must be an object (else CO_E_INVAL, field "", "expected
 * a JSON object").
 */
json_t *proto_json_load_object(const char *buf, size_t len, size_t max, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Dump @j (borrowed) as compact JSON text (any value, not only objects), like json_dumps() with
 * JSON_COMPACT except for reals: each real is written in the shortest form that reads back as
 * the same double ("0.1", "1234567.891011", "0.30000000000000004", "1e-6", "100.0"), so no value
 * changes and credits print exactly.  @flags may add JSON_SORT_KEYS, JSON_ESCAPE_SLASH (for JSON
 * embedded in HTML) and JSON_ENSURE_ASCII; other flags are ignored.  Returns a caller-owned
 * NUL-terminated string (free()) and its length in *len (if not NULL); NULL if @j is NULL or
 * nested deeper than 4096 levels (or contains a reference cycle).
 */
char *proto_json_dumps(const json_t *j, size_t flags, size_t *len);

/**
 * A new JSON number for @micro micro-credits (caller owns the reference): an integer when the
 * amount is whole ("100"), else a real that proto_json_dumps() prints with at most 6 decimals
 * ("0.1", "1234567.891011"; amounts under 0.0001 in exponent form, "1e-6").  Exact whenever the
 * amount has at most 15 significant digits (every amount below 10^9 credits, and every whole
 * amount); above that a real is the nearest double, as with any JSON number.
 */
json_t *proto_json_credits(int64_t micro);

/**
 * Read a credit amount from @v (borrowed): a JSON integer (whole credits) or real (at most 6
 * decimals, converted exactly through co_credits_from_double).  Errors: CO_E_INVAL with field
 * @what if @v is not a number (booleans and strings are not), CO_E_RANGE/CO_E_INVAL from
 * common/co_credits.h on overflow or too many decimals (field @what).
 */
int proto_json_get_credits(const json_t *v, const char *what, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

#endif
