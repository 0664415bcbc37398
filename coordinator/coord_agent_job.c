/*
 * coord_agent_job: the job messages of the agent protocol (proto/PROTOCOL.md "Jobs"): job.assign
 * and job.cancel out (the hub's send hooks); job.accepted, job.rejected, job.started and
 * job.finished in, each fenced by (job, attempt) against the session's entry and, in the store, by
 * the worker's session epoch (coord_node); job.ack once a result's transaction committed.  A
 * result that cannot be stored while the database is down is kept and retried (0.5 s doubling to
 * 5 s); platform-side failures count towards quarantine (coord_reconcile.h).
 *
 * Thread: the lws service thread; the *_work functions run on database threads.  Life cycle: one
 * struct job_item per message written, on the job's write lane, holding a reference on its
 * session until its completion ran (a retried result: until it is stored or the hub is dead).
 */
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_agent_int.h"
#include "coord_node.h"
#include "coord_reconcile.h"
#include "proto_job.h"

/* ------------------------------------------------------------------------------------------ */
/* job items: one write of a job message on its job's lane                                    */

struct job_item *
coord_agent_item_new(struct agent_sess *s, const struct proto_job_ref *ref)
{
    struct job_item *it = co_xcalloc(1, sizeof(*it));
    it->s = s;
    agent_sess_ref(s);
    co_strlcpy(it->job_id, ref->job_id, sizeof(it->job_id));
    co_strlcpy(it->worker_id, s->worker_id, sizeof(it->worker_id));
    co_strlcpy(it->owner_id, s->owner_id, sizeof(it->owner_id));
    it->attempt = (int)ref->attempt;
    it->epoch = s->session_epoch;
    it->max_bytes = s->hub->cfg->max_artifact_bytes;
    return it;
}

void
coord_agent_item_free(struct job_item *it)
{
    agent_sess_unref(it->s);
    free(it->data);
    free(it->path);
    free(it->notes);
    free(it);
}

/* started, output, finished: their batch was not committed (finished is then retried). */
static void
job_item_undo(void *arg, const co_err *err)
{
    struct job_item *it = arg;
    it->rc = -1;
    it->err = *err;
    it->changed = false;
}

void
coord_agent_item_submit(struct job_item *it, coord_db_work_fn work, coord_db_done_fn done)
{
    agent_hub_write(it->s->hub, it->job_id, work, job_item_undo, done, it);
}

/*
 * started, output, the artifact summary: not stored because the database was unavailable (run
 * again, in order).
 */
static bool
job_item_again(void *arg)
{
    struct job_item *it = arg;
    return it->rc < 0 && it->err.code == CO_E_UNAVAILABLE;
}

/* A write that waits out a database outage on the job's lane (agent_hub_write_kept). */
void
coord_agent_item_submit_kept(struct job_item *it, coord_db_work_fn work, coord_db_done_fn done)
{
    agent_hub_write_kept(it->s->hub, it->job_id, work, job_item_undo, done, job_item_again, it);
}

/* ------------------------------------------------------------------------------------------ */
/* job.assign, job.cancel, job.ack                                                            */

int
coord_agent_send_assign(struct agent_sess *s, const struct coord_job *job)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN};
    struct proto_job_assign *a = &m.u.assign;
    co_autofree char *code_file = NULL;
    co_strlcpy(a->job.job_id, job->job_id, sizeof(a->job.job_id));
    a->job.attempt = job->attempts;
    a->title = job->title;
    a->command = job->command;
    a->code = job->code ? job->code : "";
    if (job->code_file && job->code_file[0]) {
        a->code_file = job->code_file;
    } else {
        char **argv = NULL;
        size_t argc = 0;
        co_err err = CO_ERR_INIT;
        if (proto_argv_split(job->command, &argv, &argc, &err) == 0) {
            code_file = co_xstrdup(proto_argv_code_path(argv, argc));
            proto_argv_free(argv);
        } else {
            code_file = co_xstrdup(PROTO_CODE_PATH_DEFAULT);
        }
        a->code_file = code_file;
    }
    a->parameters = job->parameters && job->parameters[0] ? job->parameters : "{}";
    co_strlcpy(a->image, job->image && job->image[0] ? job->image : PROTO_IMAGE_DEFAULT,
               sizeof(a->image));
    a->required_cores = job->required_cores;
    a->required_ram_mb = job->required_ram_mb;
    a->timeout_seconds = job->timeout_seconds;
    a->files = job->files;
    size_t len = 0;
    co_autofree char *text = proto_msg_encode(&m, &len);
    if (!text) {
        co_error("job.assign cannot be encoded job=%s worker=%s", job->job_id, s->worker_id);
        return -1;
    }
    coord_agent_queue_text(s, text, len);
    co_debug("job assigned job=%s attempt=%d worker=%s", job->job_id, job->attempts, s->worker_id);
    return 0;
}

