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
 * of a key is a store call (database threads only).
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

#endif
