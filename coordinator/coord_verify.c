/* coord_verify: replicated execution (see coord_verify.h). */
#include "coord_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_id.h"
#include "co_jsonw.h"
#include "co_time.h"
#include "coord_artifact.h"
#include "coord_price.h"
#include "coord_store.h"
#include "store_int.h"

#define PARAMS(...)                                                                                \
    (const struct db_param[]){__VA_ARGS__},                                                        \
        (int)(sizeof((struct db_param[]){__VA_ARGS__}) / sizeof(struct db_param))

/* ------------------------------------------------------------------ pure */

int
coord_verify_majority(int replicas)
{
    return replicas / 2 + 1;
}

static void
sha_puts(struct coord_sha256 *h, const char *s)
{
    coord_sha256_update(h, s, strlen(s));
}

/* One artifact line of the digest. */
struct art_line {
    const char *path, *sha256;
};

static int
art_order(const void *a, const void *b)
{
    return strcmp(((const struct art_line *)a)->path, ((const struct art_line *)b)->path);
}

void
coord_verify_digest(const struct coord_verify_result *r, char hex[65])
{
    struct coord_sha256 h;
    char line[96];
    coord_sha256_init(&h);
    sha_puts(&h, "cacheout-result-v1\n");
    if (r->has_exit_code)
        snprintf(line, sizeof(line), "exit:%d\n", r->exit_code);
    else
        snprintf(line, sizeof(line), "exit:none\n");
    sha_puts(&h, line);
    sha_puts(&h, "failure:");
    sha_puts(&h, r->failure ? r->failure : "none");
    sha_puts(&h, "\n");
    snprintf(line, sizeof(line), "stdout:%zu\n", r->out_len);
    sha_puts(&h, line);
    if (r->out_len > 0)
        coord_sha256_update(&h, r->out, r->out_len);
    snprintf(line, sizeof(line), "\nartifacts:%zu\n", r->n_artifacts);
    sha_puts(&h, line);
    struct art_line *lines = co_xcalloc(r->n_artifacts + 1, sizeof(*lines));
    for (size_t i = 0; i < r->n_artifacts; i++)
        lines[i] = (struct art_line){r->paths[i], r->sha256s[i]};
    qsort(lines, r->n_artifacts, sizeof(*lines), art_order);
    for (size_t k = 0; k < r->n_artifacts; k++) {
        snprintf(line, sizeof(line), "%zu:", strlen(lines[k].path));
        sha_puts(&h, line);
        sha_puts(&h, lines[k].path);
        sha_puts(&h, " ");
        sha_puts(&h, lines[k].sha256);
        sha_puts(&h, "\n");
    }
    free(lines);
    coord_sha256_hex(&h, hex);
}

enum coord_verify_step
coord_verify_decide(int replicas, size_t n, const char *const *digests, const bool *open,
                    int tiebreaks, size_t *winner)
{
    size_t best = 0;
    int best_n = 0;
    for (size_t i = 0; i < n; i++) {
        if (open[i])
            return COORD_VERIFY_WAIT;
    }
    for (size_t i = 0; i < n; i++) {
        if (!digests[i])
            continue;
        int same = 0;
        for (size_t k = 0; k < n; k++)
            same += digests[k] && strcmp(digests[k], digests[i]) == 0;
        if (same > best_n) {
            best_n = same;
            best = i;
        }
    }
    int need = coord_verify_majority(replicas);
    if (best_n >= need) {
        *winner = best;
        return COORD_VERIFY_AGREED;
    }
    if (tiebreaks < COORD_VERIFY_TIEBREAKS_MAX &&
        best_n + (COORD_VERIFY_TIEBREAKS_MAX - tiebreaks) >= need)
        return COORD_VERIFY_TIEBREAK;
    return COORD_VERIFY_UNVERIFIED;
}

