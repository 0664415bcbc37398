/* Tests for cli_args: every command's options, positionals, `--`, and usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli_args.h"

#define ARGV(...) ((char *[]){"cacheout", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"cacheout", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, err, ...) cli_args_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o), (err))

static void
test_submit_full(void **state)
{
    (void)state;
    struct cli_opts o;
    co_err err = CO_ERR_INIT;
    assert_int_equal(PARSE(&o, &err, "submit", "--cores", "2", "--ram=512", "--image", "py",
                           "--timeout", "30", "--priority", "9", "--replicas", "3", "--file",
                           "a.txt", "-f", "dir/b.bin", "--param", "k=v", "-p", "x=a=b", "--wait",
                           "--json", "--", "python", "-c", "print(1)", "--flag"),
                     0);
    assert_int_equal(o.cmd, CLI_CMD_SUBMIT);
    assert_int_equal(o.cores, 2);
    assert_int_equal(o.ram_mb, 512);
    assert_string_equal(o.image, "py");
    assert_int_equal(o.timeout, 30);
    assert_int_equal(o.priority, 9);
    assert_int_equal(o.replicas, 3);
    assert_int_equal(o.n_files, 2);
    assert_string_equal(o.files[1], "dir/b.bin");
    assert_int_equal(o.n_params, 2);
    assert_string_equal(o.params[1], "x=a=b");
    assert_true(o.wait);
    assert_true(o.json);
    assert_int_equal(o.argc, 4);
    assert_string_equal(o.argv[0], "python");
    assert_string_equal(o.argv[3], "--flag");
    cli_opts_release(&o);
}

static void
test_submit_command_ends_options(void **state)
{
    (void)state;
    struct cli_opts o;
    co_err err = CO_ERR_INIT;
    /* Without `--`, the first word that is not an option starts the command. */
    assert_int_equal(PARSE(&o, &err, "submit", "--cores", "1", "ls", "-l", "--", "--wait"), 0);
    assert_false(o.wait);
    assert_int_equal(o.argc, 4);
    assert_string_equal(o.argv[0], "ls");
    assert_string_equal(o.argv[2], "--");
    assert_string_equal(o.argv[3], "--wait");
    cli_opts_release(&o);
    /* After `--`, words that look like options belong to the job. */
    assert_int_equal(PARSE(&o, &err, "submit", "--", "-x", "--json"), 0);
    assert_false(o.json);
    assert_int_equal(o.argc, 2);
    assert_string_equal(o.argv[0], "-x");
    cli_opts_release(&o);
}

static void
test_other_commands(void **state)
{
    (void)state;
    struct cli_opts o;
    co_err err = CO_ERR_INIT;

    assert_int_equal(PARSE(&o, &err, "logs", "j1", "-f"), 0);
    assert_int_equal(o.cmd, CLI_CMD_LOGS);
    assert_string_equal(o.id, "j1");
    assert_true(o.follow);
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "--json", "artifacts", "-o", "out", "j2"), 0);
    assert_int_equal(o.cmd, CLI_CMD_ARTIFACTS);
    assert_true(o.json);
    assert_string_equal(o.out_dir, "out");
    assert_string_equal(o.id, "j2");
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "jobs", "--status", "running", "-n", "5"), 0);
    assert_string_equal(o.status, "running");
    assert_int_equal(o.limit, 5);
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "keys", "create", "ci", "--scope", "buy", "-s", "sell"), 0);
    assert_int_equal(o.cmd, CLI_CMD_KEYS_CREATE);
    assert_string_equal(o.name, "ci");
    assert_int_equal(o.scopes, CLI_SCOPE_BUY | CLI_SCOPE_SELL);
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "balance", "--user", "u1"), 0);
    assert_string_equal(o.user, "u1");
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "cancel", "j3"), 0);
    assert_int_equal(o.cmd, CLI_CMD_CANCEL);
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "show", "j4"), 0);
    assert_int_equal(o.cmd, CLI_CMD_SHOW);
    cli_opts_release(&o);
}

static void
test_help(void **state)
{
    (void)state;
    struct cli_opts o;
    co_err err = CO_ERR_INIT;

    assert_int_equal(PARSE(&o, &err, "show", "--help"), 0); /* no id needed for --help */
    assert_true(o.help);
    assert_int_equal(o.cmd, CLI_CMD_SHOW);
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "help", "logs"), 0);
    assert_true(o.help);
    assert_int_equal(o.cmd, CLI_CMD_LOGS);
    cli_opts_release(&o);
    assert_int_equal(PARSE(&o, &err, "keys", "--help"), 0);
    assert_int_equal(o.cmd, CLI_CMD_KEYS_CREATE);
    cli_opts_release(&o);
    for (int c = 0; c < CLI_CMD_COUNT_; c++)
        assert_non_null(strstr(cli_usage((enum cli_cmd)c), "usage: cacheout"));
}

/* One usage error: parse fails and the message contains @needle. */
static void
bad(int argc, char **argv, const char *needle)
{
    struct cli_opts o;
    co_err err = CO_ERR_INIT;
    assert_int_equal(cli_args_parse(argc, argv, &o, &err), -1);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("'%s' does not contain '%s'", err.msg, needle);
    cli_opts_release(&o);
}
#define BAD(needle, ...) bad(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), needle)

static void
test_usage_errors(void **state)
{
    (void)state;
    BAD("unknown command 'frob'", "frob");
    BAD("unknown option '--nope'", "--nope");
    BAD("no command", "submit", "--cores", "1");
    BAD("--cores: 'x'", "submit", "--cores", "x", "--", "true");
    BAD("--cores: '0'", "submit", "--cores", "0", "--", "true");
    BAD("--priority: '11'", "submit", "--priority", "11", "--", "true");
    BAD("--replicas: '6'", "submit", "--replicas", "6", "--", "true");
    BAD("--cores: '2x'", "submit", "--cores=2x", "--", "true");
    BAD("needs a value", "submit", "--image");
    BAD("not KEY=VALUE", "submit", "--param", "=v", "--", "true");
    BAD("not KEY=VALUE", "submit", "--param", "kv", "--", "true");
    BAD("takes no value", "submit", "--wait=yes", "--", "true");
    BAD("unknown option '--follow'", "submit", "--follow", "--", "true");
    BAD("expected one job id", "show");
    BAD("expected one job id", "logs", "a", "b");
    BAD("unexpected argument 'x'", "jobs", "x");
    BAD("not a scope", "keys", "create", "k", "--scope", "admin");
    BAD("expected 'create'", "keys", "list");
    BAD("expected one key name", "keys", "create");
    BAD("unknown option '-z'", "logs", "-z", "j");
    BAD("--limit: '0'", "jobs", "--limit", "0");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_full),    cmocka_unit_test(test_submit_command_ends_options),
        cmocka_unit_test(test_other_commands), cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
