/*
 * The store contract: the same cases, with the same expected results, against whichever database
 * CO_STORE_URL names (sqlite:///... or postgresql://...).  Each case prints one line; after every
 * case the money invariant is checked (coord_store_check_invariant) and leftover unfinished jobs
 * are cancelled so that cases do not see each other's queue.
 *
 * Environment: CO_STORE_URL (required), CO_SQL_DIR (the sql/ folder, required),
 * CO_STORE_RESTART (optional: an executable called with "stop", "start" or "restart" that
 * controls the database server; enables the reconnect case), CO_STORE_FRESH_URL (optional: an
 * empty database for the concurrent-migration case).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "co_alloc.h"
#include "co_time.h"
#include "coord_fault.h"
#include "coord_node.h"
#include "coord_store.h"
#include "coord_webhook.h"
#include "store_backend.h"

#define CREDIT INT64_C(1000000)
#define START_CREDITS (100 * CREDIT)
#define OUTPUT_CAP 1000

static struct coord_store_config cfg;
static const char *sql_dir;
static struct coord_store *S;
static co_err E;
static char run_tag[16];
static char fail_msg[2048];

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(fail_msg, sizeof(fail_msg), __VA_ARGS__);                                         \
        return -1;                                                                                 \
    } while (0)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("line %d: %s", __LINE__, #cond);                                                  \
    } while (0)
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            FAIL("line %d: %s == %lld, expected %s == %lld", __LINE__, #a, a_, #b, b_);            \
    } while (0)
#define OK(call)                                                                                   \
    do {                                                                                           \
        co_err_clear(&E);                                                                          \
        if ((call) < 0)                                                                            \
            FAIL("line %d: %s failed: %s", __LINE__, #call, E.msg);                                \
    } while (0)
#define FAILS(call, want)                                                                          \
    do {                                                                                           \
        co_err_clear(&E);                                                                          \
        if ((call) >= 0)                                                                           \
            FAIL("line %d: %s succeeded, expected %s", __LINE__, #call, co_err_code_name(want));   \
        if (E.code != (want))                                                                      \
            FAIL("line %d: %s failed with %s (%s), expected %s", __LINE__, #call,                  \
                 co_err_code_name(E.code), E.msg, co_err_code_name(want));                         \
    } while (0)

/* An id unique to this run and case: "<tag>-<name>". */
static const char *
id(const char *name)
{
    static char buf[256][CO_ID_MAX + 1]; /* a ring: cases hold at most a few dozen at once */
    static int slot;
    char *b = buf[slot++ % 256];
    snprintf(b, CO_ID_MAX + 1, "%s-%s", run_tag, name);
    return b;
}

static void
job_init(struct coord_job *j, const char *job_id, const char *buyer, int64_t cost, int64_t cores,
         int64_t ram, int priority)
{
    memset(j, 0, sizeof(*j));
    co_strlcpy(j->job_id, job_id, sizeof(j->job_id));
    co_strlcpy(j->buyer_id, buyer, sizeof(j->buyer_id));
    j->title = (char *)"a job";
    j->description = (char *)"";
    j->code = (char *)"print(\"Hello World\")";
    j->command = (char *)"python script.py";
    j->parameters = (char *)"{\"input\": \"data.csv\"}";
    j->image = (char *)"default";
    j->cost = cost;
    j->required_cores = cores;
    j->required_ram_mb = ram;
    j->priority = priority;
    j->timeout_seconds = 60;
    j->max_attempts = 3;
}

static int
submit(const char *job_id, const char *buyer, int64_t cost, int64_t cores, int64_t ram,
       int priority)
{
    struct coord_job j;
    job_init(&j, job_id, buyer, cost, cores, ram, priority);
    return coord_store_job_submit(S, &j, &E);
}

/* Register (or update) an idle websocket worker through @s. */
static int
worker_on(struct coord_store *s, const char *wid, const char *owner, int64_t cores, int64_t ram,
          co_err *err)
{
    struct coord_worker w;
    memset(&w, 0, sizeof(w));
    co_strlcpy(w.worker_id, wid, sizeof(w.worker_id));
    co_strlcpy(w.owner_id, owner ? owner : "", sizeof(w.owner_id));
    w.cpu_cores = cores;
    w.ram_mb = ram;
    w.status = COORD_WORKER_IDLE;
    w.websocket = true;
    return coord_store_worker_upsert(s, &w, NULL, err);
}

static int
worker(const char *wid, const char *owner, int64_t cores, int64_t ram)
{
    return worker_on(S, wid, owner, cores, ram, &E);
}

static int
balance(const char *user, int64_t *credits, int64_t *held)
{
    struct coord_user u;
    if (coord_store_user_get(S, user, &u, &E) < 0)
        return -1;
    *credits = u.credits;
    *held = u.held;
    return 0;
}

static int
job_status(const char *job_id, struct coord_job *out)
{
    return coord_store_job_get(S, job_id, false, out, &E);
}

static int
claim(const char *job_id, const char *wid, int *attempt)
{
    struct coord_job j;
    if (coord_store_job_claim(S, job_id, wid, &j, &E) < 0)
        return -1;
    *attempt = j.attempts;
    coord_job_release(&j);
    return 0;
}

static int
finish(const char *job_id, const char *wid, int attempt, enum coord_job_status st,
       enum coord_failure f, bool platform, bool *changed)
{
    struct coord_job_result r;
    memset(&r, 0, sizeof(r));
    r.status = st;
    r.failure = f;
    r.has_exit_code = true;
    r.exit_code = st == COORD_JOB_COMPLETED ? 0 : 1;
    r.has_usage = true;
    r.usage.wall_ms = 1500;
    r.usage.cpu_ms = 1200;
    r.usage.max_rss_kb = 20480;
    r.platform_fault = platform;
    return coord_store_job_finish(S, job_id, wid, attempt, &r, changed, &E);
}

/* ---- cases ---- */

static int
t_migrate_again(void)
{
    OK(coord_store_migrate(S, sql_dir, &E));
    OK(coord_store_ping(S, &E));
    return 0;
}

static int
t_starting_credits(void)
{
    int64_t c, h;
    const char *buyer = id("buyer");
    OK(submit(id("job"), buyer, 3 * CREDIT, 1, 100, 5));
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 3 * CREDIT);
    CHECK_EQ(h, 3 * CREDIT);
    struct coord_ledger_list l;
    OK(coord_store_ledger_list(S, buyer, 10, 0, &l, &E));
    int ok = l.len == 2 && l.items[0].kind == COORD_LEDGER_HOLD &&
             l.items[1].kind == COORD_LEDGER_GRANT && l.items[1].amount == START_CREDITS &&
             l.items[0].amount == -3 * CREDIT && l.items[0].held == 3 * CREDIT &&
             l.items[0].balance == START_CREDITS - 3 * CREDIT &&
             !strcmp(l.items[0].job_id, id("job"));
    coord_ledger_list_release(&l);
    CHECK(ok);
    return 0;
}

static int
t_submit_402(void)
{
    int64_t c, h;
    struct coord_job j;
    struct coord_user u;
    /* A new buyer whose first job costs more than the starting credits: nothing is stored. */
    FAILS(submit(id("big"), id("newbuyer"), START_CREDITS + 1, 1, 100, 5), CO_E_FUNDS);
    FAILS(coord_store_job_get(S, id("big"), false, &j, &E), CO_E_NOTFOUND);
    FAILS(coord_store_user_get(S, id("newbuyer"), &u, &E), CO_E_NOTFOUND);
    /* An existing buyer: balance unchanged, exact balance accepted. */
    OK(submit(id("a"), id("buyer"), 40 * CREDIT, 1, 100, 5));
    FAILS(submit(id("b"), id("buyer"), 60 * CREDIT + 1, 1, 100, 5), CO_E_FUNDS);
    OK(balance(id("buyer"), &c, &h));
    CHECK_EQ(c, 60 * CREDIT);
    CHECK_EQ(h, 40 * CREDIT);
    OK(submit(id("c"), id("buyer"), 60 * CREDIT, 1, 100, 5));
    OK(balance(id("buyer"), &c, &h));
    CHECK_EQ(c, 0);
    CHECK_EQ(h, 100 * CREDIT);
    /* A free job is fine at zero balance. */
    OK(submit(id("free"), id("buyer"), 0, 1, 100, 5));
    return 0;
}

static int
t_duplicate_job(void)
{
    int64_t c, h;
    OK(submit(id("dup"), id("buyer"), CREDIT, 1, 100, 5));
    FAILS(submit(id("dup"), id("buyer"), CREDIT, 1, 100, 5), CO_E_CONFLICT);
    FAILS(submit(id("dup"), id("other"), CREDIT, 1, 100, 5), CO_E_CONFLICT);
    OK(balance(id("buyer"), &c, &h));
    CHECK_EQ(c, START_CREDITS - CREDIT);
    CHECK_EQ(h, CREDIT);
    struct coord_user u;
    FAILS(coord_store_user_get(S, id("other"), &u, &E), CO_E_NOTFOUND);
    return 0;
}

static int
t_get_list(void)
{
    struct coord_job j;
    struct coord_job_list l;
    struct coord_job_filter f = {-1, NULL, NULL, 100, 0, false};
    const char *buyer = id("buyer");
    char names[5][CO_ID_MAX + 1];

    for (int i = 0; i < 5; i++) {
        char nm[8];
        snprintf(nm, sizeof(nm), "j%d", i);
        co_strlcpy(names[i], id(nm), sizeof(names[i]));
        OK(submit(names[i], buyer, CREDIT, 1, 100, i + 1));
    }
    OK(coord_store_job_get(S, names[2], true, &j, &E));
    int ok = j.code && !strcmp(j.code, "print(\"Hello World\")") && !strcmp(j.title, "a job") &&
             !strcmp(j.parameters, "{\"input\": \"data.csv\"}") && j.priority == 3 &&
             j.status == COORD_JOB_PENDING && j.cost == CREDIT && !strcmp(j.buyer_id, buyer) &&
             j.created_at > 0 && j.attempts == 0 && j.max_attempts == 3 && !j.code_file &&
             !j.has_exit_code && !*j.assigned_worker;
    coord_job_release(&j);
    CHECK(ok);
    OK(coord_store_job_get(S, names[2], false, &j, &E));
    ok = j.code == NULL;
    coord_job_release(&j);
    CHECK(ok);
    FAILS(coord_store_job_get(S, id("nope"), false, &j, &E), CO_E_NOTFOUND);

    /* Newest first. */
    f.buyer_id = buyer;
    OK(coord_store_job_list(S, &f, &l, &E));
    ok = l.len == 5;
    for (size_t i = 0; ok && i < 5; i++)
        ok = !strcmp(l.items[i].job_id, names[4 - i]) && l.items[i].code == NULL;
    coord_job_list_release(&l);
    CHECK(ok);
    /* Limit and offset. */
    f.limit = 2;
    f.offset = 1;
    OK(coord_store_job_list(S, &f, &l, &E));
    ok = l.len == 2 && !strcmp(l.items[0].job_id, names[3]) && !strcmp(l.items[1].job_id, names[2]);
    coord_job_list_release(&l);
    CHECK(ok);
    f.limit = 0;
    FAILS(coord_store_job_list(S, &f, &l, &E), CO_E_RANGE);
    f.limit = 1001;
    FAILS(coord_store_job_list(S, &f, &l, &E), CO_E_RANGE);

    /* Status and worker filters. */
    int attempt;
    OK(worker(id("w"), NULL, 8, 8192));
    OK(claim(names[0], id("w"), &attempt));
    f.limit = 100;
    f.offset = 0;
    f.status = COORD_JOB_ASSIGNED;
    OK(coord_store_job_list(S, &f, &l, &E));
    ok = l.len == 1 && !strcmp(l.items[0].job_id, names[0]) &&
         !strcmp(l.items[0].assigned_worker, id("w"));
    coord_job_list_release(&l);
    CHECK(ok);
    f.status = COORD_JOB_PENDING;
    OK(coord_store_job_list(S, &f, &l, &E));
    CHECK_EQ(l.len, 4);
    coord_job_list_release(&l);
    f.status = -1;
    f.buyer_id = NULL;
    f.worker_id = id("w");
    OK(coord_store_job_list(S, &f, &l, &E));
    ok = l.len == 1 && !strcmp(l.items[0].job_id, names[0]);
    coord_job_list_release(&l);
    CHECK(ok);
    f.worker_id = NULL;
    f.buyer_id = id("nobody");
    OK(coord_store_job_list(S, &f, &l, &E));
    CHECK_EQ(l.len, 0);
    coord_job_list_release(&l);

    /* Pending in scheduling order: priority desc. */
    OK(coord_store_job_pending(S, 100, &l, &E));
    ok = l.len == 4 && !strcmp(l.items[0].job_id, names[4]) && !strcmp(l.items[3].job_id, names[1]);
    coord_job_list_release(&l);
    CHECK(ok);
    return 0;
}

