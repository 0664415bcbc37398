/*
 * coord_ws_common: helpers shared by the WebSocket protocol modules (lws thread only): the
 * handshake checks and a small per-session outgoing queue written in WRITEABLE with LWS_PRE
 * headroom, one lws_write per callback.  No state of its own: a session's queue lives in the
 * session that owns it (coord_ws_session_release frees it).
 */
#ifndef COORD_WS_COMMON_H
#define COORD_WS_COMMON_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

#define COORD_WS_MAX_QUEUE 256
#define COORD_WS_MAX_MESSAGE (1 << 20)

struct coord_ws_msg {
    struct coord_ws_msg *next;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
};

/** Outgoing messages and the partial incoming message of one session. */
struct coord_ws_session {
    struct coord_ws_msg *head, *tail;
    int queued;
    char *rx;
    size_t rx_len;
    bool admin;
};

/**
 * Handshake check for @path: the request path must match, and when @token is set the
 * @header (e.g. "x-agent-token:") or the `token` query argument must equal it (constant time).
 * On failure answers 404/401 and returns 1 (reject); 0 accepts.  *@matched_admin tells whether
 * the token matched @admin_token (may be NULL).
 */
int coord_ws_filter(struct lws *wsi, const char *path, const char *header, const char *token,
                    const char *admin_token, bool *matched_admin);

/** Queue a text message (copied) and ask for WRITEABLE.  Returns -1 if the queue is full. */
int coord_ws_send(struct lws *wsi, struct coord_ws_session *s, const char *text, size_t len);

/** WRITEABLE: write one queued message.  Returns -1 to close the connection. */
int coord_ws_write_one(struct lws *wsi, struct coord_ws_session *s);

/**
 * RECEIVE: append a fragment; returns 1 when a complete message is in s->rx (NUL-terminated,
 * s->rx_len bytes; the caller resets with coord_ws_rx_reset), 0 when more is coming, -1 when
 * the message is over COORD_WS_MAX_MESSAGE (the session was told to close with 1009).
 */
int coord_ws_receive(struct lws *wsi, struct coord_ws_session *s, const void *in, size_t len);

/** Forget the received message. */
void coord_ws_rx_reset(struct coord_ws_session *s);

/** Free everything the session holds. */
void coord_ws_session_release(struct coord_ws_session *s);

/* The longest bearer token read from an upgrade (longer ones are malformed). */
#define COORD_WS_BEARER_MAX 1024

/**
 * The upgrade's `Authorization: Bearer <key>`: 0 and the key's coord_auth_hash() in @hash (""
 * without the header), -1 when the header is there but is not a bearer token.  The key itself
 * is wiped from the stack.
 */
int coord_ws_bearer_hash(struct lws *wsi, char hash[65]);

#endif
