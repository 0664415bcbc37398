/*
 * coord_agent_ws: wires "cacheout.agent.v1" on /ws/agent into the server's protocol table.  The
 * protocol lives in coord_agent*.c (coord_agent_callback), the sessions in the hub (coord_hub.h),
 * the scheduler and the lease reaper on the hub; this module only provides the table entry so
 * that coord_server.c does not depend on their internals.
 */
#include "coord_agent_ws.h"

#include "coord_agent.h"

struct lws_protocols
coord_agent_ws_protocol(struct coord_agent_env *env)
{
    struct lws_protocols p = {
        .name = COORD_AGENT_WS_PROTOCOL,
        .callback = coord_agent_callback,
        .per_session_data_size = COORD_AGENT_PSS_SIZE,
        .rx_buffer_size = 65536,
        .user = env,
    };
    return p;
}
