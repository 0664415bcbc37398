/*
 * coord_dash_ws: the WebSocket subprotocol "cacheout.dashboard.v1" on /ws/dashboard, for
 * dashboards: a snapshot on connect, then one event per change. This module wires the protocol into
 * the server: the path and auth are checked in LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION (a real
 * 401/404 answer on failure), the connection gets a small hello message and is kept open.  The
 * session logic lands with its own issue.
 */
#ifndef COORD_DASH_WS_H
#define COORD_DASH_WS_H

#include <libwebsockets.h>

#define COORD_DASH_WS_PROTOCOL "cacheout.dashboard.v1"
#define COORD_DASH_WS_PATH "/ws/dashboard"

/** The lws protocol entry (name, callback, per-session size) for the server's table. */
struct lws_protocols coord_dash_ws_protocol(void);

#endif
