/*
 * agent_artifacts: reading a finished job's output artifacts -- the regular files under /work/out
 * of the job's work tmpfs, which the sandbox hands back as a descriptor (sbx_spec.keep_work) --
 * and handing them on in chunks (job.artifact, proto/PROTOCOL.md).
 *
 * Every name is the job's choice, so the walk never follows a link: folders and files are opened
 * with openat(O_NOFOLLOW) relative to their parent's descriptor and checked with fstat on the
 * opened descriptor.  Symbolic links, FIFOs, sockets and devices are skipped and noted, as are
 * names that are not safe relative paths (proto_file_path_check) and folders deeper than
 * AGENT_ARTIFACT_DEPTH_MAX.  The caps hold while reading, not after: at most @max_bytes bytes in
 * all (the file being read is cut there), at most @max_files files, at most
 * AGENT_ARTIFACT_ENTRIES_MAX directory entries looked at; beyond any of them the collection stops
 * with truncated set.  Memory is bounded by the depth (one open folder per level) and one chunk
 * buffer, whatever the number or size of the files.  Any thread; no global state.
 */
#ifndef AGENT_ARTIFACTS_H
#define AGENT_ARTIFACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_agent.h"

#define AGENT_ARTIFACT_BYTES_DEFAULT (INT64_C(64) << 20)
#define AGENT_ARTIFACT_FILES_DEFAULT 1000
#define AGENT_ARTIFACT_DEPTH_MAX 32
#define AGENT_ARTIFACT_ENTRIES_MAX 200000
#define AGENT_ARTIFACT_CHUNK (256 * 1024)

struct agent_art_limits {
    int64_t max_bytes; /* AGENT_MAX_ARTIFACT_BYTES */
    int64_t max_files; /* AGENT_MAX_ARTIFACT_FILES */
};

/**
 * Called for every chunk, in order: @path's bytes at @offset; @eof on the last chunk of a file
 * (an empty one for files whose data went out before).  Return 0 to go on, -1 to stop
 * (the collection then ends as it is, e.g. on cancel).
 */
typedef int (*agent_art_emit_fn)(void *ud, const char *path, int64_t offset, const char *data,
                                 size_t len, bool eof);

struct agent_art_summary {
    int64_t files, bytes, skipped;
    bool truncated;
    bool stopped; /* the callback asked to stop */
    char notes[PROTO_MESSAGE_MAX / 2];
};

/**
 * Walk @work_fd's "out" folder (none: no artifacts) and emit every artifact.  Fills @sum.
 * Returns 0, or -1 when the callback stopped it.
 */
int agent_artifacts_collect(int work_fd, const struct agent_art_limits *lim, agent_art_emit_fn emit,
                            void *ud, struct agent_art_summary *sum);

#endif
