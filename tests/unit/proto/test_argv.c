/* Tests for proto_argv_split(), proto_argv_code_path() and proto_code_file_check(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_job.h"

#define MAXW 8

struct split_case {
    const char *command;
    const char *words[MAXW]; /* NULL-terminated */
};

static const struct split_case split_cases[] = {
    {"python script.py", {"python", "script.py"}},
    {"  a   b  ", {"a", "b"}},
    {"a\tb\nc", {"a", "b", "c"}},
    {"x", {"x"}},
    {"echo 'a b'", {"echo", "a b"}},
    {"echo \"a b\"", {"echo", "a b"}},
    {"echo \"a\\\"b\"", {"echo", "a\"b"}},
    {"echo \"a\\\\b\"", {"echo", "a\\b"}},
    {"echo \"a\\$b\"", {"echo", "a$b"}},
    {"echo \"a\\`b\"", {"echo", "a`b"}},
    {"echo \"a\\nb\"", {"echo", "a\\nb"}},
    {"echo \"a\\\nb\"", {"echo", "ab"}},
    {"echo \"a\nb\"", {"echo", "a\nb"}},
    {"echo a\\ b", {"echo", "a b"}},
    {"echo a\\\nb", {"echo", "ab"}},
    {"echo \\\n b", {"echo", "b"}},
    {"echo \\'x", {"echo", "'x"}},
    {"echo ''", {"echo", ""}},
    {"echo \"\"", {"echo", ""}},
    {"echo '' x", {"echo", "", "x"}},
    {"echo a'b'\"c\"d", {"echo", "abcd"}},
    {"echo 'a\\b'", {"echo", "a\\b"}},
    {"echo 'a\"b'", {"echo", "a\"b"}},
    {"echo \"a'b\"", {"echo", "a'b"}},
    {"'it'\\''s'", {"it's"}},
    /* Operators are ordinary characters: nothing here reaches a shell. */
    {"ls; rm -rf /", {"ls;", "rm", "-rf", "/"}},
    {"a|b&c>d<e", {"a|b&c>d<e"}},
    {"cat < /etc/passwd > out", {"cat", "<", "/etc/passwd", ">", "out"}},
    {"echo $HOME * ~ `id` $(id)", {"echo", "$HOME", "*", "~", "`id`", "$(id)"}},
    {"echo #x", {"echo", "#x"}},
    {"sh -c 'echo hi; exit 3'", {"sh", "-c", "echo hi; exit 3"}},
    {"echo h\xc3\xa9llo", {"echo", "h\xc3\xa9llo"}},
};

static void
test_split_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
        const struct split_case *c = &split_cases[i];
        co_err err = CO_ERR_INIT;
        char **argv = NULL;
        size_t argc = 0, want = 0;

        while (want < MAXW && c->words[want] != NULL)
            want++;
        if (proto_argv_split(c->command, &argv, &argc, &err) != 0)
            fail_msg("case %zu '%s': %s", i, c->command, err.msg);
        assert_int_equal(argc, want);
        for (size_t w = 0; w < want; w++) {
            if (strcmp(argv[w], c->words[w]) != 0)
                fail_msg("case %zu '%s': word %zu is '%s', want '%s'", i, c->command, w, argv[w],
                         c->words[w]);
        }
        assert_null(argv[argc]);
        proto_argv_free(argv);
    }
}

