/*
 * auth_cost: the lws-thread cost of resolving a credential, per request, without the noise of a
 * loaded machine's network stack: the admin token (one constant-time compare) against a bearer
 * key found in the cache (SHA-256 of the token, then the cache lookup), as coord_server.c does
 * them.  Prints nanoseconds per call; bench/api/run.sh relates them to the CPU time per request.
 */
#include <stdio.h>
#include <string.h>

#include "co_alloc.h"
#include "co_time.h"
#include "coord_auth.h"

#define ROUNDS 2000000

int
main(void)
{
    static const char admin[] = "bench-admin-token-0123456789abcdef";
    char got[sizeof(admin)];
    memcpy(got, admin, sizeof(admin));
    struct coord_auth_cache *c = coord_auth_cache_new();
    struct coord_auth_entry e, out;
    char tokens[64][64], hash[COORD_KEY_HASH_LEN + 1];
    co_err err = CO_ERR_INIT;
    memset(&e, 0, sizeof(e));
    for (int i = 0; i < 64; i++) {
        if (coord_auth_new_token(tokens[i], sizeof(tokens[i]), &err) < 0)
            return 1;
        coord_auth_hash(tokens[i], strlen(tokens[i]), hash);
        coord_auth_cache_put(c, hash, &e, coord_auth_cache_gen(c), 0);
    }
    volatile int sink = 0;
    int64_t t0 = co_mono_ns();
    for (int i = 0; i < ROUNDS; i++)
        sink += co_consttime_eq(got, strlen(got), admin, strlen(admin));
    int64_t t1 = co_mono_ns();
    for (int i = 0; i < ROUNDS; i++) {
        const char *t = tokens[i & 63];
        coord_auth_hash(t, strlen(t), hash);
        sink += coord_auth_cache_get(c, hash, 1, &out);
    }
    int64_t t2 = co_mono_ns();
    if (sink != 2 * ROUNDS) {
        fprintf(stderr, "auth_cost: a lookup missed\n");
        return 1;
    }
    printf("auth_cost: admin token %.0f ns, bearer key (hash + cache hit) %.0f ns per request\n",
           (double)(t1 - t0) / ROUNDS, (double)(t2 - t1) / ROUNDS);
    coord_auth_cache_free(c);
    return 0;
}
