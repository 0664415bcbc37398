/*
 * coord_server: lws context, HTTP request lifecycle, static files and WebSocket wiring.
 *
 * Life of an API request (all on the lws service thread unless stated):
 *   LWS_CALLBACK_HTTP        route, auth, CORS origin, Content-Length/-Type checks; answer
 *                            early errors at once; else wait for the body or dispatch
 *   LWS_CALLBACK_HTTP_BODY   append (the cap was checked against Content-Length already)
 *   ..._BODY_COMPLETION      dispatch to the database executor (coord_db)
 *   database thread          coord_api_handle() fills the answer
 *   EVENT_WAIT_CANCELLED     completions drained: publish changes, ask for WRITEABLE
 *   HTTP_WRITEABLE           headers, then the body in chunks, then keep-alive or close
 * A connection that closes while its request is in flight marks the request orphaned; the
 * completion then frees it without touching the wsi.
 *
 * The top of the coordinator: the handlers (coord_api) see only the struct coord_req inside each
 * struct http_req, the dashboards (coord_dash*) only the struct coord_dash_env given to their
 * protocol entry here, and health is rendered by coord_render from this node's figures.
 *
 * Thread: the lws service thread (the handlers and key lookups on coord_db's threads).  Life
 * cycle: coord_server_run() from main() creates the context and the modules it wires (change
 * feed, dashboards' environment, callbacks, retention), serves until the stop flag, drains the
 * requests in flight and frees them all.
 */
#include "coord_server.h"

#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <sys/stat.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent.h"
#include "coord_agent_ws.h"
#include "coord_api.h"
#include "coord_dash.h"
#include "coord_idem.h"
#include "coord_openapi.h"
#include "coord_retention.h"
#include "coord_webhook.h"
#include "coord_dash_evloop.h"
#include "coord_dash_ws.h"
#include "coord_feed.h"
#include "co_jsonw.h"

#define HDR_BUF 4096
#define BODY_CHUNK 65536
#define HEALTH_TTL_MS 1000
/* After a change made elsewhere (agent sessions, scheduler), the snapshot lives this long. */
#define HEALTH_DIRTY_TTL_MS 100
#define SHUTDOWN_GRACE_MS 10000

/*
 * One REST request on its connection: the request and its answer (coord_req.h, all that
 * coord_api sees) and what only the lws side knows.
 */
struct http_req {
    struct coord_req r; /* first */
    struct coord_server *srv;
    struct lws *wsi;   /* NULL once the connection closed while the request was in flight */
    bool waiting_body; /* accepted: reading the body, dispatched at BODY_COMPLETION */
    bool inflight;     /* owned by the database executor until its completion ran */
    bool orphaned;     /* the connection closed while in flight: free on completion */
    bool close_after;  /* close the connection after the answer (unread body) */
    char cors_origin[256];
    char peer[64];                         /* the client's address (failed-auth throttle) */
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* a bearer key's token hash, "" if none */
    bool auth_pending;                     /* the key still has to be looked up */
    int auth_rc;                           /* the lookup's result: 1 found, 0 not, -1 error */
    co_err auth_err;                       /* its error when -1 */
    struct coord_auth_entry auth_found;    /* what it found */
    uint64_t auth_gen;                     /* the cache generation when it started */
    size_t sent;                           /* bytes of resp already written */
    bool headers_sent;
    int64_t t0_ns;
};

struct http_pss {
    struct http_req *req;
    /* A static file served by the file mount: logged at FILE_COMPLETION. */
    int64_t static_t0_ns;
    char static_path[128];
};

