/*
 * store_sqlite.c: the SQLite driver of coord_store.  One connection per store; WAL with
 * synchronous=NORMAL (a commit survives a crash of the process, which is what "no acknowledged job
 * lost" needs), a busy timeout so that concurrent writers wait instead of failing, foreign keys
 * on.  Write transactions start with BEGIN IMMEDIATE: the write lock is taken at once, so two
 * connections never both read and then fail to upgrade (SQLITE_BUSY that no timeout can cure).
 *
 * CPU per job (bench/README.md, "Sixth wave"): temporary tables and indexes in memory (with the
 * default, file, a statement that needed one created, wrote and unlinked a file in the temporary
 * folder: 10-15% of the coordinator's CPU under load); a larger page cache; checkpoints every
 * 4000 pages of WAL rather than 1000 (a page changed by many commits is written back and synced
 * once).  No memory map of the database: as the file grows every connection maps it again (a TLB
 * shoot-down each time), which cost as much as the reads it saved, and an I/O error would become
 * a SIGBUS instead of an error.  None of these touch durability: that is the WAL and
 * synchronous=NORMAL.
 *
 * Thread: the database thread that owns the store.  The connection and its cached statements
 * live from coord_store_open() to coord_store_close().
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "store_backend.h"

#define SQLITE_BUSY_TIMEOUT_MS 10000

struct store_sqlite {
    struct coord_store base; /* first: the logic casts between the two */
    sqlite3 *db;
    sqlite3_stmt *stmts[Q_COUNT];
    sqlite3_stmt *sp[3]; /* SAVEPOINT, RELEASE, ROLLBACK TO: prepared once */
    bool in_tx;
};

static struct store_sqlite *
lite(struct coord_store *s)
{
    return (struct store_sqlite *)s;
}

/* Map a SQLite result code to a co_err code: what the caller may answer. */
static enum co_errcode
lite_code(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return CO_E_CONFLICT;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return CO_E_NOTFOUND;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        return CO_E_INVAL;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
        return CO_E_UNAVAILABLE;
    default:
        return CO_E_INTERNAL;
    }
}

