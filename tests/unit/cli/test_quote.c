/* Tests for cli_quote: every argv, once joined, splits back to itself with proto_argv_split(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_quote.h"
#include "co_alloc.h"
#include "proto_job.h"

/* Join @argv, split the result with the coordinator's splitter, compare word by word. */
static void
round_trip(char *const *argv, size_t argc)
{
    co_autofree char *cmd = cli_quote_join(argv, argc);
    char **back = NULL;
    size_t n = 0;
    co_err err = CO_ERR_INIT;

    if (proto_argv_split(cmd, &back, &n, &err) != 0)
        fail_msg("'%s' does not split: %s", cmd, err.msg);
    assert_int_equal(n, argc);
    for (size_t i = 0; i < argc; i++)
        assert_string_equal(back[i], argv[i]);
    proto_argv_free(back);
}

static void
test_plain_words_stay_bare(void **state)
{
    (void)state;
    char *argv[] = {"python", "script.py", "--in=data.csv", "a/b:c", "x+y@z%"};
    co_autofree char *cmd = cli_quote_join(argv, 5);
    assert_string_equal(cmd, "python script.py --in=data.csv a/b:c x+y@z%");
    round_trip(argv, 5);
}

static void
test_special_words(void **state)
{
    (void)state;
    char *argv[] = {"echo",  "a b",    "it's", "''",    "\"",         "\\", "\\n", "$HOME",
                    "`x`",   "*",      "a;b",  "a|b",   "&",          ">",  "<",   "(",
                    ")",     "#",      "~",    "!",     "{a,b}",      "\t", "\n",  "x\ny",
                    " lead", "trail ", "\\\n", "'\\''", "caf\xc3\xa9"};
    round_trip(argv, CO_ARRAY_LEN(argv));
    co_autofree char *q = cli_quote_word("it's");
    assert_string_equal(q, "'it'\\''s'");
}

static void
test_empty_words(void **state)
{
    (void)state;
    char *argv[] = {"printf", "%s|", "", "x", ""};
    round_trip(argv, 5);
    co_autofree char *q = cli_quote_word("");
    assert_string_equal(q, "''");
}

/* Random words over the characters the splitter treats specially, many times. */
static void
test_random_round_trips(void **state)
{
    (void)state;
    static const char alphabet[] = "ab '\"\\$`\n\t #;*~x";
    unsigned seed = 12345;
    char buf[8][16];
    char *argv[8];

    for (int round = 0; round < 5000; round++) {
        size_t argc = 1 + (size_t)(rand_r(&seed) % 8);
        for (size_t i = 0; i < argc; i++) {
            size_t len = (size_t)(rand_r(&seed) % 15);
            for (size_t j = 0; j < len; j++)
                buf[i][j] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
            buf[i][len] = '\0';
            argv[i] = buf[i];
        }
        round_trip(argv, argc);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_words_stay_bare),
        cmocka_unit_test(test_special_words),
        cmocka_unit_test(test_empty_words),
        cmocka_unit_test(test_random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
