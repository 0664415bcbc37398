/*
 * Unit tests of the scheduler's placement (coord_sched_plan): best fit, capacity, priority order
 * with reservation, images, unfit jobs, sessions that are not ready, jobs already held; the
 * pending_reason board and the fair-share order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_jsonw.h"
#include "coord_hub.h"
#include "coord_sched.h"

static struct coord_agents hub;
static int fake_wsi; /* any non-NULL pointer: the plan never calls lws */

static struct agent_sess *
mk_sess(const char *id, int64_t cores, int64_t ram_mb, const char *image)
{
    struct agent_sess *s = co_xcalloc(1, sizeof(*s));
    s->hub = &hub;
    s->wsi = (struct lws *)&fake_wsi;
    s->refs = 1;
    s->state = AS_READY;
    co_strlcpy(s->worker_id, id, sizeof(s->worker_id));
    s->cores = s->free_cores = cores;
    s->ram_mb = s->free_ram_mb = ram_mb;
    if (image) {
        s->images = co_xcalloc(1, sizeof(char *));
        s->images[0] = co_xstrdup(image);
        s->n_images = 1;
    }
    hub.sess = co_xreallocarray(hub.sess, hub.n_sess + 1, sizeof(*hub.sess));
    hub.sess[hub.n_sess++] = s;
    agent_hub_changed(&hub, s);
    return s;
}

static struct coord_job_list jobs;

static void
add_job(const char *id, int64_t cores, int64_t ram_mb, const char *image)
{
    jobs.items = co_xreallocarray(jobs.items, jobs.len + 1, sizeof(*jobs.items));
    struct coord_job *j = &jobs.items[jobs.len++];
    memset(j, 0, sizeof(*j));
    co_strlcpy(j->job_id, id, sizeof(j->job_id));
    co_strlcpy(j->buyer_id, "buyer", sizeof(j->buyer_id));
    j->required_cores = cores;
    j->required_ram_mb = ram_mb;
    j->image = co_xstrdup(image ? image : "default");
}

static void
reset_jobs(void)
{
    for (size_t i = 0; i < jobs.len; i++)
        free(jobs.items[i].image);
    jobs.len = 0;
}

static int
setup(void **state)
{
    (void)state;
    memset(&hub, 0, sizeof(hub));
    memset(&jobs, 0, sizeof(jobs));
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    struct agent_sess **ch = NULL;
    size_t n = agent_hub_take_changed(&hub, &ch);
    for (size_t i = 0; i < n; i++)
        agent_sess_unref(ch[i]);
    free(ch);
    for (size_t i = 0; i < hub.n_sess; i++)
        agent_sess_unref(hub.sess[i]);
    free(hub.sess);
    agent_ix_free(&hub.jobs);
    reset_jobs();
    free(jobs.items);
    return 0;
}

/* Run a plan; returns the number of picks and fills @picks (room for 64). */
static size_t
plan(struct sched_pick *picks)
{
    assert_true(jobs.len <= 64);
    return coord_sched_plan(&hub, &jobs, picks);
}

static void
test_best_fit(void **state)
{
    (void)state;
    struct agent_sess *big = mk_sess("big", 8, 8192, NULL);
    struct agent_sess *small = mk_sess("small", 2, 2048, NULL);
    add_job("j1", 2, 1024, NULL);
    struct sched_pick p[64];
    assert_int_equal(plan(p), 1);
    assert_ptr_equal(p[0].s, small); /* least leftover */
    assert_int_equal(small->free_cores, 0);
    assert_int_equal(small->free_ram_mb, 1024);
    assert_int_equal(big->free_cores, 8);
    assert_non_null(agent_sess_find(small, "j1"));
    assert_int_equal(agent_sess_find(small, "j1")->state, AJ_CLAIMING);
}

/* Many agents of one shape: ties go to the first agent in order, and a half-used agent is the
 * best fit for the next job (the placement classes choose as a scan of every agent would). */
