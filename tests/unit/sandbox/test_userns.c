/* Unit tests for the pure parts of rootless sandboxes: /etc/subuid, /etc/passwd, free ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sbx.h"
#include "sbx_userns.h"

static void
test_subid_find(void **state)
{
    (void)state;
    static const char text[] = "# comment:1:2\n"
                               "alice:100000:65536\n"
                               "bob:165536:100\n"       /* too small for 256 slots */
                               "bob:300000:65536\n"     /* a second, usable range */
                               "1002:400000:65536\n"    /* by number */
                               "carol:x:65536\n"        /* malformed */
                               "carol:500000:\n"        /* malformed */
                               "dave:4294967200:65536"; /* the job ids would not fit */
    unsigned long first = 0;
    assert_int_equal(sbx_subid_find(text, "alice", 1000, 256, &first), 0);
    assert_int_equal(first, 100000);
    assert_int_equal(sbx_subid_find(text, "bob", 1001, 256, &first), 0);
    assert_int_equal(first, 300000);
    assert_int_equal(sbx_subid_find(text, "bob", 1001, 100, &first), 0);
    assert_int_equal(first, 165536);
    assert_int_equal(sbx_subid_find(text, "", 1002, 256, &first), 0);
    assert_int_equal(first, 400000);
    assert_int_equal(sbx_subid_find(text, "erin", 1002, 256, &first), 0);
    assert_int_equal(sbx_subid_find(text, "carol", 1003, 256, &first), -1);
    assert_int_equal(sbx_subid_find(text, "dave", 1004, 256, &first), -1);
    assert_int_equal(sbx_subid_find(text, "nobody", 65534, 256, &first), -1);
    /* A name is not matched as a prefix. */
    assert_int_equal(sbx_subid_find(text, "alic", 9, 256, &first), -1);
    assert_int_equal(sbx_subid_find("", "alice", 1000, 256, &first), -1);
}

static void
test_passwd(void **state)
{
    (void)state;
    static const char pw[] = "root:x:0:0:root:/root:/bin/bash\n"
                             "broken:x:zz:0::/:/bin/sh\n"
                             "cacheout-rl:x:999:995::/nonexistent:/usr/sbin/nologin\n"
                             "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash";
    char name[64];
    sbx_passwd_name(pw, 999, name, sizeof(name));
    assert_string_equal(name, "cacheout-rl");
    sbx_passwd_name(pw, 1000, name, sizeof(name));
    assert_string_equal(name, "alice");
    sbx_passwd_name(pw, 4242, name, sizeof(name));
    assert_string_equal(name, "");
    char small[4];
    sbx_passwd_name(pw, 999, small, sizeof(small));
    assert_string_equal(small, ""); /* does not fit: no truncated name */

    uid_t uid = 0;
    gid_t gid = 0;
    assert_int_equal(sbx_passwd_lookup(pw, "cacheout-rl", &uid, &gid), 0);
    assert_int_equal(uid, 999);
    assert_int_equal(gid, 995);
    assert_int_equal(sbx_passwd_lookup(pw, "alice", &uid, &gid), 0);
    assert_int_equal(uid, 1000);
    assert_int_equal(sbx_passwd_lookup(pw, "broken", &uid, &gid), -1);
    assert_int_equal(sbx_passwd_lookup(pw, "alic", &uid, &gid), -1);
}

static void
test_next_free(void **state)
{
    (void)state;
    assert_int_equal(sbx_subid_next_free("", ""), 100000);
    assert_int_equal(sbx_subid_next_free("alice:100000:65536\n", ""), 165536);
    /* Past the ranges of either file. */
    assert_int_equal(sbx_subid_next_free("alice:100000:65536\n", "bob:165536:65536\n"), 231072);
    assert_int_equal(sbx_subid_next_free("x:200000:10\n", ""), 231072);
    /* Never over the uids of root's sandboxes (SBX_UID_BASE .. + SBX_MAX_SLOTS). */
    unsigned long n = sbx_subid_next_free("x:100000:790000\n", "");
    assert_true(n >= SBX_UID_BASE + SBX_MAX_SLOTS || n + 65536 <= SBX_UID_BASE);
    assert_int_equal(n % 65536, 100000 % 65536);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subid_find),
        cmocka_unit_test(test_passwd),
        cmocka_unit_test(test_next_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