int
coord_verify_settle_due(int64_t hold, size_t n, const bool *agrees, const int64_t *due,
                        int64_t fee_percent, struct coord_verify_plan *out, co_err *err)
{
    memset(out, 0, sizeof(*out));
    if (n > COORD_VERIFY_RUNS_MAX || hold < 0 || fee_percent < 0 || fee_percent > 100)
        return co_err_set(err, CO_E_INVAL, "replica settlement: %zu rows, hold %lld, fee %lld%%", n,
                          (long long)hold, (long long)fee_percent);
    int64_t left = hold;
    for (size_t i = 0; i < n; i++) {
        if (!agrees[i])
            continue;
        if (due[i] < 0)
            return co_err_set(err, CO_E_INVAL, "replica settlement: row %zu due %lld", i,
                              (long long)due[i]);
        int64_t take = due[i] < left ? due[i] : left;
        struct coord_settlement st;
        coord_price_split(take, take, fee_percent, &st);
        out->pay[i] = st.payout;
        out->fee[i] = st.fee;
        left -= take;
        out->charge += take;
    }
    out->refund = hold - out->charge;
    return 0;
}

int
coord_verify_settle_plan(int64_t unit, int replicas, size_t n, const bool *agrees,
                         struct coord_verify_plan *out, co_err *err)
{
    memset(out, 0, sizeof(*out));
    if (replicas < 1 || replicas > COORD_VERIFY_REPLICAS_MAX || n > COORD_VERIFY_RUNS_MAX ||
        unit < 0)
        return co_err_set(err, CO_E_INVAL, "replica settlement: %d replicas, %zu rows, unit %lld",
                          replicas, n, (long long)unit);
    int64_t hold, due[COORD_VERIFY_RUNS_MAX];
    if (__builtin_mul_overflow(unit, (int64_t)replicas, &hold))
        return co_err_set(err, CO_E_RANGE, "replica settlement: %d x %lld overflows", replicas,
                          (long long)unit);
    for (size_t i = 0; i < n; i++)
        due[i] = unit;
    return coord_verify_settle_due(hold, n, agrees, due, 0, out, err);
}

/* ------------------------------------------------------------------ store steps */

static int64_t
r_int(struct db_res *r, int c)
{
    return r->s->ops->col_int(r, c);
}

static const char *
r_text(struct db_res *r, int c)
{
    return r->s->ops->col_text(r, c);
}

static bool
r_null(struct db_res *r, int c)
{
    return r->s->ops->col_null(r, c);
}

static bool
status_open(const char *st)
{
    return strcmp(st, "pending") == 0 || strcmp(st, "assigned") == 0 || strcmp(st, "running") == 0;
}

static bool
job_is_final(enum coord_job_status st)
{
    return st == COORD_JOB_COMPLETED || st == COORD_JOB_FAILED || st == COORD_JOB_CANCELLED;
}

/* One replica row of a parent. */
struct replica_row {
    char job_id[CO_ID_MAX + 1];
    int idx;
    bool tiebreak;
    char worker_id[CO_ID_MAX + 1];
    char owner_id[CO_ID_MAX + 1];
    char digest[65]; /* "" when none */
    char outcome[16];
    bool open;
};

static int
rows_load(struct coord_store *s, const char *parent_id, struct replica_row *rows, size_t *n,
          co_err *err)
{
    struct db_res r;
    int got;
    *n = 0;
    if (store_run(s, Q_VER_REPLICAS, PARAMS(P_TEXT(parent_id)), &r, err) < 0)
        return -1;
    while ((got = store_next(&r, err)) > 0) {
        if (*n == COORD_VERIFY_RUNS_MAX)
            continue;
        struct replica_row *x = &rows[(*n)++];
        memset(x, 0, sizeof(*x));
        co_strlcpy(x->job_id, r_text(&r, 0), sizeof(x->job_id));
        x->idx = (int)r_int(&r, 1);
        x->tiebreak = r_int(&r, 2) != 0;
        co_strlcpy(x->worker_id, r_text(&r, 3), sizeof(x->worker_id));
        co_strlcpy(x->owner_id, r_text(&r, 4), sizeof(x->owner_id));
        if (!r_null(&r, 5))
            co_strlcpy(x->digest, r_text(&r, 5), sizeof(x->digest));
        if (!r_null(&r, 6))
            co_strlcpy(x->outcome, r_text(&r, 6), sizeof(x->outcome));
        x->open = status_open(r_text(&r, 7));
    }
    store_done(&r);
    return got < 0 ? -1 : 0;
}

