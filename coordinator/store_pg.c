/*
 * store_pg.c: the PostgreSQL driver of coord_store (libpq).  One connection per store, statements
 * prepared once per connection (PQprepare) and run with PQexecPrepared: values are always bound,
 * never written into SQL text.  Transactions run at READ COMMITTED with explicit row locks
 * (SELECT ... FOR UPDATE, SKIP LOCKED for the poll queue) and conditional UPDATEs, so concurrent
 * coordinators serialize on the rows they touch; read snapshots use REPEATABLE READ.
 *
 * Reconnection: when the server goes away, the failing call returns CO_E_UNAVAILABLE (its
 * transaction was not committed, so nothing was written) and the next call resets the
 * connection with PQreset before doing anything.
 *
 * Thread: the database thread that owns the store.  The connection and its prepared statements
 * live from coord_store_open() to coord_store_close().
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "store_backend.h"

/* How long the server lets a transaction of ours sit idle before it ends the session (ms). */
#define STORE_PG_IDLE_TX_TIMEOUT "15000"

/* Commands a transaction can owe before its next statement: BEGIN, RELEASE, SAVEPOINT. */
#define PG_DUE_MAX 4

struct store_pg {
    struct coord_store base; /* first: the logic casts between the two */
    PGconn *conn;
    bool prepared[Q_COUNT];
    bool in_tx;
    /*
     * A RELEASE SAVEPOINT not sent yet: it goes with the next savepoint command (one round trip
     * for "RELEASE ...; SAVEPOINT ..." between two store calls of a batch), and the COMMIT
     * releases it by itself.
     */
    bool release_due;
    /*
     * Commands without parameters not sent yet (BEGIN, SAVEPOINT, RELEASE SAVEPOINT): they go
     * in one pipeline with the next statement, or in one simple query with the next command
     * (pg_flush_with), so that a transaction's start and a store call's savepoint cost no round
     * trip of their own.  begin_due: the first of them is the BEGIN, nothing of this transaction
     * reached the server yet (a dead connection can still be replaced, as before a BEGIN).
     */
    const char *due[PG_DUE_MAX];
    int n_due;
    bool begin_due;
    /*
     * pg_query_last: the COMMIT went with the transaction's last statement; commit_err is its
     * outcome (code 0: committed), which pg_commit returns.
     */
    bool commit_sent;
    co_err commit_err;
};

static struct store_pg *
pgs(struct coord_store *s)
{
    return (struct store_pg *)s;
}

static bool
pg_conn_bad(struct store_pg *p)
{
    return PQstatus(p->conn) != CONNECTION_OK;
}

/* Map a failed result (or a dead connection) to a co_err code and message. */
static int
pg_err(struct store_pg *p, PGresult *res, const char *what, co_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    enum co_errcode code = CO_E_INTERNAL;

    if (!msg || !*msg)
        msg = PQerrorMessage(p->conn);
    /*
     * The store's own functions (migration 0017) say why a step was refused with SQLSTATEs of
     * class CO: CO404 not found, CO409 conflict, else internal; their message is the store's.
     */
    const char *own = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (state && own && strncmp(state, "CO", 2) == 0 && !pg_conn_bad(p)) {
        code = strcmp(state, "CO404") == 0   ? CO_E_NOTFOUND
               : strcmp(state, "CO409") == 0 ? CO_E_CONFLICT
                                             : CO_E_INTERNAL;
        return co_err_set(err, code, "%s", own);
    }
    if (pg_conn_bad(p) || !state)
        code = CO_E_UNAVAILABLE;
    else if (strcmp(state, "23505") == 0)
        code = CO_E_CONFLICT;
    else if (strcmp(state, "23503") == 0)
        code = CO_E_NOTFOUND;
    else if (strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0 ||
             strcmp(state, "22003") == 0)
        code = CO_E_INVAL;
    else if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
             strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
             strncmp(state, "53", 2) == 0)
        code = CO_E_UNAVAILABLE; /* connection lost, shutdown, conflicts: retry later */
    /* libpq messages end with a newline; keep the first line only. */
    size_t len = strcspn(msg, "\n");
    return co_err_set(err, code, "postgres: %s: %.*s", what, (int)len, msg);
}

