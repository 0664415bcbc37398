/*
 * Unit tests of coordinator/coord_webhook.c: the address classifier (every refused range, IPv4
 * and IPv6, mapped/compatible/NAT64/6to4 forms), the URL check (schemes, credentials, literal
 * addresses, the test hosts file), HMAC-SHA256 signing and the backoff schedule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "coord_webhook.h"

/* The classifier's answer for a numeric address (NULL = public). */
static const char *
refused(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return coord_webhook_addr_refused((struct sockaddr *)&ss);
}

static void
test_refused_v4(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0.0.0.0",         "0.255.255.255",   "10.0.0.1",        "10.255.255.255",  "100.64.0.1",
        "100.127.255.254", "127.0.0.1",       "127.255.255.254", "169.254.169.254", "169.254.0.1",
        "172.16.0.1",      "172.31.255.255",  "192.0.0.8",       "192.0.2.1",       "192.88.99.1",
        "192.168.1.1",     "198.18.0.1",      "198.19.255.255",  "198.51.100.7",    "203.0.113.9",
        "224.0.0.1",       "239.255.255.250", "240.0.0.1",       "255.255.255.255",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!refused(bad[i]))
            fail_msg("%s should be refused", bad[i]);
    }
    static const char *const good[] = {"1.1.1.1",         "8.8.8.8",        "100.63.255.255",
                                       "100.128.0.0",     "172.15.255.255", "172.32.0.0",
                                       "169.253.255.255", "192.169.0.1",    "198.20.0.1",
                                       "223.255.255.255", "93.184.216.34"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (refused(good[i]))
            fail_msg("%s should be allowed (%s)", good[i], refused(good[i]));
    }
    assert_non_null(strstr(refused("169.254.169.254"), "metadata"));
    assert_non_null(strstr(refused("127.0.0.1"), "loopback"));
}

static void
test_refused_v6(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "::1",
        "::",
        "::ffff:127.0.0.1", /* IPv4-mapped */
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::ffff:7f00:1",
        "::127.0.0.1", /* IPv4-compatible */
        "::10.0.0.1",
        "64:ff9b::127.0.0.1", /* NAT64 of loopback */
        "64:ff9b::a9fe:a9fe", /* NAT64 of the metadata address */
        "64:ff9b:1::1",       /* local-use NAT64 */
        "2002:7f00:1::1",     /* 6to4 of 127.0.0.1 */
        "2002:c0a8:101::1",   /* 6to4 of 192.168.1.1 */
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "2001::1",
        "100::1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!refused(bad[i]))
            fail_msg("%s should be refused", bad[i]);
    }
    static const char *const good[] = {"2606:4700:4700::1111", "2001:4860:4860::8888",
                                       "::ffff:8.8.8.8",       "64:ff9b::808:808",
                                       "2002:808:808::1",      "fbff::1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (refused(good[i]))
            fail_msg("%s should be allowed (%s)", good[i], refused(good[i]));
    }
}

static int
check(const char *url, bool allow, const char *hosts, struct coord_webhook_target *t)
{
    struct coord_webhook_check_opts o = {allow, hosts, 2000};
    co_err err = CO_ERR_INIT;
    int rc = coord_webhook_url_check(url, &o, t, &err);
    if (rc < 0)
        assert_string_equal(err.field, "callback_url");
    return rc;
}

static void
test_url_check(void **state)
{
    (void)state;
    struct coord_webhook_target t;
    static const char *const refused_urls[] = {
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "http://2130706433/", /* 127.0.0.1 as one number */
        "http://0x7f.1/",     /* and in hex */
        "http://0/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "not a url",
        "http://",
        "http://exa mple.com/",
        "",
    };
    for (size_t i = 0; i < sizeof(refused_urls) / sizeof(refused_urls[0]); i++) {
        if (check(refused_urls[i], false, NULL, &t) == 0)
            fail_msg("%s should be refused", refused_urls[i]);
    }
    /* A literal public address needs no resolver. */
    assert_int_equal(check("https://93.184.216.34:8443/hook?a=1", false, NULL, &t), 0);
    assert_string_equal(t.scheme, "https");
    assert_int_equal(t.port, 8443);
    assert_string_equal(t.addr, "93.184.216.34");
    assert_int_equal(check("http://[2606:4700:4700::1111]/", false, NULL, &t), 0);
    assert_true(t.addr_v6);
    assert_int_equal(t.port, 80);
    /* WEBHOOK_ALLOW_PRIVATE lets private targets through (development, tests). */
    assert_int_equal(check("http://127.0.0.1:9/x", true, NULL, &t), 0);
    assert_string_equal(t.addr, "127.0.0.1");
    assert_string_equal(t.addrs, "127.0.0.1");
    assert_int_equal(check("http://[::1]:9/x", true, NULL, &t), 0);
    assert_string_equal(t.addrs, "[::1]");
    /* Too long. */
    char *longurl = calloc(1, COORD_WEBHOOK_URL_MAX + 64);
    static const char head[] = "http://93.184.216.34/";
    memcpy(longurl, head, sizeof(head) - 1);
    memset(longurl + sizeof(head) - 1, 'a', COORD_WEBHOOK_URL_MAX);
    assert_int_equal(check(longurl, false, NULL, &t), -1);
    free(longurl);

    /* The test hosts file decides what a name resolves to, read afresh at each check. */
    char path[] = "/tmp/test_webhook_hostsXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\nhook.test 93.184.216.34\n", f);
    fclose(f);
    assert_int_equal(check("http://hook.test/x", false, path, &t), 0);
    assert_string_equal(t.host, "hook.test");
    assert_string_equal(t.addr, "93.184.216.34");
    f = fopen(path, "w");
    fputs("HOOK.test ::ffff:127.0.0.1\n", f);
    fclose(f);
    assert_int_equal(check("http://hook.test/x", false, path, &t), -1);
    unlink(path);
}

static void
test_sign(void **state)
{
    (void)state;
    /* RFC 4231 test case 2. */
    char out[72];
    const char *data = "what do ya want for nothing?";
    coord_webhook_sign("Jefe", data, strlen(data), out);
    assert_string_equal(out,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void
test_backoff(void **state)
{
    (void)state;
    assert_int_equal(coord_webhook_backoff_ms(1000, 1), 1000);
    assert_int_equal(coord_webhook_backoff_ms(1000, 2), 2000);
    assert_int_equal(coord_webhook_backoff_ms(1000, 3), 4000);
    assert_int_equal(coord_webhook_backoff_ms(1000, 10), 512000);
    assert_int_equal(coord_webhook_backoff_ms(1000, 11), COORD_WEBHOOK_BACKOFF_MAX_MS);
    assert_int_equal(coord_webhook_backoff_ms(1000, 1000), COORD_WEBHOOK_BACKOFF_MAX_MS);
    assert_int_equal(coord_webhook_backoff_ms(10, 2), 20);
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_v4), cmocka_unit_test(test_refused_v6),
        cmocka_unit_test(test_url_check),  cmocka_unit_test(test_sign),
        cmocka_unit_test(test_backoff),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