static const char placeholder_html[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<title>CacheOut</title></head><body><h1>CacheOut coordinator</h1>"
    "<p>The dashboard is not built yet. The REST API is at <code>/api/v1/</code> "
    "(try <a href=\"/api/v1/health\">/api/v1/health</a>), metrics at "
    "<a href=\"/metrics\">/metrics</a>.</p></body></html>\n";

/* Security headers on every HTTP answer (vhost-wide).  The CSP allows what a Vite React bundle
 * needs: scripts and styles from 'self', inline style attributes (used by many components),
 * data:/blob: images and fonts, and WebSocket/fetch back to the origin. */
static const struct lws_protocol_vhost_options sec_headers[] = {
    {&sec_headers[1], NULL, "content-security-policy:",
     "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss:; "
     "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"},
    {&sec_headers[2], NULL, "x-content-type-options:", "nosniff"},
    {&sec_headers[3], NULL, "x-frame-options:", "DENY"},
    {&sec_headers[4], NULL, "referrer-policy:", "no-referrer"},
    {NULL, NULL, "cross-origin-opener-policy:", "same-origin"},
};

static const struct lws_protocol_vhost_options mimes[] = {
    {&mimes[1], NULL, ".map", "application/json"},
    {&mimes[2], NULL, ".wasm", "application/wasm"},
    {&mimes[3], NULL, ".mjs", "text/javascript"},
    {&mimes[4], NULL, ".webp", "image/webp"},
    {&mimes[5], NULL, ".svg", "image/svg+xml"},
    {&mimes[6], NULL, ".woff2", "font/woff2"},
    {&mimes[7], NULL, ".woff", "font/woff"},
    {&mimes[8], NULL, ".webmanifest", "application/manifest+json"},
    {&mimes[9], NULL, ".json", "application/json"},
    {&mimes[10], NULL, ".txt", "text/plain"},
    {NULL, NULL, ".js", "text/javascript"},
};

/* ------------------------------------------------------------------ request lifecycle */

static struct http_req *
req_new(struct coord_server *srv, struct lws *wsi)
{
    struct http_req *q = co_xcalloc(1, sizeof(*q));
    coord_req_init(&q->r, srv->cfg);
    q->srv = srv;
    q->wsi = wsi;
    q->t0_ns = co_mono_ns();
    return q;
}

static void
req_free(struct http_req *q)
{
    if (!q)
        return;
    coord_req_release(&q->r);
    free(q);
}

static void
req_log(struct http_req *q)
{
    struct coord_server *srv = q->srv;
    struct coord_req *r = &q->r;
    coord_metrics_http(&srv->metrics, r->status);
    if (srv->rec)
        coord_openapi_rec_answer(srv->rec, r);
    if (co_log_enabled(CO_LOG_INFO)) {
        int64_t us = (co_mono_ns() - q->t0_ns) / 1000;
        co_info("http request method=%s path=%s status=%d duration_ms=%" PRId64 ".%03" PRId64,
                r->method_name, r->path, r->status, us / 1000, us % 1000);
    }
}

/*
 * Write the status line and headers, and on an HTTP/1.1 connection a body of up to BODY_CHUNK
 * bytes with them (one write, one syscall; HTTP/2 streams need separate frames).  Returns -1 if
 * the connection must close.
 */
static int
req_send_headers(struct lws *wsi, struct http_req *q)
{
    struct coord_req *r = &q->r;
    /* Only the lws thread writes: one buffer is enough. */
    static unsigned char buf[LWS_PRE + HDR_BUF + BODY_CHUNK];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = start + HDR_BUF - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)r->status, r->content_type,
                                    (lws_filepos_t)r->resp.len, &p, end))
        return -1;
    if (q->cors_origin[0]) {
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                        (const unsigned char *)q->cors_origin,
                                        (int)strlen(q->cors_origin), &p, end) ||
            lws_add_http_header_by_name(
                wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, &p, end))
            return -1;
        if (r->method == COORD_M_OPTIONS) {
            static const char methods[] = "GET, POST, PATCH, DELETE, OPTIONS";
            static const char headers[] =
                "Authorization, Content-Type, Idempotency-Key, X-Admin-Token, X-Agent-Token";
            if (lws_add_http_header_by_name(
                    wsi, (const unsigned char *)"access-control-allow-methods:",
                    (const unsigned char *)methods, (int)strlen(methods), &p, end) ||
                lws_add_http_header_by_name(
                    wsi, (const unsigned char *)"access-control-allow-headers:",
                    (const unsigned char *)headers, (int)strlen(headers), &p, end) ||
                lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-max-age:",
                                            (const unsigned char *)"600", 3, &p, end))
                return -1;
        }
    }
    if (r->retry_after > 0) {
        char ra[24];
        int n = snprintf(ra, sizeof(ra), "%" PRId64, r->retry_after);
        if (lws_add_http_header_by_name(
                wsi, (const unsigned char *)"retry-after:", (const unsigned char *)ra, n, &p, end))
            return -1;
    }
    if (r->idem_replayed &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"idempotent-replayed:",
                                    (const unsigned char *)"true", 4, &p, end))
        return -1;
    if (r->disposition[0] &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"content-disposition:",
                                    (const unsigned char *)r->disposition,
                                    (int)strlen(r->disposition), &p, end))
        return -1;
    if (strcmp(r->content_type, "application/json") == 0 &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (r->resp.len <= BODY_CHUNK && lws_get_network_wsi(wsi) == wsi) {
        if (lws_finalize_http_header(wsi, &p, end))
            return -1;
        if (r->resp.len > 0) {
            memcpy(p, r->resp.data, r->resp.len);
            p += r->resp.len;
        }
        int n = (int)(p - start);
        if (lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP_FINAL) < n)
            return -1;
        q->sent = r->resp.len;
    } else if (lws_finalize_write_http_header(wsi, start, &p, end)) {
        return -1;
    }
    q->headers_sent = true;
    return 0;
}