void
coord_agent_send_cancel(struct agent_sess *s, const char *job_id, int attempt, const char *reason)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_CANCEL};
    co_strlcpy(m.u.cancel.job.job_id, job_id, sizeof(m.u.cancel.job.job_id));
    m.u.cancel.job.attempt = attempt;
    m.u.cancel.reason = (char *)reason;
    coord_agent_send(s, &m);
    co_info("job.cancel sent job=%s attempt=%d worker=%s reason=%s", job_id, attempt, s->worker_id,
            reason);
}

/*
 * job.ack: the result of (@job_id, @attempt) is stored, or was a duplicate or stale: the agent
 * may forget it (PROTOCOL.md "Results are kept until acknowledged").  Sent only after the
 * result's transaction committed.
 */
static void
sess_send_result_ack(struct agent_sess *s, const char *job_id, int attempt)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_ACK};
    co_strlcpy(m.u.ack.job.job_id, job_id, sizeof(m.u.ack.job.job_id));
    m.u.ack.job.attempt = attempt;
    coord_agent_send(s, &m);
}

/* ------------------------------------------------------------------------------------------ */
/* job.started                                                                                */

static void
started_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
    if (it->rc == 0)
        it->rc = coord_store_job_started(store, it->job_id, it->worker_id, it->attempt, &it->err);
}

static void
started_done(void *arg)
{
    struct job_item *it = arg;
    struct agent_sess *s = it->s;
    if (!agent_hub_complete(s->hub))
        goto out;
    if (it->rc == 0) {
        agent_hub_publish(s->hub, COORD_EVENT_JOB, it->job_id);
    } else if (coord_node_fenced(&it->err)) {
        agent_sess_moved(s, &it->err);
    } else if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND) {
        /* A stale attempt (or a job cancelled meanwhile): stop it on the agent. */
        co_debug("job.started ignored job=%s attempt=%d worker=%s: %s", it->job_id, it->attempt,
                 it->worker_id, it->err.msg);
        s->hub->stale_dropped++;
        struct agent_job *j = agent_sess_find(s, it->job_id);
        if (s->wsi && j && j->attempt == it->attempt && j->state != AJ_CANCELLING) {
            j->state = AJ_CANCELLING;
            j->since_ms = co_mono_ms();
            agent_sess_send_cancel(s, it->job_id, it->attempt, "cancelled");
        }
    } else {
        co_warn("cannot store job.started job=%s error=\"%s\"", it->job_id, it->err.msg);
    }
out:
    coord_agent_item_free(it);
}

/* ------------------------------------------------------------------------------------------ */
/* job.finished, job.rejected                                                                 */

static void finish_submit(struct job_item *it);

static void
finish_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    it->changed = false;
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
    if (it->rc < 0)
        return;
    if (it->res.platform_fault && it->attempt < COORD_PLATFORM_ATTEMPTS_MAX) {
        /* Not the buyer's fault: the job goes back to the queue, the attempt is given back. */
        it->rc =
            coord_store_job_requeue_free(store, it->job_id, it->worker_id, it->attempt, &it->err);
        /* It counts against the seller's reputation (best effort: the requeue stands). */
        co_err oerr = CO_ERR_INIT;
        if (it->rc == 0 && coord_store_outcome_record(store, it->worker_id, it->job_id,
                                                      COORD_OUTCOME_REJECTED, &oerr) < 0)
            co_warn("cannot record a rejection worker=%s error=\"%s\"", it->worker_id, oerr.msg);
        it->changed = it->rc == 0;
        it->requeued = it->changed;
        return;
    }
    it->rc = coord_store_job_finish(store, it->job_id, it->worker_id, it->attempt, &it->res,
                                    &it->changed, &it->err);
}

/* Count a stored end towards the worker's streak of platform-side failures (quarantine). */
static void
agent_quarantine_note(struct agent_sess *s, const struct job_item *it)
{
    if (it->res.status == COORD_JOB_CANCELLED)
        return;
    bool fault = it->res.platform_fault;
    if (coord_quarantine_record(it->worker_id, fault, coord_failure_name(it->res.failure),
                                s->hub->cfg->quarantine_seconds * 1000))
        co_warn("worker quarantined after %d consecutive platform-side failures worker=%s "
                "seconds=%lld",
                COORD_QUARANTINE_FAILURES, it->worker_id,
                (long long)s->hub->cfg->quarantine_seconds);
}

static void
finish_retry_cb(lws_sorted_usec_list_t *sul)
{
    struct job_item *it = lws_container_of(sul, struct job_item, retry);
    /* The timer held the hub (agent_hub_hold). */
    if (!agent_hub_complete(it->s->hub)) {
        coord_agent_item_free(it);
        return;
    }
    finish_submit(it);
}

