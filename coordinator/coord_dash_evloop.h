/*
 * coord_dash_evloop: an epoll-based event loop (libev) for the coordinator's lws context.
 *
 * lws's built-in loop calls poll() over every open descriptor on each service turn, so each
 * connected dashboard costs the coordinator work on every turn even when it is silent: with
 * 1,000 dashboards that alone took a quarter of the job throughput (bench/dashboard).  With
 * libev as lws's "foreign" loop, idle sockets cost nothing per turn.
 *
 * libev is opened at run time (dlopen of libev.so.4, which lws's libev event-lib plugin needs
 * anyway), so the coordinator neither links it nor fails without it: when it is missing, or lws
 * cannot load its plugin, the caller keeps lws's built-in loop.
 *
 * Thread: the lws service thread (the main thread inside coord_server_run()).  Life cycle:
 * coord_server_run() creates the loop before the lws context, runs it in its service loop, and
 * frees it after lws_context_destroy() (or at once when the context cannot use it).
 */
#ifndef COORD_DASH_EVLOOP_H
#define COORD_DASH_EVLOOP_H

#include <stdbool.h>

struct coord_dash_evloop;

/** A new epoll loop, or NULL (logged at info) when libev is not available.  Caller-owned. */
struct coord_dash_evloop *coord_dash_evloop_new(void);

/**
 * The value for lws_context_creation_info.foreign_loops (with LWS_SERVER_OPTION_LIBEV); valid
 * as long as @l.
 */
void **coord_dash_evloop_foreign(struct coord_dash_evloop *l);

/** One turn: wait for at least one event (or a timer) and handle it; @nowait: do not wait. */
void coord_dash_evloop_run(struct coord_dash_evloop *l, bool nowait);

/** Destroy the loop (after lws_context_destroy) and close libev.  NULL is fine. */
void coord_dash_evloop_free(struct coord_dash_evloop *l);

#endif
