/*
 * coord_auth: who is asking.  Every REST request and every agent or dashboard session carries
 * one `struct coord_principal`, resolved once from its credential:
 *
 *   X-Admin-Token == ADMIN_TOKEN          -> the built-in admin user "admin" (all scopes)
 *   X-Agent-Token == AGENT_TOKEN          -> the operator's agents, owned by AGENT_TOKEN_OWNER
 *                                            (scope sell only)
 *   Authorization: Bearer <user key>      -> that key's user and scopes (admin scope only for
 *                                            users with is_admin), unless revoked or disabled
 *   nothing                               -> anonymous
 *
 * User keys are random tokens shown once at creation; the store keeps only coord_auth_hash() of
 * them, unique-indexed, so a lookup is one indexed equality on the hash: the time it takes does
 * not depend on how close a wrong token is to a right one.  The shared tokens are compared with
 * co_consttime_eq.
 *
 * Threads: the value type and the pure functions below are usable from any thread; the lookup
 * of a key is a store call (database threads only); the cache of lookups belongs to the lws
 * service thread.  Life cycle: the cache is created by coord_server_run() at start and freed
 * when it returns; besides, the SHA-256 method is fetched once per process and each thread
 * keeps a hashing context, freed at its exit.
 */
#ifndef COORD_AUTH_H
#define COORD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "co_err.h"
#include "co_id.h"

enum coord_cred {
    COORD_CRED_NONE = 0,    /* anonymous */
    COORD_CRED_ADMIN_TOKEN, /* X-Admin-Token */
    COORD_CRED_AGENT_TOKEN, /* X-Agent-Token (shared operator token) */
    COORD_CRED_KEY,         /* Authorization: Bearer <user key> */
    COORD_CRED_OPEN,        /* OPEN_REGISTRATION=true and no credential on an agent route */
};

/* Scope bits of a key (API.md "Accounts, API keys, roles"). */
#define COORD_SCOPE_BUY 0x1u
#define COORD_SCOPE_SELL 0x2u
#define COORD_SCOPE_ADMIN 0x4u

/** The built-in admin user that X-Admin-Token acts as. */
#define COORD_ADMIN_USER "admin"

/* A key's token: this prefix + 43 base64url characters (256 random bits). */
#define COORD_KEY_PREFIX "co_"
#define COORD_KEY_HASH_LEN 64 /* hex SHA-256 */

/** The resolved identity of a request or session (a plain value; copy freely). */
struct coord_principal {
    enum coord_cred cred;
    char user_id[CO_ID_MAX + 1]; /* "" when anonymous */
    char key_id[CO_ID_MAX + 1];  /* the key's id for COORD_CRED_KEY, else "" */
    unsigned scopes;             /* COORD_SCOPE_* */
    bool is_admin;               /* admin token, or a key with the admin scope */
};

/** Hex SHA-256 of @token (@len bytes) into @out (COORD_KEY_HASH_LEN + 1 bytes). */
void coord_auth_hash(const char *token, size_t len, char out[COORD_KEY_HASH_LEN + 1]);

/**
 * A new random key token (COORD_KEY_PREFIX + base64url) into @out (@cap >= 48).  Errors:
 * CO_E_SYS when the kernel's random source fails.
 */
int coord_auth_new_token(char *out, size_t cap, co_err *err) __attribute__((warn_unused_result));

/** True if @p may act with @scope (admins hold every scope). */
bool coord_auth_has_scope(const struct coord_principal *p, unsigned scope);

/** True if @p is @user_id itself or an admin ("admin or self" in API.md). */
bool coord_auth_is_self_or_admin(const struct coord_principal *p, const char *user_id);

/* ---- extensions of the agreed interface (accounts work) ---- */

#include <stdint.h>

#include "coord_limits.h"
#include "coord_store.h"

/** The principal of X-Admin-Token: user "admin", every scope. */
void coord_auth_principal_admin(struct coord_principal *p);

/**
 * The principal of a key found by coord_store_key_lookup(): its user and scopes; the admin
 * scope counts only while the user is an admin (a demoted user's admin keys lose it).
 */
void coord_auth_principal_from_key(const struct coord_key_owner *k, struct coord_principal *p);

/** "buy", "sell", "admin" for one scope bit; NULL otherwise. */
const char *coord_auth_scope_name(unsigned bit);

/** The bit of scope name @name ("buy", "sell", "admin"), 0 if unknown. */
unsigned coord_auth_scope_parse(const char *name);

/** What authentication of a key yields: the principal and its user's limit overrides. */
struct coord_auth_entry {
    struct coord_principal p;
    struct coord_user_limits limits;
};

/**
 * Resolve a key by the hash of its token (database thread): 1 and @out filled, 0 when no usable
 * key has that hash (unknown, revoked, or its user disabled), -1 on a store error.
 * last_used_at is written at most once a minute per key.
 */
int coord_auth_lookup(struct coord_store *s, const char *token_hash, struct coord_auth_entry *out,
                      co_err *err) __attribute__((warn_unused_result));

/*
 * The cache of positive key lookups (lws thread only): token hash -> entry, for at most
 * COORD_AUTH_CACHE_TTL_MS.  Every revocation, user change or disabling published on this
 * coordinator's change feed drops the entries concerned before the answer of that change is
 * sent, and a lookup that was in flight during such a change is not cached (generation check).
 * Wrong tokens are never cached (they always reach the store; the per-address throttle bounds
 * them).
 */
#define COORD_AUTH_CACHE_TTL_MS 5000
struct coord_auth_cache;

struct coord_auth_cache *coord_auth_cache_new(void);
void coord_auth_cache_free(struct coord_auth_cache *c);
/** True and @out filled when @hash is cached and fresh at monotonic @now_ms. */
bool coord_auth_cache_get(struct coord_auth_cache *c, const char *hash, int64_t now_ms,
                          struct coord_auth_entry *out);
/** The generation to pass to coord_auth_cache_put() for a lookup started now. */
uint64_t coord_auth_cache_gen(const struct coord_auth_cache *c);
/** Remember @e for @hash unless an invalidation happened since @gen. */
void coord_auth_cache_put(struct coord_auth_cache *c, const char *hash,
                          const struct coord_auth_entry *e, uint64_t gen, int64_t now_ms);
/** Drop the entries of key @key_id (NULL: any) or of user @user_id (NULL: any); both NULL: all. */
void coord_auth_cache_invalidate(struct coord_auth_cache *c, const char *key_id,
                                 const char *user_id);

#endif
