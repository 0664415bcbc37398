/*
 * proto_job: the job spec of `POST /api/v1/submit` (API.md), decoded from untrusted JSON and
 * validated, plus the pure command rules shared by the coordinator and the agent: splitting
 * `command` into argv like a POSIX shell splits words (no expansion, no operators) and choosing
 * the file `code` is written to when `code_file` is absent.  No I/O.
 *
 * Error classification of proto_job_decode() (what the HTTP layer answers):
 *   - CO_E_TOOLARGE                     -> 413 too_large (body over the cap)
 *   - CO_E_INVAL and err->field == ""   -> 400 bad_json (not JSON, not an object, duplicate key,
 *                                          an integer outside int64, nesting deeper than 2048,
 *                                          invalid UTF-8, a \u0000 escape in a string)
 *   - CO_E_INVAL and err->field != ""   -> 422 invalid_field, err->field names the field
 * Use proto_job_err_is_bad_json() rather than testing the field by hand.  Every validation
 * error names a field; an unknown key that is the empty string is reported as the field `""`
 * (two quote characters) so that it is never mistaken for bad JSON.
 */
#ifndef PROTO_JOB_H
#define PROTO_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "co_err.h"

/* Limits of API.md; lengths of text fields are in Unicode characters (code points). */
#define PROTO_TITLE_MAX 200
#define PROTO_DESCRIPTION_MAX 10000
#define PROTO_COMMAND_MAX 4096
/* code is limited in bytes (of its UTF-8 encoding). */
#define PROTO_CODE_MAX (1024 * 1024)
/* code_file is limited in bytes. */
#define PROTO_CODE_FILE_MAX 255
#define PROTO_PRIORITY_MIN 1
#define PROTO_PRIORITY_MAX 10
#define PROTO_PRIORITY_DEFAULT 5
#define PROTO_TIMEOUT_MIN 1
#define PROTO_TIMEOUT_MAX 604800
#define PROTO_TIMEOUT_DEFAULT 3600
#define PROTO_ATTEMPTS_MIN 1
#define PROTO_ATTEMPTS_MAX 100
#define PROTO_REPLICAS_MIN 1
#define PROTO_REPLICAS_MAX 5
#define PROTO_ATTEMPTS_DEFAULT 3
#define PROTO_IMAGE_DEFAULT "default"
/* min_reputation is 0-1 with at most 6 decimals, kept in parts per million. */
#define PROTO_REPUTATION_MAX 1000000
/*
 * parameters, re-encoded compactly, are at most this many bytes.  Re-encoding can make a body's
 * text longer ("1e14" becomes "100000000000000.0"), so this caps it after normalization.
 */
#define PROTO_PARAMETERS_MAX (1024 * 1024)
/* The code file used when code_file is absent and the command names no file. */
#define PROTO_CODE_PATH_DEFAULT "main"
/*
 * Hard cap on a submit body, whatever the caller's limit says.  It keeps every job.assign
 * message (which carries the same fields) under PROTO_MSG_MAX (proto_agent.h).
 */
#define PROTO_JOB_BODY_MAX (16 * 1024 * 1024)

/** Limits chosen by the coordinator's configuration.  Zero means "no extra limit". */
struct proto_job_limits {
    int64_t max_cores;  /* MAX_JOB_CORES: required_cores above it -> 422 on "required_cores" */
    int64_t max_ram_mb; /* MAX_JOB_RAM_MB: required_ram_mb above it -> 422 on "required_ram_mb" */
    size_t max_files_bytes;    /* MAX_JOB_FILES_BYTES: decoded input files; 0 or above
                                  PROTO_FILES_BYTES_MAX means PROTO_FILES_BYTES_MAX */
    size_t max_body;           /* body size cap in bytes (CO_E_TOOLARGE); 0 or larger than
                                  PROTO_JOB_BODY_MAX means PROTO_JOB_BODY_MAX */
    const char *default_buyer; /* non-NULL: buyer_id may be absent and is then this id */
};

/**
 * A validated job spec.  Every string is heap-allocated, NUL-terminated, valid UTF-8 without
 * embedded NUL, and owned by the struct (freed by proto_job_spec_release()).  Defaults of
 * API.md are filled in for absent (or null) optional fields.
 */
#define PROTO_CALLBACK_URL_MAX 2048

struct proto_job_spec {
    char *title;       /* 1-200 characters */
    char *description; /* <= 10,000 characters, "" when absent */
    char *code;        /* <= 1 MiB, "" when absent */
    char *code_file;   /* NULL when absent, else a safe relative path (proto_code_file_check) */
    int64_t required_cores;  /* >= 1, <= limits.max_cores when set */
    int64_t required_ram_mb; /* >= 1, <= limits.max_ram_mb when set */
    int priority;            /* 1-10, default 5, 10 is most urgent */
    char *command;           /* 1-4096 characters, splits into >= 1 word */
    char *parameters;        /* compact JSON text of an object, "{}" when absent */
    char *buyer_id;          /* an id (co_id_valid) */
    char *image;             /* an id, default "default" */
    int64_t timeout_seconds; /* 1-604800, default 3600 */
    int max_attempts;        /* 1-100, default 3 */
    int replicas;            /* 1-5, default 1: workers of distinct owners that run it */
    char *files;             /* NULL when absent or empty, else the normalised compact JSON object
                                {"path": "<base64>"} of proto_files_from_submit() */
    /* Reputation and market pricing (API.md "Verified results, reputation, pricing"). */
    int64_t min_reputation;            /* parts per million, 0-1000000, default 0 */
    bool has_max_prices;               /* max_price_per_core_second was given */
    bool has_max_price_gb;             /* max_price_per_gb_second was given */
    int64_t max_price_per_core_second; /* micro-credits, >= 0 */
    int64_t max_price_per_gb_second;   /* micro-credits, >= 0 */
    char *callback_url; /* NULL when absent, else 1-2048 characters (checked further by the
                           coordinator: coord_webhook_url_check) */
};

