/*
 * coord_webhook: completion callbacks -- URL and address checks, signing, the delivery thread
 * (coord_webhook.h).  Its REST routes are handlers of coord_api (coord_api_webhook.c); the
 * callback body is the job object of coord_render.
 */
#include "coord_webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "co_alloc.h"
#include "co_id.h"
#include "co_jsonw.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_config.h"
#include "coord_db.h"
#include "coord_render.h"

/* Longest resolution of a callback host before an attempt. */
#define COORD_WEBHOOK_RESOLVE_MS 5000

/* ------------------------------------------------------------------ address checks */

/* @a in host order: a reason when it is in a range a callback may not reach. */
static const char *
v4_refused(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
        const char *why;
    } ranges[] = {
        {0x00000000, 8, "\"this network\" (0.0.0.0/8)"},
        {0x0a000000, 8, "private (10.0.0.0/8)"},
        {0x64400000, 10, "shared/CGNAT (100.64.0.0/10)"},
        {0x7f000000, 8, "loopback (127.0.0.0/8)"},
        {0xa9fe0000, 16, "link-local/metadata (169.254.0.0/16)"},
        {0xac100000, 12, "private (172.16.0.0/12)"},
        {0xc0000000, 24, "IETF protocol assignments (192.0.0.0/24)"},
        {0xc0000200, 24, "documentation (192.0.2.0/24)"},
        {0xc0586300, 24, "6to4 relay (192.88.99.0/24)"},
        {0xc0a80000, 16, "private (192.168.0.0/16)"},
        {0xc6120000, 15, "benchmarking (198.18.0.0/15)"},
        {0xc6336400, 24, "documentation (198.51.100.0/24)"},
        {0xcb007100, 24, "documentation (203.0.113.0/24)"},
        {0xe0000000, 4, "multicast (224.0.0.0/4)"},
        {0xf0000000, 4, "reserved/broadcast (240.0.0.0/4)"},
    };
    for (size_t i = 0; i < CO_ARRAY_LEN(ranges); i++) {
        uint32_t mask = ranges[i].bits ? ~UINT32_C(0) << (32 - ranges[i].bits) : 0;
        if ((a & mask) == ranges[i].net)
            return ranges[i].why;
    }
    return NULL;
}

static uint32_t
v4_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Whether the first @bits bits of @a are those of @prefix. */
static bool
v6_in(const uint8_t *a, const uint8_t *prefix, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, prefix, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (prefix[whole] & mask);
}

static const char *
v6_refused(const uint8_t *a)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
    static const uint8_t sixto4[2] = {0x20, 0x02};
    static const uint8_t teredo[4] = {0x20, 0x01, 0, 0};
    static const uint8_t doc[4] = {0x20, 0x01, 0x0d, 0xb8};
    static const uint8_t discard[8] = {0x01, 0};
    static const uint8_t ula[1] = {0xfc};
    static const uint8_t linklocal[2] = {0xfe, 0x80};
    static const uint8_t sitelocal[2] = {0xfe, 0xc0};
    static const uint8_t mcast[1] = {0xff};
    const char *why;

    if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
        return a[15] ? "loopback (::1)" : "unspecified (::)";
    /* Forms that carry an IPv4 address: judged by it. */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, zero, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return (why = v4_refused(v4_at(a + 12))) ? why : NULL;
    if (v6_in(a, sixto4, 16))
        return (why = v4_refused(v4_at(a + 2))) ? why : NULL;
    if (v6_in(a, nat64_local, 48))
        return "local-use NAT64 (64:ff9b:1::/48)";
    if (v6_in(a, teredo, 32))
        return "Teredo (2001::/32)";
    if (v6_in(a, doc, 32))
        return "documentation (2001:db8::/32)";
    if (v6_in(a, discard, 64))
        return "discard (100::/64)";
    if (v6_in(a, ula, 7))
        return "unique local (fc00::/7)";
    if (v6_in(a, linklocal, 10))
        return "link-local (fe80::/10)";
    if (v6_in(a, sitelocal, 10))
        return "site-local (fec0::/10)";
    if (v6_in(a, mcast, 8))
        return "multicast (ff00::/8)";
    return NULL;
}

const char *
coord_webhook_addr_refused(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_refused(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6)
        return v6_refused(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return "not an IP address";
}

/* ------------------------------------------------------------------ resolution */

/* A numeric address into @ss; false when @s is not one. */
static bool
addr_parse(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* WEBHOOK_DEBUG_HOSTS: the address @host is given there, read afresh each time (tests). */
static bool
hosts_override(const char *file, const char *host, struct sockaddr_storage *ss)
{
    if (!file || !*file)
        return false;
    FILE *f = fopen(file, "re");
    if (!f)
        return false;
    char line[512], name[256], addr[128];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%255s %127s", name, addr) == 2 && name[0] != '#' &&
            strcasecmp(name, host) == 0)
            found = addr_parse(addr, ss);
    }
    fclose(f);
    return found;
}

