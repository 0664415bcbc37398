/* Tests for cli_api_error_message: a clear message for every error status of the API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli_api.h"

static void
expect_msg(long status, const char *body, long retry_after, const char *const *needles,
           enum co_errcode code)
{
    co_err err = CO_ERR_INIT;
    assert_int_equal(
        cli_api_error_message(status, body, body ? strlen(body) : 0, retry_after, &err), -1);
    assert_int_equal(err.code, code);
    for (; *needles; needles++)
        if (strstr(err.msg, *needles) == NULL)
            fail_msg("'%s' lacks '%s'", err.msg, *needles);
}
#define N(...) ((const char *const[]){__VA_ARGS__, NULL})
#define E(code, msg) "{\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}"

static void
test_every_status(void **state)
{
    (void)state;
    expect_msg(401, E("unauthorized", "missing or wrong token"), -1,
               N("HTTP 401 unauthorized: missing or wrong token", "CACHEOUT_TOKEN"), CO_E_AUTH);
    expect_msg(403, E("forbidden", "not your job"), -1, N("HTTP 403 forbidden", "scope"),
               CO_E_AUTH);
    expect_msg(402, E("insufficient_credits", "balance 1 < cost 2"), -1,
               N("HTTP 402 insufficient_credits: balance 1 < cost 2", "cacheout balance"),
               CO_E_FUNDS);
    expect_msg(404, E("not_found", "no such job"), -1, N("HTTP 404 not_found", "CACHEOUT_URL"),
               CO_E_NOTFOUND);
    expect_msg(409, E("conflict", "job is finished"), -1, N("HTTP 409 conflict"), CO_E_CONFLICT);
    expect_msg(413, E("too_large", "body over 1048576"), -1, N("HTTP 413", "files"), CO_E_TOOLARGE);
    expect_msg(429, E("rate_limited", "slow down"), 3,
               N("HTTP 429 rate_limited", "retry after 3 s"), CO_E_LIMIT);
    expect_msg(429, NULL, -1, N("HTTP 429", "retry later"), CO_E_LIMIT);
    expect_msg(503, E("unavailable", "database down"), -1, N("HTTP 503", "try again later"),
               CO_E_UNAVAILABLE);
    expect_msg(500, "not json", -1, N("HTTP 500", "failed"), CO_E_UNAVAILABLE);
    expect_msg(400, E("bad_json", "x"), -1, N("HTTP 400 bad_json"), CO_E_INVAL);
}

/* Codes that share a status get their own advice (API.md's error codes). */
static void
test_every_code(void **state)
{
    (void)state;
    expect_msg(429, E("quota_exceeded", "1000 pending jobs"), -1,
               N("HTTP 429 quota_exceeded: 1000 pending jobs", "cancel some"), CO_E_LIMIT);
    expect_msg(409, E("idempotency_mismatch", "other body"), -1,
               N("HTTP 409 idempotency_mismatch", "another request"), CO_E_CONFLICT);
    expect_msg(409, E("idempotency_in_progress", "running"), -1,
               N("HTTP 409 idempotency_in_progress", "still running"), CO_E_CONFLICT);
    expect_msg(405, E("method_not_allowed", "no"), -1, N("HTTP 405", "older version"), CO_E_INVAL);
    expect_msg(400, E("bad_request", "invalid Content-Length"), -1,
               N("HTTP 400 bad_request", "malformed"), CO_E_INVAL);
    expect_msg(411, E("length_required", "no length"), -1, N("HTTP 411", "malformed"), CO_E_INVAL);
    expect_msg(415, E("unsupported_media_type", "json only"), -1, N("HTTP 415", "malformed"),
               CO_E_INVAL);
    expect_msg(500, E("invariant_broken", "sum differs"), -1, N("HTTP 500", "operator"),
               CO_E_UNAVAILABLE);
    expect_msg(500, E("internal", "internal error"), -1, N("HTTP 500 internal", "try again"),
               CO_E_UNAVAILABLE);
}

static void
test_field_of_422(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    const char *body = "{\"error\":{\"code\":\"invalid_field\",\"message\":\"invalid 'image'\","
                       "\"field\":\"image\"}}";
    cli_api_error_message(422, body, strlen(body), -1, &err);
    assert_string_equal(err.msg, "HTTP 422 invalid_field: invalid 'image' (field 'image')");
    assert_string_equal(err.field, "image");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status),
        cmocka_unit_test(test_every_code),
        cmocka_unit_test(test_field_of_422),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
