/*
 * coord_hub: the agent hub, the layer under the agent protocol (coord_agent*.c), the scheduler
 * (coord_sched), the lease reaper (coord_lease) and reconciliation (coord_reconcile), which all
 * call down into it:
 *  - the sessions (struct agent_sess, one per agent connection, reference-counted) and the jobs
 *    each holds, with their capacity (cores, RAM) counted against the session; a session's
 *    protocol part (struct agent_conn: credential, buffers, close) is opaque here;
 *  - two indexes of the live sessions: by the job ids they hold, by worker id;
 *  - the write lanes (agent_hub_write): ordered, batched database writes per job or worker;
 *  - publishing to the change feed as the hub's own (agent_hub_publish), and agent_hub_changed(),
 *    the sessions changed since the scheduler last brought its fit and board up to date.
 * The hub calls nothing above it: what must reach up (a scheduling pass, sending or closing on a
 * session, freeing a session's protocol part) or across (the scheduler's question to
 * reconciliation's quarantine) goes through the hooks (struct agent_hub_hooks) that coord_agent.c
 * registers when it creates the hub.
 *
 * Thread: everything here lives on the lws service thread and is never touched from a database
 * thread; the work functions given to agent_hub_submit/agent_hub_write run on database threads
 * and see only their own item.
 *
 * Life cycle: created by coord_agent.c on LWS_CALLBACK_PROTOCOL_INIT (agent_hub_new), stopped on
 * LWS_CALLBACK_PROTOCOL_DESTROY (agent_hub_destroy: no more writes run, the hub is dead), and
 * freed when the last database item in flight completed (agent_hub_complete), which calls the
 * release hook.  A session lives while its connection or a database item holds a reference.
 */
#ifndef COORD_HUB_H
#define COORD_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "co_id.h"
#include "coord_config.h"
#include "coord_db.h"
#include "coord_events.h"
#include "coord_metrics.h"
#include "proto_agent.h"

struct lws;
struct lws_context;
struct coord_job;

enum agent_job_state {
    AJ_CLAIMING = 0, /* capacity reserved, store claim in flight */
    AJ_ASSIGNED,     /* claimed and job.assign queued */
    AJ_ACCEPTED,     /* the agent acknowledged it */
    AJ_RUNNING,      /* job.started stored */
    AJ_CANCELLING,   /* job.cancel sent, waiting for job.finished */
};

/* One job an agent holds (or is being given): its capacity is counted against the agent. */
struct agent_job {
    char job_id[CO_ID_MAX + 1];
    char buyer_id[CO_ID_MAX + 1]; /* for the credits events of its settlement */
    int attempt;                  /* 0 while claiming */
    int64_t cores;
    int64_t ram_mb;
    enum agent_job_state state;
    int64_t since_ms;      /* monotonic: when it entered its state */
    int assign_resends;    /* job.assign sent again on this connection without an answer */
    bool finishing;        /* a job.finished is being stored */
    uint64_t out_bytes[2]; /* output received per stream (stdout, stderr) for this attempt */
    int64_t out_next_seq;  /* the job.output seq expected next; -1: not known yet (reconnect) */
};

enum agent_sess_state {
    AS_AWAIT_HELLO = 0, /* connected, no hello yet */
    AS_HELLO_DB,        /* hello accepted, worker row being stored */
    AS_READY,           /* welcomed: schedulable */
    AS_CLOSING,         /* a close was requested */
};

/* The protocol's part of a session (coord_agent_int.h): the hub never looks into it. */
struct agent_conn;

/*
 * One agent connection as the hub and the modules on it see it: who it is, its state, its
 * capacity and the jobs it holds, its heartbeats (the lease) and its placement terms.  What only
 * the protocol uses (credential, receive buffer, outgoing queue, close, parked messages,
 * artifact flow control) is in @conn.  Reference-counted: the wsi holds one, every database
 * item one.
 */
