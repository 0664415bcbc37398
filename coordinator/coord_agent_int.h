/*
 * coord_agent_int: private to the files of the agent protocol (coord_agent.c, coord_agent_hello.c,
 * coord_agent_job.c, coord_agent_output.c, coord_agent_feed.c): the protocol's state, the item of
 * a job message's database write, and the functions those files share.  The scheduler, the lease
 * reaper and reconciliation never include it: they see the hub (coord_hub.h) only.
 *
 * Thread: everything here runs on the lws service thread; the work functions of the items run on
 * database threads and see only their item.
 */
#ifndef COORD_AGENT_INT_H
#define COORD_AGENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "co_buf.h"
#include "co_id.h"
#include "coord_agent.h"
#include "coord_artifact.h"
#include "coord_auth.h"
#include "coord_hub.h"
#include "coord_limits.h"
#include "coord_store.h"
#include "proto_agent.h"

struct coord_sched;
struct coord_lease;
struct coord_reconcile;

/* Bytes of artifact chunks an agent may have waiting for the database before its connection
 * stops being read (lws_rx_flow_control); reading resumes below half of it. */
#define COORD_ARTIFACT_PENDING_MAX (8 * 1024 * 1024)

/* Per-session caps: queued outgoing frames and bytes, messages parked during the hello. */
#define AGENT_OUT_MAX_FRAMES 4096
#define AGENT_OUT_MAX_BYTES (64 * 1024 * 1024)
#define AGENT_PARK_MAX 4096

struct agent_frame {
    struct agent_frame *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom, then len bytes */
};

/*
 * The protocol's part of a session (s->conn): what only the files of the protocol use.  Made at
 * ESTABLISHED with the session, freed with it (the hub's conn_free hook), so a completion that
 * runs after the close still finds it.
 */
struct agent_conn {
    /* Its credential: the upgrade's or the hello's; the key's hash to check it again later. */
    struct coord_principal principal;
    char key_hash[COORD_KEY_HASH_LEN + 1]; /* "" unless a user key */
    bool upgrade_agent_token;              /* a valid X-Agent-Token header came with the upgrade */
    bool refused;                          /* its hello was refused: it never owned the worker */
    char peer[64];            /* the client's address (failed-authentication throttle) */
    int64_t agent_peak_cores; /* highest use the agent reported in heartbeats, or -1 */
    int64_t agent_peak_ram_mb;
    struct co_buf rx; /* fragments of the message being received */
    struct agent_frame *out_head, *out_tail;
    size_t out_frames, out_bytes;
    int close_code; /* > 0: close with this code at the next WRITEABLE */
    char close_reason[64];
    bool counted;             /* counted in metrics.agents_connected */
    struct proto_msg *parked; /* job messages received while the hello was being stored */
    size_t n_parked;
    /* Artifacts: chunk bytes waiting for the database; reading is paused above the cap. */
    size_t art_pending;
    bool rx_paused;
};

struct agent_output_sub {
    coord_agent_output_fn fn;
    void *ud;
};

/*
 * The protocol's state, one per vhost: the hub and the modules on it, which the protocol creates
 * at PROTOCOL_INIT and stops at PROTOCOL_DESTROY.  The hub's hooks carry it (hooks.ud); it is
 * freed with the hub (the release hook), so completions that run after the destroy still find it.
 */
struct agent_proto {
    struct coord_agents *hub;
    struct coord_limits *limits; /* failed authentications per address (the server's) */
    struct coord_sched *sched;
    struct coord_lease *lease;
    struct coord_reconcile *reconcile;
    int ev_handle;
    struct agent_output_sub *out_subs;
    size_t n_out_subs;
};

/** The protocol's state of @hub. */
static inline struct agent_proto *
agent_proto_of(const struct coord_agents *hub)
{
    return hub->hooks.ud;
}

/* ---- coord_agent.c: sending and dispatch ---- */

