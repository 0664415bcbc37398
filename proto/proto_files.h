/*
 * proto_files: the input files of a job (API.md "Files, artifacts, callbacks, description").
 *
 * A submit body may carry `files`: {"<relative path>": {"content": "<text>"} | {"base64": "..."}}.
 * proto_files_from_submit() checks it and normalises it to the form stored with the job and
 * carried in `job.assign`: a compact JSON object {"<relative path>": "<standard base64>"}.
 * proto_files_parse() checks that normalised form again (the agent trusts no message) and decodes
 * it into byte buffers.  Pure functions, no I/O; any thread.
 *
 * Rules shared by both directions:
 *   - at most PROTO_FILES_MAX entries;
 *   - each path passes proto_file_path_check();
 *   - no path is a parent folder of another ("a" and "a/b"), nor of or equal to a @reserved
 *     path (the code file, params.json);
 *   - the decoded total is at most the caller's byte cap (never above PROTO_FILES_BYTES_MAX).
 * Errors are CO_E_INVAL with err->field "files", or CO_E_TOOLARGE with field "files" for the byte
 * cap (answered 413 too_large, like a body over MAX_BODY_BYTES).
 */
#ifndef PROTO_FILES_H
#define PROTO_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "co_err.h"

#define PROTO_FILES_MAX 100
/* The file the agent writes the parameters to: reserved, a job file cannot use it. */
#define PROTO_PARAMS_FILE "params.json"
#define PROTO_FILE_PATH_MAX 255
/* MAX_JOB_FILES_BYTES default, and the hard cap whatever the configuration says. */
#define PROTO_FILES_BYTES_DEFAULT (8 * 1024 * 1024)
#define PROTO_FILES_BYTES_MAX (8 * 1024 * 1024)

/** One decoded input file. */
struct proto_file {
    char *path; /* owned, passes proto_file_path_check */
    char *data; /* owned, @len bytes plus a NUL */
    size_t len;
};

/** The decoded files of a job (owned; proto_file_list_release frees it). */
struct proto_file_list {
    struct proto_file *items;
    size_t len;
    size_t total; /* sum of the lengths */
};

/**
 * Check that @path (@len bytes) is a safe relative file path: 1-255 bytes of valid UTF-8, no
 * control character (< 0x20, 0x7f), no backslash, not absolute, no empty component ("a//b",
 * trailing '/'), no "." or ".." component.  Errors name @field (e.g. "files" or "code_file").
 */
int proto_file_path_check(const char *path, size_t len, const char *field, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Check the submit value @files (a JSON object) and set *out to its normalised compact JSON text
 * (caller-owned), or NULL when @files has no entry.  @reserved is a NULL-terminated list of paths
 * the agent writes itself (may be NULL).  @max_bytes caps the decoded total (0: the default).
 */
int proto_files_from_submit(const json_t *files, const char *const *reserved, size_t max_bytes,
                            char **out, co_err *err) __attribute__((warn_unused_result));

/**
 * Check a normalised files object @obj (path -> base64 string) under the same rules, with the
 * hard byte cap.  When @out is not NULL, decode it into @out (caller releases).
 */
int proto_files_check(const json_t *obj, const char *const *reserved, struct proto_file_list *out,
                      co_err *err) __attribute__((warn_unused_result));

/** As proto_files_check() on normalised JSON text @text (NULL or "" is an empty list). */
int proto_files_parse(const char *text, const char *const *reserved, struct proto_file_list *out,
                      co_err *err) __attribute__((warn_unused_result));

/** Free @l's entries and zero it.  Safe on a zeroed list and twice. */
void proto_file_list_release(struct proto_file_list *l);

#endif
