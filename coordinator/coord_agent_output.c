/*
 * coord_agent_output: job.output and artifacts.  job.output chunks are checked against the
 * attempt's sequence (a duplicate is dropped, a gap counted), given to the output listeners
 * (dashboards, coord_agents_output_subscribe) up to COORD_AGENT_OUTPUT_CAP per stream, and stored
 * on the job's write lane; output sent again with the result of an attempt this session no
 * longer holds is still stored if the store lacks it.  Artifact chunks and the artifacts summary
 * are stored on the same lane, before the job's result; an agent with more than
 * COORD_ARTIFACT_PENDING_MAX bytes of chunks waiting for the database is not read meanwhile.
 *
 * Thread: the lws service thread; the *_work functions run on database threads.  Life cycle: one
 * struct job_item per chunk or summary (coord_agent_job.c), freed by its completion; the listeners
 * are added at start and live as long as the hub.
 */
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"
#include "co_log.h"
#include "coord_agent_int.h"
#include "coord_node.h"

void
coord_agents_output_subscribe(struct coord_agents *hub, coord_agent_output_fn fn, void *ud)
{
    struct agent_proto *p = agent_proto_of(hub);
    p->out_subs = co_xreallocarray(p->out_subs, p->n_out_subs + 1, sizeof(*p->out_subs));
    p->out_subs[p->n_out_subs].fn = fn;
    p->out_subs[p->n_out_subs].ud = ud;
    p->n_out_subs++;
}

/* ------------------------------------------------------------------------------------------ */
/* job.output                                                                                 */

static void
output_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    /* Fenced: output of an attempt that is no longer current never lands in the new one's. */
    it->rc = coord_node_fence(store, it->worker_id, it->epoch, false, &it->err);
    if (it->rc == 0)
        it->rc = coord_store_output_put(store, it->job_id, it->worker_id, it->attempt, it->late,
                                        it->stream, it->offset, it->data, it->len, &it->err);
    if (it->rc < 0 && (it->err.code == CO_E_CONFLICT || it->err.code == CO_E_NOTFOUND))
        co_debug("job output of a stale attempt dropped job=%s attempt=%d: %s", it->job_id,
                 it->attempt, it->err.msg);
    else if (it->rc < 0 && it->err.code == CO_E_UNAVAILABLE)
        co_debug("job output kept until the database is back job=%s error=\"%s\"", it->job_id,
                 it->err.msg);
    else if (it->rc < 0)
        co_warn("cannot store job output job=%s error=\"%s\"", it->job_id, it->err.msg);
}

static void
output_done(void *arg)
{
    struct job_item *it = arg;
    agent_hub_complete(it->s->hub);
    coord_agent_item_free(it);
}

/* Store @o (its data taken) on the job's write lane; @late: see job_item.late. */
static void
output_submit(struct agent_sess *s, struct proto_job_output *o, int stream, bool late)
{
    struct job_item *it = coord_agent_item_new(s, &o->job);
    it->stream = stream;
    it->offset = o->offset;
    it->late = late;
    it->data = o->data;
    it->len = o->data_len;
    o->data = NULL;
    o->data_len = 0;
    coord_agent_item_submit_kept(it, output_work, output_done);
}

/*
 * The job.output sequence check of one attempt: false for a chunk already received (a duplicate:
 * dropped); a gap is logged and counted, and the chunk kept.
 */
static bool
sess_output_seq_ok(struct agent_sess *s, struct agent_job *j, int64_t seq)
{
    if (j->out_next_seq >= 0 && seq < j->out_next_seq) {
        co_debug("duplicate job.output dropped job=%s attempt=%d seq=%lld expected=%lld", j->job_id,
                 j->attempt, (long long)seq, (long long)j->out_next_seq);
        s->hub->output_duplicates++;
        return false;
    }
    if (j->out_next_seq >= 0 && seq > j->out_next_seq) {
        co_warn("gap in job.output job=%s attempt=%d worker=%s seq=%lld expected=%lld", j->job_id,
                j->attempt, s->worker_id, (long long)seq, (long long)j->out_next_seq);
        s->hub->output_gaps++;
    }
    j->out_next_seq = seq + 1;
    return true;
}