static void
test_same_shape_ties(void **state)
{
    (void)state;
    struct agent_sess *s[6];
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "a%d", i);
        s[i] = mk_sess(id, 2, 2048, NULL);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "j%d", i);
        add_job(id, 1, 512, NULL);
    }
    add_job("other-image", 1, 512, "gpu");
    struct sched_pick p[64];
    assert_int_equal(plan(p), 5);
    struct agent_sess *want[5] = {s[0], s[0], s[1], s[1], s[2]};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p[i].job, (size_t)i);
        assert_ptr_equal(p[i].s, want[i]);
    }
    assert_int_equal(s[2]->free_cores, 1);
    assert_int_equal(s[3]->free_cores, 2);
}

/* Replicas of one job go to different owners even among agents of one shape (the owner joins
 * the placement classes when replicas are in the read). */
static void
test_replicas_other_owners(void **state)
{
    (void)state;
    struct agent_sess *a = mk_sess("a", 4, 4096, NULL);
    struct agent_sess *b = mk_sess("b", 4, 4096, NULL);
    struct agent_sess *c = mk_sess("c", 4, 4096, NULL);
    co_strlcpy(a->owner_id, "alice", sizeof(a->owner_id));
    co_strlcpy(b->owner_id, "alice", sizeof(b->owner_id));
    co_strlcpy(c->owner_id, "carol", sizeof(c->owner_id));
    add_job("r1", 1, 512, NULL);
    add_job("r2", 1, 512, NULL);
    add_job("r3", 1, 512, NULL);
    for (size_t i = 0; i < 3; i++)
        co_strlcpy(jobs.items[i].parent_job_id, "parent", sizeof(jobs.items[i].parent_job_id));
    struct sched_pick p[64];
    assert_int_equal(plan(p), 2); /* two owners: the third replica waits */
    assert_ptr_equal(p[0].s, a);
    assert_ptr_equal(p[1].s, c);
    for (size_t i = 0; i < jobs.len; i++) {
        free(jobs.items[i].avoid_owners);
        jobs.items[i].avoid_owners = NULL;
    }
}

static void
test_capacity_never_exceeded(void **state)
{
    (void)state;
    struct agent_sess *a = mk_sess("a", 4, 1000, NULL);
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "j%d", i);
        add_job(id, 1, 200, NULL);
    }
    struct sched_pick p[64];
    assert_int_equal(plan(p), 4); /* cores run out first */
    assert_int_equal(a->free_cores, 0);
    assert_int_equal(a->free_ram_mb, 200);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p[i].job, (size_t)i); /* in order: the most urgent first */
    /* RAM as the limit. */
    struct agent_sess *b = mk_sess("b", 16, 500, NULL);
    assert_int_equal(plan(p), 2);
    assert_ptr_equal(p[0].s, b);
    assert_int_equal(b->free_ram_mb, 100);
}

static void
test_reservation_keeps_priority(void **state)
{
    (void)state;
    struct agent_sess *a = mk_sess("a", 2, 2048, NULL);
    add_job("busy", 1, 512, NULL);
    struct sched_pick p[64];
    assert_int_equal(plan(p), 1); /* a now has 1 free core */
    reset_jobs();
    add_job("urgent-big", 2, 512, NULL); /* fits a's total, not its free capacity */
    add_job("later-small", 1, 512, NULL);
    assert_int_equal(plan(p), 0); /* a is kept for the urgent job */
    assert_null(agent_sess_find(a, "later-small"));
    /* Another agent with room takes the small one. */
    struct agent_sess *b = mk_sess("b", 1, 1024, NULL);
    assert_int_equal(plan(p), 1);
    assert_ptr_equal(p[0].s, b);
    assert_int_equal(p[0].job, 1);
}

static void
test_unfit_does_not_block(void **state)
{
    (void)state;
    struct agent_sess *a = mk_sess("a", 4, 4096, NULL);
    add_job("huge", 64, 512, NULL);
    add_job("ok", 1, 512, NULL);
    struct sched_pick p[64];
    assert_int_equal(plan(p), 1);
    assert_ptr_equal(p[0].s, a);
    assert_int_equal(p[0].job, 1);
    assert_null(agent_sess_find(a, "huge"));
}

