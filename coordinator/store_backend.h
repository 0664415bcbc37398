/*
 * store_backend: the private interface between the store's logic (store.c, written once for both
 * databases so that they behave the same) and its two drivers (store_sqlite.c, store_pg.c).
 *
 * A driver knows how to open a connection, run one of the named statements of store_sql[] with
 * bound parameters, walk its rows, and run transactions.  Statements are written once with $1..$N
 * placeholders; the SQLite driver rewrites them to ?1..?N, the PostgreSQL driver appends the row
 * lock clause (`lock`) and uses the `pg` variant when one is given.  Every statement is prepared
 * once per connection and cached.
 *
 * Thread: the database thread that owns the store; a driver's state belongs to its struct
 * coord_store, from coord_store_open() to coord_store_close().
 */
#ifndef COORD_STORE_BACKEND_H
#define COORD_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord_store.h"

/* The statements the logic runs; their text is in store_sql[] (store.c). */
enum store_q {
    Q_PING = 0,
    Q_MIG_LOCK,
    Q_MIG_MAX,
    Q_MIG_HAS,
    Q_MIG_INSERT,
    Q_USER_INSERT,
    Q_USER_GET,
    Q_USER_LOCK,
    Q_USERS_LOCK,
    Q_USER_ADD,
    Q_LEDGER_INSERT,
    Q_MONEY_MOVE_PG,
    Q_LEDGER_LIST,
    Q_ACC_INSERT,
    Q_ACC_GET,
    Q_ACC_LIST,
    Q_ACC_PATCH,
    Q_KEY_INSERT,
    Q_KEY_LIST,
    Q_KEY_GET,
    Q_KEY_REVOKE,
    Q_KEY_LOOKUP,
    Q_KEY_LOOKUP_PLAN,
    Q_KEY_TOUCH,
    Q_AUDIT_INSERT,
    Q_AUDIT_LIST,
    Q_JOB_PENDING_OF,
    Q_JOB_LIST_CODE,
    Q_JOB_INSERT,
    Q_JOB_GET,
    Q_JOB_GET_NOCODE,
    Q_JOB_LOCK,
    Q_JOB_LIST,
    Q_JOB_PENDING,
    Q_JOB_PENDING_FIT,
    Q_JOB_NEXT_FIT,
    Q_JOB_ASSIGN,
    Q_JOB_SET_RUNNING,
    Q_JOB_FINISH,
    Q_JOB_REQUEUE,
    Q_JOB_OF_WORKER,
    Q_JOB_ACTIVE,
    Q_JOB_POLL_UNSTARTED,
    Q_JOB_REQUEUE_FREE,
    Q_WORKER_CREATE_LOCK,
    Q_WORKER_LOCK,
    Q_WORKER_GET,
    Q_WORKER_GET_CLAIM,
    Q_WORKER_LIST,
    Q_WORKER_INSERT,
    Q_WORKER_UPDATE,
    Q_WORKER_COUNT_ONLINE,
    Q_WORKER_HEARTBEAT,
    Q_WORKER_HEARTBEAT_MANY,
    Q_WORKER_SET_STATUS,
    Q_WORKER_EXPIRED,
    Q_WORKER_OWNER,
    /* Pricing and reputation (migration 0011). */
    Q_JOB_SET_CHARGED,
    Q_OUTCOME_INSERT,
    Q_WORKER_REPUTE,
    Q_WORKER_REPUTE_TRY,
    Q_WORKER_SET_PRICE,
    Q_WORKER_TERMS,
    Q_STATEMENT,
    Q_OUTPUT_LEN,
    Q_OUTPUT_INSERT,
    Q_OUTPUT_SET_OUT,
    Q_OUTPUT_SET_ERR,
    Q_OUTPUT_CHUNK,
    Q_OUTPUT_GET,
    Q_OUTPUT_CHUNKS,
    Q_OUTPUT_CLEAR,
    Q_OUTPUT_CLEAR_CHUNKS,
    Q_JOB_FENCE,
    Q_H_JOBS,
    Q_H_WORKERS,
    Q_H_USERS,
    Q_H_UNFIT,
    Q_INV_TOTALS,
    Q_INV_LEDGER,
    Q_INV_HELD,
    Q_INV_SETTLED,
    /* max_running_jobs (coord_store_job_pending_capped) */
    Q_BUYERS_RUNNING,
    Q_BUYER_CAPS,
    Q_JOB_PENDING_EXCEPT,
    Q_IDEM_EXPIRE,
    Q_IDEM_INSERT,
    Q_IDEM_GET,
    Q_IDEM_SET,
    Q_RET_CODE,
    Q_RET_CHUNKS,
    Q_RET_OUTPUT,
    Q_RET_WORKERS,
    Q_RET_IDEM,
    Q_RET_ART_SETS,
    Q_RET_ART_FILES,
    Q_RET_ART_CHUNKS,
    /* output artifacts (store.c, "artifacts") */
    Q_ART_DROP_OLD_CHUNKS,
    Q_ART_DROP_OLD_FILES,
    Q_ART_DROP_SET,
    Q_ART_FILE_INSERT,
    Q_ART_FILE_SIZE,
    Q_ART_CHUNK_INSERT,
    Q_ART_FILE_GROW,
    Q_ART_FILE_CHUNKS,
    Q_ART_FILE_SHA,
    Q_ART_ATTEMPT_BYTES,
    Q_ART_SET_INSERT,
    Q_ART_SET_GET,
    Q_ART_LIST,
    /* scale-out: worker sessions, the reaper's lock, database time (coord_node) */
    Q_WORKER_SESSION_BEGIN,
    Q_WORKER_SESSION_GET,
    Q_WORKER_SESSION_LOCK,
    Q_REAPER_LOCK,
    Q_DB_NOW,
    /* replicas (coord_verify.c; text in coord_verify_sql.h) */
    Q_VER_SPAWN,
    Q_VER_REPLICA_INSERT,
    Q_VER_SET_REPLICAS,
    Q_VER_OWNER_ADD,
    Q_VER_REPLICA_CLAIMED,
    Q_VER_PARENT_RUNNING,
    Q_VER_REPLICA_RESULT,
    Q_VER_REPLICAS,
    Q_VER_OUTCOME,
    Q_VER_COPY_OUTPUT,
    Q_VER_COPY_CHUNKS,
    Q_VER_COPY_ART,
    Q_VER_COPY_ART_CHUNKS,
    Q_VER_COPY_ART_SET,
    Q_VER_OWNERS,
    Q_VER_WAITING,
    Q_VER_LOCK_OPEN,
    Q_VER_CHILDREN,
    Q_VER_INV_PARENT,
    Q_VER_INV_CHILD,
    /* completion callbacks (store.c, "callbacks"; coord_webhook.h) */
    Q_WH_INSERT,
    Q_WH_QUEUE,
    Q_WH_DUE,
    Q_WH_LEASE,
    Q_WH_SECRET_GET,
    Q_WH_SECRET_SET,
    Q_WH_ATTEMPT_INSERT,
    Q_WH_UPDATE,
    Q_WH_GET,
    Q_WH_ATTEMPTS,
    Q_RET_WH_ATTEMPTS,
    Q_RET_WH_DELIVERIES,
    Q_RET_OUTCOMES,
    Q_JOB_CLAIM_PG,
    Q_JOB_SETTLE_PG,
    Q_COUNT
};

