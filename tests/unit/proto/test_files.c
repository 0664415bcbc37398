/* Tests for proto_files: input file paths, the submit form, the normalised form, the caps. */
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

static json_t *
load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        fail_msg("bad test JSON: %s", je.text);
    return j;
}

/* Submit @text as the files value; returns 0 or -1 with @err set. */
static int
submit(const char *text, const char *const *reserved, size_t cap, char **out, co_err *err)
{
    json_t *j = load(text);
    int rc = proto_files_from_submit(j, reserved, cap, out, err);
    json_decref(j);
    return rc;
}

static void
test_paths(void **state)
{
    (void)state;
    static const char *const good[] = {"a",          "src/main.py", "data/x/y/z.csv", ".hidden",
                                       "a..b",       "...",         "dir/.x",         "ünï.txt",
                                       "with space", "-dash"};
    static const char *const bad[] = {"",     "/etc/passwd", "..",    "../x", "a/../b",
                                      "a/..", "./a",         "a/./b", "a//b", "a/",
                                      "a\\b", "a\tb",        "a\nb",  "\x7f", "a/\x01"};
    co_err err = CO_ERR_INIT;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (proto_file_path_check(good[i], strlen(good[i]), "files", &err) != 0)
            fail_msg("'%s' refused: %s", good[i], err.msg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        co_err_clear(&err);
        if (proto_file_path_check(bad[i], strlen(bad[i]), "files", &err) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_string_equal(err.field, "files");
    }
    char longp[PROTO_FILE_PATH_MAX + 2];
    memset(longp, 'a', sizeof(longp));
    assert_int_equal(proto_file_path_check(longp, PROTO_FILE_PATH_MAX, "files", &err), 0);
    assert_int_equal(proto_file_path_check(longp, PROTO_FILE_PATH_MAX + 1, "files", &err), -1);
    /* Invalid UTF-8 (jansson refuses it in JSON, but the check stands alone too). */
    assert_int_equal(proto_file_path_check("\xff", 1, "files", &err), -1);
}

static void
test_submit_normalises(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    char *out = NULL;
    assert_int_equal(submit("{\"a.txt\":{\"content\":\"hi\"},\"b/c.bin\":{\"base64\":\"AAEC\"}}",
                            NULL, 0, &out, &err),
                     0);
    assert_string_equal(out, "{\"a.txt\":\"aGk=\",\"b/c.bin\":\"AAEC\"}");
    struct proto_file_list l;
    assert_int_equal(proto_files_parse(out, NULL, &l, &err), 0);
    assert_int_equal(l.len, 2);
    assert_int_equal(l.total, 5);
    assert_string_equal(l.items[0].path, "a.txt");
    assert_memory_equal(l.items[0].data, "hi", 2);
    assert_string_equal(l.items[1].path, "b/c.bin");
    assert_int_equal(l.items[1].len, 3);
    assert_memory_equal(l.items[1].data, "\0\1\2", 3);
    proto_file_list_release(&l);
    proto_file_list_release(&l); /* twice is fine */
    free(out);
    /* An empty object is no files at all. */
    assert_int_equal(submit("{}", NULL, 0, &out, &err), 0);
    assert_null(out);
    assert_int_equal(proto_files_parse(NULL, NULL, &l, &err), 0);
    assert_int_equal(l.len, 0);
}

static void
test_submit_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",
        "{\"../x\":{\"content\":\"\"}}",
        "{\"/etc/shadow\":{\"content\":\"\"}}",
        "{\"a//b\":{\"content\":\"\"}}",
        "{\"a\":\"text\"}",
        "{\"a\":{}}",
        "{\"a\":{\"content\":1}}",
        "{\"a\":{\"content\":\"x\",\"base64\":\"eA==\"}}",
        "{\"a\":{\"data\":\"x\"}}",
        "{\"a\":{\"base64\":\"not base64!\"}}",
        "{\"a\":{\"base64\":\"eA\"}}",
        "{\"a\":{\"base64\":\"eB==\"}}",
        "{\"a\":{\"content\":\"\"},\"a/b\":{\"content\":\"\"}}",
        "{\"a/b/c\":{\"content\":\"\"},\"a/b\":{\"content\":\"\"}}",
        "{\"params.json\":{\"content\":\"\"}}",
        "{\"main.py\":{\"content\":\"\"}}",
        "{\"main.py/x\":{\"content\":\"\"}}",
    };
    static const char *const reserved[] = {"params.json", "main.py", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        co_err err = CO_ERR_INIT;
        char *out = NULL;
        if (submit(bad[i], reserved, 0, &out, &err) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_null(out);
        assert_string_equal(err.field, "files");
        assert_int_equal(err.code, CO_E_INVAL);
    }
    /* Siblings and a shared prefix that is not a folder are fine. */
    co_err err = CO_ERR_INIT;
    char *out = NULL;
    assert_int_equal(submit("{\"ab\":{\"content\":\"\"},\"a/b\":{\"content\":\"\"},\"a.b\":"
                            "{\"content\":\"\"},\"main.pyc\":{\"content\":\"\"}}",
                            reserved, 0, &out, &err),
                     0);
    free(out);
}