/* Before a transaction or a lone statement: bring a dropped connection back. */
static int
pg_ensure(struct store_pg *p, co_err *err)
{
    /*
     * An idle connection learns that the server went away (a restart sends a FATAL message and
     * closes) only by reading: a non-blocking read here finds out before anything is sent.
     */
    bool sent = p->in_tx && !p->begin_due; /* a transaction the server knows of */
    if (!sent && !pg_conn_bad(p))
        (void)PQconsumeInput(p->conn);
    if (!pg_conn_bad(p))
        return 0;
    if (sent)
        return pg_err(p, NULL, "connection lost in a transaction", err);
    PQreset(p->conn);
    memset(p->prepared, 0, sizeof(p->prepared));
    if (pg_conn_bad(p))
        return pg_err(p, NULL, "reconnect", err);
    return 0;
}

/* Forget the commands not sent (the transaction ends, or its connection is gone). */
static void
pg_due_clear(struct store_pg *p)
{
    p->n_due = 0;
    p->begin_due = false;
}

static void
pg_due_add(struct store_pg *p, const char *sql)
{
    p->due[p->n_due++] = sql;
}

/*
 * Run a command without parameters (COMMIT, savepoints, scripts), after the commands still due,
 * all in one simple query (one round trip; the server runs them in order and stops at the
 * first that fails).
 */
