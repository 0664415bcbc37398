/* cli_http: libcurl transport of `cacheout` (see cli_http.h). */
#include "cli_http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "co_alloc.h"

/* An answer larger than this (JSON, an error) is refused; artifacts go to a sink, uncapped. */
#define BODY_MAX (256L * 1024 * 1024)

struct cli_http {
    CURL *curl;
    const struct cli_config *cfg;
    char errbuf[CURL_ERROR_SIZE];
};

/* State of one transfer, seen by the callbacks. */
struct xfer {
    struct cli_http *h;
    struct cli_resp *resp;
    cli_http_sink sink; /* NULL: everything to resp->body */
    void *ud;
    bool sink_failed;
    bool too_large;
};

void
cli_resp_release(struct cli_resp *r)
{
    co_buf_release(&r->body);
}

struct cli_http *
cli_http_new(const struct cli_config *cfg, co_err *err)
{
    static bool inited;

    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            co_err_set(err, CO_E_INTERNAL, "cannot initialise libcurl");
            return NULL;
        }
        inited = true;
    }
    struct cli_http *h = co_xcalloc(1, sizeof(*h));
    h->cfg = cfg;
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        free(h);
        co_err_set(err, CO_E_INTERNAL, "cannot initialise libcurl");
        return NULL;
    }
    return h;
}

void
cli_http_free(struct cli_http *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

char *
cli_http_escape(struct cli_http *h, const char *s)
{
    char *e = curl_easy_escape(h->curl, s, 0);
    char *out = co_xstrdup(e ? e : "");
    curl_free(e);
    return out;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    long code = 0;

    curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &code);
    if (x->sink != NULL && code >= 200 && code < 300) {
        if (x->sink(x->ud, data, n) < 0) {
            x->sink_failed = true;
            return 0;
        }
        return n;
    }
    if (x->resp->body.len + n > BODY_MAX) {
        x->too_large = true;
        return 0;
    }
    co_buf_append(&x->resp->body, data, n);
    return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";

    /* A new status line (after a 100 Continue, say) starts a new head. */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
        x->resp->retry_after = -1;
    if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char v[32] = "";
        size_t vn = n - (sizeof(name) - 1);
        memcpy(v, data + sizeof(name) - 1, vn < sizeof(v) - 1 ? vn : sizeof(v) - 1);
        char *end = NULL;
        long secs = strtol(v, &end, 10);
        if (end != v && secs >= 0)
            x->resp->retry_after = secs;
    }
    return n;
}

static int
perform(struct cli_http *h, const char *method, const char *path, const char *body, struct xfer *x,
        co_err *err)
{
    CURL *c = h->curl;
    struct curl_slist *hdrs = NULL;
    co_autofree char *url = co_xasprintf("%s/api/v1%s", h->cfg->url, path);
    co_autofree char *auth = NULL;
    CURLcode rc;

    x->resp->status = 0;
    x->resp->retry_after = -1;
    co_buf_reset(&x->resp->body);
    curl_easy_reset(c);
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
    /* A stalled transfer (under 1 byte/s for 60 s) fails; a long download does not. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->cfg->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->cfg->ca_file);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "cacheout/" CLI_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);

    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (h->cfg->token != NULL)
        auth = co_xasprintf("Authorization: Bearer %s", h->cfg->token);
    else if (h->cfg->admin_token != NULL)
        auth = co_xasprintf("X-Admin-Token: %s", h->cfg->admin_token);
    if (auth != NULL)
        hdrs = curl_slist_append(hdrs, auth);
    if (strcmp(method, "POST") == 0) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->resp->status);
    /* The header list holds the credential: wipe it before freeing. */
    if (auth != NULL)
        explicit_bzero(auth, strlen(auth));
    curl_slist_free_all(hdrs);
    if (x->too_large)
        return co_err_set(err, CO_E_TOOLARGE, "%s %s: the answer is over %ld bytes", method, url,
                          BODY_MAX);
    if (x->sink_failed)
        return co_err_set(err, CO_E_SYS, "%s %s: cannot store the download", method, url);
    if (rc != CURLE_OK)
        return co_err_set(err, CO_E_UNAVAILABLE, "%s %s: %s", method, url,
                          h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
    return 0;
}

int
cli_http_request(struct cli_http *h, const char *method, const char *path, const char *body,
                 struct cli_resp *resp, co_err *err)
{
    struct xfer x = {.h = h, .resp = resp};
    return perform(h, method, path, body, &x, err);
}

int
cli_http_get_to(struct cli_http *h, const char *path, cli_http_sink sink, void *ud,
                struct cli_resp *resp, co_err *err)
{
    struct xfer x = {.h = h, .resp = resp, .sink = sink, .ud = ud};
    return perform(h, "GET", path, NULL, &x, err);
}
