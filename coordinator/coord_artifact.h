/*
 * coord_artifact: output artifacts on the coordinator's side -- the store calls that keep them
 * (store.c, tables of sql/<backend>/0007_files.sql), SHA-256 of stored bytes, and the tar.gz
 * writer of GET /api/v1/jobs/{id}/artifacts.tar.gz.  The store calls run on database threads
 * like every coord_store call; the rest is pure and thread-safe.  No state of its own: a tar.gz
 * writer (struct coord_targz) belongs to the handler that inits and releases it.
 */
#ifndef COORD_ARTIFACT_H
#define COORD_ARTIFACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_buf.h"
#include "co_err.h"

/* MAX_ARTIFACT_BYTES default (API.md): stored artifact bytes per attempt. */
#define COORD_ARTIFACT_BYTES_DEFAULT (INT64_C(64) << 20)

struct coord_store;

/* Incremental SHA-256 (OpenSSL's libcrypto). */
struct coord_sha256 {
    void *ctx; /* EVP_MD_CTX */
};
void coord_sha256_init(struct coord_sha256 *h);
void coord_sha256_update(struct coord_sha256 *h, const void *data, size_t len);
/** Finish: 64 lowercase hex digits and a NUL in @hex; frees the context. */
void coord_sha256_hex(struct coord_sha256 *h, char hex[65]);

/** The summary of an attempt's artifacts (job.artifacts). */
struct coord_artifact_set {
    int64_t files, bytes, skipped;
    bool truncated;
    const char *notes; /* borrowed, may be NULL */
};

/** One stored artifact. */
struct coord_artifact {
    char *path;
    int64_t size;
    char sha256[65];
};

/** The artifacts of a job: those of its latest complete attempt (none while incomplete). */
struct coord_artifact_list {
    bool complete; /* an attempt's job.artifacts was stored */
    int attempt;
    bool truncated;
    int64_t skipped;
    char *notes;
    struct coord_artifact *items; /* sorted by path */
    size_t len;
};
void coord_artifact_list_release(struct coord_artifact_list *l);

/**
 * Store one chunk of artifact @path of this attempt, fenced like job output (CO_E_CONFLICT for a
 * stale attempt or worker, CO_E_NOTFOUND for an unknown job).  The first chunk of a file
 * (@offset 0) drops the artifacts of earlier attempts.  @offset must be the size stored so far
 * (else CO_E_CONFLICT: a chunk lost or repeated); @eof completes the file and stores the
 * SHA-256 of its stored chunks.
 *
 * The coordinator does not trust the agent's caps: with @max_bytes > 0, the attempt's stored
 * artifacts never exceed @max_bytes.  The chunk that crosses it is cut there and completes its
 * file; every later chunk of the attempt is dropped (returns 0, nothing stored, *@capped true).
 */
int coord_store_artifact_append(struct coord_store *s, const char *job_id, const char *worker_id,
                                int attempt, const char *path, int64_t offset, const char *data,
                                size_t len, bool eof, int64_t max_bytes, bool *capped, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Store the summary of this attempt's artifacts: they are served from now on.  `bytes` is what
 * was stored, and `truncated` is also set when the stored bytes reached @max_bytes (> 0): the
 * coordinator's own cap cut them, whatever the agent says.
 */
int coord_store_artifact_finish(struct coord_store *s, const char *job_id, const char *worker_id,
                                int attempt, const struct coord_artifact_set *set,
                                int64_t max_bytes, co_err *err) __attribute__((warn_unused_result));

/** The artifacts of @job_id (CO_E_NOTFOUND for an unknown job).  Release @out. */
int coord_store_artifact_list(struct coord_store *s, const char *job_id,
                              struct coord_artifact_list *out, co_err *err)
    __attribute__((warn_unused_result));

/** Append the bytes of artifact @path of (@job_id, @attempt) to @out. */
int coord_store_artifact_read(struct coord_store *s, const char *job_id, int attempt,
                              const char *path, struct co_buf *out, co_err *err)
    __attribute__((warn_unused_result));

/** A tar.gz writer (ustar, gzip): add files in order, then finish. */
struct coord_targz {
    void *z; /* z_stream */
    struct co_buf out;
    int64_t mtime;
};
void coord_targz_init(struct coord_targz *t, int64_t mtime_s);
/** Add a regular file (mode 0644) named @path (<= 255 bytes, split into ustar prefix/name). */
int coord_targz_add(struct coord_targz *t, const char *path, const void *data, size_t len,
                    co_err *err) __attribute__((warn_unused_result));
/** Finish the archive; *out_len gets its length and the caller owns the returned bytes. */
char *coord_targz_finish(struct coord_targz *t, size_t *out_len);
/** Free what @t holds (after finish or on error). */
void coord_targz_release(struct coord_targz *t);

#endif
