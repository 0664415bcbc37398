/*
 * agent_load: holds N fake agents against a coordinator, each on its own "cacheout.agent.v1"
 * WebSocket, all in one process and one libwebsockets client context (one thread).  Each agent
 * speaks the real protocol (proto_agent.h): hello (AGENT_TOKEN from the environment, or none for
 * a coordinator with OPEN_REGISTRATION), heartbeats at the interval the welcome gives (the first
 * one at a random point of the interval, as agents that started at different times), and every
 * job.assign is answered at once with job.accepted, job.started and job.finished (ok, exit 0);
 * job.ack is counted.
 *
 *   agent_load PORT COUNT [PREFIX]
 *
 * Agents are "<PREFIX>-<i>" (default "al"), 1 core, 1024 MiB, image "default".  Connections
 * open in batches (at most 256 handshakes in flight).  The process raises RLIMIT_NOFILE to its
 * hard limit.  Output, on stdout, line by line:
 *   ready <welcomed> <seconds>          once every agent has its welcome (or after 120 s)
 *   assign <job_id> <wall clock us>     for every job.assign
 *   stats <welcomed> <heartbeats> <assigns> <finished> <acks> <closed> <errors>  every second
 * and exits on SIGINT/SIGTERM after a last stats line.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libwebsockets.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "proto_agent.h"

#define IN_FLIGHT_MAX 256
#define CONNECT_EVERY_MS 10

struct frame {
    struct frame *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE, then len bytes */
};

struct fake {
    int idx;
    struct lws *wsi;
    bool connecting, welcomed, closed;
    char worker_id[CO_ID_MAX + 1];
    struct frame *head, *tail;
    struct co_buf rx;
    int64_t hb_seq;
    int64_t hb_ms;
    int64_t running;
    lws_sorted_usec_list_t sul_hb;
};

static struct {
    struct lws_context *ctx;
    struct fake *fakes;
    int count, port, next, in_flight;
    const char *token, *prefix;
    uint64_t welcomed, heartbeats, assigns, finished, acks, closed, errors;
    lws_sorted_usec_list_t sul_connect, sul_stats;
    double t0;
    bool ready_said;
} g;

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t
wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
push(struct fake *f, const struct proto_msg *m)
{
    size_t len = 0;
    char *json = proto_msg_encode(m, &len);
    if (!json) {
        g.errors++;
        return;
    }
    struct frame *fr = co_xmalloc(sizeof(*fr) + LWS_PRE + len);
    fr->next = NULL;
    fr->len = len;
    memcpy(fr->buf + LWS_PRE, json, len);
    free(json);
    if (f->tail)
        f->tail->next = fr;
    else
        f->head = fr;
    f->tail = fr;
    if (f->wsi)
        lws_callback_on_writable(f->wsi);
}

static void
drop_frames(struct fake *f)
{
    while (f->head) {
        struct frame *n = f->head->next;
        free(f->head);
        f->head = n;
    }
    f->tail = NULL;
}

static void
heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    struct fake *f = lws_container_of(sul, struct fake, sul_hb);
    if (!f->welcomed || f->closed)
        return;
    struct proto_msg m = {.type = PROTO_MSG_HEARTBEAT};
    m.u.heartbeat.seq = f->hb_seq++;
    m.u.heartbeat.running = f->running;
    m.u.heartbeat.free_cores = 1 - f->running;
    m.u.heartbeat.free_ram_mb = f->running ? 0 : 1024;
    push(f, &m);
    g.heartbeats++;
    lws_sul_schedule(g.ctx, 0, &f->sul_hb, heartbeat_cb, f->hb_ms * LWS_US_PER_MS);
}