static void
test_images(void **state)
{
    (void)state;
    struct agent_sess *gpu = mk_sess("gpu", 4, 4096, "cuda");
    struct agent_sess *plain = mk_sess("plain", 8, 8192, NULL);
    add_job("d", 1, 64, "default");
    add_job("c", 1, 64, "cuda");
    add_job("x", 1, 64, "other");
    struct sched_pick p[64];
    assert_int_equal(plan(p), 2);
    assert_ptr_equal(p[0].s, plain); /* an agent listing no image runs "default" only */
    assert_ptr_equal(p[1].s, gpu);
    assert_int_equal(p[1].job, 1);
}

static void
test_not_ready_and_held(void **state)
{
    (void)state;
    struct agent_sess *hello = mk_sess("hello", 4, 4096, NULL);
    hello->state = AS_HELLO_DB;
    struct agent_sess *gone = mk_sess("gone", 4, 4096, NULL);
    gone->wsi = NULL;
    add_job("j", 1, 64, NULL);
    struct sched_pick p[64];
    assert_int_equal(plan(p), 0);
    struct agent_sess *ok = mk_sess("ok", 4, 4096, NULL);
    assert_int_equal(plan(p), 1);
    assert_ptr_equal(p[0].s, ok);
    /* The same read again (it raced with the claim): the job is held, nothing new. */
    assert_int_equal(plan(p), 0);
    assert_int_equal(ok->free_cores, 3);
    agent_sess_remove_job(ok, "j");
    assert_int_equal(ok->free_cores, 4);
    assert_int_equal(ok->free_ram_mb, 4096);
}

/* The pending_reason of @j as JSON text (caller frees). */
static char *
reason_of(const struct coord_job *j)
{
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    co_jsonw_obj_begin(&w);
    coord_sched_write_pending_reason(&w, j);
    co_jsonw_obj_end(&w);
    return co_buf_steal(&b, NULL);
}

static void
expect_reason(const struct coord_job *j, const char *code, const char *in_message)
{
    char *r = reason_of(j);
    if (!code) {
        assert_string_equal(r, "{\"pending_reason\":null}");
    } else {
        char want[96];
        snprintf(want, sizeof(want), "\"code\":\"%s\"", code);
        if (!strstr(r, want) || (in_message && !strstr(r, in_message)))
            fail_msg("pending_reason %s, want code %s mentioning '%s'", r, code,
                     in_message ? in_message : "");
    }
    free(r);
}

