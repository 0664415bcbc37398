/* proto_files: checking, normalising and decoding a job's input files (see proto_files.h). */
#include "proto_files.h"

#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "proto_json.h"
#include "proto_utf8.h"

int
proto_file_path_check(const char *path, size_t len, const char *field, co_err *err)
{
    size_t start = 0;

    if (len == 0)
        return co_err_field(err, CO_E_INVAL, field, "invalid '%s': empty path", field);
    if (len > PROTO_FILE_PATH_MAX)
        return co_err_field(err, CO_E_INVAL, field,
                            "invalid '%s': path too long (%zu bytes, at most %d)", field, len,
                            PROTO_FILE_PATH_MAX);
    if (path[0] == '/')
        return co_err_field(err, CO_E_INVAL, field, "invalid '%s': must be a relative path", field);
    if (!proto_utf8_valid(path, len))
        return co_err_field(err, CO_E_INVAL, field, "invalid '%s': path is not UTF-8", field);
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)path[i] : '/';

        if (c < 0x20 || c == 0x7f || c == '\\')
            return co_err_field(err, CO_E_INVAL, field,
                                "invalid '%s': contains a control character or backslash", field);
        if (c != '/')
            continue;
        size_t n = i - start;
        if (n == 0)
            return co_err_field(err, CO_E_INVAL, field, "invalid '%s': empty path component",
                                field);
        if ((n == 1 && path[start] == '.') ||
            (n == 2 && path[start] == '.' && path[start + 1] == '.'))
            return co_err_field(err, CO_E_INVAL, field,
                                "invalid '%s': '.' and '..' are not allowed", field);
        start = i + 1;
    }
    return 0;
}

/* True if @a is @b or a parent folder of it, or the other way round. */
static bool
paths_clash(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la < lb ? la : lb;
    if (memcmp(a, b, n) != 0)
        return false;
    if (la == lb)
        return true;
    return (la < lb ? b[la] : a[lb]) == '/';
}

/* The clash rules over the keys of @obj (already path-checked) and @reserved. */
static int
check_clashes(const json_t *obj, const char *const *reserved, co_err *err)
{
    const char *k1, *k2;
    json_t *v1, *v2;

    json_object_foreach((json_t *)obj, k1, v1)
    {
        for (size_t r = 0; reserved && reserved[r]; r++) {
            if (paths_clash(k1, reserved[r]))
                return co_err_field(err, CO_E_INVAL, "files",
                                    "invalid 'files': '%.255s' clashes with '%.255s', which the "
                                    "agent writes itself",
                                    k1, reserved[r]);
        }
        bool after = false;
        json_object_foreach((json_t *)obj, k2, v2)
        {
            if (k2 == k1) {
                after = true;
                continue;
            }
            if (after && paths_clash(k1, k2))
                return co_err_field(err, CO_E_INVAL, "files",
                                    "invalid 'files': '%.255s' and '%.255s' cannot both exist "
                                    "(one is a folder of the other)",
                                    k1, k2);
        }
    }
    return 0;
}

static int
check_count(const json_t *obj, co_err *err)
{
    if (!json_is_object(obj))
        return co_err_field(err, CO_E_INVAL, "files", "invalid 'files': must be an object");
    if (json_object_size(obj) > PROTO_FILES_MAX)
        return co_err_field(err, CO_E_INVAL, "files", "invalid 'files': %zu entries, at most %d",
                            json_object_size(obj), PROTO_FILES_MAX);
    return 0;
}

static int
over_cap(size_t total, size_t cap, co_err *err)
{
    return co_err_field(err, CO_E_TOOLARGE, "files",
                        "invalid 'files': more than %zu bytes once decoded (at least %zu)", cap,
                        total);
}

