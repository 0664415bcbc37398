/* coord_ws_common: WebSocket session helpers (see coord_ws_common.h). */
#include "coord_ws_common.h"

#include <string.h>
#include <strings.h>

#include "co_alloc.h"
#include "coord_auth.h"

static bool
ws_token_matches(const char *got, size_t len, const char *want)
{
    return want && co_consttime_eq(got, len, want, strlen(want)) == 1;
}

int
coord_ws_filter(struct lws *wsi, const char *path, const char *header, const char *token,
                const char *admin_token, bool *matched_admin)
{
    char uri[256];
    if (matched_admin)
        *matched_admin = false;
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (n <= 0)
        goto notfound;
    uri[strcspn(uri, "?")] = '\0';
    if (strcmp(uri, path) != 0)
        goto notfound;

    char got[512];
    size_t got_len = 0;
    bool have = false;
    int hl = lws_hdr_custom_length(wsi, header, (int)strlen(header));
    if (hl > 0 && hl < (int)sizeof(got) &&
        lws_hdr_custom_copy(wsi, got, sizeof(got), header, (int)strlen(header)) >= 0) {
        have = true;
        got_len = strlen(got);
    } else {
        char buf[600];
        const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, (int)sizeof(buf));
        if (v) {
            have = co_strlcpy(got, v, sizeof(got)) < sizeof(got);
            got_len = strlen(got);
        }
    }
    if (have && matched_admin)
        *matched_admin = ws_token_matches(got, got_len, admin_token);
    if (!token)
        return 0;
    if (have && ws_token_matches(got, got_len, token))
        return 0;
    lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
    return 1;
notfound:
    lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
    return 1;
}

int
coord_ws_send(struct lws *wsi, struct coord_ws_session *s, const char *text, size_t len)
{
    if (s->queued >= COORD_WS_MAX_QUEUE)
        return -1;
    struct coord_ws_msg *m = co_xmalloc(sizeof(*m) + LWS_PRE + len);
    m->next = NULL;
    m->len = len;
    memcpy(m->data + LWS_PRE, text, len);
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    s->queued++;
    lws_callback_on_writable(wsi);
    return 0;
}

int
coord_ws_write_one(struct lws *wsi, struct coord_ws_session *s)
{
    struct coord_ws_msg *m = s->head;
    if (!m)
        return 0;
    s->head = m->next;
    if (!s->head)
        s->tail = NULL;
    s->queued--;
    int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
    bool short_write = n < (int)m->len;
    free(m);
    if (short_write)
        return -1;
    if (s->head)
        lws_callback_on_writable(wsi);
    return 0;
}

int
coord_ws_receive(struct lws *wsi, struct coord_ws_session *s, const void *in, size_t len)
{
    if (s->rx_len + len > COORD_WS_MAX_MESSAGE) {
        static const char reason[] = "message too big";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)reason,
                         sizeof(reason) - 1);
        coord_ws_rx_reset(s);
        return -1;
    }
    s->rx = co_xrealloc(s->rx, s->rx_len + len + 1);
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
    s->rx[s->rx_len] = '\0';
    return lws_is_final_fragment(wsi) ? 1 : 0;
}

void
coord_ws_rx_reset(struct coord_ws_session *s)
{
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
}

void
coord_ws_session_release(struct coord_ws_session *s)
{
    while (s->head) {
        struct coord_ws_msg *m = s->head;
        s->head = m->next;
        free(m);
    }
    s->tail = NULL;
    s->queued = 0;
    coord_ws_rx_reset(s);
}

int
coord_ws_bearer_hash(struct lws *wsi, char hash[COORD_KEY_HASH_LEN + 1])
{
    char v[COORD_WS_BEARER_MAX + 16];
    hash[0] = '\0';
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0)
        return 0;
    int rc = -1;
    if (n < (int)sizeof(v) && lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_AUTHORIZATION) >= 0 &&
        strncasecmp(v, "Bearer ", 7) == 0 && v[7]) {
        coord_auth_hash(v + 7, strlen(v + 7), hash);
        rc = 0;
    }
    explicit_bzero(v, sizeof(v));
    return rc;
}
