/*
 * sbx_seccomp: the job's seccomp allowlist (sbx_seccomp_policy.c), compiled to BPF once per
 * process so that the child only has to call seccomp(2) (libseccomp's loader allocates, which the
 * child must not do), and cached across processes in a file named by the program's own hash
 * (sbx_seccomp.c).
 */
#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

#include <linux/filter.h>
#include <stdint.h>

#include "co_err.h"

/**
 * The compiled filter for the native architecture (built on first use, thread-safe).  The
 * program is borrowed and lives until the process exits.  Errors: libseccomp failed, or the
 * policy names a call libseccomp does not know.
 */
int sbx_seccomp_prog(const struct sock_fprog **out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Build the filter into a freshly allocated program (the caller frees out->filter).  Used by
 * sbx_seccomp_prog(), the build-time key generator and tests.  Errors: as sbx_seccomp_prog().
 */
int sbx_seccomp_build(struct sock_fprog *out, co_err *err) __attribute__((warn_unused_result));

/**
 * The system call number of @name on the native architecture in *@nr.  Errors: libseccomp does
 * not know the name for this architecture (the policy then fails to build: fail closed).
 */
int sbx_seccomp_resolve(const char *name, int *nr, co_err *err) __attribute__((warn_unused_result));

/** FNV-1a hash of the program's instructions (the cache key). */
uint64_t sbx_seccomp_hash(const struct sock_fprog *prog);

/**
 * Like sbx_seccomp_build(), through a cache file "@dir/seccomp-<key>.bpf", where the key is the
 * hash of the program compiled at build time (SBX_SECCOMP_KEY): a file owned by this user and
 * not writable by others whose contents hash to the key is loaded instead of building (which
 * costs a one-shot cacheout-run some libseccomp time); otherwise the program is built and, when
 * it hashes to the key, saved atomically.  Any change of the policy changes the key, so a stale
 * program is never loaded.
 */
int sbx_seccomp_cached(struct sock_fprog *out, const char *dir, co_err *err)
    __attribute__((warn_unused_result));

/** Like sbx_seccomp_cached() with an explicit @key (tests). */
int sbx_seccomp_cached_key(struct sock_fprog *out, const char *dir, uint64_t key, co_err *err)
    __attribute__((warn_unused_result));

#endif
