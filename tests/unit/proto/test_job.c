/* Tests for proto_job_decode(): every rule of API.md "POST /api/v1/submit". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "proto_agent.h"
#include "proto_files.h"
#include "proto_job.h"

/* The body of the original README's submit example, byte for byte. */
static const char readme_body[] = "{\n"
                                  "    \"title\": \"Data Processing Job\",\n"
                                  "    \"description\": \"Process large dataset\",\n"
                                  "    \"code\": \"print(\\\"Hello World\\\")\",\n"
                                  "    \"required_cores\": 2,\n"
                                  "    \"required_ram_mb\": 4096,\n"
                                  "    \"priority\": 1,\n"
                                  "    \"command\": \"python script.py\",\n"
                                  "    \"parameters\": {\"input\": \"data.csv\"},\n"
                                  "    \"buyer_id\": \"default-buyer\"\n"
                                  "  }";

static const struct proto_job_limits limits = {.max_cores = 64, .max_ram_mb = 65536};

static void
test_readme_example(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    char *path = NULL;

    if (proto_job_decode(readme_body, strlen(readme_body), &limits, &s, &err) != 0)
        fail_msg("README example rejected: field '%s': %s", err.field, err.msg);
    assert_string_equal(s.title, "Data Processing Job");
    assert_string_equal(s.description, "Process large dataset");
    assert_string_equal(s.code, "print(\"Hello World\")");
    assert_null(s.code_file);
    assert_int_equal(s.required_cores, 2);
    assert_int_equal(s.required_ram_mb, 4096);
    assert_int_equal(s.priority, 1);
    assert_string_equal(s.command, "python script.py");
    assert_string_equal(s.parameters, "{\"input\":\"data.csv\"}");
    assert_string_equal(s.buyer_id, "default-buyer");
    /* Defaults of the extensions. */
    assert_string_equal(s.image, "default");
    assert_int_equal(s.timeout_seconds, 3600);
    assert_int_equal(s.max_attempts, 3);
    assert_int_equal(proto_job_code_path(&s, &path, &err), 0);
    assert_string_equal(path, "script.py");
    free(path);
    proto_job_spec_release(&s);
    assert_null(s.title);
    proto_job_spec_release(&s); /* twice is fine */
}

static void
test_minimal_defaults(void **state)
{
    (void)state;
    const char *body = "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                       "\"command\":\"true\",\"buyer_id\":\"b\"}";
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    char *path = NULL;

    assert_int_equal(proto_job_decode(body, strlen(body), NULL, &s, &err), 0);
    assert_string_equal(s.description, "");
    assert_string_equal(s.code, "");
    assert_null(s.code_file);
    assert_int_equal(s.priority, 5);
    assert_string_equal(s.parameters, "{}");
    assert_string_equal(s.image, "default");
    assert_int_equal(s.timeout_seconds, 3600);
    assert_int_equal(s.max_attempts, 3);
    assert_int_equal(proto_job_code_path(&s, &path, &err), 0);
    assert_string_equal(path, "main");
    free(path);
    proto_job_spec_release(&s);
}

/*
 * Decode the README body with @key set to the JSON text @value (or removed when @value is
 * NULL).  Returns the decode result; the spec is released unless @keep.
 */
static int
decode_with(const char *key, const char *value, const struct proto_job_limits *lim,
            struct proto_job_spec *keep, co_err *err)
{
    json_error_t jerr;
    json_t *obj = json_loads(readme_body, 0, &jerr);
    struct proto_job_spec s;
    char *body;
    int rc;

    assert_non_null(obj);
    if (value == NULL) {
        json_object_del(obj, key);
    } else {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
        if (v == NULL)
            fail_msg("bad test value for %s: %s", key, value);
        json_object_set_new(obj, key, v);
    }
    body = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    co_err_clear(err);
    rc = proto_job_decode(body, strlen(body), lim, &s, err);
    free(body);
    if (rc == 0 && keep != NULL)
        *keep = s;
    else if (rc == 0)
        proto_job_spec_release(&s);
    else
        assert_null(s.title); /* zeroed on error */
    return rc;
}

static void
expect_ok(const char *key, const char *value)
{
    co_err err = CO_ERR_INIT;

    if (decode_with(key, value, &limits, NULL, &err) != 0)
        fail_msg("%s=%s rejected: field '%s': %s", key, value ? value : "(absent)", err.field,
                 err.msg);
}

