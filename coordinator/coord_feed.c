/* coord_feed: the change feed between nodes on PostgreSQL (see coord_feed.h). */
#include "coord_feed.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "co_alloc.h"
#include "co_id.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_events.h"
#include "coord_node.h"
#include "coord_store.h"

#define FEED_CHANNEL "cacheout_events"
/* Rows read per query. */
#define FEED_BATCH 500
#define FEED_POLL_MS 1000
/*
 * Rounds woken by notifications start at least this far apart: under a stream of other nodes'
 * changes a round then reads several transactions' rows at once (at most 200 rounds a second),
 * for at most this much more latency.
 */
#define FEED_MIN_GAP_MS 5
/* Rows remembered above the horizon, at most (beyond: delivered once the horizon passes). */
#define FEED_EARLY_MAX 1000000
#define FEED_PRUNE_MS 60000
#define FEED_BACKOFF_MAX_MS 2000

struct feed_ev {
    int kind;
    char id[CO_ID_MAX + 1];
};

struct feed_q {
    struct feed_ev *v;
    size_t head, len, cap; /* a ring */
};

struct coord_feed {
    char *url;
    struct lws_context *ctx;
    struct coord_events *ev;
    pthread_t tid;
    bool started;
    int wake[2]; /* pipe: stop wakes the thread */

    pthread_mutex_t mu;
    struct feed_q in; /* other nodes' changes to publish */
    bool stop;
    struct coord_feed_stats st;

    /*
     * Feed thread only.  The read cursor: rows after (cur_txid, cur_seq) in (txid, seq) order,
     * up to the horizon of the round (below it, every transaction has ended).
     */
    PGconn *conn;
    bool have_cursor;
    bool need_read; /* a notification came, or the connection is new */
    uint64_t cur_txid, cur_seq;
    /* Rows above the horizon delivered already, by sequence; the highest sequence read there. */
    struct feed_early *early;
    size_t n_early, cap_early;
    uint64_t early_seq;
    int64_t next_prune_ms;
};

static void
q_push(struct feed_q *q, int kind, const char *id)
{
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        struct feed_ev *nv = co_xcalloc(ncap, sizeof(*nv));
        for (size_t i = 0; i < q->len; i++)
            nv[i] = q->v[(q->head + i) % q->cap];
        free(q->v);
        q->v = nv;
        q->cap = ncap;
        q->head = 0;
    }
    struct feed_ev *e = &q->v[(q->head + q->len) % q->cap];
    e->kind = kind;
    co_strlcpy(e->id, id, sizeof(e->id));
    q->len++;
}

static struct feed_ev *
q_at(struct feed_q *q, size_t i)
{
    return &q->v[(q->head + i) % q->cap];
}

static void
feed_wake(struct coord_feed *f)
{
    char c = 1;
    ssize_t n = write(f->wake[1], &c, 1); /* a full pipe already wakes the thread */
    (void)n;
}

/* ---- the feed connection (feed thread) ---------------------------------------------------- */

static void
feed_disconnect(struct coord_feed *f, const char *why)
{
    if (!f->conn)
        return;
    co_warn("change feed: connection lost, reconnecting error=\"%s\"", why);
    PQfinish(f->conn);
    f->conn = NULL;
}

/* Wait until @fd is readable (or the wake pipe is), up to @ms; 1 readable, 0 timeout. */
static int
feed_wait(struct coord_feed *f, int fd, int events, int ms)
{
    struct pollfd p[2] = {{.fd = f->wake[0], .events = POLLIN}, {.fd = fd, .events = events}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    if (n > 0 && (p[0].revents & POLLIN)) {
        char buf[256];
        while (read(f->wake[0], buf, sizeof(buf)) > 0) {
        }
    }
    return n > 0 && fd >= 0 && p[1].revents ? 1 : 0;
}

static bool
feed_stopping(struct coord_feed *f)
{
    pthread_mutex_lock(&f->mu);
    bool s = f->stop;
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* Until the connection can give a result without blocking; false (dropped) on error/deadline. */
static bool
feed_ready(struct coord_feed *f, int64_t deadline)
{
    for (;;) {
        int flush = PQflush(f->conn);
        if (flush < 0) {
            feed_disconnect(f, PQerrorMessage(f->conn));
            return false;
        }
        if (flush == 0 && !PQisBusy(f->conn))
            return true;
        int64_t left = deadline - co_mono_ms();
        if (left <= 0 || feed_stopping(f)) {
            feed_disconnect(f, left <= 0 ? "statement timed out" : "stopping");
            return false;
        }
        (void)feed_wait(f, PQsocket(f->conn), flush > 0 ? POLLIN | POLLOUT : POLLIN,
                        (int)(left < 200 ? left : 200));
        if (!PQconsumeInput(f->conn)) {
            feed_disconnect(f, PQerrorMessage(f->conn));
            return false;
        }
    }
}

/*
 * Run one statement with its deadline; returns its result (the caller clears it) or NULL with
 * the connection dropped (error, timeout, stop: any failure starts over on a new connection).
 */
static PGresult *
feed_exec(struct coord_feed *f, const char *sql, int n, const char *const *vals)
{
    if (!f->conn)
        return NULL;
    if (!PQsendQueryParams(f->conn, sql, n, NULL, vals, NULL, NULL, 0)) {
        feed_disconnect(f, PQerrorMessage(f->conn));
        return NULL;
    }
    int64_t deadline = co_mono_ms() + COORD_FEED_STMT_TIMEOUT_MS;
    PGresult *res = NULL, *r;
    for (;;) {
        if (!feed_ready(f, deadline)) {
            PQclear(res);
            return NULL;
        }
        if ((r = PQgetResult(f->conn)) == NULL)
            break;
        PQclear(res);
        res = r;
    }
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : "no result");
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(res);
        feed_disconnect(f, msg);
        return NULL;
    }
    return res;
}

