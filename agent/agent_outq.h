/*
 * agent_outq: a bounded queue of output bytes between one job's thread (the producer, inside
 * the sandbox's output callback) and the WebSocket service thread (the consumer).
 *
 * The bound is the agent's back-pressure: when the queue holds its capacity, push() blocks, so
 * the sandbox stops reading the job's pipes and the job blocks on write.  A slow or absent
 * connection therefore never makes the agent buffer more than the capacity per job.  push()
 * gives up (dropping the rest) when the queue is aborted (cancel, shutdown) or a deadline
 * passes, so a blocked producer can never outlive the job's own time limit by much.
 *
 * Thread-safe: one producer thread and one consumer thread (or more of each).
 */
#ifndef AGENT_OUTQ_H
#define AGENT_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default capacity of a job's queue and largest chunk handed to the consumer. */
#define AGENT_OUTQ_CAP (256 * 1024)
#define AGENT_OUTQ_CHUNK (64 * 1024)

/* Streams, numbered like proto_stream (0 = stdout, 1 = stderr). */
enum { AGENT_OUTQ_STDOUT = 0, AGENT_OUTQ_STDERR = 1 };

struct agent_outq;

/** Called (from the producer's thread) after bytes were queued or the queue was closed. */
typedef void (*agent_outq_notify_fn)(void *ud);

/**
 * Create a queue holding at most @cap bytes (> 0).  @notify (may be NULL) is called with @ud
 * after every push and close, without the queue's lock held.  Aborts on OOM.
 */
struct agent_outq *agent_outq_new(size_t cap, agent_outq_notify_fn notify, void *ud);

/** Free @q and what it holds (NULL allowed).  No thread may be using it. */
void agent_outq_free(struct agent_outq *q);

/**
 * Queue @len bytes of @data (borrowed) on @stream (0 or 1), blocking while the queue is full.
 * Bytes larger than the capacity are queued piece by piece as room appears.  Returns the number
 * of bytes queued: less than @len when the queue was aborted, closed, or @deadline_ms
 * (co_mono_ms() clock; 0 = none) passed while waiting; the rest is dropped.
 */
size_t agent_outq_push(struct agent_outq *q, int stream, const char *data, size_t len,
                       int64_t deadline_ms);

/**
 * Take the next chunk without blocking: up to @max (> 0) bytes of consecutive output of one
 * stream, shortened by up to 3 bytes when more output follows so that it does not end inside a
 * UTF-8 character (text then stays valid UTF-8 chunk by chunk).  Returns true and sets *stream,
 * *data (caller-owned, NUL-terminated, free()), *len and *eof when there is something to send,
 * false when not.  *eof is true on the last chunk of a stream once the queue is closed; after
 * close, a stream whose last chunk went out before the close gets one empty chunk with *eof set.
 * Streams that never had output get no chunk at all.
 */
bool agent_outq_pop(struct agent_outq *q, size_t max, int *stream, char **data, size_t *len,
                    bool *eof);

/** No more output will come (the run is over).  Wakes a blocked producer. */
void agent_outq_close(struct agent_outq *q);

/** Make every current and future push() return at once, dropping its bytes.  Idempotent. */
void agent_outq_abort(struct agent_outq *q);

/** Bytes queued now. */
size_t agent_outq_bytes(struct agent_outq *q);

/** True when the queue is closed and everything, including eof markers, has been popped. */
bool agent_outq_drained(struct agent_outq *q);

/** Bytes dropped so far by push() (abort, close, deadline). */
uint64_t agent_outq_dropped(struct agent_outq *q);

#endif
