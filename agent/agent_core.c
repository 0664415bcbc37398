/*
 * agent_core: connection, job threads and shutdown of cacheout-agent (see agent_core.h).
 *
 * Threads.  Everything here runs on the lws service thread except job_run() (on a worker of
 * the job thread pool, agent_pool.h, for as long as the job lasts) and what it calls.  A job thread
 * shares with the service thread only the fields marked "under mu" and its output queue; it wakes
 * the loop with lws_cancel_service(), which delivers LWS_CALLBACK_EVENT_WAIT_CANCELLED to our
 * (only) protocol.
 *
 * Writing.  Frames are written only in LWS_CALLBACK_CLIENT_WRITEABLE, one lws_write() per
 * callback, in this order: hello (until welcome nothing else), queued control messages
 * (accepted, rejected, heartbeat), then per job in turn job.started, job.output chunks, and
 * job.finished once the job's output is drained.
 *
 * Results.  A finished attempt's job.finished is written to the results journal in the work
 * root (agent_results.h) and kept, on disk and here, until the coordinator answers job.ack, which
 * it sends once the result is stored.  Until then the attempt is listed as running in every hello
 * and its job.finished is sent again after welcome, and every RESULT_RESEND_MS on the same
 * connection.  A restarted agent loads the journal first, so a result survives kill -9.
 *
 * Output.  Every job.output chunk goes through the attempt's output log (struct agent_outlog,
 * up to the per-stream output limit) and stays there until the ack: on each new connection the
 * log is sent again from its first chunk (same seq, with its byte offset, which the coordinator
 * uses to drop what it already stored) before anything newer and before the result; and it is
 * journaled with the result when the attempt ends, so a restarted agent sends it again too.
 */
#include "agent_core.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "agent_cap.h"
#include "agent_job.h"
#include "agent_artifacts.h"
#include "agent_outq.h"
#include "agent_pool.h"
#include "agent_results.h"
#include "co_alloc.h"
#include "co_buf.h"
#include "co_log.h"
#include "co_time.h"
#include "proto_agent.h"
#include "proto_job.h"
#include "sbx.h"

#define TICK_MS 200
/* A coordinator that does not answer hello with welcome in time is dropped and retried. */
#define WELCOME_TIMEOUT_MS 30000
/* Attempts whose result was acknowledged, remembered so that a late assign of one is ignored. */
#define ACKED_RING 256
/* An unacknowledged result is sent again this often on the same connection. */
#define RESULT_RESEND_MS 10000
/* How long a stopping agent keeps trying to deliver results once its jobs are over. */
#define DELIVER_AFTER_STOP_MS 15000
/* Output kept per stream for a resend when AGENT_OUTPUT_LIMIT is 0 (the sandbox's default). */
#define AGENT_OUTLOG_DEFAULT_LIMIT (1024 * 1024)
/* A job thread's output push stops blocking this long after the job's own wall limit. */
#define PUSH_SLACK_MS 30000

enum conn_state {
    CONN_DOWN = 0, /* no connection, a (re)connect is scheduled or running */
    CONN_HELLO,    /* established, hello not written yet */
    CONN_WAIT_WELCOME,
    CONN_READY,   /* welcome received */
    CONN_CLOSING, /* clean close requested (shutdown) */
};

struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
};

struct job {
    struct job *next;
    struct agent *agent;
    struct proto_job_ref ref;
    struct proto_job_assign assign; /* owned strings */
    char **argv;
    struct agent_outq *outq;
    struct sbx_cancel *cancel;
    int64_t push_deadline_ms; /* job thread only: output pushes stop blocking after this */

    /* Artifact frames (job.artifact, job.artifacts) from the job thread, under agent->mu. */
    struct out_msg *art_head, *art_tail;
    size_t art_bytes;
    bool art_aborted;
    pthread_cond_t art_cv;

    /* Under agent->mu. */
    bool started;
    char started_at[CO_ISO_LEN];
    bool done;
    struct proto_job_finished fin;

    /* Service thread only. */
    bool reaped; /* done seen, capacity given back */
    bool cancelled;
    bool started_sent;
    int64_t out_seq;
    struct agent_outlog outlog; /* output sent (or about to be), kept until the ack */
    size_t outlog_next;         /* the next chunk of outlog to send on this connection */
    bool fin_written;
    uint64_t fin_gen;  /* connection generation the result was written on */
    int64_t fin_at_ms; /* when */
    bool journaled;    /* the result is in the results journal (or could not be: logged) */
};

struct agent {
    const struct agent_config *cfg;
    struct lws_context *ctx;
    struct lws *wsi;
    enum conn_state state;
    uint64_t gen; /* connection generation, incremented on each established connection */
    lws_retry_bo_t retry;
    uint16_t retry_count;
    lws_sorted_usec_list_t sul_connect, sul_heartbeat, sul_tick;
    bool auth_failed;          /* the current connection attempt was refused for its credential */
    int auth_close;            /* the close code of that refusal (PROTO_CLOSE_*), 0 if none came */
    char refusal[256];         /* the coordinator's error message with it ("" if none) */
    bool attempt_live;         /* a connection attempt or connection exists (until on_disconnect) */
    const struct agent_url *u; /* the coordinator URL in use: cfg->urls[url_idx] */
    size_t url_idx;
    int64_t down_since_ms; /* when the last connection was lost (0: never connected yet) */
    int64_t hb_interval_ms;
    int64_t hb_seq;
    struct co_buf rx;
    struct out_msg *ctl_head, *ctl_tail;
    struct job *rr_next; /* round-robin position for output */

    struct proto_job_ref acked[ACKED_RING]; /* service thread only: ring of acknowledged results */
    size_t acked_next;

    pthread_mutex_t mu;
    struct job *jobs;
    struct agent_cap cap;
    struct agent_pool *pool; /* job threads, reused */

    _Atomic int *stop;
    int stop_seen;
    bool stopping, killed;
    int64_t grace_deadline_ms;
    int64_t deliver_deadline_ms; /* 0 until every job is over */
    bool exit_loop;
    bool close_sent;             /* the clean close frame was asked for (logged once) */
    int64_t hello_at_ms;         /* when hello was written */
    bool drop_connection;        /* close the connection at the next WRITEABLE (no welcome) */
    bool test_kill_after_result; /* AGENT_TEST_KILL_AFTER_RESULT=1: SIGKILL after journaling */
    int exit_code;
};

static const uint32_t backoff_ms[] = {1000, 2000, 4000, 8000, 15000, 30000};

/* ---- helpers ---- */

/* Leave the service loop: the flag alone would wait for the next timer inside lws_service(). */
static void
request_exit(struct agent *a)
{
    a->exit_loop = true;
    lws_cancel_service(a->ctx);
}

