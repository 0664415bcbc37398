/*
 * coord_dash_ws: the WebSocket subprotocol "cacheout.dashboard.v1" on /ws/dashboard, for
 * dashboards (proto/DASHBOARD.md): a snapshot on connect, then one numbered event per change.
 * The handshake is checked in LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: another path gets a real
 * 404, a foreign Origin 403; an X-Admin-Token header (or `?token=`, for tools) equal to
 * ADMIN_TOKEN makes the session admin, a wrong one leaves it read-only.  The sessions and the
 * fan-out live in coord_dash.h.  Thread: the lws service thread.  Life cycle: the protocol
 * creates the dashboard hub at PROTOCOL_INIT and frees it at PROTOCOL_DESTROY (coord_dash_ws.c).
 */
#ifndef COORD_DASH_WS_H
#define COORD_DASH_WS_H

#include <libwebsockets.h>

#define COORD_DASH_WS_PROTOCOL "cacheout.dashboard.v1"
#define COORD_DASH_WS_PATH "/ws/dashboard"

struct coord_dash_env;

/**
 * The lws protocol entry (name, callback, per-session size) for the server's table; @env
 * (borrowed until the context is destroyed) is what the protocol and its hub use.
 */
struct lws_protocols coord_dash_ws_protocol(struct coord_dash_env *env);

#endif
