/*
 * cli_http: the HTTP transport of `cacheout` (libcurl): one reused connection to the
 * coordinator, the credential header on every request, TLS verified against the system store
 * or the configured CA file (never switched off), no redirects followed (a redirect could carry
 * the credential elsewhere).
 */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "cli_config.h"
#include "co_buf.h"
#include "co_err.h"

struct cli_http;

/* One answer.  body holds the payload (JSON or an error), except what a sink took. */
struct cli_resp {
    long status;      /* HTTP status, 0 before an answer */
    long retry_after; /* Retry-After in seconds, -1 when absent */
    struct co_buf body;
};

/**
 * Receives the payload of a 2xx answer of cli_http_get_to() in pieces; returns 0, or -1 to
 * abort the transfer (then its own error is reported by the caller).
 */
typedef int (*cli_http_sink)(void *ud, const void *data, size_t len);

/**
 * A client for @cfg (borrowed: it must outlive the client).  Errors: libcurl cannot start.
 * Free with cli_http_free().
 */
struct cli_http *cli_http_new(const struct cli_config *cfg, co_err *err);
void cli_http_free(struct cli_http *h);

/**
 * @method (GET, POST, DELETE) @path (under /api/v1, e.g. "/jobs?limit=5", already escaped)
 * with an optional JSON @body (NULL: none; POST always sends Content-Length).  Fills @resp
 * (caller-owned; release its body with cli_resp_release()).  Errors: the request could not be
 * made or got no answer (connection refused, TLS verification failed, ...); an HTTP error
 * status is an answer, not an error.
 */
int cli_http_request(struct cli_http *h, const char *method, const char *path, const char *body,
                     struct cli_resp *resp, co_err *err) __attribute__((warn_unused_result));

/**
 * GET @path; the payload of a 2xx answer goes to @sink instead of resp->body (other answers'
 * payload to resp->body, for the error).  Errors as cli_http_request(), plus a sink failure.
 */
int cli_http_get_to(struct cli_http *h, const char *path, cli_http_sink sink, void *ud,
                    struct cli_resp *resp, co_err *err) __attribute__((warn_unused_result));

/** Escape @s for one URL path segment or query value; caller-owned. */
char *cli_http_escape(struct cli_http *h, const char *s);

void cli_resp_release(struct cli_resp *r);

#endif
