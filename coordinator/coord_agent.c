/*
 * coord_agent: the agent protocol on /ws/agent (see coord_agent.h): the connection life cycle and
 * the dispatch of messages.  The protocol's files, by subject:
 *   coord_agent.c         the lws callback: the protocol's start and stop (the hub, the
 *                         scheduler, the lease reaper, reconciliation and the hooks between them),
 *                         the upgrade's checks, connect, receive and decode, dispatch, the
 *                         outgoing queue and WRITEABLE, close, and the worker marked offline after
 *                         its last session closed
 *   coord_agent_hello.c   hello, welcome, and a new connection of a worker taking over its jobs
 *   coord_agent_job.c     job.assign and job.cancel out; job.accepted, rejected, started and
 *                         finished in; job.ack once a result is stored
 *   coord_agent_output.c  job.output (sequence check, the output listeners) and artifacts
 *   coord_agent_feed.c    the change feed: cancels, revoked keys, sessions moved to another node
 * They share coord_agent_int.h; the state under them is the hub (coord_hub.h).
 *
 * Thread: the lws service thread, for every callback and completion; database work runs on
 * coord_db's threads (the *_work functions, which see only their item).
 *
 * Life cycle: LWS_CALLBACK_PROTOCOL_INIT creates the protocol's state (struct agent_proto) and the
 * hub with its hooks, then the scheduler, the lease reaper and reconciliation on it;
 * LWS_CALLBACK_PROTOCOL_DESTROY stops them and the hub (after lws closed every session).  The
 * hub, and with it the protocol's state, is freed once the database items still in flight
 * completed.  A session (struct agent_sess, with its protocol part struct agent_conn) is created
 * at ESTABLISHED, leaves the hub at CLOSED, and is freed when the last database item about it
 * completed (the hub frees the protocol part through the conn_free hook).
 */
#include "coord_agent.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"
#include "coord_lease.h"
#include "coord_node.h"
#include "coord_reconcile.h"
#include "coord_sched.h"
#include "coord_ws_common.h"

#define AGENT_PATH "/ws/agent"
#define AGENT_TOKEN_HEADER "x-agent-token:"

/* ------------------------------------------------------------------------------------------ */
/* the protocol: its hub and the modules on it                                                */

static void
proto_kick(void *ud)
{
    struct agent_proto *p = ud;
    if (p->sched)
        coord_sched_kick(p->sched);
}

/* The quarantined hook: the scheduler asks reconciliation's table through the hub. */
static bool
proto_quarantined(const char *worker_id)
{
    return coord_quarantine_check(worker_id, NULL, 0);
}

static void
proto_release(void *ud)
{
    struct agent_proto *p = ud;
    free(p->out_subs);
    free(p);
}

static void coord_agent_close(struct agent_sess *s, int code, const char *reason);
static void conn_free(struct agent_conn *c);
static void coord_agent_moved(struct agent_sess *s, const co_err *err);

/* The hub, the modules on it and the hooks between them (PROTOCOL_INIT). */
static struct coord_agents *
proto_start(const struct coord_agent_env *env, struct lws_context *ctx)
{
    struct agent_proto *p = co_xcalloc(1, sizeof(*p));
    struct agent_hub_hooks hooks = {
        .ud = p,
        .kick = proto_kick,
        .send_assign = coord_agent_send_assign,
        .send_cancel = coord_agent_send_cancel,
        .close = coord_agent_close,
        .moved = coord_agent_moved,
        .quarantined = proto_quarantined,
        .conn_free = conn_free,
        .release = proto_release,
    };
    struct coord_agents *hub =
        agent_hub_new(env->cfg, env->db, env->events, env->metrics, ctx, &hooks);
    p->hub = hub;
    p->limits = env->limits;
    if (hub->events)
        p->ev_handle = coord_events_subscribe(hub->events, coord_agent_on_event, hub);
    p->sched = coord_sched_new(hub);
    p->lease = coord_lease_new(hub);
    p->reconcile = coord_reconcile_new(hub);
    co_info("agent sessions ready lease_ms=%lld heartbeat_ms=%lld", (long long)hub->lease_ms,
            (long long)hub->heartbeat_ms);
    return hub;
}