/**
 * Decode and validate a submit body of @len bytes (need not be NUL-terminated) into @out.
 *
 * Rules (the first violation, in the order fields appear in the body for unknown keys and
 * types, is reported):
 *   - the body must be at most the cap of @lim, be JSON, an object, and have no duplicate key;
 *   - unknown keys are errors naming the key;
 *   - required: title, required_cores, required_ram_mb, command, buyer_id (unless
 * lim->default_buyer);
 *   - null for an optional field means "absent"; null for a required field is a type error;
 *   - integers must be JSON integers (1.0, 1e2, true, "1" are rejected) in range;
 *   - strings must be strings within their length limits (a \u0000 escape is already refused
 *     by the parser, as bad JSON);
 *   - parameters must be an object of at most PROTO_PARAMETERS_MAX bytes once re-encoded
 *     compactly; ids must be 1-64 of [A-Za-z0-9._-];
 *   - command must split (proto_argv_split) into at least one word;
 *   - code_file must pass proto_code_file_check();
 *   - files must pass proto_files_from_submit() (proto_files.h), params.json and, when code is
 *     not empty, the resolved code file being reserved.
 * @lim may be NULL (no extra limits).  On success @out is filled (caller releases with
 * proto_job_spec_release()) and 0 is returned; on error @out is left zeroed, @err is set as
 * described at the top of this header and -1 is returned.
 */
int proto_job_decode(const char *body, size_t len, const struct proto_job_limits *lim,
                     struct proto_job_spec *out, co_err *err) __attribute__((warn_unused_result));

/** True if @err (set by proto_job_decode) means 400 bad_json rather than 422 or 413. */
bool proto_job_err_is_bad_json(const co_err *err);

/** Free the strings of @spec and zero it.  Safe on a zeroed struct and twice. */
void proto_job_spec_release(struct proto_job_spec *spec);

/**
 * Split @command into words like a POSIX shell does, but with no expansion of any kind:
 *   - unquoted space, tab and newline separate words;
 *   - '...' keeps everything literally up to the next ';
 *   - "..." keeps everything literally except that a backslash before one of  " \ $ ` newline
 *     escapes it (backslash-newline is removed), other backslashes stay;
 *   - outside quotes a backslash makes the next character literal (backslash-newline is
 *     removed);
 *   - adjacent quoted and unquoted parts join into one word; '' or "" alone is an empty word;
 *   - ; | & > < ( ) # * ? [ ] ~ $ and ` are ordinary characters: the result is run directly,
 *     never by a shell on the host.
 * Errors (CO_E_INVAL, field "command"): an unterminated quote, a backslash at the very end,
 * no word at all.  On success *argv_out is a NULL-terminated array of *argc_out (>= 1) strings,
 * caller-owned: free it with proto_argv_free().
 */
int proto_argv_split(const char *command, char ***argv_out, size_t *argc_out, co_err *err)
    __attribute__((warn_unused_result));

/** Free an argv returned by proto_argv_split() (NULL is fine). */
void proto_argv_free(char **argv);

/**
 * The file `code` is written to when code_file is absent: the first argument after argv[0]
 * that is a plain file name -- a single path component of 1-255 characters of [A-Za-z0-9._-],
 * not starting with '-', not "." or "..", and containing a '.' (so "python script.py" gives
 * "script.py", "python -u app.py x.csv" gives "app.py") -- else "main".  The result is
 * borrowed: it points into @argv or at a static string.
 */
const char *proto_argv_code_path(char *const *argv, size_t argc);

/**
 * The resolved code file of @spec: code_file when set, else proto_argv_code_path() of its
 * split command.  *out is caller-owned (free()).  Errors only if the command does not split
 * (a spec from proto_job_decode always splits).
 */
int proto_job_code_path(const struct proto_job_spec *spec, char **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Check that @path (of @len bytes) is a safe relative file path for code_file: 1-255 bytes,
 * no NUL, no control character (< 0x20 or 0x7f), no backslash, not starting with '/', no empty
 * component (no "//", no trailing '/'), and no component "." or "..".  Subdirectories are
 * allowed ("src/main.py"); the agent creates them.  Errors: CO_E_INVAL with field "code_file".
 */
int proto_code_file_check(const char *path, size_t len, co_err *err)
    __attribute__((warn_unused_result));

#endif
