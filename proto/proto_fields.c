/* proto_fields: typed member access for the decoders (see proto_fields.h). */
#include "proto_fields.h"

#include <inttypes.h>
#include <string.h>

#include "co_alloc.h"
#include "proto_utf8.h"

/* Returns the member, or NULL when absent or null. */
static const json_t *
member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_null(v) ? NULL : v;
}

static int
absent(const char *key, bool required, co_err *err)
{
    if (required)
        return co_err_field(err, CO_E_INVAL, key, "missing '%s'", key);
    return 0;
}

int
pf_string(const json_t *obj, const char *key, bool required, size_t min, size_t max,
          enum pf_unit unit, const char **out, size_t *len_out, co_err *err)
{
    const json_t *v = member(obj, key);
    const char *s;
    size_t len, n;

    if (v == NULL)
        return absent(key, required, err);
    if (!json_is_string(v))
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must be a string", key);
    s = json_string_value(v);
    len = json_string_length(v);
    if (memchr(s, '\0', len) != NULL)
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': contains a NUL character", key);
    n = unit == PF_CHARS ? proto_utf8_count(s, len) : len;
    if (n < min) {
        if (n == 0)
            return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must not be empty", key);
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': too short (%zu %s, at least %zu)",
                            key, n, unit == PF_CHARS ? "characters" : "bytes", min);
    }
    if (n > max)
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': too long (%zu %s, at most %zu)",
                            key, n, unit == PF_CHARS ? "characters" : "bytes", max);
    *out = s;
    if (len_out != NULL)
        *len_out = len;
    return 1;
}

int
pf_string_dup(const json_t *obj, const char *key, bool required, size_t min, size_t max,
              enum pf_unit unit, char **out, co_err *err)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = pf_string(obj, key, required, min, max, unit, &s, &len, err);

    if (rc == 1) {
        free(*out);
        *out = co_xstrndup(s, len);
    }
    return rc;
}

int
pf_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max, int64_t *out,
       co_err *err)
{
    const json_t *v = member(obj, key);
    json_int_t x;

    if (v == NULL)
        return absent(key, required, err);
    /* Reals (1.0, 1e2), booleans and strings are not integers. */
    if (!json_is_integer(v))
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must be an integer", key);
    x = json_integer_value(v);
    if (x < min || x > max)
        return co_err_field(err, CO_E_INVAL, key,
                            "invalid '%s': %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                            key, (int64_t)x, min, max);
    *out = x;
    return 1;
}

int
pf_bool(const json_t *obj, const char *key, bool required, bool *out, co_err *err)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return absent(key, required, err);
    if (!json_is_boolean(v))
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must be a boolean", key);
    *out = json_is_true(v);
    return 1;
}

int
pf_id(const json_t *obj, const char *key, bool required, char out[CO_ID_MAX + 1], co_err *err)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = pf_string(obj, key, required, 1, CO_ID_MAX, PF_BYTES, &s, &len, err);

    if (rc != 1)
        return rc;
    if (!co_id_valid(s))
        return co_err_field(err, CO_E_INVAL, key,
                            "invalid '%s': an id is 1-64 characters of [A-Za-z0-9._-]", key);
    memcpy(out, s, len + 1);
    return 1;
}

int
pf_object(const json_t *obj, const char *key, bool required, const json_t **out, co_err *err)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return absent(key, required, err);
    if (!json_is_object(v))
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must be an object", key);
    *out = v;
    return 1;
}

int
pf_array(const json_t *obj, const char *key, bool required, size_t max, const json_t **out,
         co_err *err)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return absent(key, required, err);
    if (!json_is_array(v))
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': must be an array", key);
    if (json_array_size(v) > max)
        return co_err_field(err, CO_E_INVAL, key, "invalid '%s': more than %zu elements", key, max);
    *out = v;
    return 1;
}

void
pf_field_name(char *dst, size_t size, const char *name)
{
    size_t len = strlen(name), n;

    if (size == 0)
        return;
    if (len == 0) {
        co_strlcpy(dst, "\"\"", size);
        return;
    }
    n = proto_utf8_cut(name, len, size - 1);
    memcpy(dst, name, n);
    dst[n] = '\0';
    /* The name ends up in logs and answers: no control characters (no forged log lines). */
    for (char *p = dst; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
}