/*
 * The context is going away.  Sessions were closed by lws before this (CLOSED for each); the
 * database items still in flight keep the hub (and the protocol's state) alive until their
 * completions ran.
 */
static void
proto_stop(struct coord_agents *hub)
{
    struct agent_proto *p = agent_proto_of(hub);
    co_info("agent writes stored writes=%llu items=%llu transactions=%llu undone=%llu",
            (unsigned long long)hub->batched_ops, (unsigned long long)hub->batches,
            (unsigned long long)hub->batch_txs, (unsigned long long)hub->batch_undone);
    co_info("agent results output_duplicates=%llu output_gaps=%llu assigns_resent=%llu",
            (unsigned long long)hub->output_duplicates, (unsigned long long)hub->output_gaps,
            (unsigned long long)hub->assigns_resent);
    coord_sched_free(p->sched);
    p->sched = NULL;
    coord_lease_free(p->lease);
    p->lease = NULL;
    coord_reconcile_free(p->reconcile);
    p->reconcile = NULL;
    if (hub->events && p->ev_handle > 0)
        coord_events_unsubscribe(hub->events, p->ev_handle);
    hub->events = NULL;
    agent_hub_destroy(hub); /* may free the hub and p */
}

size_t
coord_agents_connected(const struct coord_agents *hub)
{
    size_t n = 0;
    for (size_t i = 0; i < hub->n_sess; i++)
        n += hub->sess[i]->state == AS_READY;
    return n;
}