/*
 * A name resolved by getaddrinfo on a short-lived thread of its own, so that neither the
 * delivery thread nor a database thread waits for DNS longer than it chooses to.  (Not
 * getaddrinfo_a: glibc starts its helper and notification threads internally, which the
 * sanitizers' thread tracking does not see.)  The request is shared by its waiter and the
 * resolving thread; whichever lets go last frees it, so a waiter that gives up leaves it safely.
 */
struct gai_req {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done; /* under @mu */
    int rc;
    struct addrinfo *res;
    char host[256];
};

static void
gai_req_unref(struct gai_req *g)
{
    if (atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    if (g->res)
        freeaddrinfo(g->res);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

static void *
gai_thread(void *arg)
{
    struct gai_req *g = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(g->host, NULL, &hints, &res);
    pthread_mutex_lock(&g->mu);
    g->rc = rc;
    g->res = rc == 0 ? res : NULL;
    g->done = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    gai_req_unref(g);
    return NULL;
}

/* Start resolving @host; NULL (and @err) when it cannot start. */
static struct gai_req *
gai_start(const char *host, co_err *err)
{
    struct gai_req *g = co_xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 2);
    co_strlcpy(g->host, host, sizeof(g->host));
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, gai_thread, g);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_store(&g->refs, 1);
        gai_req_unref(g);
        co_err_field(err, CO_E_INVAL, "callback_url", "cannot resolve '%s' now (no thread)", host);
        return NULL;
    }
    return g;
}

/*
 * The outcome of @g (EAI_INPROGRESS: not yet, nothing done): its addresses into @out, else an
 * error; either way @g is let go.  @timed_out: give up on a request still in progress.
 */
static int
gai_finish(struct gai_req *g, bool timed_out, int64_t timeout_ms, struct sockaddr_storage *out,
           int *n, co_err *err)
{
    pthread_mutex_lock(&g->mu);
    int rc = g->done ? g->rc : EAI_INPROGRESS;
    pthread_mutex_unlock(&g->mu);
    if (rc == EAI_INPROGRESS && !timed_out)
        return EAI_INPROGRESS;
    const char *host = g->host;
    if (rc == EAI_INPROGRESS) {
        co_err_field(err, CO_E_INVAL, "callback_url",
                     "resolving '%s' took longer than %" PRId64 " ms", host, timeout_ms);
        gai_req_unref(g);
        return -1;
    }
    if (rc != 0) {
        co_err_field(err, CO_E_INVAL, "callback_url", "cannot resolve '%s': %s", host,
                     gai_strerror(rc));
        gai_req_unref(g);
        return -1;
    }
    *n = 0;
    for (struct addrinfo *ai = g->res; ai && *n < COORD_WEBHOOK_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(*out))
            continue;
        memset(&out[*n], 0, sizeof(out[*n]));
        memcpy(&out[*n], ai->ai_addr, ai->ai_addrlen);
        (*n)++;
    }
    if (*n == 0)
        co_err_field(err, CO_E_INVAL, "callback_url", "'%s' has no IP address", host);
    gai_req_unref(g);
    return *n == 0 ? -1 : 0;
}

/* Resolve @host, waiting at most @timeout_ms (the submit check). */
static int
resolve_name(const char *host, int64_t timeout_ms, struct sockaddr_storage *out, int *n,
             co_err *err)
{
    struct gai_req *g = gai_start(host, err);
    if (!g)
        return -1;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&g->mu);
    while (!g->done && pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&g->mu);
    int rc = gai_finish(g, true, timeout_ms, out, n, err);
    return rc;
}

/* ------------------------------------------------------------------ URL check */

static void
url_free(CURLU *u, char **parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        curl_free(parts[i]);
    curl_url_cleanup(u);
}

