/*
 * coord_dash_ws: "cacheout.dashboard.v1" on /ws/dashboard (proto/DASHBOARD.md).  The handshake
 * is checked here (path, Origin, optional admin token); the sessions live in the dashboard hub
 * (coord_dash.c), which this protocol creates at PROTOCOL_INIT and frees at PROTOCOL_DESTROY.
 *
 * Thread: the lws service thread.  What it uses of the coordinator (settings, the failed-auth
 * throttle, counters, the hub's environment) is the struct coord_dash_env that coord_server
 * put in the protocol entry (its `user` pointer) at start.
 */
#include "coord_dash_ws.h"

#include <strings.h>

#include "co_log.h"
#include "co_alloc.h"
#include "co_time.h"
#include "coord_dash.h"
#include "coord_limits.h"
#include "coord_metrics.h"
#include "coord_ws_common.h"

struct dash_pss {
    struct coord_dash_sess sess;
    bool admin_at_upgrade;
    bool counted;
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* Authorization: Bearer on the upgrade ("" none) */
    char peer[64];
};

/* The per-vhost storage of the protocol: the hub pointer. */
struct dash_vhd {
    struct coord_dash *hub;
};

static struct coord_dash *
hub_of(struct lws *wsi)
{
    struct dash_vhd *vhd = lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi));
    return vhd ? vhd->hub : NULL;
}

/*
 * Origin: absent (tools), one of CORS_ORIGINS, or the coordinator's own origin (the scheme and
 * the Host header of this very request).
 */
static bool
origin_allowed(struct lws *wsi, const struct coord_config *cfg)
{
    char origin[256], host[256];
    int on = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (on <= 0)
        return true;
    if (on >= (int)sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
        return false;
    if (coord_config_cors_allowed(cfg, origin, strlen(origin)))
        return true;
    int hn = lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
    if (hn <= 0)
        return false;
    const char *rest = NULL;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    return rest && strcasecmp(rest, host) == 0;
}

/* The environment coord_server gave the protocol (NULL before the vhost has protocols). */
static const struct coord_dash_env *
env_of(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    return p ? p->user : NULL;
}

static int
dash_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct dash_pss *pss = user;
    const struct coord_dash_env *env = env_of(wsi);
    switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT: {
        if (!env)
            return 0;
        struct dash_vhd *vhd = lws_protocol_vh_priv_zalloc(
            lws_get_vhost(wsi), lws_get_protocol(wsi), sizeof(struct dash_vhd));
        if (!vhd)
            return -1;
        vhd->hub = coord_dash_new(env, lws_get_context(wsi));
        coord_dash_attach_agents(vhd->hub, lws_get_vhost(wsi));
        return 0;
    }
    case LWS_CALLBACK_PROTOCOL_DESTROY: {
        struct dash_vhd *vhd = lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi));
        if (vhd) {
            coord_dash_free(vhd->hub);
            vhd->hub = NULL;
        }
        return 0;
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        if (!env)
            return 1;
        bool admin = false;
        int rc = coord_ws_filter(wsi, COORD_DASH_WS_PATH, "x-admin-token:", NULL,
                                 env->cfg->admin_token, &admin);
        if (rc != 0)
            return rc;
        if (!origin_allowed(wsi, env->cfg)) {
            lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, NULL);
            return 1;
        }
        /* An address with too many failed authentications (REST, agents, dashboards) waits. */
        char peer[64] = "";
        lws_get_peer_simple(wsi, peer, sizeof(peer));
        if (env->limits && coord_limits_auth_blocked(env->limits, peer, co_mono_ms()) > 0) {
            co_warn("dashboard upgrade refused: too many failed authentications from %s", peer);
            lws_return_http_status(wsi, 429, NULL);
            return 1;
        }
        char hash[COORD_KEY_HASH_LEN + 1];
        if (coord_ws_bearer_hash(wsi, hash) < 0) {
            if (env->limits)
                coord_limits_auth_failed(env->limits, peer, co_mono_ms());
            lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
            return 1;
        }
        if (pss) {
            pss->admin_at_upgrade = admin;
            co_strlcpy(pss->key_hash, hash, sizeof(pss->key_hash));
            co_strlcpy(pss->peer, peer, sizeof(pss->peer));
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        struct coord_dash *hub = hub_of(wsi);
        if (!hub || !pss)
            return -1;
        coord_dash_attach_agents(hub, lws_get_vhost(wsi));
        pss->counted = true;
        atomic_fetch_add(&env->metrics->dashboards_connected, 1);
        coord_dash_open(hub, &pss->sess, wsi, pss->admin_at_upgrade, pss->key_hash, pss->peer);
        explicit_bzero(pss->key_hash, sizeof(pss->key_hash));
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        struct coord_dash *hub = hub_of(wsi);
        if (!hub || !pss || !pss->sess.open)
            return 0;
        return coord_dash_writeable(hub, &pss->sess);
    }
    case LWS_CALLBACK_RECEIVE: {
        struct coord_dash *hub = hub_of(wsi);
        if (!hub || !pss || !pss->sess.open)
            return 0;
        return coord_dash_receive(hub, &pss->sess, in, len);
    }
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss && pss->sess.open)
            coord_dash_pong(&pss->sess);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (!pss)
            return 0;
        if (pss->counted)
            atomic_fetch_sub(&env->metrics->dashboards_connected, 1);
        pss->counted = false;
        coord_dash_close(hub_of(wsi), &pss->sess);
        return 0;
    default:
        return 0;
    }
}

struct lws_protocols
coord_dash_ws_protocol(struct coord_dash_env *env)
{
    struct lws_protocols p = {
        .name = COORD_DASH_WS_PROTOCOL,
        .callback = dash_callback,
        .per_session_data_size = sizeof(struct dash_pss),
        .rx_buffer_size = COORD_DASH_RX_MAX,
        .user = env,
    };
    return p;
}
