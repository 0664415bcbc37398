/*
 * coord_store: the coordinator's database, the source of truth for users, credits, jobs, workers
 * and job output.  One interface, two backends chosen once from DATABASE_URL (crun's cgroup
 * manager pattern): store_sqlite.c and store_pg.c.
 *
 * Threading: a `struct coord_store` is one database connection and is used by one thread at a
 * time.  Every function below is synchronous and may block (disk, network); the lws service
 * thread never calls them directly but through the coordinator's database executor (worker
 * threads, results handed back with lws_cancel_service).  Several stores may be open on one
 * database at once (several threads, or several coordinators on one PostgreSQL).  Life cycle: a
 * store is opened by coord_store_open() and closed by coord_store_close(): one per database
 * thread, by coord_db_start() and coord_db_stop(), and one in main() for the migrations.
 *
 * Every function that changes money does it in the same transaction as the job state change it
 * belongs to, and writes one ledger row per movement, unique on (job_id, kind), so a movement can
 * never happen twice.  Invariant: sum(users.credits) + sum(users.held) == sum(ledger grants).
 *
 * Times are milliseconds since the epoch (0 = null).  Money is int64 micro-credits.
 *
 * Errors (co_err codes): CO_E_NOTFOUND, CO_E_CONFLICT (state does not allow it), CO_E_FUNDS
 * (insufficient credits), CO_E_LIMIT (MAX_WORKERS), CO_E_UNAVAILABLE (database unreachable:
 * nothing was written; the caller answers 503 and the store reconnects on the next call),
 * CO_E_INVAL, CO_E_INTERNAL.
 */
#ifndef COORD_STORE_H
#define COORD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "co_err.h"
#include "co_id.h"
#include "coord_price.h"

enum coord_job_status {
    COORD_JOB_PENDING = 0,
    COORD_JOB_ASSIGNED,
    COORD_JOB_RUNNING,
    COORD_JOB_COMPLETED,
    COORD_JOB_FAILED,
    COORD_JOB_CANCELLED,
    COORD_JOB_STATUS_COUNT
};

enum coord_failure {
    COORD_FAIL_NONE = 0,
    COORD_FAIL_EXIT_CODE,
    COORD_FAIL_TIMEOUT,
    COORD_FAIL_OOM,
    COORD_FAIL_KILLED,
    COORD_FAIL_SANDBOX_ERROR,
    COORD_FAIL_WORKER_LOST,
    COORD_FAIL_CANCELLED,
    COORD_FAIL_UNVERIFIED, /* replicas: no majority of results agreed (coord_verify) */
    COORD_FAIL_COUNT
};

enum coord_worker_status {
    COORD_WORKER_IDLE = 0,
    COORD_WORKER_BUSY,
    COORD_WORKER_OFFLINE,
    COORD_WORKER_STATUS_COUNT
};

/** "pending", ... ; never NULL. */
const char *coord_job_status_name(enum coord_job_status s);
/** Parse a status name; -1 if unknown. */
int coord_job_status_parse(const char *s);
/** NULL for COORD_FAIL_NONE, else "exit_code", "timeout", ... */
const char *coord_failure_name(enum coord_failure f);
int coord_failure_parse(const char *s);
const char *coord_worker_status_name(enum coord_worker_status s);
int coord_worker_status_parse(const char *s);

/** Resource usage reported by the sandbox. */
struct coord_usage {
    int64_t wall_ms;
    int64_t cpu_ms;
    int64_t max_rss_kb;
};

/** A job row.  Strings are owned by the struct (coord_job_release frees them). */
struct coord_job {
    char job_id[CO_ID_MAX + 1];
    char *title;
    char *description; /* "" when absent */
    char *code;        /* NULL unless loaded with code (admin views, assignments) */
    char *code_file;   /* NULL when absent */
    char *files;       /* NULL unless loaded with code, and when the job has no input files;
                          else normalised JSON {"path": "<base64>"} (proto_files.h) */
    char *command;
    char *parameters; /* JSON object text, "{}" when absent */
    char *image;
    char buyer_id[CO_ID_MAX + 1];
    char assigned_worker[CO_ID_MAX + 1]; /* "" when none */
    enum coord_job_status status;
    enum coord_failure failure;
    int64_t cost; /* micro-credits held at submit */
    int64_t required_cores;
    int64_t required_ram_mb;
    int priority; /* 1-10, 10 most urgent */
    int64_t timeout_seconds;
    int attempts; /* assignments so far; the current attempt number when assigned/running */
    int max_attempts;
    bool has_exit_code;
    int exit_code;
    bool has_usage;
    struct coord_usage usage;
    int64_t created_at, assigned_at, started_at, completed_at; /* ms, 0 = null */
    /* Pricing (migration 0011, coord_price.h). */
    enum coord_pricing pricing; /* decided at submit */
    struct coord_rate rate;     /* metered: the prices at submit; market: the seller's, at claim */
    struct coord_rate max_rate; /* market: the buyer's maximum */
    int64_t min_reputation;     /* parts per million, 0-1000000 */
    bool has_charged;           /* settled */
    int64_t charged;            /* what the buyer paid, once settled */
    /* Replicas (coord_verify.h). */
    int replicas;                      /* 1-5; > 1: a replicated (parent) job */
    char parent_job_id[CO_ID_MAX + 1]; /* a replica's parent job, "" otherwise */
    char *verification;  /* parents loaded by job_get/list: the JSON object text, else NULL */
    char *avoid_owners;  /* replicas read by the scheduler: owners already used, "\n"-joined */
    bool verify_waiting; /* parents: a replica waits for a worker of an owner not used yet */
    char *callback_url;  /* submit only: stored in webhook_delivery, never loaded back here */
};