static void
wake_loop(void *ud)
{
    struct agent *a = ud;
    lws_cancel_service(a->ctx);
}

static void
ctl_clear(struct agent *a)
{
    struct out_msg *m = a->ctl_head;
    while (m) {
        struct out_msg *next = m->next;
        free(m);
        m = next;
    }
    a->ctl_head = a->ctl_tail = NULL;
}

/* Encode @m into a frame with LWS_PRE headroom; NULL (logged) when it cannot be encoded. */
static struct out_msg *
frame_new(const struct proto_msg *m)
{
    size_t len = 0;
    co_autofree char *json = proto_msg_encode(m, &len);
    if (!json) {
        co_error("cannot encode message type=%s", proto_msg_type_name(m->type));
        return NULL;
    }
    struct out_msg *f = co_xmalloc(sizeof(*f) + LWS_PRE + len);
    f->next = NULL;
    f->len = len;
    memcpy(f->buf + LWS_PRE, json, len);
    return f;
}

static void
ctl_push(struct agent *a, const struct proto_msg *m)
{
    if (a->state != CONN_READY && a->state != CONN_CLOSING)
        return; /* control messages belong to one connection; nothing to send on */
    struct out_msg *f = frame_new(m);
    if (!f)
        return;
    if (a->ctl_tail)
        a->ctl_tail->next = f;
    else
        a->ctl_head = f;
    a->ctl_tail = f;
    lws_callback_on_writable(a->wsi);
}

static struct job *
job_find(struct agent *a, const char *job_id, int64_t attempt)
{
    for (struct job *j = a->jobs; j; j = j->next) {
        if (strcmp(j->ref.job_id, job_id) == 0 && (attempt < 0 || j->ref.attempt == attempt))
            return j;
    }
    return NULL;
}

static void
job_free(struct job *j)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN, .u.assign = j->assign};
    proto_msg_release(&m);
    proto_argv_free(j->argv);
    agent_outq_free(j->outq);
    agent_outlog_release(&j->outlog);
    sbx_cancel_free(j->cancel);
    agent_finished_release(&j->fin);
    for (struct out_msg *f = j->art_head, *next; f; f = next) {
        next = f->next;
        free(f);
    }
    pthread_cond_destroy(&j->art_cv);
    free(j);
}

/* ---- artifacts: a bounded queue of frames from the job thread to the service thread ---- */

/* Frames a job may have queued; its thread waits (back-pressure) above it. */
#define AGENT_ARTQ_CAP (1024 * 1024)

static void
art_abort(struct job *j)
{
    pthread_mutex_lock(&j->agent->mu);
    j->art_aborted = true;
    pthread_cond_broadcast(&j->art_cv);
    pthread_mutex_unlock(&j->agent->mu);
}