struct agent_sess {
    struct coord_agents *hub;
    struct agent_conn *conn; /* the protocol's; NULL for a session made without a protocol */
    /* Frees @conn with the session (the conn_free hook, kept here: the hub may be gone then). */
    void (*conn_free)(struct agent_conn *conn);
    struct lws *wsi; /* NULL once the connection closed */
    int refs;
    enum agent_sess_state state;
    uint64_t serial; /* unique per connection, for logs */
    size_t pos;      /* its index in hub->sess while live */
    char worker_id[CO_ID_MAX + 1];
    char owner_id[CO_ID_MAX + 1]; /* the owner its credential stands for (never as declared) */
    bool superseded;       /* a newer hello of its worker is being checked: no new assignments */
    int64_t session_epoch; /* the store's session epoch of its accepted hello (coord_node) */
    int64_t cores, ram_mb; /* total capacity from hello */
    int64_t free_cores, free_ram_mb; /* what the coordinator has not handed out */
    int64_t peak_cores, peak_ram_mb; /* highest use handed out (for logs) */
    char **images;
    size_t n_images;
    struct agent_job *jobs;
    size_t n_jobs, cap_jobs;
    int64_t last_seen_ms; /* monotonic: last message received */
    bool hb_dirty;        /* a heartbeat to store with the next lease flush */
    bool blocked;         /* scheduler pass scratch: reserved for a larger job */
    bool queued_changed;  /* in hub->changed (agent_hub_changed), holding a reference there */
    size_t board_pos;     /* the scheduler's: its entry on the pending_reason board + 1, 0 none */
    /* Placement terms from the store (each scheduler pass reads them; coord_price.h). */
    struct coord_rate price; /* the seller's market prices for this worker */
    int64_t reputation;      /* parts per million (coord_store_outcome_record) */
};

/*
 * Delay before a write kept through a database outage runs again (doubling up to 5 s); also the
 * first retry of a job.finished that could not be stored.
 */
#define AGENT_FINISH_RETRY_US (500 * LWS_US_PER_MS)

/*
 * Write lanes: a write goes to the lane of its key (job id, worker id), so the writes about one
 * job or one worker stay in order while different jobs' writes may run on several database
 * threads (PostgreSQL) at once.  As many lanes are used as the database has writer threads, at
 * most AGENT_WLANES: SQLite has one, so every write of a loop turn (and of the turns that pass
 * while a batch runs) shares one transaction.
 */
#define AGENT_WLANES 4
/* The most writes one batch transaction holds (a longer batch is split). */
#define AGENT_TX_MAX_WRITES 512

struct agent_wlane {
    struct coord_agents *hub;
    struct agent_wop *head, *tail;
    bool busy;      /* a batch of this lane is in flight */
    bool scheduled; /* the flush timer is armed */
    int retries;    /* batches in a row that left writes to run again (back-off) */
    lws_sorted_usec_list_t sul;
};

/*
 * An index of live sessions by a key (chained hash): the held jobs by job id (a job may sit on
 * two sessions of one worker for a moment while a new connection replaces an old one), and the
 * sessions by worker id (a worker has two while a new connection replaces an old one).
 */
struct agent_ix_ent {
    struct agent_ix_ent *next;
    struct agent_sess *s;
    char key[CO_ID_MAX + 1];
};

struct agent_ix {
    struct agent_ix_ent **b;
    size_t cap, n;
};

/*
 * Runs on the database thread when the batch transaction that held a write's work could not be
 * committed: everything the work did is undone, so it must turn its result into a failure with
 * @err (CO_E_UNAVAILABLE) and drop what it loaded, before its done runs as usual.
 */
typedef void (*agent_undo_fn)(void *arg, const co_err *err);

/* One queued write of a write lane. */
/* Whether a write that ran should run again (the database was unavailable). */
typedef bool (*agent_again_fn)(void *arg);

struct agent_wop {
    struct agent_wop *next;
    coord_db_work_fn work;
    agent_undo_fn undo;
    coord_db_done_fn done;
    agent_again_fn again; /* NULL: never run again */
    void *arg;
};

/*
 * The hooks: how the hub and the modules on it (coord_sched, coord_lease, coord_reconcile) reach
 * the protocol above them, or each other (the scheduler asks reconciliation's quarantine through
 * a hook: the modules on the hub do not call each other), registered by coord_agent.c when it
 * creates the hub.  Every hook runs
 * on the lws thread; a NULL hook is skipped (the unit tests build a hub without a protocol).
 */
struct agent_hub_hooks {
    void *ud; /* the protocol's state (passed to kick and release) */
    /* Ask for a scheduling pass soon: jobs went back to the queue or capacity was freed. */
    void (*kick)(void *ud);
    /* Queue the job.assign of @job (with code) on @s; -1 if it could not be encoded. */
    int (*send_assign)(struct agent_sess *s, const struct coord_job *job);
    /* Queue a job.cancel for (@job_id, @attempt) on @s. */
    void (*send_cancel)(struct agent_sess *s, const char *job_id, int attempt, const char *reason);
    /* Close @s with @code and @reason at its next WRITEABLE. */
    void (*close)(struct agent_sess *s, int code, const char *reason);
    /* A write of @s was fenced off (coord_node): its worker's session moved on. */
    void (*moved)(struct agent_sess *s, const co_err *err);
    /* True if @worker_id is in quarantine now (coord_reconcile's table): no assignments. */
    bool (*quarantined)(const char *worker_id);
    /*
     * A session is being freed (its last reference went): free its protocol part.  Copied into
     * each session at agent_hub_sess_new, since a session may outlive its hub by a completion.
     */
    void (*conn_free)(struct agent_conn *conn);
    /* The hub is being freed (its last database item completed after agent_hub_destroy). */
    void (*release)(void *ud);
};