struct coord_agents *
coord_agents_of_vhost(struct lws_vhost *vhost)
{
    const struct lws_protocols *p = lws_vhost_name_to_protocol(vhost, PROTO_AGENT_SUBPROTOCOL);
    if (!p)
        return NULL;
    struct coord_agents **slot = lws_protocol_vh_priv_get(vhost, p);
    return slot ? *slot : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* sending                                                                                    */

/* ------------------------------------------------------------------------------------------ */
/* the protocol's part of a session                                                           */

static struct agent_conn *
conn_new(const struct coord_agent_pss *pss)
{
    struct agent_conn *c = co_xcalloc(1, sizeof(*c));
    c->agent_peak_cores = c->agent_peak_ram_mb = -1;
    co_buf_init(&c->rx);
    c->upgrade_agent_token = pss->agent_token;
    co_strlcpy(c->peer, pss->peer, sizeof(c->peer));
    co_strlcpy(c->key_hash, pss->key_hash, sizeof(c->key_hash));
    return c;
}

static void
frames_free(struct agent_conn *c)
{
    struct agent_frame *f = c->out_head;
    while (f) {
        struct agent_frame *next = f->next;
        free(f);
        f = next;
    }
    c->out_head = c->out_tail = NULL;
    c->out_frames = c->out_bytes = 0;
}

void
coord_agent_free_frames(struct agent_sess *s)
{
    frames_free(s->conn);
}

/* The hub's conn_free hook: the session's last reference went. */
static void
conn_free(struct agent_conn *c)
{
    frames_free(c);
    for (size_t i = 0; i < c->n_parked; i++)
        proto_msg_release(&c->parked[i]);
    free(c->parked);
    co_buf_release(&c->rx);
    free(c);
}

/* Queue @len bytes of @text as one text message; closes the session when its queue is full. */
void
coord_agent_queue_text(struct agent_sess *s, const char *text, size_t len)
{
    if (!s->wsi || s->conn->close_code)
        return;
    if (s->conn->out_frames >= AGENT_OUT_MAX_FRAMES ||
        s->conn->out_bytes + len > AGENT_OUT_MAX_BYTES) {
        co_warn("agent send queue full, closing worker=%s frames=%zu bytes=%zu", s->worker_id,
                s->conn->out_frames, s->conn->out_bytes);
        coord_agent_free_frames(s);
        agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
        return;
    }
    struct agent_frame *f = co_xmalloc(sizeof(*f) + LWS_PRE + len);
    f->next = NULL;
    f->len = len;
    memcpy(f->buf + LWS_PRE, text, len);
    if (s->conn->out_tail)
        s->conn->out_tail->next = f;
    else
        s->conn->out_head = f;
    s->conn->out_tail = f;
    s->conn->out_frames++;
    s->conn->out_bytes += len;
    lws_callback_on_writable(s->wsi);
}

void
coord_agent_send(struct agent_sess *s, const struct proto_msg *m)
{
    size_t len = 0;
    co_autofree char *text = proto_msg_encode(m, &len);
    if (!text) {
        co_error("agent message cannot be encoded type=%s worker=%s", proto_msg_type_name(m->type),
                 s->worker_id);
        return;
    }
    coord_agent_queue_text(s, text, len);
}

void
coord_agent_send_error(struct agent_sess *s, const char *code, const struct proto_job_ref *job,
                       const char *fmt, ...)
{
    struct proto_msg m = {.type = PROTO_MSG_ERROR};
    co_strlcpy(m.u.error.code, code, sizeof(m.u.error.code));
    va_list ap;
    va_start(ap, fmt);
    co_autofree char *msg = co_xvasprintf(fmt, ap);
    va_end(ap);
    m.u.error.message = msg;
    if (job) {
        m.u.error.has_job = true;
        m.u.error.job = *job;
    }
    coord_agent_send(s, &m);
}

static void
coord_agent_close(struct agent_sess *s, int code, const char *reason)
{
    if (!s->wsi || s->conn->close_code)
        return;
    s->conn->close_code = code;
    co_strlcpy(s->conn->close_reason, reason, sizeof(s->conn->close_reason));
    s->state = AS_CLOSING;
    agent_hub_changed(s->hub, s);
    lws_callback_on_writable(s->wsi);
}

/* A write of @s was fenced off: its worker's session moved on (another node, or a newer hello). */
static void
coord_agent_moved(struct agent_sess *s, const co_err *err)
{
    if (!s->wsi || s->state == AS_CLOSING)
        return;
    co_warn("agent session moved on, closing worker=%s epoch=%lld: %s", s->worker_id,
            (long long)s->session_epoch, err->msg);
    agent_sess_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "session moved");
}

/* ------------------------------------------------------------------------------------------ */
/* receiving: decode and dispatch                                                             */

void
coord_agent_handle(struct agent_sess *s, struct proto_msg *m)
{
    switch (m->type) {
    case PROTO_MSG_HELLO:
        coord_agent_on_hello(s, m);
        return;
    case PROTO_MSG_HEARTBEAT: {
        const struct proto_heartbeat *hb = &m->u.heartbeat;
        if (s->state == AS_READY || s->state == AS_HELLO_DB)
            s->hb_dirty = true;
        /* The agent's own view of its use (absent fields are -1), for the logs and tests. */
        if (hb->free_cores >= 0 && s->cores - hb->free_cores > s->conn->agent_peak_cores)
            s->conn->agent_peak_cores = s->cores - hb->free_cores;
        if (hb->free_ram_mb >= 0 && s->ram_mb - hb->free_ram_mb > s->conn->agent_peak_ram_mb)
            s->conn->agent_peak_ram_mb = s->ram_mb - hb->free_ram_mb;
        return;
    }
    case PROTO_MSG_ERROR:
        co_warn("agent reported an error worker=%s code=%s message=\"%s\"", s->worker_id,
                m->u.error.code, m->u.error.message ? m->u.error.message : "");
        return;
    case PROTO_MSG_JOB_ACCEPTED:
    case PROTO_MSG_JOB_REJECTED:
    case PROTO_MSG_JOB_STARTED:
    case PROTO_MSG_JOB_OUTPUT:
    case PROTO_MSG_JOB_FINISHED:
    case PROTO_MSG_JOB_ARTIFACT:
    case PROTO_MSG_JOB_ARTIFACTS:
        if (s->state == AS_HELLO_DB) {
            /* Keep it until the worker's jobs are known (the welcome). */
            if (s->conn->n_parked >= AGENT_PARK_MAX) {
                agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many messages");
                return;
            }
            s->conn->parked =
                co_xreallocarray(s->conn->parked, s->conn->n_parked + 1, sizeof(*s->conn->parked));
            s->conn->parked[s->conn->n_parked++] = *m;
            memset(m, 0, sizeof(*m));
            return;
        }
        if (s->state != AS_READY) {
            if (s->state == AS_AWAIT_HELLO) {
                coord_agent_send_error(s, "bad_message", NULL, "expected hello first");
                agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "expected hello");
            }
            return;
        }
        coord_agent_on_job(s, m);
        return;
    default:
        coord_agent_send_error(s, "bad_message", NULL, "unexpected message type '%s'",
                               proto_msg_type_name(m->type));
        return;
    }
}

