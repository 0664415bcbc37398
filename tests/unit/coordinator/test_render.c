/*
 * Unit tests of coordinator/coord_render.c, the JSON that REST answers and dashboard events
 * share: the full and the public view of a job and who sees which, the worker object with and
 * without its owner (and offline when silent), a user's credits, the pricing object of a
 * snapshot, and health with the database up and down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "co_alloc.h"
#include "co_time.h"
#include "coord_metrics.h"
#include "coord_render.h"

/* Parse @b as one JSON value (the test fails if it is not valid JSON). */
static json_t *
parse(const struct co_buf *b)
{
    json_error_t jerr;
    json_t *v = json_loadb(b->data, b->len, 0, &jerr);
    assert_non_null(v);
    return v;
}

static void
fill_job(struct coord_job *j)
{
    memset(j, 0, sizeof(*j));
    co_strlcpy(j->job_id, "job-1", sizeof(j->job_id));
    co_strlcpy(j->buyer_id, "alice", sizeof(j->buyer_id));
    co_strlcpy(j->assigned_worker, "w1", sizeof(j->assigned_worker));
    j->title = "t";
    j->description = "";
    j->code = "print(1)";
    j->command = "python3 main.py";
    j->parameters = "{\"n\":1}";
    j->image = "default";
    j->status = COORD_JOB_COMPLETED;
    j->cost = 2500000;
    j->required_cores = 2;
    j->required_ram_mb = 512;
    j->priority = 5;
    j->timeout_seconds = 60;
    j->attempts = 1;
    j->max_attempts = 3;
    j->has_exit_code = true;
    j->created_at = 1700000000000;
    j->completed_at = 1700000001000;
}

static void
test_job_views(void **state)
{
    (void)state;
    struct coord_job j;
    fill_job(&j);
    struct co_buf full = CO_BUF_INIT, pub = CO_BUF_INIT, code = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &full);
    coord_render_job(&w, &j, false, 0);
    co_jsonw_init(&w, &pub);
    coord_render_job_public(&w, &j);
    co_jsonw_init(&w, &code);
    coord_render_job(&w, &j, true, 2);

    json_t *f = parse(&full), *p = parse(&pub), *c = parse(&code);
    /* The full view: what the buyer submitted, and no code unless asked. */
    assert_string_equal(json_string_value(json_object_get(f, "command")), "python3 main.py");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(f, "parameters"), "n")), 1);
    assert_string_equal(json_string_value(json_object_get(f, "buyer_id")), "alice");
    assert_string_equal(json_string_value(json_object_get(f, "status")), "completed");
    assert_true(json_is_null(json_object_get(f, "pending_reason")));
    assert_int_equal(json_integer_value(json_object_get(f, "exit_code")), 0);
    assert_null(json_object_get(f, "code"));
    assert_null(json_object_get(f, "attempt"));
    /* With code (assignments): code and the attempt number. */
    assert_string_equal(json_string_value(json_object_get(c, "code")), "print(1)");
    assert_int_equal(json_integer_value(json_object_get(c, "attempt")), 2);
    /* The public view: no buyer, command, parameters or output-bearing fields. */
    assert_null(json_object_get(p, "buyer_id"));
    assert_null(json_object_get(p, "command"));
    assert_null(json_object_get(p, "parameters"));
    assert_null(json_object_get(p, "exit_code"));
    assert_string_equal(json_string_value(json_object_get(p, "job_id")), "job-1");
    assert_string_equal(json_string_value(json_object_get(p, "assigned_worker")), "w1");
    /* Shared members are written the same way in both views. */
    assert_true(json_equal(json_object_get(p, "cost"), json_object_get(f, "cost")));
    assert_true(json_equal(json_object_get(p, "created_at"), json_object_get(f, "created_at")));
    json_decref(f);
    json_decref(p);
    json_decref(c);
    co_buf_release(&full);
    co_buf_release(&pub);
    co_buf_release(&code);
}

static void
test_sees_full(void **state)
{
    (void)state;
    struct coord_principal anon, admin, buyer, other, seller;
    memset(&anon, 0, sizeof(anon));
    coord_auth_principal_admin(&admin);
    memset(&buyer, 0, sizeof(buyer));
    buyer.cred = COORD_CRED_KEY;
    buyer.scopes = COORD_SCOPE_BUY;
    co_strlcpy(buyer.user_id, "alice", sizeof(buyer.user_id));
    other = buyer;
    co_strlcpy(other.user_id, "bob", sizeof(other.user_id));
    seller = buyer;
    seller.scopes = COORD_SCOPE_SELL;
    assert_false(coord_render_sees_full(&anon, "alice"));
    assert_true(coord_render_sees_full(&admin, "alice"));
    assert_true(coord_render_sees_full(&buyer, "alice"));
    assert_false(coord_render_sees_full(&other, "alice"));
    assert_false(coord_render_sees_full(&seller, "alice")); /* its own, but no buy scope */
    /* Owners of workers: any credential, never anonymous users. */
    assert_false(coord_render_sees_owners(&anon));
    assert_true(coord_render_sees_owners(&seller));
    assert_true(coord_render_sees_owners(&admin));
}