/* job.output: forwarded to the listeners, then stored on the job's write lane. */
void
coord_agent_on_output(struct agent_sess *s, struct proto_msg *m)
{
    struct proto_job_output *o = &m->u.output;
    int stream = o->stream == PROTO_STREAM_STDERR ? 2 : 1;
    struct agent_job *j = coord_agent_current(s, &o->job, "job.output");
    if (!j && o->offset >= 0 && o->data_len > 0) {
        /*
         * Output sent again with the result of an attempt this session does not hold: if
         * that result is stored already, the store still takes the bytes it lacks (fenced to
         * the job's last attempt on this worker), before the result's ack (same lane).
         */
        output_submit(s, o, stream, true);
        return;
    }
    if (!j || !sess_output_seq_ok(s, j, o->seq))
        return;
    uint64_t offset = o->offset >= 0 ? (uint64_t)o->offset : j->out_bytes[stream - 1];
    j->out_bytes[stream - 1] += o->data_len;
    if (offset < COORD_AGENT_OUTPUT_CAP) {
        size_t fwd = o->data_len;
        if (offset + fwd > COORD_AGENT_OUTPUT_CAP)
            fwd = (size_t)(COORD_AGENT_OUTPUT_CAP - offset);
        const struct agent_proto *p = agent_proto_of(s->hub);
        for (size_t i = 0; i < p->n_out_subs; i++)
            p->out_subs[i].fn(p->out_subs[i].ud, j->job_id, j->buyer_id, j->attempt, stream, offset,
                              o->data, fwd);
    }
    if (o->data_len == 0)
        return;
    output_submit(s, o, stream, false);
}

/* ---- artifacts: stored in order on the job's write lane, before its job.finished ---- */

static void
artifact_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    bool capped = false;
    it->rc = coord_store_artifact_append(store, it->job_id, it->worker_id, it->attempt, it->path,
                                         it->offset, it->data, it->len, it->eof, it->max_bytes,
                                         &capped, &it->err);
    if (capped)
        co_debug("artifact chunk over MAX_ARTIFACT_BYTES cut off job=%s attempt=%d path=\"%s\"",
                 it->job_id, it->attempt, it->path);
    if (it->rc < 0)
        co_warn("artifact chunk not stored job=%s attempt=%d path=\"%s\" error=\"%s\"", it->job_id,
                it->attempt, it->path, it->err.msg);
}

static void
artifact_done(void *arg)
{
    struct job_item *it = arg;
    struct agent_sess *s = it->s;
    s->conn->art_pending -= it->len;
    if (s->conn->rx_paused && s->conn->art_pending < COORD_ARTIFACT_PENDING_MAX / 2) {
        s->conn->rx_paused = false;
        if (s->wsi)
            lws_rx_flow_control(s->wsi, 1);
    }
    agent_hub_complete(s->hub);
    coord_agent_item_free(it);
}

static void
artifacts_work(struct coord_store *store, void *arg)
{
    struct job_item *it = arg;
    it->set.notes = it->notes;
    it->rc = coord_store_artifact_finish(store, it->job_id, it->worker_id, it->attempt, &it->set,
                                         it->max_bytes, &it->err);
    if (it->rc < 0)
        co_warn("artifact summary not stored job=%s attempt=%d error=\"%s\"", it->job_id,
                it->attempt, it->err.msg);
}

static void
artifacts_done(void *arg)
{
    struct job_item *it = arg;
    if (agent_hub_complete(it->s->hub) && it->rc == 0)
        agent_hub_publish(it->s->hub, COORD_EVENT_JOB, it->job_id);
    coord_agent_item_free(it);
}

void
coord_agent_on_artifact(struct agent_sess *s, struct proto_msg *m)
{
    struct job_item *it;
    if (m->type == PROTO_MSG_JOB_ARTIFACT) {
        struct proto_job_artifact *a = &m->u.artifact;
        if (!coord_agent_current(s, &a->job, "job.artifact"))
            return;
        it = coord_agent_item_new(s, &a->job);
        it->path = co_steal(&a->path);
        it->offset = a->offset;
        it->eof = a->eof;
        it->data = co_steal(&a->data);
        it->len = a->data_len;
        s->conn->art_pending += it->len;
        if (!s->conn->rx_paused && s->conn->art_pending > COORD_ARTIFACT_PENDING_MAX && s->wsi) {
            s->conn->rx_paused = true;
            lws_rx_flow_control(s->wsi, 0);
        }
        coord_agent_item_submit(it, artifact_work, artifact_done);
        return;
    }
    struct proto_job_artifacts *a = &m->u.artifacts;
    if (!coord_agent_current(s, &a->job, "job.artifacts"))
        return;
    it = coord_agent_item_new(s, &a->job);
    it->set.files = a->files;
    it->set.bytes = a->bytes;
    it->set.skipped = a->skipped;
    it->set.truncated = a->truncated;
    it->notes = co_steal(&a->notes);
    coord_agent_item_submit_kept(it, artifacts_work, artifacts_done);
}