static void
sess_on_message(struct agent_sess *s, const char *buf, size_t len)
{
    struct proto_msg m;
    co_err err = CO_ERR_INIT;
    s->last_seen_ms = co_mono_ms();
    if (proto_msg_decode(buf, len, &m, &err) < 0) {
        co_debug("bad agent message worker=%s error=\"%s\"", s->worker_id, err.msg);
        coord_agent_send_error(s, "bad_message", NULL, "%s%s%s", err.field[0] ? err.field : "",
                               err.field[0] ? ": " : "", err.msg);
        if (s->state == AS_AWAIT_HELLO)
            agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad hello");
        return;
    }
    coord_agent_handle(s, &m);
    proto_msg_release(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* the worker offline when its last session closed                                            */

struct offline_item {
    struct coord_agents *hub;
    char worker_id[CO_ID_MAX + 1];
    int64_t epoch; /* its session's: a session that moved on leaves the worker alone */
    bool stamp;    /* renew the lease first: the agent was heard from until now */
    int rc;
};

static void
offline_work(struct coord_store *store, void *arg)
{
    struct offline_item *it = arg;
    co_err err = CO_ERR_INIT;
    if (coord_node_fence(store, it->worker_id, it->epoch, false, &err) < 0) {
        it->rc = -1;
        if (!coord_node_fenced(&err))
            co_warn("cannot check the session of worker=%s error=\"%s\"", it->worker_id, err.msg);
        return; /* a newer session (maybe on another node) holds the worker now */
    }
    /*
     * Heartbeats are stored once a second, so the stored one can be older than the agent's last
     * message; stamping it at the disconnect makes the lease run from the last contact.
     */
    if (it->stamp && coord_store_worker_heartbeat(store, it->worker_id, &err) < 0 &&
        err.code != CO_E_NOTFOUND)
        co_warn("cannot store last heartbeat worker=%s error=\"%s\"", it->worker_id, err.msg);
    it->rc = coord_store_worker_set_status(store, it->worker_id, COORD_WORKER_OFFLINE, &err);
    if (it->rc < 0 && err.code != CO_E_NOTFOUND)
        co_warn("cannot mark worker offline worker=%s error=\"%s\"", it->worker_id, err.msg);
}

static void
offline_undo(void *arg, const co_err *err)
{
    struct offline_item *it = arg;
    (void)err;
    it->rc = -1;
}

static void
offline_done(void *arg)
{
    struct offline_item *it = arg;
    if (agent_hub_complete(it->hub) && it->rc == 0)
        agent_hub_publish(it->hub, COORD_EVENT_WORKER, it->worker_id);
    free(it);
}

/* ------------------------------------------------------------------------------------------ */
/* lws callback                                                                               */

/*
 * Check the path, the X-Agent-Token header when the agent sends one, and keep the hash of an
 * Authorization: Bearer key in @pss (looked up with the hello, on a database thread).
 */
static int
filter_connection(struct coord_agents *hub, struct lws *wsi, struct coord_agent_pss *pss)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (n <= 0 || strncmp(uri, AGENT_PATH, strlen(AGENT_PATH)) != 0 ||
        (uri[strlen(AGENT_PATH)] != '\0' && uri[strlen(AGENT_PATH)] != '?')) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return 1;
    }
    /* An address with too many failed authentications (REST or agents) is refused for now. */
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    if (pss)
        co_strlcpy(pss->peer, peer, sizeof(pss->peer));
    struct coord_limits *limits = hub ? agent_proto_of(hub)->limits : NULL;
    if (limits && coord_limits_auth_blocked(limits, peer, co_mono_ms()) > 0) {
        co_warn("agent upgrade refused: too many failed authentications from %s", peer);
        lws_return_http_status(wsi, 429, NULL);
        return 1;
    }
    const char *want = hub ? hub->cfg->agent_token : NULL;
    char tok[PROTO_TOKEN_MAX + 1];
    int tl = lws_hdr_custom_length(wsi, AGENT_TOKEN_HEADER, (int)strlen(AGENT_TOKEN_HEADER));
    if (want && want[0] && tl > 0) {
        if (tl > PROTO_TOKEN_MAX ||
            lws_hdr_custom_copy(wsi, tok, sizeof(tok), AGENT_TOKEN_HEADER,
                                (int)strlen(AGENT_TOKEN_HEADER)) < 0 ||
            !co_consttime_eq(tok, strlen(tok), want, strlen(want))) {
            co_warn("agent upgrade refused: wrong X-Agent-Token");
            if (limits)
                coord_limits_auth_failed(limits, peer, co_mono_ms());
            lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
            return 1;
        }
        if (pss)
            pss->agent_token = true;
    }
    char hash[COORD_KEY_HASH_LEN + 1];
    if (coord_ws_bearer_hash(wsi, hash) < 0) {
        co_warn("agent upgrade refused: Authorization is not a bearer token");
        if (limits)
            coord_limits_auth_failed(limits, peer, co_mono_ms());
        lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
        return 1;
    }
    if (pss)
        co_strlcpy(pss->key_hash, hash, sizeof(pss->key_hash));
    return 0;
}