/** Free the strings of @job (not the struct). */
void coord_job_release(struct coord_job *job);

/** A list of jobs (caller-owned; coord_job_list_release frees it). */
struct coord_job_list {
    struct coord_job *items;
    size_t len;
};
void coord_job_list_release(struct coord_job_list *l);

struct coord_job_filter {
    int status;            /* -1 = any */
    const char *buyer_id;  /* NULL = any */
    const char *worker_id; /* NULL = any */
    int64_t limit;         /* 1-1000 */
    int64_t offset;
    bool with_code; /* load each job's code too */
};

/** A worker registration. */
struct coord_worker {
    char worker_id[CO_ID_MAX + 1];
    char owner_id[CO_ID_MAX + 1];
    int64_t cpu_cores;
    int64_t ram_mb;
    int64_t used_cores; /* sum over its assigned/running jobs */
    int64_t used_ram_mb;
    int64_t running_jobs;
    enum coord_worker_status status; /* as stored; callers derive offline from last_heartbeat */
    bool websocket;                  /* connection kind: websocket or http (poll) */
    int64_t last_heartbeat, created_at, updated_at;
    /* Market prices and reputation (migration 0011). */
    bool has_price;           /* upsert: set price (else the stored price stays) */
    struct coord_rate price;  /* the seller's prices for this worker */
    int64_t reputation;       /* parts per million (coord_store_outcome_record) */
    int64_t owner_reputation; /* the owner's, over all its workers */
};

struct coord_worker_list {
    struct coord_worker *items;
    size_t len;
};
void coord_worker_list_release(struct coord_worker_list *l);

struct coord_user {
    char user_id[CO_ID_MAX + 1];
    int64_t credits; /* available balance */
    int64_t held;    /* escrow for unsettled jobs */
    int64_t created_at, updated_at;
};

enum coord_ledger_kind {
    COORD_LEDGER_GRANT = 0, /* starting credits or an admin grant (+credits) */
    COORD_LEDGER_HOLD,      /* submit: credits -> held of the buyer */
    COORD_LEDGER_CHARGE,    /* settlement: held of the buyer -> ... */
    COORD_LEDGER_PAYOUT,    /* ... -> credits of the worker's owner */
    COORD_LEDGER_REFUND,    /* held of the buyer -> credits of the buyer */
    COORD_LEDGER_FEE,       /* ... -> credits of the platform (PLATFORM_FEE_PERCENT) */
    COORD_LEDGER_KIND_COUNT
};
const char *coord_ledger_kind_name(enum coord_ledger_kind k);

struct coord_ledger_row {
    int64_t id;
    char user_id[CO_ID_MAX + 1];
    char job_id[CO_ID_MAX + 1]; /* "" for grants without a job */
    enum coord_ledger_kind kind;
    int64_t amount;  /* signed change of the user's available credits */
    int64_t held;    /* signed change of the user's held credits */
    int64_t balance; /* available credits after the row */
    char *note;      /* may be NULL */
    int64_t created_at;
};
struct coord_ledger_list {
    struct coord_ledger_row *items;
    size_t len;
};
void coord_ledger_list_release(struct coord_ledger_list *l);

/** Counters for /api/v1/health and /metrics. */
struct coord_health {
    int64_t jobs[COORD_JOB_STATUS_COUNT];
    int64_t workers_total;
    int64_t workers[COORD_WORKER_STATUS_COUNT]; /* offline includes silent past the timeout */
    int64_t total_credits;                      /* sum of available + held over all users */
    int64_t active_users;                       /* users with at least one job or grant */
    int64_t pending_unfit; /* pending jobs that fit no registered worker's total capacity */
};

/** Settings the store needs from the configuration. */
struct coord_store_config {
    const char *url;           /* DATABASE_URL; NULL or "" = sqlite default file */
    int64_t starting_credits;  /* DEFAULT_STARTING_CREDITS, micro */
    int64_t worker_timeout_ms; /* WORKER_TIMEOUT_SECONDS * 1000 */
    int64_t max_workers;       /* MAX_WORKERS */
    int64_t output_cap_bytes;  /* per stream, default 1 MiB */
    int64_t fee_percent;       /* PLATFORM_FEE_PERCENT of each payout */
    const char *fee_user;      /* who receives fees; NULL = "platform" */
    const char *node_id;       /* this coordinator's node (coord_node_id); NULL = none */
};

struct coord_store;

/**
 * Open a connection for @cfg->url: "sqlite:///relative.db", "sqlite:////abs.db", a bare path,
 * "postgresql://..." or "postgres://...".  Does not migrate.  Errors: bad URL, unreachable.
 * The returned store is caller-owned (coord_store_close).  @cfg is copied.
 */