enum store_lock {
    STORE_LOCK_NONE = 0,
    STORE_LOCK_UPDATE,     /* PostgreSQL: FOR UPDATE */
    STORE_LOCK_SKIP_LOCKED /* PostgreSQL: FOR UPDATE SKIP LOCKED */
};

struct store_sql {
    const char *sql;      /* both backends, $N placeholders */
    const char *pg;       /* PostgreSQL text when it differs, else NULL */
    const char *sqlite;   /* SQLite text when it differs, else NULL */
    enum store_lock lock; /* row lock clause appended on PostgreSQL */
};

/** The statement table, indexed by enum store_q. */
extern const struct store_sql store_sql[Q_COUNT];

enum db_type { DB_NULL = 0, DB_INT, DB_TEXT, DB_BLOB };

/** One bound parameter; text and blobs are borrowed for the duration of the call. */
struct db_param {
    enum db_type type;
    int64_t i;
    const void *p;
    size_t len; /* blobs only */
};

#define P_INT(v) ((struct db_param){DB_INT, (int64_t)(v), NULL, 0})
#define P_TEXT(s) ((struct db_param){(s) ? DB_TEXT : DB_NULL, 0, (s), 0})
#define P_BLOB(d, n) ((struct db_param){DB_BLOB, 0, (d), (n)})
#define P_NULL ((struct db_param){DB_NULL, 0, NULL, 0})