static bool
feed_cmd(struct coord_feed *f, const char *sql)
{
    PGresult *r = feed_exec(f, sql, 0, NULL);
    PQclear(r);
    return r != NULL;
}

/* The oldest transaction still open: every transaction below it has ended (committed or not). */
static bool
feed_horizon(struct coord_feed *f, uint64_t *out)
{
    PGresult *r = feed_exec(f, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", 0, NULL);
    if (!r)
        return false;
    *out = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return true;
}

static bool
feed_connect(struct coord_feed *f)
{
    /* The URL's own settings (expanded from "dbname", last) win. */
    const char *keys[] = {"connect_timeout", "application_name", "options", "dbname", NULL};
    const char *vals[] = {"5", "cacheout-feed", "-c idle_in_transaction_session_timeout=15000",
                          f->url, NULL};
    f->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(f->conn) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(f->conn));
        msg[strcspn(msg, "\n")] = '\0';
        co_warn("change feed: cannot connect error=\"%s\"", msg);
        PQfinish(f->conn);
        f->conn = NULL;
        return false;
    }
    if (PQsetnonblocking(f->conn, 1) != 0 || !feed_cmd(f, "LISTEN " FEED_CHANNEL))
        return false;
    if (!f->have_cursor) {
        /*
         * A node starts with the changes of the transactions still open or begun after it
         * started (dashboards take a snapshot).
         */
        uint64_t horizon;
        if (!feed_horizon(f, &horizon))
            return false;
        f->cur_txid = horizon;
        f->cur_seq = 0;
        f->have_cursor = true;
        co_info("change feed: listening node=%s from_txid=%" PRIu64, coord_node_id(), f->cur_txid);
    } else {
        co_info("change feed: reconnected, resuming node=%s from_txid=%" PRIu64
                " from_seq=%" PRIu64,
                coord_node_id(), f->cur_txid, f->cur_seq);
    }
    return true;
}

/* A row delivered before the horizon passed its transaction (feed thread). */
struct feed_early {
    uint64_t seq, txid;
};

