/*
 * coord_limits: per-user submit rate (token buckets) and the throttle of failed authentications
 * per client address.  State lives in memory, per coordinator process: with several
 * coordinators behind one address, each enforces the limits on the requests it receives (see
 * coordinator/README.md, "Limits").  The quotas that must hold across nodes (max_pending_jobs)
 * are counted in the database instead.
 *
 * Threads: a `struct coord_limits` belongs to the lws service thread.  coord_limits_parse() is
 * pure (any thread).  Life cycle: coord_server_run() creates the one table at start and frees it
 * when it returns; the agent protocol and the dashboards borrow it through their environment.
 */
#ifndef COORD_LIMITS_H
#define COORD_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"

/* More than this many failed authentications from one address within a window (the default of
 * AUTH_FAILURES_PER_MINUTE) ... */
#define COORD_AUTH_FAIL_MAX 20
/* ... of this length block the address for as long again. */
#define COORD_AUTH_FAIL_WINDOW_MS 60000

/** A user's limits; a negative value means "the coordinator's default". */
struct coord_user_limits {
    double submit_per_second; /* token bucket rate, burst 2x (at least 1); 0 = no limit */
    int64_t max_pending_jobs; /* 0 = no limit */
    int64_t max_running_jobs; /* 0 = no limit */
};

/** All three "default" (negative). */
void coord_limits_user_defaults(struct coord_user_limits *out);

/**
 * Parse a user's `limits` object text (keys submit_per_second, max_pending_jobs,
 * max_running_jobs; each a non-negative number, integers for the job counts, or null for the
 * default).  Unknown keys and bad values are CO_E_INVAL with the field named.  NULL or "" is {}.
 */
int coord_limits_parse(const char *json, struct coord_user_limits *out, co_err *err)
    __attribute__((warn_unused_result));

struct coord_limits;

/**
 * Empty state (caller-owned, coord_limits_free).  @auth_fail_max: failures allowed per address
 * and window (COORD_AUTH_FAIL_MAX by default; 0 = no throttle).
 */
struct coord_limits *coord_limits_new(int64_t auth_fail_max);
void coord_limits_free(struct coord_limits *l);

/**
 * Take one submit token from @user_id's bucket (rate @per_second, capacity max(1, 2 x rate),
 * full when first seen) at monotonic time @now_ms.  Returns 0 when allowed, else the whole
 * seconds (>= 1) until a token is there (the Retry-After).  @per_second <= 0: always allowed.
 */
int64_t coord_limits_submit(struct coord_limits *l, const char *user_id, double per_second,
                            int64_t now_ms);

/** Count one failed authentication from @addr at @now_ms. */
void coord_limits_auth_failed(struct coord_limits *l, const char *addr, int64_t now_ms);

/**
 * 0 if @addr may try to authenticate, else the whole seconds (>= 1) until it may again: more
 * than auth_fail_max failures within COORD_AUTH_FAIL_WINDOW_MS block it for that long.
 */
int64_t coord_limits_auth_blocked(struct coord_limits *l, const char *addr, int64_t now_ms);

/** Entries kept (buckets plus addresses), for tests. */
size_t coord_limits_size(const struct coord_limits *l);

#endif