/* The answer is out: log it, free the request, keep the connection or close it. */
static int
req_finish(struct lws *wsi, struct http_pss *pss)
{
    struct http_req *q = pss->req;
    bool close_after = q->close_after;
    req_log(q);
    req_free(q);
    pss->req = NULL;
    if (close_after)
        return -1;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* WRITEABLE: headers (if not yet), then the next body chunk.  Returns -1 to close. */
static int
req_write(struct lws *wsi, struct http_pss *pss)
{
    struct http_req *q = pss->req;
    struct coord_req *r = &q->r;
    if (!q->headers_sent) {
        if (req_send_headers(wsi, q) < 0)
            goto close;
        if (q->sent < r->resp.len) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    if (q->sent < r->resp.len) {
        static unsigned char buf[LWS_PRE + BODY_CHUNK];
        size_t n = r->resp.len - q->sent;
        if (n > BODY_CHUNK)
            n = BODY_CHUNK;
        memcpy(buf + LWS_PRE, r->resp.data + q->sent, n);
        q->sent += n;
        bool last = q->sent == r->resp.len;
        if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
            goto close;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    return req_finish(wsi, pss);
close:
    req_log(q);
    req_free(q);
    pss->req = NULL;
    return -1;
}

/* The answer in @q is ready: have it written. */
static void
req_answer(struct http_req *q)
{
    lws_callback_on_writable(q->wsi);
}

/*
 * Render health (or /metrics) into @r from @h with this node's figures (lws thread: they are
 * read here).  @h NULL or !@db_ok: the database is down.
 */
static void
render_health(struct coord_server *srv, const struct coord_health *h, bool db_ok,
              struct coord_req *r)
{
    co_buf_reset(&r->resp);
    if (r->route == COORD_R_HEALTH) {
        r->status = coord_render_health(&r->resp, &srv->node, db_ok ? h : NULL, db_ok);
        r->content_type = "application/json";
        return;
    }
    coord_render_metrics(&r->resp, &srv->node, db_ok ? h : NULL, db_ok);
    coord_webhook_metrics_render(&r->resp);
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void
server_publish(struct coord_server *srv, struct coord_req *r)
{
    for (int i = 0; i < r->n_changes; i++)
        coord_events_publish(srv->events, r->change_kind[i], r->change_id[i]);
}

/* Completion of a dispatched request (lws thread). */
static void
req_done(void *arg)
{
    struct http_req *q = arg;
    struct coord_req *r = &q->r;
    struct coord_server *srv = q->srv;
    q->inflight = false;
    srv->inflight--;
    if (r->route == COORD_R_HEALTH || r->route == COORD_R_METRICS) {
        srv->health = r->health;
        srv->health_db_ok = r->health_ok;
        srv->health_valid = true;
        srv->health_dirty = false;
        srv->health_at_ms = co_mono_ms();
        render_health(srv, &r->health, r->health_ok, r);
    } else if (r->wrote_state || r->db_down) {
        /* Counts changed (or the database went away): the next health check asks again. */
        srv->health_valid = false;
    }
    if (r->dispatch_wait_ms >= 0)
        coord_metrics_dispatch(&srv->metrics, r->dispatch_wait_ms);
    server_publish(srv, r);
    if (q->orphaned) {
        req_free(q);
        return;
    }
    req_answer(q);
}

static void
req_work(struct coord_store *store, void *arg)
{
    struct http_req *q = arg;
    coord_api_handle(store, &q->r);
}

static void
req_dispatch(struct coord_server *srv, struct http_req *q, enum coord_db_lane lane)
{
    co_err err = CO_ERR_INIT;
    q->inflight = true;
    srv->inflight++;
    if (coord_db_submit(srv->db, lane, req_work, req_done, q, &err) < 0) {
        q->inflight = false;
        srv->inflight--;
        coord_req_error(&q->r, 503, "unavailable", NULL, "server busy: %s", err.msg);
        req_answer(q);
    }
}

/* ------------------------------------------------------------------ HTTP callback helpers */

/* A custom header into @buf: 1 present, 0 absent, -1 present but too long for @buf. */
static int
hdr_custom(struct lws *wsi, const char *name, char *buf, int len)
{
    int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));
    if (n <= 0)
        return 0;
    if (n >= len || lws_hdr_custom_copy(wsi, buf, len, name, (int)strlen(name)) < 0)
        return -1;
    return 1;
}

static bool
token_ok(const char *got, const char *want)
{
    if (!want)
        return true;
    return co_consttime_eq(got, strlen(got), want, strlen(want)) == 1;
}

/*
 * The Idempotency-Key of a POST into r->idem_key (absent: "").  Who presented it is the request's
 * principal, resolved by the time the handler runs (coord_idem_run).  Returns -1 with the answer
 * filled when the header is not a valid key.
 */
static int
req_idempotency(struct lws *wsi, struct coord_req *r)
{
    static const char name[] = "idempotency-key:";
    r->idem_key[0] = '\0';
    int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));
    if (n < 0)
        return 0;
    if (n > COORD_IDEM_KEY_MAX ||
        lws_hdr_custom_copy(wsi, r->idem_key, (int)sizeof(r->idem_key), name, (int)strlen(name)) <
            0 ||
        !coord_idem_header_ok(r->idem_key, strlen(r->idem_key))) {
        r->idem_key[0] = '\0';
        coord_req_error(r, 422, "invalid_field", "Idempotency-Key",
                        "Idempotency-Key must be 1-%d visible ASCII characters",
                        COORD_IDEM_KEY_MAX);
        return -1;
    }
    return 0;
}

static void
copy_arg(struct lws *wsi, const char *name, char *dst, size_t dstlen, bool *has)
{
    char buf[256];
    char key[32];
    snprintf(key, sizeof(key), "%s=", name);
    const char *v = lws_get_urlarg_by_name(wsi, key, buf, (int)sizeof(buf));
    *has = v != NULL;
    if (!v) {
        dst[0] = '\0';
        return;
    }
    if (co_strlcpy(dst, v, dstlen) >= dstlen)
        dst[dstlen - 1] = '\0'; /* too long: the handler rejects the truncated value */
}

static bool
path_has_ext(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *last = slash ? slash + 1 : path;
    return strchr(last, '.') != NULL;
}

/* Serve the SPA entry point (index.html or the built-in placeholder). */
static int
serve_spa(struct lws *wsi, struct http_pss *pss)
{
    struct http_req *q = pss->req;
    struct coord_req *r = &q->r;
    struct coord_server *srv = q->srv;
    co_autofree char *index = co_xasprintf("%s/index.html", srv->cfg->frontend_dir);
    struct stat st;
    if (stat(index, &st) == 0 && S_ISREG(st.st_mode)) {
        r->status = 200;
        req_log(q);
        req_free(q);
        pss->req = NULL;
        int n = lws_serve_http_file(wsi, index, "text/html", NULL, 0);
        if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
            return -1;
        return 0;
    }
    r->status = 200;
    r->content_type = "text/html";
    co_buf_puts(&r->resp, placeholder_html);
    req_answer(q);
    return 0;
}

