/*
 * Tests for coord_openapi: the compiled-in document is the JSON of coordinator/openapi.json, has
 * an operation for each route's template, and the answer log writes one parseable line per
 * answer (a JSON body parsed, other bodies left out, a body that claims JSON and is not flagged).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "co_alloc.h"
#include "coord_openapi.h"

static json_t *
load_document(void)
{
    size_t len = 0;
    const char *doc = coord_openapi_document(&len);
    assert_int_equal(strlen(doc), len);
    json_error_t jerr;
    json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        fail_msg("the compiled-in document is not JSON: %s (line %d)", jerr.text, jerr.line);
    return root;
}

static void
test_document_has_every_route(void **state)
{
    (void)state;
    json_auto_t *doc = load_document();
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *paths = json_object_get(doc, "paths");
    static const char *const methods[] = {"get", "post", "patch", "delete"};
    for (int r = COORD_R_NONE + 1; r < COORD_R_COUNT; r++) {
        const char *t = coord_openapi_route_template((enum coord_route)r);
        if (!t)
            fail_msg("route %d has no template", r);
        json_t *item = json_object_get(paths, t);
        if (!item)
            fail_msg("route %d: %s is not in the document", r, t);
        bool any = false;
        for (size_t i = 0; i < CO_ARRAY_LEN(methods); i++)
            any = any || json_object_get(item, methods[i]) != NULL;
        assert_true(any);
    }
    assert_null(coord_openapi_route_template(COORD_R_NONE));
    assert_null(coord_openapi_route_template(COORD_R_COUNT));
}

static void
test_render(void **state)
{
    (void)state;
    struct coord_req r;
    memset(&r, 0, sizeof(r));
    co_buf_puts(&r.resp, "stale");
    coord_openapi_render(&r);
    size_t len = 0;
    const char *doc = coord_openapi_document(&len);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.resp.len, len);
    assert_memory_equal(r.resp.data, doc, len);
    co_buf_release(&r.resp);
}

static void
record(struct coord_openapi_rec *rec, enum coord_route route, const char *method, const char *path,
       int status, const char *ctype, const char *body)
{
    struct coord_req r;
    memset(&r, 0, sizeof(r));
    r.route = route;
    co_strlcpy(r.method_name, method, sizeof(r.method_name));
    co_strlcpy(r.path, path, sizeof(r.path));
    r.status = status;
    r.content_type = ctype;
    co_buf_puts(&r.resp, body);
    coord_openapi_rec_answer(rec, &r);
    co_buf_release(&r.resp);
}

static void
test_answer_log(void **state)
{
    (void)state;
    char path[] = "/tmp/test_openapi_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    co_err err = CO_ERR_INIT;
    struct coord_openapi_rec *rec = coord_openapi_rec_open(path, &err);
    assert_non_null(rec);
    record(rec, COORD_R_JOB, "GET", "/api/v1/jobs/j1", 200, "application/json",
           "{\"job_id\":\"j1\",\"n\":[1,2]}");
    record(rec, COORD_R_METRICS, "GET", "/metrics", 200, "text/plain; version=0.0.4", "a 1\n");
    record(rec, COORD_R_NONE, "GET", "/api/v1/nope", 404, "application/json", "{\"error\":{}}");
    record(rec, COORD_R_TASK, "GET", "/api/v1/task", 200, "application/json", "{broken");
    coord_openapi_rec_free(rec);
    coord_openapi_rec_free(NULL);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    json_t *l[4];
    for (int i = 0; i < 4; i++) {
        assert_non_null(fgets(line, sizeof(line), f));
        l[i] = json_loads(line, 0, NULL);
        assert_non_null(l[i]);
    }
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);

    assert_string_equal(json_string_value(json_object_get(l[0], "route")), "/api/v1/jobs/{job_id}");
    assert_string_equal(json_string_value(json_object_get(l[0], "method")), "GET");
    assert_int_equal(json_integer_value(json_object_get(l[0], "status")), 200);
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(json_object_get(l[0], "body"), "n"), 1)),
        2);
    assert_string_equal(json_string_value(json_object_get(l[1], "route")), "/metrics");
    assert_true(json_is_null(json_object_get(l[1], "body")));
    assert_int_equal(json_integer_value(json_object_get(l[1], "bytes")), 4);
    assert_true(json_is_null(json_object_get(l[2], "route")));
    assert_string_equal(json_string_value(json_object_get(l[2], "path")), "/api/v1/nope");
    assert_non_null(json_object_get(json_object_get(l[2], "body"), "error"));
    assert_non_null(json_object_get(l[3], "body_error"));
    assert_true(json_is_null(json_object_get(l[3], "body")));
    for (int i = 0; i < 4; i++)
        json_decref(l[i]);

    assert_null(coord_openapi_rec_open("/nonexistent-dir/answers.jsonl", &err));
    assert_non_null(strstr(err.msg, "RECORD_ANSWERS"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_has_every_route),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_answer_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