static void
finish_done(void *arg)
{
    struct job_item *it = arg;
    struct agent_sess *s = it->s;
    struct coord_agents *hub = s->hub;
    if (!agent_hub_complete(hub)) {
        coord_agent_item_free(it);
        return;
    }
    if (it->rc < 0 && it->err.code == CO_E_UNAVAILABLE) {
        /*
         * The database is down: keep the result and try again until it is back (it is money,
         * and the agent forgets a result once it was delivered).  Back off up to 5 s.
         */
        int64_t delay = (int64_t)AGENT_FINISH_RETRY_US << (it->retries < 4 ? it->retries : 4);
        if (delay > 5 * LWS_US_PER_SEC)
            delay = 5 * LWS_US_PER_SEC;
        if (it->retries++ % 10 == 0)
            co_warn("cannot store job result, retrying job=%s attempt=%d error=\"%s\"", it->job_id,
                    it->attempt, it->err.msg);
        agent_hub_hold(hub);
        lws_sul_schedule(hub->ctx, 0, &it->retry, finish_retry_cb, (lws_usec_t)delay);
        return;
    }
    if (coord_node_fenced(&it->err)) {
        /* Not acknowledged: the agent sends it again on its current session. */
        agent_sess_moved(s, &it->err);
        coord_agent_item_free(it);
        return;
    }
    struct agent_job *j = agent_sess_find(s, it->job_id);
    if (j && j->attempt == it->attempt)
        agent_sess_remove_job(s, it->job_id);
    /* Stored (committed), or refused for good (stale, unknown): the agent may forget it. */
    if (it->rc == 0 || it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND)
        sess_send_result_ack(s, it->job_id, it->attempt);
    if (it->rc == 0 && it->changed)
        agent_quarantine_note(s, it);
    if (it->rc == 0) {
        if (it->changed && it->requeued) {
            co_debug("job requeued after a platform fault job=%s attempt=%d worker=%s", it->job_id,
                     it->attempt, it->worker_id);
            agent_hub_publish(hub, COORD_EVENT_JOB, it->job_id);
        } else if (it->changed) {
            co_debug("job finished job=%s attempt=%d worker=%s status=%s", it->job_id, it->attempt,
                     it->worker_id, coord_job_status_name(it->res.status));
            agent_hub_publish(hub, COORD_EVENT_JOB, it->job_id);
            agent_hub_publish(hub, COORD_EVENT_CREDITS, it->buyer_id);
            if (it->owner_id[0] && strcmp(it->owner_id, it->buyer_id) != 0)
                agent_hub_publish(hub, COORD_EVENT_CREDITS, it->owner_id);
        }
    } else if (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND) {
        co_debug("job.finished ignored job=%s attempt=%d worker=%s: %s", it->job_id, it->attempt,
                 it->worker_id, it->err.msg);
        hub->stale_dropped++;
    } else {
        co_error("cannot store job result job=%s attempt=%d code=%s error=\"%s\"", it->job_id,
                 it->attempt, co_err_code_name(it->err.code), it->err.msg);
    }
    agent_hub_kick(hub);
    coord_agent_item_free(it);
}

static void
finish_submit(struct job_item *it)
{
    coord_agent_item_submit(it, finish_work, finish_done);
}

/* A job.finished of a stale or settled attempt: acknowledged once the lane reaches it. */
static void
lane_noop_work(struct coord_store *store, void *arg)
{
    (void)store;
    ((struct job_item *)arg)->rc = 0;
}

static void
lane_ack_done(void *arg)
{
    struct job_item *it = arg;
    if (agent_hub_complete(it->s->hub))
        sess_send_result_ack(it->s, it->job_id, it->attempt);
    coord_agent_item_free(it);
}