/* Queue @m (job thread); waits while the queue is full.  -1 when aborted or past the deadline. */
static int
art_push(struct job *j, const struct proto_msg *m)
{
    struct agent *a = j->agent;
    struct out_msg *f = frame_new(m);
    if (!f)
        return -1;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    while (j->art_bytes >= AGENT_ARTQ_CAP && !j->art_aborted) {
        if (co_mono_ms() > j->push_deadline_ms) {
            rc = -1;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->art_cv, &a->mu, &ts);
    }
    if (j->art_aborted)
        rc = -1;
    if (rc == 0) {
        if (j->art_tail)
            j->art_tail->next = f;
        else
            j->art_head = f;
        j->art_tail = f;
        j->art_bytes += f->len;
        f = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    free(f);
    if (rc == 0)
        lws_cancel_service(a->ctx);
    return rc;
}

/* The next artifact frame (service thread), or NULL. */
static struct out_msg *
art_pop(struct job *j)
{
    pthread_mutex_lock(&j->agent->mu);
    struct out_msg *f = j->art_head;
    if (f) {
        j->art_head = f->next;
        if (!j->art_head)
            j->art_tail = NULL;
        j->art_bytes -= f->len;
        pthread_cond_broadcast(&j->art_cv);
    }
    pthread_mutex_unlock(&j->agent->mu);
    return f;
}

static int
art_emit(void *ud, const char *path, int64_t offset, const char *data, size_t len, bool eof)
{
    struct job *j = ud;
    struct proto_msg m = {.type = PROTO_MSG_JOB_ARTIFACT};
    m.u.artifact.job = j->ref;
    m.u.artifact.path = (char *)path;
    m.u.artifact.offset = offset;
    m.u.artifact.data = (char *)data;
    m.u.artifact.data_len = len;
    m.u.artifact.eof = eof;
    return art_push(j, &m);
}

/* After the run: send what the job left under /work/out, then the summary (job thread). */
static void
send_artifacts(struct job *j, int work_fd)
{
    const struct agent_config *cfg = j->agent->cfg;
    struct agent_art_limits lim = {.max_bytes = cfg->max_artifact_bytes,
                                   .max_files = cfg->max_artifact_files};
    struct agent_art_summary sum;
    if (work_fd >= 0)
        agent_artifacts_collect(work_fd, &lim, art_emit, j, &sum);
    else
        memset(&sum, 0, sizeof(sum));
    if (sum.stopped)
        return; /* cancelled or shut down: no summary, the attempt's artifacts stay incomplete */
    struct proto_msg m = {.type = PROTO_MSG_JOB_ARTIFACTS};
    m.u.artifacts.job = j->ref;
    m.u.artifacts.files = sum.files;
    m.u.artifacts.bytes = sum.bytes;
    m.u.artifacts.truncated = sum.truncated;
    m.u.artifacts.skipped = sum.skipped;
    m.u.artifacts.notes = sum.notes[0] ? sum.notes : NULL;
    if (sum.files || sum.skipped || sum.truncated)
        co_info("artifacts sent job=%s attempt=%" PRId64 " files=%" PRId64 " bytes=%" PRId64
                " skipped=%" PRId64 " truncated=%d",
                j->ref.job_id, j->ref.attempt, sum.files, sum.bytes, sum.skipped, sum.truncated);
    art_push(j, &m);
}

static void
job_cancel(struct job *j, const char *why)
{
    if (j->reaped || j->cancelled)
        return;
    j->cancelled = true;
    co_info("job cancel job=%s attempt=%" PRId64 " reason=\"%s\"", j->ref.job_id, j->ref.attempt,
            why);
    agent_outq_abort(j->outq);
    art_abort(j);
    if (j->cancel)
        sbx_cancel(j->cancel);
}

/* ---- job threads ---- */

static void
on_output(void *ud, enum sbx_stream stream, const char *data, size_t len)
{
    struct job *j = ud;
    int st = stream == SBX_STDERR ? AGENT_OUTQ_STDERR : AGENT_OUTQ_STDOUT;
    agent_outq_push(j->outq, st, data, len, j->push_deadline_ms);
}

static void
job_mark_started(struct job *j)
{
    struct agent *a = j->agent;
    pthread_mutex_lock(&a->mu);
    j->started = true;
    co_time_iso(co_wall_ms(), j->started_at);
    pthread_mutex_unlock(&a->mu);
    lws_cancel_service(a->ctx);
}

/*
 * The job's last step on its thread: once j->done is set the service thread may free @j at any
 * time (the thread is not joined), so nothing of @j is touched after the unlock.
 */
static void
job_mark_done(struct job *j, struct proto_job_finished *fin)
{
    struct agent *a = j->agent;
    agent_outq_close(j->outq);
    pthread_mutex_lock(&a->mu);
    j->fin = *fin;
    memset(fin, 0, sizeof(*fin));
    j->done = true;
    pthread_mutex_unlock(&a->mu);
    wake_loop(a);
}

static void
job_run(void *arg)
{
    struct job *j = arg;
    struct agent *a = j->agent;
    struct proto_job_finished fin;
    struct agent_job_files files;
    co_err err = CO_ERR_INIT;

    if (agent_job_files_build(&j->assign, &files, &err) != 0) {
        co_error("job files failed job=%s attempt=%" PRId64 " error=\"%s\"", j->ref.job_id,
                 j->ref.attempt, err.msg);
        agent_finished_internal(&j->ref, err.msg, &fin);
        job_mark_done(j, &fin);
        return;
    }

    struct sbx_spec spec;
    agent_job_spec(&j->assign, j->argv, &files, a->cfg->output_limit, a->cfg->pids, &spec);
    struct sbx_run_opts opts = {.on_output = on_output, .ud = j, .cancel = j->cancel};
    struct sbx_result res;
    j->push_deadline_ms = co_mono_ms() + j->assign.timeout_seconds * 1000 + PUSH_SLACK_MS;
    job_mark_started(j);
    if (sbx_run_ex(&spec, &opts, &res, &err) != 0)
        co_error("job sandbox failed job=%s attempt=%" PRId64 " error=\"%s\"", j->ref.job_id,
                 j->ref.attempt, err.msg);
    agent_finished_from_result(&j->ref, &res, &fin);
    send_artifacts(j, res.has_work_fd ? res.work_fd : -1);
    co_info("job finished job=%s attempt=%" PRId64 " status=%s exit_code=%d wall_ms=%" PRId64
            " cpu_ms=%" PRId64 " memory_peak_kb=%" PRId64,
            j->ref.job_id, j->ref.attempt, proto_run_status_name(fin.status), res.exit_code,
            res.wall_ms, res.cpu_ms, res.memory_peak_kb);
    sbx_result_release(&res);
    agent_job_files_release(&files);
    job_mark_done(j, &fin);
}

/* ---- capacity, reaping ---- */

/*
 * Output kept per stream until the ack: the agent's own cap (AGENT_OUTPUT_LIMIT, which the
 * sandbox enforces), the coordinator's default cap when that is unset.  The coordinator stores
 * no more than its cap, 1 MiB by default, either.
 */
static int64_t
outlog_limit(const struct agent *a)
{
    return a->cfg->output_limit > 0 ? a->cfg->output_limit : AGENT_OUTLOG_DEFAULT_LIMIT;
}

/*
 * Move the next chunk of @j's output queue into its log, with its seq and offset.  Returns false
 * when the queue has nothing now.  *@kept tells whether the log took it; a chunk over the log's
 * per-stream limit is not kept and is put in *@over instead (the caller sends it, then frees its
 * data), or dropped when @over is NULL.
 */
static bool
outq_to_log(struct job *j, struct proto_job_output *over, bool *kept)
{
    int stream;
    char *data;
    size_t len;
    bool eof;
    if (!agent_outq_pop(j->outq, AGENT_OUTQ_CHUNK, &stream, &data, &len, &eof))
        return false;
    struct proto_job_output c = {
        .job = j->ref, .seq = j->out_seq++, .data = data, .data_len = len, .eof = eof};
    c.stream = stream == AGENT_OUTQ_STDERR ? PROTO_STREAM_STDERR : PROTO_STREAM_STDOUT;
    *kept = agent_outlog_add(&j->outlog, &c);
    if (!*kept && over)
        *over = c;
    else if (!*kept)
        free(c.data);
    return true;
}

/*
 * Keep a finished attempt's result, with its output log, in the journal before it is sent (not in
 * benchmark mode, whose results are fake and whose figures must not include an fsync per job).
 */
static void
job_journal_result(struct agent *a, struct job *j)
{
    j->journaled = true;
    /* The queue is closed: move what is left of the output into the log, to be journaled. */
    bool kept;
    while (outq_to_log(j, NULL, &kept))
        ;
    if (a->cfg->bench_no_sandbox)
        return;
    co_err err = CO_ERR_INIT;
    /* The job's thread set j->done and left @j: j->fin is this thread's alone now. */
    int rc = agent_results_save(a->cfg->work_root, &j->fin, &j->outlog, &err);
    if (rc == 0 && a->test_kill_after_result) {
        /* Test hook: a crash after the job finished, before its result was sent or acked. */
        co_warn("AGENT_TEST_KILL_AFTER_RESULT: killing this agent after journaling job=%s",
                j->ref.job_id);
        kill(getpid(), SIGKILL);
    }
    if (rc != 0)
        co_error("result not journaled (it is kept in memory only) job=%s attempt=%" PRId64
                 " error=\"%s\"",
                 j->ref.job_id, j->ref.attempt, err.msg);
}

/* Give back the capacity of finished jobs, journal their results. */
static void
reap_jobs(struct agent *a)
{
    for (struct job *j = a->jobs; j; j = j->next) {
        pthread_mutex_lock(&a->mu);
        bool done = j->done;
        pthread_mutex_unlock(&a->mu);
        if (done && !j->reaped) {
            j->reaped = true;
            agent_cap_put(&a->cap, j->assign.required_cores, j->assign.required_ram_mb);
        }
        if (j->reaped && !j->journaled)
            job_journal_result(a, j);
    }
}

/* job.ack: the coordinator stored the result of @ref; forget it, on disk and here. */
static void
job_result_acked(struct agent *a, const struct proto_job_ref *ref)
{
    for (struct job **pp = &a->jobs; *pp; pp = &(*pp)->next) {
        struct job *j = *pp;
        if (strcmp(j->ref.job_id, ref->job_id) != 0 || j->ref.attempt != ref->attempt)
            continue;
        if (!j->reaped || !j->fin_written)
            return; /* not a result we sent: ignore */
        if (!a->cfg->bench_no_sandbox)
            agent_results_forget(a->cfg->work_root, &j->ref);
        co_debug("result acknowledged job=%s attempt=%" PRId64, j->ref.job_id, j->ref.attempt);
        a->acked[a->acked_next++ % ACKED_RING] = j->ref;
        *pp = j->next;
        if (a->rr_next == j)
            a->rr_next = NULL;
        job_free(j);
        return;
    }
}

/* At start: every result of the journal becomes a finished attempt to list and send again. */
static void
job_from_journal(void *ud, struct proto_job_finished *fin, struct agent_outlog *log)
{
    struct agent *a = ud;
    if (job_find(a, fin->job.job_id, fin->job.attempt)) {
        agent_finished_release(fin);
        agent_outlog_release(log);
        return;
    }
    struct job *j = co_xcalloc(1, sizeof(*j));
    j->agent = a;
    j->ref = fin->job;
    j->fin = *fin;
    memset(fin, 0, sizeof(*fin));
    j->outlog = *log;
    j->outlog.limit = outlog_limit(a);
    memset(log, 0, sizeof(*log));
    j->out_seq = j->outlog.n ? j->outlog.chunks[j->outlog.n - 1].seq + 1 : 0;
    j->outq = agent_outq_new(AGENT_OUTQ_CAP, wake_loop, a);
    agent_outq_close(j->outq);
    j->started = j->started_sent = true; /* its job.started is not sent again */
    j->done = j->reaped = j->journaled = true;
    j->next = a->jobs;
    a->jobs = j;
    co_info("unacknowledged result loaded job=%s attempt=%" PRId64 " status=%s output_chunks=%zu",
            j->ref.job_id, j->ref.attempt, proto_run_status_name(j->fin.status), j->outlog.n);
}

/* ---- messages in ---- */

static void heartbeat_cb(lws_sorted_usec_list_t *sul);
static void connect_cb(lws_sorted_usec_list_t *sul);

static void
send_ack(struct agent *a, enum proto_msg_type type, const struct proto_job_ref *ref,
         const char *reason)
{
    struct proto_msg m = {.type = type};
    m.u.ack.job = *ref;
    m.u.ack.reason = (char *)reason;
    ctl_push(a, &m);
}

/* True if a result of @ref's job at @ref's attempt or later was acknowledged recently. */
static bool
job_acked_since(const struct agent *a, const struct proto_job_ref *ref)
{
    for (size_t i = 0; i < ACKED_RING; i++) {
        const struct proto_job_ref *r = &a->acked[i];
        if (r->attempt >= ref->attempt && strcmp(r->job_id, ref->job_id) == 0)
            return true;
    }
    return false;
}

static void
handle_assign(struct agent *a, struct proto_msg *m)
{
    struct proto_job_assign *as = &m->u.assign;
    const struct proto_job_ref *ref = &as->job;
    char reason[PROTO_REASON_MAX];

    struct job *same = job_find(a, ref->job_id, ref->attempt);
    if (same || job_acked_since(a, ref)) {
        co_info("job assign ignored (duplicate) job=%s attempt=%" PRId64, ref->job_id,
                ref->attempt);
        return;
    }
    /*
     * An older attempt of the same job is stale: the coordinator gave the job out again.  An
     * assignment older than an attempt held here is itself stale and ignored.
     */
    for (struct job *j = a->jobs; j; j = j->next) {
        if (strcmp(j->ref.job_id, ref->job_id) != 0)
            continue;
        if (j->ref.attempt > ref->attempt) {
            co_info("job assign ignored (stale attempt) job=%s attempt=%" PRId64 " held=%" PRId64,
                    ref->job_id, ref->attempt, j->ref.attempt);
            return;
        }
        job_cancel(j, "superseded by a newer attempt");
    }

    if (a->stopping) {
        send_ack(a, PROTO_MSG_JOB_REJECTED, ref, "shutting down");
        return;
    }
    if (!agent_config_has_image(a->cfg, as->image)) {
        snprintf(reason, sizeof(reason), "image '%s' is not available on this agent", as->image);
        send_ack(a, PROTO_MSG_JOB_REJECTED, ref, reason);
        return;
    }
    if (a->cap.jobs >= SBX_MAX_SLOTS) {
        snprintf(reason, sizeof(reason), "too many jobs on this agent (%d)", SBX_MAX_SLOTS);
        send_ack(a, PROTO_MSG_JOB_REJECTED, ref, reason);
        return;
    }
    if (!agent_cap_fits(&a->cap, as->required_cores, as->required_ram_mb)) {
        snprintf(reason, sizeof(reason),
                 "does not fit free capacity: needs %" PRId64 " cores and %" PRId64
                 " MiB, free %" PRId64 " cores and %" PRId64 " MiB",
                 as->required_cores, as->required_ram_mb, agent_cap_free_cores(&a->cap),
                 agent_cap_free_ram_mb(&a->cap));
        co_info("job rejected job=%s attempt=%" PRId64 " reason=\"%s\"", ref->job_id, ref->attempt,
                reason);
        send_ack(a, PROTO_MSG_JOB_REJECTED, ref, reason);
        return;
    }
    co_err err = CO_ERR_INIT;
    char **argv = NULL;
    if (agent_job_check(as, &argv, &err) != 0) {
        send_ack(a, PROTO_MSG_JOB_REJECTED, ref, err.msg);
        return;
    }
    struct sbx_cancel *cancel = NULL;
    if (!a->cfg->bench_no_sandbox && sbx_cancel_new(&cancel, &err) != 0) {
        proto_argv_free(argv);
        snprintf(reason, sizeof(reason), "agent error: %.900s", err.msg);
        send_ack(a, PROTO_MSG_JOB_REJECTED, ref, reason);
        return;
    }

    struct job *j = co_xcalloc(1, sizeof(*j));
    j->agent = a;
    j->ref = *ref;
    j->assign = *as;
    memset(as, 0, sizeof(*as)); /* the job owns the strings now */
    m->type = PROTO_MSG_NONE;
    j->argv = argv;
    j->cancel = cancel;
    j->outq = agent_outq_new(AGENT_OUTQ_CAP, wake_loop, a);
    agent_outlog_init(&j->outlog, outlog_limit(a));
    pthread_cond_init(&j->art_cv, NULL);
    agent_cap_take(&a->cap, j->assign.required_cores, j->assign.required_ram_mb);
    j->next = a->jobs;
    a->jobs = j;

    co_info("job accepted job=%s attempt=%" PRId64 " cores=%" PRId64 " ram_mb=%" PRId64 " image=%s",
            j->ref.job_id, j->ref.attempt, j->assign.required_cores, j->assign.required_ram_mb,
            j->assign.image);
    send_ack(a, PROTO_MSG_JOB_ACCEPTED, &j->ref, NULL);

    if (a->cfg->bench_no_sandbox) {
        /* Benchmark mode: report the run as an instant success without running anything. */
        struct proto_job_finished fin = {.job = j->ref, .status = PROTO_RUN_OK};
        fin.has_exit_code = true;
        job_mark_started(j);
        job_mark_done(j, &fin);
        return;
    }
    if (agent_pool_run(a->pool, job_run, j, &err) != 0) {
        co_error("job not started job=%s attempt=%" PRId64 " error=\"%s\"", j->ref.job_id,
                 j->ref.attempt, err.msg);
        struct proto_job_finished fin;
        agent_finished_internal(&j->ref, "cannot start a job thread", &fin);
        job_mark_done(j, &fin);
    }
}

static void
handle_message(struct agent *a, const char *buf, size_t len)
{
    struct proto_msg m;
    co_err err = CO_ERR_INIT;
    if (proto_msg_decode(buf, len, &m, &err) != 0) {
        /* Show the start of the text, with anything unprintable replaced, for debugging. */
        char shown[161];
        size_t n = len < sizeof(shown) - 1 ? len : sizeof(shown) - 1;
        for (size_t i = 0; i < n; i++)
            shown[i] = buf[i] >= 0x20 && buf[i] < 0x7f && buf[i] != '"' ? buf[i] : '?';
        shown[n] = '\0';
        co_warn("bad message from coordinator error=\"%s\" field=%s len=%zu text=\"%s\"", err.msg,
                err.field, len, shown);
        return;
    }
    switch (m.type) {
    case PROTO_MSG_WELCOME:
        if (a->state == CONN_WAIT_WELCOME || a->state == CONN_HELLO) {
            a->state = CONN_READY;
            a->retry_count = 0; /* only now: a server that closes at once must not loop fast */
            a->hb_interval_ms = m.u.welcome.heartbeat_interval_ms;
            if (a->hb_interval_ms < 100)
                a->hb_interval_ms = 100;
            co_info("connected to coordinator url=%s worker_id=%s heartbeat_ms=%" PRId64
                    " lease_timeout_ms=%" PRId64 " down_ms=%" PRId64,
                    a->u->url, a->cfg->worker_id, m.u.welcome.heartbeat_interval_ms,
                    m.u.welcome.lease_timeout_ms,
                    a->down_since_ms ? co_mono_ms() - a->down_since_ms : 0);
            a->down_since_ms = 0;
            lws_sul_schedule(a->ctx, 0, &a->sul_heartbeat, heartbeat_cb,
                             a->hb_interval_ms * LWS_US_PER_MS);
            lws_callback_on_writable(a->wsi);
        }
        break;
    case PROTO_MSG_JOB_ASSIGN:
        if (a->state == CONN_READY || a->state == CONN_CLOSING)
            handle_assign(a, &m);
        break;
    case PROTO_MSG_JOB_ACK:
        job_result_acked(a, &m.u.ack.job);
        break;
    case PROTO_MSG_JOB_CANCEL: {
        struct job *j = job_find(a, m.u.cancel.job.job_id, m.u.cancel.job.attempt);
        if (j)
            job_cancel(j,
                       m.u.cancel.reason && m.u.cancel.reason[0] ? m.u.cancel.reason : "cancelled");
        break;
    }
    case PROTO_MSG_ERROR:
        co_warn("error from coordinator code=%s message=\"%s\"", m.u.error.code,
                m.u.error.message ? m.u.error.message : "");
        if (strcmp(m.u.error.code, PROTO_ERR_UNAUTHORIZED) == 0 ||
            strcmp(m.u.error.code, PROTO_ERR_FORBIDDEN) == 0) {
            a->auth_failed = true;
            co_strlcpy(a->refusal, m.u.error.message ? m.u.error.message : "", sizeof(a->refusal));
        }
        break;
    default:
        co_debug("unexpected message from coordinator type=%s", proto_msg_type_name(m.type));
        break;
    }
    proto_msg_release(&m);
}

/* ---- messages out ---- */

static int
write_frame(struct agent *a, struct out_msg *f)
{
    int n = lws_write(a->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
    if (n < (int)f->len) {
        co_warn("write to coordinator failed");
        return -1;
    }
    return 0;
}

static int
write_msg(struct agent *a, const struct proto_msg *m)
{
    struct out_msg *f = frame_new(m);
    if (!f)
        return 0; /* dropped (logged); keep the connection */
    int rc = write_frame(a, f);
    free(f);
    return rc;
}

static int
write_hello(struct agent *a)
{
    struct proto_msg m = {.type = PROTO_MSG_HELLO};
    struct proto_hello *h = &m.u.hello;
    h->token = a->cfg->token;
    co_strlcpy(h->worker_id, a->cfg->worker_id, sizeof(h->worker_id));
    co_strlcpy(h->owner_id, a->cfg->owner_id, sizeof(h->owner_id));
    h->cores = a->cfg->cores;
    h->ram_mb = a->cfg->ram_mb;
    h->images = a->cfg->images;
    h->n_images = a->cfg->n_images;
    h->agent_version = AGENT_VERSION_STRING;
    h->has_price = a->cfg->has_price;
    h->price_per_core_second = a->cfg->price_per_core_second;
    h->price_per_gb_second = a->cfg->price_per_gb_second;
    size_t n = 0;
    for (struct job *j = a->jobs; j; j = j->next)
        n++;
    if (n > PROTO_HELLO_RUNNING_MAX)
        n = PROTO_HELLO_RUNNING_MAX;
    co_autofree struct proto_job_ref *running = co_xcalloc(n ? n : 1, sizeof(*running));
    size_t i = 0;
    for (struct job *j = a->jobs; j && i < n; j = j->next)
        running[i++] = j->ref;
    h->running = running;
    h->n_running = n;
    co_info("hello sent worker_id=%s cores=%" PRId64 " ram_mb=%" PRId64 " running=%zu",
            h->worker_id, h->cores, h->ram_mb, n);
    return write_msg(a, &m);
}

/* Write at most one frame for job @j; returns 1 if it wrote, 0 if it had nothing, -1 on error. */
static int
write_job(struct agent *a, struct job *j)
{
    pthread_mutex_lock(&a->mu);
    bool started = j->started, done = j->done;
    char started_at[CO_ISO_LEN];
    memcpy(started_at, j->started_at, sizeof(started_at));
    pthread_mutex_unlock(&a->mu);

    if (started && !j->started_sent) {
        struct proto_msg m = {.type = PROTO_MSG_JOB_STARTED};
        m.u.started.job = j->ref;
        m.u.started.started_at = started_at;
        j->started_sent = true;
        return write_msg(a, &m) == 0 ? 1 : -1;
    }
    /* Output: the log first (again from its start on a new connection), then new chunks. */
    struct proto_msg m = {.type = PROTO_MSG_JOB_OUTPUT};
    bool kept = true;
    if (j->outlog_next < j->outlog.n || outq_to_log(j, &m.u.output, &kept)) {
        if (kept)
            m.u.output = j->outlog.chunks[j->outlog_next++];
        int rc = write_msg(a, &m);
        if (!kept)
            free(m.u.output.data);
        return rc == 0 ? 1 : -1;
    }
    struct out_msg *af = art_pop(j);
    if (af) {
        int rc = write_frame(a, af);
        free(af);
        return rc == 0 ? 1 : -1;
    }
    /* No job.ack for a while on this connection: send the result again. */
    if (j->fin_written && j->fin_gen == a->gen && co_mono_ms() - j->fin_at_ms >= RESULT_RESEND_MS)
        j->fin_written = false;
    if (done && j->reaped && j->journaled && !j->fin_written && agent_outq_drained(j->outq) &&
        j->outlog_next == j->outlog.n) {
        m.type = PROTO_MSG_JOB_FINISHED;
        pthread_mutex_lock(&a->mu);
        m.u.finished = j->fin;
        pthread_mutex_unlock(&a->mu);
        j->fin_written = true;
        j->fin_gen = a->gen;
        j->fin_at_ms = co_mono_ms();
        return write_msg(a, &m) == 0 ? 1 : -1;
    }
    return 0;
}

static bool
all_results_written(struct agent *a)
{
    for (struct job *j = a->jobs; j; j = j->next) {
        if (!j->reaped || !j->fin_written)
            return false;
    }
    return true;
}

/* One frame per WRITEABLE callback.  Returns -1 to close the connection. */
static int
on_writeable(struct agent *a)
{
    if (a->drop_connection) {
        a->drop_connection = false;
        lws_close_reason(a->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"no welcome", 10);
        return -1;
    }
    if (a->state == CONN_HELLO) {
        a->state = CONN_WAIT_WELCOME;
        a->hello_at_ms = co_mono_ms();
        return write_hello(a);
    }
    if (a->state != CONN_READY && a->state != CONN_CLOSING)
        return 0;

    if (a->ctl_head) {
        struct out_msg *f = a->ctl_head;
        a->ctl_head = f->next;
        if (!a->ctl_head)
            a->ctl_tail = NULL;
        int rc = write_frame(a, f);
        free(f);
        lws_callback_on_writable(a->wsi);
        return rc;
    }

    /* Round robin over jobs so one chatty job cannot starve the others. */
    struct job *start = a->rr_next ? a->rr_next : a->jobs;
    struct job *j = start;
    while (j) {
        int rc = write_job(a, j);
        if (rc < 0)
            return -1;
        struct job *next = j->next ? j->next : a->jobs;
        if (rc > 0) {
            a->rr_next = next;
            lws_callback_on_writable(a->wsi);
            return 0;
        }
        j = next;
        if (j == start)
            break;
    }

    if (a->state == CONN_CLOSING && all_results_written(a)) {
        if (!a->close_sent)
            co_info("closing connection to coordinator");
        a->close_sent = true;
        lws_close_reason(a->wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"shutting down", 13);
        return -1;
    }
    return 0;
}

/* ---- connection ---- */

static void
heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    struct agent *a = lws_container_of(sul, struct agent, sul_heartbeat);
    if (a->state != CONN_READY && a->state != CONN_CLOSING)
        return;
    int64_t running = 0;
    for (struct job *j = a->jobs; j; j = j->next) {
        if (!j->reaped)
            running++;
    }
    struct proto_msg m = {.type = PROTO_MSG_HEARTBEAT};
    m.u.heartbeat.seq = a->hb_seq++;
    m.u.heartbeat.running = running;
    m.u.heartbeat.free_cores = agent_cap_free_cores(&a->cap);
    m.u.heartbeat.free_ram_mb = agent_cap_free_ram_mb(&a->cap);
    ctl_push(a, &m);
    lws_sul_schedule(a->ctx, 0, &a->sul_heartbeat, heartbeat_cb, a->hb_interval_ms * LWS_US_PER_MS);
}

/* Say clearly why the coordinator refused this agent (never printing the key or token). */
static void
report_refusal(const struct agent *a)
{
    const char *said = a->refusal[0] ? a->refusal : "-";
    if (a->auth_close == PROTO_CLOSE_FORBIDDEN)
        co_error("forbidden: worker id %s belongs to another user, or AGENT_KEY may not sell as "
                 "owner %s (the coordinator at %s said: %s)",
                 a->cfg->worker_id, a->cfg->owner_id[0] ? a->cfg->owner_id : "-", a->u->url, said);
    else if (a->auth_close == PROTO_CLOSE_KEY_REJECTED && a->cfg->key[0])
        co_error("key rejected: check AGENT_KEY (unknown, revoked, or its user is disabled; the "
                 "coordinator at %s said: %s)",
                 a->u->url, said);
    else if (a->auth_close == PROTO_CLOSE_KEY_REJECTED)
        co_error("key rejected: the coordinator at %s needs a credential, set AGENT_KEY (a sell "
                 "key) or AGENT_TOKEN (it said: %s)",
                 a->u->url, said);
    else if (a->cfg->key[0] && !a->cfg->token[0])
        co_error("key rejected: check AGENT_KEY (the coordinator at %s refused it: %s)", a->u->url,
                 said);
    else
        co_error("unauthorized: check AGENT_TOKEN (the coordinator at %s rejected this agent's "
                 "token)",
                 a->u->url);
}

/*
 * Failover: with several URLs in COORDINATOR_URL every new attempt goes to the next one, in
 * order and round again, so a dead coordinator costs one backoff step.  The delays are the
 * backoff table's (1, 2, 4, 8, 15, then 30 s, each plus 0-30% random so that the agents of a
 * lost coordinator do not all arrive at once), and start again at 1 s after a welcome.
 * Returns whether the URL changed.
 */
static bool
next_url(struct agent *a)
{
    if (a->cfg->n_urls < 2)
        return false;
    a->url_idx = (a->url_idx + 1) % a->cfg->n_urls;
    a->u = &a->cfg->urls[a->url_idx];
    return true;
}

static void
schedule_reconnect(struct agent *a)
{
    if (a->exit_loop)
        return;
    if (a->stopping && a->jobs == NULL) {
        request_exit(a);
        return;
    }
    if (a->auth_failed) {
        a->auth_failed = false;
        report_refusal(a);
        a->auth_close = 0;
        a->refusal[0] = '\0';
        if (a->cfg->exit_on_auth_error) {
            a->exit_code = AGENT_EXIT_AUTH;
            request_exit(a);
            return;
        }
        next_url(a);
        co_info("retrying after auth failure in %" PRId64 " s url=%s", a->cfg->auth_retry_s,
                a->u->url);
        lws_sul_schedule(a->ctx, 0, &a->sul_connect, connect_cb,
                         a->cfg->auth_retry_s * LWS_US_PER_SEC);
        return;
    }
    uint32_t delay = lws_retry_get_delay_ms(a->ctx, &a->retry, &a->retry_count, NULL);
    if (next_url(a))
        co_info("failing over to coordinator url=%s in %u ms", a->u->url, delay);
    else
        co_info("reconnecting in %u ms", delay);
    lws_sul_schedule(a->ctx, 0, &a->sul_connect, connect_cb, (lws_usec_t)delay * LWS_US_PER_MS);
}

static void
on_disconnect(struct agent *a, const char *why)
{
    if (!a->attempt_live)
        return; /* already handled (lws may report both an error and a close) */
    a->attempt_live = false;
    bool was_up = a->state != CONN_DOWN;
    a->wsi = NULL;
    a->state = CONN_DOWN;
    if (was_up)
        a->down_since_ms = co_mono_ms();
    ctl_clear(a);
    a->rx.len = 0;
    lws_sul_cancel(&a->sul_heartbeat);
    /* Results written on the lost connection may not have arrived: send them again. */
    for (struct job *j = a->jobs; j; j = j->next) {
        j->fin_written = false;
        j->outlog_next = 0; /* and the output before it: it may not have arrived either */
    }
    if (was_up || why)
        co_warn("disconnected from coordinator reason=\"%s\"", why ? why : "closed");
    schedule_reconnect(a);
}

static void
connect_cb(lws_sorted_usec_list_t *sul)
{
    struct agent *a = lws_container_of(sul, struct agent, sul_connect);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = a->ctx;
    ci.address = a->u->host;
    ci.port = a->u->port;
    ci.path = a->u->path;
    ci.host = a->u->host;
    ci.origin = a->u->host;
    ci.ssl_connection = a->u->tls ? LCCSCF_USE_SSL : 0;
    if (a->u->tls && a->cfg->tls_insecure)
        ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                             LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    ci.protocol = PROTO_AGENT_SUBPROTOCOL;
    ci.local_protocol_name = PROTO_AGENT_SUBPROTOCOL;
    ci.retry_and_idle_policy = &a->retry;
    ci.pwsi = &a->wsi;
    ci.userdata = a;
    co_debug("connecting url=%s", a->u->url);
    a->auth_failed = false;
    a->attempt_live = true;
    if (!lws_client_connect_via_info(&ci) && a->attempt_live) {
        /* Failed before any callback reported it (otherwise on_disconnect already ran). */
        a->attempt_live = false;
        a->wsi = NULL;
        co_warn("cannot start connection to coordinator url=%s", a->u->url);
        schedule_reconnect(a);
    }
}

/* ---- shutdown and periodic work ---- */

static bool
all_jobs_over(struct agent *a)
{
    for (struct job *j = a->jobs; j; j = j->next) {
        if (!j->reaped)
            return false;
    }
    return true;
}

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
    struct agent *a = lws_container_of(sul, struct agent, sul_tick);
    int64_t now = co_mono_ms();

    int stops = (int)*a->stop;
    if (stops > a->stop_seen) {
        a->stop_seen = stops;
        if (!a->stopping) {
            a->stopping = true;
            a->grace_deadline_ms = now + a->cfg->grace_seconds * 1000;
            co_info("shutting down: no new jobs, waiting up to %" PRId64
                    " s for running jobs (signal again to stop them now)",
                    a->cfg->grace_seconds);
        } else {
            a->grace_deadline_ms = now;
        }
    }
    reap_jobs(a);

    if (a->stopping) {
        if (!a->killed && now >= a->grace_deadline_ms && !all_jobs_over(a)) {
            a->killed = true;
            for (struct job *j = a->jobs; j; j = j->next)
                job_cancel(j, "agent shutting down");
        }
        if (all_jobs_over(a)) {
            if (a->deliver_deadline_ms == 0)
                a->deliver_deadline_ms = now + DELIVER_AFTER_STOP_MS;
            if (a->state == CONN_READY) {
                /* Send what is left, then close cleanly (see on_writeable). */
                a->state = CONN_CLOSING;
                lws_callback_on_writable(a->wsi);
            } else if (a->state == CONN_CLOSING) {
                if (now >= a->deliver_deadline_ms)
                    request_exit(a);
            } else if (a->jobs == NULL) {
                /* Nothing to deliver and no session to close: leave now. */
                request_exit(a);
            } else if (now >= a->deliver_deadline_ms) {
                co_warn("exiting with undelivered results: the coordinator is unreachable");
                request_exit(a);
            }
        }
    }
    if (a->wsi && a->state == CONN_WAIT_WELCOME && !a->drop_connection &&
        now - a->hello_at_ms >= WELCOME_TIMEOUT_MS) {
        co_warn("no welcome from coordinator within %d ms, reconnecting", WELCOME_TIMEOUT_MS);
        a->drop_connection = true;
        lws_callback_on_writable(a->wsi);
    }
    if (a->wsi && (a->state == CONN_READY || a->state == CONN_CLOSING))
        lws_callback_on_writable(a->wsi);
    if (!a->exit_loop)
        lws_sul_schedule(a->ctx, 0, &a->sul_tick, tick_cb, TICK_MS * LWS_US_PER_MS);
}

