/*
 * coord_webhook: completion callbacks (API.md "Files, artifacts, callbacks, description").
 *
 * - Submit: coord_webhook_url_check() validates `callback_url` (http or https, <= 2048 bytes, no
 *   credentials) and resolves its host; an address that is loopback, private, link-local,
 *   metadata, multicast, reserved, or an IPv6 form of one of those is refused unless
 *   WEBHOOK_ALLOW_PRIVATE=true.  The store keeps the URL in table webhook_delivery (state
 *   'waiting'); the transaction that makes the job final queues it ('pending').
 * - Delivery: one thread of its own (coord_webhook_start) claims due rows through coord_db, checks
 *   the URL again (resolve, refuse, then pin the checked address with CURLOPT_CONNECT_TO and
 *   CURLOPT_RESOLVE), POSTs the owner's view of the job with libcurl's multi interface (at most
 *   WEBHOOK_CONCURRENCY in flight, bounded time and answer size, no redirects), signs it with the
 *   buyer's secret (HMAC-SHA256), and records each attempt.  Failures are retried with
 *   exponential backoff (WEBHOOK_BACKOFF_BASE_MS doubling, at most 10 min apart) until
 *   WEBHOOK_MAX_HOURS after the first attempt.  Nothing here runs on the lws thread.
 * - REST: POST /users/{id}/webhook-secret and GET /jobs/{id}/deliveries are handlers of coord_api
 *   (coord_api_webhook.c); the body POSTed is coord_render's job object.
 *
 * Threads: coord_webhook_url_check() any thread; the delivery on its own thread; its store work
 * on coord_db's threads.  Life cycle: coord_webhook_start() by coord_server once the lws context
 * exists, coord_webhook_stop() at shutdown.
 *
 * The store calls declared here are implemented in store.c (section "callbacks").
 */
#ifndef COORD_WEBHOOK_H
#define COORD_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "co_buf.h"
#include "co_err.h"
#include "coord_store.h"

struct coord_config;
struct coord_db;

#define COORD_WEBHOOK_URL_MAX 2048
/* Addresses kept from one resolution (all are checked, the first is used). */
#define COORD_WEBHOOK_ADDRS 8
/* Longest wait between two attempts. */
#define COORD_WEBHOOK_BACKOFF_MAX_MS (INT64_C(600) * 1000)
/*
 * Longest resolution at submit: it runs on the database thread of the submit (SQLite: the only
 * writer), so it is kept short; a slower name is refused (422) and can be submitted again.
 */
#define COORD_WEBHOOK_SUBMIT_RESOLVE_MS 2000
/* Answer bytes read per attempt (the rest is not read: the attempt ends there). */
#define COORD_WEBHOOK_ANSWER_MAX 4096

/* ---- address and URL checks (pure, any thread) ---- */

/**
 * Whether @sa (AF_INET or AF_INET6) is an address a callback may not reach: NULL for a public
 * address, else a short reason ("loopback", "private (RFC 1918)", "link-local/metadata", ...).
 * IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 forms are judged by the IPv4
 * address they carry.
 */
const char *coord_webhook_addr_refused(const struct sockaddr *sa);

/** A checked callback target. */
struct coord_webhook_target {
    char scheme[8];                       /* "http" or "https" */
    char host[256];                       /* as in the URL (IPv6 without brackets) */
    int port;                             /* explicit or the scheme's default */
    char addr[64];                        /* the first checked address (numeric) */
    bool addr_v6;                         /* @addr is IPv6 */
    char addrs[COORD_WEBHOOK_ADDRS * 50]; /* every checked address: "a,[b],..." */
};

/** Settings of the checks. */
struct coord_webhook_check_opts {
    bool allow_private;         /* WEBHOOK_ALLOW_PRIVATE */
    const char *hosts_file;     /* WEBHOOK_DEBUG_HOSTS: "name address" lines consulted first */
    int64_t resolve_timeout_ms; /* a resolution that takes longer fails */
};

/**
 * Parse @url, resolve its host (bounded by opts->resolve_timeout_ms) and check every address.
 * Errors (CO_E_INVAL, field "callback_url"): malformed, not http/https, too long, credentials
 * in the URL, a name that does not resolve, or an address refused by coord_webhook_addr_refused
 * (unless opts->allow_private).  Fills @out on success.
 */