static bool
content_type_json(struct lws *wsi)
{
    char ct[128];
    int n = lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (n <= 0)
        return false;
    size_t len = strcspn(ct, ";");
    while (len > 0 && ct[len - 1] == ' ')
        len--;
    return len == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* The request's method from lws's (-1 or an unknown one: OTHER). */
static enum coord_method
method_of(int m)
{
    switch (m) {
    case LWSHUMETH_GET:
        return COORD_M_GET;
    case LWSHUMETH_POST:
        return COORD_M_POST;
    case LWSHUMETH_OPTIONS:
        return COORD_M_OPTIONS;
    case LWSHUMETH_PUT:
        return COORD_M_PUT;
    case LWSHUMETH_PATCH:
        return COORD_M_PATCH;
    case LWSHUMETH_DELETE:
        return COORD_M_DELETE;
    case LWSHUMETH_HEAD:
        return COORD_M_HEAD;
    default:
        return COORD_M_OTHER;
    }
}

/* ------------------------------------------------------------------ credentials and rights */

/* Answer 401 for a credential that did not match, and count it against the client's address. */
static void
auth_reject(struct http_req *q, const char *msg)
{
    coord_limits_auth_failed(q->srv->limits, q->peer, co_mono_ms());
    coord_req_error(&q->r, 401, "unauthorized", NULL, "%s", msg);
}

/*
 * The bearer token of "Authorization: Bearer <token>" into q->key_hash (only its hash is kept).
 * Returns -1 after answering 401 for a malformed header.
 */
static int
req_bearer(struct lws *wsi, struct http_req *q, int len)
{
    char auth[512];
    int rc = -1;
    if (len >= (int)sizeof(auth) ||
        lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
        auth_reject(q, "malformed Authorization header");
        goto out;
    }
    if (strncasecmp(auth, "Bearer ", 7) != 0) {
        auth_reject(q, "the Authorization header must be 'Bearer <key>'");
        goto out;
    }
    const char *t = auth + 7;
    while (*t == ' ')
        t++;
    size_t tl = strlen(t);
    while (tl > 0 && t[tl - 1] == ' ')
        tl--;
    if (tl == 0 || tl > 256) {
        auth_reject(q, "malformed bearer token");
        goto out;
    }
    coord_auth_hash(t, tl, q->key_hash);
    rc = 0;
out:
    explicit_bzero(auth, sizeof(auth));
    return rc;
}

/*
 * Resolve the request's credential into r->principal, once: X-Admin-Token, else
 * Authorization: Bearer (from the cache, or q->auth_pending: looked up on a database thread
 * before the handler runs), else X-Agent-Token; none is anonymous.  A credential that does not
 * match is 401 whatever the route; from an address with too many failures it is 429.  Returns
 * -1 after answering.
 */
static int
req_credentials(struct lws *wsi, struct http_req *q)
{
    struct coord_req *r = &q->r;
    struct coord_server *srv = q->srv;
    char tok[512];
    int rc = -1;
    memset(&r->principal, 0, sizeof(r->principal));
    coord_limits_user_defaults(&r->limits);
    int admin = hdr_custom(wsi, "x-admin-token:", tok, sizeof(tok));
    int bearer = admin ? 0 : lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    int agent = admin || bearer > 0 ? 0 : hdr_custom(wsi, "x-agent-token:", tok, sizeof(tok));
    if (agent && !srv->cfg->agent_token)
        agent = 0; /* without AGENT_TOKEN the header means nothing (anonymous) */
    if (!admin && bearer <= 0 && !agent)
        return 0;
    int64_t wait = coord_limits_auth_blocked(srv->limits, q->peer, co_mono_ms());
    if (wait > 0) {
        r->retry_after = wait;
        coord_req_error(r, 429, "rate_limited", NULL,
                        "too many failed authentications from this address; retry in %lld s",
                        (long long)wait);
        goto out;
    }
    if (admin) {
        if (admin < 0 || !token_ok(tok, srv->cfg->admin_token)) {
            auth_reject(q, "wrong X-Admin-Token");
            goto out;
        }
        coord_auth_principal_admin(&r->principal);
    } else if (bearer > 0) {
        struct coord_auth_entry e;
        if (req_bearer(wsi, q, bearer) < 0)
            goto out;
        if (coord_auth_cache_get(srv->auth_cache, q->key_hash, co_mono_ms(), &e)) {
            atomic_fetch_add(&srv->metrics.auth_key_cache_hits, 1);
            r->principal = e.p;
            r->limits = e.limits;
        } else {
            q->auth_pending = true;
            q->auth_gen = coord_auth_cache_gen(srv->auth_cache);
        }
    } else {
        if (agent < 0 || !token_ok(tok, srv->cfg->agent_token)) {
            auth_reject(q, "wrong X-Agent-Token");
            goto out;
        }
        r->principal.cred = COORD_CRED_AGENT_TOKEN;
        r->principal.scopes = COORD_SCOPE_SELL;
    }
    rc = 0;
out:
    explicit_bzero(tok, sizeof(tok));
    return rc;
}

/* The route's declared rights (coord_api_allowed); -1 after answering 401/403. */
static int
req_check_route(struct coord_req *r)
{
    const char *msg = "";
    bool open = r->cfg->open_registration;
    int st = coord_api_allowed(&r->principal, (enum coord_auth)r->auth, r->self_or_admin, r->id,
                               open, &msg);
    if (st == 0) {
        /* OPEN_REGISTRATION: an agent route without a credential, as in the original. */
        if (open && r->auth == COORD_AUTH_AGENT && r->principal.cred == COORD_CRED_NONE)
            r->principal.cred = COORD_CRED_OPEN;
        return 0;
    }
    coord_req_error(r, st, st == 401 ? "unauthorized" : "forbidden", NULL, "%s", msg);
    return -1;
}

/*
 * Per-user limits of a submit (admins are exempt): the rate from the user's bucket here, the
 * pending quota (r->max_pending) in the submit's transaction.  -1 after answering 429.
 */
static int
req_check_limits(struct http_req *q)
{
    struct coord_req *r = &q->r;
    const struct coord_config *cfg = r->cfg;
    r->max_pending = 0;
    if (r->route != COORD_R_SUBMIT || r->principal.is_admin || !r->principal.user_id[0])
        return 0;
    double rate = r->limits.submit_per_second >= 0 ? r->limits.submit_per_second
                                                   : cfg->rate_submit_per_second;
    r->max_pending =
        r->limits.max_pending_jobs >= 0 ? r->limits.max_pending_jobs : cfg->max_pending_jobs;
    int64_t wait = coord_limits_submit(q->srv->limits, r->principal.user_id, rate, co_mono_ms());
    if (wait == 0)
        return 0;
    r->retry_after = wait;
    coord_req_error(r, 429, "rate_limited", NULL,
                    "submit rate of %g per second reached for user '%s'; retry in %lld s", rate,
                    r->principal.user_id, (long long)wait);
    return -1;
}

static int req_continue(struct http_req *q, struct http_pss *pss);

/* Database thread: look the bearer key up. */
static void
auth_work(struct coord_store *store, void *arg)
{
    struct http_req *q = arg;
    q->auth_rc = coord_auth_lookup(store, q->key_hash, &q->auth_found, &q->auth_err);
}

/* lws thread: the key lookup is back; carry on with the request (or answer 401/503). */
static void
auth_done(void *arg)
{
    struct http_req *q = arg;
    struct coord_req *r = &q->r;
    struct coord_server *srv = q->srv;
    q->inflight = false;
    srv->inflight--;
    q->auth_pending = false;
    if (q->orphaned) {
        req_free(q);
        return;
    }
    if (q->auth_rc < 0) {
        coord_req_fail(r, &q->auth_err);
        req_answer(q);
        return;
    }
    if (q->auth_rc == 0) {
        auth_reject(q, "unknown or revoked key, or its user is disabled");
        req_answer(q);
        return;
    }
    r->principal = q->auth_found.p;
    r->limits = q->auth_found.limits;
    coord_auth_cache_put(srv->auth_cache, q->key_hash, &q->auth_found, q->auth_gen, co_mono_ms());
    (void)req_continue(q, NULL);
}

/*
 * The body (if any) is read: resolve a pending key, check the route's rights and the limits,
 * then answer health from the cache or dispatch the handler.  @pss: non-NULL when called from
 * this connection's own callback (an answer may then be written at once).  Returns -1 to close.
 */
static int
req_continue(struct http_req *q, struct http_pss *pss)
{
    struct coord_req *r = &q->r;
    struct coord_server *srv = q->srv;
    if (q->auth_pending) {
        co_err err = CO_ERR_INIT;
        atomic_fetch_add(&srv->metrics.auth_key_lookups, 1);
        q->inflight = true;
        srv->inflight++;
        if (coord_db_submit(srv->db, COORD_DB_READ, auth_work, auth_done, q, &err) < 0) {
            q->inflight = false;
            srv->inflight--;
            q->auth_pending = false;
            coord_req_error(r, 503, "unavailable", NULL, "server busy: %s", err.msg);
            req_answer(q);
        }
        return 0;
    }
    if (req_check_route(r) < 0 || req_check_limits(q) < 0) {
        req_answer(q);
        return 0;
    }
    /* Health and metrics from the cache when it is fresh. */
    int64_t health_age = co_mono_ms() - srv->health_at_ms;
    if ((r->route == COORD_R_HEALTH || r->route == COORD_R_METRICS) && srv->health_valid &&
        health_age < (srv->health_dirty ? HEALTH_DIRTY_TTL_MS : HEALTH_TTL_MS)) {
        render_health(srv, &srv->health, srv->health_db_ok, r);
        if (!pss) {
            req_answer(q);
            return 0;
        }
        if (req_send_headers(q->wsi, q) < 0)
            return -1;
        if (q->sent == r->resp.len)
            return req_finish(q->wsi, pss);
        lws_callback_on_writable(q->wsi);
        return 0;
    }
    req_dispatch(srv, q, r->lane);
    return 0;
}

/* LWS_CALLBACK_HTTP: a new request.  Returns -1 to close. */
static int
http_request(struct lws *wsi, struct coord_server *srv, struct http_pss *pss)
{
    char *uri = NULL;
    int uri_len = 0;
    int m = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
    if (pss->req) {
        /* A previous request on this connection is still being answered. */
        return -1;
    }
    struct http_req *q = req_new(srv, wsi);
    struct coord_req *r = &q->r;
    pss->req = q;
    r->method = method_of(m);
    co_strlcpy(r->method_name, coord_req_method_name(r->method), sizeof(r->method_name));
    if (m < 0 || !uri || uri_len <= 0 || (size_t)uri_len >= sizeof(r->path)) {
        co_strlcpy(r->path, "?", sizeof(r->path));
        q->close_after = true;
        coord_req_error(r, 404, "not_found", NULL, "unknown path");
        req_answer(q);
        return 0;
    }
    memcpy(r->path, uri, (size_t)uri_len);
    r->path[uri_len] = '\0';
    r->path[strcspn(r->path, "?")] = '\0';

    char origin[256];
    int on = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (on > 0 && coord_config_cors_allowed(srv->cfg, origin, (size_t)on))
        co_strlcpy(q->cors_origin, origin, sizeof(q->cors_origin));

    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char cl[32];
        lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
        char *endp = NULL;
        errno = 0;
        long long v = strtoll(cl, &endp, 10);
        if (errno || endp == cl || *endp || v < 0) {
            q->close_after = true;
            coord_req_error(r, 400, "bad_request", NULL, "invalid Content-Length");
            req_answer(q);
            return 0;
        }
        r->content_length = v;
    }
    bool api = strncmp(r->path, "/api/v1/", 8) == 0 || strcmp(r->path, "/api/v1") == 0;
    bool metrics = strcmp(r->path, "/metrics") == 0;
    /* A request body we will not read leaves the connection unusable for keep-alive. */
    if (r->content_length > 0 || (m == LWSHUMETH_POST && r->content_length < 0))
        q->close_after = true;

    if (m == LWSHUMETH_OPTIONS) {
        r->status = 204;
        req_answer(q);
        return 0;
    }
    if (!api && !metrics) {
        if (m != LWSHUMETH_GET && m != LWSHUMETH_HEAD) {
            coord_req_error(r, 405, "method_not_allowed", NULL, "method not allowed");
            req_answer(q);
            return 0;
        }
        if (path_has_ext(r->path) || strstr(r->path, "..")) {
            r->status = 404;
            r->content_type = "text/plain";
            co_buf_puts(&r->resp, "not found\n");
            req_answer(q);
            return 0;
        }
        return serve_spa(wsi, pss);
    }

    struct coord_route_info ri;
    if (metrics) {
        if (m != LWSHUMETH_GET) {
            coord_req_error(r, 405, "method_not_allowed", NULL, "method not allowed");
            req_answer(q);
            return 0;
        }
        ri.route = COORD_R_METRICS;
        ri.auth = COORD_AUTH_NONE;
        ri.self_or_admin = false;
        ri.body = ri.body_optional = false;
        ri.lane = COORD_DB_READ;
    } else {
        int rc = coord_api_route(r->method, r->path, r->id, &ri);
        if (rc == 404) {
            coord_req_error(r, 404, "not_found", NULL, "unknown path '%s'", r->path);
            req_answer(q);
            return 0;
        }
        if (rc == 405) {
            coord_req_error(r, 405, "method_not_allowed", NULL, "method %s not allowed on '%s'",
                            r->method_name, r->path);
            req_answer(q);
            return 0;
        }
    }
    r->route = ri.route;
    r->lane = ri.lane;

    if (srv->stopping) {
        q->close_after = true;
        coord_req_error(r, 503, "unavailable", NULL, "server is shutting down");
        req_answer(q);
        return 0;
    }

    lws_get_peer_simple(wsi, q->peer, sizeof(q->peer));
    r->auth = ri.auth;
    r->self_or_admin = ri.self_or_admin;
    if (req_credentials(wsi, q) < 0 || (!q->auth_pending && req_check_route(r) < 0)) {
        req_answer(q);
        return 0;
    }

    if (m == LWSHUMETH_POST && req_idempotency(wsi, r) < 0) {
        req_answer(q);
        return 0;
    }

    /* Query arguments. */
    copy_arg(wsi, "status", r->q_status, sizeof(r->q_status), &r->has_status);
    copy_arg(wsi, "buyer_id", r->q_buyer, sizeof(r->q_buyer), &r->has_buyer);
    copy_arg(wsi, "worker_id", r->q_worker, sizeof(r->q_worker), &r->has_worker);
    copy_arg(wsi, "limit", r->q_limit, sizeof(r->q_limit), &r->has_limit);
    copy_arg(wsi, "days", r->q_days, sizeof(r->q_days), &r->has_days);
    copy_arg(wsi, "offset", r->q_offset, sizeof(r->q_offset), &r->has_offset);

    /* Bodies. */
    if (ri.body || (ri.body_optional && r->content_length > 0)) {
        if (r->content_length < 0) {
            coord_req_error(r, 411, "length_required", NULL,
                            "a request body needs a Content-Length header");
            req_answer(q);
            return 0;
        }
        if (r->content_length > srv->cfg->max_body_bytes) {
            coord_req_error(r, 413, "too_large", NULL, "request body of %lld bytes over %" PRId64,
                            (long long)r->content_length, srv->cfg->max_body_bytes);
            req_answer(q);
            return 0;
        }
        if (!content_type_json(wsi)) {
            coord_req_error(r, 415, "unsupported_media_type", NULL,
                            "Content-Type must be application/json");
            req_answer(q);
            return 0;
        }
        if (r->content_length > 0) {
            q->close_after = false; /* we read it */
            q->waiting_body = true;
            co_buf_grow(&r->body, (size_t)r->content_length);
            return 0; /* wait for LWS_CALLBACK_HTTP_BODY_COMPLETION */
        }
    } else if (r->content_length > 0) {
        /* A body where none is expected: it is not read, so close after the answer. */
        q->close_after = true;
    }
    if (m == LWSHUMETH_POST && r->content_length < 0)
        q->close_after = true;
    return req_continue(q, pss);
}

