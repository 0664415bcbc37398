/*
 * cli_api: JSON requests to the coordinator's REST API, and the messages `cacheout` prints for
 * its error answers (API.md's `{"error": {"code", "message", "field"}}`), one per status, each
 * saying what to do about it.
 */
#ifndef CLI_API_H
#define CLI_API_H

#include <jansson.h>

#include "cli_http.h"
#include "co_err.h"

/**
 * @method @path with the JSON @body (borrowed, NULL: none).  On a 2xx answer *out (if not
 * NULL) receives the decoded JSON (caller-owned; NULL for an empty answer such as 204).
 * Errors: a transport failure; an error answer (message from cli_api_error_message(),
 * err->code from the status); a 2xx answer that is not JSON.
 */
int cli_api_call(struct cli_http *h, const char *method, const char *path, const json_t *body,
                 json_t **out, co_err *err) __attribute__((warn_unused_result));

/**
 * Fill @err with the message for an error answer: @status, its payload @body (@len bytes, JSON
 * or not), @retry_after (seconds, -1 when absent).  The message names the HTTP status and the
 * API's code, the server's message, the field for 422, the wait for 429, and a hint.
 * err->field gets the field of a 422.  Returns -1.
 */
int cli_api_error_message(long status, const char *body, size_t len, long retry_after, co_err *err);

#endif
