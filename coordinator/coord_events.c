/* coord_events: change feed (see coord_events.h). */
#include "coord_events.h"

#include <string.h>

#include "co_alloc.h"

struct ev_sub {
    int handle;
    coord_event_fn fn;
    void *ud;
};

struct coord_events {
    struct ev_sub *subs;
    size_t n, cap;
    int next_handle;
    uint64_t seq;
    bool remote; /* a publish of another node's change is being delivered */
};

struct coord_events *
coord_events_new(void)
{
    struct coord_events *ev = co_xcalloc(1, sizeof(*ev));
    ev->next_handle = 1;
    return ev;
}

void
coord_events_free(struct coord_events *ev)
{
    if (!ev)
        return;
    free(ev->subs);
    free(ev);
}

int
coord_events_subscribe(struct coord_events *ev, coord_event_fn fn, void *ud)
{
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 4;
        ev->subs = co_xreallocarray(ev->subs, ev->cap, sizeof(*ev->subs));
    }
    ev->subs[ev->n].handle = ev->next_handle++;
    ev->subs[ev->n].fn = fn;
    ev->subs[ev->n].ud = ud;
    return ev->subs[ev->n++].handle;
}

void
coord_events_unsubscribe(struct coord_events *ev, int handle)
{
    for (size_t i = 0; i < ev->n; i++) {
        if (ev->subs[i].handle == handle) {
            memmove(&ev->subs[i], &ev->subs[i + 1], (ev->n - i - 1) * sizeof(*ev->subs));
            ev->n--;
            return;
        }
    }
}

static uint64_t
events_deliver(struct coord_events *ev, enum coord_event_kind kind, const char *id)
{
    uint64_t seq = ++ev->seq;
    /* Index loop: a subscriber may unsubscribe itself while being called. */
    for (size_t i = 0; i < ev->n; i++) {
        size_t before = ev->n;
        ev->subs[i].fn(ev->subs[i].ud, kind, id, seq);
        if (ev->n < before)
            i--;
    }
    return seq;
}

uint64_t
coord_events_publish(struct coord_events *ev, enum coord_event_kind kind, const char *id)
{
    return events_deliver(ev, kind, id);
}

uint64_t
coord_events_publish_remote(struct coord_events *ev, enum coord_event_kind kind, const char *id)
{
    ev->remote = true;
    uint64_t seq = events_deliver(ev, kind, id);
    ev->remote = false;
    return seq;
}

bool
coord_events_remote(const struct coord_events *ev)
{
    return ev && ev->remote;
}

int
coord_event_kind_parse(const char *name)
{
    for (int k = 0; k < COORD_EVENT_KIND_COUNT; k++) {
        if (strcmp(name, coord_event_kind_name((enum coord_event_kind)k)) == 0)
            return k;
    }
    return -1;
}

uint64_t
coord_events_seq(const struct coord_events *ev)
{
    return ev->seq;
}

const char *
coord_event_kind_name(enum coord_event_kind kind)
{
    switch (kind) {
    case COORD_EVENT_JOB:
        return "job";
    case COORD_EVENT_WORKER:
        return "worker";
    case COORD_EVENT_CREDITS:
        return "credits";
    case COORD_EVENT_KEY:
        return "key";
    case COORD_EVENT_USER:
        return "user";
    default:
        return "unknown";
    }
}