static int
sess_writeable(struct agent_sess *s, struct lws *wsi)
{
    struct agent_frame *f = s->conn->out_head;
    if (f) {
        s->conn->out_head = f->next;
        if (!s->conn->out_head)
            s->conn->out_tail = NULL;
        s->conn->out_frames--;
        s->conn->out_bytes -= f->len;
        int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
        size_t want = f->len;
        free(f);
        if (n < (int)want) {
            co_warn("agent write failed worker=%s", s->worker_id);
            return -1;
        }
        if (s->conn->out_head || s->conn->close_code)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->conn->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)s->conn->close_code,
                         (unsigned char *)s->conn->close_reason, strlen(s->conn->close_reason));
        return -1;
    }
    return 0;
}

static void
sess_closed(struct agent_sess *s)
{
    struct coord_agents *hub = s->hub;
    s->wsi = NULL;
    agent_hub_sess_remove(hub, s);
    agent_hub_changed(hub, s);
    size_t n_jobs = s->n_jobs;
    /*
     * Its jobs stay in the store: a reconnect keeps those the agent still runs and releases the
     * others (attempt + 1); the lease reaper releases them all if it does not come back.
     */
    while (s->n_jobs > 0)
        agent_sess_remove_job(s, s->jobs[s->n_jobs - 1].job_id);
    if (s->conn->counted && hub->metrics)
        atomic_fetch_sub(&hub->metrics->agents_connected, 1);
    s->conn->counted = false;
    co_info("agent disconnected worker=%s jobs=%zu peak_cores=%lld peak_ram_mb=%lld "
            "agent_peak_cores=%lld agent_peak_ram_mb=%lld",
            s->worker_id[0] ? s->worker_id : "-", n_jobs, (long long)s->peak_cores,
            (long long)s->peak_ram_mb, (long long)s->conn->agent_peak_cores,
            (long long)s->conn->agent_peak_ram_mb);
    bool welcomed = !s->conn->refused &&
                    (s->state == AS_READY || s->state == AS_CLOSING || s->state == AS_HELLO_DB);
    s->state = AS_CLOSING;
    if (welcomed && s->worker_id[0] && !agent_hub_find_worker(hub, s->worker_id, s) && !hub->dead) {
        struct offline_item *it = co_xcalloc(1, sizeof(*it));
        it->hub = hub;
        co_strlcpy(it->worker_id, s->worker_id, sizeof(it->worker_id));
        it->epoch = s->session_epoch;
        /* Not for a session closed for silence: its last contact is a lease ago. */
        it->stamp = co_mono_ms() - s->last_seen_ms < hub->lease_ms / 2;
        agent_hub_write(hub, it->worker_id, offline_work, offline_undo, offline_done, it);
    }
}