static void
test_count_cap(void **state)
{
    (void)state;
    struct co_buf b = CO_BUF_INIT;
    co_err err = CO_ERR_INIT;
    char *out = NULL;
    co_buf_puts(&b, "{");
    for (int i = 0; i < PROTO_FILES_MAX; i++)
        co_buf_printf(&b, "%s\"f%d\":{\"content\":\"%d\"}", i ? "," : "", i, i);
    co_buf_puts(&b, "}");
    assert_int_equal(submit(b.data, NULL, 0, &out, &err), 0);
    struct proto_file_list l;
    assert_int_equal(proto_files_parse(out, NULL, &l, &err), 0);
    assert_int_equal(l.len, PROTO_FILES_MAX);
    proto_file_list_release(&l);
    free(out);
    b.len--;
    co_buf_puts(&b, ",\"one-more\":{\"content\":\"\"}}");
    assert_int_equal(submit(b.data, NULL, 0, &out, &err), -1);
    assert_string_equal(err.field, "files");
    co_buf_release(&b);
}

static void
test_byte_cap(void **state)
{
    (void)state;
    co_err err = CO_ERR_INIT;
    char *out = NULL;
    /* 1000 bytes of text and 999 decoded bytes of base64 against a cap of 1999 and 1998. */
    char *text = co_xmalloc(1001);
    memset(text, 'x', 1000);
    text[1000] = '\0';
    char *b64 = proto_base64_encode(text, 999);
    char *body = co_xasprintf("{\"t\":{\"content\":\"%s\"},\"b\":{\"base64\":\"%s\"}}", text, b64);
    assert_int_equal(submit(body, NULL, 1999, &out, &err), 0);
    free(out);
    out = NULL;
    assert_int_equal(submit(body, NULL, 1998, &out, &err), -1);
    assert_int_equal(err.code, CO_E_TOOLARGE);
    assert_string_equal(err.field, "files");
    assert_null(out);
    free(body);
    free(b64);
    free(text);

    /* The hard cap holds whatever the caller asks for; 8 MiB exactly passes. */
    size_t n = PROTO_FILES_BYTES_MAX;
    char *big = co_xmalloc(n + 1);
    memset(big, 'y', n);
    b64 = proto_base64_encode(big, n);
    body = co_xasprintf("{\"big\":{\"base64\":\"%s\"}}", b64);
    assert_int_equal(submit(body, NULL, SIZE_MAX, &out, &err), 0);
    struct proto_file_list l;
    assert_int_equal(proto_files_parse(out, NULL, &l, &err), 0);
    assert_int_equal(l.total, n);
    proto_file_list_release(&l);
    free(out);
    free(body);
    free(b64);
    b64 = proto_base64_encode(big, n); /* the same size, plus one more file */
    body = co_xasprintf("{\"big\":{\"base64\":\"%s\"},\"x\":{\"content\":\"1\"}}", b64);
    assert_int_equal(submit(body, NULL, SIZE_MAX, &out, &err), -1);
    assert_int_equal(err.code, CO_E_TOOLARGE);
    free(body);
    free(b64);
    free(big);
}

