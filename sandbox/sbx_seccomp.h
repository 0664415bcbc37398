/*
 * sbx_seccomp: the job's seccomp denylist, compiled to BPF once per process so that the child
 * only has to call seccomp(2) (libseccomp's loader allocates, which the child must not do).
 */
#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

#include <linux/filter.h>

#include "co_err.h"

/**
 * The compiled filter for the native architecture (built on first use, thread-safe).  The
 * program is borrowed and lives until the process exits.  Errors: libseccomp failed.
 */
int sbx_seccomp_prog(const struct sock_fprog **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Build the filter into a freshly allocated program (the caller frees out->filter).  Used by
 * sbx_seccomp_prog() and by tests.
 */
int sbx_seccomp_build(struct sock_fprog *out, co_err *err) __attribute__((warn_unused_result));

/**
 * Like sbx_seccomp_build(), through a cache file in @dir ("seccomp-<key>.bpf", where the key
 * hashes the rule tables and the libseccomp version): a valid file owned by root and not
 * writable by others is loaded instead of building (which costs a one-shot cacheout-run about a
 * quarter of a millisecond); otherwise the program is built and, when running as root, saved
 * atomically.  A file that fails its checksum is ignored and replaced.
 */
int sbx_seccomp_cached(struct sock_fprog *out, const char *dir, co_err *err)
    __attribute__((warn_unused_result));

#endif
