/* Unit tests of coordinator/coord_api.c: the routing table (methods, ids, auth, lanes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "coord_api.h"

static void
test_routes(void **state)
{
    (void)state;
    struct {
        enum coord_method method;
        const char *path;
        enum coord_route route;
        enum coord_auth auth;
        bool body;
        enum coord_db_lane lane;
        const char *id;
    } ok[] = {
        {COORD_M_POST, "/api/v1/submit", COORD_R_SUBMIT, COORD_AUTH_BUY, true, COORD_DB_WRITE_GROUP,
         ""},
        {COORD_M_GET, "/api/v1/jobs", COORD_R_JOBS, COORD_AUTH_NONE, false, COORD_DB_READ, ""},
        {COORD_M_GET, "/api/v1/jobs/", COORD_R_JOBS, COORD_AUTH_NONE, false, COORD_DB_READ, ""},
        {COORD_M_GET, "/api/v1/jobs/abc-1", COORD_R_JOB, COORD_AUTH_NONE, false, COORD_DB_READ,
         "abc-1"},
        {COORD_M_GET, "/api/v1/jobs/abc-1/output", COORD_R_JOB_OUTPUT, COORD_AUTH_BUY, false,
         COORD_DB_READ, "abc-1"},
        {COORD_M_POST, "/api/v1/jobs/a.b_c/cancel", COORD_R_JOB_CANCEL, COORD_AUTH_BUY, false,
         COORD_DB_WRITE_GROUP, "a.b_c"},
        {COORD_M_POST, "/api/v1/register", COORD_R_REGISTER, COORD_AUTH_AGENT, true,
         COORD_DB_WRITE_GROUP, ""},
        {COORD_M_POST, "/api/v1/unregister", COORD_R_UNREGISTER, COORD_AUTH_AGENT, true,
         COORD_DB_WRITE_GROUP, ""},
        {COORD_M_GET, "/api/v1/workers", COORD_R_WORKERS, COORD_AUTH_NONE, false, COORD_DB_READ,
         ""},
        {COORD_M_GET, "/api/v1/task", COORD_R_TASK, COORD_AUTH_AGENT, false, COORD_DB_WRITE_GROUP,
         ""},
        {COORD_M_POST, "/api/v1/status", COORD_R_STATUS, COORD_AUTH_AGENT, true,
         COORD_DB_WRITE_GROUP, ""},
        {COORD_M_GET, "/api/v1/credits/u1", COORD_R_CREDITS, COORD_AUTH_ANY, false, COORD_DB_READ,
         "u1"},
        {COORD_M_POST, "/api/v1/credits/u1/grant", COORD_R_GRANT, COORD_AUTH_ADMIN, true,
         COORD_DB_WRITE_GROUP, "u1"},
        {COORD_M_GET, "/api/v1/credits/u1/ledger", COORD_R_LEDGER, COORD_AUTH_ANY, false,
         COORD_DB_READ, "u1"},
        {COORD_M_GET, "/api/v1/health", COORD_R_HEALTH, COORD_AUTH_NONE, false, COORD_DB_READ, ""},
        {COORD_M_GET, "/api/v1/debug/invariant", COORD_R_DEBUG_INVARIANT, COORD_AUTH_ADMIN, false,
         COORD_DB_READ, ""},
        {COORD_M_POST, "/api/v1/users", COORD_R_USERS_CREATE, COORD_AUTH_ADMIN, true,
         COORD_DB_WRITE_GROUP, ""},
        {COORD_M_GET, "/api/v1/users", COORD_R_USERS, COORD_AUTH_ADMIN, false, COORD_DB_READ, ""},
        {COORD_M_GET, "/api/v1/users/u1", COORD_R_USER, COORD_AUTH_ANY, false, COORD_DB_READ, "u1"},
        {COORD_M_PATCH, "/api/v1/users/u1", COORD_R_USER_PATCH, COORD_AUTH_ADMIN, true,
         COORD_DB_WRITE_GROUP, "u1"},
        {COORD_M_POST, "/api/v1/users/u1/keys", COORD_R_KEYS_CREATE, COORD_AUTH_ANY, true,
         COORD_DB_WRITE_GROUP, "u1"},
        {COORD_M_GET, "/api/v1/users/u1/keys", COORD_R_KEYS, COORD_AUTH_ANY, false, COORD_DB_READ,
         "u1"},
        {COORD_M_DELETE, "/api/v1/keys/k_1", COORD_R_KEY_REVOKE, COORD_AUTH_ANY, false,
         COORD_DB_WRITE_GROUP, "k_1"},
        {COORD_M_GET, "/api/v1/me", COORD_R_ME, COORD_AUTH_ANY, false, COORD_DB_READ, ""},
        {COORD_M_GET, "/api/v1/audit", COORD_R_AUDIT, COORD_AUTH_ADMIN, false, COORD_DB_READ, ""},
        /* Retention runs transactions of its own on purpose: a write that is never grouped. */
        {COORD_M_POST, "/api/v1/debug/retention", COORD_R_DEBUG_RETENTION, COORD_AUTH_ADMIN, true,
         COORD_DB_WRITE, ""},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct coord_route_info ri;
        char id[CO_ID_MAX + 1];
        memset(&ri, 0, sizeof(ri));
        assert_int_equal(coord_api_route(ok[i].method, ok[i].path, id, &ri), 0);
        assert_int_equal(ri.route, ok[i].route);
        assert_int_equal(ri.auth, ok[i].auth);
        assert_int_equal(ri.body, ok[i].body);
        assert_int_equal(ri.lane, ok[i].lane);
        assert_string_equal(id, ok[i].id);
    }
}

