/*
 * coord_agent_ws: the WebSocket subprotocol "cacheout.agent.v1" on /ws/agent, for agents
 * (cacheout-agent): push assignments, heartbeats, output and results (see proto/PROTOCOL.md). This
 * module only builds the protocol's entry of the server's table; the protocol itself (path and
 * credential checks, sessions, messages) is coord_agent*.c, on the hub of coord_hub.h.
 *
 * Thread: coord_agent_ws_protocol() runs once on the main thread, when coord_server_run() builds
 * the protocol table before creating the lws context; the callback it names then runs on the lws
 * service thread.  No state of its own: the entry's `user` is the struct coord_agent_env that
 * coord_server owns from start to shutdown.
 */
#ifndef COORD_AGENT_WS_H
#define COORD_AGENT_WS_H

#include <libwebsockets.h>

#define COORD_AGENT_WS_PROTOCOL "cacheout.agent.v1"
#define COORD_AGENT_WS_PATH "/ws/agent"

struct coord_agent_env;

/**
 * The lws protocol entry (name, callback, per-session size) for the server's table; @env (see
 * coord_agent.h) is its `user`, borrowed for the protocol's life.
 */
struct lws_protocols coord_agent_ws_protocol(struct coord_agent_env *env);

#endif