static int agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len);

/* Every agent callback is timed (the health's max_agent_loop_us): a stall of the service loop
 * caused by agent work shows there. */
int
coord_agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    int64_t t0 = co_mono_ns();
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    const struct coord_agent_env *env = proto ? proto->user : NULL;
    int rc = agent_callback(wsi, reason, user, in, len);
    coord_metrics_agent_loop(env ? env->metrics : NULL, t0);
    return rc;
}

static int
agent_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct coord_agent_pss *pss = user;
    struct lws_vhost *vh = lws_get_vhost(wsi);
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    struct coord_agents **slot = vh && proto ? lws_protocol_vh_priv_get(vh, proto) : NULL;
    struct coord_agents *hub = slot ? *slot : NULL;

    switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT: {
        struct lws_context *ctx = lws_get_context(wsi);
        const struct coord_agent_env *env = proto ? proto->user : NULL;
        if (!env || !env->cfg || !env->db) {
            co_error("agent protocol: no struct coord_agent_env as the protocol's user");
            return -1;
        }
        slot = lws_protocol_vh_priv_zalloc(vh, proto, sizeof(*slot));
        if (!slot)
            return -1;
        *slot = proto_start(env, ctx);
        return 0;
    }
    case LWS_CALLBACK_PROTOCOL_DESTROY:
        if (hub) {
            proto_stop(hub);
            *slot = NULL;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return filter_connection(hub, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED: {
        if (!hub || hub->dead)
            return -1;
        struct agent_sess *s = agent_hub_sess_new(hub, wsi);
        s->conn = conn_new(pss);
        pss->s = s;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        struct agent_sess *s = pss ? pss->s : NULL;
        if (!s || !s->wsi)
            return -1;
        if (s->conn->rx.len + len > PROTO_MSG_MAX) {
            co_warn("agent message too large worker=%s", s->worker_id);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                             (unsigned char *)"message too large", 17);
            return -1;
        }
        co_buf_append(&s->conn->rx, in, len);
        if (!lws_is_final_fragment(wsi))
            return 0;
        sess_on_message(s, s->conn->rx.data ? s->conn->rx.data : "", s->conn->rx.len);
        co_buf_reset(&s->conn->rx);
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        struct agent_sess *s = pss ? pss->s : NULL;
        if (!s)
            return -1;
        return sess_writeable(s, wsi);
    }
    case LWS_CALLBACK_CLOSED: {
        struct agent_sess *s = pss ? pss->s : NULL;
        if (!s)
            return 0;
        pss->s = NULL;
        sess_closed(s);
        agent_sess_unref(s);
        return 0;
    }
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
