/*
 * coord_agent_hello: an agent's hello (proto/PROTOCOL.md "Hello and welcome").  Its credential is
 * decided on the lws thread (the agent token, or a user key looked up with the hello's write);
 * the write (on the worker's lane) stores the worker, takes its session (a new epoch, coord_node),
 * and lists the worker's jobs in the store against those the agent says it still runs: a job the
 * agent lost goes back to the queue, an assignment it never answered is sent again, an attempt it
 * runs that is not current is cancelled.  Then the welcome, and the session replaces the older
 * sessions of its worker (a reconnect takes over their jobs).
 *
 * Thread: the lws service thread; hello_work() runs on a database thread.  Life cycle: one item
 * per hello, holding a reference on its session until hello_done() ran.
 */
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"
#include "coord_fault.h"
#include "coord_node.h"

struct hello_item {
    struct agent_sess *s;
    struct coord_worker w; /* w.owner_id: the credential's owner ("" until a key is looked up) */
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* a user key to look up first, else "" */
    char declared_owner[CO_ID_MAX + 1];    /* the hello's owner_id ("" when absent) */
    struct coord_principal principal;      /* result: the key's principal */
    struct proto_job_ref *running;         /* from the hello */
    size_t n_running;
    /* Results. */
    int rc;
    co_err err;
    int64_t epoch;            /* the session epoch this hello began (coord_node) */
    struct coord_job *active; /* assigned/running jobs of the worker in the store */
    size_t n_active;
    bool *released; /* per active job: the agent does not hold it, it went back to the queue */
    bool *resend;   /* per active job: assigned, never reported: job.assign again, same attempt */
    bool *zombie;   /* per running ref: not a current attempt of this worker, cancel it */
};

/*
 * The key of a hello (database thread): who it belongs to, and may it sell as @declared_owner?
 * CO_E_AUTH for an unknown or revoked key or a disabled user, CO_E_FORBIDDEN for a key without
 * the sell scope or an owner_id other than its user.
 */
static int
hello_key(struct coord_store *store, const char *key_hash, const char *declared_owner,
          struct coord_principal *p, co_err *err)
{
    struct coord_auth_entry e;
    int found = coord_auth_lookup(store, key_hash, &e, err);
    if (found < 0)
        return -1;
    if (found == 0)
        return co_err_set(err, CO_E_AUTH,
                          "key rejected: unknown, revoked, or its user is disabled");
    *p = e.p;
    if (!coord_auth_has_scope(p, COORD_SCOPE_SELL))
        return co_err_set(err, CO_E_FORBIDDEN, "key '%s' has no sell scope", p->key_id);
    if (declared_owner[0] && strcmp(declared_owner, p->user_id) != 0)
        return co_err_field(err, CO_E_FORBIDDEN, "owner_id",
                            "owner_id '%s' is not the key's user '%s'", declared_owner, p->user_id);
    return 0;
}

/*
 * An active job the agent did not list in its hello: if it is still `assigned` (the agent never
 * reported it started), the job.assign was lost and is sent again after the welcome on the same
 * attempt, without using one up.  Loads the job with its code into it->active[@i].  Returns 1 when
 * it is to be re-sent, 0 when not (the caller releases it), -1 with it->rc/err set when the store
 * failed (the hello is refused and retried).
 */
static int
hello_resend_assign(struct coord_store *store, struct hello_item *it, size_t i)
{
    struct coord_job *j = &it->active[i];
    if (j->status != COORD_JOB_ASSIGNED)
        return 0;
    struct coord_job full;
    co_err err = CO_ERR_INIT;
    if (coord_store_job_get(store, j->job_id, true, &full, &err) < 0) {
        if (err.code == CO_E_NOTFOUND)
            return 0;
        it->rc = -1;
        co_err_set(&it->err, err.code, "load job '%s': %s", j->job_id, err.msg);
        return -1;
    }
    if (full.status != COORD_JOB_ASSIGNED || full.attempts != j->attempts ||
        strcmp(full.assigned_worker, it->w.worker_id) != 0) {
        coord_job_release(&full);
        return 0;
    }
    coord_job_release(j);
    *j = full;
    it->resend[i] = true;
    return 1;
}