static int
lite_err(struct store_sqlite *l, int rc, const char *what, co_err *err)
{
    return co_err_set(err, lite_code(rc), "sqlite: %s: %s", what,
                      l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
}

static int
lite_exec(struct store_sqlite *l, const char *sql, co_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        co_err_set(err, lite_code(sqlite3_extended_errcode(l->db)), "sqlite: %s",
                   msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void
lite_close(struct coord_store *s)
{
    struct store_sqlite *l = lite(s);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(l->stmts[i]);
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(l->sp[i]);
    sqlite3_close(l->db);
    free(l);
}

static int
lite_begin(struct coord_store *s, bool write, co_err *err)
{
    struct store_sqlite *l = lite(s);
    if (lite_exec(l, write ? "BEGIN IMMEDIATE" : "BEGIN", err) < 0)
        return -1;
    l->in_tx = true;
    return 0;
}

static int
lite_commit(struct coord_store *s, co_err *err)
{
    struct store_sqlite *l = lite(s);
    if (lite_exec(l, "COMMIT", err) < 0)
        return -1;
    l->in_tx = false;
    return 0;
}

static void
lite_rollback(struct coord_store *s)
{
    struct store_sqlite *l = lite(s);
    if (sqlite3_get_autocommit(l->db) == 0)
        (void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    l->in_tx = false;
}

/* Prepare @q once per connection, turning $N placeholders into ?N. */
static int
lite_stmt(struct store_sqlite *l, enum store_q q, sqlite3_stmt **out, co_err *err)
{
    if (l->stmts[q]) {
        *out = l->stmts[q];
        return 0;
    }
    const char *text = store_sql[q].sqlite ? store_sql[q].sqlite : store_sql[q].sql;
    co_autofree char *sql = co_xstrdup(text);
    for (char *p = sql; *p; p++)
        if (*p == '$')
            *p = '?';
    int rc = sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &l->stmts[q], NULL);
    if (rc != SQLITE_OK)
        return lite_err(l, rc, "prepare statement", err);
    *out = l->stmts[q];
    return 0;
}

static int
lite_query(struct coord_store *s, enum store_q q, const struct db_param *p, int n, struct db_res *r,
           co_err *err)
{
    struct store_sqlite *l = lite(s);
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;

    if (lite_stmt(l, q, &st, err) < 0)
        return -1;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        switch (p[i].type) {
        case DB_NULL:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        case DB_INT:
            rc = sqlite3_bind_int64(st, i + 1, p[i].i);
            break;
        case DB_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p[i].p, -1, SQLITE_STATIC);
            break;
        case DB_BLOB:
            rc = sqlite3_bind_blob64(st, i + 1, p[i].p ? p[i].p : "", p[i].len, SQLITE_STATIC);
            break;
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(st);
        return lite_err(l, rc, "bind", err);
    }
    r->h = st;
    /* Step once now so that constraint errors surface here, where the caller expects them. */
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->primed = true;
    } else if (rc == SQLITE_DONE) {
        r->done = true;
        r->changes = sqlite3_changes64(l->db);
    } else {
        lite_err(l, sqlite3_extended_errcode(l->db), "run statement", err);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        r->h = NULL;
        return -1;
    }
    return 0;
}

static int
lite_next(struct db_res *r, co_err *err)
{
    if (r->primed) {
        r->primed = false;
        return 1;
    }
    if (r->done)
        return 0;
    int rc = sqlite3_step(r->h);
    if (rc == SQLITE_ROW)
        return 1;
    r->done = true;
    if (rc == SQLITE_DONE)
        return 0;
    struct store_sqlite *l = lite(r->s);
    return lite_err(l, sqlite3_extended_errcode(l->db), "read rows", err);
}

static bool
lite_col_null(struct db_res *r, int c)
{
    return sqlite3_column_type(r->h, c) == SQLITE_NULL;
}

static int64_t
lite_col_int(struct db_res *r, int c)
{
    return sqlite3_column_int64(r->h, c);
}

static const char *
lite_col_text(struct db_res *r, int c)
{
    const unsigned char *t = sqlite3_column_text(r->h, c);
    return t ? (const char *)t : "";
}

static const void *
lite_col_blob(struct db_res *r, int c, size_t *len)
{
    const void *p = sqlite3_column_blob(r->h, c);
    *len = (size_t)sqlite3_column_bytes(r->h, c);
    return p ? p : "";
}

static void
lite_done(struct db_res *r)
{
    if (!r->h)
        return;
    sqlite3_reset(r->h);
    sqlite3_clear_bindings(r->h);
    r->h = NULL;
}

static int
lite_exec_script(struct coord_store *s, const char *sql, co_err *err)
{
    return lite_exec(lite(s), sql, err);
}

static int
lite_savepoint(struct coord_store *s, enum store_sp op, co_err *err)
{
    struct store_sqlite *l = lite(s);
    if (!l->sp[op]) {
        int rc = sqlite3_prepare_v3(l->db, store_sp_sql[op], -1, SQLITE_PREPARE_PERSISTENT,
                                    &l->sp[op], NULL);
        if (rc != SQLITE_OK)
            return lite_err(l, rc, "prepare savepoint", err);
    }
    int rc = sqlite3_step(l->sp[op]);
    sqlite3_reset(l->sp[op]);
    if (rc != SQLITE_DONE)
        return lite_err(l, sqlite3_extended_errcode(l->db), store_sp_sql[op], err);
    return 0;
}

static int
lite_tx_state(struct coord_store *s)
{
    /* SQLite rolls a transaction back by itself after some errors (full disk, I/O, busy). */
    return sqlite3_get_autocommit(lite(s)->db) ? 0 : 1;
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = lite_close,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .query = lite_query,
    .next = lite_next,
    .col_null = lite_col_null,
    .col_int = lite_col_int,
    .col_text = lite_col_text,
    .col_blob = lite_col_blob,
    .done = lite_done,
    .exec_script = lite_exec_script,
    .savepoint = lite_savepoint,
    .tx_state = lite_tx_state,
    .error_aborts_tx = false,
};

int
store_sqlite_open(const char *path, struct coord_store **out, co_err *err)
{
    struct store_sqlite *l = co_xcalloc(1, sizeof(*l));
    int rc;

    l->base.ops = &sqlite_ops;
    /* One connection per thread: SQLite's own mutexes are not needed. */
    rc = sqlite3_open_v2(path, &l->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        co_err_set(err, CO_E_UNAVAILABLE, "cannot open database '%s': %s", path,
                   l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
        sqlite3_close(l->db);
        free(l);
        return -1;
    }
    sqlite3_extended_result_codes(l->db, 1);
    sqlite3_busy_timeout(l->db, SQLITE_BUSY_TIMEOUT_MS);
    if (lite_exec(l, "PRAGMA journal_mode = WAL", err) < 0 ||
        lite_exec(l, "PRAGMA synchronous = NORMAL", err) < 0 ||
        lite_exec(l, "PRAGMA foreign_keys = ON", err) < 0 ||
        lite_exec(l, "PRAGMA temp_store = MEMORY", err) < 0 ||
        lite_exec(l, "PRAGMA cache_size = -16384", err) < 0 ||
        lite_exec(l, "PRAGMA wal_autocheckpoint = 4000", err) < 0) {
        co_err_wrap(err, "database '%s'", path);
        lite_close(&l->base);
        return -1;
    }
    *out = &l->base;
    return 0;
}