static void
expect_bad(const char *key, const char *value)
{
    co_err err = CO_ERR_INIT;

    if (decode_with(key, value, &limits, NULL, &err) == 0)
        fail_msg("%s=%s accepted", key, value ? value : "(absent)");
    assert_int_equal(err.code, CO_E_INVAL);
    if (strcmp(err.field, key) != 0)
        fail_msg("%s=%s: error on field '%s' (%s)", key, value ? value : "(absent)", err.field,
                 err.msg);
    assert_false(proto_job_err_is_bad_json(&err));
}

/* A JSON string literal of @n copies of @unit (a UTF-8 character or an ASCII byte). */
static char *
str_of(const char *unit, size_t n)
{
    size_t ulen = strlen(unit);
    char *s = co_xmalloc(n * ulen + 3);

    s[0] = '"';
    for (size_t i = 0; i < n; i++)
        memcpy(s + 1 + i * ulen, unit, ulen);
    s[1 + n * ulen] = '"';
    s[2 + n * ulen] = '\0';
    return s;
}

static void
test_title(void **state)
{
    (void)state;
    char *s;

    expect_bad("title", NULL);
    expect_bad("title", "null");
    expect_bad("title", "\"\"");
    expect_bad("title", "123");
    expect_bad("title", "[\"x\"]");
    expect_ok("title", "\"x\"");
    s = str_of("a", 200);
    expect_ok("title", s);
    free(s);
    s = str_of("a", 201);
    expect_bad("title", s);
    free(s);
    /* The limit counts characters, not bytes: 200 two-byte characters fit. */
    s = str_of("\xc3\xa9", 200);
    expect_ok("title", s);
    free(s);
    s = str_of("\xc3\xa9", 201);
    expect_bad("title", s);
    free(s);
}

static void
test_description(void **state)
{
    (void)state;
    char *s;

    expect_ok("description", NULL);
    expect_ok("description", "null");
    expect_ok("description", "\"\"");
    expect_bad("description", "5");
    expect_bad("description", "true");
    s = str_of("d", 10000);
    expect_ok("description", s);
    free(s);
    s = str_of("d", 10001);
    expect_bad("description", s);
    free(s);
}

static void
test_code(void **state)
{
    (void)state;
    char *s;

    expect_ok("code", NULL);
    expect_ok("code", "null");
    expect_ok("code", "\"\"");
    expect_bad("code", "1");
    expect_bad("code", "{}");
    s = str_of("c", PROTO_CODE_MAX);
    expect_ok("code", s);
    free(s);
    s = str_of("c", PROTO_CODE_MAX + 1);
    expect_bad("code", s);
    free(s);
    /* code counts bytes: 1 MiB of two-byte characters is too much. */
    s = str_of("\xc3\xa9", PROTO_CODE_MAX / 2 + 1);
    expect_bad("code", s);
    free(s);
}

static void
test_code_file(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    char *path = NULL;

    expect_ok("code_file", NULL);
    expect_ok("code_file", "null");
    expect_ok("code_file", "\"main.py\"");
    expect_ok("code_file", "\"src/app/main.py\"");
    expect_bad("code_file", "\"\"");
    expect_bad("code_file", "\"/etc/passwd\"");
    expect_bad("code_file", "\"../x.py\"");
    expect_bad("code_file", "\"a/../../x\"");
    expect_bad("code_file", "\"a//b\"");
    expect_bad("code_file", "\"a\\nb\"");
    expect_bad("code_file", "7");
    char *long_name = str_of("f", 256);
    expect_bad("code_file", long_name);
    free(long_name);

    /* An explicit code_file wins over the command's file. */
    assert_int_equal(decode_with("code_file", "\"job.py\"", &limits, &s, &err), 0);
    assert_string_equal(s.code_file, "job.py");
    assert_int_equal(proto_job_code_path(&s, &path, &err), 0);
    assert_string_equal(path, "job.py");
    free(path);
    proto_job_spec_release(&s);
}

