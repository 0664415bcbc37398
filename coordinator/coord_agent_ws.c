/*
 * coord_agent_ws: "cacheout.agent.v1" on /ws/agent.  For now: handshake checks (path and
 * X-Agent-Token when AGENT_TOKEN is set), a welcome message, and an open connection whose
 * messages are read (size-capped) and ignored.  Agent sessions fill this in.
 */
#include "coord_agent_ws.h"

#include <inttypes.h>

#include "co_log.h"
#include "co_time.h"
#include "coord_server.h"
#include "coord_ws_common.h"

struct agent_pss {
    struct coord_ws_session ws;
    bool counted;
};

static int
agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct agent_pss *pss = user;
    struct coord_server *srv = coord_ws_server(wsi);
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (!srv)
            return 1;
        return coord_ws_filter(wsi, COORD_AGENT_WS_PATH, "x-agent-token:", srv->cfg->agent_token,
                               NULL, NULL);
    case LWS_CALLBACK_ESTABLISHED: {
        char msg[160];
        int n =
            snprintf(msg, sizeof(msg),
                     "{\"type\":\"welcome\",\"protocol\":\"%s\",\"server_time_ms\":%" PRId64 "}",
                     COORD_AGENT_WS_PROTOCOL, co_wall_ms());
        pss->counted = true;
        atomic_fetch_add(&srv->metrics.agents_connected, 1);
        co_info("agent websocket connected");
        return coord_ws_send(wsi, &pss->ws, msg, (size_t)n) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return coord_ws_write_one(wsi, &pss->ws);
    case LWS_CALLBACK_RECEIVE: {
        int rc = coord_ws_receive(wsi, &pss->ws, in, len);
        if (rc < 0)
            return -1;
        if (rc == 1)
            coord_ws_rx_reset(&pss->ws); /* sessions are not implemented yet */
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        if (pss->counted)
            atomic_fetch_sub(&srv->metrics.agents_connected, 1);
        pss->counted = false;
        coord_ws_session_release(&pss->ws);
        return 0;
    default:
        return 0;
    }
}

struct lws_protocols
coord_agent_ws_protocol(void)
{
    struct lws_protocols p = {
        .name = COORD_AGENT_WS_PROTOCOL,
        .callback = agent_callback,
        .per_session_data_size = sizeof(struct agent_pss),
        .rx_buffer_size = 0,
    };
    return p;
}