static void
test_pending_reason(void **state)
{
    (void)state;
    struct coord_sched *sc = coord_sched_new(&hub);
    add_job("j", 1, 512, NULL);
    coord_sched_refresh(sc);
    expect_reason(&jobs.items[0], "no_agents", NULL);

    struct agent_sess *small = mk_sess("w-small", 2, 2048, NULL);
    mk_sess("w-py", 8, 16384, "py");
    coord_sched_refresh(sc);
    add_job("nope", 1, 512, "nope");
    add_job("wide", 4, 512, NULL);
    add_job("fat", 1, 4096, NULL);
    add_job("py", 16, 512, "py");
    expect_reason(&jobs.items[0], "waiting_for_capacity", NULL);
    expect_reason(&jobs.items[1], "no_agent_with_image", "'nope'");
    expect_reason(&jobs.items[2], "exceeds_largest_agent", "w-small (2 cores, 2048 MB)");
    expect_reason(&jobs.items[3], "exceeds_largest_agent", "w-small");
    expect_reason(&jobs.items[4], "exceeds_largest_agent", "w-py (8 cores");
    jobs.items[0].status = COORD_JOB_RUNNING;
    expect_reason(&jobs.items[0], NULL, NULL);

    /* No change counted (agent_hub_changed): a refresh rebuilds nothing, the reasons stay. */
    uint64_t g = coord_sched_reasons_generation();
    small->state = AS_CLOSING;
    coord_sched_refresh(sc);
    assert_true(coord_sched_reasons_generation() == g);
    expect_reason(&jobs.items[3], "exceeds_largest_agent", "w-small");
    small->state = AS_READY;

    /* A session that is no longer ready leaves the board at the next refresh. */
    small->state = AS_CLOSING;
    agent_hub_changed(&hub, small);
    coord_sched_refresh(sc);
    expect_reason(&jobs.items[3], "no_agent_with_image", "'default'");
    expect_reason(&jobs.items[4], "exceeds_largest_agent", "w-py (8 cores");

    /* The largest agent leaves: the fit's largest size and the board follow it alone. */
    struct agent_sess *big = mk_sess("w-big", 32, 65536, "py");
    coord_sched_refresh(sc);
    expect_reason(&jobs.items[4], "waiting_for_capacity", NULL);
    big->state = AS_CLOSING;
    agent_hub_changed(&hub, big);
    coord_sched_refresh(sc);
    expect_reason(&jobs.items[4], "exceeds_largest_agent", "w-py (8 cores");
    small->state = AS_READY;
    agent_hub_changed(&hub, small);
    coord_sched_refresh(sc);
    expect_reason(&jobs.items[3], "exceeds_largest_agent", "w-small");
    coord_sched_free(sc);
}

/* running_limit: a buyer at its max_running_jobs after a pass; structural reasons go first. */
static void
test_running_limit_reason(void **state)
{
    (void)state;
    struct coord_sched *sc = coord_sched_new(&hub);
    struct agent_sess *w = mk_sess("w", 4, 4096, NULL);
    coord_sched_refresh(sc);
    add_job("capped-1", 1, 512, NULL);
    co_strlcpy(jobs.items[0].buyer_id, "capped", sizeof(jobs.items[0].buyer_id));
    add_job("capped-nope", 1, 512, "nope");
    co_strlcpy(jobs.items[1].buyer_id, "capped", sizeof(jobs.items[1].buyer_id));
    add_job("other", 1, 512, NULL);
    uint64_t g0 = coord_sched_reasons_generation();

    /* Room left (cap 2, one running): nothing held. */
    struct coord_buyer_cap cap = {.cap = 2, .running = 1};
    co_strlcpy(cap.buyer_id, "capped", sizeof(cap.buyer_id));
    struct coord_buyer_cap_list caps = {.items = &cap, .len = 1};
    coord_sched_note_caps(sc, &caps, 0);
    expect_reason(&jobs.items[0], "waiting_for_capacity", NULL);
    assert_true(coord_sched_reasons_generation() == g0);

    /* A claim of this coordinator in flight takes the last place: held, the reason changes. */
    agent_sess_add_job(w, &jobs.items[0], 0, AJ_CLAIMING);
    coord_sched_note_caps(sc, &caps, 0);
    expect_reason(&jobs.items[0], "running_limit", "max_running_jobs = 2");
    expect_reason(&jobs.items[0], "running_limit", "'capped'");
    expect_reason(&jobs.items[1], "no_agent_with_image", "'nope'"); /* cannot run anyway */
    expect_reason(&jobs.items[2], "waiting_for_capacity", NULL);    /* another buyer */
    uint64_t g1 = coord_sched_reasons_generation();
    assert_true(g1 != g0);
    coord_sched_note_caps(sc, &caps, 0);
    assert_true(coord_sched_reasons_generation() == g1); /* the same set: no change */

    /* The claim ended (job finished): room again. */
    agent_sess_remove_job(w, "capped-1");
    coord_sched_note_caps(sc, &caps, 0);
    expect_reason(&jobs.items[0], "waiting_for_capacity", NULL);
    assert_true(coord_sched_reasons_generation() != g1);
    coord_sched_free(sc);
}

