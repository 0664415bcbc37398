/* Network probes: connecting out, raw and exotic socket families, the loopback option. */
#include "attack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* TCP connect to HOST:PORT with a 2 s timeout. */
static int
cmd_connect(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct timeval tv = {2, 0};
    int fd;

    if (argc < 2)
        return 64;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)attack_num(argv[1]));
    if (inet_pton(AF_INET, argv[0], &sa.sin_addr) != 1)
        return 64;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    attack_verdict("socket_inet", fd);
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    attack_verdict("connect", connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
    close(fd);
    return 0;
}

static void
try_socket(const char *name, int domain, int type, int proto)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, proto);

    attack_verdict(name, fd);
    if (fd >= 0)
        close(fd);
}

static int
cmd_sockets(int argc, char **argv)
{
    const char *which = argc > 0 ? argv[0] : "all";
    int all = strcmp(which, "all") == 0;

    if (all || strcmp(which, "netlink") == 0) {
        try_socket("netlink_route", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
        try_socket("netlink_audit", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
        try_socket("netlink_dgram", AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE);
    }
    if (all || strcmp(which, "packet") == 0) {
        try_socket("packet_raw", AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
        try_socket("packet_dgram", AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
    }
    if (all || strcmp(which, "vsock") == 0) {
        try_socket("vsock_stream", AF_VSOCK, SOCK_STREAM, 0);
        try_socket("vsock_dgram", AF_VSOCK, SOCK_DGRAM, 0);
    }
    if (all || strcmp(which, "modules") == 0) {
        /* F3: families and protocols whose first use loads a kernel module. */
        try_socket("tipc", 30, SOCK_SEQPACKET, 0);
        try_socket("rds", 21, SOCK_SEQPACKET, 0);
        try_socket("can", 29, SOCK_RAW, 1);
        try_socket("atmpvc", 8, SOCK_DGRAM, 0);
        try_socket("sctp", AF_INET, SOCK_STREAM, 132);
        try_socket("sctp6", AF_INET6, SOCK_SEQPACKET, 132);
        try_socket("dccp", AF_INET, SOCK_DCCP, 33);
        try_socket("l2tp", AF_INET, SOCK_DGRAM, 115);
        try_socket("mptcp", AF_INET, SOCK_STREAM, 262);
        int sv[2];
        attack_verdict("socketpair_tipc", socketpair(30, SOCK_SEQPACKET, 0, sv));
        attack_verdict("tipc_high", syscall(SYS_socket, (1UL << 32) | 30, SOCK_SEQPACKET, 0));
        /* What jobs use keeps working. */
        try_socket("inet_tcp", AF_INET, SOCK_STREAM, 0);
        try_socket("inet_udp", AF_INET, SOCK_DGRAM, IPPROTO_UDP);
        try_socket("inet6_tcp", AF_INET6, SOCK_STREAM, IPPROTO_TCP);
        try_socket("unix_stream", AF_UNIX, SOCK_STREAM, 0);
        attack_verdict("socketpair_unix", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    }
    if (all || strcmp(which, "raw") == 0)
        try_socket("inet_raw", AF_INET, SOCK_RAW, IPPROTO_ICMP);
    return 0;
}

/*
 * F1: queue data on loopback TCP connections that nobody reads, PAIRS of them, until the kernel
 * refuses more; prints the bytes queued ("queued VALUE <bytes>").  Under a memory limit the
 * socket buffers must be charged to (or capped by) the job's cgroup.
 */
static int
cmd_tcpqueue(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    static char chunk[65536];
    long long queued = 0;
    int pairs = argc > 0 ? (int)attack_num(argv[0]) : 16;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 512) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
        attack_verdict("listen", -1);
        return 0;
    }
    memset(chunk, 'q', sizeof(chunk));
    for (int i = 0; i < pairs; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            break;
        int a = accept(lfd, NULL, NULL); /* kept open, never read */
        if (a < 0)
            break;
        fcntl(c, F_SETFL, O_NONBLOCK);
        /* Fill until the kernel refuses (buffers full or memory pressure), for a bounded time. */
        double until = attack_now() + 2.0;
        while (attack_now() < until) {
            ssize_t n = send(c, chunk, sizeof(chunk), MSG_NOSIGNAL);
            if (n > 0) {
                queued += n;
                continue;
            }
            if (n < 0 && errno == EAGAIN) {
                struct pollfd p = {c, POLLOUT, 0};
                if (poll(&p, 1, 50) > 0)
                    continue;
            }
            break;
        }
    }
    attack_value("queued", "%lld", queued);
    printf("SURVIVED\n");
    return 0;
}

/* With --network loopback: a listener on 127.0.0.1 inside accepts a connection from inside. */
static int
cmd_loopback(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int lfd, cfd, afd;

    (void)argc;
    (void)argv;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
        attack_verdict("listen", -1);
        return 0;
    }
    printf("listen OK\n");
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cr = cfd < 0 ? -1 : connect(cfd, (struct sockaddr *)&sa, sizeof(sa));
    attack_verdict("connect_self", cr);
    /* Accept only what is pending: a failed connect must not leave the job blocked here. */
    struct pollfd pfd = {lfd, POLLIN, 0};
    if (cr == 0 && poll(&pfd, 1, 2000) == 1) {
        afd = accept(lfd, NULL, NULL);
        attack_verdict("accept", afd);
    } else {
        afd = -1;
        printf("accept ERRNO ETIMEDOUT\n");
    }
    if (afd >= 0)
        close(afd);
    if (cfd >= 0)
        close(cfd);
    close(lfd);
    return 0;
}

const struct attack_cmd attack_net_cmds[] = {
    {"connect", cmd_connect, "HOST PORT"},
    {"sockets", cmd_sockets, "[netlink|packet|vsock|raw|all]"},
    {"loopback", cmd_loopback, ""},
    {"tcpqueue", cmd_tcpqueue, "PAIRS"},
    {NULL, NULL, NULL},
};