/* ---- lws callback ---- */

static bool
is_auth_error(const char *msg)
{
    return msg && (strstr(msg, "unauthorized") || strstr(msg, "401") || strstr(msg, "403"));
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct agent *a = lws_context_user(lws_get_context(wsi));
    (void)user;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = (unsigned char **)in, *end = (*p) + len;
        if (a->cfg->token[0] &&
            lws_add_http_header_by_name(
                wsi, (const unsigned char *)"x-agent-token:", (const unsigned char *)a->cfg->token,
                (int)strlen(a->cfg->token), p, end))
            return -1;
        if (a->cfg->key[0]) {
            char bearer[1040];
            int n = snprintf(bearer, sizeof(bearer), "Bearer %s", a->cfg->key);
            int rc = n > 0 && (size_t)n < sizeof(bearer)
                         ? lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                                        (const unsigned char *)bearer, n, p, end)
                         : -1;
            explicit_bzero(bearer, sizeof(bearer));
            if (rc)
                return -1;
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        a->wsi = wsi;
        a->state = CONN_HELLO;
        a->drop_connection = false;
        a->gen++;
        a->hb_seq = 0;
        a->rx.len = 0;
        lws_callback_on_writable(wsi);
        break;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        const char *msg = in ? (const char *)in : "unknown error";
        if (is_auth_error(msg))
            a->auth_failed = true;
        /* lws has just logged OpenSSL's reason ("lws: SSL error: certificate has expired"). */
        if (a->u->tls && (strstr(msg, "SSL") || strstr(msg, "ssl")))
            co_error("TLS: the coordinator's certificate was refused (untrusted, expired or for "
                     "another host name; the reason is on the line before) url=%s ca=%s",
                     a->u->url, a->cfg->tls_ca_file ? a->cfg->tls_ca_file : "system store");
        on_disconnect(a, msg);
        break;
    }
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        /*
         * The connection closed before the upgrade: lws gave up waiting for the coordinator's
         * answer to the handshake (a silent network, an overloaded coordinator).  lws 4.1 reports
         * neither CLIENT_CONNECTION_ERROR nor CLIENT_CLOSED then: without this, no reconnect.
         */
        if (a->state == CONN_DOWN)
            on_disconnect(a, "no answer to the WebSocket handshake");
        break;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            int code = (b[0] << 8) | b[1];
            co_info("coordinator closed the connection code=%d reason=\"%.*s\"", code,
                    (int)(len - 2 > 200 ? 200 : len - 2), (const char *)in + 2);
            if (code == PROTO_CLOSE_UNAUTHORIZED || code == PROTO_CLOSE_KEY_REJECTED ||
                code == PROTO_CLOSE_FORBIDDEN) {
                a->auth_failed = true;
                a->auth_close = code;
            }
        }
        break;

    case LWS_CALLBACK_CLIENT_CLOSED:
        if (a->state == CONN_CLOSING && all_results_written(a)) {
            /* A clean close after the last result: the coordinator has read everything. */
            struct job *j = a->jobs;
            while (j) {
                struct job *next = j->next;
                job_free(j);
                j = next;
            }
            a->jobs = NULL;
            a->rr_next = NULL;
            request_exit(a);
            a->wsi = NULL;
            a->state = CONN_DOWN;
            co_info("connection closed cleanly");
            break;
        }
        on_disconnect(a, NULL);
        break;

    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (a->rx.len + len > PROTO_MSG_MAX) {
            co_warn("message from coordinator too large, closing");
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
            return -1;
        }
        co_buf_append(&a->rx, in, len);
        if (lws_is_final_fragment(wsi)) {
            handle_message(a, a->rx.data, a->rx.len);
            a->rx.len = 0;
        }
        break;

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (wsi != a->wsi)
            break;
        return on_writeable(a);

    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        reap_jobs(a);
        if (a->wsi && (a->state == CONN_READY || a->state == CONN_CLOSING))
            lws_callback_on_writable(a->wsi);
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {PROTO_AGENT_SUBPROTOCOL, callback, 0, 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- life cycle ---- */

static void
lws_log_to_co(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        co_warn("lws: %.*s", (int)n, line);
    else
        co_debug("lws: %.*s", (int)n, line);
}

int
agent_new(const struct agent_config *cfg, struct agent **out, co_err *err)
{
    struct agent *a = co_xcalloc(1, sizeof(*a));
    a->cfg = cfg;
    a->u = &cfg->urls[0];
    pthread_mutex_init(&a->mu, NULL);
    co_buf_init(&a->rx);
    agent_cap_init(&a->cap, cfg->cores, cfg->ram_mb);
    /* A job takes at least one core: at most cfg->cores jobs run at once, as many threads wait. */
    a->pool = agent_pool_new(cfg->cores > 0 && cfg->cores < SBX_MAX_SLOTS ? (unsigned)cfg->cores
                                                                          : SBX_MAX_SLOTS);
    const char *kill_hook = getenv("AGENT_TEST_KILL_AFTER_RESULT");
    a->test_kill_after_result = kill_hook && strcmp(kill_hook, "1") == 0;
    a->hb_interval_ms = 10000;
    a->retry = (lws_retry_bo_t){
        .retry_ms_table = backoff_ms,
        .retry_ms_table_count = (uint16_t)CO_ARRAY_LEN(backoff_ms),
        .conceal_count = LWS_RETRY_CONCEAL_ALWAYS,
        .secs_since_valid_ping = 20,
        .secs_since_valid_hangup = 45,
        .jitter_percent = 30,
    };

    lws_set_log_level(LLL_ERR | (co_log_enabled(CO_LOG_DEBUG) ? LLL_WARN : 0), lws_log_to_co);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = a;
    info.options = cfg->any_tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    info.client_ssl_ca_filepath = cfg->tls_ca_file;
    info.retry_and_idle_policy = &a->retry;
    a->ctx = lws_create_context(&info);
    if (!a->ctx) {
        agent_pool_free(a->pool);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return co_err_set(err, CO_E_INTERNAL, "cannot create the websocket context");
    }
    *out = a;
    return 0;
}

int
agent_run(struct agent *a, _Atomic int *stop)
{
    a->stop = stop;
    a->exit_code = AGENT_EXIT_OK;
    if (a->cfg->bench_no_sandbox) {
        co_warn("!!! BENCHMARK MODE (--bench-no-sandbox / AGENT_BENCH_NO_SANDBOX): jobs are NOT "
                "run; every assignment is reported as an instant success with zero usage. Never "
                "use this with real jobs. !!!");
    }
    co_info("agent starting worker_id=%s owner_id=%s cores=%" PRId64 " ram_mb=%" PRId64
            " coordinator=%s",
            a->cfg->worker_id, a->cfg->owner_id, a->cfg->cores, a->cfg->ram_mb, a->u->url);
    co_err err = CO_ERR_INIT;
    if (!a->cfg->bench_no_sandbox &&
        agent_results_load(a->cfg->work_root, job_from_journal, a, &err) != 0)
        co_error("results journal unreadable error=\"%s\"", err.msg);
    lws_sul_schedule(a->ctx, 0, &a->sul_connect, connect_cb, 1);
    lws_sul_schedule(a->ctx, 0, &a->sul_tick, tick_cb, TICK_MS * LWS_US_PER_MS);
    while (!a->exit_loop) {
        if (lws_service(a->ctx, 0) < 0)
            break;
    }
    co_info("agent stopped exit_code=%d", a->exit_code);
    return a->exit_code;
}

void
agent_free(struct agent *a)
{
    if (!a)
        return;
    /* Jobs still running (undeliverable results, or an early exit): stop and wait for them. */
    for (struct job *j = a->jobs; j; j = j->next) {
        if (!j->reaped)
            job_cancel(j, "agent exiting");
    }
    agent_pool_free(a->pool);
    lws_sul_cancel(&a->sul_connect);
    lws_sul_cancel(&a->sul_heartbeat);
    lws_sul_cancel(&a->sul_tick);
    lws_context_destroy(a->ctx);
    struct job *j = a->jobs;
    while (j) {
        struct job *next = j->next;
        job_free(j);
        j = next;
    }
    ctl_clear(a);
    co_buf_release(&a->rx);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