static void
on_message(struct fake *f, const char *buf, size_t len)
{
    struct proto_msg m;
    co_err err = CO_ERR_INIT;
    if (proto_msg_decode(buf, len, &m, &err) != 0) {
        g.errors++;
        return;
    }
    switch (m.type) {
    case PROTO_MSG_WELCOME:
        if (!f->welcomed) {
            f->welcomed = true;
            g.welcomed++;
            f->hb_ms =
                m.u.welcome.heartbeat_interval_ms > 100 ? m.u.welcome.heartbeat_interval_ms : 100;
            lws_sul_schedule(g.ctx, 0, &f->sul_hb, heartbeat_cb,
                             (lws_usec_t)(rand() % f->hb_ms + 1) * LWS_US_PER_MS);
        }
        break;
    case PROTO_MSG_JOB_ASSIGN: {
        g.assigns++;
        printf("assign %s %" PRId64 "\n", m.u.assign.job.job_id, wall_us());
        struct proto_msg r = {.type = PROTO_MSG_JOB_ACCEPTED};
        r.u.ack.job = m.u.assign.job;
        push(f, &r);
        char at[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        struct proto_msg s = {.type = PROTO_MSG_JOB_STARTED};
        s.u.started.job = m.u.assign.job;
        s.u.started.started_at = at;
        push(f, &s);
        struct proto_msg fin = {.type = PROTO_MSG_JOB_FINISHED};
        fin.u.finished.job = m.u.assign.job;
        fin.u.finished.status = PROTO_RUN_OK;
        fin.u.finished.has_exit_code = true;
        push(f, &fin);
        g.finished++;
        break;
    }
    case PROTO_MSG_JOB_ACK:
        g.acks++;
        break;
    case PROTO_MSG_ERROR:
        g.errors++;
        break;
    default:
        break;
    }
    proto_msg_release(&m);
}

static void
send_hello(struct fake *f)
{
    struct proto_msg m = {.type = PROTO_MSG_HELLO};
    static char image[] = "default";
    char *images[] = {image};
    static char version[] = "agent_load";
    m.u.hello.token = (char *)g.token;
    co_strlcpy(m.u.hello.worker_id, f->worker_id, sizeof(m.u.hello.worker_id));
    co_strlcpy(m.u.hello.owner_id, f->worker_id, sizeof(m.u.hello.owner_id));
    m.u.hello.cores = 1;
    m.u.hello.ram_mb = 1024;
    m.u.hello.images = images;
    m.u.hello.n_images = 1;
    m.u.hello.agent_version = version;
    push(f, &m);
}

static void
fake_down(struct fake *f)
{
    if (f->connecting)
        g.in_flight--;
    f->connecting = false;
    if (!f->closed) {
        f->closed = true;
        g.closed++;
    }
    f->wsi = NULL;
    lws_sul_cancel(&f->sul_hb);
    drop_frames(f);
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct fake *f = lws_get_opaque_user_data(wsi);
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        f->connecting = false;
        g.in_flight--;
        f->wsi = wsi;
        send_hello(f);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (f) {
            g.errors++;
            fake_down(f);
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (f)
            fake_down(f);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        co_buf_append(&f->rx, in, len);
        if (lws_is_final_fragment(wsi)) {
            on_message(f, f->rx.data, f->rx.len);
            f->rx.len = 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        struct frame *fr = f->head;
        if (!fr)
            break;
        if (lws_write(wsi, fr->buf + LWS_PRE, fr->len, LWS_WRITE_TEXT) < (int)fr->len)
            return -1;
        f->head = fr->next;
        if (!f->head)
            f->tail = NULL;
        free(fr);
        if (f->head)
            lws_callback_on_writable(wsi);
        break;
    }
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {PROTO_AGENT_SUBPROTOCOL, callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void
connect_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    while (g.next < g.count && g.in_flight < IN_FLIGHT_MAX) {
        struct fake *f = &g.fakes[g.next++];
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.context = g.ctx;
        ci.address = "127.0.0.1";
        ci.port = g.port;
        ci.path = "/ws/agent";
        ci.host = "127.0.0.1";
        ci.origin = "127.0.0.1";
        ci.protocol = PROTO_AGENT_SUBPROTOCOL;
        ci.local_protocol_name = PROTO_AGENT_SUBPROTOCOL;
        ci.opaque_user_data = f;
        f->connecting = true;
        g.in_flight++;
        if (!lws_client_connect_via_info(&ci) && f->connecting) {
            g.errors++;
            fake_down(f);
        }
    }
    if (g.next < g.count)
        lws_sul_schedule(g.ctx, 0, &g.sul_connect, connect_cb, CONNECT_EVERY_MS * LWS_US_PER_MS);
}

static void
stats_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    if (!g.ready_said && ((int)g.welcomed == g.count || now_s() - g.t0 > 120)) {
        printf("ready %" PRIu64 " %.2f\n", g.welcomed, now_s() - g.t0);
        g.ready_said = true;
    }
    printf("stats %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
           "\n",
           g.welcomed, g.heartbeats, g.assigns, g.finished, g.acks, g.closed, g.errors);
    fflush(stdout);
    lws_sul_schedule(g.ctx, 0, &g.sul_stats, stats_cb, LWS_US_PER_SEC);
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: agent_load PORT COUNT [PREFIX]\n");
        return 2;
    }
    g.port = atoi(argv[1]);
    g.count = atoi(argv[2]);
    g.prefix = argc > 3 ? argv[3] : "al";
    g.token = getenv("AGENT_TOKEN") ? getenv("AGENT_TOKEN") : "";
    if (g.port <= 0 || g.count <= 0) {
        fprintf(stderr, "agent_load: bad PORT or COUNT\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("agent_load: setrlimit");
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)g.count + 64)
        fprintf(stderr, "agent_load: RLIMIT_NOFILE %llu is below %d agents\n",
                (unsigned long long)rl.rlim_cur, g.count);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL));
    g.fakes = co_xcalloc((size_t)g.count, sizeof(*g.fakes));
    for (int i = 0; i < g.count; i++) {
        g.fakes[i].idx = i;
        snprintf(g.fakes[i].worker_id, sizeof(g.fakes[i].worker_id), "%s-%d", g.prefix, i);
        co_buf_init(&g.fakes[i].rx);
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.fd_limit_per_thread = (unsigned int)g.count + 64;
    g.ctx = lws_create_context(&info);
    if (!g.ctx) {
        fprintf(stderr, "agent_load: cannot create the lws context\n");
        return 1;
    }
    g.t0 = now_s();
    lws_sul_schedule(g.ctx, 0, &g.sul_connect, connect_cb, 1);
    lws_sul_schedule(g.ctx, 0, &g.sul_stats, stats_cb, LWS_US_PER_SEC);
    while (!stop) {
        if (lws_service(g.ctx, 0) < 0)
            break;
    }
    stats_cb(NULL);
    lws_context_destroy(g.ctx);
    for (int i = 0; i < g.count; i++) {
        drop_frames(&g.fakes[i]);
        co_buf_release(&g.fakes[i].rx);
    }
    free(g.fakes);
    return 0;
}