static int
pg_command(struct store_pg *p, const char *sql, const char *what, co_err *err)
{
    co_autofree char *all = NULL;
    if (p->n_due > 0) {
        struct co_buf b = CO_BUF_INIT;
        for (int i = 0; i < p->n_due; i++) {
            co_buf_append(&b, p->due[i], strlen(p->due[i]));
            co_buf_append(&b, "; ", 2);
        }
        co_buf_append(&b, sql, strlen(sql) + 1);
        all = co_buf_steal(&b, NULL);
        sql = all;
        pg_due_clear(p);
    }
    PGresult *res = PQexec(p->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_err(p, res, what, err);
    PQclear(res);
    return rc;
}

/* @sql is due: sent with the next statement or command (now when too many are due). */
static int
pg_due_push(struct store_pg *p, const char *sql, co_err *err)
{
    if (p->n_due == PG_DUE_MAX)
        return pg_command(p, sql, "savepoint", err);
    pg_due_add(p, sql);
    return 0;
}

static void
pg_close(struct coord_store *s)
{
    struct store_pg *p = pgs(s);
    PQfinish(p->conn);
    free(p);
}

static int
pg_begin(struct coord_store *s, bool write, co_err *err)
{
    struct store_pg *p = pgs(s);
    const char *sql = write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

    p->in_tx = false;
    p->release_due = false;
    pg_due_clear(p);
    if (pg_ensure(p, err) < 0)
        return -1;
    /* Sent with the transaction's first statement (pg_query_once) or command (pg_command). */
    pg_due_add(p, sql);
    p->begin_due = true;
    p->in_tx = true;
    return 0;
}

static int
pg_commit(struct coord_store *s, co_err *err)
{
    struct store_pg *p = pgs(s);
    p->release_due = false; /* the COMMIT releases every savepoint */
    if (p->commit_sent) {
        p->commit_sent = false;
        p->in_tx = false;
        if (p->commit_err.code == CO_OK)
            return 0;
        if (err)
            *err = p->commit_err;
        return -1;
    }
    if (p->begin_due) {
        /* Nothing was sent: there is nothing to commit. */
        pg_due_clear(p);
        p->in_tx = false;
        return 0;
    }
    int rc = pg_command(p, "COMMIT", "commit", err);
    if (rc == 0)
        p->in_tx = false;
    return rc;
}

/*
 * DEBUG_FAULTS commit_lost: the socket is shut down, as when the network drops after the server
 * committed; libpq notices on its next read and the next call reconnects (pg_ensure).
 */
static void
pg_lose_connection(struct coord_store *s)
{
    struct store_pg *p = pgs(s);
    p->in_tx = false;
    p->release_due = false;
    p->commit_sent = false;
    pg_due_clear(p);
    int fd = PQsocket(p->conn);
    if (fd >= 0)
        (void)shutdown(fd, SHUT_RDWR);
    (void)PQconsumeInput(p->conn);
}

static void
pg_rollback(struct coord_store *s)
{
    struct store_pg *p = pgs(s);
    bool sent = !p->begin_due && !p->commit_sent; /* a COMMIT sent ended the transaction */
    p->commit_sent = false;
    pg_due_clear(p); /* what was not sent needs no undoing */
    if (p->in_tx && sent && !pg_conn_bad(p)) {
        PGresult *res = PQexec(p->conn, "ROLLBACK");
        PQclear(res);
    }
    p->in_tx = false;
    p->release_due = false;
}

static int
pg_prepare(struct store_pg *p, enum store_q q, const char *name, co_err *err)
{
    if (p->prepared[q])
        return 0;
    static const char *const lock_clause[] = {"", " FOR NO KEY UPDATE",
                                              " FOR NO KEY UPDATE SKIP LOCKED"};
    const char *text = store_sql[q].pg ? store_sql[q].pg : store_sql[q].sql;
    co_autofree char *sql = co_xasprintf("%s%s", text, lock_clause[store_sql[q].lock]);
    PGresult *res = PQprepare(p->conn, name, sql, 0, NULL);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_err(p, res, "prepare statement", err);
    else
        p->prepared[q] = true;
    PQclear(res);
    return rc;
}

#define PG_MAX_PARAMS 24

/*
 * The commands due (BEGIN, savepoints), then prepared statement @name, in one pipeline: one
 * round trip.  Returns the statement's result, or the first failing command's (the server
 * skips what follows a failure up to the pipeline's end).  NULL when nothing came back.
 */
static PGresult *
pg_exec_pipelined(struct store_pg *p, const char *name, int n, const char *const *values,
                  const int *lengths, const int *formats, const char *after, PGresult **after_res)
{
    PGconn *c = p->conn;
    int n_cmds = p->n_due;
    bool sent = PQenterPipelineMode(c) == 1;
    for (int i = 0; sent && i < n_cmds; i++)
        sent = PQsendQueryParams(c, p->due[i], 0, NULL, NULL, NULL, NULL, 0) == 1;
    sent = sent && PQsendQueryPrepared(c, name, n, values, lengths, formats, 0) == 1;
    if (after)
        sent = sent && PQsendQueryParams(c, after, 0, NULL, NULL, NULL, NULL, 0) == 1;
    sent = sent && PQpipelineSync(c) == 1;
    pg_due_clear(p);
    PGresult *failed = NULL, *out = NULL;
    /*
     * Each command's result, then the statement's (then @after's), each followed by a NULL;
     * then the sync.
     */
    for (int i = 0; sent && i <= n_cmds + (after ? 1 : 0); i++) {
        PGresult *r = PQgetResult(c);
        if (!r)
            break;
        PGresult *end;
        while ((end = PQgetResult(c)) != NULL) /* only a NULL is expected here */
            PQclear(end);
        ExecStatusType st = PQresultStatus(r);
        if (i == n_cmds) {
            out = r;
        } else if (i > n_cmds) {
            *after_res = r;
        } else if (!failed && st != PGRES_COMMAND_OK) {
            failed = r;
        } else {
            PQclear(r);
        }
    }
    if (sent) {
        PGresult *sync;
        while ((sync = PQgetResult(c)) != NULL) {
            bool done = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
            PQclear(sync);
            if (done)
                break;
        }
    }
    (void)PQexitPipelineMode(c);
    if (failed) {
        PQclear(out);
        return failed;
    }
    return out;
}

static int
pg_query_once(struct store_pg *p, enum store_q q, const struct db_param *prm, int n,
              struct db_res *r, const char *after, PGresult **after_res, co_err *err)
{
    char name[16];
    char ints[PG_MAX_PARAMS][24];
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS], formats[PG_MAX_PARAMS];

    if (n > PG_MAX_PARAMS)
        return co_err_set(err, CO_E_INTERNAL, "statement %d has too many parameters", (int)q);
    if (pg_ensure(p, err) < 0)
        return -1;
    snprintf(name, sizeof(name), "q%d", (int)q);
    if (pg_prepare(p, q, name, err) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        lengths[i] = 0;
        formats[i] = 0;
        switch (prm[i].type) {
        case DB_NULL:
            values[i] = NULL;
            break;
        case DB_INT:
            snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)prm[i].i);
            values[i] = ints[i];
            break;
        case DB_TEXT:
            values[i] = prm[i].p;
            break;
        case DB_BLOB:
            values[i] = prm[i].p ? prm[i].p : "";
            lengths[i] = (int)prm[i].len;
            formats[i] = 1; /* binary: bytea takes the bytes as they are */
            break;
        }
    }
    PGresult *res = p->n_due || after
                        ? pg_exec_pipelined(p, name, n, values, lengths, formats, after, after_res)
                        : PQexecPrepared(p->conn, name, n, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        pg_err(p, res, "run statement", err);
        PQclear(res);
        return -1;
    }
    r->h = res;
    r->row = -1;
    r->nrows = PQntuples(res);
    const char *tuples = PQcmdTuples(res);
    r->changes = *tuples ? strtoll(tuples, NULL, 10) : 0;
    return 0;
}