int coord_webhook_url_check(const char *url, const struct coord_webhook_check_opts *opts,
                            struct coord_webhook_target *out, co_err *err)
    __attribute__((warn_unused_result));

/** "sha256=" + 64 hex digits of HMAC-SHA256(@secret, @body) into @out (72 bytes). */
void coord_webhook_sign(const char *secret, const char *body, size_t len, char out[72]);

/**
 * The wait before the attempt that follows failed attempt number @attempt (1-based):
 * @base_ms * 2^(attempt-1), at most COORD_WEBHOOK_BACKOFF_MAX_MS.
 */
int64_t coord_webhook_backoff_ms(int64_t base_ms, int attempt);

/* ---- the delivery thread ---- */

struct coord_webhook;

/**
 * Start the delivery thread with @cfg's WEBHOOK_* settings (@cfg and @db borrowed until
 * coord_webhook_stop).  Errors: libcurl or the thread cannot start.
 */
int coord_webhook_start(const struct coord_config *cfg, struct coord_db *db,
                        struct coord_webhook **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Stop the thread: in-flight attempts are abandoned (their rows are due again when their lease
 * ends, so another start continues them).  Waits for its queued database work.  NULL is fine.
 */
void coord_webhook_stop(struct coord_webhook *wh);

/** A delivery was queued (any thread): the thread looks for due rows soon. */
void coord_webhook_kick(void);

/** Append the callback counters to /metrics (Prometheus text). */
void coord_webhook_metrics_render(struct co_buf *out);

/* ---- store calls (store.c, "callbacks") ---- */

/** A claimed delivery: its job (without code) and the buyer's secret ("" when none). */
struct coord_webhook_due {
    char delivery_id[CO_ID_MAX + 1];
    char *url;
    int attempts; /* made so far */
    int64_t first_attempt_at;
    char *secret;
    struct coord_job job;
};
struct coord_webhook_due_list {
    struct coord_webhook_due *items;
    size_t len;
};
void coord_webhook_due_list_release(struct coord_webhook_due_list *l);

/**
 * Claim at most @limit deliveries due at @now_ms (state 'pending', next_at <= now): their
 * next_at becomes @lease_until_ms, so that no other claim takes them while they are tried and a
 * coordinator that dies mid-attempt leaves them due again.  Release @out.
 */
int coord_store_webhook_claim(struct coord_store *s, int64_t now_ms, int64_t lease_until_ms,
                              int64_t limit, struct coord_webhook_due_list *out, co_err *err)
    __attribute__((warn_unused_result));

/** The outcome of one attempt, recorded with the delivery's new state. */
struct coord_webhook_outcome {
    const char *delivery_id;
    const char *job_id;
    int attempt;       /* 1-based */
    int64_t at_ms;     /* when it started */
    int status_code;   /* 0 = no answer */
    const char *error; /* NULL on success */
    int64_t duration_ms;
    const char *state;        /* "delivered", "pending" or "failed" */
    int64_t first_attempt_at; /* kept if already set */
    int64_t next_at;          /* when pending */
};

/** Log an attempt and update its delivery, in one transaction. */
int coord_store_webhook_record(struct coord_store *s, const struct coord_webhook_outcome *o,
                               co_err *err) __attribute__((warn_unused_result));

/** Set @user_id's signing secret (replacing any). */
int coord_store_webhook_secret_set(struct coord_store *s, const char *user_id, const char *secret,
                                   co_err *err) __attribute__((warn_unused_result));

/** One logged attempt. */
struct coord_webhook_attempt {
    int attempt;
    int64_t at;
    int status_code; /* 0 = none */
    char *error;     /* NULL = none */
    int64_t duration_ms;
};

/** A job's delivery and its attempts. */
struct coord_webhook_log {
    bool found; /* the job has a callback */
    char delivery_id[CO_ID_MAX + 1];
    char *url;
    char state[16];
    int attempts;
    int64_t first_attempt_at, next_at, done_at;
    struct coord_webhook_attempt *items;
    size_t len;
};
void coord_webhook_log_release(struct coord_webhook_log *l);

/** The delivery of @job_id (found false when it has none).  Release @out. */
int coord_store_webhook_log(struct coord_store *s, const char *job_id,
                            struct coord_webhook_log *out, co_err *err)
    __attribute__((warn_unused_result));

#endif