/* Placement terms: reputation before fit; market price before reputation; the limits. */
static void
test_terms(void **state)
{
    (void)state;
    struct coord_sched *sc = coord_sched_new(&hub);
    struct agent_sess *a = mk_sess("w-a", 8, 8192, NULL);
    struct agent_sess *b = mk_sess("w-b", 8, 8192, NULL);
    struct agent_sess *c = mk_sess("w-c", 2, 2048, NULL); /* the best fit */
    a->reputation = 900000;
    a->price = (struct coord_rate){300, 0};
    b->reputation = 600000;
    b->price = (struct coord_rate){100, 0};
    c->reputation = 800000;
    c->price = (struct coord_rate){100, 0};
    struct sched_pick p[64];

    add_job("flat", 1, 512, NULL); /* flat pricing: the best reputation wins over the best fit */
    assert_int_equal(plan(p), 1);
    assert_ptr_equal(p[0].s, a);
    reset_jobs();

    add_job("market", 1, 512, NULL); /* within b and c, equal price: c's reputation */
    jobs.items[0].pricing = COORD_PRICING_MARKET;
    jobs.items[0].max_rate = (struct coord_rate){200, 0};
    assert_int_equal(plan(p), 1);
    assert_ptr_equal(p[0].s, c);
    reset_jobs();

    add_job("cheap", 1, 512, NULL); /* a is above the maximum even though it ranks first */
    jobs.items[0].pricing = COORD_PRICING_MARKET;
    jobs.items[0].max_rate = (struct coord_rate){100, 0};
    jobs.items[0].min_reputation = 850000; /* and c, b are below this */
    assert_int_equal(plan(p), 0);
    coord_sched_refresh(sc);
    jobs.items[0].min_reputation = 950000; /* nobody */
    expect_reason(&jobs.items[0], "no_agent_with_reputation", "0.95");
    jobs.items[0].min_reputation = 0;
    jobs.items[0].max_rate = (struct coord_rate){50, 1000};
    expect_reason(&jobs.items[0], "no_agent_within_price", "at 0.0001 per core-second");
    jobs.items[0].max_rate = (struct coord_rate){100, 0};
    expect_reason(&jobs.items[0], "waiting_for_capacity", NULL);
    coord_sched_free(sc);
}

static void
add_buyer_job(const char *id, const char *buyer, int64_t priority)
{
    add_job(id, 1, 64, NULL);
    co_strlcpy(jobs.items[jobs.len - 1].buyer_id, buyer, sizeof(jobs.items[0].buyer_id));
    jobs.items[jobs.len - 1].priority = priority;
}

static void
expect_order(const char *const *want)
{
    for (size_t i = 0; i < jobs.len; i++) {
        if (strcmp(jobs.items[i].job_id, want[i]) != 0)
            fail_msg("position %zu is %s, want %s", i, jobs.items[i].job_id, want[i]);
    }
}

static void
test_fair_order(void **state)
{
    (void)state;
    struct coord_sched *sc = coord_sched_new(&hub);
    /* The store's order: priority, each buyer's n-th job, age. */
    add_buyer_job("urgent", "b", 9);
    add_buyer_job("a1", "a", 5);
    add_buyer_job("b1", "b", 5);
    add_buyer_job("a2", "a", 5);
    add_buyer_job("a3", "a", 5);
    coord_sched_fair_order(sc, &jobs);
    static const char *const same[] = {"urgent", "a1", "b1", "a2", "a3"};
    expect_order(same); /* nobody served yet: the store's order stands */

    /* a was just served, then b: b's turn comes after a's within each round. */
    coord_sched_served(sc, "a");
    coord_sched_served(sc, "b");
    coord_sched_fair_order(sc, &jobs);
    expect_order(same);
    coord_sched_served(sc, "a");
    coord_sched_fair_order(sc, &jobs);
    static const char *const b_first[] = {"urgent", "b1", "a1", "a2", "a3"};
    expect_order(b_first);
    coord_sched_free(sc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_best_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_shape_ties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replicas_other_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_never_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reservation_keeps_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unfit_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_ready_and_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fair_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_limit_reason, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
