/*
 * coord_agent_feed: what the agent sessions do about the change feed (coord_events): a job
 * changed elsewhere (a cancel, a poll status...) is read again and stopped on its agent if its
 * attempt is no longer current, and a scheduling pass is asked for; a revoked key or a disabled
 * user closes the sessions that may no longer sell; a worker changed by another node or by REST
 * ends its session here if that session was fenced off (a hello elsewhere, a poll worker's POST
 * /register).
 *
 * Thread: the lws service thread (the feed calls its subscribers there); the *_work functions run
 * on database threads.  Life cycle: subscribed when the protocol starts, unsubscribed when it
 * stops; each check is one item holding a reference on its session.
 */
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"
#include "coord_node.h"

/* ------------------------------------------------------------------------------------------ */
/* job events: cancellation                                                                   */

struct check_item {
    struct agent_sess *s;
    char job_id[CO_ID_MAX + 1];
    int attempt;
    int rc;
    struct coord_job job;
};

static void
check_work(struct coord_store *store, void *arg)
{
    struct check_item *it = arg;
    co_err err = CO_ERR_INIT;
    it->rc = coord_store_job_get(store, it->job_id, false, &it->job, &err);
}

static void
check_done(void *arg)
{
    struct check_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(s->hub) || !s->wsi)
        goto out;
    struct agent_job *j = agent_sess_find(s, it->job_id);
    if (!j || j->attempt != it->attempt || j->state == AJ_CANCELLING || j->state == AJ_CLAIMING)
        goto out;
    bool gone =
        it->rc == 0 &&
        (it->job.status == COORD_JOB_CANCELLED || it->job.status == COORD_JOB_COMPLETED ||
         it->job.status == COORD_JOB_FAILED || it->job.status == COORD_JOB_PENDING ||
         it->job.attempts != it->attempt || strcmp(it->job.assigned_worker, s->worker_id) != 0);
    if (gone) {
        j->state = AJ_CANCELLING;
        j->since_ms = co_mono_ms();
        agent_sess_send_cancel(s, it->job_id, it->attempt,
                               it->job.status == COORD_JOB_CANCELLED ? "cancelled"
                                                                     : "attempt no longer current");
    }
out:
    if (it->rc == 0)
        coord_job_release(&it->job);
    agent_sess_unref(s);
    free(it);
}

/* ------------------------------------------------------------------------------------------ */
/* key and user events: revocation and disabling                                              */

struct recheck_item {
    struct agent_sess *s;
    char key_hash[COORD_KEY_HASH_LEN + 1];
    int rc; /* 1 still usable for selling, 0 not, -1 the database could not tell */
    co_err err;
};

static void
recheck_work(struct coord_store *store, void *arg)
{
    struct recheck_item *it = arg;
    struct coord_auth_entry e;
    int found = coord_auth_lookup(store, it->key_hash, &e, &it->err);
    it->rc = found < 0 ? -1 : found > 0 && coord_auth_has_scope(&e.p, COORD_SCOPE_SELL);
}

static void
recheck_done(void *arg)
{
    struct recheck_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(s->hub) || !s->wsi)
        goto out;
    if (it->rc < 0) {
        co_warn("cannot check the key of worker=%s again error=\"%s\"", s->worker_id, it->err.msg);
    } else if (it->rc == 0) {
        co_warn("agent disconnected: its key was revoked or its user disabled worker=%s key=%s "
                "owner=%s",
                s->worker_id, s->conn->principal.key_id, s->conn->principal.user_id);
        coord_agent_send_error(s, PROTO_ERR_UNAUTHORIZED, NULL, "key revoked or user disabled");
        agent_sess_close(s, PROTO_CLOSE_KEY_REJECTED, "key rejected");
    }
out:
    agent_sess_unref(s);
    free(it);
}

/*
 * A key was revoked (@id is its key_id) or a user changed (@id is its user_id): look the key of
 * each session it concerns up again, and close those that may no longer sell.
 */
