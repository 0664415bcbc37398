/*
 * dash_load: holds N dashboard WebSockets ("cacheout.dashboard.v1") open against a coordinator
 * and reads every one of them, like N browser tabs would: answers pings, checks that each
 * session's events follow its snapshot without gaps (DASHBOARD.md) and asks for a resync when one
 * is missing.  One thread, epoll, plain sockets (no TLS).
 *
 *   dash_load PORT COUNT [ADMIN_TOKEN]
 *
 * Prints "ready <connected>" once every session has its first snapshot (or after 60 s), then on
 * SIGINT/SIGTERM one line of JSON with the totals and exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    bool upgraded, closed, has_snapshot, resync_sent;
    unsigned char *buf;
    size_t len, cap;
    uint64_t seq;
    unsigned char *msg; /* a fragmented message being reassembled */
    size_t msg_len;
};

static volatile sig_atomic_t stop;
static uint64_t n_msgs, n_bytes, n_snapshots, n_gaps, n_resyncs, n_closed, n_pings;
static int close_codes[5000];

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

/* A masked client frame (the mask is fixed: it only has to be present). */
static void
send_frame(struct conn *c, int opcode, const void *data, size_t len)
{
    unsigned char f[256];
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (len > 125)
        return;
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    ssize_t n = send(c->fd, f, 6 + len, MSG_NOSIGNAL);
    (void)n; /* a failed control frame shows up as a closed connection later */
}

/* "seq": of a message (in its first bytes), or -1. */
static int64_t
seq_of(const unsigned char *p, size_t len)
{
    size_t lim = len < 96 ? len : 96;
    for (size_t i = 0; i + 6 < lim; i++) {
        if (memcmp(p + i, "\"seq\":", 6) == 0)
            return strtoll((const char *)p + i + 6, NULL, 10);
    }
    return -1;
}

static void
on_message(struct conn *c, const unsigned char *p, size_t len)
{
    n_msgs++;
    n_bytes += len;
    int64_t seq = seq_of(p, len);
    if (seq < 0)
        return; /* auth.result, error */
    if (len > 20 && memmem(p, len < 40 ? len : 40, "\"snapshot\"", 10)) {
        n_snapshots++;
        c->has_snapshot = true;
        c->resync_sent = false;
        c->seq = (uint64_t)seq;
        return;
    }
    if (!c->has_snapshot || c->resync_sent)
        return;
    if ((uint64_t)seq == c->seq + 1) {
        c->seq = (uint64_t)seq;
    } else if ((uint64_t)seq > c->seq + 1) {
        static const char rs[] = "{\"type\":\"resync\"}";
        n_gaps++;
        n_resyncs++;
        c->resync_sent = true;
        send_frame(c, 0x1, rs, sizeof(rs) - 1);
    }
}

static void
conn_close(struct conn *c, int code)
{
    if (c->closed)
        return;
    c->closed = true;
    n_closed++;
    if (code >= 0 && code < (int)(sizeof(close_codes) / sizeof(close_codes[0])))
        close_codes[code]++;
    close(c->fd);
}

/* Parse complete frames in c->buf. */
static void
conn_frames(struct conn *c)
{
    size_t off = 0;
    while (c->len - off >= 2) {
        unsigned char *p = c->buf + off;
        int fin = p[0] & 0x80, op = p[0] & 0x0f;
        uint64_t n = p[1] & 0x7f;
        size_t h = 2;
        if (n == 126) {
            if (c->len - off < 4)
                break;
            n = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (n == 127) {
            if (c->len - off < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = (n << 8) | p[2 + i];
            h = 10;
        }
        if (c->len - off < h + n)
            break;
        unsigned char *pl = p + h;
        if (op == 0x9) {
            n_pings++;
            send_frame(c, 0xA, pl, (size_t)n);
        } else if (op == 0x8) {
            conn_close(c, n >= 2 ? (pl[0] << 8) | pl[1] : 1005);
            return;
        } else if (op == 0x1 || op == 0x0) {
            if (fin && !c->msg_len) {
                on_message(c, pl, (size_t)n);
            } else {
                c->msg = realloc(c->msg, c->msg_len + n);
                if (!c->msg)
                    abort();
                memcpy(c->msg + c->msg_len, pl, (size_t)n);
                c->msg_len += (size_t)n;
                if (fin) {
                    on_message(c, c->msg, c->msg_len);
                    c->msg_len = 0;
                }
            }
        }
        off += h + (size_t)n;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void
conn_read(struct conn *c)
{
    while (!c->closed) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf)
                abort();
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n == 0) {
            conn_close(c, 1006);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_close(c, 1006);
            return;
        }
        c->len += (size_t)n;
        if (!c->upgraded) {
            unsigned char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (!e)
                continue;
            if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
                conn_close(c, 0);
                return;
            }
            size_t hl = (size_t)(e - c->buf) + 4;
            memmove(c->buf, c->buf + hl, c->len - hl);
            c->len -= hl;
            c->upgraded = true;
        }
        conn_frames(c);
    }
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dash_load PORT COUNT [ADMIN_TOKEN]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int count = atoi(argv[2]);
    const char *token = argc > 3 ? argv[3] : NULL;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct conn *cs = calloc((size_t)count, sizeof(*cs));
    int ep = epoll_create1(0);
    if (!cs || ep < 0)
        return 1;
    char req[512];
    int rl =
        snprintf(req, sizeof(req),
                 "GET /ws/dashboard HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                 "cacheout.dashboard.v1\r\n%s%s%s\r\n",
                 port, token ? "X-Admin-Token: " : "", token ? token : "", token ? "\r\n" : "");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int connected = 0;
    for (int i = 0; i < count; i++) {
        struct conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            send(c->fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
            fprintf(stderr, "dash_load: connection %d: %s\n", i, strerror(errno));
            if (c->fd >= 0)
                close(c->fd);
            c->closed = true;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        connected++;
    }
    struct epoll_event evs[256];
    double t0 = now_s();
    bool ready = false;
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++)
            conn_read(evs[i].data.ptr);
        if (!ready) {
            int have = 0;
            for (int i = 0; i < count; i++)
                have += cs[i].has_snapshot && !cs[i].closed;
            if (have == connected || now_s() - t0 > 60) {
                printf("ready %d\n", have);
                fflush(stdout);
                ready = true;
            }
        }
    }
    int open_now = 0;
    for (int i = 0; i < count; i++)
        open_now += !cs[i].closed;
    printf("{\"sessions\": %d, \"open\": %d, \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
           ", \"snapshots\": %" PRIu64 ", \"gaps\": %" PRIu64 ", \"resyncs\": %" PRIu64
           ", \"pings\": %" PRIu64 ", \"closed\": %" PRIu64 ", \"closed_4000\": %d}\n",
           connected, open_now, n_msgs, n_bytes, n_snapshots, n_gaps, n_resyncs, n_pings, n_closed,
           close_codes[4000]);
    return 0;
}
