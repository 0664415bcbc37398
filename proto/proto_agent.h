/*
 * proto_agent: the agent <-> coordinator protocol "cacheout.agent.v1" (proto/PROTOCOL.md).
 * Every message is one WebSocket text message holding a JSON object with "v": 1 and
 * "type": "<name>".  Every job message carries the fencing pair (job_id, attempt).
 *
 * Decoding is strict about the fields it knows (types, ranges, ids, lengths) and ignores
 * unknown extra fields, so that a newer peer can add fields without breaking an older one.
 * Pure code: no I/O.
 */
#ifndef PROTO_AGENT_H
#define PROTO_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_err.h"
#include "co_id.h"
#include "proto_utf8.h"

#define PROTO_AGENT_SUBPROTOCOL "cacheout.agent.v1"
#define PROTO_AGENT_VERSION 1
/*
 * Largest message either side accepts.  The biggest message is a job.assign, and it always fits:
 * its code is at most PROTO_CODE_MAX (1 MiB) of bytes, at most 6 MiB once escaped, its
 * parameters at most PROTO_PARAMETERS_MAX (1 MiB) of normalized text, its input files at most
 * PROTO_FILES_BYTES_MAX (8 MiB) decoded, so under 11 MiB of base64 plus 100 escaped paths
 * (< 160 KiB), and the rest is under 100 KiB: under 19 MiB in all.
 */
#define PROTO_MSG_MAX (24 * 1024 * 1024)
/* Largest decoded job.output chunk in bytes. */
#define PROTO_OUTPUT_CHUNK_MAX (1024 * 1024)
/* Largest decoded job.artifact chunk, and the caps of one attempt's artifacts. */
#define PROTO_ARTIFACT_CHUNK_MAX (256 * 1024)
#define PROTO_ARTIFACT_BYTES_MAX (INT64_C(1) << 40)
#define PROTO_ARTIFACT_FILES_MAX 100000
/* Caps on hello arrays. */
#define PROTO_HELLO_IMAGES_MAX 64
#define PROTO_HELLO_RUNNING_MAX 1024
/* Caps on free-text fields, in bytes. */
#define PROTO_AGENT_VERSION_MAX 128
#define PROTO_TOKEN_MAX 1024
#define PROTO_REASON_MAX 1024
#define PROTO_MESSAGE_MAX 4096
#define PROTO_TIME_MAX 64
/* WebSocket close code (and reason "unauthorized") for a wrong hello token. */
#define PROTO_CLOSE_UNAUTHORIZED 4001
/*
 * Close codes for user keys (PROTOCOL.md "Authentication"): no credential at all, or a key that is
 * unknown, revoked or of a disabled user (reason "key rejected"); a known credential that may not
 * do this: a worker id of another user, an owner_id other than the key's user, a key without the
 * sell scope (reason "forbidden").  An agent does not retry these in a tight loop.
 */
#define PROTO_CLOSE_KEY_REJECTED 4401
#define PROTO_CLOSE_FORBIDDEN 4403

/* Machine codes of the error message (PROTOCOL.md); receivers log codes they do not know. */
#define PROTO_ERR_BAD_MESSAGE "bad_message"
#define PROTO_ERR_UNAUTHORIZED "unauthorized"
#define PROTO_ERR_FORBIDDEN "forbidden"
#define PROTO_ERR_MAX_WORKERS "max_workers"
#define PROTO_ERR_UNAVAILABLE "unavailable"

enum proto_msg_type {
    PROTO_MSG_NONE = 0,
    PROTO_MSG_HELLO,        /* agent -> coordinator */
    PROTO_MSG_WELCOME,      /* coordinator -> agent */
    PROTO_MSG_HEARTBEAT,    /* agent -> coordinator */
    PROTO_MSG_JOB_ASSIGN,   /* coordinator -> agent */
    PROTO_MSG_JOB_ACCEPTED, /* agent -> coordinator */
    PROTO_MSG_JOB_REJECTED, /* agent -> coordinator */
    PROTO_MSG_JOB_STARTED,  /* agent -> coordinator */
    PROTO_MSG_JOB_OUTPUT,   /* agent -> coordinator */
    PROTO_MSG_JOB_FINISHED, /* agent -> coordinator */
    PROTO_MSG_JOB_CANCEL,   /* coordinator -> agent */
    PROTO_MSG_ERROR,        /* both ways */
    PROTO_MSG_JOB_ACK,      /* coordinator -> agent: a job.finished was stored, forget it */
    /* Output artifacts (files under /work/out), before job.finished. */
    PROTO_MSG_JOB_ARTIFACT,  /* agent -> coordinator */
    PROTO_MSG_JOB_ARTIFACTS, /* agent -> coordinator */
};

/** The wire name of @t ("hello", "job.assign", ...), or NULL for an unknown value. */
const char *proto_msg_type_name(enum proto_msg_type t);