static int
spawn_one(struct coord_store *s, const char *parent_id, int idx, bool tiebreak, co_err *err)
{
    char buf[CO_UUID_STRLEN + 1];
    co_uuid4(buf);
    const char *id = buf;
    if (store_exec(s, Q_VER_SPAWN, PARAMS(P_TEXT(parent_id), P_TEXT(id)), NULL, err) < 0)
        return -1;
    return store_exec(s, Q_VER_REPLICA_INSERT,
                      PARAMS(P_TEXT(id), P_TEXT(parent_id), P_INT(idx), P_INT(tiebreak)), NULL,
                      err);
}

int
coord_verify_spawn(struct coord_store *s, const struct coord_job *parent, co_err *err)
{
    if (parent->replicas < 2 || parent->replicas > COORD_VERIFY_REPLICAS_MAX)
        return co_err_field(err, CO_E_INVAL, "replicas", "replicas %d outside 1-%d",
                            parent->replicas, COORD_VERIFY_REPLICAS_MAX);
    if (store_exec(s, Q_VER_SET_REPLICAS, PARAMS(P_TEXT(parent->job_id), P_INT(parent->replicas)),
                   NULL, err) < 0)
        return -1;
    for (int i = 1; i <= parent->replicas; i++) {
        if (spawn_one(s, parent->job_id, i, false, err) < 0)
            return -1;
    }
    return 0;
}

/* The owner a worker stands for (its id when none is stored), as settlement pays it. */
static int
owner_of(struct coord_store *s, const char *worker_id, char owner[CO_ID_MAX + 1], co_err *err)
{
    if (store_worker_owner(s, worker_id, owner, err) < 0)
        return -1;
    if (!*owner)
        co_strlcpy(owner, worker_id, CO_ID_MAX + 1);
    return 0;
}

int
coord_verify_claimed(struct coord_store *s, const struct coord_job *child, const char *worker_id,
                     int64_t now, co_err *err)
{
    char buf[CO_ID_MAX + 1];
    int64_t added = 0;
    if (owner_of(s, worker_id, buf, err) < 0)
        return -1;
    const char *owner = buf;
    if (store_exec(s, Q_VER_OWNER_ADD, PARAMS(P_TEXT(child->parent_job_id), P_TEXT(owner)), &added,
                   err) < 0)
        return -1;
    if (added != 1)
        return co_err_set(
            err, CO_E_CONFLICT,
            "owner '%s' already ran a replica of job '%s' (waiting_for_distinct_owner)", owner,
            child->parent_job_id);
    if (store_exec(s, Q_VER_REPLICA_CLAIMED,
                   PARAMS(P_TEXT(child->job_id), P_TEXT(worker_id), P_TEXT(owner)), NULL,
                   err) < 0 ||
        store_exec(s, Q_VER_PARENT_RUNNING, PARAMS(P_TEXT(child->parent_job_id), P_INT(now)),
                   &added, err) < 0)
        return -1;
    if (added != 1)
        return co_err_set(err, CO_E_CONFLICT, "job '%s' is final: its replica '%s' is not run",
                          child->parent_job_id, child->job_id);
    return 0;
}

int
coord_verify_lock_replicas(struct coord_store *s, const char *job_id, co_err *err)
{
    return store_exec(s, Q_VER_LOCK_OPEN, PARAMS(P_TEXT(job_id)), NULL, err);
}

/* Append the blob column @c of the current row to @b. */
static void
blob_add(struct db_res *r, int c, struct co_buf *b)
{
    size_t len = 0;
    const void *p = r->s->ops->col_blob(r, c, &len);
    if (p && len > 0)
        co_buf_append(b, p, len);
}

