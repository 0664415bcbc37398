/* proto_utf8: UTF-8 checks and repair, and base64, for text that crosses the wire. */
#ifndef PROTO_UTF8_H
#define PROTO_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "co_err.h"

/** True if @s (of @len bytes) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool proto_utf8_valid(const char *s, size_t len);

/** The number of characters (code points) in valid UTF-8 text @s of @len bytes. */
size_t proto_utf8_count(const char *s, size_t len);

/**
 * The largest n <= @max such that the first n bytes of @s (of @len bytes) do not end inside a
 * UTF-8 sequence: use it to cut text (or output chunks) without splitting a character.
 */
size_t proto_utf8_cut(const char *s, size_t len, size_t max);

/**
 * Return a caller-owned, NUL-terminated copy of @s (of @len bytes) in which every invalid
 * UTF-8 sequence (each maximal bad subpart, as in Unicode's recommendation) and every NUL byte
 * is replaced by U+FFFD: text fit for a JSON string shown to people (the output endpoint,
 * dashboards).  *out_len (if not NULL) receives its length.
 */
char *proto_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/** Length of the base64 text (with padding, no NUL) for @len bytes. */
size_t proto_base64_len(size_t len);

/**
 * Encode @len bytes as standard base64 with padding.  Returns a caller-owned NUL-terminated
 * string (free()).
 */
char *proto_base64_encode(const void *data, size_t len);

/**
 * Decode standard base64 text @s of @len bytes (padding required, no whitespace, no URL-safe
 * alphabet, canonical: unused bits must be zero).  On success *out is a caller-owned buffer of
 * *out_len bytes plus a NUL (free()).  Errors: CO_E_INVAL "invalid base64".
 */
int proto_base64_decode(const char *s, size_t len, char **out, size_t *out_len, co_err *err)
    __attribute__((warn_unused_result));

#endif