static void
test_required_cores(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_bad("required_cores", NULL);
    expect_bad("required_cores", "null");
    expect_bad("required_cores", "0");
    expect_bad("required_cores", "-1");
    expect_bad("required_cores", "2.0");
    expect_bad("required_cores", "2.5");
    expect_bad("required_cores", "1e1");
    expect_bad("required_cores", "true");
    expect_bad("required_cores", "\"2\"");
    expect_ok("required_cores", "1");
    expect_ok("required_cores", "64");
    /* Above MAX_JOB_CORES. */
    expect_bad("required_cores", "65");
    /* 2^32 + 1 must not wrap to 1 (jansson's "i" would truncate it). */
    expect_bad("required_cores", "4294967297");
    assert_int_equal(decode_with("required_cores", "4294967297", NULL, &s, &err), 0);
    assert_int_equal(s.required_cores, INT64_C(4294967297));
    proto_job_spec_release(&s);
    assert_int_equal(decode_with("required_cores", "9223372036854775807", NULL, &s, &err), 0);
    assert_int_equal(s.required_cores, INT64_MAX);
    proto_job_spec_release(&s);
    assert_int_equal(decode_with("required_cores", "4294967297", &limits, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "4294967297"));
}

static void
test_required_ram_mb(void **state)
{
    (void)state;
    expect_bad("required_ram_mb", NULL);
    expect_bad("required_ram_mb", "null");
    expect_bad("required_ram_mb", "0");
    expect_bad("required_ram_mb", "-4096");
    expect_bad("required_ram_mb", "4096.0");
    expect_bad("required_ram_mb", "false");
    expect_bad("required_ram_mb", "\"4096\"");
    expect_bad("required_ram_mb", "65537");
    expect_ok("required_ram_mb", "1");
    expect_ok("required_ram_mb", "65536");
}

/* min_reputation 0-1 and the market's maximum prices: millionths, exact, 6 decimals at most. */
static void
test_reputation_and_max_prices(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_ok("min_reputation", "0");
    expect_ok("min_reputation", "1");
    expect_ok("min_reputation", "null");
    expect_bad("min_reputation", "1.5");
    expect_bad("min_reputation", "-0.1");
    expect_bad("min_reputation", "0.1234567");
    expect_bad("min_reputation", "\"0.5\"");
    expect_ok("max_price_per_core_second", "0.0001");
    expect_bad("max_price_per_core_second", "-1");
    expect_bad("max_price_per_gb_second", "true");
    assert_int_equal(decode_with("min_reputation", "0.7", &limits, &s, &err), 0);
    assert_int_equal(s.min_reputation, 700000);
    assert_false(s.has_max_prices);
    proto_job_spec_release(&s);
    assert_int_equal(decode_with("max_price_per_core_second", "0.00025", &limits, &s, &err), 0);
    assert_true(s.has_max_prices);
    assert_false(s.has_max_price_gb);
    assert_int_equal(s.max_price_per_core_second, 250);
    proto_job_spec_release(&s);
}

static void
test_priority(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_ok("priority", NULL);
    expect_ok("priority", "null");
    expect_ok("priority", "1");
    expect_ok("priority", "10");
    expect_bad("priority", "0");
    expect_bad("priority", "11");
    expect_bad("priority", "5.0");
    expect_bad("priority", "\"high\"");
    assert_int_equal(decode_with("priority", NULL, &limits, &s, &err), 0);
    assert_int_equal(s.priority, 5);
    proto_job_spec_release(&s);
    assert_int_equal(decode_with("priority", "10", &limits, &s, &err), 0);
    assert_int_equal(s.priority, 10);
    proto_job_spec_release(&s);
}

static void
test_command(void **state)
{
    (void)state;
    char *s;

    expect_bad("command", NULL);
    expect_bad("command", "null");
    expect_bad("command", "\"\"");
    expect_bad("command", "\"   \"");
    expect_bad("command", "[\"python\",\"x.py\"]");
    expect_bad("command", "\"echo 'unterminated\"");
    expect_bad("command", "\"echo \\\"unterminated\"");
    expect_bad("command", "\"echo \\\\\"");
    expect_ok("command", "\"sh -c 'echo hi; exit 3'\"");
    expect_ok("command", "\"ls; rm -rf / | cat > x\"");
    s = str_of("x", 4096);
    expect_ok("command", s);
    free(s);
    s = str_of("x", 4097);
    expect_bad("command", s);
    free(s);
}

