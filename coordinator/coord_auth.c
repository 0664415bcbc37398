/* coord_auth: principals, key tokens and their hashes, the lookup cache (see coord_auth.h). */
#include "coord_auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdnoreturn.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

#include "co_alloc.h"
#include "co_time.h"

/* last_used_at is written at most this often per key. */
#define AUTH_TOUCH_MS 60000
/*
 * 4-way set associative: the set is taken from the hash itself (already uniformly random), so
 * that keys in use at once rarely evict each other (a direct-mapped table thrashed on 64 keys).
 */
#define AUTH_CACHE_SETS 1024
#define AUTH_CACHE_WAYS 4

/*
 * SHA-256 is fetched from libcrypto once, and each thread keeps one digest context: OpenSSL 3's
 * one-shot EVP_Digest(EVP_sha256()) looks the algorithm up and allocates on every call, which
 * cost a third of a microsecond per request (three times the digest itself).
 */
static EVP_MD *auth_sha256;
static pthread_once_t auth_sha256_once = PTHREAD_ONCE_INIT;
static _Thread_local EVP_MD_CTX *auth_md_ctx;
/* Frees a thread's digest context when the thread ends (database threads end at shutdown). */
static pthread_key_t auth_md_ctx_key;
static bool auth_md_ctx_key_ok;

static void
auth_md_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void
auth_sha256_fetch(void)
{
    auth_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    auth_md_ctx_key_ok = pthread_key_create(&auth_md_ctx_key, auth_md_ctx_free) == 0;
}

static noreturn void
auth_crypto_broken(void)
{
    /* Only when libcrypto is broken: no hash could ever match, so fail loudly. */
    fprintf(stderr, "fatal: SHA-256 is not available from libcrypto\n");
    abort();
}

void
coord_auth_hash(const char *token, size_t len, char out[COORD_KEY_HASH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    pthread_once(&auth_sha256_once, auth_sha256_fetch);
    if (!auth_md_ctx) {
        auth_md_ctx = EVP_MD_CTX_new();
        if (auth_md_ctx && auth_md_ctx_key_ok)
            (void)pthread_setspecific(auth_md_ctx_key, auth_md_ctx);
    }
    if (!auth_sha256 || !auth_md_ctx || EVP_DigestInit_ex2(auth_md_ctx, auth_sha256, NULL) != 1 ||
        EVP_DigestUpdate(auth_md_ctx, token, len) != 1 ||
        EVP_DigestFinal_ex(auth_md_ctx, md, &mdlen) != 1 || mdlen != 32)
        auth_crypto_broken();
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[COORD_KEY_HASH_LEN] = '\0';
}

int
coord_auth_new_token(char *out, size_t cap, co_err *err)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33]; /* 256 random bits, padded to a multiple of 3 bytes */
    size_t got = 0;
    if (cap < 48)
        return co_err_set(err, CO_E_INVAL, "token buffer of %zu bytes is too small", cap);
    while (got < 32) {
        ssize_t n = getrandom(raw + got, 32 - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return co_err_sys(err, errno, "cannot read random bytes");
        }
        got += (size_t)n;
    }
    raw[32] = 0;
    size_t o = co_strlcpy(out, COORD_KEY_PREFIX, cap);
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    /* 44 characters encode 264 bits; the last one carries only padding: 43 remain. */
    out[o - 1] = '\0';
    explicit_bzero(raw, sizeof(raw));
    return 0;
}

bool
coord_auth_has_scope(const struct coord_principal *p, unsigned scope)
{
    if (p->is_admin)
        return true;
    return scope != 0 && (p->scopes & scope) == scope;
}

bool
coord_auth_is_self_or_admin(const struct coord_principal *p, const char *user_id)
{
    if (p->is_admin)
        return true;
    return p->user_id[0] && user_id && strcmp(p->user_id, user_id) == 0;
}

void
coord_auth_principal_admin(struct coord_principal *p)
{
    memset(p, 0, sizeof(*p));
    p->cred = COORD_CRED_ADMIN_TOKEN;
    co_strlcpy(p->user_id, COORD_ADMIN_USER, sizeof(p->user_id));
    p->scopes = COORD_SCOPE_BUY | COORD_SCOPE_SELL | COORD_SCOPE_ADMIN;
    p->is_admin = true;
}

void
coord_auth_principal_from_key(const struct coord_key_owner *k, struct coord_principal *p)
{
    memset(p, 0, sizeof(*p));
    p->cred = COORD_CRED_KEY;
    co_strlcpy(p->user_id, k->user_id, sizeof(p->user_id));
    co_strlcpy(p->key_id, k->key_id, sizeof(p->key_id));
    p->scopes = k->scopes & (COORD_SCOPE_BUY | COORD_SCOPE_SELL | COORD_SCOPE_ADMIN);
    if (!k->user_is_admin)
        p->scopes &= ~COORD_SCOPE_ADMIN;
    p->is_admin = (p->scopes & COORD_SCOPE_ADMIN) != 0;
}

