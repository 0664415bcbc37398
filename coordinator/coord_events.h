/*
 * coord_events: the coordinator's change feed.  Whoever changes a job, a worker or a user's
 * credits publishes the id after the change is committed; subscribers (the agent protocol, the
 * dashboard hub, the server's authentication cache) are called synchronously on the lws service
 * thread, in order; with PostgreSQL, coord_feed publishes other nodes' changes here too. Publishing
 * with no subscriber costs a counter increment.
 *
 * Thread: the lws service thread only.  Life cycle: coord_server_run() creates it at start and
 * frees it once the lws context is destroyed; the agent protocol and the dashboard hub
 * subscribe at their PROTOCOL_INIT and unsubscribe at their PROTOCOL_DESTROY, the server for its
 * whole run.
 */
#ifndef COORD_EVENTS_H
#define COORD_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

enum coord_event_kind {
    COORD_EVENT_JOB = 0, /* a job's row changed (status, output, ...) */
    COORD_EVENT_WORKER,  /* a worker registered, changed or went offline */
    COORD_EVENT_CREDITS, /* a user's balance changed */
    COORD_EVENT_KEY,     /* an API key was revoked (id: the key_id) */
    COORD_EVENT_USER,    /* a user was changed: disabled, admin flag, limits (id: the user_id) */
    COORD_EVENT_KIND_COUNT
};

/** A subscriber: @id is borrowed for the duration of the call. */
typedef void (*coord_event_fn)(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq);

struct coord_events;

/** A new, empty feed (caller-owned, coord_events_free). */
struct coord_events *coord_events_new(void);
/** Free @ev and forget its subscribers (NULL is fine). */
void coord_events_free(struct coord_events *ev);

/** Add a subscriber; returns a handle for coord_events_unsubscribe (> 0). */
int coord_events_subscribe(struct coord_events *ev, coord_event_fn fn, void *ud);
/** Remove a subscriber by handle (unknown handles are ignored). */
void coord_events_unsubscribe(struct coord_events *ev, int handle);

/**
 * Publish one change made by this node (lws thread); returns its sequence number (1, 2, ...).
 * The other nodes learn of it from the database (coord_feed: the changing transaction wrote it).
 */
uint64_t coord_events_publish(struct coord_events *ev, enum coord_event_kind kind, const char *id);

/** Deliver a change another node made (coord_feed, lws thread), marked remote. */
uint64_t coord_events_publish_remote(struct coord_events *ev, enum coord_event_kind kind,
                                     const char *id);

/** True while a subscriber is being called for another node's change. */
bool coord_events_remote(const struct coord_events *ev);

/** The sequence number of the last published event (0 if none). */
uint64_t coord_events_seq(const struct coord_events *ev);

/** "job", "worker", "credits", "key", "user". */
const char *coord_event_kind_name(enum coord_event_kind kind);

/** The kind named @name ("job", ...), or -1. */
int coord_event_kind_parse(const char *name);

#endif
