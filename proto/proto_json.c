/* proto_json: capped JSON loading, compact dumping and exact credits (see proto_json.h). */
#include "proto_json.h"

#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
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

char *
proto_json_dumps(const json_t *j, size_t extra_flags, size_t *len)
{
    char *s = json_dumps(j, PROTO_JSON_DUMP_FLAGS | JSON_ENCODE_ANY | extra_flags);

    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
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
         * nearest to the decimal amount, and "%.15g" prints that decimal back whenever it has at
         * most 15 significant digits.
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