/** The fencing pair carried by every job message. */
struct proto_job_ref {
    char job_id[CO_ID_MAX + 1]; /* an id (co_id_valid) */
    int64_t attempt;            /* >= 1 */
};

/* Sandbox outcome of a run, as reported in job.finished. */
enum proto_run_status {
    PROTO_RUN_OK = 0,
    PROTO_RUN_RUNTIME_ERROR,
    PROTO_RUN_SIGNALED,
    PROTO_RUN_TIMEOUT,
    PROTO_RUN_CPU_TIMEOUT,
    PROTO_RUN_OOM,
    PROTO_RUN_SECCOMP,
    PROTO_RUN_OUTPUT_LIMIT,
    PROTO_RUN_INTERNAL_ERROR,
    PROTO_RUN_CANCELLED,
};

/** The wire name of @s ("ok", "runtime_error", ...), or NULL for an unknown value. */
const char *proto_run_status_name(enum proto_run_status s);
/** Parse a wire name into *out; returns 0, or -1 if @name is not a status. */
int proto_run_status_parse(const char *name, enum proto_run_status *out)
    __attribute__((warn_unused_result));

enum proto_stream {
    PROTO_STREAM_STDOUT = 0,
    PROTO_STREAM_STDERR,
};

/* hello: the first message of an agent on a new connection (also after a reconnect). */
struct proto_hello {
    char *token;                   /* may be "" (no token configured); <= PROTO_TOKEN_MAX */
    char worker_id[CO_ID_MAX + 1]; /* an id */
    char owner_id[CO_ID_MAX + 1];  /* an id; when absent on the wire, a copy of worker_id */
    int64_t cores;                 /* >= 1 */
    int64_t ram_mb;                /* >= 1 */
    char **images;                 /* n_images ids (job image names the agent can run) */
    size_t n_images;               /* <= PROTO_HELLO_IMAGES_MAX */
    struct proto_job_ref *running; /* jobs still running on this agent (after a reconnect) */
    size_t n_running;              /* <= PROTO_HELLO_RUNNING_MAX */
    char *agent_version;           /* <= PROTO_AGENT_VERSION_MAX bytes, no control chars */
    /* The seller's market prices (credits on the wire, >= 0, 6 decimals), when sent. */
    bool has_price;
    int64_t price_per_core_second; /* micro-credits */
    int64_t price_per_gb_second;   /* micro-credits */
};

/* welcome: the coordinator accepted the hello. */
struct proto_welcome {
    char worker_id[CO_ID_MAX + 1];
    int64_t heartbeat_interval_ms; /* >= 1 */
    int64_t lease_timeout_ms;      /* >= 1 */
    char *server_time;             /* ISO-8601 UTC, <= PROTO_TIME_MAX bytes */
};

/* heartbeat: the agent is alive.  Optional numbers are -1 when absent (and then not sent). */
struct proto_heartbeat {
    int64_t seq;         /* >= 0, increasing per connection */
    int64_t running;     /* jobs running now, or -1 */
    int64_t free_cores;  /* or -1 */
    int64_t free_ram_mb; /* or -1 */
};

/* job.assign: run this attempt of this job. */
struct proto_job_assign {
    struct proto_job_ref job;
    char *title;      /* 1-200 characters */
    char *command;    /* 1-4096 characters; the agent splits it with proto_argv_split */
    char *code;       /* <= PROTO_CODE_MAX bytes, may be "" */
    char *code_file;  /* resolved (always present), passes proto_code_file_check */
    char *parameters; /* compact JSON text of an object */
    char image[CO_ID_MAX + 1];
    int64_t required_cores;  /* >= 1 */
    int64_t required_ram_mb; /* >= 1 */
    int64_t timeout_seconds; /* 1-604800 */
    char *files; /* NULL or the normalised input files {"path": "<base64>"} (proto_files.h) */
};

/* job.accepted (reason unused) and job.rejected (reason required, <= PROTO_REASON_MAX). */
struct proto_job_ack {
    struct proto_job_ref job;
    char *reason; /* NULL for job.accepted */
};

/* job.started: the sandboxed process is running. */
struct proto_job_started {
    struct proto_job_ref job;
    char *started_at; /* ISO-8601 UTC, <= PROTO_TIME_MAX bytes */
};

/*
 * job.output: a chunk of a stream.  data holds raw bytes (any bytes, NUL included).  On the
 * wire a chunk that is valid UTF-8 without NUL is sent as the string "data"; any other chunk is
 * sent as "data_b64" (standard base64 with padding) so no byte is lost or altered.  Exactly one
 * of the two is present.
 */
struct proto_job_output {
    struct proto_job_ref job;
    enum proto_stream stream;
    int64_t seq;     /* per job and attempt, both streams together, from 0 */
    int64_t offset;  /* bytes of this stream sent before this chunk; -1: absent on the wire */
    char *data;      /* data_len bytes plus a NUL (not counted) */
    size_t data_len; /* <= PROTO_OUTPUT_CHUNK_MAX */
    bool eof;        /* last chunk of this stream; optional on the wire, default false */
};