static int
http_callback_inner(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct http_pss *pss = user;
    struct lws_context *cx = lws_get_context(wsi);
    struct coord_server *srv = cx ? lws_context_user(cx) : NULL;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* Delivered to every protocol; completions are drained here only. */
        if (srv) {
            coord_db_drain_completions(srv->db);
            coord_feed_drain(srv->feed);
        }
        return 0;
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        /* Every request passes here first, static files included. */
        if (pss && in) {
            pss->static_t0_ns = co_mono_ns();
            co_strlcpy(pss->static_path, in, sizeof(pss->static_path));
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /*
         * A WebSocket upgrade lands on this protocol only when it names no known subprotocol:
         * refuse it with a real HTTP answer (DASHBOARD.md, PROTOCOL.md).
         */
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL);
        return 1;
    case LWS_CALLBACK_HTTP:
        if (!srv || !pss)
            return -1;
        pss->static_t0_ns = 0; /* answered by this callback, logged with the request */
        return http_request(wsi, srv, pss);
    case LWS_CALLBACK_HTTP_BODY:
        /*
         * Bodies of requests answered early (401, 413, ...) or that take no body are dropped:
         * only an accepted request reads its body, and it is dispatched exactly once.
         */
        if (!pss || !pss->req || !pss->req->waiting_body)
            return 0;
        if (pss->req->r.body.len + len > (size_t)srv->cfg->max_body_bytes)
            return -1;
        co_buf_append(&pss->req->r.body, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!pss || !pss->req || !pss->req->waiting_body)
            return 0;
        pss->req->waiting_body = false;
        return req_continue(pss->req, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss || !pss->req || pss->req->inflight)
            return 0;
        return req_write(wsi, pss);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        if (srv && pss && pss->static_t0_ns) {
            int64_t us = (co_mono_ns() - pss->static_t0_ns) / 1000;
            coord_metrics_http(&srv->metrics, 200);
            co_info("http request method=GET path=%s status=200 duration_ms=%" PRId64 ".%03" PRId64,
                    pss->static_path, us / 1000, us % 1000);
            pss->static_t0_ns = 0;
        }
        if (lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss && pss->req) {
            struct http_req *q = pss->req;
            pss->req = NULL;
            if (q->inflight) {
                q->orphaned = true;
                q->wsi = NULL;
            } else {
                req_free(q);
            }
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * Every HTTP callback is timed: the longest one is the worst stall of the service loop caused
 * by this code (database work never runs here; the figure is logged at shutdown and exported).
 */
static int
http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    int64_t t0 = co_mono_ns();
    int rc = http_callback_inner(wsi, reason, user, in, len);
    int64_t us = (co_mono_ns() - t0) / 1000;
    struct lws_context *cx = lws_get_context(wsi);
    struct coord_server *srv = cx ? lws_context_user(cx) : NULL;
    if (srv && us > srv->node.max_loop_callback_us) {
        srv->node.max_loop_callback_us = us;
        srv->max_loop_callback_reason = (int)reason;
    }
    return rc;
}

/* ------------------------------------------------------------------ context */

/*
 * Any committed change (from this API or from the agent sessions) ages the health snapshot:
 * it is refreshed at most HEALTH_DIRTY_TTL_MS later, so a stream of events cannot turn every
 * health check into a database query.
 */
static void
server_on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq)
{
    struct coord_server *srv = ud;
    (void)seq;
    /* A revoked key or a changed user: no cached lookup may outlive the change's answer. */
    if (kind == COORD_EVENT_KEY) {
        coord_auth_cache_invalidate(srv->auth_cache, id, NULL);
        return;
    }
    if (kind == COORD_EVENT_USER) {
        coord_auth_cache_invalidate(srv->auth_cache, NULL, id);
        return;
    }
    srv->health_dirty = true;
}