static int
pg_query(struct coord_store *s, enum store_q q, const struct db_param *prm, int n, struct db_res *r,
         co_err *err)
{
    struct store_pg *p = pgs(s);
    bool first = p->begin_due;
    int n_due = p->n_due;
    const char *due[PG_DUE_MAX];
    memcpy(due, p->due, sizeof(due));
    if (pg_query_once(p, q, prm, n, r, NULL, NULL, err) == 0)
        return 0;
    /*
     * Outside a transaction every statement the store runs is a read or an idempotent update
     * (heartbeat, status), so one that met a connection that had died meanwhile can be sent
     * again on a fresh one; so can a transaction's first statement, sent with its BEGIN (the
     * server may have restarted since the last call: the connection only notices now).  Inside
     * a transaction the caller gets CO_E_UNAVAILABLE and rolls back.
     */
    if ((p->in_tx && !first) || !pg_conn_bad(p))
        return -1;
    if (first) {
        memcpy(p->due, due, sizeof(due));
        p->n_due = n_due;
        p->begin_due = true;
    }
    return pg_query_once(p, q, prm, n, r, NULL, NULL, err);
}

/*
 * The transaction's last statement and its COMMIT in one pipeline: the row locks it holds are
 * released by the server as soon as the statement is done, not one client round trip later.
 */
static int
pg_query_last(struct coord_store *s, enum store_q q, const struct db_param *prm, int n,
              struct db_res *r, co_err *err)
{
    struct store_pg *p = pgs(s);
    PGresult *cres = NULL;
    if (!p->in_tx)
        return pg_query(s, q, prm, n, r, err);
    if (pg_query_once(p, q, prm, n, r, "COMMIT", &cres, err) < 0) {
        PQclear(cres); /* not run: the statement failed, the transaction is rolled back */
        return -1;
    }
    p->commit_sent = true;
    co_err_clear(&p->commit_err);
    if (PQresultStatus(cres) != PGRES_COMMAND_OK)
        pg_err(p, cres, "commit", &p->commit_err);
    PQclear(cres);
    return 0;
}

static int
pg_next(struct db_res *r, co_err *err)
{
    (void)err;
    if (r->tmp) {
        PQfreemem(r->tmp);
        r->tmp = NULL;
    }
    if (r->row + 1 >= r->nrows)
        return 0;
    r->row++;
    return 1;
}

static bool
pg_col_null(struct db_res *r, int c)
{
    return PQgetisnull(r->h, r->row, c) != 0;
}

static int64_t
pg_col_int(struct db_res *r, int c)
{
    if (PQgetisnull(r->h, r->row, c))
        return 0;
    return strtoll(PQgetvalue(r->h, r->row, c), NULL, 10);
}

static const char *
pg_col_text(struct db_res *r, int c)
{
    return PQgetvalue(r->h, r->row, c);
}

static const void *
pg_col_blob(struct db_res *r, int c, size_t *len)
{
    if (r->tmp) {
        PQfreemem(r->tmp);
        r->tmp = NULL;
    }
    *len = 0;
    if (PQgetisnull(r->h, r->row, c))
        return "";
    r->tmp = PQunescapeBytea((const unsigned char *)PQgetvalue(r->h, r->row, c), len);
    if (!r->tmp) {
        fprintf(stderr, "out of memory unescaping bytea\n");
        abort();
    }
    return r->tmp;
}

static void
pg_done(struct db_res *r)
{
    if (r->tmp)
        PQfreemem(r->tmp);
    r->tmp = NULL;
    PQclear(r->h);
    r->h = NULL;
}