/* A job.assign carries the normalised files; the decoder checks them again. */
static void
test_assign_round_trip(void **state)
{
    (void)state;
    const char *body = "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                       "\"command\":\"python main.py\",\"buyer_id\":\"b\",\"code\":\"print(1)\","
                       "\"files\":{\"data/in.csv\":{\"content\":\"1,2\\n\"}}}";
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    if (proto_job_decode(body, strlen(body), NULL, &s, &err) != 0)
        fail_msg("rejected: %s", err.msg);
    assert_string_equal(s.files, "{\"data/in.csv\":\"MSwyCg==\"}");
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN}, back;
    struct proto_job_assign *a = &m.u.assign;
    co_strlcpy(a->job.job_id, "j1", sizeof(a->job.job_id));
    a->job.attempt = 1;
    a->title = s.title;
    a->command = s.command;
    a->code = s.code;
    a->code_file = "main.py";
    a->parameters = s.parameters;
    co_strlcpy(a->image, "default", sizeof(a->image));
    a->required_cores = 1;
    a->required_ram_mb = 1;
    a->timeout_seconds = 10;
    a->files = s.files;
    size_t len = 0;
    char *text = proto_msg_encode(&m, &len);
    assert_non_null(text);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), 0);
    assert_string_equal(back.u.assign.files, s.files);
    proto_msg_release(&back);
    free(text);

    /* A file clashing with the code file is refused by the decoder too. */
    a->files = "{\"main.py\":\"eA==\"}";
    text = proto_msg_encode(&m, &len);
    assert_non_null(text);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), -1);
    assert_string_equal(err.field, "files");
    free(text);
    /* ... unless the code is empty: then the file is the code. */
    a->code = "";
    text = proto_msg_encode(&m, &len);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), 0);
    proto_msg_release(&back);
    free(text);
    /* Traversal in a message is refused. */
    a->files = "{\"../../etc/cron.d/x\":\"eA==\"}";
    text = proto_msg_encode(&m, &len);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), -1);
    assert_string_equal(err.field, "files");
    free(text);
    proto_job_spec_release(&s);
}

/* At submit: files may not take the code file when code is set; may when it is empty. */
static void
test_submit_code_clash(void **state)
{
    (void)state;
    struct proto_job_spec s;
    co_err err = CO_ERR_INIT;
    const char *clash = "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                        "\"command\":\"python app.py\",\"buyer_id\":\"b\",\"code\":\"x\","
                        "\"files\":{\"app.py\":{\"content\":\"print(2)\"}}}";
    assert_int_equal(proto_job_decode(clash, strlen(clash), NULL, &s, &err), -1);
    assert_string_equal(err.field, "files");
    const char *ok = "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                     "\"command\":\"python app.py\",\"buyer_id\":\"b\","
                     "\"files\":{\"app.py\":{\"content\":\"print(2)\"}}}";
    assert_int_equal(proto_job_decode(ok, strlen(ok), NULL, &s, &err), 0);
    proto_job_spec_release(&s);
    const char *params = "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                         "\"command\":\"python app.py\",\"buyer_id\":\"b\","
                         "\"files\":{\"params.json\":{\"content\":\"{}\"}}}";
    assert_int_equal(proto_job_decode(params, strlen(params), NULL, &s, &err), -1);
    assert_string_equal(err.field, "files");
    const char *toolarge = "{\"title\":\"t\",\"required_cores\":1,\"required_ram_mb\":1,"
                           "\"command\":\"x\",\"buyer_id\":\"b\","
                           "\"files\":{\"a\":{\"content\":\"12345\"}}}";
    struct proto_job_limits lim = {.max_files_bytes = 4};
    assert_int_equal(proto_job_decode(toolarge, strlen(toolarge), &lim, &s, &err), -1);
    assert_int_equal(err.code, CO_E_TOOLARGE);
}