struct coord_agents {
    const struct coord_config *cfg;
    struct coord_db *db;
    struct coord_events *events;
    struct coord_metrics *metrics; /* may be NULL */
    struct lws_context *ctx;
    struct agent_hub_hooks hooks;
    struct agent_sess **sess; /* live sessions (wsi not NULL); each knows its position */
    struct agent_ix jobs;     /* held jobs of live sessions, by job id */
    struct agent_ix workers;  /* live sessions that said hello, by worker id */
    uint64_t open_gen;        /* agent_hub_changed() */
    /* The sessions changed since the scheduler last looked (agent_hub_take_changed). */
    struct agent_sess **changed;
    size_t n_changed, cap_changed;
    size_t n_sess, cap_sess;
    uint64_t next_serial;
    bool self_publish; /* agent_hub_publish is running: the feed's subscriber here ignores it */
    int64_t inflight;  /* database items (and held timers) not yet completed */
    bool dead;         /* the context is gone: completions only free their items */
    int64_t lease_ms;
    int64_t heartbeat_ms;
    uint64_t stale_dropped;     /* messages of a stale attempt that were ignored */
    uint64_t output_duplicates; /* job.output chunks dropped as already received (seq) */
    uint64_t output_gaps;       /* job.output chunks that came after a missing seq */
    uint64_t assigns_resent;    /* job.assign sent again on the same attempt (hello, no answer) */
    /* Write batches: writes queued during a loop turn go to the database as one item per lane. */
    struct agent_wlane wl[AGENT_WLANES];
    int n_wl; /* lanes in use: at most the database's writer threads */
    uint64_t batches, batched_ops;
    uint64_t batch_txs, batch_undone; /* transactions of several writes; writes undone */
};

/* ---- life cycle ---- */

/**
 * A hub for the sessions of one vhost (lws thread).  @cfg, @db, @events (may be NULL) and
 * @metrics (may be NULL) are borrowed; @hooks is copied.  The lease is WORKER_TIMEOUT_SECONDS
 * (at least 1 s), the agents' heartbeat a third of it (0.1 to 5 s).
 */
struct coord_agents *agent_hub_new(const struct coord_config *cfg, struct coord_db *db,
                                   struct coord_events *events, struct coord_metrics *metrics,
                                   struct lws_context *ctx, const struct agent_hub_hooks *hooks);
/**
 * The context is going away (the sessions were closed already): the lanes' timers stop, the
 * writes still queued are undone and completed, and the hub is dead; it is freed when the
 * database items still in flight completed.
 */
void agent_hub_destroy(struct coord_agents *hub);

/* ---- sessions ---- */

/** A new session of @wsi (state AS_AWAIT_HELLO, one reference), added to the live sessions. */
struct agent_sess *agent_hub_sess_new(struct coord_agents *hub, struct lws *wsi);
/** The connection of @s closed: it leaves the live sessions (and the worker index). */
void agent_hub_sess_remove(struct coord_agents *hub, struct agent_sess *s);
/** Index @s by its worker id (set at hello). */
void agent_hub_index_worker(struct coord_agents *hub, struct agent_sess *s);
/** Take a reference on @s. */
void agent_sess_ref(struct agent_sess *s);
/** Drop a reference; frees @s at zero (its protocol part through the conn_free hook). */
void agent_sess_unref(struct agent_sess *s);
/** The job entry of @s for @job_id, or NULL. */
struct agent_job *agent_sess_find(struct agent_sess *s, const char *job_id);
/** Add a job entry and count its capacity; returns the entry (valid until the next add/remove). */
struct agent_job *agent_sess_add_job(struct agent_sess *s, const struct coord_job *job, int attempt,
                                     enum agent_job_state st);
/** Remove the entry of @job_id (if any) and give its capacity back. */
void agent_sess_remove_job(struct agent_sess *s, const char *job_id);
/** True if @s can run jobs of @image. */
bool agent_sess_has_image(const struct agent_sess *s, const char *image);
/**
 * Count a change of @s that the scheduler's fit and pending_reason board may see: it was welcomed,
 * closed, replaced or superseded, or its size or placement terms changed.  @s is queued (once,
 * with a reference) for the scheduler, which updates only the sessions queued: O(changed).
 */
