/*
 * sbx_image: the root filesystem of a job.  "default" is a skeleton folder prepared once per
 * host boot under /run/cacheout (a generated /etc, mount points and the merged-/usr symlinks),
 * onto which the host's /usr, /bin, /sbin and /lib* are bound read-only.  Other images are
 * rootfs folders, either registered by name under the image folder or given as an absolute path.
 */
#ifndef SBX_IMAGE_H
#define SBX_IMAGE_H

#include <limits.h>
#include <sys/types.h>

#include "co_err.h"

/** The run-time folder (locks, skeletons); overridable with CACHEOUT_RUN_DIR for tests. */
#define SBX_RUN_DIR "/run/cacheout"
/** Where images registered by name live; overridable with CACHEOUT_IMAGE_DIR. */
#define SBX_IMAGE_DIR "/var/lib/cacheout/images"

#define SBX_IMAGE_MAX_BINDS 8

/** A resolved image: the folder that becomes "/" and the host folders bound into it. */
struct sbx_image {
    char root[PATH_MAX];
    /* The folder that was checked: the sandbox binds only this very folder (fail closed if
     * the path names another one by then, see sbx_run.c). */
    dev_t root_dev;
    ino_t root_ino;
    int n_binds;
    char bind_src[SBX_IMAGE_MAX_BINDS][PATH_MAX]; /* host folder, e.g. "/usr" */
    char bind_dst[SBX_IMAGE_MAX_BINDS][64];       /* relative to root, e.g. "usr" */
};

/**
 * Resolve @name ("default", a registered name, or an absolute path to a folder) into @img,
 * preparing the default skeleton on first use and creating missing mount points (proc, dev, tmp,
 * work) in rootfs folders.  Errors: CO_E_NOTFOUND when the image does not exist; CO_E_INVAL for a
 * malformed name; CO_E_SYS when preparing fails.
 */
int sbx_image_resolve(const char *name, struct sbx_image *img, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The run-time folder: CACHEOUT_RUN_DIR when set; else SBX_RUN_DIR for root, and for other users
 * (rootless sandboxes) /run/user/<uid>/cacheout or /tmp/cacheout-<uid>.  Borrowed.
 */
const char *sbx_run_dir(void);

/** Create @path and missing parents with @mode (existing folders are fine). */
int sbx_mkdir_p(const char *path, mode_t mode, co_err *err) __attribute__((warn_unused_result));

#endif
