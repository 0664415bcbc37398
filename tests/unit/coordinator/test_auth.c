/* Unit tests of coordinator/coord_auth.c: hashes, tokens, scopes, the lookup cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "coord_auth.h"

static void
test_hash(void **state)
{
    (void)state;
    char h[COORD_KEY_HASH_LEN + 1];
    coord_auth_hash("abc", 3, h);
    /* FIPS 180-2 test vector. */
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    coord_auth_hash("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_new_token(void **state)
{
    (void)state;
    char a[64], b[64];
    co_err err = CO_ERR_INIT;
    assert_int_equal(coord_auth_new_token(a, sizeof(a), &err), 0);
    assert_int_equal(coord_auth_new_token(b, sizeof(b), &err), 0);
    assert_int_equal(strlen(a), strlen(COORD_KEY_PREFIX) + 43);
    assert_memory_equal(a, COORD_KEY_PREFIX, strlen(COORD_KEY_PREFIX));
    assert_string_not_equal(a, b);
    for (const char *c = a + 3; *c; c++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c));
    char small[20];
    assert_int_equal(coord_auth_new_token(small, sizeof(small), &err), -1);
}

static void
test_scopes_and_self(void **state)
{
    (void)state;
    struct coord_principal anon, admin, k;
    memset(&anon, 0, sizeof(anon));
    coord_auth_principal_admin(&admin);
    assert_string_equal(admin.user_id, COORD_ADMIN_USER);
    assert_true(coord_auth_has_scope(&admin, COORD_SCOPE_ADMIN));
    assert_true(coord_auth_is_self_or_admin(&admin, "anyone"));
    assert_false(coord_auth_has_scope(&anon, COORD_SCOPE_BUY));
    assert_false(coord_auth_is_self_or_admin(&anon, ""));
    struct coord_key_owner o;
    memset(&o, 0, sizeof(o));
    co_strlcpy(o.key_id, "k1", sizeof(o.key_id));
    co_strlcpy(o.user_id, "alice", sizeof(o.user_id));
    o.scopes = COORD_SCOPE_BUY | COORD_SCOPE_ADMIN;
    o.user_is_admin = false; /* a demoted admin: its admin keys lose the scope */
    coord_auth_principal_from_key(&o, &k);
    assert_int_equal(k.cred, COORD_CRED_KEY);
    assert_false(k.is_admin);
    assert_int_equal(k.scopes, COORD_SCOPE_BUY);
    assert_true(coord_auth_is_self_or_admin(&k, "alice"));
    assert_false(coord_auth_is_self_or_admin(&k, "bob"));
    assert_false(coord_auth_has_scope(&k, COORD_SCOPE_SELL));
    o.user_is_admin = true;
    coord_auth_principal_from_key(&o, &k);
    assert_true(k.is_admin);
    assert_int_equal(coord_auth_scope_parse("sell"), COORD_SCOPE_SELL);
    assert_int_equal(coord_auth_scope_parse("root"), 0);
    assert_string_equal(coord_auth_scope_name(COORD_SCOPE_ADMIN), "admin");
}

static void
test_cache(void **state)
{
    (void)state;
    struct coord_auth_cache *c = coord_auth_cache_new();
    struct coord_auth_entry e, got;
    memset(&e, 0, sizeof(e));
    e.p.cred = COORD_CRED_KEY;
    co_strlcpy(e.p.user_id, "alice", sizeof(e.p.user_id));
    co_strlcpy(e.p.key_id, "k1", sizeof(e.p.key_id));
    char h[COORD_KEY_HASH_LEN + 1], h2[COORD_KEY_HASH_LEN + 1];
    coord_auth_hash("token-1", 7, h);
    coord_auth_hash("token-2", 7, h2);
    uint64_t gen = coord_auth_cache_gen(c);
    coord_auth_cache_put(c, h, &e, gen, 1000);
    assert_true(coord_auth_cache_get(c, h, 1000, &got));
    assert_string_equal(got.p.user_id, "alice");
    assert_false(coord_auth_cache_get(c, h2, 1000, &got));
    /* Expires. */
    assert_false(coord_auth_cache_get(c, h, 1000 + COORD_AUTH_CACHE_TTL_MS, &got));
    /* Invalidated by key, by user. */
    coord_auth_cache_put(c, h, &e, coord_auth_cache_gen(c), 2000);
    coord_auth_cache_invalidate(c, "other", NULL);
    assert_true(coord_auth_cache_get(c, h, 2000, &got));
    coord_auth_cache_invalidate(c, "k1", NULL);
    assert_false(coord_auth_cache_get(c, h, 2000, &got));
    coord_auth_cache_put(c, h, &e, coord_auth_cache_gen(c), 3000);
    coord_auth_cache_invalidate(c, NULL, "alice");
    assert_false(coord_auth_cache_get(c, h, 3000, &got));
    /* A lookup that started before an invalidation is not cached. */
    gen = coord_auth_cache_gen(c);
    coord_auth_cache_invalidate(c, "k9", NULL);
    coord_auth_cache_put(c, h, &e, gen, 4000);
    assert_false(coord_auth_cache_get(c, h, 4000, &got));
    /* Many keys in use at once stay cached together (no thrashing between two keys). */
    char hs[256][COORD_KEY_HASH_LEN + 1];
    for (int i = 0; i < 256; i++) {
        char tok[32];
        snprintf(tok, sizeof(tok), "co_token-%d", i);
        coord_auth_hash(tok, strlen(tok), hs[i]);
        coord_auth_cache_put(c, hs[i], &e, coord_auth_cache_gen(c), 5000);
    }
    for (int i = 0; i < 256; i++)
        assert_true(coord_auth_cache_get(c, hs[i], 5000, &got));
    coord_auth_cache_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_new_token),
        cmocka_unit_test(test_scopes_and_self),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