static void
hello_work(struct coord_store *store, void *arg)
{
    struct hello_item *it = arg;
    if (it->key_hash[0]) {
        it->rc = hello_key(store, it->key_hash, it->declared_owner, &it->principal, &it->err);
        if (it->rc < 0)
            return;
        co_strlcpy(it->w.owner_id, it->principal.user_id, sizeof(it->w.owner_id));
    }
    it->rc = coord_store_worker_upsert(store, &it->w, NULL, &it->err);
    if (it->rc < 0)
        return;
    /* The worker's session is this node's now: older ones (here or elsewhere) are fenced off. */
    it->rc = coord_store_worker_session_begin(store, it->w.worker_id, coord_node_id(), &it->epoch,
                                              &it->err);
    if (it->rc < 0)
        return;
    for (int st = COORD_JOB_ASSIGNED; st <= COORD_JOB_RUNNING; st++) {
        struct coord_job_filter f = {
            .status = st, .buyer_id = NULL, .worker_id = it->w.worker_id, .limit = 1000};
        struct coord_job_list l = {0};
        co_err err = CO_ERR_INIT;
        if (coord_store_job_list(store, &f, &l, &err) < 0) {
            /*
             * Refuse the hello (the agent retries it): welcomed without its jobs, the session
             * would take the agent's running attempts for strays and cancel them.
             */
            it->rc = -1;
            co_err_set(&it->err, err.code, "list the jobs of worker '%s': %s", it->w.worker_id,
                       err.msg);
            return;
        }
        it->active = co_xreallocarray(it->active, it->n_active + l.len + 1, sizeof(*it->active));
        for (size_t i = 0; i < l.len; i++)
            it->active[it->n_active++] = l.items[i];
        free(l.items); /* the rows moved into it->active */
    }
    it->released = co_xcalloc(it->n_active + 1, sizeof(bool));
    it->resend = co_xcalloc(it->n_active + 1, sizeof(bool));
    it->zombie = co_xcalloc(it->n_running + 1, sizeof(bool));
    for (size_t i = 0; i < it->n_active; i++) {
        struct coord_job *j = &it->active[i];
        bool held = false;
        for (size_t k = 0; k < it->n_running; k++) {
            if (strcmp(it->running[k].job_id, j->job_id) == 0 &&
                it->running[k].attempt == j->attempts)
                held = true;
        }
        if (held)
            continue;
        int r = hello_resend_assign(store, it, i);
        if (r < 0)
            return;
        if (r > 0)
            continue;
        /*
         * The agent does not run it (it never got it, or lost it, e.g. it was restarted): that
         * attempt is over.  The job goes back to the queue as attempt + 1 (or fails as
         * worker_lost past max_attempts), so that anything the lost attempt still reports is
         * fenced off and its output is not mixed with the next one's.
         */
        enum coord_job_status after;
        co_err err = CO_ERR_INIT;
        if (coord_store_job_release(store, j->job_id, it->w.worker_id, j->attempts, &after, &err) ==
            0) {
            it->released[i] = true;
            co_info("job released, its agent no longer holds it job=%s attempt=%d worker=%s "
                    "status=%s",
                    j->job_id, j->attempts, it->w.worker_id, coord_job_status_name(after));
        } else if (err.code == CO_E_CONFLICT || err.code == CO_E_NOTFOUND) {
            it->released[i] = true; /* it moved on meanwhile: not this worker's any more */
        } else {
            /* Refuse the hello: the agent retries it, and the release with it. */
            it->rc = -1;
            co_err_set(&it->err, err.code, "release job '%s': %s", j->job_id, err.msg);
            return;
        }
    }
    for (size_t k = 0; k < it->n_running; k++) {
        bool current = false;
        for (size_t i = 0; i < it->n_active; i++) {
            if (strcmp(it->running[k].job_id, it->active[i].job_id) == 0 &&
                it->running[k].attempt == it->active[i].attempts)
                current = true;
        }
        it->zombie[k] = !current;
    }
    coord_fault_hello_gap(it->w.worker_id); /* DEBUG_FAULTS: a window before the welcome */
}

static void
hello_undo(void *arg, const co_err *err)
{
    struct hello_item *it = arg;
    /* The welcome is not sent: the agent reconnects and says hello again. */
    it->rc = -1;
    it->err = *err;
}

static void
hello_item_free(struct hello_item *it)
{
    for (size_t i = 0; i < it->n_active; i++)
        coord_job_release(&it->active[i]);
    free(it->active);
    free(it->released);
    free(it->resend);
    free(it->zombie);
    free(it->running);
    free(it);
}

