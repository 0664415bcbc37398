/*
 * coord_req: a REST request and its answer (see coord_req.h).  Pure functions on a request the
 * calling thread owns; nothing here knows the HTTP connection.
 */
#include "coord_req.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_jsonw.h"
#include "co_log.h"

void
coord_req_init(struct coord_req *r, const struct coord_config *cfg)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->content_length = -1;
    r->dispatch_wait_ms = -1;
    r->content_type = "application/json";
    co_buf_init(&r->body);
    co_buf_init(&r->resp);
}

void
coord_req_release(struct coord_req *r)
{
    if (!r)
        return;
    co_buf_release(&r->body);
    co_buf_release(&r->resp);
}

const char *
coord_req_method_name(enum coord_method m)
{
    switch (m) {
    case COORD_M_GET:
        return "GET";
    case COORD_M_POST:
        return "POST";
    case COORD_M_OPTIONS:
        return "OPTIONS";
    case COORD_M_PUT:
        return "PUT";
    case COORD_M_PATCH:
        return "PATCH";
    case COORD_M_DELETE:
        return "DELETE";
    case COORD_M_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

void
coord_req_error(struct coord_req *r, int status, const char *code, const char *field,
                const char *fmt, ...)
{
    char msg[CO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct co_jsonw w;
    co_buf_reset(&r->resp);
    co_jsonw_init(&w, &r->resp);
    co_jsonw_obj_begin(&w);
    co_jsonw_key(&w, "error");
    co_jsonw_obj_begin(&w);
    co_jsonw_kstr(&w, "code", code);
    co_jsonw_kstr(&w, "message", msg);
    if (field && *field)
        co_jsonw_kstr(&w, "field", field);
    co_jsonw_obj_end(&w);
    co_jsonw_obj_end(&w);
    r->status = status;
    r->content_type = "application/json";
}

void
coord_req_fail(struct coord_req *r, const co_err *err)
{
    switch (err->code) {
    case CO_E_NOTFOUND:
        coord_req_error(r, 404, "not_found", err->field, "%s", err->msg);
        break;
    case CO_E_CONFLICT:
        coord_req_error(r, 409, "conflict", err->field, "%s", err->msg);
        break;
    case CO_E_LIMIT:
        coord_req_error(r, 409, "conflict", err->field, "%s", err->msg);
        break;
    case CO_E_FUNDS:
        coord_req_error(r, 402, "insufficient_credits", err->field, "%s", err->msg);
        break;
    case CO_E_UNAVAILABLE:
        r->db_down = true;
        coord_req_error(r, 503, "unavailable", NULL, "%s", err->msg);
        break;
    case CO_E_INVAL:
    case CO_E_RANGE:
        coord_req_error(r, 422, "invalid_field", err->field, "%s", err->msg);
        break;
    case CO_E_TOOLARGE:
        coord_req_error(r, 413, "too_large", err->field, "%s", err->msg);
        break;
    case CO_E_AUTH:
        coord_req_error(r, 401, "unauthorized", NULL, "%s", err->msg);
        break;
    case CO_E_FORBIDDEN:
        coord_req_error(r, 403, "forbidden", err->field, "%s", err->msg);
        break;
    default:
        co_error("request failed path=%s error=\"%s\"", r->path, err->msg);
        coord_req_error(r, 500, "internal", NULL, "internal error");
        break;
    }
}

void
coord_req_discarded(struct coord_req *r, const co_err *err)
{
    r->n_changes = 0;
    r->wrote_state = false;
    r->idem_replayed = false;
    r->dispatch_wait_ms = -1;
    r->retry_after = 0;
    r->disposition[0] = '\0';
    coord_req_fail(r, err);
}

void
coord_req_changed(struct coord_req *r, enum coord_event_kind kind, const char *id)
{
    if (r->n_changes >= COORD_MAX_CHANGES || !id || !*id)
        return;
    for (int i = 0; i < r->n_changes; i++) {
        if (r->change_kind[i] == kind && strcmp(r->change_id[i], id) == 0)
            return;
    }
    r->change_kind[r->n_changes] = kind;
    co_strlcpy(r->change_id[r->n_changes], id, sizeof(r->change_id[0]));
    r->n_changes++;
}
