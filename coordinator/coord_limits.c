/* coord_limits: token buckets and the failed-authentication throttle (see coord_limits.h). */
#include "coord_limits.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "co_alloc.h"

/* Entries are swept of idle ones when a table passes this size. */
#define LIMITS_SWEEP_AT 4096
#define LIMITS_KEY_MAX 128

struct lim_entry {
    struct lim_entry *next;
    char key[LIMITS_KEY_MAX];
    /* Bucket: tokens at @at_ms.  Throttle: failures since window_start_ms, blocked_until_ms. */
    double tokens;
    int64_t at_ms;
    int64_t fails;
    int64_t window_start_ms;
    int64_t blocked_until_ms;
};

struct lim_table {
    struct lim_entry **slots;
    size_t nslots, n;
};

struct coord_limits {
    struct lim_table buckets;
    struct lim_table addrs;
    int64_t auth_fail_max;
};

void
coord_limits_user_defaults(struct coord_user_limits *out)
{
    out->submit_per_second = -1;
    out->max_pending_jobs = -1;
    out->max_running_jobs = -1;
}

int
coord_limits_parse(const char *text, struct coord_user_limits *out, co_err *err)
{
    coord_limits_user_defaults(out);
    if (!text || !*text)
        return 0;
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    const char *key;
    json_t *v;
    if (!root || !json_is_object(root)) {
        co_err_field(err, CO_E_INVAL, "limits", "field 'limits' must be a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        bool is_rate = strcmp(key, "submit_per_second") == 0;
        int64_t *count = strcmp(key, "max_pending_jobs") == 0   ? &out->max_pending_jobs
                         : strcmp(key, "max_running_jobs") == 0 ? &out->max_running_jobs
                                                                : NULL;
        if (!is_rate && !count) {
            co_err_field(err, CO_E_INVAL, "limits",
                         "unknown limit '%.60s' (known: submit_per_second, max_pending_jobs, "
                         "max_running_jobs)",
                         key);
            goto out;
        }
        if (json_is_null(v))
            continue;
        if (is_rate) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e6 ||
                !isfinite(json_number_value(v))) {
                co_err_field(err, CO_E_INVAL, "limits",
                             "limit 'submit_per_second' must be a number from 0 to 1000000");
                goto out;
            }
            out->submit_per_second = json_number_value(v);
        } else {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > INT64_C(1000000000)) {
                co_err_field(err, CO_E_INVAL, "limits",
                             "limit '%s' must be an integer from 0 to 1000000000", key);
                goto out;
            }
            *count = json_integer_value(v);
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ tables */

static uint64_t
lim_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void
table_release(struct lim_table *t)
{
    for (size_t i = 0; i < t->nslots; i++) {
        struct lim_entry *e = t->slots[i];
        while (e) {
            struct lim_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* Drop the entries @idle says are back to their initial state (nothing to remember). */
static void
table_sweep(struct lim_table *t, bool (*idle)(const struct lim_entry *, int64_t), int64_t now)
{
    for (size_t i = 0; i < t->nslots; i++) {
        struct lim_entry **pp = &t->slots[i];
        while (*pp) {
            struct lim_entry *e = *pp;
            if (idle(e, now)) {
                *pp = e->next;
                free(e);
                t->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static void
table_grow(struct lim_table *t)
{
    size_t nslots = t->nslots ? t->nslots * 2 : 256;
    struct lim_entry **slots = co_xcalloc(nslots, sizeof(*slots));
    for (size_t i = 0; i < t->nslots; i++) {
        struct lim_entry *e = t->slots[i];
        while (e) {
            struct lim_entry *next = e->next;
            size_t j = lim_hash(e->key) & (nslots - 1);
            e->next = slots[j];
            slots[j] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
}

/* The entry for @key, or NULL when absent and !@create.  *@created tells a new (zeroed) one. */
static struct lim_entry *
table_get(struct lim_table *t, const char *key, bool create, bool *created,
          bool (*idle)(const struct lim_entry *, int64_t), int64_t now)
{
    *created = false;
    if (t->nslots) {
        for (struct lim_entry *e = t->slots[lim_hash(key) & (t->nslots - 1)]; e; e = e->next) {
            if (strcmp(e->key, key) == 0)
                return e;
        }
    }
    if (!create)
        return NULL;
    if (t->n >= LIMITS_SWEEP_AT && t->n % LIMITS_SWEEP_AT == 0)
        table_sweep(t, idle, now);
    if (t->n >= t->nslots)
        table_grow(t);
    struct lim_entry *e = co_xcalloc(1, sizeof(*e));
    co_strlcpy(e->key, key, sizeof(e->key));
    size_t j = lim_hash(e->key) & (t->nslots - 1);
    e->next = t->slots[j];
    t->slots[j] = e;
    t->n++;
    *created = true;
    return e;
}

struct coord_limits *
coord_limits_new(int64_t auth_fail_max)
{
    struct coord_limits *l = co_xcalloc(1, sizeof(*l));
    l->auth_fail_max = auth_fail_max;
    return l;
}

void
coord_limits_free(struct coord_limits *l)
{
    if (!l)
        return;
    table_release(&l->buckets);
    table_release(&l->addrs);
    free(l);
}

size_t
coord_limits_size(const struct coord_limits *l)
{
    return l->buckets.n + l->addrs.n;
}

/* ------------------------------------------------------------------ submit buckets */

/*
 * A bucket left alone refills; once full it carries no information and is dropped (a new one
 * starts full).  Its rate is not stored, so "full" is judged conservatively: at least one token
 * and idle for a minute (full at any rate: capacity is max(1, 2 x rate)), or idle for ten
 * minutes (full unless the rate is below one per ten minutes).
 */
static bool
bucket_idle(const struct lim_entry *e, int64_t now)
{
    return now - e->at_ms > 600000 || (now - e->at_ms > 60000 && e->tokens >= 1);
}

int64_t
coord_limits_submit(struct coord_limits *l, const char *user_id, double per_second, int64_t now_ms)
{
    if (per_second <= 0)
        return 0;
    double cap = per_second * 2 < 1 ? 1 : per_second * 2;
    bool created;
    struct lim_entry *e = table_get(&l->buckets, user_id, true, &created, bucket_idle, now_ms);
    if (created) {
        e->tokens = cap;
    } else {
        if (now_ms > e->at_ms)
            e->tokens += (double)(now_ms - e->at_ms) / 1000.0 * per_second;
        /* Also when the rate was lowered since (within the same millisecond, too). */
        if (e->tokens > cap)
            e->tokens = cap;
    }
    e->at_ms = now_ms;
    if (e->tokens >= 1) {
        e->tokens -= 1;
        return 0;
    }
    double wait_s = (1 - e->tokens) / per_second;
    int64_t secs = (int64_t)ceil(wait_s);
    return secs < 1 ? 1 : secs;
}

/* ------------------------------------------------------------------ failed authentications */

static bool
addr_idle(const struct lim_entry *e, int64_t now)
{
    return now >= e->blocked_until_ms && now - e->window_start_ms >= COORD_AUTH_FAIL_WINDOW_MS;
}

void
coord_limits_auth_failed(struct coord_limits *l, const char *addr, int64_t now_ms)
{
    bool created;
    if (l->auth_fail_max <= 0)
        return;
    struct lim_entry *e = table_get(&l->addrs, addr, true, &created, addr_idle, now_ms);
    if (created || now_ms - e->window_start_ms >= COORD_AUTH_FAIL_WINDOW_MS) {
        e->window_start_ms = now_ms;
        e->fails = 0;
    }
    e->fails++;
    if (e->fails > l->auth_fail_max && e->blocked_until_ms <= now_ms)
        e->blocked_until_ms = now_ms + COORD_AUTH_FAIL_WINDOW_MS;
}

int64_t
coord_limits_auth_blocked(struct coord_limits *l, const char *addr, int64_t now_ms)
{
    bool created;
    struct lim_entry *e = table_get(&l->addrs, addr, false, &created, addr_idle, now_ms);
    if (!e || now_ms >= e->blocked_until_ms)
        return 0;
    int64_t secs = (e->blocked_until_ms - now_ms + 999) / 1000;
    return secs < 1 ? 1 : secs;
}