static void
sess_welcome(struct agent_sess *s)
{
    struct proto_msg m = {.type = PROTO_MSG_WELCOME};
    char now[CO_ISO_LEN];
    co_time_iso(co_wall_ms(), now);
    co_strlcpy(m.u.welcome.worker_id, s->worker_id, sizeof(m.u.welcome.worker_id));
    m.u.welcome.heartbeat_interval_ms = s->hub->heartbeat_ms;
    m.u.welcome.lease_timeout_ms = s->hub->lease_ms;
    m.u.welcome.server_time = now;
    coord_agent_send(s, &m);
}

/*
 * The hello of @s was decided: on success the older sessions of its worker are replaced (closed);
 * otherwise they go on (they were only kept from new assignments while it was checked).
 */
static void
hello_settle_older(struct agent_sess *s, bool accepted)
{
    struct coord_agents *hub = s->hub;
    bool checking = false;
    struct agent_ix_ent *first = agent_ix_first(&hub->workers, s->worker_id);
    for (struct agent_ix_ent *e = first; e; e = e->next) {
        struct agent_sess *o = e->s;
        if (o != s && o->wsi && o->state == AS_HELLO_DB && strcmp(e->key, s->worker_id) == 0)
            checking = true;
    }
    for (struct agent_ix_ent *e = first; e; e = e->next) {
        struct agent_sess *o = e->s;
        if (o == s || !o->wsi || o->state != AS_READY || strcmp(e->key, s->worker_id) != 0)
            continue;
        if (accepted) {
            co_info("agent reconnected, closing its previous session worker=%s", s->worker_id);
            agent_sess_close(o, LWS_CLOSE_STATUS_GOINGAWAY, "replaced by a new connection");
        } else if (!checking) {
            o->superseded = false;
            agent_hub_changed(hub, o);
        }
    }
    if (!accepted)
        agent_hub_kick(hub);
}

/* A credential of @s did not match: counted against its address (coord_limits). */
static void
sess_auth_failed(struct agent_sess *s)
{
    struct coord_limits *limits = agent_proto_of(s->hub)->limits;
    if (limits)
        coord_limits_auth_failed(limits, s->conn->peer, co_mono_ms());
}

/* Refuse a hello whose credential or worker id is not acceptable (CO_E_AUTH, CO_E_FORBIDDEN). */
static void
hello_refuse(struct agent_sess *s, const co_err *err)
{
    co_warn("agent refused worker=%s owner=%s error=\"%s\"", s->worker_id[0] ? s->worker_id : "-",
            s->owner_id[0] ? s->owner_id : "-", err->msg);
    s->conn->refused = true;
    if (err->code == CO_E_FORBIDDEN) {
        coord_agent_send_error(s, PROTO_ERR_FORBIDDEN, NULL, "%s", err->msg);
        agent_sess_close(s, PROTO_CLOSE_FORBIDDEN, "forbidden");
    } else {
        sess_auth_failed(s);
        coord_agent_send_error(s, PROTO_ERR_UNAUTHORIZED, NULL, "%s", err->msg);
        agent_sess_close(s, PROTO_CLOSE_KEY_REJECTED, "key rejected");
    }
}

