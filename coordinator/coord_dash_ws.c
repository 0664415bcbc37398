/*
 * coord_dash_ws: "cacheout.dashboard.v1" on /ws/dashboard.  For now: handshake checks (path; an
 * optional admin token as X-Admin-Token or ?token= marks the session admin), a small snapshot
 * (the event sequence number and the cached health counts), and an open connection.  The
 * dashboard issue adds the full snapshot and the event stream (coord_events).
 */
#include "coord_dash_ws.h"

#include <inttypes.h>

#include "co_buf.h"
#include "co_log.h"
#include "coord_jsonw.h"
#include "coord_server.h"
#include "coord_ws_common.h"

struct dash_pss {
    struct coord_ws_session ws;
    bool counted;
};

static int
dash_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct dash_pss *pss = user;
    struct coord_server *srv = coord_ws_server(wsi);
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        if (!srv)
            return 1;
        bool admin = false;
        int rc = coord_ws_filter(wsi, COORD_DASH_WS_PATH, "x-admin-token:", NULL,
                                 srv->cfg->admin_token, &admin);
        if (rc == 0 && pss)
            pss->ws.admin = admin;
        return rc;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        struct co_buf b = CO_BUF_INIT;
        struct coord_jsonw w;
        coord_jsonw_init(&w, &b);
        coord_jsonw_obj_begin(&w);
        coord_jsonw_kstr(&w, "type", "snapshot");
        coord_jsonw_kint(&w, "seq", (int64_t)coord_events_seq(srv->events));
        coord_jsonw_key(&w, "admin");
        coord_jsonw_bool(&w, pss->ws.admin);
        if (srv->health_valid && srv->health_db_ok) {
            coord_jsonw_key(&w, "jobs");
            coord_jsonw_obj_begin(&w);
            for (int i = 0; i < COORD_JOB_STATUS_COUNT; i++)
                coord_jsonw_kint(&w, coord_job_status_name((enum coord_job_status)i),
                                 srv->health.jobs[i]);
            coord_jsonw_obj_end(&w);
        }
        coord_jsonw_obj_end(&w);
        pss->counted = true;
        atomic_fetch_add(&srv->metrics.dashboards_connected, 1);
        int rc = coord_ws_send(wsi, &pss->ws, b.data, b.len);
        co_buf_release(&b);
        return rc < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return coord_ws_write_one(wsi, &pss->ws);
    case LWS_CALLBACK_RECEIVE: {
        int rc = coord_ws_receive(wsi, &pss->ws, in, len);
        if (rc < 0)
            return -1;
        if (rc == 1)
            coord_ws_rx_reset(&pss->ws);
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        if (pss->counted)
            atomic_fetch_sub(&srv->metrics.dashboards_connected, 1);
        pss->counted = false;
        coord_ws_session_release(&pss->ws);
        return 0;
    default:
        return 0;
    }
}

struct lws_protocols
coord_dash_ws_protocol(void)
{
    struct lws_protocols p = {
        .name = COORD_DASH_WS_PROTOCOL,
        .callback = dash_callback,
        .per_session_data_size = sizeof(struct dash_pss),
    };
    return p;
}