static void
expect_split_error(const char *command, const char *what)
{
    co_err err = CO_ERR_INIT;
    char **argv = (char **)0x1;
    size_t argc = 99;

    if (proto_argv_split(command, &argv, &argc, &err) == 0)
        fail_msg("'%s' split but should fail (%s)", command, what);
    assert_int_equal(err.code, CO_E_INVAL);
    assert_string_equal(err.field, "command");
    if (strstr(err.msg, what) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", command, err.msg, what);
    /* Outputs are untouched on error. */
    assert_ptr_equal(argv, (char **)0x1);
    assert_int_equal(argc, 99);
}

static void
test_split_errors(void **state)
{
    (void)state;
    expect_split_error("echo 'a", "unterminated single quote");
    expect_split_error("'", "unterminated single quote");
    expect_split_error("echo \"a", "unterminated double quote");
    expect_split_error("echo \"a\\\"", "unterminated double quote");
    expect_split_error("echo \"a\\", "unterminated double quote");
    expect_split_error("echo a\\", "backslash at the end");
    expect_split_error("", "no words");
    expect_split_error("   \t\n ", "no words");
    expect_split_error("\\\n", "no words");
}

struct path_case {
    const char *command;
    const char *path;
};

static const struct path_case path_cases[] = {
    {"python script.py", "script.py"},
    {"python3 -u app.py data.csv", "app.py"},
    {"node --max-old-space-size=64 index.js", "index.js"},
    {"bash run.sh", "run.sh"},
    {"./run.sh", "main"},
    {"run.sh", "main"},
    {"sh -c 'python x.py'", "main"},
    {"python ../evil.py", "main"},
    {"python /etc/x.py", "main"},
    {"python dir/x.py", "main"},
    {"python script", "main"},
    {"python -", "main"},
    {"python . ..", "main"},
    {"python -x.py ok.py", "ok.py"},
    {"python 'a b.py' c.py", "c.py"},
    {"python .hidden", ".hidden"},
};

static void
test_code_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        co_err err = CO_ERR_INIT;
        char **argv;
        size_t argc;

        assert_int_equal(proto_argv_split(path_cases[i].command, &argv, &argc, &err), 0);
        const char *p = proto_argv_code_path(argv, argc);
        if (strcmp(p, path_cases[i].path) != 0)
            fail_msg("'%s' gives '%s', want '%s'", path_cases[i].command, p, path_cases[i].path);
        proto_argv_free(argv);
    }
}

static void
test_code_path_long_name(void **state)
{
    (void)state;
    char name[300];
    char *argv[3] = {"python", name, NULL};

    /* 255 bytes is the longest plain file name, 256 is too long. */
    memset(name, 'a', 252);
    memcpy(name + 252, ".py", 4);
    assert_int_equal(strlen(name), 255);
    assert_string_equal(proto_argv_code_path(argv, 2), name);
    memset(name, 'a', 253);
    memcpy(name + 253, ".py", 4);
    assert_string_equal(proto_argv_code_path(argv, 2), "main");
}

static void
expect_code_file(const char *path, int ok)
{
    co_err err = CO_ERR_INIT;
    int rc = proto_code_file_check(path, strlen(path), &err);

    if (ok && rc != 0)
        fail_msg("'%s' rejected: %s", path, err.msg);
    if (!ok) {
        if (rc == 0)
            fail_msg("'%s' accepted", path);
        assert_int_equal(err.code, CO_E_INVAL);
        assert_string_equal(err.field, "code_file");
    }
}

static void
test_code_file_check(void **state)
{
    (void)state;
    char long_name[300];

    expect_code_file("script.py", 1);
    expect_code_file("src/main.py", 1);
    expect_code_file("a b.py", 1);
    expect_code_file(".hidden", 1);
    expect_code_file("a..b", 1);
    expect_code_file("caf\xc3\xa9.py", 1);
    expect_code_file("", 0);
    expect_code_file("/etc/passwd", 0);
    expect_code_file("..", 0);
    expect_code_file(".", 0);
    expect_code_file("../x", 0);
    expect_code_file("a/../b", 0);
    expect_code_file("a/..", 0);
    expect_code_file("./a", 0);
    expect_code_file("a//b", 0);
    expect_code_file("a/", 0);
    expect_code_file("a\\b", 0);
    expect_code_file("a\nb", 0);
    expect_code_file("a\x7f", 0);
    memset(long_name, 'x', 255);
    long_name[255] = '\0';
    expect_code_file(long_name, 1);
    long_name[255] = 'x';
    long_name[256] = '\0';
    expect_code_file(long_name, 0);

    /* An embedded NUL (when a length is given) is rejected too. */
    co_err err = CO_ERR_INIT;
    assert_int_equal(proto_code_file_check("a\0b", 3, &err), -1);
    assert_string_equal(err.field, "code_file");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_cases),     cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_code_path),       cmocka_unit_test(test_code_path_long_name),
        cmocka_unit_test(test_code_file_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