static void
hello_done(void *arg)
{
    struct hello_item *it = arg;
    struct agent_sess *s = it->s;
    struct coord_agents *hub = s->hub;
    if (!agent_hub_complete(hub))
        goto out;
    if (!s->wsi || s->state != AS_HELLO_DB) {
        if (!hub->dead)
            hello_settle_older(s, false);
        goto out;
    }
    if (it->rc < 0) {
        hello_settle_older(s, false);
        if (it->err.code == CO_E_AUTH || it->err.code == CO_E_FORBIDDEN) {
            hello_refuse(s, &it->err);
            goto out;
        }
        co_warn("agent hello refused worker=%s error=\"%s\"", s->worker_id, it->err.msg);
        if (it->err.code == CO_E_LIMIT) {
            coord_agent_send_error(s, "max_workers", NULL, "%s", it->err.msg);
            agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "max_workers");
        } else {
            coord_agent_send_error(s, "unavailable", NULL, "%s", it->err.msg);
            agent_sess_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "unavailable");
        }
        goto out;
    }
    if (it->key_hash[0]) {
        s->conn->principal = it->principal;
        co_strlcpy(s->owner_id, it->principal.user_id, sizeof(s->owner_id));
    }
    hello_settle_older(s, true);
    s->session_epoch = it->epoch;
    s->state = AS_READY;
    agent_hub_changed(hub, s);
    while (s->n_jobs > 0)
        agent_sess_remove_job(s, s->jobs[s->n_jobs - 1].job_id);
    s->free_cores = s->cores;
    s->free_ram_mb = s->ram_mb;
    sess_welcome(s);
    size_t released = 0, zombies = 0;
    for (size_t i = 0; i < it->n_active; i++) {
        struct coord_job *j = &it->active[i];
        if (it->released[i]) {
            agent_hub_publish(hub, COORD_EVENT_JOB, j->job_id);
            released++;
            continue;
        }
        if (it->resend[i]) {
            /* Never reported by the agent: the assignment was lost; same attempt again. */
            agent_sess_add_job(s, j, j->attempts, AJ_ASSIGNED);
            if (agent_sess_send_assign(s, j) == 0) {
                hub->assigns_resent++;
                co_info("job.assign sent again job=%s attempt=%d worker=%s", j->job_id, j->attempts,
                        s->worker_id);
            }
            continue;
        }
        enum agent_job_state st = j->status == COORD_JOB_RUNNING ? AJ_RUNNING : AJ_ACCEPTED;
        agent_sess_add_job(s, j, j->attempts, st);
    }
    for (size_t k = 0; k < it->n_running; k++) {
        if (it->zombie[k]) {
            agent_sess_send_cancel(s, it->running[k].job_id, (int)it->running[k].attempt,
                                   "stale attempt");
            zombies++;
        }
    }
    if (hub->metrics && !s->conn->counted) {
        atomic_fetch_add(&hub->metrics->agents_connected, 1);
        s->conn->counted = true;
    }
    co_info("agent welcomed worker=%s owner=%s cores=%lld ram_mb=%lld jobs=%zu released=%zu "
            "cancelled=%zu",
            s->worker_id, s->owner_id, (long long)s->cores, (long long)s->ram_mb, s->n_jobs,
            released, zombies);
    /* Messages that arrived while the hello was being stored. */
    struct proto_msg *parked = s->conn->parked;
    size_t n_parked = s->conn->n_parked;
    s->conn->parked = NULL;
    s->conn->n_parked = 0;
    for (size_t i = 0; i < n_parked; i++) {
        if (s->wsi && s->state == AS_READY)
            coord_agent_handle(s, &parked[i]);
        proto_msg_release(&parked[i]);
    }
    free(parked);
    agent_hub_publish(hub, COORD_EVENT_WORKER, s->worker_id);
    agent_hub_kick(hub);
out:
    agent_sess_unref(s);
    hello_item_free(it);
}

/*
 * Decide the credential of a hello (lws thread): a user key (from the upgrade's Authorization
 * header, or a "co_" token in the hello) is looked up later with the hello's write; the shared
 * AGENT_TOKEN (header or hello token) stands for AGENT_TOKEN_OWNER whatever owner_id the agent
 * sends; no credential is refused unless OPEN_REGISTRATION (then the declared owner, as in the
 * original).  Fills s->conn->principal and s->owner_id (not for keys); -1 when the session was
 * refused.
 */
static int
sess_hello_credential(struct agent_sess *s, const struct proto_hello *h)
{
    const struct coord_config *cfg = s->hub->cfg;
    const char *want = cfg->agent_token, *got = h->token ? h->token : "";
    bool token_ok =
        want && want[0] && got[0] && co_consttime_eq(got, strlen(got), want, strlen(want));
    memset(&s->conn->principal, 0, sizeof(s->conn->principal));
    /* A key at the upgrade wins: the hello's token is then not looked at. */
    if (!s->conn->key_hash[0] && got[0] && !token_ok) {
        if (strncmp(got, COORD_KEY_PREFIX, strlen(COORD_KEY_PREFIX)) != 0) {
            co_warn("agent refused: wrong token worker=%s", h->worker_id);
            sess_auth_failed(s);
            coord_agent_send_error(s, PROTO_ERR_UNAUTHORIZED, NULL, "wrong agent token");
            agent_sess_close(s, PROTO_CLOSE_UNAUTHORIZED, "unauthorized");
            return -1;
        }
        coord_auth_hash(got, strlen(got), s->conn->key_hash);
    }
    if (s->conn->key_hash[0]) {
        s->conn->principal.cred = COORD_CRED_KEY;
        s->owner_id[0] = '\0'; /* the key's user, once looked up */
        return 0;
    }
    if (token_ok || s->conn->upgrade_agent_token) {
        s->conn->principal.cred = COORD_CRED_AGENT_TOKEN;
        s->conn->principal.scopes = COORD_SCOPE_SELL;
        co_strlcpy(s->conn->principal.user_id, cfg->agent_token_owner,
                   sizeof(s->conn->principal.user_id));
        co_strlcpy(s->owner_id, cfg->agent_token_owner, sizeof(s->owner_id));
        if (h->owner_id[0] && strcmp(h->owner_id, cfg->agent_token_owner) != 0)
            co_info("agent token: owner_id '%s' ignored, AGENT_TOKEN's agents belong to '%s' "
                    "worker=%s",
                    h->owner_id, cfg->agent_token_owner, h->worker_id);
        return 0;
    }
    if (cfg->open_registration) {
        s->conn->principal.cred = COORD_CRED_OPEN;
        co_strlcpy(s->owner_id, h->owner_id[0] ? h->owner_id : h->worker_id, sizeof(s->owner_id));
        co_strlcpy(s->conn->principal.user_id, s->owner_id, sizeof(s->conn->principal.user_id));
        return 0;
    }
    co_warn("agent refused: no credential worker=%s", h->worker_id);
    coord_agent_send_error(
        s, PROTO_ERR_UNAUTHORIZED, NULL,
        "a credential is required: Authorization: Bearer <sell key> or the agent token");
    agent_sess_close(s, PROTO_CLOSE_KEY_REJECTED, "key rejected");
    return -1;
}