/* job.finished: the run is over (idempotent: the coordinator settles an attempt once). */
struct proto_job_finished {
    struct proto_job_ref job;
    enum proto_run_status status;
    bool has_exit_code;     /* exit_code is null on the wire when false */
    int exit_code;          /* 0-255 */
    bool has_signal;        /* signal is null on the wire when false */
    int signal;             /* 1-64 */
    int64_t wall_ms;        /* >= 0 */
    int64_t cpu_ms;         /* >= 0 */
    int64_t max_rss_kb;     /* >= 0 */
    int64_t memory_peak_kb; /* >= 0 (0 when unknown) */
    bool stdout_truncated;
    bool stderr_truncated;
    char *error; /* NULL or <= PROTO_MESSAGE_MAX bytes; set for internal_error */
};

/*
 * job.artifact: a chunk of one output artifact (a regular file under the job's /work/out).  The
 * chunks of a file come in order (offset = bytes of the file sent before); the last one has eof.
 * An empty file is one chunk with no data and eof.  On the wire the bytes are "data_b64".
 */
struct proto_job_artifact {
    struct proto_job_ref job;
    char *path;      /* relative to /work/out, passes proto_file_path_check */
    int64_t offset;  /* 0 .. PROTO_ARTIFACT_BYTES_MAX */
    char *data;      /* data_len bytes plus a NUL (not counted) */
    size_t data_len; /* <= PROTO_ARTIFACT_CHUNK_MAX */
    bool eof;
};

/* job.artifacts: the artifacts of this attempt are complete (sent after the last job.artifact). */
struct proto_job_artifacts {
    struct proto_job_ref job;
    int64_t files;   /* files sent, 0 .. PROTO_ARTIFACT_FILES_MAX */
    int64_t bytes;   /* bytes sent, 0 .. PROTO_ARTIFACT_BYTES_MAX */
    bool truncated;  /* a cap (bytes or files) stopped the collection */
    int64_t skipped; /* entries not sent: links, special files, unusable names, unreadable */
    char *notes;     /* NULL or <= PROTO_MESSAGE_MAX bytes of text naming skipped entries */
};

/* job.cancel: stop this attempt. */
struct proto_job_cancel {
    struct proto_job_ref job;
    char *reason; /* <= PROTO_REASON_MAX bytes, may be "" */
};

/* error: a problem with a message or a job, either direction. */
struct proto_error {
    char code[CO_ID_MAX + 1]; /* an id-like machine code: "bad_message", "unauthorized", ... */
    char *message;            /* <= PROTO_MESSAGE_MAX bytes */
    bool has_job;             /* job_id/attempt present */
    struct proto_job_ref job;
};

/** One message.  `type` selects the member of `u` that is valid. */
struct proto_msg {
    enum proto_msg_type type;
    union {
        struct proto_hello hello;
        struct proto_welcome welcome;
        struct proto_heartbeat heartbeat;
        struct proto_job_assign assign;
        struct proto_job_ack ack; /* JOB_ACCEPTED, JOB_REJECTED and JOB_ACK (no reason) */
        struct proto_job_started started;
        struct proto_job_output output;
        struct proto_job_finished finished;
        struct proto_job_cancel cancel;
        struct proto_error error;
        struct proto_job_artifact artifact;
        struct proto_job_artifacts artifacts;
    } u;
};

/**
 * Decode one message of @len bytes (need not be NUL-terminated) into @out.  Errors:
 * CO_E_TOOLARGE over PROTO_MSG_MAX; CO_E_INVAL for not JSON / not an object / a duplicate key
 * (field ""), a missing or wrong "v", an unknown "type", or any known field of the wrong type,
 * out of range, too long, not an id, or not valid base64 (err->field names the field).  Unknown
 * extra fields are ignored.  On success the caller owns @out's contents
 * (proto_msg_release()); on error @out is zeroed.
 */
int proto_msg_decode(const char *buf, size_t len, struct proto_msg *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Encode @m as compact JSON text.  Returns a NUL-terminated caller-owned string (free()) and
 * its length in *len (if @len is not NULL), or NULL if @m cannot be encoded (unknown type, a
 * NULL required string, a text field that is not valid UTF-8, or a parameters text that is not
 * a JSON object).  Ranges are not checked here: the receiver's proto_msg_decode() checks them.
 * NULL optional strings are sent as absent (or "" where the field is required text, e.g. a
 * NULL job.cancel reason).
 */
char *proto_msg_encode(const struct proto_msg *m, size_t *len);

/**
 * Free every heap member of @m (token, images, running, texts, data, ...) and zero it.  Only
 * call it on messages whose pointers are heap-allocated (as after proto_msg_decode()).
 */
void proto_msg_release(struct proto_msg *m);

#endif