/* The digest of replica @c (final, loaded), from its stored stdout and artifacts. */
static int
replica_digest(struct coord_store *s, const struct coord_job *c, char hex[65], co_err *err)
{
    struct co_buf out = CO_BUF_INIT;
    struct db_res r;
    int got, rc = -1;
    char **paths = NULL, **shas = NULL;
    size_t n = 0;

    if (store_run(s, Q_OUTPUT_GET, PARAMS(P_TEXT(c->job_id)), &r, err) < 0)
        goto out;
    got = store_next(&r, err);
    if (got > 0)
        blob_add(&r, 0, &out);
    store_done(&r);
    if (got < 0)
        goto out;
    if (store_run(s, Q_OUTPUT_CHUNKS, PARAMS(P_TEXT(c->job_id)), &r, err) < 0)
        goto out;
    while ((got = store_next(&r, err)) > 0) {
        if (r_int(&r, 0) == 1)
            blob_add(&r, 1, &out);
    }
    store_done(&r);
    if (got < 0)
        goto out;
    if (store_run(s, Q_ART_LIST, PARAMS(P_TEXT(c->job_id), P_INT(c->attempts)), &r, err) < 0)
        goto out;
    while ((got = store_next(&r, err)) > 0) {
        paths = co_xreallocarray(paths, n + 1, sizeof(*paths));
        shas = co_xreallocarray(shas, n + 1, sizeof(*shas));
        paths[n] = co_xstrdup(r_text(&r, 0));
        shas[n] = co_xstrdup(r_text(&r, 2));
        n++;
    }
    store_done(&r);
    if (got < 0)
        goto out;
    struct coord_verify_result res = {
        .has_exit_code = c->has_exit_code,
        .exit_code = c->exit_code,
        .failure = coord_failure_name(c->failure),
        .out = out.data,
        .out_len = out.len,
        .n_artifacts = n,
        .paths = (const char *const *)paths,
        .sha256s = (const char *const *)shas,
    };
    coord_verify_digest(&res, hex);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
        free(shas[i]);
    }
    free(paths);
    free(shas);
    co_buf_release(&out);
    return rc;
}

/* The majority's stored output and artifacts become the parent's. */
static int
copy_result(struct coord_store *s, const char *parent_id, const struct coord_job *w, co_err *err)
{
    if (store_exec(s, Q_VER_COPY_OUTPUT, PARAMS(P_TEXT(parent_id), P_TEXT(w->job_id)), NULL, err) <
            0 ||
        store_exec(s, Q_VER_COPY_CHUNKS, PARAMS(P_TEXT(parent_id), P_TEXT(w->job_id)), NULL, err) <
            0 ||
        store_exec(s, Q_VER_COPY_ART,
                   PARAMS(P_TEXT(parent_id), P_TEXT(w->job_id), P_INT(w->attempts)), NULL,
                   err) < 0 ||
        store_exec(s, Q_VER_COPY_ART_CHUNKS,
                   PARAMS(P_TEXT(parent_id), P_TEXT(w->job_id), P_INT(w->attempts)), NULL, err) < 0)
        return -1;
    return store_exec(s, Q_VER_COPY_ART_SET, PARAMS(P_TEXT(parent_id), P_TEXT(w->job_id)), NULL,
                      err);
}

/*
 * What the run of replica @job_id costs under its job's pricing (coord_price): flat the @unit,
 * metered and market the started seconds of its own wall time at its prices (market: its
 * seller's, set at claim), never above the @unit each replica holds.
 */
static int
replica_due(struct coord_store *s, const char *job_id, int64_t unit, int64_t *due, co_err *err)
{
    struct coord_job c;
    if (store_job_load(s, Q_JOB_GET_NOCODE, job_id, &c, err) < 0)
        return -1;
    int64_t from = c.started_at ? c.started_at : c.assigned_at;
    struct coord_price_job pj = {
        .pricing = c.pricing,
        .hold = unit,
        .rate = c.rate,
        .cores = c.required_cores,
        .ram_mb = c.required_ram_mb,
        .timeout_seconds = c.timeout_seconds,
        .wall_ms = c.has_usage                     ? c.usage.wall_ms
                   : from && c.completed_at > from ? c.completed_at - from
                                                   : 0,
        .timed_out = c.failure == COORD_FAIL_TIMEOUT,
    };
    struct coord_settlement st;
    coord_price_settle(&pj, 0, &st);
    *due = st.charge;
    coord_job_release(&c);
    return 0;
}