void agent_hub_changed(struct coord_agents *hub, struct agent_sess *s);
/**
 * Hand over the sessions queued by agent_hub_changed() since the last call (each with its
 * reference, which the caller drops with agent_sess_unref; the array is the caller's to free);
 * the queue is empty after.  Returns how many.
 */
size_t agent_hub_take_changed(struct coord_agents *hub, struct agent_sess ***out);
/** True if any live session holds @job_id. */
bool agent_hub_holds_job(struct coord_agents *hub, const char *job_id);
/** The first entry of @key in @ix (walk ->next and compare keys for the others), or NULL. */
struct agent_ix_ent *agent_ix_first(const struct agent_ix *ix, const char *key);
/** Free @ix (at the hub's end; sessions no longer use it). */
void agent_ix_free(struct agent_ix *ix);
/**
 * The live session of @worker_id other than @not that comes first in hub->sess among those
 * @pred accepts (NULL: any), or NULL.  O(sessions of that worker).
 */
struct agent_sess *agent_hub_worker_first(struct coord_agents *hub, const char *worker_id,
                                          const struct agent_sess * not,
                                          bool (*pred)(const struct agent_sess *o, const void *ud),
                                          const void *ud);
/** A live, welcomed (or being welcomed) session of @worker_id other than @not, or NULL. */
struct agent_sess *agent_hub_find_worker(struct coord_agents *hub, const char *worker_id,
                                         const struct agent_sess * not );

/* ---- up through the hooks ---- */

/** Ask for a scheduling pass soon (the kick hook). */
void agent_hub_kick(struct coord_agents *hub);
/** Queue the job.assign of @job (with code) on @s (the send_assign hook); -1 if not sent. */
int agent_sess_send_assign(struct agent_sess *s, const struct coord_job *job);
/** Queue a job.cancel for (@job_id, @attempt) on @s (the send_cancel hook). */
void agent_sess_send_cancel(struct agent_sess *s, const char *job_id, int attempt,
                            const char *reason);
/** Close @s with @code and @reason at its next WRITEABLE (the close hook). */
void agent_sess_close(struct agent_sess *s, int code, const char *reason);
/** A write of @s was fenced off (coord_node): its worker's session moved on (the moved hook). */
void agent_sess_moved(struct agent_sess *s, const co_err *err);
/** True if @worker_id is in quarantine (the quarantined hook; false without one). */
bool agent_hub_quarantined(struct coord_agents *hub, const char *worker_id);

/* ---- database work ---- */

/** Submit database work on behalf of the hub (counts it in flight). */
int agent_hub_submit(struct coord_agents *hub, enum coord_db_lane lane, coord_db_work_fn work,
                     coord_db_done_fn done, void *arg);
/**
 * Queue a write (claim, started, output, finished, hello...) on the write lane of @key (a job or
 * worker id; NULL is a key too): the writes of one loop turn on a lane run in order as one
 * database item, one batch per lane at a time (so the writes about one job or worker never
 * overtake each other), and each @done runs after the batch on the lws thread.  On SQLite the
 * batch runs as one database transaction (coord_store_batch_begin; up to AGENT_TX_MAX_WRITES
 * writes each; PostgreSQL keeps one transaction per write, see wbatch_work()):
 * @work must not act on its result (its @done does, once the batch committed), and @undo (not
 * NULL) turns the result into a failure when the commit fails.  Counts it in flight like
 * agent_hub_submit(); never fails (a full executor retries the batch later).
 */
void agent_hub_write(struct coord_agents *hub, const char *key, coord_db_work_fn work,
                     agent_undo_fn undo, coord_db_done_fn done, void *arg);

/**
 * agent_hub_write() for a write that must not be lost while the database is down: when its
 * batch is done and @again says so, it is not completed but put back at the head of its lane,
 * which then waits (0.5 s doubling to 5 s) before it runs it again, with every later write of
 * the lane behind it: the order of a job's writes holds across the outage.
 */
void agent_hub_write_kept(struct coord_agents *hub, const char *key, coord_db_work_fn work,
                          agent_undo_fn undo, coord_db_done_fn done, agent_again_fn again,
                          void *arg);
/** Count something other than a database item (a retry timer) in flight, like a submit. */
void agent_hub_hold(struct coord_agents *hub);
/**
 * Call at the start of every completion: counts the item done.  Returns false if the hub is dead
 * (the completion must only free its item).
 */
bool agent_hub_complete(struct coord_agents *hub);
/** Publish a change as our own (our subscriber does not react to it). */
void agent_hub_publish(struct coord_agents *hub, enum coord_event_kind kind, const char *id);

#endif
