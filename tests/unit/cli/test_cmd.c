/*
 * Tests for the static helpers of cli_cmd.c (included, h2o-style): artifact paths that may be
 * written, the default title, credits as text, and the files field of submit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Before cmocka.h, whose fail() macro would clash with cli_cmd.c's fail(). */
#include "../../../cli/cli_cmd.c"

#include <cmocka.h>

static void
test_safe_relpath(void **state)
{
    (void)state;
    assert_true(safe_relpath("a.txt"));
    assert_true(safe_relpath("sub/dir/a.txt"));
    assert_true(safe_relpath("..a/b..")); /* dots inside names are fine */
    assert_false(safe_relpath(""));
    assert_false(safe_relpath("/etc/passwd"));
    assert_false(safe_relpath("../x"));
    assert_false(safe_relpath("a/../../x"));
    assert_false(safe_relpath("a/.."));
    assert_false(safe_relpath("./a"));
    assert_false(safe_relpath("a//b"));
    assert_false(safe_relpath("a/"));
}

static void
test_default_title(void **state)
{
    (void)state;
    char long_cmd[700];
    memset(long_cmd, 'x', sizeof(long_cmd) - 1);
    long_cmd[sizeof(long_cmd) - 1] = '\0';
    co_autofree char *t1 = default_title("echo hi");
    assert_string_equal(t1, "echo hi");
    co_autofree char *t2 = default_title(long_cmd);
    assert_int_equal(strlen(t2), TITLE_MAX_CHARS);
    /* 300 two-byte characters: cut after 200 characters, never inside one. */
    char accents[601];
    for (int i = 0; i < 300; i++)
        memcpy(accents + 2 * i, "\xc3\xa9", 2);
    accents[600] = '\0';
    co_autofree char *t3 = default_title(accents);
    assert_int_equal(strlen(t3), 400);
    assert_true(proto_utf8_valid(t3, strlen(t3)));
}

static void
test_credits_text(void **state)
{
    (void)state;
    char buf[64];
    json_t *v = json_real(12.5);
    credits_text(v, buf, sizeof(buf));
    assert_string_equal(buf, "12.5");
    json_real_set(v, 0.1);
    credits_text(v, buf, sizeof(buf));
    assert_string_equal(buf, "0.1");
    json_real_set(v, 1000.000001);
    credits_text(v, buf, sizeof(buf));
    assert_string_equal(buf, "1000.000001");
    json_decref(v);
    v = json_integer(7);
    credits_text(v, buf, sizeof(buf));
    assert_string_equal(buf, "7");
    json_decref(v);
    credits_text(NULL, buf, sizeof(buf));
    assert_string_equal(buf, "-");
}

static void
test_files_field(void **state)
{
    (void)state;
    char dir[] = "/tmp/cli-cmd-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    co_autofree char *text = co_xasprintf("%s/notes.txt", dir);
    co_autofree char *bin = co_xasprintf("%s/blob.bin", dir);
    FILE *f = fopen(text, "w");
    fputs("caf\xc3\xa9\n", f);
    fclose(f);
    f = fopen(bin, "w");
    fwrite("a\0\xff", 1, 3, f);
    fclose(f);

    const char *files[] = {text, bin};
    struct cli_opts o = {.files = files, .n_files = 2};
    json_t *out = NULL;
    co_err err = CO_ERR_INIT;
    assert_int_equal(files_field(&o, &out, &err), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "notes.txt"), "content")),
        "caf\xc3\xa9\n");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "blob.bin"), "base64")), "YQD/");
    json_decref(out);

    const char *same[] = {text, text};
    o.files = same;
    assert_int_equal(files_field(&o, &out, &err), -1);
    assert_non_null(strstr(err.msg, "two files are named 'notes.txt'"));
    const char *missing[] = {"/nonexistent-cli/x"};
    o.files = missing;
    o.n_files = 1;
    assert_int_equal(files_field(&o, &out, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open '/nonexistent-cli/x'"));
    const char *dot[] = {"some/dir/"};
    o.files = dot;
    assert_int_equal(files_field(&o, &out, &err), -1);
    assert_non_null(strstr(err.msg, "does not name a file"));
    unlink(text);
    unlink(bin);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_relpath),
        cmocka_unit_test(test_default_title),
        cmocka_unit_test(test_credits_text),
        cmocka_unit_test(test_files_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