static void
test_not_found_and_method(void **state)
{
    (void)state;
    struct coord_route_info ri;
    char id[CO_ID_MAX + 1];
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1/nope", id, &ri), 404);
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1", id, &ri), 404);
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v2/jobs", id, &ri), 404);
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1/submit", id, &ri), 405);
    assert_int_equal(coord_api_route(COORD_M_DELETE, "/api/v1/jobs", id, &ri), 405);
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1/jobs/x/cancel", id, &ri), 405);
    /* Ids must be valid: 1-64 of [A-Za-z0-9._-], no slash. */
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1/jobs/a b", id, &ri), 404);
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1/jobs/a/b", id, &ri), 404);
    char longp[200];
    snprintf(longp, sizeof(longp), "/api/v1/credits/%065d", 1);
    assert_int_equal(coord_api_route(COORD_M_GET, longp, id, &ri), 404);
    snprintf(longp, sizeof(longp), "/api/v1/credits/%064d", 1);
    assert_int_equal(coord_api_route(COORD_M_GET, longp, id, &ri), 0);
    assert_int_equal(strlen(id), 64);
    assert_int_equal(coord_api_route(COORD_M_GET, "/api/v1/credits//grant", id, &ri), 404);
}

/* The declarative rights: 401 without a credential, 403 with one that lacks the right. */
static void
test_allowed(void **state)
{
    (void)state;
    struct coord_principal anon, admin, buy_a, sell_a, agent;
    memset(&anon, 0, sizeof(anon));
    coord_auth_principal_admin(&admin);
    memset(&buy_a, 0, sizeof(buy_a));
    buy_a.cred = COORD_CRED_KEY;
    co_strlcpy(buy_a.user_id, "a", sizeof(buy_a.user_id));
    co_strlcpy(buy_a.key_id, "k_a", sizeof(buy_a.key_id));
    buy_a.scopes = COORD_SCOPE_BUY;
    sell_a = buy_a;
    sell_a.scopes = COORD_SCOPE_SELL;
    memset(&agent, 0, sizeof(agent));
    agent.cred = COORD_CRED_AGENT_TOKEN;
    agent.scopes = COORD_SCOPE_SELL;
    const char *msg = NULL;
    struct {
        const struct coord_principal *p;
        enum coord_auth auth;
        bool self;
        const char *id;
        bool open;
        int want;
    } cases[] = {
        {&anon, COORD_AUTH_NONE, false, "", false, 0},
        {&anon, COORD_AUTH_ANY, false, "", false, 401},
        {&anon, COORD_AUTH_BUY, false, "", false, 401},
        {&anon, COORD_AUTH_ADMIN, false, "", false, 401},
        {&anon, COORD_AUTH_AGENT, false, "", false, 401},
        {&anon, COORD_AUTH_AGENT, false, "", true, 0},
        {&admin, COORD_AUTH_ADMIN, false, "", false, 0},
        {&admin, COORD_AUTH_ANY, true, "someone", false, 0},
        {&admin, COORD_AUTH_AGENT, false, "", false, 401}, /* not an agent credential */
        {&admin, COORD_AUTH_AGENT, false, "", true, 0},    /* open registration: anyone */
        {&buy_a, COORD_AUTH_BUY, false, "", false, 0},
        {&buy_a, COORD_AUTH_ADMIN, false, "", false, 403},
        {&buy_a, COORD_AUTH_ANY, true, "a", false, 0},
        {&buy_a, COORD_AUTH_ANY, true, "b", false, 403},
        {&buy_a, COORD_AUTH_AGENT, false, "", false, 403},
        {&sell_a, COORD_AUTH_BUY, false, "", false, 403},
        {&sell_a, COORD_AUTH_AGENT, false, "", false, 0},
        {&agent, COORD_AUTH_AGENT, false, "", false, 0},
        {&agent, COORD_AUTH_BUY, false, "", false, 403},
        {&agent, COORD_AUTH_ANY, true, "a", false, 403},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = coord_api_allowed(cases[i].p, cases[i].auth, cases[i].self, cases[i].id,
                                    cases[i].open, &msg);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