static void
test_worker(void **state)
{
    (void)state;
    struct coord_worker wk;
    memset(&wk, 0, sizeof(wk));
    co_strlcpy(wk.worker_id, "w1", sizeof(wk.worker_id));
    wk.cpu_cores = 4;
    wk.ram_mb = 4096;
    wk.used_cores = 5; /* over-committed: free shows 0, not a negative number */
    wk.used_ram_mb = 1024;
    wk.status = COORD_WORKER_BUSY;
    wk.websocket = true;
    wk.last_heartbeat = co_wall_ms();
    struct co_buf a = CO_BUF_INIT, b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &a);
    coord_render_worker(&w, &wk, 60000, true);
    co_jsonw_init(&w, &b);
    coord_render_worker(&w, &wk, 60000, false);
    json_t *with = parse(&a), *without = parse(&b);
    /* No owner recorded: the worker is its own owner. */
    assert_string_equal(json_string_value(json_object_get(with, "owner_id")), "w1");
    assert_null(json_object_get(without, "owner_id"));
    assert_int_equal(json_integer_value(json_object_get(with, "free_cores")), 0);
    assert_int_equal(json_integer_value(json_object_get(with, "free_ram_mb")), 3072);
    assert_string_equal(json_string_value(json_object_get(with, "status")), "busy");
    assert_string_equal(json_string_value(json_object_get(with, "connection")), "websocket");
    /* The same object but for owner_id. */
    json_object_del(with, "owner_id");
    assert_true(json_equal(with, without));
    json_decref(with);
    json_decref(without);

    /* Silent past the timeout: offline whatever the stored status. */
    wk.last_heartbeat = co_wall_ms() - 61000;
    co_buf_reset(&a);
    co_jsonw_init(&w, &a);
    coord_render_worker(&w, &wk, 60000, true);
    json_t *off = parse(&a);
    assert_string_equal(json_string_value(json_object_get(off, "status")), "offline");
    json_decref(off);
    co_buf_release(&a);
    co_buf_release(&b);
}

static void
test_credits_and_pricing(void **state)
{
    (void)state;
    struct coord_user u;
    memset(&u, 0, sizeof(u));
    co_strlcpy(u.user_id, "alice", sizeof(u.user_id));
    u.credits = 1500000;
    u.held = 250000;
    struct co_buf b = CO_BUF_INIT;
    struct co_jsonw w;
    co_jsonw_init(&w, &b);
    co_jsonw_obj_begin(&w);
    coord_render_credits(&w, &u);
    co_jsonw_obj_end(&w);
    json_t *v = parse(&b);
    assert_int_equal(json_object_size(v), 3);
    assert_string_equal(json_string_value(json_object_get(v, "user_id")), "alice");
    assert_true(json_is_number(json_object_get(v, "credits")));
    assert_true(json_is_number(json_object_get(v, "held")));
    json_decref(v);

    struct coord_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_job_cores = 8; /* max_job_ram_mb 0: no limit, null */
    co_buf_reset(&b);
    co_jsonw_init(&w, &b);
    coord_render_pricing(&w, &cfg);
    v = parse(&b);
    assert_int_equal(json_integer_value(json_object_get(v, "max_job_cores")), 8);
    assert_true(json_is_null(json_object_get(v, "max_job_ram_mb")));
    assert_non_null(json_object_get(v, "mode"));
    assert_non_null(json_object_get(v, "cost_per_core"));
    json_decref(v);
    co_buf_release(&b);
}

static void
test_health(void **state)
{
    (void)state;
    struct coord_metrics m;
    coord_metrics_init(&m);
    atomic_store(&m.agents_connected, 3);
    atomic_store(&m.agent_loop_max_us, 70);
    struct coord_render_node node = {
        .backend = "sqlite",
        .started_mono_ms = co_mono_ms(),
        .metrics = &m,
        .db = NULL, /* no executor: its figures show 0 */
        .max_loop_callback_us = 90,
    };
    struct coord_health h;
    memset(&h, 0, sizeof(h));
    h.workers_total = 2;
    h.jobs[COORD_JOB_PENDING] = 7;

    struct co_buf b = CO_BUF_INIT;
    assert_int_equal(coord_render_health(&b, &node, &h, true), 200);
    json_t *v = parse(&b);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "healthy");
    json_t *mx = json_object_get(v, "metrics");
    assert_int_equal(json_integer_value(json_object_get(mx, "queue_depth")), 7);
    assert_int_equal(json_integer_value(json_object_get(mx, "connected_agents")), 3);
    /* The larger of the HTTP and the agent callbacks. */
    assert_int_equal(json_integer_value(json_object_get(mx, "max_loop_callback_us")), 90);
    assert_string_equal(json_string_value(json_object_get(mx, "database")), "sqlite");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "workers"), "total")),
                     2);
    json_decref(v);

    /* Database down: 503, no counts, whatever @h holds. */
    co_buf_reset(&b);
    assert_int_equal(coord_render_health(&b, &node, &h, false), 503);
    v = parse(&b);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "unhealthy");
    assert_null(json_object_get(v, "workers"));
    assert_null(json_object_get(json_object_get(v, "metrics"), "queue_depth"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(v, "metrics"), "database_status")),
        "down");
    json_decref(v);
    co_buf_release(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_views), cmocka_unit_test(test_sees_full),
        cmocka_unit_test(test_worker),    cmocka_unit_test(test_credits_and_pricing),
        cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