/** Free the outgoing frames queued on @s. */
void coord_agent_free_frames(struct agent_sess *s);
/** Queue @len bytes of @text as one text message; closes @s when its queue is full. */
void coord_agent_queue_text(struct agent_sess *s, const char *text, size_t len);
/** Queue @m on @s (encoded; closes @s when its queue is full). */
void coord_agent_send(struct agent_sess *s, const struct proto_msg *m);
/** Queue an "error" message with @code (and @job when not NULL). */
void coord_agent_send_error(struct agent_sess *s, const char *code, const struct proto_job_ref *job,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** Handle one decoded message of @s (which may take its contents). */
void coord_agent_handle(struct agent_sess *s, struct proto_msg *m);

/* ---- coord_agent_hello.c ---- */

/** A hello: check its credential, then store the worker and take its session (a write). */
void coord_agent_on_hello(struct agent_sess *s, struct proto_msg *m);

/* ---- coord_agent_job.c ---- */

/*
 * The database write of one job message (started, output, finished, rejected, artifacts), on
 * the job's write lane.  Holds a reference on its session.
 */
struct job_item {
    struct agent_sess *s;
    char job_id[CO_ID_MAX + 1];
    char worker_id[CO_ID_MAX + 1];
    int attempt;
    int64_t epoch; /* the session's (fencing) */
    int rc;
    co_err err;
    /* job.finished / job.rejected */
    struct coord_job_result res;
    bool changed;
    bool requeued; /* a platform fault: back to the queue, attempt given back (not a result) */
    char buyer_id[CO_ID_MAX + 1];
    char owner_id[CO_ID_MAX + 1];
    lws_sorted_usec_list_t retry;
    int retries;
    /* job.output (offset above: where the chunk starts in its stream, -1 unknown) */
    bool late; /* sent again for an attempt this session does not hold (its result is stored) */
    int stream;
    char *data;
    size_t len;
    /* job.artifact (data, len above) and job.artifacts */
    char *path;
    int64_t offset;
    bool eof;
    struct coord_artifact_set set;
    int64_t max_bytes; /* MAX_ARTIFACT_BYTES (artifact items) */
    char *notes;
};

/** An item for the job of @ref on @s (a reference on @s taken). */
struct job_item *coord_agent_item_new(struct agent_sess *s, const struct proto_job_ref *ref);
/** Free @it and drop its reference. */
void coord_agent_item_free(struct job_item *it);
/** Queue @it's write on its job's lane (agent_hub_write). */
void coord_agent_item_submit(struct job_item *it, coord_db_work_fn work, coord_db_done_fn done);
/** The same, kept through a database outage (agent_hub_write_kept). */
void coord_agent_item_submit_kept(struct job_item *it, coord_db_work_fn work,
                                  coord_db_done_fn done);
/** The entry of a job message if it is for the current attempt @s holds, else NULL (counted). */
struct agent_job *coord_agent_current(struct agent_sess *s, const struct proto_job_ref *ref,
                                      const char *what);
/** A job message (accepted, rejected, started, output, artifact(s), finished) of a ready @s. */
void coord_agent_on_job(struct agent_sess *s, struct proto_msg *m);
/** The send_assign hook: queue the job.assign of @job on @s. */
int coord_agent_send_assign(struct agent_sess *s, const struct coord_job *job);
/** The send_cancel hook: queue a job.cancel for (@job_id, @attempt) on @s. */
void coord_agent_send_cancel(struct agent_sess *s, const char *job_id, int attempt,
                             const char *reason);

/* ---- coord_agent_output.c ---- */

/** job.output: sequence check, the listeners, then the write. */
void coord_agent_on_output(struct agent_sess *s, struct proto_msg *m);
/** job.artifact (a chunk) and job.artifacts (the summary). */
void coord_agent_on_artifact(struct agent_sess *s, struct proto_msg *m);

/* ---- coord_agent_feed.c ---- */

/** The change-feed subscriber of the protocol (@ud: the hub). */
void coord_agent_on_event(void *ud, enum coord_event_kind kind, const char *id, uint64_t seq);

#endif