/* Decided (@agreed, else unverified): pay, refund, record outcomes, finish the parent. */
static int
parent_decide(struct coord_store *s, const struct coord_job *p, struct replica_row *rows, size_t n,
              bool agreed, size_t winner, int64_t now, co_err *err)
{
    bool agrees[COORD_VERIFY_RUNS_MAX] = {false};
    for (size_t i = 0; i < n; i++)
        agrees[i] = agreed && rows[i].digest[0] && strcmp(rows[i].digest, rows[winner].digest) == 0;
    struct coord_verify_plan plan;
    int64_t unit = p->replicas > 0 ? p->cost / p->replicas : 0, due[COORD_VERIFY_RUNS_MAX] = {0};
    for (size_t i = 0; i < n; i++) {
        if (agrees[i] && replica_due(s, rows[i].job_id, unit, &due[i], err) < 0)
            return -1;
    }
    /* The hold is what was taken at submit; anything the unit division left over is refunded. */
    if (coord_verify_settle_due(p->cost, n, agrees, due, s->cfg.fee_percent, &plan, err) < 0)
        return -1;
    const char *fee_user = s->cfg.fee_user ? s->cfg.fee_user : "platform";

    /* Lock the buyer and the paid sellers, then create the missing payees (the store's order). */
    const char *ids[COORD_VERIFY_RUNS_MAX + 2], *owners[COORD_VERIFY_RUNS_MAX + 1];
    size_t n_ids = 0, n_owners = 0;
    ids[n_ids++] = p->buyer_id;
    bool fees = false;
    for (size_t i = 0; i < n; i++) {
        if (plan.pay[i] > 0)
            ids[n_ids++] = owners[n_owners++] = rows[i].owner_id;
        fees = fees || plan.fee[i] > 0;
    }
    owners[n_owners] = NULL;
    if (fees)
        ids[n_ids++] = fee_user;
    if (store_users_lock_ensure(s, ids, n_ids, owners, fees ? fee_user : NULL, now, err) < 0)
        return -1;
    if (store_money_move(s, p->buyer_id, p->job_id, COORD_LEDGER_CHARGE, 0, -plan.charge,
                         agreed ? "replicated job settled" : "replicated job unverified", now,
                         err) < 0)
        return -1;
    if (plan.refund > 0 &&
        store_money_move(s, p->buyer_id, p->job_id, COORD_LEDGER_REFUND, plan.refund, -plan.refund,
                         agreed ? "replicas not paid" : "unverified", now, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (plan.pay[i] > 0 &&
            store_money_move(s, rows[i].owner_id, rows[i].job_id, COORD_LEDGER_PAYOUT, plan.pay[i],
                             0, "replica payout", now, err) < 0)
            return -1;
        if (plan.fee[i] > 0 && store_money_move(s, fee_user, rows[i].job_id, COORD_LEDGER_FEE,
                                                plan.fee[i], 0, "platform fee", now, err) < 0)
            return -1;
        const char *outcome = !rows[i].digest[0] ? "void"
                              : !agreed          ? "unverified"
                              : agrees[i]        ? "agree"
                                                 : "mismatch";
        if (store_exec(s, Q_VER_OUTCOME,
                       PARAMS(P_TEXT(rows[i].job_id), P_TEXT(outcome), P_INT(now)), NULL, err) < 0)
            return -1;
        /* A result outside the majority costs its worker reputation (coord_store.h). */
        if (agreed && rows[i].digest[0] && !agrees[i] &&
            store_outcome_note(s, rows[i].worker_id, rows[i].job_id, COORD_OUTCOME_MISMATCH, now,
                               err) < 0)
            return -1;
    }
    /* `charged` after the users' locks, like the store's settlement (store.c settle()). */
    if (store_exec(s, Q_JOB_SET_CHARGED, PARAMS(P_TEXT(p->job_id), P_INT(plan.charge)), NULL, err) <
        0)
        return -1;
    if (!agreed)
        return store_job_set_final(s, p, COORD_JOB_FAILED, COORD_FAIL_UNVERIFIED, NULL, now, err);

    struct coord_job w;
    if (store_job_load(s, Q_JOB_GET_NOCODE, rows[winner].job_id, &w, err) < 0)
        return -1;
    struct coord_job_result res = {
        .status = w.status,
        .failure = w.failure,
        .has_exit_code = w.has_exit_code,
        .exit_code = w.exit_code,
        .has_usage = w.has_usage,
        .usage = w.usage,
    };
    int rc = copy_result(s, p->job_id, &w, err);
    if (rc == 0)
        rc = store_job_set_final(s, p, w.status, w.failure, &res, now, err);
    coord_job_release(&w);
    return rc;
}

/* Every replica of @p has ended or one just did: decide, start a tie-break, or wait. */
static int
parent_step(struct coord_store *s, const struct coord_job *p, int64_t now, co_err *err)
{
    struct replica_row rows[COORD_VERIFY_RUNS_MAX];
    const char *digests[COORD_VERIFY_RUNS_MAX];
    bool open[COORD_VERIFY_RUNS_MAX];
    size_t n, winner = 0;
    int tiebreaks = 0, last = 0;
    if (rows_load(s, p->job_id, rows, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bool result = rows[i].digest[0] && strcmp(rows[i].outcome, "void") != 0;
        if (!result)
            rows[i].digest[0] = '\0';
        digests[i] = result ? rows[i].digest : NULL;
        open[i] = rows[i].open;
        tiebreaks += rows[i].tiebreak;
        if (rows[i].idx > last)
            last = rows[i].idx;
    }
    switch (coord_verify_decide(p->replicas, n, digests, open, tiebreaks, &winner)) {
    case COORD_VERIFY_WAIT:
        return 0;
    case COORD_VERIFY_TIEBREAK:
        return spawn_one(s, p->job_id, last + 1, true, err);
    case COORD_VERIFY_AGREED:
        return parent_decide(s, p, rows, n, true, winner, now, err);
    case COORD_VERIFY_UNVERIFIED:
        return parent_decide(s, p, rows, n, false, 0, now, err);
    }
    return co_err_set(err, CO_E_INTERNAL, "replica decision out of range");
}

/* Cancel of a parent: the whole hold back to the buyer, its open replicas cancelled. */
static int
parent_cancelled(struct coord_store *s, const struct coord_job *p, int64_t now, co_err *err)
{
    struct db_res r;
    int got, rc = -1;
    char **ids = NULL;
    size_t n = 0;

    if (store_money_move(s, p->buyer_id, p->job_id, COORD_LEDGER_CHARGE, 0, 0,
                         "replicated job cancelled", now, err) < 0 ||
        (p->cost > 0 && store_money_move(s, p->buyer_id, p->job_id, COORD_LEDGER_REFUND, p->cost,
                                         -p->cost, "job cancelled", now, err) < 0) ||
        store_exec(s, Q_JOB_SET_CHARGED, PARAMS(P_TEXT(p->job_id), P_INT(0)), NULL, err) < 0)
        return -1;
    if (store_run(s, Q_VER_LOCK_OPEN, PARAMS(P_TEXT(p->job_id)), &r, err) < 0)
        return -1;
    while ((got = store_next(&r, err)) > 0) {
        ids = co_xreallocarray(ids, n + 1, sizeof(*ids));
        ids[n++] = co_xstrdup(r_text(&r, 0));
    }
    store_done(&r);
    if (got < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct coord_job c;
        if (store_job_load(s, Q_JOB_LOCK, ids[i], &c, err) < 0)
            goto out;
        int x = job_is_final(c.status) ? 0
                                       : store_job_set_final(s, &c, COORD_JOB_CANCELLED,
                                                             COORD_FAIL_CANCELLED, NULL, now, err);
        coord_job_release(&c);
        if (x < 0)
            goto out;
    }
    struct replica_row rows[COORD_VERIFY_RUNS_MAX];
    size_t nr;
    if (rows_load(s, p->job_id, rows, &nr, err) < 0)
        goto out;
    for (size_t i = 0; i < nr; i++) {
        if (!rows[i].outcome[0] &&
            store_exec(s, Q_VER_OUTCOME, PARAMS(P_TEXT(rows[i].job_id), P_TEXT("void"), P_INT(now)),
                       NULL, err) < 0)
            goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

int
coord_verify_settle(struct coord_store *s, const struct coord_job *j, bool result, int64_t now,
                    co_err *err)
{
    if (j->replicas > 1)
        return parent_cancelled(s, j, now, err);

    struct coord_job c, p;
    char hex[65] = "";
    if (store_job_load(s, Q_JOB_GET_NOCODE, j->job_id, &c, err) < 0)
        return -1;
    bool counts = result && c.status != COORD_JOB_CANCELLED;
    int rc = counts ? replica_digest(s, &c, hex, err) : 0;
    coord_job_release(&c);
    if (rc < 0)
        return -1;
    const char *digest = counts ? hex : NULL, *outcome = counts ? NULL : "void";
    if (store_exec(s, Q_VER_REPLICA_RESULT,
                   PARAMS(P_TEXT(j->job_id), P_TEXT(digest), P_TEXT(outcome)), NULL, err) < 0)
        return -1;
    if (store_job_load(s, Q_JOB_LOCK, j->parent_job_id, &p, err) < 0)
        return -1;
    rc = job_is_final(p.status) ? 0 : parent_step(s, &p, now, err);
    coord_job_release(&p);
    return rc;
}

/* The verification object of parent @j as JSON text. */
static char *
view_json(const struct coord_job *j, const struct replica_row *rows, size_t n)
{
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    const char *state = "pending";
    if (j->failure == COORD_FAIL_UNVERIFIED || j->status == COORD_JOB_CANCELLED)
        state = "unverified";
    else if (job_is_final(j->status))
        state = "agreed";
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "state", state);
    co_jsonw_kint(&w, "majority", coord_verify_majority(j->replicas));
    co_jsonw_key(&w, "results");
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].worker_id[0])
            continue; /* never claimed */
        co_jsonw_obj_begin(&w);
        co_jsonw_kstr(&w, "job_id", rows[i].job_id);
        co_jsonw_kstr(&w, "worker_id", rows[i].worker_id);
        co_jsonw_kstr(&w, "owner_id", rows[i].owner_id);
        co_jsonw_kstr(&w, "digest", rows[i].digest[0] ? rows[i].digest : NULL);
        co_jsonw_key(&w, "agrees");
        if (strcmp(rows[i].outcome, "agree") == 0)
            co_jsonw_bool(&w, true);
        else if (rows[i].outcome[0])
            co_jsonw_bool(&w, false);
        else
            co_jsonw_null(&w);
        co_jsonw_kstr(&w, "outcome", rows[i].outcome[0] ? rows[i].outcome : NULL);
        co_jsonw_kbool(&w, "tiebreak", rows[i].tiebreak);
        co_jsonw_obj_end(&w);
    }
    co_jsonw_arr_end(&w);
    co_jsonw_obj_end(&w);
    return co_buf_steal(&b, NULL);
}