static int
pg_exec_script(struct coord_store *s, const char *sql, co_err *err)
{
    struct store_pg *p = pgs(s);
    if (pg_ensure(p, err) < 0)
        return -1;
    return pg_command(p, sql, "run script", err);
}

static int
pg_savepoint(struct coord_store *s, enum store_sp op, co_err *err)
{
    struct store_pg *p = pgs(s);
    if (pg_conn_bad(p))
        return pg_err(p, NULL, "connection lost in a transaction", err);
    bool due = p->release_due;
    p->release_due = false;
    /* Two releases in a row (a call's, then a nested batch's): the first one is due now. */
    if (due && pg_due_push(p, store_sp_sql[STORE_SP_RELEASE], err) < 0)
        return -1;
    if (op == STORE_SP_RELEASE) {
        p->release_due = true;
        return 0;
    }
    /* A savepoint goes with the next statement; a rollback to one is sent now. */
    if (op == STORE_SP_SET)
        return pg_due_push(p, store_sp_sql[op], err);
    return pg_command(p, store_sp_sql[op], "savepoint", err);
}

static int
pg_tx_state(struct coord_store *s)
{
    struct store_pg *p = pgs(s);
    if (p->begin_due)
        return pg_conn_bad(p) ? -1 : 1; /* open, its BEGIN not sent yet */
    switch (PQtransactionStatus(p->conn)) {
    case PQTRANS_INTRANS:
        return 1;
    case PQTRANS_IDLE:
        return 0;
    default:
        return -1; /* failed, busy or the connection is gone */
    }
}

static const struct store_ops pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .lose_connection = pg_lose_connection,
    .query = pg_query,
    .next = pg_next,
    .col_null = pg_col_null,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .done = pg_done,
    .exec_script = pg_exec_script,
    .savepoint = pg_savepoint,
    .tx_state = pg_tx_state,
    .error_aborts_tx = true,
    .query_last = pg_query_last,
};

static void
pg_notice_quiet(void *arg, const char *message)
{
    /* NOTICEs ("relation already exists, skipping") are not errors; keep stderr clean. */
    (void)arg;
    (void)message;
}

int
store_pg_open(const char *conninfo, const char *node_id, struct coord_store **out, co_err *err)
{
    struct store_pg *p = co_xcalloc(1, sizeof(*p));
    p->base.ops = &pg_ops;
    /*
     * Defaults that a dead server or network cannot turn into a hang; the URL's own settings,
     * expanded from "dbname" after them, win.
     */
    static const char *const keys[] = {"connect_timeout",  "keepalives",
                                       "keepalives_idle",  "keepalives_interval",
                                       "keepalives_count", "tcp_user_timeout",
                                       "application_name", "options",
                                       "dbname",           NULL};
    /*
     * A transaction left open by a node cut off from the server (a partition: nothing closes,
     * nothing arrives) is ended by the server, so that its row and advisory locks (the reaper's
     * turn) do not stop the other nodes.  cacheout.node: the origin of the change-feed rows
     * this session's transactions write (migration 0013's triggers).
     */
    char options[160];
    bool node_ok = node_id && node_id[0] && strspn(node_id, "0123456789abcdef") == strlen(node_id);
    snprintf(options, sizeof(options),
             "-c idle_in_transaction_session_timeout=" STORE_PG_IDLE_TX_TIMEOUT "%s%.64s",
             node_ok ? " -c cacheout.node=" : "", node_ok ? node_id : "");
    const char *const values[] = {
        "5", "1", "30", "10", "3", "30000", "cacheout-coordinator", options, conninfo, NULL};
    p->conn = PQconnectdbParams(keys, values, 1);
    if (!p->conn) {
        free(p);
        return co_err_set(err, CO_E_UNAVAILABLE, "cannot connect to postgres: out of memory");
    }
    if (pg_conn_bad(p)) {
        const char *msg = PQerrorMessage(p->conn);
        co_err_set(err, CO_E_UNAVAILABLE, "cannot connect to postgres: %.*s",
                   (int)strcspn(msg, "\n"), msg);
        pg_close(&p->base);
        return -1;
    }
    PQsetNoticeProcessor(p->conn, pg_notice_quiet, NULL);
    *out = &p->base;
    return 0;
}