static struct lws_protocols protocols[4];

static void
server_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        n--;
    if (level & LLL_ERR)
        co_error("lws: %.*s", (int)n, line);
    else if (level & LLL_WARN)
        co_warn("lws: %.*s", (int)n, line);
    else
        co_debug("lws: %.*s", (int)n, line);
}

int
coord_server_run(const struct coord_config *cfg, struct coord_db *db, const char *backend,
                 volatile sig_atomic_t *stop_flag, co_err *err)
{
    struct coord_openapi_rec *rec = NULL;
    if (cfg->record_answers) {
        rec = coord_openapi_rec_open(cfg->record_answers, err);
        if (!rec)
            return -1;
        co_warn("RECORD_ANSWERS is set: every REST answer is appended to '%s' (debugging only)",
                cfg->record_answers);
    }
    struct coord_server *srv = co_xcalloc(1, sizeof(*srv));
    srv->cfg = cfg;
    srv->db = db;
    srv->node.backend = backend;
    srv->node.metrics = &srv->metrics;
    srv->node.db = db;
    srv->events = coord_events_new();
    srv->auth_cache = coord_auth_cache_new();
    srv->limits = coord_limits_new(cfg->auth_failures_per_minute);
    srv->rec = rec;
    srv->stop_flag = stop_flag;
    srv->node.started_mono_ms = co_mono_ms();
    coord_metrics_init(&srv->metrics);
    /* What the dashboards use of the server (coord_dash_ws reads it from its protocol entry). */
    srv->dash_env = co_xcalloc(1, sizeof(*srv->dash_env));
    *srv->dash_env = (struct coord_dash_env){
        .cfg = cfg,
        .db = db,
        .events = srv->events,
        .limits = srv->limits,
        .metrics = &srv->metrics,
        .node = &srv->node,
    };
    /* What the agent protocol uses of the server (coord_agent reads it from its protocol entry). */
    srv->agent_env = co_xcalloc(1, sizeof(*srv->agent_env));
    *srv->agent_env = (struct coord_agent_env){
        .cfg = cfg,
        .db = db,
        .events = srv->events,
        .metrics = &srv->metrics,
        .limits = srv->limits,
    };
    coord_events_subscribe(srv->events, server_on_event, srv);
    int rc = -1;
    struct coord_dash_evloop *evl = NULL;
    struct coord_retention *retention = NULL;
    struct coord_webhook *webhook = NULL;

    lws_set_log_level(LLL_ERR | LLL_WARN | (cfg->debug ? LLL_NOTICE : 0), server_log_emit);

    protocols[0] = (struct lws_protocols){
        .name = "http",
        .callback = http_callback,
        .per_session_data_size = sizeof(struct http_pss),
    };
    protocols[1] = coord_agent_ws_protocol(srv->agent_env);
    protocols[2] = coord_dash_ws_protocol(srv->dash_env);
    memset(&protocols[3], 0, sizeof(protocols[3]));

    static struct lws_http_mount mount_static, mount_api, mount_metrics;
    mount_metrics = (struct lws_http_mount){
        .mountpoint = "/metrics",
        .mountpoint_len = 8,
        .origin = "http",
        .origin_protocol = LWSMPRO_CALLBACK,
        .protocol = "http",
    };
    mount_api = (struct lws_http_mount){
        .mount_next = &mount_metrics,
        .mountpoint = "/api/v1",
        .mountpoint_len = 7,
        .origin = "http",
        .origin_protocol = LWSMPRO_CALLBACK,
        .protocol = "http",
    };
    mount_static = (struct lws_http_mount){
        .mount_next = &mount_api,
        .mountpoint = "/",
        .mountpoint_len = 1,
        .origin = cfg->frontend_dir,
        .def = "index.html",
        .origin_protocol = LWSMPRO_FILE,
        .extra_mimetypes = mimes,
        .cache_max_age = 0,
    };

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = cfg->port;
    info.iface =
        (strcmp(cfg->host, "0.0.0.0") == 0 || strcmp(cfg->host, "::") == 0) ? NULL : cfg->host;
    info.protocols = protocols;
    info.mounts = &mount_static;
    info.headers = sec_headers;
    info.user = srv;
    info.vhost_name = "cacheout";
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.keepalive_timeout = 30;
    info.timeout_secs = 30;
    /*
     * No lws validity timers (its idle PING/hangup, by default after 300 s): agents are judged
     * by the lease and dashboards pinged by coord_dash, and lws re-armed the timer on every
     * message received, an insertion into one sorted list of every connection's timer, O(agents)
     * per heartbeat.
     */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity;
    info.max_http_header_data = 8192;
    info.pt_serv_buf_size = 32768;
    info.pvo = NULL;
    /*
     * TLS is configuration of this one vhost and nothing else knows about it: with a certificate
     * the same port serves HTTPS and WSS (and, with TLS_REDIRECT_HTTP, answers plain HTTP with a
     * redirect to https instead of a failed handshake).
     */
    if (cfg->tls_cert_file) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert_file;
        info.ssl_private_key_filepath = cfg->tls_key_file;
        /*
         * HTTP/1.1 only: lws would offer h2 through ALPN, and custom request headers
         * (X-Admin-Token, X-Agent-Token) are not readable with lws_hdr_custom_copy on h2
         * streams, so curl's requests over https lost their tokens.
         */
        info.alpn = "http/1.1";
        if (cfg->tls_redirect_http)
            info.options |= LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT |
                            LWS_SERVER_OPTION_REDIRECT_HTTP_TO_HTTPS;
    }

    /* An epoll loop when libev is there (see coord_dash_evloop.h), else lws's poll loop. */
    evl = coord_dash_evloop_new();
    if (evl) {
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = coord_dash_evloop_foreign(evl);
    }
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx && evl) {
        co_warn("event loop: lws cannot use libev (plugin missing?), using its poll loop");
        coord_dash_evloop_free(evl);
        evl = NULL;
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = NULL;
        srv->ctx = lws_create_context(&info);
    }
    if (!srv->ctx) {
        co_err_set(err, CO_E_SYS, "cannot listen on '%s:%d' (address in use or not permitted%s)",
                   cfg->host, cfg->port,
                   cfg->tls_cert_file ? ", or TLS_CERT_FILE/TLS_KEY_FILE not a matching PEM "
                                        "certificate and key"
                                      : "");
        goto out;
    }
    coord_db_set_context(db, srv->ctx);
    /* Work queued during PROTOCOL_INIT finished without a wake-up: look at it now. */
    lws_cancel_service(srv->ctx);
    retention = coord_retention_start(srv->ctx, db, cfg->retention_days * 86400 * INT64_C(1000),
                                      cfg->retention_interval_seconds * 1000, cfg->retention_batch);
    if (coord_webhook_start(cfg, db, &webhook, err) < 0)
        goto out;
    if (coord_feed_start(cfg->database_url, srv->ctx, srv->events, &srv->feed, err) < 0)
        goto out;
    co_info("listening host=%s port=%d tls=%s store=%s frontend=%s", cfg->host, cfg->port,
            cfg->tls_cert_file ? (cfg->tls_redirect_http ? "yes+redirect" : "yes") : "no", backend,
            cfg->frontend_dir);

    int64_t stop_deadline = 0;
    while (1) {
        if (*stop_flag && !srv->stopping) {
            srv->stopping = true;
            stop_deadline = co_mono_ms() + SHUTDOWN_GRACE_MS;
            co_info("shutting down inflight=%" PRId64, srv->inflight);
        }
        if (srv->stopping && (srv->inflight == 0 || co_mono_ms() > stop_deadline))
            break;
        if (srv->stopping) {
            /* Poll again soon to re-check the in-flight count. */
            usleep(1000);
            lws_cancel_service(srv->ctx);
        }
        if (evl)
            coord_dash_evloop_run(evl, false);
        else if (lws_service(srv->ctx, 0) < 0)
            break;
    }
    /*
     * Let the last answers go out.  lws_service() sleeps until lws's own next timer whatever
     * the timeout says, so wake it first each time.
     */
    for (int i = 0; i < 5; i++) {
        lws_cancel_service(srv->ctx);
        if (evl)
            coord_dash_evloop_run(evl, true);
        else
            lws_service(srv->ctx, 0);
    }
    rc = 0;
