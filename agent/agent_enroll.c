/* agent_enroll: `cacheout-agent enroll` (see agent_enroll.h). */
#include "agent_enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "agent_config.h"
#include "co_alloc.h"
#include "co_buf.h"
#include "co_time.h"

#define ENROLL_TIMEOUT_MS 15000
#define ENROLL_MAX_BODY (64 * 1024)

/* One GET /api/v1/me, driven by lws's client on this thread. */
struct enroll_req {
    const char *auth; /* "Bearer <key>" */
    int status;       /* HTTP status, 0 before the answer */
    struct co_buf body;
    char error[256]; /* connection error from lws, "" when none */
    bool done;
};

static int
enroll_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct enroll_req *r = lws_context_user(lws_get_context(wsi));
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                         (const unsigned char *)r->auth, (int)strlen(r->auth), p,
                                         end))
            return -1;
        break;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        r->status = (int)lws_http_client_http_response(wsi);
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (r->body.len + len > ENROLL_MAX_BODY)
            return -1;
        co_buf_append(&r->body, in, len);
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 4096];
        char *px = buf + LWS_PRE;
        int lenx = (int)sizeof(buf) - LWS_PRE;
        if (lws_http_client_read(wsi, &px, &lenx) < 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        snprintf(r->error, sizeof(r->error), "%s", in ? (const char *)in : "connection failed");
        r->done = true;
        break;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        r->done = true;
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* OpenSSL's reason for a refused certificate arrives on lws's log, not in the error callback. */
static void
enroll_lws_log(int level, const char *line)
{
    (void)level;
    if (strstr(line, "SSL error"))
        fprintf(stderr, "cacheout-agent enroll: %s", line);
}

/* GET @path on @cfg's coordinator with @r->auth; fills @r.  Errors: cannot create a context. */
static int
enroll_get(const struct agent_config *cfg, const char *ca_file, const char *path,
           struct enroll_req *r, co_err *err)
{
    static const struct lws_protocols protocols[] = {
        {"enroll-http", enroll_http_cb, 0, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    lws_set_log_level(LLL_ERR, enroll_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = r;
    info.options = cfg->tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    info.client_ssl_ca_filepath = ca_file;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx)
        return co_err_set(err, CO_E_INTERNAL, "cannot create the HTTP client context");

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = ctx;
    ci.address = cfg->host;
    ci.port = cfg->port;
    ci.path = path;
    ci.host = cfg->host;
    ci.origin = cfg->host;
    ci.method = "GET";
    /* The certificate and its host name are always checked: no flag here relaxes that. */
    ci.ssl_connection = cfg->tls ? LCCSCF_USE_SSL : 0;
    ci.protocol = NULL;
    ci.local_protocol_name = "enroll-http";
    if (!lws_client_connect_via_info(&ci) && !r->done) {
        snprintf(r->error, sizeof(r->error), "cannot start a connection to '%s'", cfg->host);
        r->done = true;
    }
    int64_t deadline = co_mono_ms() + ENROLL_TIMEOUT_MS;
    while (!r->done && co_mono_ms() < deadline) {
        if (lws_service(ctx, 100) < 0)
            break;
    }
    if (!r->done)
        snprintf(r->error, sizeof(r->error), "no answer within %d s", ENROLL_TIMEOUT_MS / 1000);
    lws_context_destroy(ctx);
    return 0;
}

/* A key goes into an env file line as it is: printable ASCII without spaces or quotes. */
static bool
enroll_key_ok(const char *key)
{
    if (!*key || strlen(key) > 512)
        return false;
    for (const char *p = key; *p; p++) {
        if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\'' || *p == '#' || *p == '\\')
            return false;
    }
    return true;
}

/* Whether @line (not NUL-terminated, @len bytes) sets @key ("KEY=" or "export KEY="). */
static bool
line_sets(const char *line, size_t len, const char *key)
{
    while (len > 0 && (*line == ' ' || *line == '\t'))
        line++, len--;
    if (len >= 7 && strncmp(line, "export ", 7) == 0)
        line += 7, len -= 7;
    size_t k = strlen(key);
    return len > k && strncmp(line, key, k) == 0 && (line[k] == '=' || line[k] == ' ');
}

char *
agent_enroll_env_update(const char *text, const char *const *keys, const char *const *values,
                        size_t n)
{
    struct co_buf out = CO_BUF_INIT;
    bool done[16] = {false};
    if (n > CO_ARRAY_LEN(done))
        abort();
    for (const char *p = text ? text : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        bool keep = true;
        for (size_t i = 0; i < n; i++) {
            if (!line_sets(p, len, keys[i]))
                continue;
            keep = false;
            if (!done[i]) {
                co_buf_printf(&out, "%s=%s\n", keys[i], values[i]);
                done[i] = true;
            }
            break;
        }
        if (keep) {
            co_buf_append(&out, p, len);
            co_buf_append(&out, "\n", 1);
        }
        p += len + (nl ? 1 : 0);
    }
    for (size_t i = 0; i < n; i++) {
        if (!done[i])
            co_buf_printf(&out, "%s=%s\n", keys[i], values[i]);
    }
    return co_buf_steal(&out, NULL);
}

/* Replace @path by @text atomically, mode 0600 (the file holds a key). */
static int
write_env_file(const char *path, const char *text, co_err *err)
{
    co_autofree char *tmp = co_xasprintf("%s.enroll-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot create '%s'", tmp);
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return co_err_sys(err, e, "cannot write '%s'", tmp);
        }
        off += (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return co_err_sys(err, e, "cannot write '%s'", tmp);
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return co_err_sys(err, e, "cannot replace '%s'", path);
    }
    return 0;
}

static char *
read_text(const char *path, co_err *err)
{
    co_autofclose FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? NULL : (co_err_sys(err, errno, "cannot read '%s'", path), NULL);
    struct co_buf b = CO_BUF_INIT;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        co_buf_append(&b, chunk, got);
    return co_buf_steal(&b, NULL);
}

static void
enroll_usage(FILE *f)
{
    fputs("usage: cacheout-agent enroll --coordinator URL --key KEY [--tls-ca-file PATH]\n"
          "                             [--env-file PATH]\n"
          "\n"
          "Checks KEY (a seller's API key with the sell scope) with the coordinator\n"
          "(GET /api/v1/me; for https/wss the certificate is verified against PATH or the\n"
          "system's store) and writes COORDINATOR_URL, AGENT_KEY and TLS_CA_FILE into the env\n"
          "file (default " AGENT_ENROLL_DEFAULT_ENV_FILE ", mode 0600), keeping its other\n"
          "lines.  KEY may also come from the environment (AGENT_KEY), which ps does not show.\n"
          "Exit status: 0 enrolled, 1 key refused or coordinator unreachable, 2 bad arguments.\n",
          f);
}

int
agent_enroll_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"coordinator", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"tls-ca-file", required_argument, NULL, 'a'},
        {"env-file", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *ca = NULL, *env_file = AGENT_ENROLL_DEFAULT_ENV_FILE;
    const char *key = getenv("AGENT_KEY");
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            url = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'e':
            env_file = optarg;
            break;
        case 'h':
            enroll_usage(stdout);
            return 0;
        default:
            enroll_usage(stderr);
            return 2;
        }
    }
    if (!url || !key || optind < argc) {
        enroll_usage(stderr);
        return 2;
    }
    if (!enroll_key_ok(key)) {
        fprintf(stderr, "cacheout-agent enroll: the key has spaces, quotes or control "
                        "characters: it is not a CacheOut key\n");
        return 2;
    }
    if (ca && access(ca, R_OK) != 0) {
        fprintf(stderr, "cacheout-agent enroll: cannot read --tls-ca-file '%s': %s\n", ca,
                strerror(errno));
        return 2;
    }

    co_err err = CO_ERR_INIT;
    struct agent_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    int rc = 1;
    char *text = NULL, *updated = NULL, *ws_url = NULL;
    json_t *me = NULL;
    struct enroll_req r = {.auth = NULL, .body = CO_BUF_INIT};
    co_autofree char *auth = co_xasprintf("Bearer %s", key);
    r.auth = auth;
    if (agent_config_parse_url(&cfg, url, &err) != 0) {
        fprintf(stderr, "cacheout-agent enroll: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    if (!cfg.tls)
        fprintf(stderr,
                "cacheout-agent enroll: warning: '%s' is not TLS: the key travels "
                "unencrypted (use https:// or wss:// outside a trusted network)\n",
                url);
    if (enroll_get(&cfg, ca, "/api/v1/me", &r, &err) != 0) {
        fprintf(stderr, "cacheout-agent enroll: %s\n", err.msg);
        goto out;
    }
    if (r.error[0]) {
        bool tls_err = cfg.tls && (strstr(r.error, "SSL") || strstr(r.error, "ssl"));
        fprintf(stderr, "cacheout-agent enroll: cannot reach the coordinator at %s: %s%s\n", url,
                r.error,
                tls_err ? " (TLS: its certificate was refused: untrusted, expired or for another "
                          "host name; pass --tls-ca-file with the CA that signed it)"
                        : "");
        goto out;
    }
    if (r.status == 401 || r.status == 403) {
        fprintf(stderr,
                "cacheout-agent enroll: the coordinator refused the key (HTTP %d %s): "
                "check it, or create a sell key for your account; nothing was written\n",
                r.status, r.status == 401 ? "unauthorized" : "forbidden");
        goto out;
    }
    if (r.status != 200) {
        fprintf(stderr,
                "cacheout-agent enroll: GET /api/v1/me answered HTTP %d (expected 200): is '%s' "
                "a CacheOut coordinator with accounts?\n",
                r.status, url);
        goto out;
    }
    me = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
    const char *user_id = me ? json_string_value(json_object_get(me, "user_id")) : NULL;
    json_t *scopes = json_object_get(json_object_get(me, "key"), "scopes");
    bool sell = false;
    size_t i;
    json_t *s;
    json_array_foreach(scopes, i, s) sell =
        sell || (json_is_string(s) && strcmp(json_string_value(s), "sell") == 0);
    if (!user_id) {
        fprintf(stderr, "cacheout-agent enroll: GET /api/v1/me did not answer a user\n");
        goto out;
    }
    if (!sell) {
        fprintf(stderr,
                "cacheout-agent enroll: the key of user '%s' has no sell scope (or is not an "
                "API key): an agent needs a sell key; nothing was written\n",
                user_id);
        goto out;
    }

    /* The agent's URL: wss:// for https, the WebSocket path of the URL given (or /ws/agent). */
    bool v6 = strchr(cfg.host, ':') != NULL;
    ws_url = co_xasprintf("%s://%s%s%s:%d%s", cfg.tls ? "wss" : "ws", v6 ? "[" : "", cfg.host,
                          v6 ? "]" : "", cfg.port, cfg.path);
    const char *keys[] = {"COORDINATOR_URL", "AGENT_KEY", "TLS_CA_FILE"};
    const char *values[] = {ws_url, key, ca};
    co_err rerr = CO_ERR_INIT;
    text = read_text(env_file, &rerr);
    if (!text && rerr.code) {
        fprintf(stderr, "cacheout-agent enroll: %s\n", rerr.msg);
        goto out;
    }
    updated = agent_enroll_env_update(text, keys, values, ca ? 3 : 2);
    if (write_env_file(env_file, updated, &err) != 0) {
        fprintf(stderr, "cacheout-agent enroll: %s\n", err.msg);
        goto out;
    }
    printf("enrolled: the coordinator at %s accepted the key of user '%s'\n"
           "wrote COORDINATOR_URL=%s and AGENT_KEY%s to %s\n"
           "start the agent: systemctl enable --now cacheout-agent\n",
           url, user_id, ws_url, ca ? ", TLS_CA_FILE" : "", env_file);
    rc = 0;
out:
    json_decref(me);
    free(text);
    free(updated);
    free(ws_url);
    co_buf_release(&r.body);
    agent_config_release(&cfg);
    return rc;
}