/* Parse and check @url up to its host and port (no resolution). */
static int
url_parse(const char *url, struct coord_webhook_target *out, co_err *err)
{
    enum { P_SCHEME, P_HOST, P_PORT, P_USER, P_ZONE, P_N };
    char *parts[P_N] = {NULL};
    memset(out, 0, sizeof(*out));
    size_t len = strlen(url);
    if (len == 0 || len > COORD_WEBHOOK_URL_MAX)
        return co_err_field(err, CO_E_INVAL, "callback_url", "callback_url must be 1-%d bytes long",
                            COORD_WEBHOOK_URL_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return co_err_field(err, CO_E_INVAL, "callback_url",
                                "callback_url has a space or a control character");
    CURLU *u = curl_url();
    if (!u)
        return co_err_set(err, CO_E_SYS, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &parts[P_SCHEME], 0) != CURLUE_OK) {
        url_free(u, parts, P_N);
        return co_err_field(err, CO_E_INVAL, "callback_url", "callback_url is not a valid URL");
    }
    if (strcmp(parts[P_SCHEME], "http") != 0 && strcmp(parts[P_SCHEME], "https") != 0) {
        co_err_field(err, CO_E_INVAL, "callback_url",
                     "callback_url must be http or https, not '%.20s'", parts[P_SCHEME]);
        url_free(u, parts, P_N);
        return -1;
    }
    if (curl_url_get(u, CURLUPART_HOST, &parts[P_HOST], 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &parts[P_PORT], CURLU_DEFAULT_PORT) != CURLUE_OK ||
        !parts[P_HOST][0] || strlen(parts[P_HOST]) >= sizeof(out->host) + 2) {
        url_free(u, parts, P_N);
        return co_err_field(err, CO_E_INVAL, "callback_url", "callback_url has no valid host");
    }
    if (curl_url_get(u, CURLUPART_USER, &parts[P_USER], 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_ZONEID, &parts[P_ZONE], 0) == CURLUE_OK) {
        url_free(u, parts, P_N);
        return co_err_field(err, CO_E_INVAL, "callback_url",
                            "callback_url may not hold credentials or an IPv6 zone");
    }
    co_strlcpy(out->scheme, parts[P_SCHEME], sizeof(out->scheme));
    const char *h = parts[P_HOST];
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        memcpy(out->host, h + 1, hl - 2);
        out->host[hl - 2] = '\0';
    } else {
        co_strlcpy(out->host, h, sizeof(out->host));
    }
    out->port = atoi(parts[P_PORT]);
    url_free(u, parts, P_N);
    if (out->port < 1 || out->port > 65535)
        return co_err_field(err, CO_E_INVAL, "callback_url", "callback_url has no valid port");
    return 0;
}

/* A numeric host, or one WEBHOOK_DEBUG_HOSTS names: its address without a resolver. */
static bool
url_known_addr(const struct coord_webhook_target *t, const char *hosts_file,
               struct sockaddr_storage *ss)
{
    return addr_parse(t->host, ss) || hosts_override(hosts_file, t->host, ss);
}

/* Check every address of @t's host; the first becomes t->addr. */
static int
url_check_addrs(struct coord_webhook_target *out, const struct sockaddr_storage *addrs, int n,
                bool allow_private, co_err *err)
{
    for (int i = 0; i < n; i++) {
        const char *why = coord_webhook_addr_refused((struct sockaddr *)&addrs[i]);
        char text[INET6_ADDRSTRLEN] = "?";
        const void *raw = addrs[i].ss_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)&addrs[i])->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)&addrs[i])->sin6_addr;
        inet_ntop(addrs[i].ss_family, raw, text, sizeof(text));
        if (why && !allow_private)
            return co_err_field(err, CO_E_INVAL, "callback_url",
                                "callback_url host '%s' resolves to %s, a %s address: refused "
                                "(WEBHOOK_ALLOW_PRIVATE is not set)",
                                out->host, text, why);
        if (i == 0) {
            co_strlcpy(out->addr, text, sizeof(out->addr));
            out->addr_v6 = addrs[i].ss_family == AF_INET6;
        }
        size_t used = strlen(out->addrs);
        snprintf(out->addrs + used, sizeof(out->addrs) - used, "%s%s%s%s", used ? "," : "",
                 addrs[i].ss_family == AF_INET6 ? "[" : "", text,
                 addrs[i].ss_family == AF_INET6 ? "]" : "");
    }
    return 0;
}

int
coord_webhook_url_check(const char *url, const struct coord_webhook_check_opts *opts,
                        struct coord_webhook_target *out, co_err *err)
{
    struct sockaddr_storage addrs[COORD_WEBHOOK_ADDRS];
    int n = 1;
    if (url_parse(url, out, err) < 0)
        return -1;
    if (!url_known_addr(out, opts->hosts_file, &addrs[0]) &&
        resolve_name(out->host, opts->resolve_timeout_ms > 0 ? opts->resolve_timeout_ms : 5000,
                     addrs, &n, err) < 0)
        return -1;
    return url_check_addrs(out, addrs, n, opts->allow_private, err);
}

/* ------------------------------------------------------------------ signing, backoff */

void
coord_webhook_sign(const char *secret, const char *body, size_t len, char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &mlen);
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < mlen && i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
    out[71] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