out:
    coord_webhook_stop(webhook);
    coord_retention_stop(retention);
    coord_feed_stop(srv->feed);
    srv->feed = NULL;
    if (srv->ctx) {
        coord_db_set_context(db, NULL);
        lws_context_destroy(srv->ctx);
    }
    coord_dash_evloop_free(evl);
    /*
     * Requests still in the executor belong to connections that are gone; their completions
     * touch srv, so wait for them (bounded) before freeing it.
     */
    {
        int64_t deadline = co_mono_ms() + SHUTDOWN_GRACE_MS;
        while (srv->inflight > 0 && co_mono_ms() < deadline) {
            if (coord_db_drain_completions(db) == 0)
                usleep(1000);
        }
        if (srv->inflight > 0) {
            co_error("shutdown: %" PRId64 " database requests did not finish", srv->inflight);
            return rc; /* leak srv: a late completion may still reach it */
        }
    }
    co_info("http server stopped max_db_work_us=%" PRId64 " max_loop_callback_us=%" PRId64
            " max_loop_callback_reason=%d db_calls_on_loop=0",
            coord_db_max_work_us(db), srv->node.max_loop_callback_us,
            srv->max_loop_callback_reason);
    coord_events_free(srv->events);
    coord_auth_cache_free(srv->auth_cache);
    coord_limits_free(srv->limits);
    coord_openapi_rec_free(srv->rec);
    free(srv->dash_env);
    free(srv->agent_env);
    free(srv);
    return rc;
}