/** The rows of one statement run; driver-specific fields are opaque to the logic. */
struct db_res {
    struct coord_store *s;
    void *h;         /* sqlite3_stmt * or PGresult * */
    void *tmp;       /* PostgreSQL: the last unescaped bytea */
    int row;         /* PostgreSQL: current row, -1 before the first */
    int nrows;       /* PostgreSQL: rows in the result */
    bool primed;     /* SQLite: a row was stepped to by query() and not yet returned */
    bool done;       /* SQLite: no more rows */
    int64_t changes; /* rows changed by an INSERT/UPDATE/DELETE */
};

/* The savepoint of one store call inside a batch transaction. */
enum store_sp { STORE_SP_SET = 0, STORE_SP_RELEASE, STORE_SP_ROLLBACK };

/* Its SQL, the same on both databases. */
extern const char *const store_sp_sql[3];

struct store_ops {
    const char *name; /* "sqlite" or "postgres", also the sql/ sub-folder */
    void (*close)(struct coord_store *s);
    /** Start a transaction: @write takes the write lock at once (SQLite BEGIN IMMEDIATE). */
    int (*begin)(struct coord_store *s, bool write, co_err *err);
    int (*commit)(struct coord_store *s, co_err *err);
    void (*rollback)(struct coord_store *s);
    /** Run statement @q with @n parameters; rows are then read with next(). */
    int (*query)(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
                 struct db_res *r, co_err *err);
    /** 1 when positioned on a row, 0 at the end, -1 on error. */
    int (*next)(struct db_res *r, co_err *err);
    bool (*col_null)(struct db_res *r, int c);
    int64_t (*col_int)(struct db_res *r, int c);
    /** Text of a column ("" for NULL), valid until the next next()/done(). */
    const char *(*col_text)(struct db_res *r, int c);
    /** Bytes of a blob column, valid until the next col_blob()/next()/done(). */
    const void *(*col_blob)(struct db_res *r, int c, size_t *len);
    void (*done)(struct db_res *r);
    /** Run a script of several statements without parameters (migrations). */
    int (*exec_script)(struct coord_store *s, const char *sql, co_err *err);
    /** Inside a transaction: set, release or roll back to the savepoint of one store call. */
    int (*savepoint)(struct coord_store *s, enum store_sp op, co_err *err);
    /** 1 when a transaction is open and usable, 0 when none is open, -1 when it failed. */
    int (*tx_state)(struct coord_store *s);
    /*
     * True when a failing statement aborts the whole transaction (PostgreSQL): a store call
     * made without a transaction of its own then gets a savepoint of its own inside a batch.
     */
    bool error_aborts_tx;
    /** DEBUG_FAULTS (coord_fault): break the connection as a lost reply does; NULL: no-op. */
    void (*lose_connection)(struct coord_store *s);
    /*
     * Optional (NULL: not offered): query() as the last statement of the open transaction, with
     * its COMMIT sent in the same round trip, so that the transaction's row locks are released
     * without waiting for the client.  The next commit() returns the COMMIT's outcome; when the
     * statement fails, nothing was committed and the transaction is rolled back as usual.
     */
    int (*query_last)(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
                      struct db_res *r, co_err *err);
};

/** The part of every store that the logic sees; drivers embed it first. */
struct coord_store {
    const struct store_ops *ops;
    struct coord_store_config cfg; /* cfg.url points to url */
    char *url;
    bool batch;        /* a batch transaction is open: store calls run in savepoints */
    bool in_call;      /* inside a batch, a store call's savepoint is set */
    int batch_depth;   /* batches begun inside the open batch (each a savepoint) */
    unsigned fault_tx; /* DEBUG_FAULTS: coord_fault_tx kinds of the open transaction */
};

/** Open a SQLite database file at @path (created if missing). */
int store_sqlite_open(const char *path, struct coord_store **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Connect to PostgreSQL with the libpq connection string or URI @conninfo.  @node_id (NULL or
 * hex) becomes the session's `cacheout.node`, the origin of the change-feed rows its
 * transactions write (migration 0013).
 */
int store_pg_open(const char *conninfo, const char *node_id, struct coord_store **out, co_err *err)
    __attribute__((warn_unused_result));

#endif