static int
t_claim_fencing(void)
{
    struct coord_job j;
    int attempt;
    const char *w = id("w"), *w2 = id("w2");
    OK(worker(w, NULL, 4, 8192));
    OK(worker(w2, NULL, 4, 8192));
    OK(submit(id("job"), id("buyer"), CREDIT, 2, 1000, 5));
    OK(coord_store_job_claim(S, id("job"), w, &j, &E));
    int ok = j.status == COORD_JOB_ASSIGNED && j.attempts == 1 && !strcmp(j.assigned_worker, w) &&
             j.code && !strcmp(j.code, "print(\"Hello World\")") && j.assigned_at > 0;
    attempt = j.attempts;
    coord_job_release(&j);
    CHECK(ok);
    FAILS(claim(id("job"), w2, &attempt), CO_E_CONFLICT);
    FAILS(claim(id("job"), w, &attempt), CO_E_CONFLICT);
    FAILS(claim(id("nojob"), w, &attempt), CO_E_NOTFOUND);
    FAILS(claim(id("job"), id("noworker"), &attempt), CO_E_NOTFOUND);
    FAILS(coord_store_job_started(S, id("job"), w, 2, &E), CO_E_CONFLICT);
    FAILS(coord_store_job_started(S, id("job"), w2, 1, &E), CO_E_CONFLICT);
    OK(coord_store_job_started(S, id("job"), w, 1, &E));
    OK(coord_store_job_started(S, id("job"), w, 1, &E)); /* repeated: no-op */
    OK(job_status(id("job"), &j));
    ok = j.status == COORD_JOB_RUNNING && j.started_at > 0;
    coord_job_release(&j);
    CHECK(ok);
    /* Worker usage counts the running job. */
    struct coord_worker wk;
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.used_cores, 2);
    CHECK_EQ(wk.used_ram_mb, 1000);
    CHECK_EQ(wk.running_jobs, 1);
    bool changed;
    FAILS(finish(id("job"), w, 2, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_CONFLICT);
    FAILS(finish(id("job"), w2, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_CONFLICT);
    OK(job_status(id("job"), &j));
    ok = j.status == COORD_JOB_RUNNING;
    coord_job_release(&j);
    CHECK(ok);
    return 0;
}

static int
t_claim_capacity(void)
{
    int attempt;
    const char *w = id("w");
    OK(worker(w, NULL, 2, 2048));
    OK(submit(id("big"), id("buyer"), CREDIT, 3, 100, 5));
    OK(submit(id("ram"), id("buyer"), CREDIT, 1, 4096, 5));
    OK(submit(id("fit"), id("buyer"), CREDIT, 2, 1024, 5));
    OK(submit(id("more"), id("buyer"), CREDIT, 1, 100, 5));
    FAILS(claim(id("big"), w, &attempt), CO_E_CONFLICT);
    FAILS(claim(id("ram"), w, &attempt), CO_E_CONFLICT);
    OK(claim(id("fit"), w, &attempt));
    FAILS(claim(id("more"), w, &attempt), CO_E_CONFLICT); /* the worker is full */
    struct coord_job j;
    OK(job_status(id("more"), &j));
    int ok = j.status == COORD_JOB_PENDING && j.attempts == 0;
    coord_job_release(&j);
    CHECK(ok);
    return 0;
}

static int
t_claim_next_order(void)
{
    struct coord_job j;
    const char *w = id("w");
    OK(worker(w, NULL, 4, 4096));
    OK(submit(id("p1"), id("buyer"), CREDIT, 1, 100, 1));
    OK(submit(id("p9big"), id("buyer"), CREDIT, 8, 100, 9));
    OK(submit(id("p5a"), id("buyer"), CREDIT, 1, 100, 5));
    OK(submit(id("p5b"), id("buyer"), CREDIT, 1, 100, 5));
    OK(submit(id("p7ram"), id("buyer"), CREDIT, 1, 5000, 7));
    const char *want[] = {id("p5a"), id("p5b"), id("p1")};
    char wantc[3][CO_ID_MAX + 1];
    for (int i = 0; i < 3; i++)
        co_strlcpy(wantc[i], want[i], sizeof(wantc[i]));
    for (int i = 0; i < 3; i++) {
        int rc = coord_store_job_claim_next(S, w, &j, &E);
        if (rc < 0)
            FAIL("claim_next %d: %s", i, E.msg);
        CHECK_EQ(rc, 1);
        int ok = !strcmp(j.job_id, wantc[i]) && j.code != NULL && j.attempts == 1 &&
                 j.status == COORD_JOB_ASSIGNED;
        if (!ok)
            FAIL("claim_next %d gave '%s', expected '%s'", i, j.job_id, wantc[i]);
        coord_job_release(&j);
    }
    CHECK_EQ(coord_store_job_claim_next(S, w, &j, &E), 0); /* the rest does not fit */
    /* Capacity is shared with pushed claims: 3 cores used, a 2-core job does not fit. */
    OK(submit(id("two"), id("buyer"), CREDIT, 2, 100, 10));
    CHECK_EQ(coord_store_job_claim_next(S, w, &j, &E), 0);
    FAILS(coord_store_job_claim_next(S, id("noworker"), &j, &E), CO_E_NOTFOUND);
    return 0;
}

static int
run_to_end(const char *job_id, const char *w, enum coord_job_status st, enum coord_failure f,
           bool platform)
{
    int attempt;
    bool changed = false;
    OK(claim(job_id, w, &attempt));
    OK(coord_store_job_started(S, job_id, w, attempt, &E));
    OK(finish(job_id, w, attempt, st, f, platform, &changed));
    CHECK(changed);
    return 0;
}

static int
t_finish_completed(void)
{
    int64_t c, h;
    struct coord_job j;
    const char *w = id("w"), *owner = id("seller");
    OK(worker(w, owner, 4, 4096));
    OK(submit(id("job"), id("buyer"), 7 * CREDIT, 2, 100, 5));
    if (run_to_end(id("job"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(coord_store_job_get(S, id("job"), false, &j, &E));
    int ok = j.status == COORD_JOB_COMPLETED && j.failure == COORD_FAIL_NONE && j.has_exit_code &&
             j.exit_code == 0 && j.has_usage && j.usage.wall_ms == 1500 && j.usage.cpu_ms == 1200 &&
             j.usage.max_rss_kb == 20480 && j.completed_at >= j.started_at && j.started_at > 0;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(id("buyer"), &c, &h));
    CHECK_EQ(c, START_CREDITS - 7 * CREDIT);
    CHECK_EQ(h, 0);
    OK(balance(owner, &c, &h)); /* the owner, not the worker id, is paid; new users start funded */
    CHECK_EQ(c, START_CREDITS + 7 * CREDIT);
    CHECK_EQ(h, 0);
    struct coord_user u;
    FAILS(coord_store_user_get(S, w, &u, &E), CO_E_NOTFOUND);
    struct coord_worker wk;
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.used_cores, 0);
    CHECK_EQ(wk.running_jobs, 0);
    /* A worker without owner pays itself. */
    OK(worker(id("w2"), NULL, 4, 4096));
    OK(submit(id("job2"), id("buyer"), 2 * CREDIT, 1, 100, 5));
    if (run_to_end(id("job2"), id("w2"), COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(balance(id("w2"), &c, &h));
    CHECK_EQ(c, START_CREDITS + 2 * CREDIT);
    return 0;
}

/*
 * PRICING=metered through the store: the hold for the timeout, the started seconds charged, the
 * rest refunded, `charged` recorded; reputation from outcomes (completed, then a mismatch as
 * replica verification records it) computed by SQL; the statement per day.
 */
static int
t_metered_reputation_statement(void)
{
    int64_t c, h;
    struct coord_job j;
    const char *w = id("w"), *owner = id("seller"), *buyer = id("buyer");
    OK(worker(w, owner, 4, 4096));
    struct coord_worker wk;
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 800000); /* the prior */
    job_init(&j, id("job"), buyer, 2250, 2, 512, 5);
    j.pricing = COORD_PRICING_METERED;
    j.rate = (struct coord_rate){100, 50}; /* 225 micro-credits per second */
    j.timeout_seconds = 10;
    OK(coord_store_job_submit(S, &j, &E));
    if (run_to_end(id("job"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(coord_store_job_get(S, id("job"), false, &j, &E));
    bool charged = j.has_charged && j.charged == 450 && j.pricing == COORD_PRICING_METERED &&
                   j.rate.per_core_second == 100 && j.rate.per_gb_second == 50; /* 1.5 s: 2 s */
    coord_job_release(&j);
    CHECK(charged);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 450);
    CHECK_EQ(h, 0);
    OK(balance(owner, &c, &h));
    CHECK_EQ(c, START_CREDITS + 450);
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 833333); /* (4 + 1) / (5 + 1) */
    OK(coord_store_outcome_record(S, w, id("job"), COORD_OUTCOME_MISMATCH, &E));
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 714285); /* (4 + 1) / (5 + 2) */
    CHECK_EQ(wk.owner_reputation, 714285);
    FAILS(coord_store_outcome_record(S, id("ghost"), NULL, COORD_OUTCOME_LOST, &E), CO_E_NOTFOUND);
    struct coord_statement st;
    OK(coord_store_statement(S, buyer, 2, co_wall_ms(), &st, &E));
    bool spent = st.len == 2 && st.items[1].spent == 450 && st.items[0].spent == 0 &&
                 st.items[1].earned == 0 && strlen(st.items[1].day) == 10;
    free(st.items);
    CHECK(spent);
    OK(coord_store_statement(S, owner, 1, co_wall_ms(), &st, &E));
    bool earned = st.len == 1 && st.items[0].earned == 450 && st.items[0].spent == 0;
    free(st.items);
    CHECK(earned);
    FAILS(coord_store_statement(S, buyer, 0, co_wall_ms(), &st, &E), CO_E_RANGE);
    FAILS(coord_store_statement(S, id("nobody"), 3, co_wall_ms(), &st, &E), CO_E_NOTFOUND);
    return 0;
}

/* PostgreSQL: the change feed's outbox rows of kind @kind naming @ref (-1 on SQLite: none). */
static long long
pg_outbox_rows(const char *kind, const char *ref)
{
    if (strncmp(cfg.url, "sqlite:", 7) == 0)
        return -1;
    long long n = -2;
    PGconn *c = PQconnectdb(cfg.url);
    const char *vals[2] = {kind, ref};
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r =
            PQexecParams(c, "SELECT COUNT(*) FROM event_outbox WHERE kind = $1 AND ref = $2", 2,
                         NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return n;
}

/* PostgreSQL: the row version (xmin) of worker @wid ("" on SQLite or when unknown). */
static void
pg_worker_version(const char *wid, char out[32])
{
    out[0] = '\0';
    if (strncmp(cfg.url, "sqlite:", 7) == 0)
        return;
    PGconn *c = PQconnectdb(cfg.url);
    const char *vals[1] = {wid};
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r =
            PQexecParams(c, "SELECT xmin::text FROM worker_registrations WHERE worker_id = $1", 1,
                         NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            snprintf(out, 32, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    PQfinish(c);
}

/*
 * A settlement writes each user's row once: the buyer's charge and refund of a metered job in one
 * write (PostgreSQL: one outbox row), each movement with its own ledger row and the balance after
 * it.  The worker's row is written only when its reputation moves: 50 completed out of the last
 * 50 stays so when one more completes (no new row version), a timeout moves it.
 */
static int
t_settle_writes(void)
{
    struct coord_job j;
    struct coord_worker wk;
    struct coord_ledger_list l;
    char v0[32], v1[32];
    const char *w = id("w"), *buyer = id("buyer");
    OK(worker(w, id("seller"), 64, 65536));
    job_init(&j, id("m"), buyer, 2250, 2, 512, 5);
    j.pricing = COORD_PRICING_METERED;
    j.rate = (struct coord_rate){100, 50}; /* 225 micro-credits a second */
    j.timeout_seconds = 10;
    OK(coord_store_job_submit(S, &j, &E));
    long long before = pg_outbox_rows("credits", buyer);
    if (run_to_end(id("m"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    long long after = pg_outbox_rows("credits", buyer);
    CHECK(before == -1 || after - before == 1);
    OK(coord_store_ledger_list(S, buyer, 2, 0, &l, &E));
    bool rows = l.len == 2 && l.items[0].kind == COORD_LEDGER_REFUND && l.items[0].amount == 1800 &&
                l.items[0].held == -1800 && l.items[0].balance == START_CREDITS - 450 &&
                l.items[1].kind == COORD_LEDGER_CHARGE && l.items[1].amount == 0 &&
                l.items[1].held == -450 && l.items[1].balance == START_CREDITS - 2250;
    coord_ledger_list_release(&l);
    CHECK(rows);
    OK(coord_store_check_invariant(S, &E));

    /* 49 more completed: 50 of 50, the highest score. */
    char name[32];
    for (int i = 0; i < 54; i++) {
        if (i == 49)
            pg_worker_version(w, v0);
        snprintf(name, sizeof(name), "c%d", i);
        OK(submit(id(name), buyer, CREDIT, 1, 100, 5));
        if (run_to_end(id(name), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
            return -1;
    }
    /* Five past the window's 50: the score stayed, the row was not written again. */
    pg_worker_version(w, v1);
    CHECK(strcmp(v0, v1) == 0);
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 981818); /* (4 + 50) / (5 + 50) */
    OK(submit(id("t"), buyer, CREDIT, 1, 100, 5));
    if (run_to_end(id("t"), w, COORD_JOB_FAILED, COORD_FAIL_TIMEOUT, false) < 0)
        return -1;
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 963636); /* (4 + 49) / (5 + 50) */
    pg_worker_version(w, v0);
    CHECK(strcmp(v0, v1) != 0 || !v0[0]);
    OK(submit(id("c"), buyer, CREDIT, 1, 100, 5));
    if (run_to_end(id("c"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 963636); /* the timeout is still in the window */
    OK(coord_store_check_invariant(S, &E));
    return 0;
}

/* Run @sql (no parameters) on the store's database through a connection of its own. */
static int
raw_sql(const char *sql)
{
    int rc = -1;
    if (strncmp(cfg.url, "sqlite:", 7) == 0) {
        sqlite3 *db;
        if (sqlite3_open(coord_store_sqlite_path(cfg.url), &db) == SQLITE_OK &&
            sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
            rc = 0;
        sqlite3_close(db);
        return rc;
    }
    PGconn *c = PQconnectdb(cfg.url);
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/*
 * A settlement the database refuses (the buyer's hold no longer covers the charge: on
 * PostgreSQL the server's function fails, its COMMIT sent with it is not run) leaves nothing
 * behind: the job is still running, no ledger row, the store's next calls work, and the finish
 * goes through once the hold is back.
 */
static int
t_settle_refused(void)
{
    int attempt;
    bool changed = true;
    int64_t c, h;
    struct coord_job j;
    char sql[256];
    const char *w = id("w"), *buyer = id("buyer");
    OK(worker(w, id("seller"), 4, 4096));
    OK(submit(id("job"), buyer, 3 * CREDIT, 1, 100, 5));
    OK(claim(id("job"), w, &attempt));
    OK(coord_store_job_started(S, id("job"), w, attempt, &E));
    snprintf(sql, sizeof(sql), "UPDATE users SET held = held - 1 WHERE user_id = '%s'", buyer);
    OK(raw_sql(sql));
    FAILS(finish(id("job"), w, attempt, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_INTERNAL);
    CHECK(!changed);
    OK(job_status(id("job"), &j));
    bool running = j.status == COORD_JOB_RUNNING && !j.has_charged;
    coord_job_release(&j);
    CHECK(running);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(h, 3 * CREDIT - 1);
    struct coord_ledger_list l;
    OK(coord_store_ledger_list(S, buyer, 1, 0, &l, &E));
    bool last_hold = l.len == 1 && l.items[0].kind == COORD_LEDGER_HOLD;
    coord_ledger_list_release(&l);
    CHECK(last_hold);
    snprintf(sql, sizeof(sql), "UPDATE users SET held = held + 1 WHERE user_id = '%s'", buyer);
    OK(raw_sql(sql));
    OK(finish(id("job"), w, attempt, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(changed);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(h, 0);
    OK(coord_store_check_invariant(S, &E));
    return 0;
}

/*
 * One write of the job row per step: a claim returns the row it assigned (with its code), a
 * start is fenced in its one statement, and a finish records the final state and `charged`
 * together (on PostgreSQL one outbox row per step: submit, claim, start, finish).  A known
 * buyer's submit grants nothing again; an unknown buyer and an unknown payee are created with
 * the starting credits.
 */
static int
t_one_write_per_step(void)
{
    int64_t c, h;
    struct coord_job j;
    const char *w = id("w"), *owner = id("seller"), *buyer = id("buyer");
    OK(worker(w, owner, 4, 4096));
    OK(submit(id("job"), buyer, 3 * CREDIT, 1, 100, 5));
    OK(submit(id("job2"), buyer, 2 * CREDIT, 1, 100, 5));
    struct coord_ledger_list l;
    OK(coord_store_ledger_list(S, buyer, 10, 0, &l, &E));
    size_t grants = 0;
    for (size_t i = 0; i < l.len; i++)
        grants += l.items[i].kind == COORD_LEDGER_GRANT;
    size_t rows = l.len;
    coord_ledger_list_release(&l);
    CHECK_EQ(rows, 3);
    CHECK_EQ(grants, 1);

    OK(coord_store_job_claim(S, id("job"), w, &j, &E));
    bool whole =
        j.status == COORD_JOB_ASSIGNED && j.attempts == 1 && !strcmp(j.assigned_worker, w) &&
        j.code && !strcmp(j.code, "print(\"Hello World\")") &&
        !strcmp(j.command, "python script.py") && j.assigned_at > 0 && j.cost == 3 * CREDIT;
    coord_job_release(&j);
    CHECK(whole);
    FAILS(coord_store_job_started(S, id("job"), w, 2, &E), CO_E_CONFLICT);
    FAILS(coord_store_job_started(S, id("job"), id("other"), 1, &E), CO_E_CONFLICT);
    OK(job_status(id("job"), &j));
    bool assigned = j.status == COORD_JOB_ASSIGNED && j.started_at == 0;
    coord_job_release(&j);
    CHECK(assigned);
    OK(coord_store_job_started(S, id("job"), w, 1, &E));
    OK(coord_store_job_started(S, id("job"), w, 1, &E)); /* repeated: nothing changes */
    OK(job_status(id("job"), &j));
    bool running = j.status == COORD_JOB_RUNNING && j.started_at > 0 && !j.has_charged;
    coord_job_release(&j);
    CHECK(running);

    bool changed = false;
    OK(finish(id("job"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(changed);
    OK(job_status(id("job"), &j));
    bool charged = j.status == COORD_JOB_COMPLETED && j.has_charged && j.charged == 3 * CREDIT;
    coord_job_release(&j);
    CHECK(charged);
    long long outbox = pg_outbox_rows("job", id("job"));
    CHECK(outbox == -1 || outbox == 4);
    OK(balance(owner, &c, &h)); /* the payee was created at its first payout */
    CHECK_EQ(c, START_CREDITS + 3 * CREDIT);

    /* Ended without running: `charged` is 0, written with the final state. */
    OK(coord_store_job_claim(S, id("job2"), w, &j, &E));
    coord_job_release(&j);
    enum coord_job_status was;
    OK(coord_store_job_cancel(S, id("job2"), &j, &was, &E));
    bool refunded = was == COORD_JOB_ASSIGNED && j.status == COORD_JOB_CANCELLED && j.has_charged &&
                    j.charged == 0;
    coord_job_release(&j);
    CHECK(refunded);
    outbox = pg_outbox_rows("job", id("job2"));
    CHECK(outbox == -1 || outbox == 3);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 3 * CREDIT);
    CHECK_EQ(h, 0);
    return 0;
}

/*
 * Retention prunes worker_outcome rows no reputation window reads: older than the last 50 of
 * their worker and of their owner, in batches; every score stays what it was.
 */
static int
t_retention_outcomes(void)
{
    const char *w1 = id("w1"), *w2 = id("w2");
    struct coord_worker a, b;
    struct coord_retention_counts c;
    OK(worker(w1, id("seller"), 4, 4096));
    OK(worker(w2, id("other"), 4, 4096));
    for (int i = 0; i < 3; i++)
        OK(coord_store_outcome_record(S, w2, NULL, COORD_OUTCOME_LOST, &E));
    for (int i = 0; i < 55; i++)
        OK(coord_store_outcome_record(S, w1, NULL,
                                      i < 5 ? COORD_OUTCOME_TIMEOUT : COORD_OUTCOME_COMPLETED, &E));
    OK(coord_store_worker_get(S, w1, &a, &E));
    CHECK_EQ(a.reputation, 981818); /* the last 50 completed: 54 / 55 */
    int64_t pruned = 0;
    OK(coord_store_retention_step(S, 0, co_wall_ms(), 2, &c, &E));
    CHECK_EQ(c.outcomes, 2); /* a batch */
    pruned += c.outcomes;
    do {
        OK(coord_store_retention_step(S, 0, co_wall_ms(), 2, &c, &E));
        pruned += c.outcomes;
    } while (c.outcomes > 0);
    CHECK_EQ(pruned, 5); /* w1's 5 timeouts; w2's 3 rows are its whole window */
    OK(coord_store_worker_get(S, w1, &b, &E));
    CHECK_EQ(b.reputation, 981818);
    CHECK_EQ(b.owner_reputation, 981818);
    OK(coord_store_worker_get(S, w2, &b, &E));
    CHECK_EQ(b.owner_reputation, 500000); /* (4 + 0) / (5 + 3) */
    /* The window moves on from the rows kept: one timeout, (4 + 49) / (5 + 50). */
    OK(coord_store_outcome_record(S, w1, NULL, COORD_OUTCOME_TIMEOUT, &E));
    OK(coord_store_worker_get(S, w1, &b, &E));
    CHECK_EQ(b.reputation, 963636);
    OK(coord_store_retention_step(S, 0, co_wall_ms(), 100, &c, &E));
    CHECK_EQ(c.outcomes, 1);
    return 0;
}

static int
t_finish_failed(void)
{
    int64_t c, h;
    struct coord_job j;
    const char *w = id("w");
    OK(worker(w, id("seller"), 4, 4096));
    OK(submit(id("exit1"), id("buyer"), 5 * CREDIT, 1, 100, 5));
    if (run_to_end(id("exit1"), w, COORD_JOB_FAILED, COORD_FAIL_EXIT_CODE, false) < 0)
        return -1;
    OK(coord_store_job_get(S, id("exit1"), false, &j, &E));
    int ok = j.status == COORD_JOB_FAILED && j.failure == COORD_FAIL_EXIT_CODE && j.exit_code == 1;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(id("seller"), &c, &h)); /* failed after running: charged */
    CHECK_EQ(c, START_CREDITS + 5 * CREDIT);
    /* Platform fault: refunded. */
    OK(submit(id("sbx"), id("buyer"), 3 * CREDIT, 1, 100, 5));
    if (run_to_end(id("sbx"), w, COORD_JOB_FAILED, COORD_FAIL_SANDBOX_ERROR, true) < 0)
        return -1;
    OK(coord_store_job_get(S, id("sbx"), false, &j, &E));
    ok = j.status == COORD_JOB_FAILED && j.failure == COORD_FAIL_SANDBOX_ERROR;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(id("seller"), &c, &h));
    CHECK_EQ(c, START_CREDITS + 5 * CREDIT);
    OK(balance(id("buyer"), &c, &h));
    CHECK_EQ(c, START_CREDITS - 5 * CREDIT);
    CHECK_EQ(h, 0);
    /* A timeout reported without having sent "started" (assigned -> failed) is charged. */
    OK(submit(id("timeout"), id("buyer"), CREDIT, 1, 100, 5));
    int attempt;
    bool changed;
    OK(claim(id("timeout"), w, &attempt));
    OK(finish(id("timeout"), w, attempt, COORD_JOB_FAILED, COORD_FAIL_TIMEOUT, false, &changed));
    CHECK(changed);
    OK(balance(id("seller"), &c, &h));
    CHECK_EQ(c, START_CREDITS + 6 * CREDIT);
    return 0;
}

static int
t_finish_idempotent(void)
{
    int64_t c, h, c2, h2;
    bool changed = true;
    const char *w = id("w");
    OK(worker(w, id("seller"), 4, 4096));
    OK(submit(id("job"), id("buyer"), 4 * CREDIT, 1, 100, 5));
    if (run_to_end(id("job"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(balance(id("seller"), &c, &h));
    OK(finish(id("job"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(!changed);
    OK(finish(id("job"), w, 1, COORD_JOB_FAILED, COORD_FAIL_EXIT_CODE, false, &changed));
    CHECK(!changed);
    OK(finish(id("job"), w, 1, COORD_JOB_FAILED, COORD_FAIL_SANDBOX_ERROR, true, &changed));
    CHECK(!changed);
    OK(balance(id("seller"), &c2, &h2));
    CHECK_EQ(c2, c);
    struct coord_job j;
    OK(job_status(id("job"), &j));
    int ok = j.status == COORD_JOB_COMPLETED;
    coord_job_release(&j);
    CHECK(ok);
    /* A report for a pending job (never claimed) is refused. */
    OK(submit(id("pend"), id("buyer"), CREDIT, 1, 100, 5));
    FAILS(finish(id("pend"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_CONFLICT);
    FAILS(finish(id("nojob"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_NOTFOUND);
    return 0;
}

static int
t_cancel_states(void)
{
    int64_t c, h;
    int attempt;
    bool changed;
    struct coord_job j;
    enum coord_job_status was;
    const char *w = id("w"), *buyer = id("buyer");
    OK(worker(w, id("seller"), 8, 8192));
    OK(submit(id("pending"), buyer, 10 * CREDIT, 1, 100, 5));
    OK(submit(id("assigned"), buyer, 20 * CREDIT, 1, 100, 5));
    OK(submit(id("running"), buyer, 30 * CREDIT, 1, 100, 5));
    OK(submit(id("done"), buyer, 5 * CREDIT, 1, 100, 5));
    OK(claim(id("assigned"), w, &attempt));
    OK(claim(id("running"), w, &attempt));
    OK(coord_store_job_started(S, id("running"), w, attempt, &E));
    if (run_to_end(id("done"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;

    OK(coord_store_job_cancel(S, id("pending"), &j, &was, &E));
    int ok = was == COORD_JOB_PENDING && j.status == COORD_JOB_CANCELLED &&
             j.failure == COORD_FAIL_CANCELLED;
    coord_job_release(&j);
    CHECK(ok);
    OK(coord_store_job_cancel(S, id("assigned"), &j, &was, &E));
    ok = was == COORD_JOB_ASSIGNED && j.status == COORD_JOB_CANCELLED &&
         !strcmp(j.assigned_worker, w);
    coord_job_release(&j);
    CHECK(ok);
    OK(coord_store_job_cancel(S, id("running"), &j, &was, &E));
    ok = was == COORD_JOB_RUNNING && j.status == COORD_JOB_CANCELLED;
    coord_job_release(&j);
    CHECK(ok);
    FAILS(coord_store_job_cancel(S, id("done"), &j, &was, &E), CO_E_CONFLICT);
    CHECK_EQ(was, COORD_JOB_COMPLETED);
    FAILS(coord_store_job_cancel(S, id("pending"), &j, &was, &E), CO_E_CONFLICT);
    FAILS(coord_store_job_cancel(S, id("nojob"), &j, &was, &E), CO_E_NOTFOUND);

    /* Refunds for pending and assigned, charges for running and done. */
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 35 * CREDIT);
    CHECK_EQ(h, 0);
    OK(balance(id("seller"), &c, &h));
    CHECK_EQ(c, START_CREDITS + 35 * CREDIT);
    /* The killed job's late report changes nothing. */
    OK(finish(id("running"), w, attempt, COORD_JOB_FAILED, COORD_FAIL_KILLED, false, &changed));
    CHECK(!changed);
    OK(job_status(id("running"), &j));
    ok = j.status == COORD_JOB_CANCELLED;
    coord_job_release(&j);
    CHECK(ok);
    /* Claiming a cancelled job fails. */
    FAILS(claim(id("pending"), w, &attempt), CO_E_CONFLICT);
    return 0;
}

static int
t_lease_release(void)
{
    int64_t c, h;
    int attempt;
    bool changed;
    struct coord_job j;
    char **ids = NULL;
    size_t n = 0;
    const char *w = id("w"), *w2 = id("w2"), *buyer = id("buyer");
    OK(worker(w, NULL, 4, 4096));
    OK(worker(w2, NULL, 4, 4096));
    struct coord_job sj;
    job_init(&sj, id("job"), buyer, 9 * CREDIT, 1, 100, 5);
    sj.max_attempts = 2;
    OK(coord_store_job_submit(S, &sj, &E));
    OK(submit(id("other"), buyer, CREDIT, 1, 100, 5));

    OK(claim(id("job"), w, &attempt));
    CHECK_EQ(attempt, 1);
    OK(coord_store_job_started(S, id("job"), w, 1, &E));
    OK(claim(id("other"), w, &attempt));

    /* The worker's lease: expired only when its heartbeat is older than the cut-off. */
    struct coord_worker_list wl;
    OK(coord_store_worker_expired(S, co_wall_ms() - 60000, &wl, &E));
    bool seen = false;
    for (size_t i = 0; i < wl.len; i++)
        seen |= !strcmp(wl.items[i].worker_id, w);
    coord_worker_list_release(&wl);
    CHECK(!seen);
    OK(coord_store_worker_expired(S, co_wall_ms() + 1000, &wl, &E));
    for (size_t i = 0; i < wl.len; i++)
        if (!strcmp(wl.items[i].worker_id, w))
            seen = wl.items[i].running_jobs == 2;
    coord_worker_list_release(&wl);
    CHECK(seen);

    OK(coord_store_worker_release_jobs(S, w, &ids, &n, &E));
    CHECK_EQ(n, 2);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    ids = NULL;
    n = 0;
    OK(job_status(id("job"), &j));
    int ok = j.status == COORD_JOB_PENDING && j.attempts == 1 && !*j.assigned_worker &&
             j.started_at == 0;
    coord_job_release(&j);
    CHECK(ok);
    /* The lost attempt's late reports are fenced off. */
    FAILS(coord_store_job_started(S, id("job"), w, 1, &E), CO_E_CONFLICT);
    FAILS(finish(id("job"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_CONFLICT);

    /* Second attempt on w2, lost again: max_attempts reached, failed and refunded. */
    OK(claim(id("job"), w2, &attempt));
    CHECK_EQ(attempt, 2);
    FAILS(finish(id("job"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed),
          CO_E_CONFLICT);
    OK(coord_store_worker_release_jobs(S, w2, &ids, &n, &E));
    ok = n == 1 && !strcmp(ids[0], id("job"));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    CHECK(ok);
    OK(job_status(id("job"), &j));
    ok = j.status == COORD_JOB_FAILED && j.failure == COORD_FAIL_WORKER_LOST && j.attempts == 2;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - CREDIT);
    CHECK_EQ(h, CREDIT);
    /* A worker without jobs releases nothing. */
    OK(coord_store_worker_release_jobs(S, w2, NULL, NULL, &E));
    /* Several buyers refunded in one release. */
    const char *w3 = id("w3");
    OK(worker(w3, NULL, 8, 8192));
    for (int i = 0; i < 3; i++) {
        char jid[CO_ID_MAX + 1], bid[CO_ID_MAX + 1];
        snprintf(jid, sizeof(jid), "%s-m%d", run_tag, i);
        snprintf(bid, sizeof(bid), "%s-mb%d", run_tag, 2 - i);
        job_init(&sj, jid, bid, 2 * CREDIT, 1, 100, 5);
        sj.max_attempts = 1;
        OK(coord_store_job_submit(S, &sj, &E));
        OK(claim(jid, w3, &attempt));
    }
    n = 0;
    ids = NULL;
    OK(coord_store_worker_release_jobs(S, w3, &ids, &n, &E));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    CHECK_EQ(n, 3);
    for (int i = 0; i < 3; i++) {
        char bid[CO_ID_MAX + 1];
        snprintf(bid, sizeof(bid), "%s-mb%d", run_tag, i);
        OK(balance(bid, &c, &h));
        CHECK_EQ(c, START_CREDITS);
        CHECK_EQ(h, 0);
    }
    return 0;
}

static int
t_output(void)
{
    char *out = NULL, *errs = NULL;
    size_t ol, el;
    bool trunc = true;
    const char bin[] = {'a', '\0', 'b', (char)0xff, (char)0xc3, '\n'};
    OK(submit(id("job"), id("buyer"), CREDIT, 1, 100, 5));
    OK(coord_store_output_get(S, id("job"), &out, &ol, &errs, &el, &trunc, &E));
    int ok = ol == 0 && el == 0 && !trunc && !strcmp(out, "");
    free(out);
    free(errs);
    CHECK(ok);
    OK(coord_store_output_append(S, id("job"), 1, "hello ", 6, &E));
    OK(coord_store_output_append(S, id("job"), 1, "world\n", 6, &E));
    OK(coord_store_output_append(S, id("job"), 2, bin, sizeof(bin), &E));
    OK(coord_store_output_get(S, id("job"), &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 12 && !memcmp(out, "hello world\n", 12) && el == sizeof(bin) &&
         !memcmp(errs, bin, sizeof(bin)) && !trunc;
    free(out);
    free(errs);
    CHECK(ok);
    /* The cap: stdout keeps its first OUTPUT_CAP bytes, then says it was truncated. */
    char chunk[600];
    memset(chunk, 'x', sizeof(chunk));
    OK(coord_store_output_append(S, id("job"), 1, chunk, sizeof(chunk), &E));
    OK(coord_store_output_append(S, id("job"), 1, chunk, sizeof(chunk), &E));
    OK(coord_store_output_append(S, id("job"), 1, chunk, sizeof(chunk), &E));
    OK(coord_store_output_get(S, id("job"), &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == OUTPUT_CAP && !memcmp(out, "hello world\nxxx", 15) && out[OUTPUT_CAP - 1] == 'x' &&
         trunc && el == sizeof(bin);
    free(out);
    free(errs);
    CHECK(ok);
    FAILS(coord_store_output_append(S, id("nojob"), 1, "x", 1, &E), CO_E_NOTFOUND);
    FAILS(coord_store_output_get(S, id("nojob"), &out, &ol, &errs, &el, &trunc, &E), CO_E_NOTFOUND);
    FAILS(coord_store_output_append(S, id("job"), 3, "x", 1, &E), CO_E_INVAL);
    return 0;
}

/*
 * The placeable pending read (placement, issue 12): only shapes the agents can run (image, cores,
 * RAM), buyers taking turns within a priority; and the requeue that gives an attempt back.
 */
static int
t_pending_fit(void)
{
    const char *img = id("img"), *a = id("buyer-a"), *b = id("buyer-b"), *w = id("w");
    char images[128];
    snprintf(images, sizeof(images), "[\"%s\", \"%s\"]", img, id("img-unused"));
    const char *names[] = {id("a1"), id("b1"), id("a2"), id("b2"), id("a3")};
    const char *buyers[] = {a, b, a, b, a};
    /* Submitted oldest first: a1, a2, a3, then b1, b2 (after them in age). */
    const int order[] = {0, 2, 4, 1, 3};
    for (int i = 0; i < 5; i++) {
        struct coord_job j;
        int k = order[i];
        job_init(&j, names[k], buyers[k], CREDIT, 1, 100, 5);
        j.image = (char *)img;
        OK(coord_store_job_submit(S, &j, &E));
    }
    struct coord_job j;
    job_init(&j, id("too-wide"), a, CREDIT, 64, 100, 9);
    j.image = (char *)img;
    OK(coord_store_job_submit(S, &j, &E));
    job_init(&j, id("too-big"), a, CREDIT, 1, 65536, 9);
    j.image = (char *)img;
    OK(coord_store_job_submit(S, &j, &E));
    job_init(&j, id("no-image"), a, CREDIT, 1, 100, 9);
    j.image = (char *)id("img-missing");
    OK(coord_store_job_submit(S, &j, &E));

    struct coord_job_fit fit = {.max_cores = 4, .max_ram_mb = 8192, .images_json = images};
    struct coord_job_list l;
    OK(coord_store_job_pending_fit(S, 100, &fit, &l, &E));
    int ok = l.len == 5;
    for (size_t i = 0; ok && i < 5; i++)
        ok = strcmp(l.items[i].job_id, names[i]) == 0; /* a1 b1 a2 b2 a3 */
    coord_job_list_release(&l);
    CHECK(ok);
    /* The first two of the same order (the first N are chosen before the rows are read). */
    OK(coord_store_job_pending_fit(S, 2, &fit, &l, &E));
    ok = l.len == 2 && strcmp(l.items[0].job_id, names[0]) == 0 &&
         strcmp(l.items[1].job_id, names[1]) == 0;
    coord_job_list_release(&l);
    CHECK(ok);

    /* A lost attempt given back: pending, the attempt counter kept, one more allowed. */
    int attempt = 0;
    OK(worker(w, NULL, 4, 8192));
    OK(claim(names[0], w, &attempt));
    CHECK_EQ(attempt, 1);
    FAILS(coord_store_job_requeue_free(S, names[0], w, 2, &E), CO_E_CONFLICT);
    FAILS(coord_store_job_requeue_free(S, names[1], w, 1, &E), CO_E_CONFLICT); /* pending */
    OK(coord_store_job_requeue_free(S, names[0], w, 1, &E));
    OK(job_status(names[0], &j));
    ok = j.status == COORD_JOB_PENDING && j.attempts == 1 && j.max_attempts == 4 &&
         !*j.assigned_worker;
    coord_job_release(&j);
    CHECK(ok);
    OK(claim(names[0], w, &attempt));
    CHECK_EQ(attempt, 2);
    /* Leave nothing pending or running for the cases after this one. */
    const char *left[] = {names[0], names[1],       names[2],      names[3],
                          names[4], id("too-wide"), id("too-big"), id("no-image")};
    for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
        enum coord_job_status was;
        OK(coord_store_job_cancel(S, left[i], &j, &was, &E));
        coord_job_release(&j);
    }
    return 0;
}

/*
 * Fair share across several buyers, priorities and shapes with more pending jobs than the limit:
 * a buyer's turns count its placeable jobs of every shape in age order (not per shape), its
 * unplaceable jobs take no turn, and a limit below the pending count gives a prefix of the same
 * order (a read that stopped at a buyer's first N jobs, placeable or not, or at N per shape,
 * would lose a later turn or number it wrongly).
 */
static int
t_pending_fair_turns(void)
{
    const char *img = id("img-fair"), *a = id("fair-a"), *b = id("fair-b"), *c = id("fair-c");
    char images[128];
    snprintf(images, sizeof(images), "[\"%s\"]", img);
    /* Submitted in this order (age order); shape s = 1 core, m = 2 cores, w = 64 (unplaceable). */
    static const struct {
        const char *name;
        char buyer, shape;
        int priority;
    } sub[] = {
        {"a7s1", 'a', 's', 7}, {"a7w1", 'a', 'w', 7}, {"a7m1", 'a', 'm', 7}, {"a7w2", 'a', 'w', 7},
        {"b7s1", 'b', 's', 7}, {"a7s2", 'a', 's', 7}, {"a7w3", 'a', 'w', 7}, {"a7m2", 'a', 'm', 7},
        {"a7s3", 'a', 's', 7}, {"b7m1", 'b', 'm', 7}, {"c5s1", 'c', 's', 5}, {"a5m1", 'a', 'm', 5},
        {"c5s2", 'c', 's', 5}, {"a5s1", 'a', 's', 5}, {"c5m1", 'c', 'm', 5}, {"a5s2", 'a', 's', 5},
    };
    enum { N = sizeof(sub) / sizeof(sub[0]) };
    const char *names[N];
    for (int i = 0; i < N; i++) {
        struct coord_job j;
        names[i] = id(sub[i].name);
        job_init(&j, names[i],
                 sub[i].buyer == 'a'   ? a
                 : sub[i].buyer == 'b' ? b
                                       : c,
                 CREDIT,
                 sub[i].shape == 's'   ? 1
                 : sub[i].shape == 'm' ? 2
                                       : 64,
                 sub[i].shape == 's' ? 100 : 200, sub[i].priority);
        j.image = (char *)img;
        OK(coord_store_job_submit(S, &j, &E));
    }
    /* Priority 7 first, buyers a and b taking turns (a's turns: s1 m1 s2 m2 s3), then 5. */
    static const char *want[] = {"a7s1", "b7s1", "a7m1", "b7m1", "a7s2", "a7m2", "a7s3",
                                 "c5s1", "a5m1", "c5s2", "a5s1", "c5m1", "a5s2"};
    enum { W = sizeof(want) / sizeof(want[0]) };
    struct coord_job_fit fit = {.max_cores = 4, .max_ram_mb = 8192, .images_json = images};
    static const int limits[] = {100, W, 9, 7, 5, 2, 1};
    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
        struct coord_job_list l;
        OK(coord_store_job_pending_fit(S, limits[k], &fit, &l, &E));
        size_t n = limits[k] < W ? (size_t)limits[k] : W;
        int ok = l.len == n;
        for (size_t i = 0; ok && i < n; i++) {
            ok = strcmp(l.items[i].job_id, id(want[i])) == 0;
            if (!ok)
                fprintf(stderr, "limit %d: row %zu is %s, want %s\n", limits[k], i,
                        l.items[i].job_id, id(want[i]));
        }
        if (l.len != n)
            fprintf(stderr, "limit %d: %zu rows, want %zu\n", limits[k], l.len, n);
        coord_job_list_release(&l);
        CHECK(ok);
    }
    /* Leave nothing pending for the cases after this one. */
    for (int i = 0; i < N; i++) {
        struct coord_job j;
        enum coord_job_status was;
        OK(coord_store_job_cancel(S, names[i], &j, &was, &E));
        coord_job_release(&j);
    }
    return 0;
}

/* The ids of @l equal @want (@n of them). */
static bool
list_is(const struct coord_job_list *l, const char *const *want, size_t n)
{
    if (l->len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l->items[i].job_id, want[i]) != 0)
            return false;
    }
    return true;
}

/*
 * Fair-share turns over two priorities and three buyers, with a limit that cuts a priority in
 * the middle and a buyer held back at its max_running_jobs (PostgreSQL reads each buyer's first
 * N jobs only: the order must be the one of a numbering of every pending job).
 */
static int
t_pending_fit_turns(void)
{
    const char *a = id("a"), *b = id("b"), *c = id("c"), *w = id("w");
    const char *names[] = {id("a3-1"), id("a3-2"), id("a3-3"), id("b7-1"),
                           id("b7-2"), id("c7-1"), id("a7-1"), id("c3-1")};
    const char *buyers[] = {a, a, a, b, b, c, a, c};
    const int prio[] = {3, 3, 3, 7, 7, 7, 7, 3};
    for (int i = 0; i < 8; i++) {
        struct coord_job j;
        job_init(&j, names[i], buyers[i], CREDIT, 1, 100, prio[i]);
        OK(coord_store_job_submit(S, &j, &E));
    }
    struct coord_job_fit fit = {.max_cores = 4, .max_ram_mb = 8192, .images_json = "[\"default\"]"};
    struct coord_job_list l;
    const char *all[] = {names[3], names[5], names[6], names[4],
                         names[0], names[7], names[1], names[2]};
    OK(coord_store_job_pending_fit(S, 100, &fit, &l, &E));
    bool ok = list_is(&l, all, 8);
    coord_job_list_release(&l);
    CHECK(ok);
    OK(coord_store_job_pending_fit(S, 5, &fit, &l, &E));
    ok = list_is(&l, all, 5);
    coord_job_list_release(&l);
    CHECK(ok);
    /* b runs one job at a cap of one: its other job is held back, the others keep their turns. */
    int attempt = 0;
    OK(worker(w, NULL, 4, 8192));
    OK(claim(names[3], w, &attempt));
    struct coord_buyer_cap_list caps;
    OK(coord_store_job_pending_fit_capped(S, 100, &fit, 1, &l, &caps, &E));
    const char *unheld[] = {names[5], names[6], names[0], names[7], names[1], names[2]};
    ok = list_is(&l, unheld, 6);
    coord_job_list_release(&l);
    free(caps.items);
    CHECK(ok);
    return 0;
}

/* Single-job release: fenced, attempt + 1 on the next claim, failed and refunded past the max. */
static int
t_job_release(void)
{
    int64_t c, h;
    int attempt = 0, ok;
    bool changed = false;
    enum coord_job_status after = COORD_JOB_CANCELLED;
    struct coord_job j;
    char *out = NULL, *errs = NULL;
    size_t ol = 0, el = 0;
    bool trunc = false;
    const char *w = id("w"), *w2 = id("w2"), *buyer = id("buyer"), *job = id("job");
    OK(worker(w, NULL, 4, 4096));
    OK(worker(w2, NULL, 4, 4096));
    struct coord_job sj;
    job_init(&sj, job, buyer, 5 * CREDIT, 1, 100, 5);
    sj.max_attempts = 2;
    OK(coord_store_job_submit(S, &sj, &E));
    OK(submit(id("other"), buyer, CREDIT, 1, 100, 5));

    FAILS(coord_store_job_release(S, job, w, 0, &after, &E), CO_E_CONFLICT); /* pending */
    FAILS(coord_store_job_release(S, id("nojob"), w, 1, &after, &E), CO_E_NOTFOUND);
    OK(claim(job, w, &attempt));
    CHECK_EQ(attempt, 1);
    OK(claim(id("other"), w, &attempt));
    FAILS(coord_store_job_release(S, job, w2, 1, &after, &E), CO_E_CONFLICT);
    FAILS(coord_store_job_release(S, job, w, 2, &after, &E), CO_E_CONFLICT);
    OK(job_status(job, &j));
    ok = j.status == COORD_JOB_ASSIGNED && j.attempts == 1 && !strcmp(j.assigned_worker, w);
    coord_job_release(&j);
    CHECK(ok);
    OK(coord_store_job_started(S, job, w, 1, &E));
    OK(coord_store_output_append_attempt(S, job, w, 1, 1, "one", 3, &E));

    /* Lost by the agent: pending again, the hold kept, the other job of the worker untouched. */
    OK(coord_store_job_release(S, job, w, 1, &after, &E));
    CHECK_EQ(after, COORD_JOB_PENDING);
    OK(job_status(job, &j));
    ok = j.status == COORD_JOB_PENDING && j.attempts == 1 && !*j.assigned_worker &&
         j.started_at == 0 && j.assigned_at == 0;
    coord_job_release(&j);
    CHECK(ok);
    OK(job_status(id("other"), &j));
    ok = j.status == COORD_JOB_ASSIGNED && !strcmp(j.assigned_worker, w);
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 6 * CREDIT);
    CHECK_EQ(h, 6 * CREDIT);
    /* The released attempt's reports are fenced off, a second release too. */
    FAILS(coord_store_job_started(S, job, w, 1, &E), CO_E_CONFLICT);
    FAILS(finish(job, w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed), CO_E_CONFLICT);
    FAILS(coord_store_job_release(S, job, w, 1, &after, &E), CO_E_CONFLICT);

    /* The same worker claims it again: attempt 2, no output yet. */
    OK(claim(job, w, &attempt));
    CHECK_EQ(attempt, 2);
    OK(coord_store_output_get(S, job, &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 0 && el == 0;
    free(out);
    free(errs);
    CHECK(ok);

    /* Lost again at max_attempts: failed with worker_lost and refunded, once. */
    OK(coord_store_job_release(S, job, w, 2, &after, &E));
    CHECK_EQ(after, COORD_JOB_FAILED);
    OK(job_status(job, &j));
    ok = j.status == COORD_JOB_FAILED && j.failure == COORD_FAIL_WORKER_LOST && j.attempts == 2 &&
         j.completed_at > 0;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - CREDIT);
    CHECK_EQ(h, CREDIT);
    FAILS(coord_store_job_release(S, job, w, 2, &after, &E), CO_E_CONFLICT);
    /* A late result of the lost attempt changes nothing: the job is final already. */
    OK(finish(job, w, 2, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(!changed);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - CREDIT);
    return 0;
}

/*
 * Batches: one transaction for several store calls.  A failing call undoes only itself (its job
 * row and its hold together), nothing is visible to another connection before the commit, and a
 * rollback undoes every call.
 */
/*
 * A finish does not wait for its worker's row (PostgreSQL: a claim holds it until its commit):
 * the reputation update is then skipped and made by coord_store_worker_repute_pending (the lease
 * tick).  SQLite has one writer, so nothing holds the row there: the finish updates it at once.
 */
static int
t_repute_after_finish(void)
{
    int attempt = 0;
    bool changed = false, pg = strcmp(coord_store_backend(S), "postgres") == 0;
    struct coord_worker wk;
    struct coord_job j;
    struct coord_store *other = NULL;
    co_err e2 = CO_ERR_INIT;
    const char *w = id("w"), *buyer = id("buyer");

    OK(worker(w, id("owner"), 4, 4096));
    OK(submit(id("a"), buyer, CREDIT, 1, 100, 5));
    OK(submit(id("b"), buyer, CREDIT, 1, 100, 5));
    OK(claim(id("a"), w, &attempt));
    OK(coord_store_job_started(S, id("a"), w, attempt, &E));
    if (pg) {
        /* Another connection's claim holds the worker's row until it commits. */
        if (coord_store_open(&cfg, &other, &e2) < 0)
            FAIL("open a second connection: %s", e2.msg);
        if (coord_store_batch_begin(other, &e2) < 0 ||
            coord_store_job_claim(other, id("b"), w, &j, &e2) < 0) {
            coord_store_close(other);
            FAIL("claim on the second connection: %s", e2.msg);
        }
        coord_job_release(&j);
    }
    int rc = finish(id("a"), w, attempt, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed);
    if (other) {
        int crc = coord_store_batch_commit(other, &e2);
        coord_store_close(other);
        if (crc < 0)
            FAIL("commit on the second connection: %s", e2.msg);
    }
    OK(rc);
    CHECK(changed);
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, pg ? 800000 : 833333); /* skipped while the claim held the row */
    OK(coord_store_worker_repute_pending(S, &E));
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK_EQ(wk.reputation, 833333);              /* (4 + 1) / (5 + 1) */
    OK(coord_store_worker_repute_pending(S, &E)); /* nothing left: a no-op */
    return 0;
}

static int
t_batch(void)
{
    int64_t c, h;
    int attempt = 0, ok;
    bool changed = false;
    struct coord_job j;
    struct coord_store *other = NULL;
    co_err e2 = CO_ERR_INIT;
    const char *w = id("w"), *buyer = id("buyer"), *owner = id("owner");

    if (coord_store_open(&cfg, &other, &e2) < 0)
        FAIL("open a second connection: %s", e2.msg);
    OK(worker(w, owner, 4, 4096));
    OK(submit(id("before"), buyer, CREDIT, 1, 100, 5));

    OK(coord_store_batch_begin(S, &E));
    /* A batch inside the batch nests: its rollback undoes only itself, its commit joins. */
    OK(coord_store_batch_begin(S, &E));
    OK(submit(id("nested-undone"), id("nbuyer"), CREDIT, 1, 100, 5));
    coord_store_batch_rollback(S);
    FAILS(job_status(id("nested-undone"), &j), CO_E_NOTFOUND);
    OK(coord_store_batch_begin(S, &E));
    OK(submit(id("nested-kept"), id("nbuyer"), CREDIT, 1, 100, 5));
    OK(coord_store_batch_commit(S, &E));
    OK(submit(id("a"), buyer, 2 * CREDIT, 1, 100, 5));
    /* A duplicate id (an SQL error inside the batch) and a short balance fail alone. */
    FAILS(submit(id("a"), buyer, 2 * CREDIT, 1, 100, 5), CO_E_CONFLICT);
    FAILS(submit(id("big"), buyer, START_CREDITS, 1, 100, 5), CO_E_FUNDS);
    FAILS(coord_store_worker_heartbeat(S, id("nobody"), &E), CO_E_NOTFOUND);
    OK(coord_store_worker_heartbeat(S, w, &E));
    OK(claim(id("a"), w, &attempt));
    CHECK_EQ(attempt, 1);
    FAILS(claim(id("a"), w, &attempt), CO_E_CONFLICT);
    OK(coord_store_job_started(S, id("a"), w, 1, &E));
    OK(coord_store_output_append_attempt(S, id("a"), w, 1, 1, "batched", 7, &E));
    OK(finish(id("a"), w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(changed);
    /* Reads inside the batch see its writes. */
    OK(job_status(id("a"), &j));
    ok = j.status == COORD_JOB_COMPLETED;
    coord_job_release(&j);
    CHECK(ok);
    /* Another connection sees none of it yet. */
    co_err_clear(&e2);
    int rc = coord_store_job_get(other, id("a"), false, &j, &e2);
    if (rc == 0)
        coord_job_release(&j);
    if (rc == 0 || e2.code != CO_E_NOTFOUND)
        FAIL("line %d: uncommitted job visible to another connection (rc %d, %s)", __LINE__, rc,
             e2.msg);
    OK(coord_store_batch_commit(S, &E));
    FAILS(coord_store_batch_commit(S, &E), CO_E_INTERNAL);

    /* Committed: visible everywhere, money moved once, the failed calls left nothing. */
    co_err_clear(&e2);
    rc = coord_store_job_get(other, id("a"), false, &j, &e2);
    ok = rc == 0 && j.status == COORD_JOB_COMPLETED && j.attempts == 1;
    if (rc == 0)
        coord_job_release(&j);
    coord_store_close(other);
    CHECK(ok);
    FAILS(job_status(id("big"), &j), CO_E_NOTFOUND);
    FAILS(job_status(id("nested-undone"), &j), CO_E_NOTFOUND);
    OK(job_status(id("nested-kept"), &j));
    coord_job_release(&j);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 3 * CREDIT);
    CHECK_EQ(h, CREDIT);
    OK(balance(owner, &c, &h));
    CHECK_EQ(c, START_CREDITS + 2 * CREDIT);
    OK(coord_store_check_invariant(S, &E));

    /* A rolled-back batch leaves nothing. */
    OK(coord_store_batch_begin(S, &E));
    OK(submit(id("b"), buyer, 5 * CREDIT, 1, 100, 5));
    OK(claim(id("before"), w, &attempt));
    coord_store_batch_rollback(S);
    FAILS(job_status(id("b"), &j), CO_E_NOTFOUND);
    OK(job_status(id("before"), &j));
    ok = j.status == COORD_JOB_PENDING && j.attempts == 0;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, START_CREDITS - 3 * CREDIT);
    CHECK_EQ(h, CREDIT);
    /* And the store works as before afterwards, one transaction per call. */
    OK(submit(id("after"), buyer, CREDIT, 1, 100, 5));
    return 0;
}

/* Output per attempt: a re-run starts empty, and appends are fenced to the current attempt. */
static int
t_output_attempts(void)
{
    char *out = NULL, *errs = NULL;
    size_t ol = 0, el = 0;
    bool trunc = false;
    int attempt = 0, ok;
    char **ids = NULL;
    size_t n = 0;
    const char *w = id("w"), *w2 = id("w2"), *job = id("job");
    char big[OUTPUT_CAP + 10];
    memset(big, 'a', sizeof(big));

    OK(worker(w, NULL, 2, 1024));
    OK(worker(w2, NULL, 2, 1024));
    OK(submit(job, id("buyer"), CREDIT, 1, 100, 5));
    /* Nothing is running yet: a fenced append is refused. */
    FAILS(coord_store_output_append_attempt(S, job, w, 0, 1, "x", 1, &E), CO_E_CONFLICT);
    OK(claim(job, w, &attempt));
    CHECK_EQ(attempt, 1);
    OK(coord_store_output_append_attempt(S, job, w, 1, 1, "first\n", 6, &E));
    OK(coord_store_output_append_attempt(S, job, w, 1, 2, big, sizeof(big), &E));
    FAILS(coord_store_output_append_attempt(S, job, w, 2, 1, "x", 1, &E), CO_E_CONFLICT);
    FAILS(coord_store_output_append_attempt(S, job, w2, 1, 1, "x", 1, &E), CO_E_CONFLICT);
    FAILS(coord_store_output_append_attempt(S, id("nojob"), w, 1, 1, "x", 1, &E), CO_E_NOTFOUND);
    OK(coord_store_output_get(S, job, &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 6 && !memcmp(out, "first\n", 6) && el == OUTPUT_CAP && trunc;
    free(out);
    free(errs);
    CHECK(ok);

    /* The worker is lost: attempt 1's late output is fenced off. */
    OK(coord_store_worker_release_jobs(S, w, &ids, &n, &E));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    CHECK_EQ(n, 1);
    FAILS(coord_store_output_append_attempt(S, job, w, 1, 1, "late", 4, &E), CO_E_CONFLICT);

    /* Attempt 2 starts with no output and the whole cap. */
    OK(claim(job, w2, &attempt));
    CHECK_EQ(attempt, 2);
    OK(coord_store_output_get(S, job, &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 0 && el == 0 && !trunc;
    free(out);
    free(errs);
    CHECK(ok);
    FAILS(coord_store_output_append_attempt(S, job, w, 1, 1, "late", 4, &E), CO_E_CONFLICT);
    OK(coord_store_output_append_attempt(S, job, w2, 2, 1, "second\n", 7, &E));
    OK(coord_store_output_append_attempt(S, job, w2, 2, 2, big, OUTPUT_CAP, &E));
    OK(coord_store_job_started(S, job, w2, 2, &E));
    OK(coord_store_output_append_attempt(S, job, w2, 2, 1, "more\n", 5, &E));
    OK(coord_store_output_get(S, job, &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 12 && !memcmp(out, "second\nmore\n", 12) && el == OUTPUT_CAP && !trunc;
    free(out);
    free(errs);
    CHECK(ok);

    /* Finished: the output stays, and further appends for it are refused. */
    bool changed = false;
    OK(finish(job, w2, 2, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(changed);
    FAILS(coord_store_output_append_attempt(S, job, w2, 2, 1, "x", 1, &E), CO_E_CONFLICT);
    OK(coord_store_output_get(S, job, &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 12 && !memcmp(out, "second\nmore\n", 12);
    free(out);
    free(errs);
    CHECK(ok);
    return 0;
}

/*
 * Output with offsets (an agent sending an attempt's output again): stored bytes are skipped,
 * missing ones appended; after the end only the last attempt's worker may fill in what is missing.
 */
static int
t_output_offsets(void)
{
    char *out = NULL, *errs = NULL;
    size_t ol = 0, el = 0;
    bool trunc = false, changed = false;
    int attempt = 0, ok;
    const char *w = id("w"), *w2 = id("w2"), *job = id("job");

    OK(worker(w, NULL, 2, 1024));
    OK(worker(w2, NULL, 2, 1024));
    OK(submit(job, id("buyer"), CREDIT, 1, 100, 5));
    OK(claim(job, w, &attempt));
    CHECK_EQ(attempt, 1);
    OK(coord_store_output_put(S, job, w, 1, false, 1, 0, "abc", 3, &E));
    OK(coord_store_output_put(S, job, w, 1, false, 1, 0, "abc", 3, &E));   /* again: dropped */
    OK(coord_store_output_put(S, job, w, 1, false, 1, 1, "bcdef", 5, &E)); /* overlaps: "def" */
    OK(coord_store_output_put(S, job, w, 1, false, 2, 0, "E", 1, &E));
    OK(coord_store_output_put(S, job, w, 1, false, 1, -1, "g", 1, &E)); /* no offset: appended */
    FAILS(coord_store_output_put(S, job, w2, 1, true, 1, 7, "x", 1, &E), CO_E_CONFLICT);
    /* A running job is not final: final_ok changes nothing for another attempt. */
    FAILS(coord_store_output_put(S, job, w, 2, true, 1, 7, "x", 1, &E), CO_E_CONFLICT);
    OK(finish(job, w, 1, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed));
    CHECK(changed);
    /* Final: a live append is refused; the last attempt's worker fills in what is missing. */
    FAILS(coord_store_output_put(S, job, w, 1, false, 1, 7, "h", 1, &E), CO_E_CONFLICT);
    FAILS(coord_store_output_put(S, job, w2, 1, true, 1, 7, "h", 1, &E), CO_E_CONFLICT);
    FAILS(coord_store_output_put(S, job, w, 2, true, 1, 7, "h", 1, &E), CO_E_CONFLICT);
    OK(coord_store_output_put(S, job, w, 1, true, 1, 0, "abcdefg", 7, &E));
    OK(coord_store_output_put(S, job, w, 1, true, 1, 7, "hi", 2, &E));
    OK(coord_store_output_put(S, job, w, 1, true, 2, 0, "EF", 2, &E));
    OK(coord_store_output_get(S, job, &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 9 && !memcmp(out, "abcdefghi", 9) && el == 2 && !memcmp(errs, "EF", 2) && !trunc;
    free(out);
    free(errs);
    CHECK(ok);
    return 0;
}

/* Idempotency keys: one reservation per key, the answer kept, expiry; retention purges. */
/* Claim due callbacks of this run's jobs (others of an earlier run on the same database are
 * recorded as delivered and not counted). */
static int
wh_claim(int64_t now, struct coord_webhook_due_list *out, size_t *mine)
{
    OK(coord_store_webhook_claim(S, now, now + 60000, 100, out, &E));
    *mine = 0;
    for (size_t i = 0; i < out->len; i++)
        if (strncmp(out->items[i].job.job_id, run_tag, strlen(run_tag)) == 0)
            (*mine)++;
    return 0;
}

static int
wh_record(const struct coord_webhook_due *d, const char *state, int code, int64_t next_at)
{
    struct coord_webhook_outcome o = {d->delivery_id,
                                      d->job.job_id,
                                      d->attempts + 1,
                                      co_wall_ms(),
                                      code,
                                      code == 200 ? NULL : "HTTP 500",
                                      7,
                                      state,
                                      0,
                                      next_at};
    OK(coord_store_webhook_record(S, &o, &E));
    return 0;
}

/*
 * Callbacks (0008): a job's callback is queued by every transaction that makes it final
 * (completed, cancelled, failed on release, failed with its worker lost), not before; a claim
 * leases its rows; records log attempts and retry or end the delivery.
 */
static int
t_webhook_queue(void)
{
    const char *w = id("w"), *buyer = id("buyer");
    const char *names[] = {id("done"), id("cancel"), id("lost"), id("release")};
    int attempt;
    OK(worker(w, NULL, 16, 16384));
    for (int i = 0; i < 4; i++) {
        struct coord_job j;
        job_init(&j, names[i], buyer, CREDIT, 1, 100, 5);
        j.max_attempts = 1;
        j.callback_url = (char *)"http://hook.example/cb";
        OK(coord_store_job_submit(S, &j, &E));
    }
    OK(submit(id("plain"), buyer, CREDIT, 1, 100, 5));
    struct coord_webhook_due_list l;
    size_t mine;
    if (wh_claim(co_wall_ms(), &l, &mine) < 0)
        return -1;
    for (size_t i = 0; i < l.len; i++) /* an earlier run's leftovers */
        if (strncmp(l.items[i].job.job_id, run_tag, strlen(run_tag)) != 0)
            wh_record(&l.items[i], "delivered", 200, 0);
    coord_webhook_due_list_release(&l);
    CHECK_EQ(mine, 0); /* waiting: nothing is final yet */
    struct coord_webhook_log log;
    OK(coord_store_webhook_log(S, names[0], &log, &E));
    CHECK(log.found && !strcmp(log.state, "waiting") && log.len == 0);
    coord_webhook_log_release(&log);
    OK(coord_store_webhook_log(S, id("plain"), &log, &E));
    CHECK(!log.found);
    coord_webhook_log_release(&log);

    if (run_to_end(names[0], w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    struct coord_job cancelled;
    OK(coord_store_job_cancel(S, names[1], &cancelled, NULL, &E));
    coord_job_release(&cancelled);
    OK(claim(names[2], w, &attempt));
    char **ids = NULL;
    size_t n = 0;
    OK(claim(names[3], w, &attempt));
    OK(coord_store_job_release(S, names[3], w, attempt, NULL, &E));
    OK(coord_store_worker_release_jobs(S, w, &ids, &n, &E));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);

    int64_t now = co_wall_ms();
    if (wh_claim(now, &l, &mine) < 0)
        return -1;
    CHECK_EQ(mine, 4);
    CHECK_EQ(l.len, 4);
    for (size_t i = 0; i < l.len; i++) {
        const struct coord_webhook_due *d = &l.items[i];
        CHECK(!strcmp(d->url, "http://hook.example/cb"));
        CHECK_EQ(d->attempts, 0);
        CHECK(!strcmp(d->job.buyer_id, buyer) && d->job.status != COORD_JOB_PENDING &&
              d->job.completed_at > 0 && d->secret && !d->secret[0]);
    }
    /* Leased: not claimed again until the lease ends. */
    struct coord_webhook_due_list again;
    if (wh_claim(now + 1000, &again, &mine) < 0)
        return -1;
    coord_webhook_due_list_release(&again);
    CHECK_EQ(mine, 0);
    /* One fails and is due again at once; the others are delivered. */
    char failed_job[CO_ID_MAX + 1];
    co_strlcpy(failed_job, l.items[0].job.job_id, sizeof(failed_job));
    for (size_t i = 0; i < l.len; i++)
        if (wh_record(&l.items[i], i == 0 ? "pending" : "delivered", i == 0 ? 500 : 200, now) < 0)
            return -1;
    coord_webhook_due_list_release(&l);
    OK(coord_store_webhook_secret_set(S, buyer, "s3cret", &E));
    if (wh_claim(now + 1, &l, &mine) < 0)
        return -1;
    CHECK_EQ(mine, 1);
    CHECK(!strcmp(l.items[0].job.job_id, failed_job) && l.items[0].attempts == 1 &&
          !strcmp(l.items[0].secret, "s3cret"));
    if (wh_record(&l.items[0], "failed", 500, 0) < 0)
        return -1;
    coord_webhook_due_list_release(&l);
    OK(coord_store_webhook_log(S, failed_job, &log, &E));
    int ok = log.found && !strcmp(log.state, "failed") && log.len == 2 &&
             log.items[0].attempt == 1 && log.items[0].status_code == 500 &&
             !strcmp(log.items[0].error, "HTTP 500") && log.items[1].attempt == 2 &&
             log.done_at > 0 && log.attempts == 2;
    coord_webhook_log_release(&log);
    CHECK(ok);
    return 0;
}

static int
t_idempotency(void)
{
    struct coord_idem_key k = {id("cred"), "POST", "/api/v1/submit", id("key")};
    struct coord_idem_key other = {id("cred2"), "POST", "/api/v1/submit", id("key")};
    struct coord_idem_answer prev;
    bool reserved = false;
    int64_t now = co_wall_ms();

    OK(coord_store_idem_reserve(S, &k, "h1", now, 60000, &reserved, &prev, &E));
    CHECK(reserved);
    /* A second reservation sees the first, not yet answered (status 0). */
    OK(coord_store_idem_reserve(S, &k, "h1", now, 60000, &reserved, &prev, &E));
    CHECK(!reserved);
    CHECK_EQ(prev.status, 0);
    coord_idem_answer_release(&prev);
    OK(coord_store_idem_complete(S, &k, 201, "{\"a\":1}", 7, &E));
    OK(coord_store_idem_reserve(S, &k, "h2", now, 60000, &reserved, &prev, &E));
    CHECK(!reserved);
    CHECK_EQ(prev.status, 201);
    CHECK(strcmp(prev.body_hash, "h1") == 0);
    CHECK(prev.len == 7 && memcmp(prev.response, "{\"a\":1}", 7) == 0);
    coord_idem_answer_release(&prev);
    /* Another credential: another key. */
    OK(coord_store_idem_reserve(S, &other, "h1", now, 1, &reserved, &prev, &E));
    CHECK(reserved);
    FAILS(coord_store_idem_complete(S, &(struct coord_idem_key){id("cred3"), "POST", "/x", "k"},
                                    200, "", 0, &E),
          CO_E_NOTFOUND);
    /* Expired (ttl 1 ms): a new reservation replaces it. */
    OK(coord_store_idem_reserve(S, &other, "h9", now + 10, 60000, &reserved, &prev, &E));
    CHECK(reserved);
    /* Retention purges expired keys only (@now far ahead: both are expired then). */
    struct coord_retention_counts c;
    OK(coord_store_retention_step(S, 0, now + 30000, 1000, &c, &E));
    CHECK_EQ(c.idem_keys, 0);
    OK(coord_store_retention_step(S, 0, now + 120000, 1, &c, &E));
    CHECK_EQ(c.idem_keys, 1); /* batch of one */
    OK(coord_store_retention_step(S, 0, now + 120000, 1000, &c, &E));
    CHECK(c.idem_keys >= 1);
    OK(coord_store_idem_reserve(S, &k, "h3", now + 120000, 60000, &reserved, &prev, &E));
    CHECK(reserved);
    return 0;
}

static int
t_grant(void)
{
    struct coord_user u;
    OK(coord_store_user_grant(S, id("user"), 25 * CREDIT + 500000, &u, &E));
    CHECK_EQ(u.credits, START_CREDITS + 25 * CREDIT + 500000);
    CHECK_EQ(u.held, 0);
    OK(coord_store_user_grant(S, id("user"), 1, &u, &E));
    CHECK_EQ(u.credits, START_CREDITS + 25 * CREDIT + 500001);
    FAILS(coord_store_user_grant(S, id("user"), INT64_MAX, &u, &E), CO_E_RANGE);
    FAILS(coord_store_user_grant(S, id("user"), INT64_C(1000000000) * CREDIT, &u, &E), CO_E_RANGE);
    OK(coord_store_user_grant(S, id("rich"), INT64_C(1000000000) * CREDIT - START_CREDITS, &u, &E));
    CHECK_EQ(u.credits, INT64_C(1000000000) * CREDIT);
    FAILS(coord_store_user_grant(S, id("rich"), 1, &u, &E), CO_E_RANGE);
    FAILS(coord_store_user_grant(S, id("user"), 0, &u, &E), CO_E_INVAL);
    FAILS(coord_store_user_grant(S, id("user"), -5, &u, &E), CO_E_INVAL);
    FAILS(coord_store_user_grant(S, "bad id!", 5, &u, &E), CO_E_INVAL);
    FAILS(coord_store_user_get(S, id("nouser"), &u, &E), CO_E_NOTFOUND);
    return 0;
}

static int
t_ledger_order(void)
{
    struct coord_ledger_list l;
    const char *w = id("w"), *buyer = id("buyer");
    OK(worker(w, id("seller"), 4, 4096));
    OK(submit(id("a"), buyer, 2 * CREDIT, 1, 100, 5));
    OK(coord_store_user_grant(S, buyer, 3 * CREDIT, NULL, &E));
    if (run_to_end(id("a"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(submit(id("b"), buyer, CREDIT, 1, 100, 5));
    struct coord_job j;
    OK(coord_store_job_cancel(S, id("b"), &j, NULL, &E));
    coord_job_release(&j);
    OK(coord_store_ledger_list(S, buyer, 100, 0, &l, &E));
    static const enum coord_ledger_kind want[] = {COORD_LEDGER_REFUND, COORD_LEDGER_HOLD,
                                                  COORD_LEDGER_CHARGE, COORD_LEDGER_GRANT,
                                                  COORD_LEDGER_HOLD,   COORD_LEDGER_GRANT};
    static const int64_t bal[] = {101 * CREDIT, 100 * CREDIT, 101 * CREDIT,
                                  101 * CREDIT, 98 * CREDIT,  100 * CREDIT};
    int ok = l.len == 6;
    for (size_t i = 0; ok && i < 6; i++)
        ok = l.items[i].kind == want[i] && l.items[i].balance == bal[i] &&
             (i == 0 || l.items[i].id < l.items[i - 1].id) && !strcmp(l.items[i].user_id, buyer);
    if (!ok && l.len == 6)
        for (size_t i = 0; i < 6; i++)
            fprintf(stderr, "  ledger %zu: %s %lld bal %lld\n", i,
                    coord_ledger_kind_name(l.items[i].kind), (long long)l.items[i].amount,
                    (long long)l.items[i].balance);
    coord_ledger_list_release(&l);
    CHECK(ok);
    OK(coord_store_ledger_list(S, buyer, 2, 1, &l, &E));
    ok = l.len == 2 && l.items[0].kind == COORD_LEDGER_HOLD &&
         l.items[1].kind == COORD_LEDGER_CHARGE && !strcmp(l.items[1].job_id, id("a"));
    coord_ledger_list_release(&l);
    CHECK(ok);
    OK(coord_store_ledger_list(S, id("seller"), 100, 0, &l, &E));
    ok = l.len == 2 && l.items[0].kind == COORD_LEDGER_PAYOUT && l.items[0].amount == 2 * CREDIT &&
         l.items[0].balance == START_CREDITS + 2 * CREDIT && l.items[1].kind == COORD_LEDGER_GRANT;
    coord_ledger_list_release(&l);
    CHECK(ok);
    FAILS(coord_store_ledger_list(S, id("nouser"), 10, 0, &l, &E), CO_E_NOTFOUND);
    return 0;
}

static int
t_health(void)
{
    struct coord_health a, b;
    OK(coord_store_health(S, &a, &E));
    OK(submit(id("p1"), id("buyer"), CREDIT, 1, 100, 5));
    OK(submit(id("p2"), id("buyer"), CREDIT, 1000, 100, 5)); /* fits nobody */
    OK(worker(id("idle"), NULL, 2, 2048));
    struct coord_worker w;
    memset(&w, 0, sizeof(w));
    co_strlcpy(w.worker_id, id("busy"), sizeof(w.worker_id));
    w.cpu_cores = 2;
    w.ram_mb = 2048;
    w.status = COORD_WORKER_BUSY;
    OK(coord_store_worker_upsert(S, &w, NULL, &E));
    OK(worker(id("gone"), NULL, 2, 2048));
    OK(coord_store_worker_set_status(S, id("gone"), COORD_WORKER_OFFLINE, &E));
    OK(coord_store_health(S, &b, &E));
    CHECK_EQ(b.jobs[COORD_JOB_PENDING] - a.jobs[COORD_JOB_PENDING], 2);
    CHECK_EQ(b.workers_total - a.workers_total, 3);
    CHECK_EQ(b.workers[COORD_WORKER_IDLE] - a.workers[COORD_WORKER_IDLE], 1);
    CHECK_EQ(b.workers[COORD_WORKER_BUSY] - a.workers[COORD_WORKER_BUSY], 1);
    CHECK_EQ(b.workers[COORD_WORKER_OFFLINE] - a.workers[COORD_WORKER_OFFLINE], 1);
    CHECK_EQ(b.total_credits - a.total_credits, START_CREDITS);
    CHECK_EQ(b.active_users - a.active_users, 1);
    CHECK_EQ(b.pending_unfit - a.pending_unfit, 1);
    /* A heartbeat revives an offline worker; unknown workers are reported. */
    OK(coord_store_worker_heartbeat(S, id("gone"), &E));
    struct coord_worker g;
    OK(coord_store_worker_get(S, id("gone"), &g, &E));
    CHECK_EQ(g.status, COORD_WORKER_IDLE);
    FAILS(coord_store_worker_heartbeat(S, id("nope"), &E), CO_E_NOTFOUND);
    FAILS(coord_store_worker_set_status(S, id("nope"), COORD_WORKER_IDLE, &E), CO_E_NOTFOUND);
    /* Heartbeats in one statement (the lease tick): known workers renewed, offline ones
     * revived, unknown ids ignored, more ids than one statement takes. */
    {
        size_t n = COORD_STORE_HEARTBEAT_BATCH + 3;
        char(*ids)[CO_ID_MAX + 1] = calloc(n, sizeof(*ids));
        for (size_t i = 0; i < n; i++)
            snprintf(ids[i], sizeof(ids[i]), "hb-unknown-%zu", i);
        co_strlcpy(ids[n - 1], id("gone"), sizeof(ids[0]));
        co_strlcpy(ids[7], id("idle"), sizeof(ids[0]));
        OK(coord_store_worker_set_status(S, id("gone"), COORD_WORKER_OFFLINE, &E));
        int64_t before = co_wall_ms();
        OK(coord_store_worker_heartbeat_many(S, ids, n, &E));
        OK(coord_store_worker_heartbeat_many(S, ids, 0, &E));
        free(ids);
        struct coord_worker h;
        OK(coord_store_worker_get(S, id("gone"), &h, &E));
        CHECK_EQ(h.status, COORD_WORKER_IDLE);
        CHECK(h.last_heartbeat >= before);
        OK(coord_store_worker_get(S, id("idle"), &h, &E));
        CHECK(h.last_heartbeat >= before);
    }
    /* Silent workers count as offline once the timeout has passed. */
    struct coord_store_config c2 = cfg;
    struct coord_store *s2 = NULL;
    c2.worker_timeout_ms = 1;
    OK(coord_store_open(&c2, &s2, &E));
    usleep(20 * 1000);
    int rc = coord_store_health(s2, &b, &E);
    coord_store_close(s2);
    if (rc < 0)
        FAIL("health: %s", E.msg);
    CHECK_EQ(b.workers[COORD_WORKER_OFFLINE], b.workers_total);
    CHECK_EQ(b.workers[COORD_WORKER_IDLE], 0);
    CHECK_EQ(b.pending_unfit, b.jobs[COORD_JOB_PENDING]);
    return 0;
}

static int
t_workers(void)
{
    struct coord_worker w, out;
    struct coord_worker_list l;
    memset(&w, 0, sizeof(w));
    co_strlcpy(w.worker_id, id("w"), sizeof(w.worker_id));
    co_strlcpy(w.owner_id, id("owner"), sizeof(w.owner_id));
    w.cpu_cores = 8;
    w.ram_mb = 16384;
    w.status = COORD_WORKER_IDLE;
    OK(coord_store_worker_upsert(S, &w, &out, &E));
    int ok = !strcmp(out.owner_id, id("owner")) && out.cpu_cores == 8 && out.ram_mb == 16384 &&
             out.last_heartbeat > 0 && out.created_at > 0 && !out.websocket;
    CHECK(ok);
    int64_t created = out.created_at;
    w.cpu_cores = 4;
    w.websocket = true;
    w.status = COORD_WORKER_BUSY;
    OK(coord_store_worker_upsert(S, &w, &out, &E));
    ok = out.cpu_cores == 4 && out.websocket && out.status == COORD_WORKER_BUSY &&
         out.created_at == created;
    CHECK(ok);
    OK(coord_store_worker_list(S, &l, &E));
    ok = false;
    for (size_t i = 0; i < l.len; i++) {
        if (i > 0 && strcmp(l.items[i - 1].worker_id, l.items[i].worker_id) >= 0) {
            ok = false;
            break;
        }
        if (!strcmp(l.items[i].worker_id, id("w")))
            ok = l.items[i].cpu_cores == 4;
    }
    coord_worker_list_release(&l);
    CHECK(ok);
    co_strlcpy(w.worker_id, "bad id", sizeof(w.worker_id));
    FAILS(coord_store_worker_upsert(S, &w, NULL, &E), CO_E_INVAL);
    FAILS(coord_store_worker_get(S, id("nope"), &out, &E), CO_E_NOTFOUND);
    return 0;
}

/* Two owners register one new worker id at once, each on its own connection. */
struct owner_race_arg {
    const char *worker;
    const char *owner;
    pthread_barrier_t *barrier;
    int result; /* 0 ok, else the co_err code */
};

static void *
owner_race(void *p)
{
    struct owner_race_arg *a = p;
    struct coord_store *s = NULL;
    co_err e = CO_ERR_INIT;
    int rc = coord_store_open(&cfg, &s, &e);
    pthread_barrier_wait(a->barrier);
    a->result = CO_E_INTERNAL;
    if (rc == 0) {
        rc = worker_on(s, a->worker, a->owner, 2, 1024, &e);
        a->result = rc < 0 ? (int)e.code : 0;
    }
    coord_store_close(s);
    return NULL;
}

static int
t_worker_owner(void)
{
    const char *w = id("w"), *alice = id("alice"), *mallory = id("mallory");
    struct coord_worker out;
    int64_t c, h;
    OK(worker(w, alice, 4, 4096));
    /* Another owner: refused, nothing changes; the owner itself: updated. */
    FAILS(worker(w, mallory, 8, 8192), CO_E_FORBIDDEN);
    OK(coord_store_worker_get(S, w, &out, &E));
    CHECK(!strcmp(out.owner_id, alice) && out.cpu_cores == 4);
    FAILS(worker(w, NULL, 8, 8192), CO_E_FORBIDDEN); /* "" = the worker id: another owner */
    OK(worker(w, alice, 6, 4096));
    OK(coord_store_worker_get(S, w, &out, &E));
    CHECK_EQ(out.cpu_cores, 6);
    OK(coord_store_worker_check_owner(S, w, alice, &E));
    FAILS(coord_store_worker_check_owner(S, w, mallory, &E), CO_E_FORBIDDEN);
    FAILS(coord_store_worker_check_owner(S, id("nope"), alice, &E), CO_E_NOTFOUND);
    /* Payouts go to the stored owner. */
    OK(submit(id("job"), id("buyer"), 3 * CREDIT, 1, 100, 5));
    if (run_to_end(id("job"), w, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    OK(balance(alice, &c, &h));
    CHECK_EQ(c, START_CREDITS + 3 * CREDIT);
    FAILS(balance(mallory, &c, &h), CO_E_NOTFOUND);
    /* A row from before ownership was recorded is claimed by its first registration, once. */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE worker_registrations SET owner_id = 'declared', owner_claimed_at = NULL "
             "WHERE worker_id = '%s'",
             w);
    OK(S->ops->exec_script(S, sql, &E));
    OK(worker(w, mallory, 2, 2048));
    OK(coord_store_worker_get(S, w, &out, &E));
    CHECK(!strcmp(out.owner_id, mallory));
    FAILS(worker(w, alice, 2, 2048), CO_E_FORBIDDEN);
    /* A new id registered by two owners at once: exactly one owns it. */
    for (int round = 0; round < 5; round++) {
        char name[16], wid[CO_ID_MAX + 1];
        snprintf(name, sizeof(name), "race-%d", round);
        co_strlcpy(wid, id(name), sizeof(wid));
        pthread_t th[2];
        pthread_barrier_t barrier;
        struct owner_race_arg a[2] = {{wid, alice, &barrier, 0}, {wid, mallory, &barrier, 0}};
        pthread_barrier_init(&barrier, NULL, 2);
        for (int i = 0; i < 2; i++)
            if (pthread_create(&th[i], NULL, owner_race, &a[i]) != 0)
                abort();
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        int won = a[0].result == 0 ? 0 : 1;
        CHECK((a[0].result == 0) != (a[1].result == 0));
        CHECK_EQ(a[1 - won].result, CO_E_FORBIDDEN);
        OK(coord_store_worker_get(S, wid, &out, &E));
        CHECK(!strcmp(out.owner_id, a[won].owner));
    }
    return 0;
}

/* The cap and running count of @buyer in @l, or -1 when it has no cap there. */
static int64_t
cap_of(const struct coord_buyer_cap_list *l, const char *buyer, int64_t *running)
{
    for (size_t i = 0; i < l->len; i++) {
        if (!strcmp(l->items[i].buyer_id, buyer)) {
            *running = l->items[i].running;
            return l->items[i].cap;
        }
    }
    return -1;
}

/* How many jobs of @buyer are in @l. */
static int
jobs_of(const struct coord_job_list *l, const char *buyer)
{
    int n = 0;
    for (size_t i = 0; i < l->len; i++)
        n += !strcmp(l->items[i].buyer_id, buyer);
    return n;
}

static int
t_pending_capped(void)
{
    const char *w = id("w"), *capped = id("capped"), *free_b = id("free"), *boss = id("boss");
    struct coord_job_list l;
    struct coord_buyer_cap_list caps;
    int64_t running = 0;
    int attempt;
    char sql[512];
    OK(worker(w, id("seller"), 8, 8192));
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        OK(submit(id(name), capped, CREDIT, 1, 100, 9));
        snprintf(name, sizeof(name), "b%d", i);
        OK(submit(id(name), boss, CREDIT, 1, 100, 5));
    }
    OK(submit(id("f0"), free_b, CREDIT, 1, 100, 1));
    OK(submit(id("f1"), free_b, CREDIT, 1, 100, 1));
    snprintf(sql, sizeof(sql),
             "UPDATE users SET limits = '{\"max_running_jobs\": 1}' WHERE user_id = '%s'; "
             "UPDATE users SET is_admin = 1, limits = '{\"max_running_jobs\": 1}' "
             "WHERE user_id = '%s'",
             capped, boss);
    OK(S->ops->exec_script(S, sql, &E));
    /* Nothing running: every job is read; only the capped buyer has a cap (default none). */
    OK(coord_store_job_pending_capped(S, 100, 0, &l, &caps, &E));
    int ok = jobs_of(&l, capped) == 3 && jobs_of(&l, free_b) == 2 && jobs_of(&l, boss) == 3 &&
             cap_of(&caps, capped, &running) == 1 && running == 0 &&
             cap_of(&caps, free_b, &running) < 0 && cap_of(&caps, boss, &running) < 0;
    coord_job_list_release(&l);
    free(caps.items);
    CHECK(ok);
    /* One of its jobs running: the capped buyer's jobs are left out of the read. */
    OK(claim(id("c0"), w, &attempt));
    OK(coord_store_job_started(S, id("c0"), w, attempt, &E));
    OK(coord_store_job_pending_capped(S, 100, 0, &l, &caps, &E));
    ok = jobs_of(&l, capped) == 0 && jobs_of(&l, free_b) == 2 && jobs_of(&l, boss) == 3 &&
         cap_of(&caps, capped, &running) == 1 && running == 1;
    coord_job_list_release(&l);
    free(caps.items);
    CHECK(ok);
    /* A default cap of 2 applies to the others; the admin has none; the override wins. */
    OK(claim(id("f0"), w, &attempt));
    OK(coord_store_job_pending_capped(S, 100, 2, &l, &caps, &E));
    ok = jobs_of(&l, capped) == 0 && jobs_of(&l, free_b) == 1 && jobs_of(&l, boss) == 3 &&
         cap_of(&caps, free_b, &running) == 2 && running == 1 &&
         cap_of(&caps, boss, &running) < 0 && cap_of(&caps, capped, &running) == 1;
    coord_job_list_release(&l);
    free(caps.items);
    CHECK(ok);
    OK(claim(id("f1"), w, &attempt));
    OK(coord_store_job_pending_capped(S, 100, 2, &l, &caps, &E));
    ok = jobs_of(&l, free_b) == 0 && jobs_of(&l, boss) == 3;
    coord_job_list_release(&l);
    free(caps.items);
    CHECK(ok);
    return 0;
}

static int
t_max_workers(void)
{
    struct coord_health h;
    struct coord_store_config c2 = cfg;
    struct coord_store *keep = S;
    OK(coord_store_health(S, &h, &E));
    int64_t online = h.workers_total - h.workers[COORD_WORKER_OFFLINE];
    c2.max_workers = online + 1;
    OK(coord_store_open(&c2, &S, &E));
    int rc = worker(id("one"), NULL, 1, 100);
    int rc2 = rc < 0 ? 0 : worker(id("two"), NULL, 1, 100);
    co_err e2 = E;
    int rc3 = worker(id("one"), NULL, 2, 200); /* updating an existing worker is fine */
    co_err e3 = E;
    coord_store_close(S);
    S = keep;
    if (rc < 0)
        FAIL("first worker refused: %s", E.msg);
    if (rc2 >= 0 || e2.code != CO_E_LIMIT)
        FAIL("second worker: rc %d code %s, expected limit", rc2, co_err_code_name(e2.code));
    if (rc3 < 0)
        FAIL("update refused: %s", e3.msg);
    struct coord_worker w;
    FAILS(coord_store_worker_get(S, id("two"), &w, &E), CO_E_NOTFOUND);
    OK(coord_store_worker_set_status(S, id("one"), COORD_WORKER_OFFLINE, &E));
    return 0;
}

static int
t_migrate_newer(void)
{
    OK(S->ops->exec_script(S,
                           "INSERT INTO schema_migrations (version, name, applied_at) "
                           "VALUES (999999, '999999_future.sql', 0)",
                           &E));
    FAILS(coord_store_migrate(S, sql_dir, &E), CO_E_CONFLICT);
    int found = strstr(E.msg, "newer") != NULL;
    OK(S->ops->exec_script(S, "DELETE FROM schema_migrations WHERE version = 999999", &E));
    CHECK(found);
    OK(coord_store_migrate(S, sql_dir, &E));
    FAILS(coord_store_migrate(S, "/nonexistent-sql-dir", &E), CO_E_SYS);
    /* The compiled-in migrations (NULL) know every version the files applied. */
    OK(coord_store_migrate(S, NULL, &E));
    return 0;
}

static int
t_restart(void)
{
    int64_t c, h;
    OK(submit(id("job"), id("buyer"), 3 * CREDIT, 1, 100, 5));
    OK(coord_store_output_append(S, id("job"), 1, "kept", 4, &E));
    coord_store_close(S);
    S = NULL;
    OK(coord_store_open(&cfg, &S, &E));
    OK(coord_store_migrate(S, sql_dir, &E));
    struct coord_job j;
    OK(coord_store_job_get(S, id("job"), true, &j, &E));
    int ok = j.status == COORD_JOB_PENDING && j.cost == 3 * CREDIT && j.code != NULL;
    coord_job_release(&j);
    CHECK(ok);
    OK(balance(id("buyer"), &c, &h));
    CHECK_EQ(c, START_CREDITS - 3 * CREDIT);
    CHECK_EQ(h, 3 * CREDIT);
    char *out, *errs;
    size_t ol, el;
    bool trunc;
    OK(coord_store_output_get(S, id("job"), &out, &ol, &errs, &el, &trunc, &E));
    ok = ol == 4 && !memcmp(out, "kept", 4);
    free(out);
    free(errs);
    CHECK(ok);
    return 0;
}

static int
t_urls(void)
{
    struct coord_store_config c = cfg;
    struct coord_store *s = NULL;
    char tmpl[] = "/tmp/cacheout-store-url.XXXXXX";
    char cwd[4096];

    c.url = "mysql://user:secret@db/x";
    FAILS(coord_store_open(&c, &s, &E), CO_E_INVAL);
    CHECK(strstr(E.msg, "secret") == NULL);
    c.url = "sqlite:///";
    FAILS(coord_store_open(&c, &s, &E), CO_E_INVAL);
    c.url = "postgresql://postgres@127.0.0.1:1/nothing";
    FAILS(coord_store_open(&c, &s, &E), CO_E_UNAVAILABLE);
    /* sqlite:///rel is relative to the working directory; missing folders are created. */
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK(mkdtemp(tmpl) != NULL);
    CHECK(chdir(tmpl) == 0);
    c.url = "sqlite:///var/sub/cacheout.db";
    int rc = coord_store_open(&c, &s, &E);
    if (rc == 0)
        rc = coord_store_migrate(s, sql_dir, &E);
    coord_store_close(s);
    s = NULL;
    bool made = access("var/sub/cacheout.db", F_OK) == 0;
    /* Without a URL the default file is var/cacheout.db. */
    c.url = NULL;
    int rc2 = coord_store_open(&c, &s, &E);
    coord_store_close(s);
    bool made2 = access("var/cacheout.db", F_OK) == 0;
    const char *files[] = {"var/sub/cacheout.db",     "var/sub/cacheout.db-wal",
                           "var/sub/cacheout.db-shm", "var/cacheout.db",
                           "var/cacheout.db-wal",     "var/cacheout.db-shm"};
    for (size_t i = 0; i < CO_ARRAY_LEN(files); i++)
        unlink(files[i]);
    rmdir("var/sub");
    rmdir("var");
    CHECK(chdir(cwd) == 0);
    rmdir(tmpl);
    if (rc < 0 || rc2 < 0)
        FAIL("relative sqlite url: %s", E.msg);
    CHECK(made);
    CHECK(made2);
    /* An absolute one: sqlite:////abs/path. */
    char abs[256];
    snprintf(abs, sizeof(abs), "sqlite:///%s.db", tmpl);
    c.url = abs;
    OK(coord_store_open(&c, &s, &E));
    CHECK_EQ(strcmp(coord_store_backend(s), "sqlite"), 0);
    coord_store_close(s);
    snprintf(abs, sizeof(abs), "%s.db", tmpl);
    made = access(abs, F_OK) == 0;
    unlink(abs);
    CHECK(made);
    return 0;
}

/* ---- concurrency ---- */

#define N_PARALLEL 50

struct par_arg {
    int i;
    const char *buyer;
    pthread_barrier_t *barrier;
    int result; /* 0 ok, else the co_err code */
    char msg[256];
};

static void *
par_submit(void *p)
{
    struct par_arg *a = p;
    struct coord_store *s = NULL;
    co_err e = CO_ERR_INIT;
    struct coord_job j;
    char jid[CO_ID_MAX + 1];

    a->result = CO_E_INTERNAL;
    int rc = coord_store_open(&cfg, &s, &e);
    pthread_barrier_wait(a->barrier);
    if (rc < 0) {
        co_strlcpy(a->msg, e.msg, sizeof(a->msg));
        return NULL;
    }
    snprintf(jid, sizeof(jid), "%s-par-%d", run_tag, a->i);
    job_init(&j, jid, a->buyer, 10 * CREDIT, 1, 100, 5);
    rc = coord_store_job_submit(s, &j, &e);
    a->result = rc < 0 ? (int)e.code : 0;
    co_strlcpy(a->msg, e.msg, sizeof(a->msg));
    coord_store_close(s);
    return NULL;
}

static int
t_parallel_submits(void)
{
    pthread_t th[N_PARALLEL];
    struct par_arg args[N_PARALLEL];
    pthread_barrier_t barrier;
    int accepted = 0, refused = 0, other = 0;
    char buyer[CO_ID_MAX + 1];
    int64_t c, h;

    co_strlcpy(buyer, id("buyer"), sizeof(buyer));
    pthread_barrier_init(&barrier, NULL, N_PARALLEL);
    for (int i = 0; i < N_PARALLEL; i++) {
        args[i] = (struct par_arg){.i = i, .buyer = buyer, .barrier = &barrier};
        if (pthread_create(&th[i], NULL, par_submit, &args[i]) != 0)
            abort();
    }
    for (int i = 0; i < N_PARALLEL; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < N_PARALLEL; i++) {
        if (args[i].result == 0)
            accepted++;
        else if (args[i].result == CO_E_FUNDS)
            refused++;
        else {
            other++;
            fprintf(stderr, "  submit %d: %s: %s\n", i, co_err_code_name(args[i].result),
                    args[i].msg);
        }
    }
    CHECK_EQ(other, 0);
    CHECK_EQ(accepted, 10);
    CHECK_EQ(refused, 40);
    OK(balance(buyer, &c, &h));
    CHECK_EQ(c, 0);
    CHECK_EQ(h, 100 * CREDIT);
    struct coord_job_list l;
    struct coord_job_filter f = {-1, buyer, NULL, 1000, 0, false};
    OK(coord_store_job_list(S, &f, &l, &E));
    size_t n = l.len;
    coord_job_list_release(&l);
    CHECK_EQ(n, 10);
    return 0;
}

struct race_arg {
    const char *worker;
    pthread_barrier_t *barrier;
    int claimed;
    int errors;
};

static void *
race_claim_next(void *p)
{
    struct race_arg *a = p;
    struct coord_store *s = NULL;
    co_err e = CO_ERR_INIT;
    struct coord_job j;
    int rc = coord_store_open(&cfg, &s, &e);
    pthread_barrier_wait(a->barrier);
    if (rc < 0) {
        a->errors++;
        return NULL;
    }
    for (;;) {
        rc = coord_store_job_claim_next(s, a->worker, &j, &e);
        if (rc < 0) {
            a->errors++;
            fprintf(stderr, "  claim_next: %s\n", e.msg);
            break;
        }
        if (rc == 0)
            break;
        a->claimed++;
        coord_job_release(&j);
    }
    coord_store_close(s);
    return NULL;
}

static int
t_parallel_claims(void)
{
    enum { NW = 4, NJ = 24 };
    pthread_t th[NW];
    struct race_arg args[NW];
    char wids[NW][CO_ID_MAX + 1];
    pthread_barrier_t barrier;
    char jid[CO_ID_MAX + 1];

    for (int i = 0; i < NJ; i++) {
        snprintf(jid, sizeof(jid), "%s-rj%d", run_tag, i);
        OK(submit(jid, id("buyer"), CREDIT / 2, 1, 100, 1 + i % 10));
    }
    for (int i = 0; i < NW; i++) {
        snprintf(wids[i], sizeof(wids[i]), "%s-rw%d", run_tag, i);
        OK(worker(wids[i], NULL, 6, 6000)); /* room for 6 one-core jobs each: 24 in all */
    }
    pthread_barrier_init(&barrier, NULL, NW);
    for (int i = 0; i < NW; i++) {
        args[i] = (struct race_arg){.worker = wids[i], .barrier = &barrier};
        if (pthread_create(&th[i], NULL, race_claim_next, &args[i]) != 0)
            abort();
    }
    int total = 0, errors = 0;
    for (int i = 0; i < NW; i++) {
        pthread_join(th[i], NULL);
        total += args[i].claimed;
        errors += args[i].errors;
    }
    pthread_barrier_destroy(&barrier);
    CHECK_EQ(errors, 0);
    CHECK_EQ(total, NJ);
    for (int i = 0; i < NW; i++) {
        struct coord_worker w;
        OK(coord_store_worker_get(S, wids[i], &w, &E));
        CHECK_EQ(w.used_cores, 6); /* never over capacity */
        CHECK_EQ(w.running_jobs, 6);
    }
    struct coord_job_list l;
    OK(coord_store_job_pending(S, 1000, &l, &E));
    int left = 0;
    for (size_t i = 0; i < l.len; i++)
        left += !strncmp(l.items[i].job_id, id("rj"), strlen(id("rj")));
    coord_job_list_release(&l);
    CHECK_EQ(left, 0);
    return 0;
}

/*
 * Mixed traffic: each thread buys with one user and sells through a worker owned by the next
 * thread's buyer, so settlements lock users in crossing orders.
 */
enum { MIX_THREADS = 4, MIX_ROUNDS = 40 };

struct mix_arg {
    int i;
    pthread_barrier_t *barrier;
    int errors;
    int done;
    char msg[256];
};

static void
mix_name(char *out, const char *what, int i)
{
    snprintf(out, CO_ID_MAX + 1, "%s-%s%d", run_tag, what, i);
}

static void *
mix_thread(void *p)
{
    struct mix_arg *a = p;
    struct coord_store *s = NULL;
    co_err e = CO_ERR_INIT;
    char buyer[CO_ID_MAX + 1], wid[CO_ID_MAX + 1], jid[CO_ID_MAX + 1];
    int rc = coord_store_open(&cfg, &s, &e);
    pthread_barrier_wait(a->barrier);
    if (rc < 0) {
        a->errors++;
        co_strlcpy(a->msg, e.msg, sizeof(a->msg));
        return NULL;
    }
    mix_name(buyer, "mb", a->i);
    mix_name(wid, "mw", a->i);
    for (int r = 0; r < MIX_ROUNDS; r++) {
        struct coord_job j;
        bool changed;
        snprintf(jid, sizeof(jid), "%s-mj%d-%d", run_tag, a->i, r);
        job_init(&j, jid, buyer, CREDIT / 4, 1, 100, 1 + r % 10);
        if (coord_store_job_submit(s, &j, &e) < 0)
            goto fail;
        rc = coord_store_job_claim_next(s, wid, &j, &e);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            continue;
        char got[CO_ID_MAX + 1];
        int attempt = j.attempts;
        co_strlcpy(got, j.job_id, sizeof(got));
        coord_job_release(&j);
        if (r % 5 == 4) {
            enum coord_job_status was;
            if (coord_store_job_cancel(s, got, &j, &was, &e) < 0 && e.code != CO_E_CONFLICT)
                goto fail;
            if (e.code != CO_E_CONFLICT)
                coord_job_release(&j);
            co_err_clear(&e);
            continue;
        }
        if (coord_store_job_started(s, got, wid, attempt, &e) < 0)
            goto fail;
        struct coord_job_result res = {.status = r % 3 ? COORD_JOB_COMPLETED : COORD_JOB_FAILED,
                                       .failure = r % 3 ? COORD_FAIL_NONE : COORD_FAIL_EXIT_CODE,
                                       .platform_fault = r % 6 == 0};
        if (coord_store_job_finish(s, got, wid, attempt, &res, &changed, &e) < 0)
            goto fail;
        a->done++;
        continue;
    fail:
        a->errors++;
        co_strlcpy(a->msg, e.msg, sizeof(a->msg));
        co_err_clear(&e);
    }
    coord_store_close(s);
    return NULL;
}

static int
t_parallel_mixed(void)
{
    pthread_t th[MIX_THREADS];
    struct mix_arg args[MIX_THREADS];
    pthread_barrier_t barrier;
    for (int i = 0; i < MIX_THREADS; i++) {
        char wid[CO_ID_MAX + 1], owner[CO_ID_MAX + 1];
        mix_name(wid, "mw", i);
        mix_name(owner, "mb", (i + 1) % MIX_THREADS);
        OK(worker(wid, owner, 2, 2048));
    }
    pthread_barrier_init(&barrier, NULL, MIX_THREADS);
    for (int i = 0; i < MIX_THREADS; i++) {
        args[i] = (struct mix_arg){.i = i, .barrier = &barrier};
        if (pthread_create(&th[i], NULL, mix_thread, &args[i]) != 0)
            abort();
    }
    int errors = 0, done = 0;
    for (int i = 0; i < MIX_THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += args[i].errors;
        done += args[i].done;
        if (args[i].errors)
            fprintf(stderr, "  thread %d: %d errors, last: %s\n", i, args[i].errors, args[i].msg);
    }
    pthread_barrier_destroy(&barrier);
    CHECK_EQ(errors, 0);
    CHECK(done > 0);
    return 0;
}

/* ---- crash: a process killed with SIGKILL loses no acknowledged job ---- */

static int
t_kill9(void)
{
    int fds[2];
    char buyer[CO_ID_MAX + 1];
    co_strlcpy(buyer, id("buyer"), sizeof(buyer));
    if (pipe(fds) < 0)
        FAIL("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        /* The child never touches the parent's connection: its own store, then submit forever. */
        struct coord_store *s = NULL;
        co_err e = CO_ERR_INIT;
        close(fds[0]);
        if (coord_store_open(&cfg, &s, &e) < 0)
            _exit(3);
        for (int i = 0;; i++) {
            struct coord_job j;
            char jid[CO_ID_MAX + 1];
            snprintf(jid, sizeof(jid), "%s-k%d", run_tag, i);
            job_init(&j, jid, buyer, 1000, 1, 100, 5);
            if (coord_store_job_submit(s, &j, &e) < 0)
                _exit(4);
            if (write(fds[1], &i, sizeof(i)) != (ssize_t)sizeof(i))
                _exit(5);
        }
    }
    close(fds[1]);
    int acked = -1, v, st;
    while (acked < 300 && read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
        acked = v;
    kill(pid, SIGKILL);
    while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
        acked = v; /* acknowledged before it died */
    close(fds[0]);
    waitpid(pid, &st, 0);
    if (!WIFSIGNALED(st))
        FAIL("the submitting process ended by itself (status %d) after %d jobs", st, acked + 1);
    CHECK(acked >= 300);
    /* A new connection, as a restarted coordinator would open. */
    struct coord_store *keep = S;
    OK(coord_store_open(&cfg, &S, &E));
    struct coord_job_filter f = {COORD_JOB_PENDING, buyer, NULL, 1000, 0, false};
    struct coord_job_list l;
    int rc = coord_store_job_list(S, &f, &l, &E);
    int rc2 = rc < 0 ? -1 : coord_store_check_invariant(S, &E);
    coord_store_close(S);
    S = keep;
    if (rc < 0 || rc2 < 0)
        FAIL("after the crash: %s", E.msg);
    size_t n = l.len;
    bool all = true;
    for (int i = 0; i <= acked && all; i++) {
        char jid[CO_ID_MAX + 1];
        bool seen = false;
        snprintf(jid, sizeof(jid), "%s-k%d", run_tag, i);
        for (size_t k = 0; k < l.len && !seen; k++)
            seen = !strcmp(l.items[k].job_id, jid);
        all = seen;
    }
    coord_job_list_release(&l);
    CHECK(all);
    CHECK((int64_t)n >= acked + 1 && (int64_t)n <= acked + 2); /* at most one unacknowledged */
    return 0;
}

/* ---- several coordinators starting at once on an empty database ---- */

struct mig_arg {
    const char *url;
    pthread_barrier_t *barrier;
    int rc;
    char msg[256];
};

static void *
mig_thread(void *p)
{
    struct mig_arg *a = p;
    struct coord_store_config c = cfg;
    struct coord_store *s = NULL;
    co_err e = CO_ERR_INIT;
    c.url = a->url;
    a->rc = coord_store_open(&c, &s, &e);
    pthread_barrier_wait(a->barrier);
    if (a->rc == 0)
        a->rc = coord_store_migrate(s, sql_dir, &e);
    if (a->rc == 0) {
        struct coord_job j;
        char jid[CO_ID_MAX + 1];
        snprintf(jid, sizeof(jid), "mig-%p", (void *)a);
        job_init(&j, jid, "mig-buyer", CREDIT, 1, 100, 5);
        a->rc = coord_store_job_submit(s, &j, &e);
    }
    co_strlcpy(a->msg, e.msg, sizeof(a->msg));
    coord_store_close(s);
    return NULL;
}

/* Migrate @url to version 1 only and write output the way version 1 stored it. */
static int
make_v1_database(const char *url)
{
    char dir[] = "/tmp/cacheout-sql-v1.XXXXXX";
    char path[512], target[512];
    struct coord_store_config c = cfg;
    struct coord_store *s = NULL;
    int rc = -1;

    c.url = url;
    if (!mkdtemp(dir))
        FAIL("mkdtemp: %s", strerror(errno));
    OK(coord_store_open(&c, &s, &E));
    const char *sub = coord_store_backend(s);
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    snprintf(target, sizeof(target), "%s/%s/0001_init.sql", sql_dir, sub);
    if (mkdir(path, 0700) == 0) {
        snprintf(path, sizeof(path), "%s/%s/0001_init.sql", dir, sub);
        if (symlink(target, path) == 0)
            rc = coord_store_migrate(s, dir, &E);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s", dir, sub);
        rmdir(path);
    }
    rmdir(dir);
    bool pg = strcmp(sub, "postgres") == 0;
    if (rc == 0)
        rc = s->ops->exec_script(
            s,
            pg ? "INSERT INTO users (user_id, username, credits, held, is_worker, created_at, "
                 "updated_at) VALUES ('legacy', 'legacy', 5, 0, 0, 0, 0);"
                 "INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, "
                 "created_at) VALUES ('legacy', NULL, 'grant', 5, 0, 5, NULL, 0);"
                 "INSERT INTO jobs (job_id, title, command, buyer_id, status, cost, "
                 "required_cores, required_ram_mb, priority, timeout_seconds, max_attempts, "
                 "created_at) VALUES ('legacy-job', 't', 'c', 'legacy', 'pending', 0, 1, 1, 5, "
                 "60, 3, 0);"
                 "INSERT INTO job_output VALUES ('legacy-job', '\\x6f6c64', '\\x00ff', 0, 0)"
               : "INSERT INTO users (user_id, username, credits, held, is_worker, created_at, "
                 "updated_at) VALUES ('legacy', 'legacy', 5, 0, 0, 0, 0);"
                 "INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, "
                 "created_at) VALUES ('legacy', NULL, 'grant', 5, 0, 5, NULL, 0);"
                 "INSERT INTO jobs (job_id, title, command, buyer_id, status, cost, "
                 "required_cores, required_ram_mb, priority, timeout_seconds, max_attempts, "
                 "created_at) VALUES ('legacy-job', 't', 'c', 'legacy', 'pending', 0, 1, 1, 5, "
                 "60, 3, 0);"
                 "INSERT INTO job_output VALUES ('legacy-job', X'6f6c64', X'00ff', 0, 0)",
            &E);
    coord_store_close(s);
    if (rc < 0)
        FAIL("version 1 database: %s", E.msg);
    return 0;
}

static int
t_concurrent_migrate(void)
{
    enum { NT = 4 };
    const char *url = getenv("CO_STORE_FRESH_URL");
    pthread_t th[NT];
    struct mig_arg args[NT];
    pthread_barrier_t barrier;
    if (make_v1_database(url) < 0)
        return -1;
    pthread_barrier_init(&barrier, NULL, NT);
    for (int i = 0; i < NT; i++) {
        args[i] = (struct mig_arg){.url = url, .barrier = &barrier};
        if (pthread_create(&th[i], NULL, mig_thread, &args[i]) != 0)
            abort();
    }
    int bad = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        if (args[i].rc < 0) {
            bad++;
            fprintf(stderr, "  migrate %d: %s\n", i, args[i].msg);
        }
    }
    pthread_barrier_destroy(&barrier);
    CHECK_EQ(bad, 0);
    struct coord_store_config c = cfg;
    struct coord_store *s = NULL;
    struct coord_user u;
    c.url = url;
    OK(coord_store_open(&c, &s, &E));
    int rc = coord_store_user_get(s, "mig-buyer", &u, &E);
    int rc2 = rc < 0 ? -1 : coord_store_check_invariant(s, &E);
    /* Output written by version 1 is still there, and new output follows it. */
    char *out = NULL, *errs = NULL;
    size_t ol = 0, el = 0;
    bool trunc;
    int rc3 = rc2 < 0 ? -1 : coord_store_output_append(s, "legacy-job", 1, "+new", 4, &E);
    if (rc3 == 0)
        rc3 = coord_store_output_get(s, "legacy-job", &out, &ol, &errs, &el, &trunc, &E);
    coord_store_close(s);
    bool legacy_ok =
        rc3 == 0 && ol == 7 && !memcmp(out, "old+new", 7) && el == 2 && !memcmp(errs, "\0\xff", 2);
    free(out);
    free(errs);
    if (rc < 0 || rc2 < 0 || rc3 < 0)
        FAIL("upgraded database: %s", E.msg);
    CHECK(legacy_ok);
    CHECK_EQ(u.held, NT * CREDIT);
    CHECK_EQ(u.credits, START_CREDITS - NT * CREDIT);
    return 0;
}

/* ---- reconnect (needs CO_STORE_RESTART) ---- */

static int
server_ctl(const char *what)
{
    const char *hook = getenv("CO_STORE_RESTART");
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl(hook, hook, what, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int
t_reconnect(void)
{
    struct coord_job j;
    OK(coord_store_ping(S, &E));
    /* Server restarted between two requests: the next one reconnects and succeeds. */
    struct coord_store *idle = NULL;
    OK(coord_store_open(&cfg, &idle, &E));
    if (server_ctl("restart") < 0) {
        coord_store_close(idle);
        FAIL("restart hook failed");
    }
    /* A lone read on an idle connection, and a transaction on another: no error either way. */
    co_err_clear(&E);
    int rc = coord_store_ping(idle, &E);
    coord_store_close(idle);
    if (rc < 0)
        FAIL("ping after restart: %s", E.msg);
    OK(submit(id("after-restart"), id("buyer"), CREDIT, 1, 100, 5));
    /* Server down: requests fail with "unavailable" and store nothing. */
    if (server_ctl("stop") < 0)
        FAIL("stop hook failed");
    FAILS(submit(id("in-gap"), id("buyer"), CREDIT, 1, 100, 5), CO_E_UNAVAILABLE);
    FAILS(coord_store_ping(S, &E), CO_E_UNAVAILABLE);
    if (server_ctl("start") < 0)
        FAIL("start hook failed");
    OK(coord_store_ping(S, &E));
    FAILS(coord_store_job_get(S, id("in-gap"), false, &j, &E), CO_E_NOTFOUND);
    OK(coord_store_job_get(S, id("after-restart"), false, &j, &E));
    coord_job_release(&j);
    OK(submit(id("after-start"), id("buyer"), CREDIT, 1, 100, 5));
    return 0;
}

/* ---- runner ---- */

/* ---- accounts, keys, audit ---- */

static void
hash_of(const char *token, char out[65])
{
    /* Any 64 hex characters do for the store; a token's bytes make them distinct. */
    static const char hex[] = "0123456789abcdef";
    uint64_t h = 1469598103934665603u;
    for (const char *c = token; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    for (int i = 0; i < 64; i++) {
        out[i] = hex[(h >> ((i % 16) * 4)) & 15];
        if (i % 16 == 15)
            h = h * 6364136223846793005u + 1442695040888963407u;
    }
    out[64] = '\0';
}

static int
t_accounts(void)
{
    struct coord_account a, got;
    struct coord_account_list l = {0};
    memset(&a, 0, sizeof(a));
    memset(&got, 0, sizeof(got));
    co_strlcpy(a.user_id, id("alice"), sizeof(a.user_id));
    a.username = (char *)"Alice";
    a.email = (char *)"alice@example.org";
    OK(coord_store_account_create(S, &a, 5 * CREDIT, &got, &E));
    CHECK(strcmp(got.user_id, a.user_id) == 0 && strcmp(got.username, "Alice") == 0);
    CHECK(strcmp(got.email, "alice@example.org") == 0 && !got.is_admin && !got.disabled);
    CHECK(strcmp(got.limits, "{}") == 0 && got.created_at > 0);
    CHECK_EQ(got.credits, 5 * CREDIT);
    coord_account_release(&got);
    /* Exists: 409 and nothing changes. */
    FAILS(coord_store_account_create(S, &a, 7 * CREDIT, NULL, &E), CO_E_CONFLICT);
    int64_t c, h;
    OK(balance(a.user_id, &c, &h));
    CHECK_EQ(c, 5 * CREDIT);
    /* A buyer seen before is a user too. */
    OK(submit(id("j1"), id("bob"), CREDIT, 1, 1, 5));
    co_strlcpy(a.user_id, id("bob"), sizeof(a.user_id));
    FAILS(coord_store_account_create(S, &a, 0, NULL, &E), CO_E_CONFLICT);
    co_strlcpy(a.user_id, "bad id", sizeof(a.user_id));
    FAILS(coord_store_account_create(S, &a, 0, NULL, &E), CO_E_INVAL);
    /* Zero credits: no grant row, still a user. */
    co_strlcpy(a.user_id, id("zero"), sizeof(a.user_id));
    a.is_admin = true;
    OK(coord_store_account_create(S, &a, 0, &got, &E));
    CHECK(got.is_admin && got.credits == 0);
    coord_account_release(&got);
    /* The built-in admin. */
    OK(coord_store_account_get(S, "admin", &got, &E));
    CHECK(got.is_admin && !got.disabled);
    coord_account_release(&got);
    FAILS(coord_store_account_get(S, id("nobody"), &got, &E), CO_E_NOTFOUND);
    /* Patch. */
    struct coord_account_patch p = {
        .is_admin = -1, .disabled = 1, .limits = "{\"max_pending_jobs\":2}"};
    OK(coord_store_account_patch(S, id("alice"), &p, &got, &E));
    CHECK(got.disabled && !got.is_admin && strcmp(got.limits, "{\"max_pending_jobs\":2}") == 0);
    coord_account_release(&got);
    p = (struct coord_account_patch){.is_admin = 1, .disabled = -1, .limits = NULL};
    OK(coord_store_account_patch(S, id("alice"), &p, &got, &E));
    CHECK(got.disabled && got.is_admin && strcmp(got.limits, "{\"max_pending_jobs\":2}") == 0);
    coord_account_release(&got);
    FAILS(coord_store_account_patch(S, id("nobody"), &p, NULL, &E), CO_E_NOTFOUND);
    /* List: by user_id, paged. */
    OK(coord_store_account_list(S, 1000, 0, &l, &E));
    bool seen = false;
    for (size_t i = 0; i < l.len; i++) {
        seen |= strcmp(l.items[i].user_id, id("alice")) == 0;
        if (i > 0)
            CHECK(strcmp(l.items[i - 1].user_id, l.items[i].user_id) < 0);
    }
    coord_account_list_release(&l);
    CHECK(seen);
    OK(coord_store_account_list(S, 1, 1, &l, &E));
    CHECK_EQ(l.len, 1);
    coord_account_list_release(&l);
    FAILS(coord_store_account_list(S, 0, 0, &l, &E), CO_E_RANGE);
    return 0;
}

static int
new_key(const char *key_id, const char *user, unsigned scopes, const char *token)
{
    struct coord_api_key k;
    char hash[65];
    memset(&k, 0, sizeof(k));
    co_strlcpy(k.key_id, key_id, sizeof(k.key_id));
    co_strlcpy(k.user_id, user, sizeof(k.user_id));
    co_strlcpy(k.name, "a key", sizeof(k.name));
    k.scopes = scopes;
    hash_of(token, hash);
    return coord_store_key_create(S, &k, hash, &E);
}

static int
t_keys(void)
{
    struct coord_account a;
    struct coord_api_key k;
    struct coord_api_key_list l = {0};
    struct coord_key_owner o;
    char hash[65];
    memset(&a, 0, sizeof(a));
    co_strlcpy(a.user_id, id("carol"), sizeof(a.user_id));
    OK(coord_store_account_create(S, &a, 0, NULL, &E));
    OK(new_key(id("k1"), a.user_id, 3, id("tok1")));
    OK(new_key(id("k2"), a.user_id, 1, id("tok2")));
    FAILS(new_key(id("k3"), id("nobody"), 1, id("tok3")), CO_E_NOTFOUND);
    FAILS(new_key(id("k1"), a.user_id, 1, id("tok4")), CO_E_CONFLICT); /* same key id */
    FAILS(new_key(id("k5"), a.user_id, 1, id("tok1")), CO_E_CONFLICT); /* same hash */
    FAILS(new_key(id("k6"), a.user_id, 8, id("tok6")), CO_E_INVAL);    /* no such scope */
    OK(coord_store_key_list(S, a.user_id, &l, &E));
    CHECK_EQ(l.len, 2);
    CHECK(strcmp(l.items[0].key_id, id("k1")) == 0 && l.items[0].scopes == 3);
    CHECK(l.items[0].created_at > 0 && l.items[0].last_used_at == 0);
    coord_api_key_list_release(&l);
    FAILS(coord_store_key_list(S, id("nobody"), &l, &E), CO_E_NOTFOUND);
    /* Lookup: by hash only; last_used_at written when asked. */
    hash_of(id("tok1"), hash);
    CHECK_EQ(coord_store_key_lookup(S, hash, 0, &o, &E), 1);
    CHECK(strcmp(o.key_id, id("k1")) == 0 && strcmp(o.user_id, a.user_id) == 0);
    CHECK(o.scopes == 3 && !o.user_is_admin && strcmp(o.limits, "{}") == 0);
    OK(coord_store_key_get(S, id("k1"), &k, &E));
    CHECK_EQ(k.last_used_at, 0);
    CHECK_EQ(coord_store_key_lookup(S, hash, 60000, &o, &E), 1);
    OK(coord_store_key_get(S, id("k1"), &k, &E));
    int64_t used = k.last_used_at;
    CHECK(used > 0);
    /* Not again within the interval: no write per request. */
    CHECK_EQ(coord_store_key_lookup(S, hash, 60000, &o, &E), 1);
    OK(coord_store_key_get(S, id("k1"), &k, &E));
    CHECK_EQ(k.last_used_at, used);
    hash_of(id("wrong"), hash);
    CHECK_EQ(coord_store_key_lookup(S, hash, 0, &o, &E), 0);
    /* A disabled user's keys do not authenticate; enabled again, they do. */
    struct coord_account_patch p = {.is_admin = -1, .disabled = 1, .limits = NULL};
    OK(coord_store_account_patch(S, a.user_id, &p, NULL, &E));
    hash_of(id("tok2"), hash);
    CHECK_EQ(coord_store_key_lookup(S, hash, 0, &o, &E), 0);
    p.disabled = 0;
    p.is_admin = 1;
    p.limits = "{\"submit_per_second\":1}";
    OK(coord_store_account_patch(S, a.user_id, &p, NULL, &E));
    CHECK_EQ(coord_store_key_lookup(S, hash, 0, &o, &E), 1);
    CHECK(o.user_is_admin && strcmp(o.limits, "{\"submit_per_second\":1}") == 0);
    /* Revoked: no lookup, not listed, a second revoke is 404. */
    OK(coord_store_key_revoke(S, id("k2"), &k, &E));
    CHECK(k.revoked_at > 0);
    CHECK_EQ(coord_store_key_lookup(S, hash, 0, &o, &E), 0);
    FAILS(coord_store_key_revoke(S, id("k2"), NULL, &E), CO_E_NOTFOUND);
    FAILS(coord_store_key_revoke(S, id("nokey"), NULL, &E), CO_E_NOTFOUND);
    OK(coord_store_key_list(S, a.user_id, &l, &E));
    CHECK(l.len == 1 && strcmp(l.items[0].key_id, id("k1")) == 0);
    coord_api_key_list_release(&l);
    OK(coord_store_key_get(S, id("k2"), &k, &E));
    CHECK(k.revoked_at > 0);
    return 0;
}

/* With 10,000 keys authentication is still one indexed lookup (the plan says so). */
static int
t_keys_10000(void)
{
    struct coord_account a;
    struct coord_key_owner o;
    char hash[65], tok[64], kid[CO_ID_MAX + 1];
    memset(&a, 0, sizeof(a));
    co_strlcpy(a.user_id, id("many"), sizeof(a.user_id));
    OK(coord_store_account_create(S, &a, 0, NULL, &E));
    OK(coord_store_batch_begin(S, &E));
    for (int i = 0; i < 10000; i++) {
        snprintf(kid, sizeof(kid), "%s-%d", id("k"), i);
        snprintf(tok, sizeof(tok), "%s-tok-%d", run_tag, i);
        if (new_key(kid, a.user_id, 1, tok) < 0) {
            coord_store_batch_rollback(S);
            FAIL("key %d: %s", i, E.msg);
        }
    }
    OK(coord_store_batch_commit(S, &E));
    snprintf(tok, sizeof(tok), "%s-tok-%d", run_tag, 7777);
    hash_of(tok, hash);
    CHECK_EQ(coord_store_key_lookup(S, hash, 0, &o, &E), 1);
    snprintf(kid, sizeof(kid), "%s-%d", id("k"), 7777);
    CHECK(strcmp(o.key_id, kid) == 0);
    char *plan = NULL;
    OK(coord_store_key_lookup_plan(S, &plan, &E));
    bool ok;
    if (strcmp(coord_store_backend(S), "sqlite") == 0)
        /* "SEARCH k USING INDEX sqlite_autoindex_api_keys_2 (token_hash=?)", never "SCAN k". */
        ok = strstr(plan, "SEARCH k USING INDEX") && strstr(plan, "token_hash=?") &&
             !strstr(plan, "SCAN k");
    else
        /* "Index Scan using api_keys_token_hash_key on api_keys k", no sequential scan of it. */
        ok = strstr(plan, "api_keys_token_hash_key") && !strstr(plan, "Seq Scan on api_keys");
    if (!ok) {
        snprintf(fail_msg, sizeof(fail_msg), "key lookup is not one indexed lookup:\n%s", plan);
        free(plan);
        return -1;
    }
    free(plan);
    return 0;
}

static int
t_audit(void)
{
    struct coord_audit_list l = {0};
    OK(coord_store_audit_append(S, "admin", "user.create", id("u1"), "{\"a\":1}", &E));
    OK(coord_store_audit_append(S, "admin", "key.revoke", id("k1"), NULL, &E));
    OK(coord_store_audit_list(S, 2, 0, &l, &E));
    CHECK_EQ(l.len, 2);
    /* Newest first. */
    CHECK(strcmp(l.items[0].action, "key.revoke") == 0 && strcmp(l.items[0].target, id("k1")) == 0);
    CHECK(strcmp(l.items[0].detail, "{}") == 0 && l.items[0].id > l.items[1].id);
    CHECK(strcmp(l.items[1].actor, "admin") == 0 && strcmp(l.items[1].detail, "{\"a\":1}") == 0);
    CHECK(l.items[1].at > 0);
    coord_audit_list_release(&l);
    FAILS(coord_store_audit_list(S, 1001, 0, &l, &E), CO_E_RANGE);
    /* In a rolled-back batch, nothing is kept. */
    OK(coord_store_batch_begin(S, &E));
    OK(coord_store_audit_append(S, "admin", "user.patch", id("gone"), NULL, &E));
    coord_store_batch_rollback(S);
    OK(coord_store_audit_list(S, 1, 0, &l, &E));
    CHECK(l.len == 1 && strcmp(l.items[0].target, id("k1")) == 0);
    coord_audit_list_release(&l);
    return 0;
}

/* The pending-jobs quota is checked in the submit's transaction; over it nothing is stored. */
static int
t_submit_capped(void)
{
    struct coord_job j;
    int64_t c0, h0, c1, h1;
    job_init(&j, id("q1"), id("quota"), CREDIT, 1, 1, 5);
    OK(coord_store_job_submit_capped(S, &j, 2, &E));
    job_init(&j, id("q2"), id("quota"), CREDIT, 1, 1, 5);
    OK(coord_store_job_submit_capped(S, &j, 2, &E));
    OK(balance(id("quota"), &c0, &h0));
    job_init(&j, id("q3"), id("quota"), CREDIT, 1, 1, 5);
    FAILS(coord_store_job_submit_capped(S, &j, 2, &E), CO_E_LIMIT);
    OK(balance(id("quota"), &c1, &h1));
    CHECK(c0 == c1 && h0 == h1);
    struct coord_job got;
    memset(&got, 0, sizeof(got));
    FAILS(coord_store_job_get(S, id("q3"), false, &got, &E), CO_E_NOTFOUND);
    /* Another buyer has its own count; 0 = no cap. */
    job_init(&j, id("q4"), id("quota2"), CREDIT, 1, 1, 5);
    OK(coord_store_job_submit_capped(S, &j, 2, &E));
    job_init(&j, id("q5"), id("quota"), CREDIT, 1, 1, 5);
    OK(coord_store_job_submit_capped(S, &j, 0, &E));
    /* A job that is no longer pending no longer counts. */
    enum coord_job_status was;
    OK(coord_store_job_cancel(S, id("q1"), &got, &was, &E));
    coord_job_release(&got);
    OK(coord_store_job_cancel(S, id("q2"), &got, &was, &E));
    coord_job_release(&got);
    job_init(&j, id("q6"), id("quota"), CREDIT, 1, 1, 5);
    OK(coord_store_job_submit_capped(S, &j, 2, &E));
    return 0;
}

/* Cancel every unfinished job so that the next case starts with an empty queue. */
static int
drain(void)
{
    struct coord_job_filter f = {-1, NULL, NULL, 1000, 0, false};
    for (int st = COORD_JOB_PENDING; st <= COORD_JOB_RUNNING; st++) {
        struct coord_job_list l;
        f.status = st;
        if (coord_store_job_list(S, &f, &l, &E) < 0)
            return -1;
        for (size_t i = 0; i < l.len; i++) {
            struct coord_job j;
            if (coord_store_job_cancel(S, l.items[i].job_id, &j, NULL, &E) < 0) {
                coord_job_list_release(&l);
                return -1;
            }
            coord_job_release(&j);
        }
        coord_job_list_release(&l);
    }
    return 0;
}

/*
 * ---- failure injection, in the spirit of SQLite's own tests ----
 *
 * The store's backend operations are wrapped (S->ops points to a copy whose commit and query
 * can fail on their Nth call), and on SQLite its allocator too (SQLITE_CONFIG_MALLOC, set
 * before the library starts).  A fault case runs one small scenario (a worker, a submit, a
 * claim, a start, output, a finish, a batch) with the fault armed at the 1st, 2nd, ... call
 * until the scenario runs through without reaching it.  After each run: the fault is disarmed,
 * the invariant must hold, the scenario's jobs must be in a state their buyer's held credits
 * agree with, and the same scenario must then run through cleanly (the store recovered).
 */
enum fault_kind {
    FAULT_NONE = 0,
    FAULT_COMMIT,      /* COMMIT fails, nothing is committed */
    FAULT_COMMIT_LOST, /* COMMIT is applied but its reply is lost */
    FAULT_STATEMENT,   /* a statement fails (I/O error) */
    FAULT_DROP,        /* PostgreSQL: the backend is terminated before a statement */
    FAULT_ALLOC,       /* SQLite: an allocation fails */
};
static struct {
    enum fault_kind kind;
    int countdown; /* calls left before the fault fires */
    int fired;
} fault;
static const struct store_ops *real_ops;
static struct store_ops fault_ops;
static sqlite3_mem_methods real_mem;

static bool
fault_fire(enum fault_kind k)
{
    if (fault.kind != k || fault.countdown < 0)
        return false;
    if (fault.countdown-- > 0)
        return false;
    fault.fired++;
    return true;
}

static int
fault_commit(struct coord_store *s, co_err *err)
{
    if (fault_fire(FAULT_COMMIT)) {
        real_ops->rollback(s);
        return co_err_set(err, CO_E_UNAVAILABLE, "injected: COMMIT failed");
    }
    int rc = real_ops->commit(s, err);
    if (rc == 0 && fault_fire(FAULT_COMMIT_LOST))
        return co_err_set(err, CO_E_UNAVAILABLE, "injected: the reply to COMMIT was lost");
    return rc;
}

/* Terminates every other session of the store's PostgreSQL database (the store's own). */
static void
pg_drop_sessions(void)
{
    PGconn *c = PQconnectdb(cfg.url);
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()");
        PQclear(r);
    }
    PQfinish(c);
}

static int
fault_query(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
            struct db_res *r, co_err *err)
{
    if (fault_fire(FAULT_STATEMENT))
        return co_err_set(err, CO_E_UNAVAILABLE, "injected: disk I/O error");
    if (fault_fire(FAULT_DROP))
        pg_drop_sessions();
    return real_ops->query(s, q, p, n, r, err);
}

static void *
fault_malloc(int n)
{
    return fault_fire(FAULT_ALLOC) ? NULL : real_mem.xMalloc(n);
}

static void *
fault_realloc(void *p, int n)
{
    return fault_fire(FAULT_ALLOC) ? NULL : real_mem.xRealloc(p, n);
}

/* Before SQLite starts: its allocator goes through fault_malloc/fault_realloc. */
static void
fault_install_sqlite_malloc(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK)
        return;
    sqlite3_mem_methods m = real_mem;
    m.xMalloc = fault_malloc;
    m.xRealloc = fault_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
        memset(&real_mem, 0, sizeof(real_mem));
}

static void
fault_wrap(void)
{
    if (S->ops == &fault_ops)
        return;
    real_ops = S->ops;
    fault_ops = *real_ops;
    fault_ops.commit = fault_commit;
    fault_ops.query = fault_query;
    S->ops = &fault_ops;
}

/* The scenario run under a fault: every store call may fail, and failures are ignored. */
static void
fault_scenario(const char *tag)
{
    char w[64], job[64], job2[64], buyer[64];
    snprintf(w, sizeof(w), "%s-w", tag);
    snprintf(job, sizeof(job), "%s-j", tag);
    snprintf(job2, sizeof(job2), "%s-b", tag);
    snprintf(buyer, sizeof(buyer), "%s", id("fault-buyer"));
    (void)worker(w, id("fault-seller"), 4, 4096);
    (void)submit(job, buyer, 3 * CREDIT, 1, 100, 5);
    int attempt;
    if (claim(job, w, &attempt) == 0) {
        bool changed;
        if (coord_store_job_started(S, job, w, attempt, &E) < 0)
            co_err_clear(&E);
        (void)finish(job, w, attempt, COORD_JOB_COMPLETED, COORD_FAIL_NONE, false, &changed);
    }
    if (coord_store_batch_begin(S, &E) == 0) {
        (void)submit(job2, buyer, 2 * CREDIT, 1, 100, 5);
        if (coord_store_batch_commit(S, &E) < 0)
            co_err_clear(&E);
    }
}

/* After a faulty run: each job of the scenario is absent or in a state its held credits and
 * the worker's counters agree with (checked by the invariant), and the store answers again. */
static int
fault_consistent(const char *tag)
{
    OK(coord_store_check_invariant(S, &E));
    char job[64];
    snprintf(job, sizeof(job), "%s-j", tag);
    struct coord_job j;
    co_err_clear(&E);
    if (coord_store_job_get(S, job, false, &j, &E) == 0) {
        bool ok = j.status >= COORD_JOB_PENDING && j.status <= COORD_JOB_CANCELLED;
        coord_job_release(&j);
        CHECK(ok);
    } else if (E.code != CO_E_NOTFOUND) {
        FAIL("job %s after a fault: %s", job, E.msg);
    }
    return drain();
}

static int
fault_case(enum fault_kind kind)
{
    if (kind == FAULT_ALLOC && !real_mem.xMalloc)
        FAIL("the SQLite allocator hook was not installed");
    fault_wrap();
    int runs = 0, fired_total = 0;
    for (int n = 0; n < 400; n++) {
        char tag[48];
        snprintf(tag, sizeof(tag), "%s-f%d-%d", run_tag, (int)kind, n);
        fault.kind = kind;
        fault.countdown = n;
        fault.fired = 0;
        fault_scenario(tag);
        int fired = fault.fired;
        fault.kind = FAULT_NONE;
        runs++;
        fired_total += fired;
        if (fault_consistent(tag) < 0) {
            char m[1024];
            snprintf(m, sizeof(m), "%.1000s", fail_msg);
            FAIL("after the fault at call %d: %s", n + 1, m);
        }
        if (!fired)
            break; /* the scenario ran through without reaching call n + 1 */
    }
    /* The store recovered: the scenario runs through, and the job is paid once. */
    char tag[48];
    snprintf(tag, sizeof(tag), "%s-clean", run_tag);
    OK(worker(id("clean-w"), id("fault-seller"), 4, 4096));
    OK(submit(id("clean-j"), id("clean-buyer"), 3 * CREDIT, 1, 100, 5));
    if (run_to_end(id("clean-j"), id("clean-w"), COORD_JOB_COMPLETED, COORD_FAIL_NONE, false) < 0)
        return -1;
    int64_t c, h;
    OK(balance(id("clean-buyer"), &c, &h));
    CHECK_EQ(c, START_CREDITS - 3 * CREDIT);
    CHECK_EQ(h, 0);
    CHECK(fired_total > 0);
    printf("     # %d runs, %d faults injected\n", runs, fired_total);
    return 0;
}

static int
t_fault_commit(void)
{
    return fault_case(FAULT_COMMIT);
}

static int
t_fault_commit_lost(void)
{
    return fault_case(FAULT_COMMIT_LOST);
}

static int
t_fault_statement(void)
{
    return fault_case(FAULT_STATEMENT);
}

static int
t_fault_drop(void)
{
    return fault_case(FAULT_DROP);
}

static int
t_fault_alloc(void)
{
    return fault_case(FAULT_ALLOC);
}

/*
 * DEBUG_FAULTS commit_lost:claim:N (coord_fault, the coordinator's own injection): the Nth claim's
 * COMMIT is applied and then reported lost (CO_E_UNAVAILABLE; on PostgreSQL the connection is
 * dropped too).  Pushed claims, poll claims and a claim inside a batch; the store goes on after
 * each, and only claims are counted.
 */
/* How many jobs the store gives to worker @wid as assigned. */
static int
assigned_to(const char *wid, size_t *n)
{
    struct coord_job_filter f = {.status = COORD_JOB_ASSIGNED, .worker_id = wid, .limit = 1000};
    struct coord_job_list l = {0};
    if (coord_store_job_list(S, &f, &l, &E) < 0)
        return -1;
    *n = l.len;
    coord_job_list_release(&l);
    return 0;
}

static int
t_debug_fault_claim_lost(void)
{
    const char *w = id("dfw"), *buyer = id("dfbuyer");
    struct coord_job j;
    int attempt = 0;
    co_err ferr = CO_ERR_INIT;
    OK(worker(w, id("dfowner"), 8, 8192));
    for (int i = 0; i < 4; i++) {
        char jid[32];
        snprintf(jid, sizeof(jid), "df%d", i);
        OK(submit(id(jid), buyer, CREDIT, 1, 100, 5));
    }
    if (coord_fault_init("commit_lost:claim:2", &ferr) < 0)
        FAIL("DEBUG_FAULTS: %s", ferr.msg);
    OK(coord_store_worker_heartbeat(S, w, &E));             /* not a claim: not counted */
    OK(claim(id("df0"), w, &attempt));                      /* claim #1 */
    FAILS(claim(id("df1"), w, &attempt), CO_E_UNAVAILABLE); /* #2: applied, reply lost */
    /* The next call works (PostgreSQL: after a reconnect) and sees the claim applied. */
    OK(job_status(id("df1"), &j));
    int ok = j.status == COORD_JOB_ASSIGNED && j.attempts == 1 && !strcmp(j.assigned_worker, w);
    coord_job_release(&j);
    CHECK(ok);
    OK(claim(id("df2"), w, &attempt)); /* #3 */

    /* A poll claim counts as a claim; one that finds nothing is not counted. */
    if (coord_fault_init("commit_lost:claim:1", &ferr) < 0)
        FAIL("DEBUG_FAULTS: %s", ferr.msg);
    size_t before = 0, after = 0;
    OK(assigned_to(w, &before));
    FAILS(coord_store_job_claim_next(S, w, &j, &E), CO_E_UNAVAILABLE);
    OK(assigned_to(w, &after)); /* it took some pending job (maybe another case's) */
    CHECK_EQ(after, before + 1);

    /* In a batch, the batch's COMMIT loses its reply: every write of it was applied. */
    if (coord_fault_init("commit_lost:claim:1", &ferr) < 0)
        FAIL("DEBUG_FAULTS: %s", ferr.msg);
    OK(submit(id("df4"), buyer, CREDIT, 1, 100, 5));
    OK(coord_store_batch_begin(S, &E));
    OK(coord_store_worker_heartbeat(S, w, &E));
    OK(claim(id("df4"), w, &attempt));
    FAILS(coord_store_batch_commit(S, &E), CO_E_UNAVAILABLE);
    OK(job_status(id("df4"), &j));
    ok = j.status == COORD_JOB_ASSIGNED && !strcmp(j.assigned_worker, w);
    coord_job_release(&j);
    CHECK(ok);
    /* A rolled-back batch's claim is not counted: the next claim's reply is the lost one. */
    if (coord_fault_init("commit_lost:claim:1", &ferr) < 0)
        FAIL("DEBUG_FAULTS: %s", ferr.msg);
    OK(submit(id("df5"), buyer, CREDIT, 1, 100, 5));
    OK(coord_store_batch_begin(S, &E));
    OK(claim(id("df5"), w, &attempt));
    coord_store_batch_rollback(S);
    OK(job_status(id("df5"), &j));
    ok = j.status == COORD_JOB_PENDING;
    coord_job_release(&j);
    CHECK(ok);
    FAILS(claim(id("df5"), w, &attempt), CO_E_UNAVAILABLE);

    if (coord_fault_init(NULL, &ferr) < 0)
        FAIL("DEBUG_FAULTS: %s", ferr.msg);
    FAILS(claim(id("df5"), w, &attempt), CO_E_CONFLICT); /* applied already */
    OK(coord_store_check_invariant(S, &E));
    return 0;
}

/*
 * ENOSPC on SQLite: a child process opens the same database with its file size capped
 * (RLIMIT_FSIZE) a little above the current files and submits jobs with large code until a
 * write fails; the parent then checks that the buyer's held credits match the jobs stored.
 */
static int
t_fault_enospc(void)
{
    const char *path = cfg.url + strlen("sqlite://");
    char wal[1024];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    const char *buyer = id("full-buyer");
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct coord_store *c;
        co_err e = {0};
        int res[2] = {-1, 0}; /* jobs stored, error code of the failure */
        /* Empty the WAL first, so that the next writes must grow a file. */
        sqlite3 *db;
        if (sqlite3_open(path, &db) == SQLITE_OK)
            sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db);
        struct stat st1, st2;
        off_t big = 0;
        if (stat(path, &st1) == 0)
            big = st1.st_size;
        if (stat(wal, &st2) == 0 && st2.st_size > big)
            big = st2.st_size;
        struct rlimit rl = {(rlim_t)big + 65536, (rlim_t)big + 65536};
        if (coord_store_open(&cfg, &c, &e) == 0 && setrlimit(RLIMIT_FSIZE, &rl) == 0) {
            static char code[65536];
            memset(code, 'x', sizeof(code) - 1);
            res[0] = 0;
            for (int i = 0; i < 400; i++) {
                char jid[64];
                snprintf(jid, sizeof(jid), "%s-%d", buyer, i);
                struct coord_job j;
                job_init(&j, jid, buyer, CREDIT / 100, 1, 100, 5);
                j.code = code;
                if (coord_store_job_submit(c, &j, &e) < 0) {
                    res[1] = e.code;
                    break;
                }
                res[0]++;
            }
        }
        if (write(pfd[1], res, sizeof(res)) != sizeof(res))
            _exit(3);
        _exit(0);
    }
    close(pfd[1]);
    int res[2] = {-1, 0};
    ssize_t got = read(pfd[0], res, sizeof(res));
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(got == (ssize_t)sizeof(res));
    if (res[0] < 0)
        FAIL("the child could not open the store");
    if (res[1] == 0)
        FAIL("no write failed with the file size capped (%d jobs stored)", res[0]);
    printf("     # %d jobs stored, then %s\n", res[0], co_err_code_name(res[1]));
    OK(coord_store_check_invariant(S, &E));
    int64_t c, h;
    OK(balance(buyer, &c, &h));
    CHECK_EQ(h, (int64_t)res[0] * (CREDIT / 100));
    CHECK_EQ(c + h, START_CREDITS);
    /* The store works again (the cap was the child's). */
    OK(submit(id("after-full"), buyer, CREDIT, 1, 100, 5));
    return 0;
}

/*
 * Scale-out (coord_node): a hello's session epoch, fencing of a session that moved on, the
 * reaper's turn (one connection at a time on PostgreSQL) and the database's clock.
 */
static int
t_worker_sessions(void)
{
    const char *w = id("sess-w");
    int64_t e1 = 0, e2 = 0, e = 0;
    char node[32];
    OK(worker(w, NULL, 2, 1024));
    OK(coord_store_worker_session_begin(S, w, "node-a", &e1, &E));
    CHECK(e1 >= 1);
    OK(coord_store_worker_session_get(S, w, false, node, sizeof(node), &e, &E));
    CHECK(!strcmp(node, "node-a") && e == e1);
    OK(coord_store_worker_session_begin(S, w, "node-b", &e2, &E));
    CHECK_EQ(e2, e1 + 1);
    FAILS(coord_store_worker_session_begin(S, id("sess-none"), "node-a", &e, &E), CO_E_NOTFOUND);
    /* This process as a node: its session is current, then another hello moves it on. */
    coord_node_init();
    OK(coord_store_worker_session_begin(S, w, coord_node_id(), &e, &E));
    OK(coord_node_fence(S, w, e, true, &E));
    OK(coord_node_fence(S, w, 0, false, &E)); /* no agent session: not fenced */
    OK(coord_store_worker_session_begin(S, w, "node-c", &e2, &E));
    FAILS(coord_node_fence(S, w, e, false, &E), CO_E_CONFLICT);
    CHECK(coord_node_fenced(&E));

    /* The reaper's turn: held by one transaction at a time, released with its commit. */
    struct coord_store *s2 = NULL;
    OK(coord_store_open(&cfg, &s2, &E));
    bool pg = !strcmp(coord_store_backend(S), "postgres");
    int got = -1;
    OK(coord_store_batch_begin(S, &E));
    got = coord_store_reaper_lock(S, &E);
    int other = pg ? coord_store_reaper_lock(s2, &E) : 0;
    coord_store_batch_rollback(S);
    int after = coord_store_reaper_lock(s2, &E);
    coord_store_close(s2);
    CHECK_EQ(got, 1);
    CHECK_EQ(other, 0); /* PostgreSQL: another connection does not get it meanwhile */
    CHECK_EQ(after, 1);

    int64_t now = 0;
    OK(coord_store_now_ms(S, &now, &E));
    CHECK(now > co_wall_ms() - 5000 && now < co_wall_ms() + 5000);
    return 0;
}

/*
 * Poll workers hold a worker's session too (coord_node_poll_take, coord_node_poll_fence): a
 * register takes it from an agent session (a new epoch, no node: the agent session is fenced off),
 * a hello takes it back (the poll routes are refused).  A poll route's writes run in the fence's
 * transaction: a claim inside it keeps its job (a store call's positive result in a batch).
 */
static int
t_poll_sessions(void)
{
    const char *w = id("poll-w");
    int64_t e = 0, cur = 0;
    char node[32];
    coord_node_init();
    OK(worker(w, NULL, 2, 1024));
    OK(coord_node_poll_fence(S, w, &E)); /* never said hello: a poll worker's */
    FAILS(coord_node_poll_fence(S, id("poll-none"), &E), CO_E_NOTFOUND);
    OK(coord_store_worker_session_begin(S, w, coord_node_id(), &e, &E)); /* an agent's hello */
    FAILS(coord_node_poll_fence(S, w, &E), CO_E_CONFLICT);
    CHECK(coord_node_fenced(&E));
    OK(coord_node_poll_take(S, w, &E)); /* POST /register */
    FAILS(coord_node_fence(S, w, e, false, &E), CO_E_CONFLICT);
    CHECK(coord_node_fenced(&E));
    OK(coord_store_worker_session_get(S, w, false, node, sizeof(node), &cur, &E));
    CHECK(node[0] == 0 && cur == e + 1);
    FAILS(coord_node_poll_take(S, id("poll-none"), &E), CO_E_NOTFOUND);

    /* GET /task: the fence, the heartbeat and the claim in one transaction. */
    OK(submit(id("poll-j"), id("poll-buyer"), CREDIT, 1, 100, 10));
    struct coord_job j;
    memset(&j, 0, sizeof(j));
    OK(coord_store_batch_begin(S, &E));
    int fenced = coord_node_poll_fence(S, w, &E);
    int beat = fenced < 0 ? -1 : coord_store_worker_heartbeat(S, w, &E);
    int got = beat < 0 ? -1 : coord_store_job_claim_next(S, w, &j, &E);
    if (got < 0)
        coord_store_batch_rollback(S);
    else
        OK(coord_store_batch_commit(S, &E));
    CHECK_EQ(got, 1);
    bool mine = !strcmp(j.assigned_worker, w) && j.attempts >= 1;
    coord_job_release(&j);
    CHECK(mine);
    struct coord_worker wk;
    OK(coord_store_worker_get(S, w, &wk, &E));
    CHECK(wk.used_cores >= 1); /* the claim was committed with the batch */

    /* The agent's hello takes the worker back: the poll routes are refused again. */
    OK(coord_store_worker_session_begin(S, w, coord_node_id(), &e, &E));
    OK(coord_store_batch_begin(S, &E));
    fenced = coord_node_poll_fence(S, w, &E);
    coord_store_batch_rollback(S);
    CHECK(fenced < 0 && coord_node_fenced(&E));
    return 0;
}

struct tcase {
    const char *name;
    int (*fn)(void);
};

int
main(void)
{
    static const struct tcase cases[] = {
        {"migrate_again", t_migrate_again},
        {"database_urls", t_urls},
        {"starting_credits", t_starting_credits},
        {"submit_402_nothing_stored", t_submit_402},
        {"duplicate_job_id", t_duplicate_job},
        {"get_list_filters_order_limits", t_get_list},
        {"claim_and_fencing", t_claim_fencing},
        {"claim_capacity", t_claim_capacity},
        {"claim_next_priority_fit", t_claim_next_order},
        {"finish_completed_pays_owner", t_finish_completed},
        {"finish_failed_charge_or_refund", t_finish_failed},
        {"metered_reputation_statement", t_metered_reputation_statement},
        {"repute_after_finish", t_repute_after_finish},
        {"retention_outcomes", t_retention_outcomes},
        {"finish_idempotent", t_finish_idempotent},
        {"cancel_each_state", t_cancel_states},
        {"lease_expiry_release_jobs", t_lease_release},
        {"output_append_cap", t_output},
        {"output_per_attempt", t_output_attempts},
        {"output_offsets", t_output_offsets},
        {"job_release_single", t_job_release},
        {"one_write_of_the_job_per_step", t_one_write_per_step},
        {"settle_writes_each_row_once", t_settle_writes},
        {"settle_refused_leaves_nothing", t_settle_refused},
        {"pending_fit_and_requeue_free", t_pending_fit},
        {"pending_fair_turns_limit", t_pending_fair_turns},
        {"pending_fit_turns_priorities_held", t_pending_fit_turns},
        {"batch_transaction", t_batch},
        {"idempotency_keys_and_purge", t_idempotency},
        {"webhook_queue_claim_record", t_webhook_queue},
        {"grant", t_grant},
        {"ledger_order", t_ledger_order},
        {"health_counts", t_health},
        {"workers_upsert_list", t_workers},
        {"worker_owner_first_registration", t_worker_owner},
        {"pending_capped_max_running_jobs", t_pending_capped},
        {"accounts_create_get_patch_list", t_accounts},
        {"keys_create_list_lookup_revoke", t_keys},
        {"keys_10000_one_indexed_lookup", t_keys_10000},
        {"audit_append_list", t_audit},
        {"submit_pending_quota", t_submit_capped},
        {"max_workers", t_max_workers},
        {"migrate_refuses_newer_schema", t_migrate_newer},
        {"restart_data_intact", t_restart},
        {"parallel_submits_50", t_parallel_submits},
        {"parallel_claim_next", t_parallel_claims},
        {"parallel_mixed_traffic", t_parallel_mixed},
        {"kill9_loses_no_acknowledged_job", t_kill9},
        {"upgrade_v1_then_concurrent_migrate", t_concurrent_migrate},
        {"reconnect_after_server_restart", t_reconnect},
        {"fault_commit_fails", t_fault_commit},
        {"fault_commit_reply_lost", t_fault_commit_lost},
        {"fault_statement_io_error", t_fault_statement},
        {"fault_connection_dropped_mid_transaction", t_fault_drop},
        {"fault_allocation_fails", t_fault_alloc},
        {"fault_enospc", t_fault_enospc},
        {"debug_faults_claim_reply_lost", t_debug_fault_claim_lost},
        {"worker_sessions_fencing_reaper_turn", t_worker_sessions},
        {"poll_sessions_take_and_fence", t_poll_sessions},
    };
    const char *url = getenv("CO_STORE_URL");
    sql_dir = getenv("CO_SQL_DIR");
    if (!url || !*url || !sql_dir || !*sql_dir) {
        fprintf(stderr, "test_store_contract: set CO_STORE_URL and CO_SQL_DIR\n");
        return 2;
    }
    bool can_restart = getenv("CO_STORE_RESTART") && *getenv("CO_STORE_RESTART");
    bool is_sqlite = strncmp(url, "sqlite:", 7) == 0;
    if (is_sqlite)
        fault_install_sqlite_malloc(); /* before the library starts */
    cfg.url = url;
    cfg.starting_credits = START_CREDITS;
    cfg.worker_timeout_ms = 60000;
    cfg.max_workers = 0;
    cfg.output_cap_bytes = OUTPUT_CAP;
    snprintf(run_tag, sizeof(run_tag), "t%x", (unsigned)(co_wall_ms() & 0xffffff));

    if (coord_store_open(&cfg, &S, &E) < 0 || coord_store_migrate(S, sql_dir, &E) < 0) {
        fprintf(stderr, "test_store_contract: cannot set up the store: %s\n", E.msg);
        return 2;
    }
    const char *backend = coord_store_backend(S);
    int passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < CO_ARRAY_LEN(cases); i++) {
        const struct tcase *c = &cases[i];
        if (c->fn == t_reconnect && !can_restart) {
            printf("skip %s (no CO_STORE_RESTART hook for this database)\n", c->name);
            skipped++;
            continue;
        }
        if (c->fn == t_fault_drop && is_sqlite) {
            printf("skip %s (SQLite runs in the process: no connection to drop; kill -9 mid-"
                   "transaction is kill9_loses_no_acknowledged_job)\n",
                   c->name);
            skipped++;
            continue;
        }
        if ((c->fn == t_fault_alloc || c->fn == t_fault_enospc) && !is_sqlite) {
            printf("skip %s (PostgreSQL: the server's disk and memory are not the client's; "
                   "libpq's own allocations cannot be hooked and the store's abort by design)\n",
                   c->name);
            skipped++;
            continue;
        }
        if (c->fn == t_concurrent_migrate && !getenv("CO_STORE_FRESH_URL")) {
            printf("skip %s (no CO_STORE_FRESH_URL: an empty database)\n", c->name);
            skipped++;
            continue;
        }
        fail_msg[0] = '\0';
        /* Ids are per case: "<tag>c<n>-...". */
        snprintf(run_tag, sizeof(run_tag), "t%x-c%zu", (unsigned)(co_wall_ms() & 0xffffff), i);
        int rc = c->fn();
        if (!S) {
            if (coord_store_open(&cfg, &S, &E) < 0) {
                fprintf(stderr, "cannot reopen the store: %s\n", E.msg);
                return 2;
            }
        }
        if (drain() < 0 && rc == 0) {
            snprintf(fail_msg, sizeof(fail_msg), "drain: %s", E.msg);
            rc = -1;
        }
        co_err_clear(&E);
        if (rc == 0 && coord_store_check_invariant(S, &E) < 0) {
            snprintf(fail_msg, sizeof(fail_msg), "invariant: %s", E.msg);
            rc = -1;
        }
        if (rc == 0) {
            printf("ok   %s\n", c->name);
            passed++;
        } else {
            printf("FAIL %s: %s\n", c->name, fail_msg);
            failed++;
        }
        fflush(stdout);
    }
    coord_store_close(S);
    printf("store[%s]: %d passed, %d failed, %d skipped\n", backend, passed, failed, skipped);
    return failed ? 1 : 0;
}