int
coord_verify_load_view(struct coord_store *s, struct coord_job *j, co_err *err)
{
    struct replica_row rows[COORD_VERIFY_RUNS_MAX];
    size_t n;
    struct db_res r;
    int got;
    if (rows_load(s, j->job_id, rows, &n, err) < 0)
        return -1;
    free(j->verification);
    j->verification = view_json(j, rows, n);
    j->verify_waiting = false;
    if (job_is_final(j->status))
        return 0;
    int64_t alive = co_wall_ms() - s->cfg.worker_timeout_ms;
    if (store_run(s, Q_VER_WAITING, PARAMS(P_TEXT(j->job_id), P_INT(alive)), &r, err) < 0)
        return -1;
    got = store_next(&r, err);
    if (got > 0)
        j->verify_waiting = r_int(&r, 0) > 0 && r_int(&r, 2) == 0;
    store_done(&r);
    return got < 0 ? -1 : 0;
}

void
coord_verify_avoid_add(const struct coord_job_list *l, const char *parent_id, const char *owner)
{
    for (size_t i = 0; i < l->len; i++) {
        struct coord_job *j = &l->items[i];
        if (strcmp(j->parent_job_id, parent_id) != 0)
            continue;
        struct co_buf b = CO_BUF_INIT;
        if (j->avoid_owners)
            co_buf_puts(&b, j->avoid_owners);
        co_buf_puts(&b, owner);
        co_buf_putc(&b, '\n');
        free(j->avoid_owners);
        j->avoid_owners = co_buf_steal(&b, NULL);
    }
}