/* Map the sandbox outcome of job.finished to the job's final state. */
static void
result_of(const struct proto_job_finished *f, struct coord_job_result *r)
{
    memset(r, 0, sizeof(*r));
    r->status = COORD_JOB_FAILED;
    r->has_exit_code = f->has_exit_code;
    r->exit_code = f->exit_code;
    r->has_usage = true;
    r->usage.wall_ms = f->wall_ms;
    r->usage.cpu_ms = f->cpu_ms;
    r->usage.max_rss_kb = f->max_rss_kb > f->memory_peak_kb ? f->max_rss_kb : f->memory_peak_kb;
    switch (f->status) {
    case PROTO_RUN_OK:
        if (!f->has_exit_code || f->exit_code == 0) {
            r->status = COORD_JOB_COMPLETED;
            r->failure = COORD_FAIL_NONE;
        } else {
            r->failure = COORD_FAIL_EXIT_CODE;
        }
        break;
    case PROTO_RUN_RUNTIME_ERROR:
        r->failure = COORD_FAIL_EXIT_CODE;
        break;
    case PROTO_RUN_SIGNALED:
    case PROTO_RUN_SECCOMP:
    case PROTO_RUN_OUTPUT_LIMIT:
        r->failure = COORD_FAIL_KILLED;
        break;
    case PROTO_RUN_TIMEOUT:
    case PROTO_RUN_CPU_TIMEOUT:
        r->failure = COORD_FAIL_TIMEOUT;
        break;
    case PROTO_RUN_OOM:
        r->failure = COORD_FAIL_OOM;
        break;
    case PROTO_RUN_INTERNAL_ERROR:
        r->failure = COORD_FAIL_SANDBOX_ERROR;
        r->platform_fault = true;
        break;
    case PROTO_RUN_CANCELLED:
        r->status = COORD_JOB_CANCELLED;
        r->failure = COORD_FAIL_CANCELLED;
        break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the job messages of a ready session                                                        */

/* The entry of a job message if it is for the current attempt this session holds, else NULL. */
struct agent_job *
coord_agent_current(struct agent_sess *s, const struct proto_job_ref *ref, const char *what)
{
    struct agent_job *j = agent_sess_find(s, ref->job_id);
    if (j && j->attempt == ref->attempt && j->state != AJ_CLAIMING)
        return j;
    co_debug("%s of a stale or unknown attempt ignored job=%s attempt=%lld worker=%s", what,
             ref->job_id, (long long)ref->attempt, s->worker_id);
    s->hub->stale_dropped++;
    return NULL;
}

void
coord_agent_on_job(struct agent_sess *s, struct proto_msg *m)
{
    struct agent_job *j;
    struct job_item *it;
    switch (m->type) {
    case PROTO_MSG_JOB_ACCEPTED:
        j = coord_agent_current(s, &m->u.ack.job, "job.accepted");
        if (j && j->state == AJ_ASSIGNED)
            j->state = AJ_ACCEPTED;
        return;
    case PROTO_MSG_JOB_REJECTED:
        j = coord_agent_current(s, &m->u.ack.job, "job.rejected");
        if (!j || j->finishing)
            return;
        co_warn("job rejected by agent job=%s attempt=%d worker=%s reason=\"%s\"", j->job_id,
                j->attempt, s->worker_id, m->u.ack.reason ? m->u.ack.reason : "");
        j->finishing = true;
        it = coord_agent_item_new(s, &m->u.ack.job);
        co_strlcpy(it->buyer_id, j->buyer_id, sizeof(it->buyer_id));
        it->res.status = COORD_JOB_FAILED;
        it->res.failure = COORD_FAIL_SANDBOX_ERROR;
        it->res.platform_fault = true;
        finish_submit(it);
        return;
    case PROTO_MSG_JOB_STARTED:
        j = agent_sess_find(s, m->u.started.job.job_id);
        if (!j || j->attempt != m->u.started.job.attempt || j->state == AJ_CLAIMING) {
            /* The agent runs an attempt that is not current: stop it. */
            s->hub->stale_dropped++;
            agent_sess_send_cancel(s, m->u.started.job.job_id, (int)m->u.started.job.attempt,
                                   "stale attempt");
            return;
        }
        if (j->state == AJ_CANCELLING)
            return;
        j->state = AJ_RUNNING;
        j->since_ms = co_mono_ms();
        it = coord_agent_item_new(s, &m->u.started.job);
        coord_agent_item_submit_kept(it, started_work, started_done);
        return;
    case PROTO_MSG_JOB_OUTPUT:
        coord_agent_on_output(s, m);
        return;
    case PROTO_MSG_JOB_ARTIFACT:
    case PROTO_MSG_JOB_ARTIFACTS:
        coord_agent_on_artifact(s, m);
        return;
    case PROTO_MSG_JOB_FINISHED:
        j = agent_sess_find(s, m->u.finished.job.job_id);
        if (!j || j->attempt != m->u.finished.job.attempt) {
            /* A duplicate after settlement, or a stale attempt: the store would refuse it. */
            co_debug("job.finished of a stale or settled attempt ignored job=%s attempt=%lld",
                     m->u.finished.job.job_id, (long long)m->u.finished.job.attempt);
            s->hub->stale_dropped++;
            /* On the job's lane: after any output sent again before it is stored. */
            it = coord_agent_item_new(s, &m->u.finished.job);
            coord_agent_item_submit(it, lane_noop_work, lane_ack_done);
            return;
        }
        if (j->finishing)
            return;
        j->finishing = true;
        it = coord_agent_item_new(s, &m->u.finished.job);
        co_strlcpy(it->buyer_id, j->buyer_id, sizeof(it->buyer_id));
        result_of(&m->u.finished, &it->res);
        finish_submit(it);
        return;
    default:
        return;
    }
}