int
proto_files_from_submit(const json_t *files, const char *const *reserved, size_t max_bytes,
                        char **out, co_err *err)
{
    const char *path;
    json_t *val;
    size_t total = 0;
    size_t cap =
        max_bytes == 0 || max_bytes > PROTO_FILES_BYTES_MAX ? PROTO_FILES_BYTES_MAX : max_bytes;

    *out = NULL;
    if (check_count(files, err) < 0)
        return -1;
    json_auto_t *norm = json_object();
    json_object_foreach((json_t *)files, path, val)
    {
        if (proto_file_path_check(path, strlen(path), "files", err) < 0)
            return -1;
        if (!json_is_object(val) || json_object_size(val) != 1)
            return co_err_field(err, CO_E_INVAL, "files",
                                "invalid 'files': '%.255s' must be {\"content\": text} or "
                                "{\"base64\": data}",
                                path);
        json_t *content = json_object_get(val, "content");
        json_t *b64 = json_object_get(val, "base64");
        char *enc = NULL;
        if (content != NULL && json_is_string(content)) {
            size_t n = json_string_length(content);
            total += n;
            if (total > cap)
                return over_cap(total, cap, err);
            enc = proto_base64_encode(json_string_value(content), n);
        } else if (b64 != NULL && json_is_string(b64)) {
            char *raw = NULL;
            size_t n = 0;
            co_err derr = CO_ERR_INIT;
            /* Check the size before decoding: 4 characters of base64 per 3 bytes. */
            if (total + json_string_length(b64) / 4 * 3 > cap + 2)
                return over_cap(total + json_string_length(b64) / 4 * 3, cap, err);
            if (proto_base64_decode(json_string_value(b64), json_string_length(b64), &raw, &n,
                                    &derr) < 0)
                return co_err_field(err, CO_E_INVAL, "files",
                                    "invalid 'files': '%.255s' is not valid base64", path);
            free(raw);
            total += n;
            if (total > cap)
                return over_cap(total, cap, err);
            enc = co_xstrndup(json_string_value(b64), json_string_length(b64));
        } else {
            return co_err_field(err, CO_E_INVAL, "files",
                                "invalid 'files': '%.255s' must be {\"content\": text} or "
                                "{\"base64\": data}",
                                path);
        }
        json_object_set_new(norm, path, json_string_nocheck(enc));
        free(enc);
    }
    if (check_clashes(norm, reserved, err) < 0)
        return -1;
    if (json_object_size(norm) == 0)
        return 0;
    *out = proto_json_dumps(norm, 0, NULL);
    return 0;
}

int
proto_files_check(const json_t *obj, const char *const *reserved, struct proto_file_list *out,
                  co_err *err)
{
    const char *path;
    json_t *val;
    struct proto_file_list l = {0};

    if (out)
        memset(out, 0, sizeof(*out));
    if (check_count(obj, err) < 0 || check_clashes(obj, reserved, err) < 0)
        return -1;
    if (out)
        l.items = co_xcalloc(json_object_size(obj) + 1, sizeof(*l.items));
    json_object_foreach((json_t *)obj, path, val)
    {
        char *raw = NULL;
        size_t n = 0;
        if (proto_file_path_check(path, strlen(path), "files", err) < 0)
            goto fail;
        if (!json_is_string(val)) {
            co_err_field(err, CO_E_INVAL, "files", "invalid 'files': '%.255s' is not a string",
                         path);
            goto fail;
        }
        if (l.total + json_string_length(val) / 4 * 3 > PROTO_FILES_BYTES_MAX + 2) {
            over_cap(l.total + json_string_length(val) / 4 * 3, PROTO_FILES_BYTES_MAX, err);
            goto fail;
        }
        if (proto_base64_decode(json_string_value(val), json_string_length(val), &raw, &n, err) <
            0) {
            co_err_field(err, CO_E_INVAL, "files", "invalid 'files': '%.255s' is not valid base64",
                         path);
            goto fail;
        }
        l.total += n;
        if (l.total > PROTO_FILES_BYTES_MAX) {
            free(raw);
            over_cap(l.total, PROTO_FILES_BYTES_MAX, err);
            goto fail;
        }
        if (!out) {
            free(raw);
            continue;
        }
        l.items[l.len].path = co_xstrdup(path);
        l.items[l.len].data = raw;
        l.items[l.len].len = n;
        l.len++;
    }
    if (out)
        *out = l;
    return 0;
fail:
    proto_file_list_release(&l);
    return -1;
}

int
proto_files_parse(const char *text, const char *const *reserved, struct proto_file_list *out,
                  co_err *err)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0')
        return 0;
    json_auto_t *obj = proto_json_load_object(text, strlen(text), PROTO_FILES_BYTES_MAX * 2, err);
    if (obj == NULL)
        return co_err_field(err, CO_E_INVAL, "files", "invalid 'files': not a JSON object");
    return proto_files_check(obj, reserved, out, err);
}

void
proto_file_list_release(struct proto_file_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].path);
        free(l->items[i].data);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}