static bool
feed_early_has(const struct coord_feed *f, uint64_t seq)
{
    size_t lo = 0, hi = f->n_early; /* sorted by seq: appended in increasing order */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->early[mid].seq == seq)
            return true;
        if (f->early[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Queue one row for the lws thread unless it is this node's own (lock held); true if queued. */
static bool
feed_take(struct coord_feed *f, PGresult *r, int i)
{
    if (strcmp(PQgetvalue(r, i, 3), coord_node_id()) == 0)
        return false; /* published here already */
    int kind = coord_event_kind_parse(PQgetvalue(r, i, 1));
    if (kind < 0)
        return false;
    q_push(&f->in, kind, PQgetvalue(r, i, 2));
    f->st.received++;
    return true;
}

/*
 * One paged query of the feed: @sql with the parameters @vals (the last one the page size) and
 * the columns seq, kind, ref, origin, txid; @on_row sees each row (lock held) and moves the
 * cursor *@a, *@b, from which the next page's first two parameters are made.  False when the
 * connection failed.
 */
static bool
feed_pages(struct coord_feed *f, const char *sql, char (*vals)[24], int n, const uint64_t *a,
           const uint64_t *b, void (*on_row)(struct coord_feed *f, PGresult *r, int i, bool *any))
{
    bool any = false;
    for (;;) {
        const char *v[8];
        for (int k = 0; k < n; k++)
            v[k] = vals[k];
        PGresult *r = feed_exec(f, sql, n, v);
        if (!r)
            return false;
        int rows = PQntuples(r);
        pthread_mutex_lock(&f->mu);
        for (int i = 0; i < rows; i++)
            on_row(f, r, i, &any);
        pthread_mutex_unlock(&f->mu);
        PQclear(r);
        if (any)
            lws_cancel_service(f->ctx);
        if (rows < FEED_BATCH)
            return true;
        /* The next page starts after the last row (the cursor moved there). */
        snprintf(vals[0], sizeof(vals[0]), "%" PRIu64, *a);
        snprintf(vals[1], sizeof(vals[1]), "%" PRIu64, *b);
    }
}

static void
on_settled_row(struct coord_feed *f, PGresult *r, int i, bool *any)
{
    f->cur_seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
    f->cur_txid = strtoull(PQgetvalue(r, i, 4), NULL, 10);
    f->st.last_seq = f->cur_seq;
    if (!feed_early_has(f, f->cur_seq) && feed_take(f, r, i))
        *any = true;
}

static void
on_early_row(struct coord_feed *f, PGresult *r, int i, bool *any)
{
    uint64_t seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
    f->early_seq = seq;
    if (f->n_early >= FEED_EARLY_MAX)
        return; /* delivered once the horizon passes it */
    if (f->n_early == f->cap_early) {
        f->cap_early = f->cap_early ? f->cap_early * 2 : 256;
        f->early = co_xrealloc(f->early, f->cap_early * sizeof(*f->early));
    }
    f->early[f->n_early++] = (struct feed_early){seq, strtoull(PQgetvalue(r, i, 4), NULL, 10)};
    if (feed_take(f, r, i))
        *any = true;
}

/*
 * A reading round.  The horizon is the oldest transaction still open: every transaction below it
 * has ended, so the rows after the cursor and below it are read in (txid, seq) order and the
 * cursor moves to the horizon, never to be passed by a row committed later.  The rows of ended
 * transactions above the horizon (behind one still open, e.g. an operator's session left in a
 * transaction) are delivered at once too, by sequence, and remembered until the horizon passes
 * them, so that the cursor's read does not deliver them again.
 */
static bool
feed_read(struct coord_feed *f)
{
    uint64_t horizon;
    if (!feed_horizon(f, &horizon))
        return false;
    char vals[4][24];
    snprintf(vals[0], sizeof(vals[0]), "%" PRIu64, f->cur_txid);
    snprintf(vals[1], sizeof(vals[1]), "%" PRIu64, f->cur_seq);
    snprintf(vals[2], sizeof(vals[2]), "%" PRIu64, horizon);
    snprintf(vals[3], sizeof(vals[3]), "%d", FEED_BATCH);
    if (!feed_pages(f,
                    "SELECT seq, kind, ref, origin, txid::text FROM event_outbox "
                    "WHERE (txid, seq) > ($1::xid8, $2::bigint) AND txid < $3::xid8 "
                    "ORDER BY txid, seq LIMIT $4::int",
                    vals, 4, &f->cur_txid, &f->cur_seq, on_settled_row))
        return false;
    if (horizon > f->cur_txid) {
        f->cur_txid = horizon;
        f->cur_seq = 0;
    }
    /* Rows the cursor has now passed need no memory. */
    size_t k = 0;
    for (size_t i = 0; i < f->n_early; i++)
        if (f->early[i].txid >= horizon)
            f->early[k++] = f->early[i];
    f->n_early = k;
    /* Ended transactions above the horizon (also when the list is full: early_seq moves on). */
    snprintf(vals[0], sizeof(vals[0]), "%" PRIu64, horizon);
    snprintf(vals[1], sizeof(vals[1]), "%" PRIu64, f->early_seq);
    snprintf(vals[2], sizeof(vals[2]), "%d", FEED_BATCH);
    return feed_pages(f,
                      "SELECT seq, kind, ref, origin, txid::text FROM event_outbox "
                      "WHERE txid >= $1::xid8 AND seq > $2::bigint ORDER BY seq LIMIT $3::int",
                      vals, 3, &horizon, &f->early_seq, on_early_row);
}

static void
feed_prune(struct coord_feed *f)
{
    int64_t now = co_mono_ms();
    if (now < f->next_prune_ms)
        return;
    f->next_prune_ms = now + FEED_PRUNE_MS;
    char keep[24];
    snprintf(keep, sizeof(keep), "%d", COORD_FEED_KEEP_S);
    const char *vals[] = {keep};
    PGresult *r = feed_exec(f,
                            "DELETE FROM event_outbox WHERE created_at < "
                            "now() - make_interval(secs => $1::int)",
                            1, vals);
    if (r && atoi(PQcmdTuples(r)) > 0)
        co_debug("change feed: pruned rows=%s", PQcmdTuples(r));
    PQclear(r);
}

/*
 * Notifications received (they are only a wake-up: the rows say what changed).  Their payload is
 * the node that made the change (migration 0014): this node's own changes were delivered in
 * process already, so they wake nothing (the once-a-second round moves the cursor past them).
 */
static bool
feed_notified(struct coord_feed *f)
{
    bool any = false;
    PGnotify *nt;
    while (f->conn && (nt = PQnotifies(f->conn)) != NULL) {
        if (!nt->extra || strcmp(nt->extra, coord_node_id()) != 0)
            any = true;
        PQfreemem(nt);
    }
    if (any)
        f->need_read = true;
    return any;
}

/* After a failure: wait (woken early by a stop), doubling the wait up to FEED_BACKOFF_MAX_MS. */
static void
feed_backoff(struct coord_feed *f, int *backoff)
{
    (void)feed_wait(f, -1, 0, *backoff);
    *backoff = *backoff * 2 > FEED_BACKOFF_MAX_MS ? FEED_BACKOFF_MAX_MS : *backoff * 2;
}

static void *
feed_main(void *arg)
{
    struct coord_feed *f = arg;
    int backoff = 100;
    int64_t next_read = 0, last_read = INT64_MIN / 2;
    f->need_read = true;
    while (!feed_stopping(f)) {
        if (!f->conn) {
            if (!feed_connect(f)) {
                if (f->conn)
                    feed_disconnect(f, "setup failed");
                feed_backoff(f, &backoff);
                continue;
            }
            pthread_mutex_lock(&f->mu);
            f->st.reconnects++;
            pthread_mutex_unlock(&f->mu);
            f->need_read = true;
        }
        int64_t now = co_mono_ms();
        if (now >= next_read || (f->need_read && now >= last_read + FEED_MIN_GAP_MS)) {
            if (!feed_read(f)) {
                feed_backoff(f, &backoff);
                continue;
            }
            backoff = 100; /* a whole round worked */
            f->need_read = false;
            last_read = co_mono_ms();
            next_read = last_read + FEED_POLL_MS;
        }
        feed_prune(f);
        if (!f->conn)
            continue;
        if (feed_notified(f)) /* a notification read along with a result */
            continue;
        /* A wake-up that came too soon after a round waits for the gap, not for the poll. */
        int64_t until = f->need_read ? last_read + FEED_MIN_GAP_MS : next_read;
        int64_t left = until - co_mono_ms();
        (void)feed_wait(f, PQsocket(f->conn), POLLIN, left < 0 ? 0 : (int)left);
        if (!PQconsumeInput(f->conn)) {
            feed_disconnect(f, PQerrorMessage(f->conn));
            continue;
        }
        (void)feed_notified(f);
    }
    if (f->conn)
        PQfinish(f->conn);
    f->conn = NULL;
    return NULL;
}

/* ---- lws thread --------------------------------------------------------------------------- */

int
coord_feed_start(const char *database_url, struct lws_context *ctx, struct coord_events *ev,
                 struct coord_feed **out, co_err *err)
{
    *out = NULL;
    if (!database_url || coord_store_sqlite_path(database_url) ||
        (strncmp(database_url, "postgresql://", 13) != 0 &&
         strncmp(database_url, "postgres://", 11) != 0))
        return 0;
    struct coord_feed *f = co_xcalloc(1, sizeof(*f));
    f->url = co_xstrdup(database_url);
    f->ctx = ctx;
    f->ev = ev;
    pthread_mutex_init(&f->mu, NULL);
    if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = errno;
        free(f->url);
        free(f);
        return co_err_sys(err, e, "change feed: pipe");
    }
    if (pthread_create(&f->tid, NULL, feed_main, f) != 0) {
        close(f->wake[0]);
        close(f->wake[1]);
        free(f->url);
        free(f);
        return co_err_set(err, CO_E_INTERNAL, "change feed: cannot start its thread");
    }
    f->started = true;
    *out = f;
    return 0;
}

void
coord_feed_drain(struct coord_feed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    struct feed_q q = f->in;
    memset(&f->in, 0, sizeof(f->in));
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < q.len; i++) {
        struct feed_ev *e = q_at(&q, i);
        coord_events_publish_remote(f->ev, (enum coord_event_kind)e->kind, e->id);
    }
    free(q.v);
}

void
coord_feed_stats(struct coord_feed *f, struct coord_feed_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    pthread_mutex_unlock(&f->mu);
}

void
coord_feed_stop(struct coord_feed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    feed_wake(f);
    if (f->started)
        pthread_join(f->tid, NULL);
    co_info("change feed stopped received=%" PRIu64 " connections=%" PRIu64 " last_seq=%" PRIu64,
            f->st.received, f->st.reconnects, f->st.last_seq);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f->in.v);
    free(f->early);
    pthread_mutex_destroy(&f->mu);
    free(f->url);
    free(f);
}