void
coord_agent_on_hello(struct agent_sess *s, struct proto_msg *m)
{
    struct coord_agents *hub = s->hub;
    struct proto_hello *h = &m->u.hello;
    if (s->state != AS_AWAIT_HELLO) {
        coord_agent_send_error(s, "bad_message", NULL, "hello sent twice");
        agent_sess_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "hello sent twice");
        return;
    }
    if (sess_hello_credential(s, h) < 0)
        return;
    co_strlcpy(s->worker_id, h->worker_id, sizeof(s->worker_id));
    agent_hub_index_worker(hub, s);
    s->cores = h->cores;
    s->ram_mb = h->ram_mb;
    s->images = h->images;
    s->n_images = h->n_images;
    /* Placement terms until the scheduler reads the stored ones: the hello's, the prior's. */
    s->price.per_core_second = h->price_per_core_second;
    s->price.per_gb_second = h->price_per_gb_second;
    s->reputation = COORD_REPUTATION_PPM * 4 / 5;
    h->images = NULL;
    h->n_images = 0;
    /*
     * A second connection of the same worker replaces the first (likely a dead half-open one)
     * once its hello is accepted (hello_done): until then the first one gets no new jobs, and if
     * the hello is refused (another user's credential) the first one goes on.
     */
    for (struct agent_ix_ent *e = agent_ix_first(&hub->workers, s->worker_id); e; e = e->next) {
        if (e->s != s && e->s->wsi && strcmp(e->key, s->worker_id) == 0) {
            e->s->superseded = true;
            agent_hub_changed(hub, e->s);
        }
    }
    coord_fault_hello_arrived(s->worker_id); /* DEBUG_FAULTS: held claims go on */
    struct hello_item *it = co_xcalloc(1, sizeof(*it));
    it->s = s;
    co_strlcpy(it->w.worker_id, s->worker_id, sizeof(it->w.worker_id));
    co_strlcpy(it->w.owner_id, s->owner_id, sizeof(it->w.owner_id));
    co_strlcpy(it->key_hash, s->conn->key_hash, sizeof(it->key_hash));
    /* The field defaults to the worker id (proto_agent.c): that value says nothing. */
    if (strcmp(h->owner_id, h->worker_id) != 0)
        co_strlcpy(it->declared_owner, h->owner_id, sizeof(it->declared_owner));
    it->w.cpu_cores = s->cores;
    it->w.ram_mb = s->ram_mb;
    it->w.status = COORD_WORKER_IDLE;
    it->w.websocket = true;
    /* The seller's prices (AGENT_PRICE_PER_*), when the agent sends them. */
    it->w.has_price = h->has_price;
    it->w.price.per_core_second = h->price_per_core_second;
    it->w.price.per_gb_second = h->price_per_gb_second;
    it->running = h->running;
    it->n_running = h->n_running;
    h->running = NULL;
    h->n_running = 0;
    s->state = AS_HELLO_DB;
    agent_sess_ref(s);
    /* Through the write batch: ordered with this worker's other writes (e.g. a disconnect's). */
    agent_hub_write(hub, s->worker_id, hello_work, hello_undo, hello_done, it);
}
