/* Unit tests of coordinator/coord_events.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord_events.h"

struct seen {
    int calls;
    enum coord_event_kind kind;
    char id[80];
    uint64_t seq;
    struct coord_events *ev;
    int handle; /* unsubscribe itself on the first call when > 0 */
};

static void
on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq)
{
    struct seen *s = ud;
    s->calls++;
    s->kind = kind;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->seq = seq;
    if (s->handle > 0) {
        coord_events_unsubscribe(s->ev, s->handle);
        s->handle = 0;
    }
}

static void
test_publish_without_subscribers_counts(void **state)
{
    (void)state;
    struct coord_events *ev = coord_events_new();
    assert_int_equal(coord_events_seq(ev), 0);
    assert_int_equal(coord_events_publish(ev, COORD_EVENT_JOB, "j1"), 1);
    assert_int_equal(coord_events_publish(ev, COORD_EVENT_WORKER, "w1"), 2);
    assert_int_equal(coord_events_seq(ev), 2);
    coord_events_free(ev);
}

static void
test_subscribers_in_order_and_unsubscribe(void **state)
{
    (void)state;
    struct coord_events *ev = coord_events_new();
    struct seen a = {0}, b = {0};
    int ha = coord_events_subscribe(ev, on_event, &a);
    int hb = coord_events_subscribe(ev, on_event, &b);
    assert_true(ha > 0 && hb > 0 && ha != hb);
    coord_events_publish(ev, COORD_EVENT_CREDITS, "buyer-1");
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.kind, COORD_EVENT_CREDITS);
    assert_string_equal(b.id, "buyer-1");
    assert_int_equal(b.seq, 1);
    coord_events_unsubscribe(ev, ha);
    coord_events_unsubscribe(ev, 12345); /* unknown: ignored */
    coord_events_publish(ev, COORD_EVENT_JOB, "j2");
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.seq, 2);
    coord_events_free(ev);
}

static void
test_unsubscribe_during_callback(void **state)
{
    (void)state;
    struct coord_events *ev = coord_events_new();
    struct seen a = {0}, b = {0};
    a.ev = ev;
    a.handle = coord_events_subscribe(ev, on_event, &a);
    coord_events_subscribe(ev, on_event, &b);
    coord_events_publish(ev, COORD_EVENT_JOB, "x");
    /* a removed itself; b must still have been called exactly once. */
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    coord_events_publish(ev, COORD_EVENT_JOB, "y");
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 2);
    assert_string_equal(coord_event_kind_name(COORD_EVENT_WORKER), "worker");
    coord_events_free(ev);
}

/* Local and remote changes (coord_feed delivers the other nodes' ones), one sequence. */
struct remote_seen {
    struct coord_events *ev;
    int remote, local;
};

static void
on_event_remote(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq)
{
    struct remote_seen *r = ud;
    (void)kind, (void)id, (void)seq;
    if (coord_events_remote(r->ev))
        r->remote++;
    else
        r->local++;
}

static void
test_local_and_remote_changes(void **state)
{
    (void)state;
    struct coord_events *ev = coord_events_new();
    struct seen a = {0};
    struct remote_seen r = {.ev = ev};
    coord_events_subscribe(ev, on_event, &a);
    coord_events_subscribe(ev, on_event_remote, &r);
    assert_int_equal(coord_events_publish(ev, COORD_EVENT_JOB, "local-1"), 1);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.id, "local-1");
    /* Another node's change: the subscribers see it (numbered in the same sequence), and it is
     * marked remote while they are called. */
    assert_int_equal(coord_events_publish_remote(ev, COORD_EVENT_JOB, "remote-1"), 2);
    assert_int_equal(a.calls, 2);
    assert_string_equal(a.id, "remote-1");
    assert_int_equal(r.remote, 1);
    assert_int_equal(r.local, 1);
    assert_false(coord_events_remote(ev));
    assert_int_equal(coord_event_kind_parse("credits"), COORD_EVENT_CREDITS);
    assert_int_equal(coord_event_kind_parse("user"), COORD_EVENT_USER);
    assert_int_equal(coord_event_kind_parse("nope"), -1);
    coord_events_free(ev);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_without_subscribers_counts),
        cmocka_unit_test(test_subscribers_in_order_and_unsubscribe),
        cmocka_unit_test(test_unsubscribe_during_callback),
        cmocka_unit_test(test_local_and_remote_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