int
coord_verify_load_avoid(struct coord_store *s, struct coord_job_list *l, co_err *err)
{
    struct co_buf ids = CO_BUF_INIT;
    struct co_jsonw w;
    size_t n = 0;
    co_jsonw_init(&w, &ids);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < l->len; i++) {
        if (l->items[i].parent_job_id[0]) {
            co_jsonw_str(&w, l->items[i].parent_job_id);
            n++;
        }
    }
    co_jsonw_arr_end(&w);
    co_buf_putc(&ids, '\0');
    if (n == 0) {
        co_buf_release(&ids);
        return 0;
    }
    struct db_res r;
    int got;
    const char *json = ids.data;
    if (store_run(s, Q_VER_OWNERS, PARAMS(P_TEXT(json)), &r, err) < 0) {
        co_buf_release(&ids);
        return -1;
    }
    while ((got = store_next(&r, err)) > 0)
        coord_verify_avoid_add(l, r_text(&r, 0), r_text(&r, 1));
    store_done(&r);
    co_buf_release(&ids);
    return got < 0 ? -1 : 0;
}

int
coord_verify_children(struct coord_store *s, const char *parent_id, char ***ids, size_t *n,
                      co_err *err)
{
    struct db_res r;
    int got;
    *ids = NULL;
    *n = 0;
    if (store_run(s, Q_VER_CHILDREN, PARAMS(P_TEXT(parent_id)), &r, err) < 0)
        return -1;
    while ((got = store_next(&r, err)) > 0) {
        *ids = co_xreallocarray(*ids, *n + 1, sizeof(**ids));
        (*ids)[(*n)++] = co_xstrdup(r_text(&r, 0));
    }
    store_done(&r);
    return got < 0 ? -1 : 0;
}