int64_t
coord_webhook_backoff_ms(int64_t base_ms, int attempt)
{
    int64_t d = base_ms > 0 ? base_ms : 1;
    for (int i = 1; i < attempt && d < COORD_WEBHOOK_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < COORD_WEBHOOK_BACKOFF_MAX_MS ? d : COORD_WEBHOOK_BACKOFF_MAX_MS;
}

/* ------------------------------------------------------------------ metrics */

static struct {
    _Atomic uint64_t attempts, attempt_failures, refused, delivered, gave_up;
    _Atomic int64_t inflight;
} stats;

void
coord_webhook_metrics_render(struct co_buf *out)
{
    co_buf_printf(out,
                  "# HELP cacheout_webhook_attempts_total Callback delivery attempts.\n"
                  "# TYPE cacheout_webhook_attempts_total counter\n"
                  "cacheout_webhook_attempts_total %" PRIu64 "\n"
                  "# HELP cacheout_webhook_attempt_failures_total Attempts that failed (non-2xx, "
                  "no answer, refused address).\n"
                  "# TYPE cacheout_webhook_attempt_failures_total counter\n"
                  "cacheout_webhook_attempt_failures_total %" PRIu64 "\n"
                  "# HELP cacheout_webhook_refused_total Attempts refused at connect time (SSRF "
                  "check).\n"
                  "# TYPE cacheout_webhook_refused_total counter\n"
                  "cacheout_webhook_refused_total %" PRIu64 "\n"
                  "# HELP cacheout_webhook_delivered_total Callbacks delivered.\n"
                  "# TYPE cacheout_webhook_delivered_total counter\n"
                  "cacheout_webhook_delivered_total %" PRIu64 "\n"
                  "# HELP cacheout_webhook_failed_total Callbacks given up after "
                  "WEBHOOK_MAX_HOURS.\n"
                  "# TYPE cacheout_webhook_failed_total counter\n"
                  "cacheout_webhook_failed_total %" PRIu64 "\n"
                  "# HELP cacheout_webhook_inflight Callback attempts in flight.\n"
                  "# TYPE cacheout_webhook_inflight gauge\n"
                  "cacheout_webhook_inflight %" PRId64 "\n",
                  atomic_load(&stats.attempts), atomic_load(&stats.attempt_failures),
                  atomic_load(&stats.refused), atomic_load(&stats.delivered),
                  atomic_load(&stats.gave_up), atomic_load(&stats.inflight));
}

/* ------------------------------------------------------------------ the delivery thread */

/* A claim: queued on the write lane, filled there, handed back to the thread. */
struct wh_claim {
    struct coord_webhook *wh;
    int64_t limit;
    struct coord_webhook_due_list list;
    char **bodies; /* the job object of each row */
    int rc;
    co_err err;
};

/* One attempt in flight. */
struct wh_xfer {
    struct wh_xfer *prev, *next; /* the thread's list of attempts in flight */
    CURL *easy;
    struct curl_slist *headers, *resolve, *connect_to;
    char *body;
    char delivery_id[CO_ID_MAX + 1];
    char job_id[CO_ID_MAX + 1];
    int attempt;
    int64_t first_attempt_at, at_ms, t0_mono;
    size_t got;
    bool capped;
    char errbuf[CURL_ERROR_SIZE];
};

struct coord_webhook {
    const struct coord_config *cfg;
    struct coord_db *db;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under @mu. */
    bool stop, kicked, claim_busy;
    struct wh_claim *claim_done; /* a finished claim not yet taken */
    /* Thread only. */
    struct wh_xfer *xfers;        /* in flight */
    struct wh_pending *resolving; /* hosts being resolved before their attempt */
    int n_resolving;
    int inflight;
    int64_t next_claim_ms; /* monotonic */
    int kick_followups;    /* claims after a kick that may run before the queuing commit */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct coord_webhook *g_wh;

void
coord_webhook_kick(void)
{
    pthread_mutex_lock(&g_mu);
    if (g_wh) {
        pthread_mutex_lock(&g_wh->mu);
        g_wh->kicked = true;
        pthread_mutex_unlock(&g_wh->mu);
        curl_multi_wakeup(g_wh->multi);
    }
    pthread_mutex_unlock(&g_mu);
}

/* A claimed row is leased for longer than one attempt can take. */
static int64_t
lease_ms(const struct coord_config *cfg)
{
    return (cfg->webhook_timeout_seconds + 30) * 1000 + 5000;
}

/* Database thread. */
static void
claim_work(struct coord_store *s, void *arg)
{
    struct wh_claim *c = arg;
    struct coord_webhook *wh = c->wh;
    int64_t now = co_wall_ms();
    co_err_clear(&c->err);
    c->rc = coord_store_webhook_claim(s, now, now + lease_ms(wh->cfg), c->limit, &c->list, &c->err);
    if (c->rc == 0 && c->list.len > 0) {
        c->bodies = co_xcalloc(c->list.len, sizeof(*c->bodies));
        for (size_t i = 0; i < c->list.len; i++) {
            struct co_buf b;
            struct co_jsonw w;
            co_buf_init(&b);
            co_jsonw_init(&w, &b);
            coord_render_job(&w, &c->list.items[i].job, false, 0);
            c->bodies[i] = co_buf_steal(&b, NULL);
        }
    }
    pthread_mutex_lock(&wh->mu);
    wh->claim_done = c;
    pthread_cond_broadcast(&wh->cv);
    pthread_mutex_unlock(&wh->mu);
    curl_multi_wakeup(wh->multi);
}

static void
claim_free(struct wh_claim *c)
{
    for (size_t i = 0; c->bodies && i < c->list.len; i++)
        free(c->bodies[i]);
    free(c->bodies);
    coord_webhook_due_list_release(&c->list);
    free(c);
}

/* An outcome to store: its own copy, freed by the work. */
struct wh_record {
    struct coord_webhook_outcome o;
    char delivery_id[CO_ID_MAX + 1], job_id[CO_ID_MAX + 1];
    char *error;
};

static void
record_work(struct coord_store *s, void *arg)
{
    struct wh_record *rec = arg;
    co_err err = CO_ERR_INIT;
    if (coord_store_webhook_record(s, &rec->o, &err) < 0)
        co_warn("callback attempt not recorded (retried when its lease ends) delivery=%s "
                "job=%s error=\"%s\"",
                rec->delivery_id, rec->job_id, err.msg);
    free(rec->error);
    free(rec);
}

/* Decide the next state after an attempt and queue its record (delivery thread). */
static void
wh_finish(struct coord_webhook *wh, const char *delivery_id, const char *job_id, int attempt,
          int64_t first_at, int64_t at_ms, int status, const char *error, int64_t duration_ms)
{
    struct wh_record *rec = co_xcalloc(1, sizeof(*rec));
    int64_t now = co_wall_ms();
    co_strlcpy(rec->delivery_id, delivery_id, sizeof(rec->delivery_id));
    co_strlcpy(rec->job_id, job_id, sizeof(rec->job_id));
    rec->error = error ? co_xstrdup(error) : NULL;
    struct coord_webhook_outcome *o = &rec->o;
    o->delivery_id = rec->delivery_id;
    o->job_id = rec->job_id;
    o->attempt = attempt;
    o->at_ms = at_ms;
    o->status_code = status;
    o->error = rec->error;
    o->duration_ms = duration_ms;
    o->first_attempt_at = first_at > 0 ? first_at : at_ms;
    atomic_fetch_add(&stats.attempts, 1);
    if (!error) {
        o->state = "delivered";
        atomic_fetch_add(&stats.delivered, 1);
        co_info("callback delivered delivery=%s job=%s attempt=%d status=%d ms=%" PRId64,
                delivery_id, job_id, attempt, status, duration_ms);
    } else {
        atomic_fetch_add(&stats.attempt_failures, 1);
        int64_t deadline = o->first_attempt_at + wh->cfg->webhook_max_hours * 3600 * INT64_C(1000);
        int64_t next = now + coord_webhook_backoff_ms(wh->cfg->webhook_backoff_base_ms, attempt);
        if (now >= deadline) {
            o->state = "failed";
            atomic_fetch_add(&stats.gave_up, 1);
        } else {
            o->state = "pending";
            o->next_at = next < deadline ? next : deadline;
            /* Look for it again when it is due (its record is queued before that claim). */
            int64_t due = co_mono_ms() + (o->next_at - now) + 5;
            if (due < wh->next_claim_ms)
                wh->next_claim_ms = due;
        }
        co_warn("callback attempt failed delivery=%s job=%s attempt=%d error=\"%s\" then=%s",
                delivery_id, job_id, attempt, error, o->state);
    }
    co_err err = CO_ERR_INIT;
    if (coord_db_submit(wh->db, COORD_DB_WRITE, record_work, NULL, rec, &err) < 0) {
        co_warn("callback attempt not recorded (retried when its lease ends) delivery=%s "
                "error=\"%s\"",
                delivery_id, err.msg);
        free(rec->error);
        free(rec);
    }
}

static size_t
xfer_write(char *data, size_t size, size_t n, void *arg)
{
    struct wh_xfer *x = arg;
    (void)data;
    x->got += size * n;
    if (x->got > COORD_WEBHOOK_ANSWER_MAX) {
        x->capped = true;
        return 0; /* ends the transfer: the status line is all we need */
    }
    return size * n;
}

static void
xfer_free(struct wh_xfer *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->resolve);
    curl_slist_free_all(x->connect_to);
    free(x->body);
    free(x);
}

static void __attribute__((noreturn)) oom(void)
{
    co_error("out of memory in libcurl");
    abort();
}

static struct curl_slist *slist_addf(struct curl_slist *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct curl_slist *
slist_addf(struct curl_slist *l, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n)
        oom();
    return n;
}

/*
 * A claimed delivery on its way to an attempt: its row (taken from the claim), its body, and
 * while its host is being resolved, the request (delivery thread only).
 */
struct wh_pending {
    struct wh_pending *next;
    struct coord_webhook_due due;
    char *body;
    struct coord_webhook_target t;
    struct gai_req *g;
    int64_t at_ms, t0_mono, deadline_mono;
};

static void
pending_free(struct wh_pending *p)
{
    if (p->g)
        gai_req_unref(p->g);
    free(p->body);
    free(p->due.url);
    free(p->due.secret);
    coord_job_release(&p->due.job);
    free(p);
}

/* The attempt ends before any connection: @err says why (@refused: an address check). */
static void
pending_fail(struct coord_webhook *wh, struct wh_pending *p, const co_err *err, bool refused)
{
    char msg[sizeof(err->msg) + 40];
    snprintf(msg, sizeof(msg), "%s%s", refused ? "refused at connect time: " : "", err->msg);
    if (refused)
        atomic_fetch_add(&stats.refused, 1);
    wh_finish(wh, p->due.delivery_id, p->due.job.job_id, p->due.attempts + 1,
              p->due.first_attempt_at, p->at_ms, 0, msg, co_mono_ms() - p->t0_mono);
    pending_free(p);
}

static void wh_connect(struct coord_webhook *wh, struct wh_pending *p);

/* The host's addresses are known: check every one, then connect to the first. */
static void
pending_addrs(struct coord_webhook *wh, struct wh_pending *p, const struct sockaddr_storage *addrs,
              int n)
{
    co_err err = CO_ERR_INIT;
    if (url_check_addrs(&p->t, addrs, n, wh->cfg->webhook_allow_private, &err) < 0)
        pending_fail(wh, p, &err, true);
    else
        wh_connect(wh, p);
}

/*
 * Start one attempt of claimed row @d (its strings are taken; @body too): the URL is parsed and
 * its host resolved again -- without blocking this thread: a name is resolved on a thread of
 * its own (gai_start) and looked at in wh_poll_resolving -- then checked, then connected to.
 */
static void
wh_start(struct coord_webhook *wh, struct coord_webhook_due *d, char *body)
{
    struct wh_pending *p = co_xcalloc(1, sizeof(*p));
    p->due = *d;
    memset(d, 0, sizeof(*d));
    p->body = body;
    p->at_ms = co_wall_ms();
    p->t0_mono = co_mono_ms();
    co_err err = CO_ERR_INIT;
    struct sockaddr_storage addr;
    if (url_parse(p->due.url, &p->t, &err) < 0) {
        pending_fail(wh, p, &err, false);
    } else if (url_known_addr(&p->t, wh->cfg->webhook_debug_hosts, &addr)) {
        pending_addrs(wh, p, &addr, 1);
    } else if (!(p->g = gai_start(p->t.host, &err))) {
        pending_fail(wh, p, &err, false);
    } else {
        p->deadline_mono = p->t0_mono + COORD_WEBHOOK_RESOLVE_MS;
        p->next = wh->resolving;
        wh->resolving = p;
        wh->n_resolving++;
    }
}

/* Resolutions that ended (or ran out of time) go on to their check and attempt. */
static void
wh_poll_resolving(struct coord_webhook *wh)
{
    struct wh_pending **pp = &wh->resolving;
    while (*pp) {
        struct wh_pending *p = *pp;
        struct sockaddr_storage addrs[COORD_WEBHOOK_ADDRS];
        int n = 0;
        co_err err = CO_ERR_INIT;
        int rc = gai_finish(p->g, co_mono_ms() >= p->deadline_mono, COORD_WEBHOOK_RESOLVE_MS, addrs,
                            &n, &err);
        if (rc == EAI_INPROGRESS) {
            pp = &p->next;
            continue;
        }
        p->g = NULL; /* let go by gai_finish */
        *pp = p->next;
        wh->n_resolving--;
        if (rc < 0)
            pending_fail(wh, p, &err, false);
        else
            pending_addrs(wh, p, addrs, n);
    }
}

/* Connect to the checked address and post (delivery thread); frees @p. */
static void
wh_connect(struct coord_webhook *wh, struct wh_pending *p)
{
    const struct coord_webhook_due *d = &p->due;
    const struct coord_webhook_target t = p->t;
    char *body = p->body;
    int attempt = d->attempts + 1;
    int64_t at = p->at_ms, t0 = p->t0_mono;
    p->body = NULL;
    struct wh_xfer *x = co_xcalloc(1, sizeof(*x));
    x->body = body;
    co_strlcpy(x->delivery_id, d->delivery_id, sizeof(x->delivery_id));
    co_strlcpy(x->job_id, d->job.job_id, sizeof(x->job_id));
    x->attempt = attempt;
    x->first_attempt_at = d->first_attempt_at;
    x->at_ms = at;
    x->t0_mono = t0;
    x->easy = curl_easy_init();
    if (!x->easy)
        oom();
    size_t blen = strlen(body);
    char sig[72];
    x->headers = slist_addf(NULL, "Content-Type: application/json");
    x->headers = slist_addf(x->headers, "User-Agent: cacheout-coordinator");
    x->headers = slist_addf(x->headers, "X-CacheOut-Event: job.finished");
    x->headers = slist_addf(x->headers, "X-CacheOut-Delivery: %s", d->delivery_id);
    if (d->secret && d->secret[0]) {
        coord_webhook_sign(d->secret, body, blen, sig);
        x->headers = slist_addf(x->headers, "X-CacheOut-Signature: %s", sig);
    }
    x->headers = slist_addf(x->headers, "Expect:");
    /*
     * Connect only to addresses that were checked, whatever a later lookup would say: a numeric
     * host is its own address (pinned with CONNECT_TO all the same); a name gets all of its
     * checked addresses as libcurl's resolution (RESOLVE), so it does no lookup of its own and
     * can still fall back from one address to the next.
     */
    struct sockaddr_storage lit;
    if (addr_parse(t.host, &lit)) {
        const char *lb = t.addr_v6 ? "[" : "", *rb = t.addr_v6 ? "]" : "";
        x->connect_to = slist_addf(NULL, "::%s%s%s:%d", lb, t.addr, rb, t.port);
    } else {
        x->resolve = slist_addf(NULL, "%s:%d:%s", t.host, t.port, t.addrs);
    }
    CURL *e = x->easy;
    long timeout_ms = (long)wh->cfg->webhook_timeout_seconds * 1000;
    curl_easy_setopt(e, CURLOPT_URL, d->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (x->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, x->connect_to);
    if (x->resolve)
        curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    /* A server that trickles (byte by byte) is cut before the total timeout. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 64L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, timeout_ms >= 10000 ? 5L : 1L + timeout_ms / 2000);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)COORD_WEBHOOK_ANSWER_MAX);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    pending_free(p);
    if (curl_multi_add_handle(wh->multi, e) != CURLM_OK) {
        wh_finish(wh, x->delivery_id, x->job_id, attempt, x->first_attempt_at, at, 0,
                  "cannot start the transfer", 0);
        xfer_free(x);
        return;
    }
    x->next = wh->xfers;
    if (wh->xfers)
        wh->xfers->prev = x;
    wh->xfers = x;
    wh->inflight++;
    atomic_fetch_add(&stats.inflight, 1);
}

static void
xfer_unlink(struct coord_webhook *wh, struct wh_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        wh->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    curl_multi_remove_handle(wh->multi, x->easy);
    xfer_free(x);
    wh->inflight--;
    atomic_fetch_sub(&stats.inflight, 1);
}

/* One transfer ended (delivery thread). */
static void
wh_done(struct coord_webhook *wh, struct wh_xfer *x, CURLcode res)
{
    long code = 0;
    char msg[CURL_ERROR_SIZE + 128];
    const char *error = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    bool answered = res == CURLE_OK ||
                    (x->capped && (res == CURLE_WRITE_ERROR || res == CURLE_FILESIZE_EXCEEDED));
    if (!answered) {
        snprintf(msg, sizeof(msg), "%s%s%s", curl_easy_strerror(res), x->errbuf[0] ? ": " : "",
                 x->errbuf);
        error = msg;
    } else if (code >= 300 && code < 400) {
        char *loc = NULL;
        curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
        snprintf(msg, sizeof(msg), "HTTP %ld: redirect not followed%s%.200s", code,
                 loc ? " (Location: " : "", loc ? loc : "");
        if (loc)
            co_strlcpy(msg + strlen(msg), ")", sizeof(msg) - strlen(msg));
        error = msg;
    } else if (code < 200 || code >= 300) {
        snprintf(msg, sizeof(msg), "HTTP %ld", code);
        error = msg;
    }
    wh_finish(wh, x->delivery_id, x->job_id, x->attempt, x->first_attempt_at, x->at_ms, (int)code,
              error, co_mono_ms() - x->t0_mono);
    xfer_unlink(wh, x);
}

static void
wh_take_claim(struct coord_webhook *wh, struct wh_claim *c)
{
    int64_t now = co_mono_ms();
    if (c->rc < 0) {
        co_warn("callback queue not read, retried error=\"%s\"", c->err.msg);
        wh->next_claim_ms = now + wh->cfg->webhook_poll_ms;
    } else {
        for (size_t i = 0; i < c->list.len; i++) {
            wh_start(wh, &c->list.items[i], c->bodies[i]);
            c->bodies[i] = NULL;
        }
        /* A full batch: there may be more due now. */
        wh->next_claim_ms = (int64_t)c->list.len >= c->limit ? now : now + wh->cfg->webhook_poll_ms;
        /* Right after a kick the queuing transaction may not have committed yet (PostgreSQL). */
        if (c->list.len == 0 && wh->kick_followups > 0) {
            wh->kick_followups--;
            wh->next_claim_ms = now + 50;
        } else if (c->list.len > 0) {
            wh->kick_followups = 0;
        }
    }
    claim_free(c);
}

static void *
wh_main(void *arg)
{
    struct coord_webhook *wh = arg;
    int max = (int)wh->cfg->webhook_concurrency;
    while (1) {
        pthread_mutex_lock(&wh->mu);
        bool stop = wh->stop, kicked = wh->kicked, busy = wh->claim_busy;
        struct wh_claim *done = wh->claim_done;
        wh->kicked = false;
        wh->claim_done = NULL;
        if (done)
            wh->claim_busy = busy = false;
        pthread_mutex_unlock(&wh->mu);
        if (done)
            wh_take_claim(wh, done);
        if (stop)
            break;
        int64_t now = co_mono_ms();
        if (kicked) {
            /* Soon after the finishing transaction commits (it kicked before its commit). */
            if (wh->next_claim_ms > now + 5)
                wh->next_claim_ms = now + 5;
            wh->kick_followups = 2;
        }
        wh_poll_resolving(wh);
        int used = wh->inflight + wh->n_resolving;
        if (!busy && now >= wh->next_claim_ms && used < max) {
            struct wh_claim *c = co_xcalloc(1, sizeof(*c));
            c->wh = wh;
            c->limit = max - used;
            co_err err = CO_ERR_INIT;
            pthread_mutex_lock(&wh->mu);
            wh->claim_busy = true;
            pthread_mutex_unlock(&wh->mu);
            if (coord_db_submit(wh->db, COORD_DB_WRITE, claim_work, NULL, c, &err) < 0) {
                pthread_mutex_lock(&wh->mu);
                wh->claim_busy = false;
                pthread_mutex_unlock(&wh->mu);
                free(c);
                wh->next_claim_ms = now + wh->cfg->webhook_poll_ms;
            }
        }
        int running = 0;
        curl_multi_perform(wh->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(wh->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct wh_xfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            wh_done(wh, x, m->data.result);
        }
        int64_t wait = wh->next_claim_ms - co_mono_ms();
        if (wait < 0)
            wait = 0;
        if (wait > wh->cfg->webhook_poll_ms)
            wait = wh->cfg->webhook_poll_ms;
        if (wh->inflight + wh->n_resolving >= max || busy)
            wait = wh->cfg->webhook_poll_ms;
        if (wh->n_resolving > 0 && wait > 20)
            wait = 20; /* resolutions are looked at, not waited for */
        curl_multi_poll(wh->multi, NULL, 0, (int)wait, NULL);
    }
    /* Queued claim work still points at @wh: wait for it. */
    pthread_mutex_lock(&wh->mu);
    while (wh->claim_busy && !wh->claim_done)
        pthread_cond_wait(&wh->cv, &wh->mu);
    struct wh_claim *done = wh->claim_done;
    wh->claim_done = NULL;
    pthread_mutex_unlock(&wh->mu);
    if (done)
        claim_free(done);
    /* Abandon what is in flight: the leases make those rows due again. */
    while (wh->xfers)
        xfer_unlink(wh, wh->xfers);
    while (wh->resolving) {
        struct wh_pending *p = wh->resolving;
        wh->resolving = p->next;
        pending_free(p);
    }
    return NULL;
}

int
coord_webhook_start(const struct coord_config *cfg, struct coord_db *db, struct coord_webhook **out,
                    co_err *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return co_err_set(err, CO_E_SYS, "libcurl cannot start");
    struct coord_webhook *wh = co_xcalloc(1, sizeof(*wh));
    wh->cfg = cfg;
    wh->db = db;
    wh->multi = curl_multi_init();
    pthread_mutex_init(&wh->mu, NULL);
    pthread_cond_init(&wh->cv, NULL);
    wh->next_claim_ms = co_mono_ms();
    if (!wh->multi || pthread_create(&wh->thread, NULL, wh_main, wh) != 0) {
        if (wh->multi)
            curl_multi_cleanup(wh->multi);
        free(wh);
        return co_err_set(err, CO_E_SYS, "cannot start the callback thread");
    }
    pthread_mutex_lock(&g_mu);
    g_wh = wh;
    pthread_mutex_unlock(&g_mu);
    if (cfg->webhook_debug_hosts)
        co_warn("WEBHOOK_DEBUG_HOSTS is set: callback host names listed in that file skip DNS; "
                "for tests only");
    if (cfg->webhook_allow_private)
        co_warn("WEBHOOK_ALLOW_PRIVATE=true: callbacks may reach loopback, private and metadata "
                "addresses; for development and tests only");
    *out = wh;
    return 0;
}

void
coord_webhook_stop(struct coord_webhook *wh)
{
    if (!wh)
        return;
    pthread_mutex_lock(&g_mu);
    g_wh = NULL;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_lock(&wh->mu);
    wh->stop = true;
    pthread_mutex_unlock(&wh->mu);
    curl_multi_wakeup(wh->multi);
    pthread_join(wh->thread, NULL);
    curl_multi_cleanup(wh->multi);
    pthread_mutex_destroy(&wh->mu);
    pthread_cond_destroy(&wh->cv);
    free(wh);
}