/* job.artifact / job.artifacts: round trip, and names that leave /work/out are refused. */
static void
test_artifact_messages(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_JOB_ARTIFACT}, back;
    co_err err = CO_ERR_INIT;
    co_strlcpy(m.u.artifact.job.job_id, "j1", sizeof(m.u.artifact.job.job_id));
    m.u.artifact.job.attempt = 2;
    m.u.artifact.path = "a/b.bin";
    m.u.artifact.offset = 262144;
    m.u.artifact.data = "\0\1\2";
    m.u.artifact.data_len = 3;
    m.u.artifact.eof = true;
    size_t len;
    char *text = proto_msg_encode(&m, &len);
    assert_non_null(text);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), 0);
    assert_int_equal(back.type, PROTO_MSG_JOB_ARTIFACT);
    assert_string_equal(back.u.artifact.path, "a/b.bin");
    assert_int_equal(back.u.artifact.offset, 262144);
    assert_int_equal(back.u.artifact.data_len, 3);
    assert_memory_equal(back.u.artifact.data, "\0\1\2", 3);
    assert_true(back.u.artifact.eof);
    proto_msg_release(&back);
    free(text);
    static const char *const bad[] = {"../etc/shadow", "/etc/shadow", "a/../../x", "a//b", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m.u.artifact.path = (char *)bad[i];
        text = proto_msg_encode(&m, &len);
        assert_non_null(text);
        if (proto_msg_decode(text, len, &back, &err) == 0)
            fail_msg("artifact path '%s' accepted", bad[i]);
        assert_string_equal(err.field, "path");
        free(text);
    }
    const char *big = "{\"v\":1,\"type\":\"job.artifact\",\"job_id\":\"j\",\"attempt\":1,"
                      "\"path\":\"x\",\"offset\":0,\"data_b64\":\"";
    struct co_buf b = CO_BUF_INIT;
    co_buf_puts(&b, big);
    char *raw = co_xcalloc(1, PROTO_ARTIFACT_CHUNK_MAX + 3);
    char *b64 = proto_base64_encode(raw, PROTO_ARTIFACT_CHUNK_MAX + 3);
    co_buf_puts(&b, b64);
    co_buf_puts(&b, "\"}");
    assert_int_equal(proto_msg_decode(b.data, b.len, &back, &err), -1);
    assert_string_equal(err.field, "data_b64");
    free(b64);
    free(raw);
    co_buf_release(&b);

    struct proto_msg s = {.type = PROTO_MSG_JOB_ARTIFACTS};
    co_strlcpy(s.u.artifacts.job.job_id, "j1", sizeof(s.u.artifacts.job.job_id));
    s.u.artifacts.job.attempt = 1;
    s.u.artifacts.files = 3;
    s.u.artifacts.bytes = 99;
    s.u.artifacts.truncated = true;
    s.u.artifacts.skipped = 2;
    s.u.artifacts.notes = "link: symbolic link";
    text = proto_msg_encode(&s, &len);
    assert_int_equal(proto_msg_decode(text, len, &back, &err), 0);
    assert_int_equal(back.u.artifacts.files, 3);
    assert_int_equal(back.u.artifacts.bytes, 99);
    assert_true(back.u.artifacts.truncated);
    assert_int_equal(back.u.artifacts.skipped, 2);
    assert_string_equal(back.u.artifacts.notes, "link: symbolic link");
    proto_msg_release(&back);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_submit_normalises),
        cmocka_unit_test(test_submit_refusals),
        cmocka_unit_test(test_count_cap),
        cmocka_unit_test(test_byte_cap),
        cmocka_unit_test(test_assign_round_trip),
        cmocka_unit_test(test_submit_code_clash),
        cmocka_unit_test(test_artifact_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
