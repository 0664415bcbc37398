/* coord_fault: debug fault settings (see coord_fault.h). */
#include "coord_fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "co_log.h"

bool coord_fault_armed;

static const struct {
    const char *name;
    unsigned bit;
} kinds[] = {
    {"claim", COORD_FAULT_TX_CLAIM},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static struct {
    int64_t commit_lost_at[N_KINDS]; /* 0: off; else the commit number whose reply is lost */
    atomic_llong commits[N_KINDS];   /* commits of each kind so far */
    int64_t hello_gap_ms;
    int64_t claim_hold_ms;
    /* claim_hold_ms: a hello arriving bumps hellos and wakes the held claims. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t hellos;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* A positive integer of @len characters at @p (at most a day for durations, a million else). */
static int
parse_num(const char *p, size_t len, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

static bool
field_is(const char *p, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(p, word, len) == 0;
}

/* One item "name:arg[:arg]" of @len characters. */
static int
parse_item(const char *item, size_t len)
{
    const char *f[3];
    size_t fl[3];
    size_t n = 0;
    const char *p = item, *end = item + len;
    while (n < 3) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        f[n] = p;
        fl[n] = c ? (size_t)(c - p) : (size_t)(end - p);
        n++;
        if (!c)
            break;
        p = c + 1;
        if (n == 3)
            goto bad;
    }
    if (n == 3 && field_is(f[0], fl[0], "commit_lost")) {
        for (size_t k = 0; k < N_KINDS; k++) {
            if (field_is(f[1], fl[1], kinds[k].name))
                return parse_num(f[2], fl[2], 1000000, &F.commit_lost_at[k]) == 0 ? 0 : -1;
        }
        goto bad;
    }
    if (n == 2 && field_is(f[0], fl[0], "hello_gap_ms"))
        return parse_num(f[1], fl[1], 86400000, &F.hello_gap_ms) == 0 ? 0 : -1;
    if (n == 2 && field_is(f[0], fl[0], "claim_hold_ms"))
        return parse_num(f[1], fl[1], 86400000, &F.claim_hold_ms) == 0 ? 0 : -1;
bad:
    return -1;
}

int
coord_fault_init(const char *spec, co_err *err)
{
    memset(F.commit_lost_at, 0, sizeof(F.commit_lost_at));
    for (size_t k = 0; k < N_KINDS; k++)
        atomic_store(&F.commits[k], 0);
    F.hello_gap_ms = F.claim_hold_ms = 0;
    coord_fault_armed = false;
    if (!spec || !*spec)
        return 0;
    const char *p = spec;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (parse_item(p, len) < 0) {
            memset(F.commit_lost_at, 0, sizeof(F.commit_lost_at));
            F.hello_gap_ms = F.claim_hold_ms = 0;
            return co_err_field(err, CO_E_INVAL, "DEBUG_FAULTS",
                                "invalid DEBUG_FAULTS item '%.*s': want commit_lost:claim:<n>, "
                                "hello_gap_ms:<ms> or claim_hold_ms:<ms> (n, ms positive)",
                                (int)len, p);
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    coord_fault_armed = true;
    co_warn("DEBUG_FAULTS='%s' is set: faults are injected on purpose (lost COMMIT replies, "
            "held hellos and claims); for tests only, never in production",
            spec);
    return 0;
}

bool
coord_fault_commit_lost_slow(unsigned bits)
{
    bool lost = false;
    for (size_t k = 0; k < N_KINDS; k++) {
        if (!(bits & kinds[k].bit) || !F.commit_lost_at[k])
            continue;
        long long n = atomic_fetch_add(&F.commits[k], 1) + 1;
        if (n == F.commit_lost_at[k]) {
            co_warn("DEBUG_FAULTS: the reply to COMMIT of %s transaction #%lld is lost (the "
                    "transaction was applied)",
                    kinds[k].name, n);
            lost = true;
        }
    }
    return lost;
}

void
coord_fault_claim_hold_slow(const char *job_id)
{
    if (F.claim_hold_ms <= 0)
        return;
    co_info("DEBUG_FAULTS: claim of job=%s held after its session check for up to %lld ms", job_id,
            (long long)F.claim_hold_ms);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += F.claim_hold_ms / 1000;
    until.tv_nsec += (F.claim_hold_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&F.mu);
    uint64_t hellos = F.hellos;
    while (F.hellos == hellos) {
        if (pthread_cond_timedwait(&F.cond, &F.mu, &until) == ETIMEDOUT)
            break;
    }
    bool by_hello = F.hellos != hellos;
    pthread_mutex_unlock(&F.mu);
    co_info("DEBUG_FAULTS: claim of job=%s goes on (%s)", job_id,
            by_hello ? "a hello arrived" : "hold over");
}

void
coord_fault_hello_arrived_slow(const char *worker_id)
{
    if (F.claim_hold_ms <= 0)
        return;
    co_info("DEBUG_FAULTS: hello of worker=%s arrived", worker_id);
    pthread_mutex_lock(&F.mu);
    F.hellos++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.mu);
}

void
coord_fault_hello_gap_slow(const char *worker_id)
{
    if (F.hello_gap_ms <= 0)
        return;
    co_info("DEBUG_FAULTS: hello of worker=%s listed its jobs; %lld ms before its welcome",
            worker_id, (long long)F.hello_gap_ms);
    struct timespec d = {.tv_sec = F.hello_gap_ms / 1000,
                         .tv_nsec = (F.hello_gap_ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) < 0 && errno == EINTR)
        ;
    co_info("DEBUG_FAULTS: hello of worker=%s gap over", worker_id);
}
