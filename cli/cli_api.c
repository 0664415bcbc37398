/* cli_api: JSON calls and error messages (see cli_api.h). */
#include "cli_api.h"

#include <string.h>

#include "co_alloc.h"

/* What the user can do about each status. */
static const char *
hint(long status)
{
    switch (status) {
    case 400:
        return "the request was not valid JSON (a bug in cacheout?)";
    case 401:
        return "check CACHEOUT_TOKEN (a user key) or CACHEOUT_ADMIN_TOKEN";
    case 402:
        return "not enough credits: see `cacheout balance`";
    case 403:
        return "the credential is valid but not allowed to do this (a key's scope, another "
               "user's job)";
    case 404:
        return "no such thing on this coordinator (check the id and CACHEOUT_URL)";
    case 409:
        return "not possible in the current state";
    case 411:
    case 415:
        return "the request was malformed (a bug in cacheout?)";
    case 413:
        return "the request is too large (the files sent?)";
    case 422:
        return "a value was refused";
    case 429:
        return "too many requests";
    case 503:
        return "the coordinator cannot serve now (database down?): try again later";
    default:
        return status >= 500 ? "the coordinator failed: try again later" : "request refused";
    }
}

/* What the user can do about an API error code (API.md), when the status alone says too little. */
static const char *
code_hint(const char *code)
{
    static const struct {
        const char *code, *hint;
    } hints[] = {
        {"bad_request", "the request was malformed (a bug in cacheout?)"},
        {"bad_json", "the request was not valid JSON (a bug in cacheout?)"},
        {"method_not_allowed", "this coordinator does not serve that request (an older version?)"},
        {"quota_exceeded",
         "too many pending jobs for this user: wait for some to finish or cancel some"},
        {"rate_limited", "too many requests: slow down"},
        {"idempotency_mismatch", "that Idempotency-Key was already used with another request"},
        {"idempotency_in_progress",
         "the first request with that Idempotency-Key is still running: try again"},
        {"invariant_broken", "the coordinator's credit check failed: tell its operator"},
        {"internal", "the coordinator failed: try again later, or tell its operator"},
        {"unavailable", "the coordinator cannot serve now (database down?): try again later"},
    };
    for (size_t i = 0; code && i < CO_ARRAY_LEN(hints); i++) {
        if (strcmp(code, hints[i].code) == 0)
            return hints[i].hint;
    }
    return NULL;
}

static enum co_errcode
code_of(long status)
{
    switch (status) {
    case 401:
    case 403:
        return CO_E_AUTH;
    case 402:
        return CO_E_FUNDS;
    case 404:
        return CO_E_NOTFOUND;
    case 409:
        return CO_E_CONFLICT;
    case 413:
        return CO_E_TOOLARGE;
    case 429:
        return CO_E_LIMIT;
    case 503:
        return CO_E_UNAVAILABLE;
    default:
        return status >= 500 ? CO_E_UNAVAILABLE : CO_E_INVAL;
    }
}

int
cli_api_error_message(long status, const char *body, size_t len, long retry_after, co_err *err)
{
    json_auto_t *doc = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *e = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    struct co_buf b = CO_BUF_INIT;

    const char *advice = code_hint(code) ? code_hint(code) : hint(status);

    co_buf_printf(&b, "HTTP %ld", status);
    if (code != NULL)
        co_buf_printf(&b, " %s", code);
    co_buf_printf(&b, ": %s", msg && msg[0] ? msg : advice);
    if (field != NULL && field[0] != '\0')
        co_buf_printf(&b, " (field '%s')", field);
    if (status == 429) {
        if (retry_after >= 0)
            co_buf_printf(&b, "; retry after %ld s", retry_after);
        else
            co_buf_puts(&b, "; retry later");
    }
    if (msg && msg[0] && status != 422 && (status != 429 || code_hint(code) != NULL))
        co_buf_printf(&b, " (%s)", advice);
    co_err_set(err, code_of(status), "%s", b.data);
    if (field != NULL)
        co_strlcpy(err->field, field, sizeof(err->field));
    co_buf_release(&b);
    return -1;
}

int
cli_api_call(struct cli_http *h, const char *method, const char *path, const json_t *body,
             json_t **out, co_err *err)
{
    struct cli_resp r = {0};
    co_autofree char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = -1;

    if (out != NULL)
        *out = NULL;
    if (body != NULL && text == NULL)
        return co_err_set(err, CO_E_INVAL, "cannot encode the request (invalid UTF-8?)");
    if (cli_http_request(h, method, path, text, &r, err) < 0)
        goto out;
    if (r.status < 200 || r.status >= 300) {
        cli_api_error_message(r.status, r.body.data, r.body.len, r.retry_after, err);
        goto out;
    }
    if (out != NULL && r.body.len > 0) {
        json_error_t je;
        *out = json_loadb(r.body.data, r.body.len, 0, &je);
        if (*out == NULL) {
            co_err_set(err, CO_E_INVAL, "%s %s: the answer is not JSON: %s", method, path, je.text);
            goto out;
        }
    }
    rc = 0;
out:
    cli_resp_release(&r);
    return rc;
}