const char *
coord_auth_scope_name(unsigned bit)
{
    switch (bit) {
    case COORD_SCOPE_BUY:
        return "buy";
    case COORD_SCOPE_SELL:
        return "sell";
    case COORD_SCOPE_ADMIN:
        return "admin";
    default:
        return NULL;
    }
}

unsigned
coord_auth_scope_parse(const char *name)
{
    for (unsigned bit = 1; bit <= COORD_SCOPE_ADMIN; bit <<= 1) {
        if (strcmp(name, coord_auth_scope_name(bit)) == 0)
            return bit;
    }
    return 0;
}

int
coord_auth_lookup(struct coord_store *s, const char *token_hash, struct coord_auth_entry *out,
                  co_err *err)
{
    struct coord_key_owner k;
    int rc = coord_store_key_lookup(s, token_hash, AUTH_TOUCH_MS, &k, err);
    if (rc <= 0)
        return rc;
    coord_auth_principal_from_key(&k, &out->p);
    co_err lerr = CO_ERR_INIT;
    /* Limits are validated when set; should a stored value be unreadable, defaults apply. */
    if (coord_limits_parse(k.limits, &out->limits, &lerr) < 0)
        coord_limits_user_defaults(&out->limits);
    return 1;
}

/* ------------------------------------------------------------------ cache (lws thread) */

struct cache_slot {
    char hash[COORD_KEY_HASH_LEN + 1]; /* "" = empty */
    int64_t expires_ms;
    struct coord_auth_entry e;
};

struct coord_auth_cache {
    struct cache_slot slots[AUTH_CACHE_SETS][AUTH_CACHE_WAYS];
    uint64_t gen;
};

struct coord_auth_cache *
coord_auth_cache_new(void)
{
    return co_xcalloc(1, sizeof(struct coord_auth_cache));
}

void
coord_auth_cache_free(struct coord_auth_cache *c)
{
    if (c)
        explicit_bzero(c, sizeof(*c));
    free(c);
}

/* The set of @hash: its first 4 hex digits, folded onto the sets. */
static struct cache_slot *
cache_set(struct coord_auth_cache *c, const char *hash)
{
    unsigned v = 0;
    for (int i = 0; i < 4 && hash[i]; i++) {
        char ch = hash[i];
        v = v * 16 + (unsigned)(ch >= 'a' ? ch - 'a' + 10 : ch - '0');
    }
    return c->slots[v % AUTH_CACHE_SETS];
}

bool
coord_auth_cache_get(struct coord_auth_cache *c, const char *hash, int64_t now_ms,
                     struct coord_auth_entry *out)
{
    struct cache_slot *set = cache_set(c, hash);
    /*
     * A plain compare: these are hashes of what the client sent, and how much of a cached hash
     * matches the hash of a guess tells nothing about the token behind it (SHA-256 has no
     * usable preimages).
     */
    for (int w = 0; w < AUTH_CACHE_WAYS; w++) {
        struct cache_slot *sl = &set[w];
        if (now_ms < sl->expires_ms && memcmp(sl->hash, hash, COORD_KEY_HASH_LEN + 1) == 0) {
            *out = sl->e;
            return true;
        }
    }
    return false;
}

uint64_t
coord_auth_cache_gen(const struct coord_auth_cache *c)
{
    return c->gen;
}

void
coord_auth_cache_put(struct coord_auth_cache *c, const char *hash, const struct coord_auth_entry *e,
                     uint64_t gen, int64_t now_ms)
{
    if (gen != c->gen || strlen(hash) != COORD_KEY_HASH_LEN)
        return;
    /* The same hash again, else an empty or expired way, else the one expiring first. */
    struct cache_slot *set = cache_set(c, hash), *sl = &set[0];
    for (int w = 0; w < AUTH_CACHE_WAYS; w++) {
        if (strcmp(set[w].hash, hash) == 0) {
            sl = &set[w];
            break;
        }
        if (set[w].expires_ms < sl->expires_ms)
            sl = &set[w];
    }
    memcpy(sl->hash, hash, COORD_KEY_HASH_LEN + 1);
    sl->expires_ms = now_ms + COORD_AUTH_CACHE_TTL_MS;
    sl->e = *e;
}

void
coord_auth_cache_invalidate(struct coord_auth_cache *c, const char *key_id, const char *user_id)
{
    c->gen++;
    for (size_t i = 0; i < AUTH_CACHE_SETS * AUTH_CACHE_WAYS; i++) {
        struct cache_slot *sl = &c->slots[i / AUTH_CACHE_WAYS][i % AUTH_CACHE_WAYS];
        if (!sl->hash[0])
            continue;
        bool drop = (!key_id && !user_id) || (key_id && strcmp(sl->e.p.key_id, key_id) == 0) ||
                    (user_id && strcmp(sl->e.p.user_id, user_id) == 0);
        if (drop)
            memset(sl, 0, sizeof(*sl));
    }
}
