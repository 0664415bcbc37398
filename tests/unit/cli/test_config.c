/* Tests for cli_config: the file format, the environment's precedence, credential rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_config.h"
#include "co_alloc.h"

static char dir[] = "/tmp/cli-config-test-XXXXXX";

static const char *const vars[] = {"CACHEOUT_URL",     "CACHEOUT_TOKEN", "CACHEOUT_ADMIN_TOKEN",
                                   "CACHEOUT_CA_FILE", "TLS_CA_FILE",    "CACHEOUT_CONFIG",
                                   "XDG_CONFIG_HOME"};

static int
setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < CO_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
    setenv("HOME", dir, 1);
    return 0;
}

static void
write_config(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void
test_parse_format(void **state)
{
    (void)state;
    struct cli_config c = {0};
    co_err err = CO_ERR_INIT;
    const char *text = "# comment\n\n  url = https://co.example:8443/  \r\n"
                       "token=\"  spaced  \"\nca_file = /etc/ca.pem\n";
    assert_int_equal(cli_config_parse(&c, text, strlen(text), "cfg", &err), 0);
    assert_string_equal(c.url, "https://co.example:8443/");
    assert_string_equal(c.token, "  spaced  ");
    assert_string_equal(c.ca_file, "/etc/ca.pem");
    cli_config_release(&c);

    const char *bad1 = "url\n";
    assert_int_equal(cli_config_parse(&c, bad1, strlen(bad1), "cfg", &err), -1);
    assert_string_equal(err.msg, "cfg:1: expected 'key = value'");
    const char *bad2 = "# x\ncolour = blue\n";
    assert_int_equal(cli_config_parse(&c, bad2, strlen(bad2), "cfg", &err), -1);
    assert_non_null(strstr(err.msg, "cfg:2: unknown key 'colour'"));
    const char *bad3 = "token =   \n";
    assert_int_equal(cli_config_parse(&c, bad3, strlen(bad3), "cfg", &err), -1);
    assert_non_null(strstr(err.msg, "empty value for 'token'"));
    cli_config_release(&c);
}

static void
test_defaults_and_env(void **state)
{
    (void)state;
    struct cli_config c;
    co_err err = CO_ERR_INIT;

    assert_int_equal(cli_config_load(&c, &err), 0); /* no file at ~/.config: defaults */
    assert_string_equal(c.url, "http://127.0.0.1:8000");
    assert_null(c.token);
    assert_null(c.admin_token);
    assert_null(c.ca_file);
    cli_config_release(&c);

    setenv("CACHEOUT_URL", "https://h:1/base//", 1);
    setenv("CACHEOUT_TOKEN", "key", 1);
    setenv("TLS_CA_FILE", "/tls.pem", 1);
    assert_int_equal(cli_config_load(&c, &err), 0);
    assert_string_equal(c.url, "https://h:1/base"); /* trailing slashes removed */
    assert_string_equal(c.token, "key");
    assert_string_equal(c.ca_file, "/tls.pem");
    cli_config_release(&c);
    setenv("CACHEOUT_CA_FILE", "/co.pem", 1); /* wins over TLS_CA_FILE */
    assert_int_equal(cli_config_load(&c, &err), 0);
    assert_string_equal(c.ca_file, "/co.pem");
    cli_config_release(&c);

    setenv("CACHEOUT_ADMIN_TOKEN", "adm", 1);
    assert_int_equal(cli_config_load(&c, &err), -1);
    assert_non_null(strstr(err.msg, "keep one"));
    cli_config_release(&c);

    unsetenv("CACHEOUT_TOKEN");
    unsetenv("CACHEOUT_ADMIN_TOKEN");
    setenv("CACHEOUT_URL", "ftp://x", 1);
    assert_int_equal(cli_config_load(&c, &err), -1);
    assert_non_null(strstr(err.msg, "not an http:// or https:// URL"));
    cli_config_release(&c);
}

static void
test_file_and_precedence(void **state)
{
    (void)state;
    struct cli_config c;
    co_err err = CO_ERR_INIT;
    co_autofree char *cdir = co_xasprintf("%s/.config", dir);
    co_autofree char *cdir2 = co_xasprintf("%s/.config/cacheout", dir);
    co_autofree char *path = co_xasprintf("%s/config", cdir2);
    mkdir(cdir, 0700);
    mkdir(cdir2, 0700);

    write_config(path, "url = http://file:1\ntoken = file-key\nca_file = /f.pem\n", 0600);
    assert_int_equal(cli_config_load(&c, &err), 0);
    assert_string_equal(c.url, "http://file:1");
    assert_string_equal(c.token, "file-key");
    assert_string_equal(c.path, path);
    assert_false(c.loose_perms);
    cli_config_release(&c);

    /* The environment's credential replaces the file's, whichever kind it is. */
    setenv("CACHEOUT_ADMIN_TOKEN", "env-admin", 1);
    setenv("CACHEOUT_URL", "http://env:2", 1);
    assert_int_equal(cli_config_load(&c, &err), 0);
    assert_null(c.token);
    assert_string_equal(c.admin_token, "env-admin");
    assert_string_equal(c.url, "http://env:2");
    assert_string_equal(c.ca_file, "/f.pem");
    cli_config_release(&c);
    unsetenv("CACHEOUT_ADMIN_TOKEN");
    unsetenv("CACHEOUT_URL");

    /* A token others can read is flagged. */
    chmod(path, 0644);
    assert_int_equal(cli_config_load(&c, &err), 0);
    assert_true(c.loose_perms);
    cli_config_release(&c);

    /* XDG_CONFIG_HOME moves the default place (nothing there: defaults). */
    setenv("XDG_CONFIG_HOME", "/nonexistent-cli-test", 1);
    assert_int_equal(cli_config_load(&c, &err), 0);
    assert_null(c.token);
    cli_config_release(&c);
    unsetenv("XDG_CONFIG_HOME");

    /* CACHEOUT_CONFIG must exist. */
    setenv("CACHEOUT_CONFIG", "/nonexistent-cli-test/config", 1);
    assert_int_equal(cli_config_load(&c, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open '/nonexistent-cli-test/config'"));
    cli_config_release(&c);
    unsetenv("CACHEOUT_CONFIG");

    write_config(path, "token = a\nadmin_token = b\n", 0600);
    assert_int_equal(cli_config_load(&c, &err), -1);
    assert_non_null(strstr(err.msg, "keep one"));
    cli_config_release(&c);
    unlink(path);
    rmdir(cdir2);
    rmdir(cdir);
}

int
main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_parse_format, setup),
        cmocka_unit_test_setup(test_defaults_and_env, setup),
        cmocka_unit_test_setup(test_file_and_precedence, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