static void
test_parameters(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_ok("parameters", NULL);
    expect_ok("parameters", "null");
    expect_ok("parameters", "{}");
    expect_bad("parameters", "[]");
    expect_bad("parameters", "\"a=1\"");
    expect_bad("parameters", "1");
    assert_int_equal(decode_with("parameters", "{\"b\": [1, 2.5, {\"c\": null}], \"a\": \"x\"}",
                                 &limits, &s, &err),
                     0);
    /* Compact, key order kept. */
    assert_string_equal(s.parameters, "{\"b\":[1,2.5,{\"c\":null}],\"a\":\"x\"}");
    proto_job_spec_release(&s);
    assert_int_equal(decode_with("parameters", NULL, &limits, &s, &err), 0);
    assert_string_equal(s.parameters, "{}");
    proto_job_spec_release(&s);
}

static void
test_buyer_id(void **state)
{
    (void)state;
    char *s;

    expect_bad("buyer_id", NULL);
    expect_bad("buyer_id", "null");
    expect_bad("buyer_id", "\"\"");
    expect_bad("buyer_id", "\"a b\"");
    expect_bad("buyer_id", "\"a/b\"");
    expect_bad("buyer_id", "\"caf\xc3\xa9\"");
    expect_bad("buyer_id", "42");
    expect_ok("buyer_id", "\"Buyer_1.x-y\"");
    s = str_of("b", 64);
    expect_ok("buyer_id", s);
    free(s);
    s = str_of("b", 65);
    expect_bad("buyer_id", s);
    free(s);
}

static void
test_image(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_ok("image", NULL);
    expect_ok("image", "null");
    expect_ok("image", "\"python-3.11\"");
    expect_bad("image", "\"\"");
    expect_bad("image", "\"../../root\"");
    expect_bad("image", "\"a:b\"");
    expect_bad("image", "1");
    assert_int_equal(decode_with("image", "\"python-3.11\"", &limits, &s, &err), 0);
    assert_string_equal(s.image, "python-3.11");
    proto_job_spec_release(&s);
}

static void
test_timeout_seconds(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_ok("timeout_seconds", NULL);
    expect_ok("timeout_seconds", "1");
    expect_ok("timeout_seconds", "604800");
    expect_bad("timeout_seconds", "0");
    expect_bad("timeout_seconds", "604801");
    expect_bad("timeout_seconds", "-5");
    expect_bad("timeout_seconds", "60.5");
    expect_bad("timeout_seconds", "\"60\"");
    assert_int_equal(decode_with("timeout_seconds", "90", &limits, &s, &err), 0);
    assert_int_equal(s.timeout_seconds, 90);
    proto_job_spec_release(&s);
}

static void
test_max_attempts(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    expect_ok("max_attempts", NULL);
    expect_ok("max_attempts", "1");
    expect_ok("max_attempts", "100");
    expect_bad("max_attempts", "0");
    expect_bad("max_attempts", "101");
    expect_bad("max_attempts", "3.0");
    expect_bad("max_attempts", "true");
    assert_int_equal(decode_with("max_attempts", "7", &limits, &s, &err), 0);
    assert_int_equal(s.max_attempts, 7);
    proto_job_spec_release(&s);
}

static void
test_unknown_fields(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    char key[400], value[8] = "1";

    expect_bad("foo", "1");
    expect_bad("Title", "\"x\"");
    expect_bad("status", "\"completed\"");
    expect_bad("cost", "0");

    /* An empty key is named "" so it is not mistaken for bad JSON. */
    assert_int_equal(decode_with("", "1", &limits, NULL, &err), -1);
    assert_string_equal(err.field, "\"\"");
    assert_false(proto_job_err_is_bad_json(&err));

    /* Control characters in a key do not reach the field name (it is logged and echoed). */
    assert_int_equal(decode_with("a\nb\x1b", "1", &limits, NULL, &err), -1);
    assert_string_equal(err.field, "a?b?");
    assert_null(strchr(err.msg, '\n'));

    /* A long multi-byte key is cut on a character boundary. */
    for (int i = 0; i < 100; i++)
        memcpy(key + 3 * i, "\xe2\x82\xac", 3); /* U+20AC, three bytes */
    key[300] = '\0';
    assert_int_equal(decode_with(key, value, &limits, NULL, &err), -1);
    assert_true(strlen(err.field) > 0 && strlen(err.field) < sizeof(err.field));
    assert_int_equal(strlen(err.field) % 3, 0);
    assert_int_equal(strncmp(err.field, key, strlen(err.field)), 0);
}