static void
hub_recheck_keys(struct coord_agents *hub, enum coord_event_kind kind, const char *id)
{
    for (size_t i = 0; i < hub->n_sess; i++) {
        struct agent_sess *s = hub->sess[i];
        if (!s->wsi || s->conn->principal.cred != COORD_CRED_KEY || !s->conn->key_hash[0] ||
            s->state == AS_CLOSING)
            continue;
        /* A hello still being checked has no key_id yet: it is checked against the store now. */
        bool hit = kind == COORD_EVENT_KEY ? strcmp(s->conn->principal.key_id, id) == 0
                                           : strcmp(s->conn->principal.user_id, id) == 0;
        if (!hit && s->state != AS_HELLO_DB)
            continue;
        struct recheck_item *it = co_xcalloc(1, sizeof(*it));
        it->s = s;
        co_strlcpy(it->key_hash, s->conn->key_hash, sizeof(it->key_hash));
        agent_sess_ref(s);
        if (agent_hub_submit(hub, COORD_DB_READ, recheck_work, recheck_done, it) < 0) {
            agent_sess_unref(s);
            free(it);
        }
    }
}

/* Another node changed a worker that has a session here: is this session still the current? */
struct moved_item {
    struct agent_sess *s;
    char worker_id[CO_ID_MAX + 1];
    int64_t epoch;
    int rc;
    co_err err;
};

static void
moved_work(struct coord_store *store, void *arg)
{
    struct moved_item *it = arg;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
}

static void
moved_done(void *arg)
{
    struct moved_item *it = arg;
    if (agent_hub_complete(it->s->hub) && it->rc < 0 && coord_node_fenced(&it->err))
        agent_sess_moved(it->s, &it->err);
    agent_sess_unref(it->s);
    free(it);
}

static void
hub_check_moved(struct coord_agents *hub, const char *worker_id)
{
    struct agent_sess *s = agent_hub_find_worker(hub, worker_id, NULL);
    if (!s || s->state != AS_READY || s->session_epoch <= 0)
        return;
    struct moved_item *it = co_xcalloc(1, sizeof(*it));
    it->s = s;
    agent_sess_ref(s);
    co_strlcpy(it->worker_id, worker_id, sizeof(it->worker_id));
    it->epoch = s->session_epoch;
    if (agent_hub_submit(hub, COORD_DB_READ, moved_work, moved_done, it) < 0) {
        agent_sess_unref(s);
        free(it);
    }
}

/*
 * Another module changed a job (submit, cancel, poll status...): schedule, and stop it here.  A
 * key or a user changed: close the sessions that may no longer sell.
 */
void
coord_agent_on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq)
{
    (void)seq;
    struct coord_agents *hub = ud;
    if (hub->dead)
        return;
    if (kind == COORD_EVENT_KEY || kind == COORD_EVENT_USER) {
        hub_recheck_keys(hub, kind, id);
        return;
    }
    if (kind == COORD_EVENT_WORKER && (coord_events_remote(hub->events) || !hub->self_publish)) {
        /* A hello on another node, or a POST /register (a REST change), ends the session here. */
        hub_check_moved(hub, id);
        return;
    }
    if (hub->self_publish || kind != COORD_EVENT_JOB)
        return;
    agent_hub_kick(hub);
    for (struct agent_ix_ent *e = agent_ix_first(&hub->jobs, id); e; e = e->next) {
        if (strcmp(e->key, id) != 0)
            continue;
        struct agent_sess *s = e->s;
        struct agent_job *j = agent_sess_find(s, id);
        if (!j || j->state == AJ_CLAIMING || j->state == AJ_CANCELLING || j->finishing)
            continue;
        struct check_item *it = co_xcalloc(1, sizeof(*it));
        it->s = s;
        agent_sess_ref(s);
        co_strlcpy(it->job_id, id, sizeof(it->job_id));
        it->attempt = j->attempt;
        if (agent_hub_submit(hub, COORD_DB_READ, check_work, check_done, it) < 0) {
            agent_sess_unref(s);
            free(it);
        }
    }
}
