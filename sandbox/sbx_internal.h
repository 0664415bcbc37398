/* Internal limits and helpers of libsandbox shared between its source files and unit tests. */
#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include "co_err.h"
#include "sbx.h"

#define SBX_ARGV_MAX 4096
#define SBX_ENV_MAX 1024
#define SBX_FILES_MAX 1024
#define SBX_FILE_NAME_MAX 1024

/** The PATH of every job unless the spec's env overrides it. */
#define SBX_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

/**
 * Leave a cloned child (init, the template helper, the rootless intermediate, the user
 * namespace's holder) with the raw exit_group system call, not _exit(): the child of a
 * multi-threaded process must not run a sanitizer's exit hook, whose locks another thread of the
 * parent may have held at the clone (ThreadSanitizer's _exit waited for ever on its thread
 * registry in the template helper, and the agent's job threads with it).
 */
void sbx_exit_group(int code) __attribute__((noreturn));

/** qsort() comparison of two ints. */
int sbx_cmp_int(const void *a, const void *b);

/** Check a work file name (relative, no "", "." or ".." component, no trailing '/'). */
int sbx_file_name_check(const char *name, co_err *err) __attribute__((warn_unused_result));

/**
 * Zeroed memory of fresh pages (an anonymous mapping of its own), for the large per-run
 * structures (image, cgroup, child context: about 90 KiB, mostly PATH_MAX buffers).  Every clone
 * of a sandbox write-protects the caller's private pages; heap pages reused and zeroed (calloc)
 * after it take a copy-on-write fault each, with a TLB shoot-down of the caller's other threads'
 * CPUs, while fresh pages take a plain zero-fill fault, and only those written.  Aborts when out
 * of memory, as co_xcalloc().  Free with sbx_fresh_free() and the same @len (NULL allowed).
 */
void *sbx_fresh_alloc(size_t len);
void sbx_fresh_free(void *p, size_t len);

/** The eventfd behind a cancellation handle, -1 for NULL. */
int sbx_cancel_fd(const struct sbx_cancel *c);

/**
 * Build the job's environment: PATH, HOME=/work, LANG=C.UTF-8, then @extra ("KEY=VALUE", a later
 * entry replacing an earlier one with the same key).  Returns a NULL-terminated array whose
 * strings are borrowed from @extra or static; the caller frees the array only.
 */
const char **sbx_build_env(const char *const *extra);

/** Lock a free slot under @lock_dir: returns its lock fd (keep it open while the slot is used). */
int sbx_slot_acquire(const char *lock_dir, unsigned *slot, int *lock_fd, co_err *err)
    __attribute__((warn_unused_result));

/** A set of namespace descriptors for one sandbox; -1 where absent. */
struct sbx_nsset {
    int net, ipc, uts;
};

/**
 * Fresh network, IPC and UTS namespaces from the pool filled by sbx_prewarm(), for one sandbox:
 * 0 with descriptors the caller owns in *@out, or -1 (all -1) when the pool is empty and none is
 * being made (the caller then makes a network namespace with sbx_netns_create()).
 */
int sbx_nsset_take(struct sbx_nsset *out);

/**
 * Create a fresh network namespace from the calling thread (which returns to its own namespace)
 * and return an fd of it in *@out.  Errors: unshare or setns fails.
 */
int sbx_netns_create(int *out, co_err *err) __attribute__((warn_unused_result));

/**
 * Start @fn(@arg) in a detached thread (the background helpers of the sandbox).  Errors: the
 * thread cannot be created; the message names @what.
 */
int sbx_thread_start(void *(*fn)(void *), void *arg, const char *what, co_err *err)
    __attribute__((warn_unused_result));

struct sbx_cgroup;

/** True when sbx_async_cleanup() started the janitor thread. */
bool sbx_janitor_enabled(void);

/**
 * Hand a finished sandbox of @slot to the janitor: it reaps init @pid, empties @cg (stolen,
 * from sbx_fresh_alloc(), freed) for the slot's next job (sbx_cgroup_recycle(), or removes it) and
 * then closes @lock_fd, releasing the slot; a slot whose cgroup was kept is offered first by
 * sbx_slot_acquire().
 */
void sbx_janitor_add(pid_t pid, unsigned slot, struct sbx_cgroup *cg, int lock_fd);

struct sbx_image;

/**
 * The mount template of @img (sbx_mnt_template.c): a descriptor of a mount namespace whose root
 * is @img's, as init builds it, made on first use and kept for the process; *@fd is the caller's
 * copy (close it).  Root only (not in a user namespace).  Errors: the helper that builds it
 * failed (the message names its step); the caller then builds the root per run as before.
 */
int sbx_mnt_template_get(const struct sbx_image *img, int *fd, co_err *err)
    __attribute__((warn_unused_result));

/** Note that @slot's cgroup was kept for reuse (the janitor), so that it is taken first. */
void sbx_slot_recycled(unsigned slot);

#endif