static void
expect_bad_json(const char *body, size_t len)
{
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;

    if (proto_job_decode(body, len, &limits, &s, &err) == 0)
        fail_msg("accepted: %.*s", (int)(len > 80 ? 80 : len), body);
    if (!proto_job_err_is_bad_json(&err))
        fail_msg("not bad_json (code %d field '%s' %s): %.*s", err.code, err.field, err.msg,
                 (int)(len > 80 ? 80 : len), body);
    /* The message is printable ASCII even when the input is not. */
    for (const char *p = err.msg; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

#define BAD(lit) expect_bad_json(lit, sizeof(lit) - 1)

static void
test_bad_json(void **state)
{
    (void)state;
    BAD("");
    BAD("not json");
    BAD("[1,2]");
    BAD("\"a string\"");
    BAD("42");
    BAD("null");
    BAD("{\"title\":\"x\"");
    BAD("{\"title\":\"x\"} trailing");
    BAD("{\"title\":\"a\",\"title\":\"b\"}");
    BAD("{\"parameters\":{\"a\":1,\"a\":2}}");
    BAD("{\"required_cores\":99999999999999999999}");
    BAD("{\"required_cores\":NaN}");
    BAD("{\"required_cores\":Infinity}");
    BAD("{\"required_cores\":1e400}");
    BAD("{\"title\":\"\xff\xfe\"}");
    BAD("{\"title\":\"\xc0\xaf\"}");
    BAD("{\"title\":\"a\\u0000b\"}");
    BAD("{\"title\":\"a\0b\"}");
    BAD("{'title':'x'}");

    /* Nesting deeper than jansson's limit. */
    size_t depth = 5000;
    char *deep = co_xmalloc(2 * depth + 64);
    size_t n = (size_t)snprintf(deep, 64, "{\"parameters\":{\"a\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n++] = '}';
    expect_bad_json(deep, n);
    free(deep);
}

static void
test_too_large(void **state)
{
    (void)state;
    struct proto_job_limits lim = limits;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    size_t len = strlen(readme_body);

    lim.max_body = len;
    assert_int_equal(proto_job_decode(readme_body, len, &lim, &s, &err), 0);
    proto_job_spec_release(&s);
    lim.max_body = len - 1;
    assert_int_equal(proto_job_decode(readme_body, len, &lim, &s, &err), -1);
    assert_int_equal(err.code, CO_E_TOOLARGE);
    assert_false(proto_job_err_is_bad_json(&err));

    /* Without a caller limit the hard cap applies. */
    char *big = co_xmalloc(PROTO_JOB_BODY_MAX + 2);
    memset(big, ' ', PROTO_JOB_BODY_MAX + 1);
    memcpy(big, readme_body, len);
    assert_int_equal(proto_job_decode(big, PROTO_JOB_BODY_MAX, NULL, &s, &err), 0);
    proto_job_spec_release(&s);
    assert_int_equal(proto_job_decode(big, PROTO_JOB_BODY_MAX + 1, NULL, &s, &err), -1);
    assert_int_equal(err.code, CO_E_TOOLARGE);
    free(big);
}

static void
test_first_error_wins(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    /* An unknown key is reported before type errors; then fields in API order. */
    const char *b1 = "{\"title\":1,\"zzz\":1}";
    const char *b2 = "{\"title\":\"t\",\"required_cores\":0,\"command\":\"\"}";

    assert_int_equal(proto_job_decode(b1, strlen(b1), &limits, &s, &err), -1);
    assert_string_equal(err.field, "zzz");
    assert_int_equal(proto_job_decode(b2, strlen(b2), &limits, &s, &err), -1);
    assert_string_equal(err.field, "required_cores");
    /* Body not NUL-terminated: only len bytes are read. */
    char buf[512];
    size_t len = strlen(readme_body);
    memcpy(buf, readme_body, len);
    buf[len] = 'x';
    assert_int_equal(proto_job_decode(buf, len, &limits, &s, &err), 0);
    proto_job_spec_release(&s);
}

/* A job.assign built from a decoded spec, as the coordinator sends it (borrows from @s). */
static void
set_assign(struct proto_msg *m, const struct proto_job_spec *s, const char *code_file)
{
    struct proto_job_assign *a = &m->u.assign;

    co_strlcpy(a->job.job_id, "0b5c6a1e-8a8e-4e43-9d1c-3c2f1a0e9b7d", sizeof(a->job.job_id));
    a->job.attempt = 1;
    a->title = s->title;
    a->command = s->command;
    a->code = s->code;
    a->code_file = (char *)code_file;
    a->parameters = s->parameters;
    co_strlcpy(a->image, s->image, sizeof(a->image));
    a->required_cores = s->required_cores;
    a->required_ram_mb = s->required_ram_mb;
    a->timeout_seconds = s->timeout_seconds;
    a->files = s->files;
}

/* Re-encoding can lengthen parameters ("1e14" -> "100000000000000.0"): capped after it. */
static void
test_parameters_inflation(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    size_t n = 0;

    /* About 300 KB of body whose parameters normalize to more than 1 MiB. */
    co_buf_puts(&b, "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,\"command\":\"a\","
                    "\"buyer_id\":\"b\",\"parameters\":{\"x\":[1e14");
    while (n++ < PROTO_PARAMETERS_MAX / 18 + 10)
        co_buf_puts(&b, ",1e14");
    co_buf_puts(&b, "]}}");
    assert_true(b.len < PROTO_JOB_BODY_MAX);
    assert_int_equal(proto_job_decode(b.data, b.len, NULL, &s, &err), -1);
    assert_string_equal(err.field, "parameters");
    co_buf_release(&b);
}

/*
 * The largest bodies still give a job.assign that fits in PROTO_MSG_MAX: code escaped at the
 * longest (\u0001 is 6 bytes for 1) filling the body, plus parameters that grow when re-encoded.
 */
static void
test_biggest_assign_fits(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    struct proto_job_spec s;
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN}, back;
    co_err err = CO_ERR_INIT;
    char *path = NULL, *text;
    size_t len = 0;

    co_buf_puts(&b,
                "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                "\"command\":\"python script.py\",\"buyer_id\":\"b\",\"parameters\":{\"x\":[1e14");
    for (int i = 0; i < 10000; i++)
        co_buf_puts(&b, ",1e14");
    co_buf_puts(&b, "]},\"code\":\"");
    /* The longest code once escaped (6 bytes a byte), then the most input files. */
    for (int i = 0; i < PROTO_CODE_MAX; i++)
        co_buf_puts(&b, "\\u0001");
    co_buf_puts(&b, "\",\"files\":{\"f\":{\"content\":\"");
    for (int i = 0; i < PROTO_FILES_BYTES_MAX; i++)
        co_buf_putc(&b, 'x');
    co_buf_puts(&b, "\"}}}");
    assert_true(b.len <= PROTO_JOB_BODY_MAX);
    if (proto_job_decode(b.data, b.len, NULL, &s, &err) != 0)
        fail_msg("big body rejected: %s", err.msg);
    assert_int_equal(proto_job_code_path(&s, &path, &err), 0);
    set_assign(&m, &s, path);
    text = proto_msg_encode(&m, &len);
    assert_non_null(text);
    assert_true(len > PROTO_JOB_BODY_MAX);
    assert_true(len <= PROTO_MSG_MAX);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), 0);
    assert_string_equal(back.u.assign.code, s.code);
    assert_string_equal(back.u.assign.files, s.files);
    proto_msg_release(&back);
    free(text);
    free(path);
    proto_job_spec_release(&s);
    co_buf_release(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_example),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_title),
        cmocka_unit_test(test_description),
        cmocka_unit_test(test_code),
        cmocka_unit_test(test_code_file),
        cmocka_unit_test(test_required_cores),
        cmocka_unit_test(test_required_ram_mb),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_reputation_and_max_prices),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_buyer_id),
        cmocka_unit_test(test_image),
        cmocka_unit_test(test_timeout_seconds),
        cmocka_unit_test(test_max_attempts),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_parameters_inflation),
        cmocka_unit_test(test_biggest_assign_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