int
coord_verify_check_invariant(struct coord_store *s, co_err *err)
{
    struct db_res r;
    int got, bad = 0;
    if (store_run(s, Q_VER_INV_PARENT, NULL, 0, &r, err) < 0)
        return -1;
    while (!bad && (got = store_next(&r, err)) > 0) {
        int64_t cost = r_int(&r, 1), charges = r_int(&r, 2), taken = r_int(&r, 3);
        int64_t charged = r_int(&r, 4), paid = r_int(&r, 5), recorded = r_int(&r, 6);
        if (charges != 1 || taken != cost || charged != paid ||
            (recorded != -1 && recorded != charged))
            bad = co_err_set(err, CO_E_INTERNAL,
                             "credit invariant broken: replicated job '%s' holds %lld, has %lld "
                             "charges, settles %lld, charges %lld (charged %lld) and pays %lld",
                             r_text(&r, 0), (long long)cost, (long long)charges, (long long)taken,
                             (long long)charged, (long long)recorded, (long long)paid);
    }
    store_done(&r);
    if (bad || got < 0)
        return -1;
    if (store_run(s, Q_VER_INV_CHILD, NULL, 0, &r, err) < 0)
        return -1;
    got = store_next(&r, err);
    if (got > 0)
        got = co_err_set(err, CO_E_INTERNAL,
                         "credit invariant broken: replica '%s' holds credits or has a ledger "
                         "row other than its payout",
                         r_text(&r, 0));
    store_done(&r);
    return got != 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ rendering, placement */

bool
coord_verify_owner_ok(const struct coord_job *j, const char *owner_id)
{
    if (!j->avoid_owners || !owner_id)
        return true;
    size_t len = strlen(owner_id);
    for (const char *p = j->avoid_owners; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n == len && memcmp(p, owner_id, len) == 0)
            return false;
        if (!nl)
            break;
        p = nl + 1;
    }
    return true;
}

void
coord_verify_write_fields(struct co_jsonw *w, const struct coord_job *j)
{
    co_jsonw_kint(w, "replicas", j->replicas > 0 ? j->replicas : 1);
    co_jsonw_key(w, "verification");
    if (j->replicas > 1 && j->verification)
        co_jsonw_raw(w, j->verification, strlen(j->verification));
    else
        co_jsonw_null(w);
}

bool
coord_verify_write_pending_reason(struct co_jsonw *w, const struct coord_job *j)
{
    if (j->replicas < 2 || !j->verify_waiting)
        return false;
    co_jsonw_key(w, "pending_reason");
    co_jsonw_obj_begin(w);
    co_jsonw_kstr(w, "code", "waiting_for_distinct_owner");
    char msg[200];
    snprintf(msg, sizeof(msg),
             "a replica of this job (replicas %d) waits for a worker of an owner that has not run "
             "it yet; no such worker is connected",
             j->replicas);
    co_jsonw_kstr(w, "message", msg);
    co_jsonw_obj_end(w);
    return true;
}