int coord_store_open(const struct coord_store_config *cfg, struct coord_store **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Apply the migrations from sql/<backend>/ (looked up in @sql_dir, or the ones compiled into the
 * binary when @sql_dir is NULL; see store_migrations.h) that are not yet recorded in
 * schema_migrations, each in a transaction.  Refuses (CO_E_CONFLICT) when the database has a
 * migration newer than the highest one it was given.
 */
int coord_store_migrate(struct coord_store *s, const char *sql_dir, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The SQLite file a DATABASE_URL names (NULL or "" = the default file), borrowed from @url or a
 * constant; NULL for a PostgreSQL URL or an unsupported scheme.
 */
const char *coord_store_sqlite_path(const char *url);

/** Close the connection and free @s (NULL is fine). */
void coord_store_close(struct coord_store *s);

/**
 * Batches: run several store calls in one database transaction, to save a commit per call (the
 * cost that limits write throughput).  Between coord_store_batch_begin() and
 * coord_store_batch_commit() every store call runs inside a SAVEPOINT of the batch's
 * transaction: a call that fails rolls back only itself, and its money and job state still change
 * together or not at all.  Nothing is durable, and nothing a call returned may be acted upon
 * outside the batch (answered, sent to an agent, published), until the commit succeeded.  If
 * the commit fails (CO_E_UNAVAILABLE), every call of the batch is undone, including those that
 * returned success.  Only write calls belong in a batch (on PostgreSQL the batch is a READ
 * COMMITTED write transaction, and its row locks are held until the commit).
 *
 * coord_store_batch_begin: opens the transaction (SQLite: BEGIN IMMEDIATE).  Errors as for any
 * call (CO_E_UNAVAILABLE).  Inside an open batch it nests (a handler that batches its own calls,
 * run under coord_idem's batch): the inner batch is a savepoint, its commit releases it into the
 * outer transaction and its rollback undoes only its own calls.
 */
int coord_store_batch_begin(struct coord_store *s, co_err *err) __attribute__((warn_unused_result));

/**
 * Commit the batch; on failure everything in it is rolled back and the error is
 * CO_E_UNAVAILABLE.  Either way the batch is closed.
 */
int coord_store_batch_commit(struct coord_store *s, co_err *err)
    __attribute__((warn_unused_result));

/** Roll the open batch back and close it (no-op without one). */
void coord_store_batch_rollback(struct coord_store *s);

/** "sqlite" or "postgres". */
const char *coord_store_backend(const struct coord_store *s);

/** Cheap liveness check (SELECT 1); reconnects if needed. */
int coord_store_ping(struct coord_store *s, co_err *err) __attribute__((warn_unused_result));

/* ---- jobs ---- */

/**
 * Store a new job (status pending, attempts 0) and hold job->cost from the buyer, creating the
 * buyer with the starting credits (ledger grant) if unknown.  CO_E_FUNDS and nothing stored if
 * the balance is short; CO_E_CONFLICT if the job id exists.  Fills created_at.
 */
int coord_store_job_submit(struct coord_store *s, struct coord_job *job, co_err *err)
    __attribute__((warn_unused_result));

/** Load one job, with its code when @with_code.  CO_E_NOTFOUND if unknown. */
int coord_store_job_get(struct coord_store *s, const char *job_id, bool with_code,
                        struct coord_job *out, co_err *err) __attribute__((warn_unused_result));

/** Jobs newest first, filtered; code only with @f->with_code.  CO_E_RANGE for bad paging. */
int coord_store_job_list(struct coord_store *s, const struct coord_job_filter *f,
                         struct coord_job_list *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Pending jobs in scheduling order (priority desc, created_at asc), at most @limit, without code.
 * The scheduler matches them to workers with room.
 */
int coord_store_job_pending(struct coord_store *s, int64_t limit, struct coord_job_list *out,
                            co_err *err) __attribute__((warn_unused_result));

/** What the connected agents can run at all: the largest cores and RAM, the images. */
struct coord_job_fit {
    int64_t max_cores;
    int64_t max_ram_mb;
    const char *images_json; /* a JSON array of image names */
};

/**
 * The pending jobs that fit @fit, at most @limit, without code, in scheduling order: priority
 * desc, then buyers take turns within a priority (each buyer's oldest job first).  Jobs no
 * connected agent can run are not read (an index by shape skips them).
 */
int coord_store_job_pending_fit(struct coord_store *s, int64_t limit,
                                const struct coord_job_fit *fit, struct coord_job_list *out,
                                co_err *err) __attribute__((warn_unused_result));

/** A buyer's max_running_jobs and its assigned/running jobs now. */
struct coord_buyer_cap {
    char buyer_id[CO_ID_MAX + 1];
    int64_t cap; /* > 0 */
    int64_t running;
};
struct coord_buyer_cap_list {
    struct coord_buyer_cap *items; /* caller frees (free()) */
    size_t len;
};

/**
 * coord_store_job_pending() for a scheduler that holds back the jobs of buyers at their
 * max_running_jobs (the user's `limits` override, else @default_cap; 0 = none; admins have
 * none): the pending jobs of buyers whose assigned/running jobs reached their cap are left out of
 * the read (so they take no room in it from the others), and @caps receives, for the buyers that
 * have a cap among those running or read, the cap and their running count (the caller holds back
 * what would exceed it).  Counts are read, not locked: with several coordinators scheduling at
 * once a buyer may briefly pass the cap by the jobs claimed meanwhile.
 */
int coord_store_job_pending_capped(struct coord_store *s, int64_t limit, int64_t default_cap,
                                   struct coord_job_list *out, struct coord_buyer_cap_list *caps,
                                   co_err *err) __attribute__((warn_unused_result));

/**
 * coord_store_job_pending_capped() for the placeable jobs only (@fit, as
 * coord_store_job_pending_fit: shapes some connected agent can run, buyers taking turns).
 */
int coord_store_job_pending_fit_capped(struct coord_store *s, int64_t limit,
                                       const struct coord_job_fit *fit, int64_t default_cap,
                                       struct coord_job_list *out,
                                       struct coord_buyer_cap_list *caps, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Claim pending job @job_id for @worker_id: status assigned, attempts + 1, assigned_worker set,
 * only if it is still pending and the worker still has room (free cores/RAM cover it); a re-run
 * (attempt 2 or later) starts with empty stored output.  Loads the job with code into @out.
 * CO_E_CONFLICT if it was taken or no longer fits (someone else won).
 */
int coord_store_job_claim(struct coord_store *s, const char *job_id, const char *worker_id,
                          struct coord_job *out, co_err *err) __attribute__((warn_unused_result));

/**
 * For poll workers (GET /task): claim the best pending job that fits the free capacity of
 * @worker_id (priority desc, oldest first) in one transaction (FOR UPDATE SKIP LOCKED on
 * PostgreSQL).  Returns 1 with the job (with code) in @out, 0 if none fits.
 */
int coord_store_job_claim_next(struct coord_store *s, const char *worker_id, struct coord_job *out,
                               co_err *err) __attribute__((warn_unused_result));

/**
 * The agent started attempt @attempt: assigned -> running, started_at set.  Fencing: a stale
 * attempt or another worker gets CO_E_CONFLICT; running already is a no-op (returns 0).
 */
int coord_store_job_started(struct coord_store *s, const char *job_id, const char *worker_id,
                            int attempt, co_err *err) __attribute__((warn_unused_result));

/** What a job's final report carries. */
struct coord_job_result {
    enum coord_job_status status; /* COMPLETED or FAILED (or CANCELLED when killed by cancel) */
    enum coord_failure failure;   /* NONE for completed */
    bool has_exit_code;
    int exit_code;
    bool has_usage;
    struct coord_usage usage;
    bool platform_fault; /* failed because of the platform (sandbox could not start): refund */
};

/**
 * Attempt @attempt of @job_id on @worker_id finished: set the final state and settle in the same
 * transaction (charge buyer + payout to the worker's owner, or refund for platform faults and
 * cancellations before start).  Accepted from assigned or running.  FAILED with COORD_FAIL_NONE
 * is stored as exit_code.  An unknown owner is created (with the starting credits) on its first
 * payout. Idempotent: a job already final returns 0 and changes nothing (*@changed = false).
 * Fencing: a stale attempt or another worker gets CO_E_CONFLICT, as does a report for a pending
 * job.
 */
int coord_store_job_finish(struct coord_store *s, const char *job_id, const char *worker_id,
                           int attempt, const struct coord_job_result *r, bool *changed,
                           co_err *err) __attribute__((warn_unused_result));

/**
 * Cancel: pending/assigned -> cancelled and refunded; running -> cancelled and charged (the seller
 * is paid for the time used).  Finished -> CO_E_CONFLICT.  @out receives the job after the change
 * (so the caller can tell the agent running it); @was receives the status before.
 */
int coord_store_job_cancel(struct coord_store *s, const char *job_id, struct coord_job *out,
                           enum coord_job_status *was, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Give back every assigned/running job of @worker_id (worker lost or unregistered): each goes
 * back to pending (its attempt counter stays, the next claim is attempt + 1) or, when attempts
 * reached max_attempts, to failed with worker_lost and a refund.  The ids of changed jobs are
 * appended to @changed_ids (caller frees each and the array) when not NULL.
 */
int coord_store_worker_release_jobs(struct coord_store *s, const char *worker_id,
                                    char ***changed_ids, size_t *n_changed, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Give back one job that @worker_id holds as attempt @attempt and no longer runs (its agent
 * reconnected without it): back to pending (the next claim is attempt + 1) or, when its attempts
 * reached max_attempts, failed with worker_lost and refunded, in one transaction.  @after
 * (optional) receives the job's status after the change.  Fencing: CO_E_CONFLICT, and nothing
 * changes, unless the job is assigned or running on @worker_id with attempt @attempt;
 * CO_E_NOTFOUND for an unknown job.
 */
int coord_store_job_release(struct coord_store *s, const char *job_id, const char *worker_id,
                            int attempt, enum coord_job_status *after, co_err *err)
    __attribute__((warn_unused_result));

/** Every assigned or running job (reconciliation), without code. */
int coord_store_job_active(struct coord_store *s, struct coord_job_list *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Jobs handed to poll workers (GET /task) before @before (wall ms) and never reported started:
 * the answer was lost, or the worker dropped the job.  Without code.
 */
int coord_store_job_poll_unstarted(struct coord_store *s, int64_t before,
                                   struct coord_job_list *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Give back an attempt that the platform lost (its worker does not hold it): back to pending
 * without using up one of the buyer's attempts (max_attempts grows by one, so that the attempt
 * counter keeps fencing stale reports).  Fencing as coord_store_job_release.
 */
int coord_store_job_requeue_free(struct coord_store *s, const char *job_id, const char *worker_id,
                                 int attempt, co_err *err) __attribute__((warn_unused_result));

/** Append output to a job's stored stdout (stream 1) or stderr (stream 2), up to the cap. */
int coord_store_output_append(struct coord_store *s, const char *job_id, int stream,
                              const char *data, size_t len, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Like coord_store_output_append(), but only for the current attempt: the job must be assigned or
 * running on @worker_id with attempt @attempt (checked with the job row locked, so an append can
 * never land after the claim of a newer attempt), else CO_E_CONFLICT and nothing is stored.
 * CO_E_NOTFOUND for an unknown job.
 */
int coord_store_output_append_attempt(struct coord_store *s, const char *job_id,
                                      const char *worker_id, int attempt, int stream,
                                      const char *data, size_t len, co_err *err)
    __attribute__((warn_unused_result));

/**
 * An agent's job.output chunk that says where it starts: @offset is the bytes of its stream the
 * attempt sent before it.  Bytes already stored (the chunk is sent again after a reconnect or a
 * restart of the agent) are skipped without error; the rest is appended, up to the cap.  Fenced
 * like coord_store_output_append_attempt(); with @final_ok the job may also be final with
 * (@worker_id, @attempt) as its last attempt, so that output sent again after its result was
 * stored still lands.
 */
int coord_store_output_put(struct coord_store *s, const char *job_id, const char *worker_id,
                           int attempt, bool final_ok, int stream, int64_t offset, const char *data,
                           size_t len, co_err *err) __attribute__((warn_unused_result));

/**
 * The stored output of a job: always the current attempt's (a claim that starts attempt 2 or later
 * deletes the output of the earlier ones in its transaction).  The caller frees *out_stdout and
 * *out_stderr.
 */
int coord_store_output_get(struct coord_store *s, const char *job_id, char **out_stdout,
                           size_t *stdout_len, char **out_stderr, size_t *stderr_len,
                           bool *truncated, co_err *err) __attribute__((warn_unused_result));

/* ---- workers ---- */

/**
 * Create or update a worker (register, or an agent's hello).  @w->owner_id is the owner the
 * caller's credential stands for ("" means the worker id).  A worker id belongs to the owner that
 * first registered it: a registration with another owner gets CO_E_FORBIDDEN and changes
 * nothing, decided in the same transaction as the write (two registrations of a new id from two
 * owners, on two coordinators at once: one creates it, the other is refused).  A row from before
 * ownership was recorded (migration 0004) is claimed by its first registration.  Sets
 * last_heartbeat to now.  CO_E_LIMIT when creating one more than max_workers (non-offline).
 * @out (optional) receives the stored row.
 */
int coord_store_worker_upsert(struct coord_store *s, const struct coord_worker *w,
                              struct coord_worker *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Check that @worker_id is registered to @owner_id (the poll routes' worker, against the caller's
 * credential): 0 if so, CO_E_FORBIDDEN if it belongs to someone else, CO_E_NOTFOUND if unknown.
 */
int coord_store_worker_check_owner(struct coord_store *s, const char *worker_id,
                                   const char *owner_id, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Update the reputation of the workers whose update a finish skipped (PostgreSQL: the finish
 * updates it after its commit without waiting for the worker's row; when a claim holds that row
 * the worker is remembered, in this process, for this call).  coord_lease's tick calls it; each
 * update is a statement of its own.  The first error stops it (the rest are kept for next time).
 */
int coord_store_worker_repute_pending(struct coord_store *s, co_err *err)
    __attribute__((warn_unused_result));

/* Worker ids per statement of coord_store_worker_heartbeat_many. */
#define COORD_STORE_HEARTBEAT_BATCH 2000

/**
 * Renew the leases of @n workers (coord_lease's tick), like coord_store_worker_heartbeat for
 * each but in one statement per COORD_STORE_HEARTBEAT_BATCH ids, taken in sorted order; unknown
 * ids are ignored.  Call it inside a transaction (a coord_db write) to make it one commit.
 */
int coord_store_worker_heartbeat_many(struct coord_store *s, const char (*ids)[CO_ID_MAX + 1],
                                      size_t n, co_err *err) __attribute__((warn_unused_result));

/**
 * Renew the worker's lease (last_heartbeat = now); a worker stored as offline becomes idle.
 * CO_E_NOTFOUND if unknown.
 */
int coord_store_worker_heartbeat(struct coord_store *s, const char *worker_id, co_err *err)
    __attribute__((warn_unused_result));

/** Mark offline (unregister or disconnect); does not touch its jobs. */
int coord_store_worker_set_status(struct coord_store *s, const char *worker_id,
                                  enum coord_worker_status st, co_err *err)
    __attribute__((warn_unused_result));

/** One worker with its current usage.  CO_E_NOTFOUND if unknown. */
int coord_store_worker_get(struct coord_store *s, const char *worker_id, struct coord_worker *out,
                           co_err *err) __attribute__((warn_unused_result));

/** All workers with their current usage, by worker_id. */
int coord_store_worker_list(struct coord_store *s, struct coord_worker_list *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Workers whose last_heartbeat is older than @before_ms and that still hold jobs or are not
 * offline: the lease reaper releases their jobs and marks them offline.
 */
int coord_store_worker_expired(struct coord_store *s, int64_t before_ms,
                               struct coord_worker_list *out, co_err *err)
    __attribute__((warn_unused_result));

/* ---- credits ---- */

/** A user's balance.  CO_E_NOTFOUND if unknown. */
int coord_store_user_get(struct coord_store *s, const char *user_id, struct coord_user *out,
                         co_err *err) __attribute__((warn_unused_result));

/**
 * Grant @amount (> 0) micro-credits, creating the user (with the starting credits) if needed.
 * CO_E_RANGE if the balance would pass 10^9 credits.  @out receives the balance after.
 */
int coord_store_user_grant(struct coord_store *s, const char *user_id, int64_t amount,
                           struct coord_user *out, co_err *err) __attribute__((warn_unused_result));

/**
 * Ledger rows of a user, newest first, at most @limit (1-1000) from @offset.  CO_E_NOTFOUND if
 * the user is unknown, CO_E_RANGE for a bad limit or offset.
 */
int coord_store_ledger_list(struct coord_store *s, const char *user_id, int64_t limit,
                            int64_t offset, struct coord_ledger_list *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Check the money invariant: sum(credits) + sum(held) == sum of grant rows, each user's credits
 * and held equal the sums of its ledger rows, held equals the cost of its unsettled jobs, every
 * finished job is settled (a charge, a refund or both, which together release exactly its hold,
 * and its payout plus fee equal its charge; `charged` equals its charge), and no unsettled job
 * has a settlement row.  Returns 0 if it holds, CO_E_INTERNAL with the figures if not.
 */
int coord_store_check_invariant(struct coord_store *s, co_err *err)
    __attribute__((warn_unused_result));

/* ---- reputation, prices, statements (migration 0011) ---- */

/*
 * Reputation, computed by SQL in the store so that every coordinator agrees: over the worker's
 * (or the owner's) last COORD_REPUTATION_WINDOW outcomes, with a Beta(4, 1) prior,
 *     score = (4 + completed) / (5 + outcomes)      in parts per million, rounded down
 * so a newcomer has 0.8, and every lost, timed-out, rejected or mismatched attempt lowers it.
 */
#define COORD_REPUTATION_WINDOW 50
#define COORD_REPUTATION_PPM INT64_C(1000000)

enum coord_outcome {
    COORD_OUTCOME_COMPLETED = 0, /* ran to its end (completed, or the buyer's code failed) */
    COORD_OUTCOME_LOST,          /* the worker went away with it */
    COORD_OUTCOME_TIMEOUT,       /* ran past timeout_seconds */
    COORD_OUTCOME_REJECTED,      /* the agent refused it or its sandbox could not start */
    COORD_OUTCOME_MISMATCH,      /* a replica result that disagreed with the majority */
    COORD_OUTCOME_COUNT
};
const char *coord_outcome_name(enum coord_outcome o);

/**
 * Record an outcome of @worker_id (owner as stored) for @job_id (may be NULL) and recompute the
 * worker's score in the same transaction (inside a batch or alone).  An unknown worker:
 * CO_E_NOTFOUND.
 */
int coord_store_outcome_record(struct coord_store *s, const char *worker_id, const char *job_id,
                               enum coord_outcome o, co_err *err)
    __attribute__((warn_unused_result));

/** Set a worker's market prices.  CO_E_NOTFOUND if unknown; @out (optional): the row after. */
int coord_store_worker_set_price(struct coord_store *s, const char *worker_id,
                                 const struct coord_rate *price, struct coord_worker *out,
                                 co_err *err) __attribute__((warn_unused_result));

/**
 * The workers not stored offline, by worker_id, with only worker_id, owner_id, price and
 * reputation filled (the scheduler's read of placement terms, once per pass).
 */
int coord_store_worker_terms(struct coord_store *s, struct coord_worker_list *out, co_err *err)
    __attribute__((warn_unused_result));

/** One day of a user's statement (UTC days). */
struct coord_statement_day {
    char day[11];   /* YYYY-MM-DD */
    int64_t spent;  /* charges of its jobs */
    int64_t earned; /* payouts of its workers */
    int64_t fees;   /* fees received (the platform) */
};
struct coord_statement {
    struct coord_statement_day *items; /* oldest first; caller frees (free()) */
    size_t len;
};

/**
 * Spending and earnings of @user_id per UTC day for the @days (1-366) days up to @now_ms, days
 * without movement included as zeros.  CO_E_NOTFOUND for an unknown user.
 */
int coord_store_statement(struct coord_store *s, const char *user_id, int64_t days, int64_t now_ms,
                          struct coord_statement *out, co_err *err)
    __attribute__((warn_unused_result));

/* ---- accounts, API keys, audit ---- */

/** A user as an identity (API.md "Accounts"): strings are owned (coord_account_release). */
struct coord_account {
    char user_id[CO_ID_MAX + 1];
    char *username; /* NULL when unset */
    char *email;    /* NULL when unset */
    bool is_admin;
    bool disabled;
    char *limits;    /* JSON object text of per-user limit overrides, "{}" when none */
    int64_t credits; /* available balance */
    int64_t held;
    int64_t created_at, updated_at;
};
void coord_account_release(struct coord_account *a);

struct coord_account_list {
    struct coord_account *items;
    size_t len;
};
void coord_account_list_release(struct coord_account_list *l);

/**
 * Create user @a->user_id with @a's username, email and is_admin (limits "{}"), granting it
 * @credits micro-credits (a grant ledger row when > 0; 0 is allowed).  CO_E_CONFLICT if the user
 * exists (also when it appeared as a buyer or owner before), CO_E_INVAL for a bad id.  @out
 * (optional) receives the stored row.
 */
int coord_store_account_create(struct coord_store *s, const struct coord_account *a,
                               int64_t credits, struct coord_account *out, co_err *err)
    __attribute__((warn_unused_result));

/** One user.  CO_E_NOTFOUND if unknown. */
int coord_store_account_get(struct coord_store *s, const char *user_id, struct coord_account *out,
                            co_err *err) __attribute__((warn_unused_result));

/** Users by user_id, at most @limit (1-1000) from @offset.  CO_E_RANGE for bad paging. */
int coord_store_account_list(struct coord_store *s, int64_t limit, int64_t offset,
                             struct coord_account_list *out, co_err *err)
    __attribute__((warn_unused_result));

/** What PATCH /users/{id} may change; -1 / NULL = leave as it is. */
struct coord_account_patch {
    int is_admin;       /* -1, 0, 1 */
    int disabled;       /* -1, 0, 1 */
    const char *limits; /* JSON object text (validated by the caller), NULL = keep */
};

/** Apply @p to @user_id.  CO_E_NOTFOUND if unknown.  @out (optional): the row after. */
int coord_store_account_patch(struct coord_store *s, const char *user_id,
                              const struct coord_account_patch *p, struct coord_account *out,
                              co_err *err) __attribute__((warn_unused_result));

/** An API key as listed (never its token or hash). */
struct coord_api_key {
    char key_id[CO_ID_MAX + 1];
    char user_id[CO_ID_MAX + 1];
    char name[128];
    unsigned scopes;                              /* COORD_SCOPE_* bits (coord_auth.h) */
    int64_t created_at, last_used_at, revoked_at; /* ms, 0 = null */
};

struct coord_api_key_list {
    struct coord_api_key *items;
    size_t len;
};
void coord_api_key_list_release(struct coord_api_key_list *l);

/**
 * Store key @k (key_id, user_id, name, scopes) with @token_hash (hex SHA-256 of its token; the
 * token itself is never stored).  Fills @k->created_at.  CO_E_NOTFOUND if the user is unknown,
 * CO_E_CONFLICT if the key id or the hash exists.
 */
int coord_store_key_create(struct coord_store *s, struct coord_api_key *k, const char *token_hash,
                           co_err *err) __attribute__((warn_unused_result));

/** The keys of @user_id that are not revoked, oldest first.  CO_E_NOTFOUND if the user is unknown.
 */
int coord_store_key_list(struct coord_store *s, const char *user_id, struct coord_api_key_list *out,
                         co_err *err) __attribute__((warn_unused_result));

/** One key, revoked or not.  CO_E_NOTFOUND if unknown. */
int coord_store_key_get(struct coord_store *s, const char *key_id, struct coord_api_key *out,
                        co_err *err) __attribute__((warn_unused_result));

/**
 * Revoke @key_id now.  CO_E_NOTFOUND if unknown or revoked already (nothing changes).  @out
 * (optional) receives the key after.
 */
int coord_store_key_revoke(struct coord_store *s, const char *key_id, struct coord_api_key *out,
                           co_err *err) __attribute__((warn_unused_result));

/** Who a key token belongs to (coord_store_key_lookup). */
struct coord_key_owner {
    char key_id[CO_ID_MAX + 1];
    char user_id[CO_ID_MAX + 1];
    unsigned scopes;    /* as stored */
    bool user_is_admin; /* the user's is_admin now */
    char limits[512];   /* the user's limit overrides (JSON object text; "{}" if too long) */
};

/**
 * Authentication: the key whose token hashes to @token_hash, if it is not revoked and its user
 * is not disabled (one indexed equality on the unique hash, joined to the user by its key).
 * Returns 1 and fills @out, or 0 when there is no such usable key.  last_used_at is written at
 * most once per @touch_ms per key (0 = never), so that authentication is not a write per request.
 */
int coord_store_key_lookup(struct coord_store *s, const char *token_hash, int64_t touch_ms,
                           struct coord_key_owner *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The database's query plan for the key lookup (EXPLAIN QUERY PLAN / EXPLAIN), one line per
 * step, for tests that assert it stays one indexed lookup.  Caller frees *@plan.
 */
int coord_store_key_lookup_plan(struct coord_store *s, char **plan, co_err *err)
    __attribute__((warn_unused_result));

/** An audit row: who did what to whom (API.md "GET /api/v1/audit"). */
struct coord_audit_row {
    int64_t id;
    int64_t at;
    char actor[CO_ID_MAX + 1];
    char action[48];
    char target[CO_ID_MAX + 1];
    char *detail; /* JSON object text */
};

struct coord_audit_list {
    struct coord_audit_row *items;
    size_t len;
};
void coord_audit_list_release(struct coord_audit_list *l);

/**
 * Append an audit row (@detail: JSON object text or NULL for "{}").  In a batch with the action
 * it records, so that both are committed together.
 */
int coord_store_audit_append(struct coord_store *s, const char *actor, const char *action,
                             const char *target, const char *detail, co_err *err)
    __attribute__((warn_unused_result));

/** Audit rows newest first, at most @limit (1-1000) from @offset. */
int coord_store_audit_list(struct coord_store *s, int64_t limit, int64_t offset,
                           struct coord_audit_list *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Like coord_store_job_submit(), but refused with CO_E_LIMIT (nothing stored) when the buyer
 * already has @max_pending pending jobs (counted in the same transaction; 0 = no cap).
 */
int coord_store_job_submit_capped(struct coord_store *s, struct coord_job *job, int64_t max_pending,
                                  co_err *err) __attribute__((warn_unused_result));

/* ---- system ---- */

/**
 * Counts for health and metrics: a worker is offline when stored so or silent for
 * worker_timeout_ms, else idle or busy as stored.
 */
int coord_store_health(struct coord_store *s, struct coord_health *out, co_err *err)
    __attribute__((warn_unused_result));

/* ---- idempotency keys (coord_idem) ---- */

/** What identifies one idempotent request (all borrowed). */
struct coord_idem_key {
    const char *credential; /* who asked (coord_idem_credential) */
    const char *method;     /* "POST" */
    const char *path;       /* the request path, without query */
    const char *key;        /* the Idempotency-Key header, 1-255 visible ASCII */
};

/** A stored first answer (caller-owned: coord_idem_answer_release). */
struct coord_idem_answer {
    char body_hash[80];
    int status; /* HTTP status of the first answer; 0 = reserved, not answered yet */
    char *response;
    size_t len;
};
void coord_idem_answer_release(struct coord_idem_answer *a);

/**
 * Reserve @k for a request whose body hashes to @body_hash, valid until @now_ms + @ttl_ms.  One
 * INSERT ... ON CONFLICT DO NOTHING: of two concurrent reservations exactly one wins (on
 * PostgreSQL the loser waits for the winner's transaction).  *@reserved true: the caller runs the
 * request and stores its answer with coord_store_idem_complete(), best in the same batch
 * transaction.  false: @prev receives the stored row (expired rows are replaced, not returned).
 */
int coord_store_idem_reserve(struct coord_store *s, const struct coord_idem_key *k,
                             const char *body_hash, int64_t now_ms, int64_t ttl_ms, bool *reserved,
                             struct coord_idem_answer *prev, co_err *err)
    __attribute__((warn_unused_result));

/** Store the first answer of reserved @k.  CO_E_NOTFOUND if it is not reserved. */
int coord_store_idem_complete(struct coord_store *s, const struct coord_idem_key *k, int status,
                              const char *response, size_t len, co_err *err)
    __attribute__((warn_unused_result));

/* ---- retention (coord_retention) ---- */

/** Rows one retention step changed. */
struct coord_retention_counts {
    int64_t job_code;      /* finished jobs whose code was removed */
    int64_t output_chunks; /* output chunk rows deleted */
    int64_t outputs;       /* job_output rows deleted */
    int64_t artifacts;     /* artifact rows deleted (sets, files and chunks, migration 0007) */
    int64_t workers;       /* workers silent since the cutoff, named by no job, deleted */
    int64_t idem_keys;     /* expired idempotency keys deleted */
    int64_t deliveries;    /* callback deliveries and attempts deleted (migration 0008) */
    int64_t outcomes;      /* worker_outcome rows no reputation window uses any more (0011) */
};

/**
 * One small retention transaction: for jobs finished before @cutoff_ms, remove at most @limit
 * rows of each kind (code, output, artifacts); delete at most @limit workers whose last heartbeat
 * is older than @cutoff_ms and that no job row names; delete at most @limit idempotency keys
 * expired at @now_ms; delete at most @limit worker_outcome rows older than both the last
 * COORD_REPUTATION_WINDOW outcomes of their worker and of their owner (whatever the cutoff: no
 * score reads them).  Job rows and the ledger stay.  Call again until every count is 0.
 */
int coord_store_retention_step(struct coord_store *s, int64_t cutoff_ms, int64_t now_ms,
                               int64_t limit, struct coord_retention_counts *c, co_err *err)
    __attribute__((warn_unused_result));

/* ---- scale-out: worker sessions across nodes (coord_node) ---- */

/**
 * An accepted hello of @worker_id on node @node_id: the worker's session is now this node's,
 * with a new epoch (the previous one + 1) returned in *@epoch.  @node_id "": a poll worker's
 * POST /register (a poll session, held by no node).  CO_E_NOTFOUND if unknown.
 */
int coord_store_worker_session_begin(struct coord_store *s, const char *worker_id,
                                     const char *node_id, int64_t *epoch, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The node and epoch of @worker_id's current session; @lock: the worker's row stays locked until
 * the transaction ends (PostgreSQL FOR UPDATE), so that no hello moves the session meanwhile.
 * CO_E_NOTFOUND if unknown.
 */
int coord_store_worker_session_get(struct coord_store *s, const char *worker_id, bool lock,
                                   char *node_id, size_t node_size, int64_t *epoch, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Inside the reaper's transaction: 1 when this node may reap now (PostgreSQL: a transaction-level
 * advisory lock, released at commit, that at most one node holds), 0 when another node does.
 * SQLite: always 1.
 */
int coord_store_reaper_lock(struct coord_store *s, co_err *err) __attribute__((warn_unused_result));

/** The database's clock in ms since the epoch (leases are judged by it). */
int coord_store_now_ms(struct coord_store *s, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

#endif
