/*
 * sbx_cgroup: job cgroups written directly to cgroupfs behind a small backend interface (v1 and
 * hybrid hosts: one folder per v1 hierarchy, the cgroup2 mount of a hybrid host is not used;
 * pure v2 hosts: a delegated subtree).  Internal to libsandbox; tested against fake trees.
 */
#ifndef SBX_CGROUP_H
#define SBX_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "co_err.h"

enum sbx_cg_mode { SBX_CG_V1 = 1, SBX_CG_HYBRID, SBX_CG_V2 };

/*
 * v1 controllers the sandbox uses (each may share a mount with others, e.g. cpu,cpuacct): the
 * first SBX_CG_NREQUIRED are needed; blkio is used when the host has it with a weight file (a
 * proportional I/O scheduler: BFQ), else its folder stays empty ("").
 */
enum sbx_cg_ctrl {
    SBX_CG_CPU,
    SBX_CG_CPUACCT,
    SBX_CG_MEMORY,
    SBX_CG_PIDS,
    SBX_CG_FREEZER,
    SBX_CG_BLKIO,
    SBX_CG_NCTRL
};
#define SBX_CG_NREQUIRED SBX_CG_BLKIO

/** What was found on the host, detected once per process. */
struct sbx_cgroup_host {
    enum sbx_cg_mode mode;
    char v1[SBX_CG_NCTRL][PATH_MAX]; /* v1: the parent folder of job cgroups per controller */
    char v2[PATH_MAX];               /* v2: the parent folder of job cgroups */
    bool memsw;                      /* v1: memory.memsw.* exists (swap accounting) */
    /* The I/O weight file of a job cgroup ("" when the host has none): v1 "blkio.bfq.weight" or
     * "blkio.weight", v2 "io.weight" or "io.bfq.weight"; the weight follows the paid cores. */
    char io_weight[24];
    int io_weight_default; /* the file's default, the weight of one core */
    int io_weight_max;
    /* Open parent folders (v1: per controller; v2: [0]), so that a sandbox child can join its
     * cgroup after pivot_root, when the host's /sys is out of sight.  -1 when not open. */
    int dirfd[SBX_CG_NCTRL];
};

#define SBX_CG_MAX_DIRS SBX_CG_NCTRL

/** One job cgroup (a folder per distinct hierarchy). */
struct sbx_cg_limits {
    int64_t cores_milli;  /* quota = cores_milli * 100 us per 100 ms period */
    int64_t memory_bytes; /* memory limit; swap disabled */
    int64_t pids;
    /* The job has a network (not "none"): on v1, TCP buffers are charged to memory too
     * (memory.kmem.tcp.limit_in_bytes = the memory limit); v2 charges them always. */
    bool tcp;
};

struct sbx_cgroup {
    const struct sbx_cgroup_host *host;
    int n_dirs;
    char dirs[SBX_CG_MAX_DIRS][PATH_MAX];  /* distinct folders, created in this order */
    char procs[SBX_CG_MAX_DIRS][PATH_MAX]; /* the file the child writes "0" to, to join:
                                              v1 "tasks", v2 "cgroup.procs" */
    int ctrl_dir[SBX_CG_NCTRL];            /* v1: index into dirs per controller */
    int join_dirfd[SBX_CG_MAX_DIRS];       /* procs[i] is join_rel[i] below this open folder */
    char join_rel[SBX_CG_MAX_DIRS][96];
    bool created;
    int64_t oom_base; /* v1, a recycled cgroup: its oom_kill count before this job */
    /* The limits written to the folders (applied_set): a recycled cgroup whose next job asks
     * for the same limits keeps them instead of writing every file again. */
    struct sbx_cg_limits applied;
    bool applied_set;
};

struct sbx_cg_stats {
    int64_t cpu_us;    /* user + system CPU of the whole cgroup */
    int64_t mem_peak;  /* peak memory in bytes, -1 if unknown */
    int64_t oom_kills; /* processes killed by the OOM killer */
};

/**
 * Detect the host's cgroup layout: @cgroup_root (normally "/sys/fs/cgroup"), @mountinfo (the text
 * of /proc/self/mountinfo) and @self_cgroup (the text of /proc/self/cgroup).  Job cgroups live in
 * a folder named @parent ("cacheout") at the root of each v1 hierarchy, or, on pure v2, below the
 * process's own cgroup after it moved itself into a leaf (see sbx_cgroup_host_init_v2()).
 * Errors: a needed controller is missing, the layout is unknown, a write fails.
 */
int sbx_cgroup_host_detect(struct sbx_cgroup_host *host, const char *cgroup_root,
                           const char *mountinfo, const char *self_cgroup, const char *parent,
                           co_err *err) __attribute__((warn_unused_result));

/**
 * The cgroup (v1) and cgroup2 mounts of this process's mount namespace, written into @out (of
 * @size bytes) as /proc/self/mountinfo lines that sbx_cgroup_parse_mountinfo() reads (mount point
 * and super options only), from the kernel's listmount() and statmount() (Linux 6.10 and later,
 * with statmount's mount options).  Reading /proc/self/mountinfo formats every mount's options,
 * which costs a one-shot runner about 0.3-0.4 ms on a host whose root is an overlay with many
 * layers.  Returns the number of lines, or -1 (ENOSYS on older kernels, or a mount point this
 * format cannot carry): the caller then reads /proc/self/mountinfo.
 */
int sbx_cgroup_mounts_fast(char *out, size_t size);

/**
 * Parse v1 and cgroup2 mounts out of the text of /proc/self/mountinfo into @host->v1 (mount
 * points) and @unified_mnt (the cgroup2 mount point or "").  Returns a bitmask of the controllers
 * found (1 << enum sbx_cg_ctrl).  Pure, for tests.
 */
unsigned sbx_cgroup_parse_mountinfo(const char *mountinfo, struct sbx_cgroup_host *host,
                                    char unified_mnt[PATH_MAX]);

/**
 * Set up a v1 host (reported as hybrid when @unified_mnt, a cgroup2 mount, is not NULL) whose
 * job cgroups go under the folders in @host->v1 (already filled with hierarchy mount points)
 * joined with @parent.  Creates the parent folders.
 */
int sbx_cgroup_host_init_v1(struct sbx_cgroup_host *host, const char *unified_mnt,
                            const char *parent, co_err *err) __attribute__((warn_unused_result));

/**
 * Set up a pure v2 host: @base is the delegated cgroup folder this process lives in.  If @base
 * lacks the cpu, memory and pids controllers in cgroup.subtree_control and holds processes, the
 * process moves itself into the leaf @base/supervisor first (a cgroup with controllers enabled for
 * its children may not hold processes).  Then it enables the controllers in @base and in
 * @base/@parent, where job cgroups are created.  Errors: other processes in @base (not
 * delegated), controllers not available, writes failing.
 */
int sbx_cgroup_host_init_v2(struct sbx_cgroup_host *host, const char *base, const char *parent,
                            co_err *err) __attribute__((warn_unused_result));

/**
 * The name of the folder of job cgroups for a process of @uid: CACHEOUT_CGROUP_PARENT when set,
 * else "cacheout" for root and "cacheout-<uid>" for a rootless caller.
 */
void sbx_cgroup_parent_name(uid_t uid, char *out, size_t size);

/**
 * As root, delegate job cgroups to @uid/@gid on a v1 or hybrid host: create @parent at the root
 * of every hierarchy the sandbox needs (found in @mountinfo under @cgroup_root) and give the
 * user the folder and its tasks and cgroup.procs files.  Appends a line per folder to @report.
 * Errors: a pure cgroup2 host (the message says how to delegate there), a controller missing,
 * mkdir or chown failing.
 */
struct co_buf;
int sbx_cgroup_delegate(const char *cgroup_root, const char *mountinfo, const char *parent,
                        uid_t uid, gid_t gid, struct co_buf *report, co_err *err)
    __attribute__((warn_unused_result));

/** The host layout of this process, detected on first use (thread-safe).  Borrowed. */
int sbx_cgroup_host_get(const struct sbx_cgroup_host **out, co_err *err)
    __attribute__((warn_unused_result));

/** "v1", "hybrid" or "v2". */
const char *sbx_cgroup_mode_name(enum sbx_cg_mode mode);

/**
 * Fill in the paths of the job cgroup @name (e.g. "slot-3") without touching the file system,
 * so that a sandbox child can be cloned before the cgroup exists (see sbx_cgroup_make()).
 */
int sbx_cgroup_prepare(struct sbx_cgroup *cg, const struct sbx_cgroup_host *host, const char *name,
                       co_err *err) __attribute__((warn_unused_result));

/**
 * Create the prepared cgroup with @limits, removing a leftover of the same name first (its
 * processes are killed).  Errors: any mkdir or limit write fails; the partially created cgroup
 * is removed again (fail closed).
 */
int sbx_cgroup_make(struct sbx_cgroup *cg, const struct sbx_cg_limits *limits, co_err *err)
    __attribute__((warn_unused_result));

/** sbx_cgroup_prepare() and sbx_cgroup_make() in one go. */
int sbx_cgroup_create(struct sbx_cgroup *cg, const struct sbx_cgroup_host *host, const char *name,
                      const struct sbx_cg_limits *limits, co_err *err)
    __attribute__((warn_unused_result));

/** Read the CPU usage of @cg in microseconds. */
int sbx_cgroup_cpu_us(const struct sbx_cgroup *cg, int64_t *out, co_err *err)
    __attribute__((warn_unused_result));

/** Read CPU usage, memory peak and OOM kills of @cg. */
int sbx_cgroup_stats(const struct sbx_cgroup *cg, struct sbx_cg_stats *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Kill every process in @cg (v2 and hybrid: cgroup.kill; v1: freeze, SIGKILL all, thaw) and wait
 * until it is empty.
 */
int sbx_cgroup_kill(const struct sbx_cgroup *cg, co_err *err) __attribute__((warn_unused_result));

/** Kill everything in @cg and remove its folders.  Safe on a cgroup that was not created. */
int sbx_cgroup_destroy(struct sbx_cgroup *cg, co_err *err) __attribute__((warn_unused_result));

/**
 * For long-lived callers (the janitor): instead of removing @cg, empty it for the next job of
 * the same slot in this process.  v1 (and hybrid) only: kill everything in it, thaw it, release
 * the memory still charged to it (memory.force_empty), and remember its folders (device and
 * inode); the next sbx_cgroup_make() of that name in this process reuses them when they are
 * still those folders and empty, resetting the CPU and memory-peak counters, taking the OOM
 * count as a base and writing every limit again.  Anything unexpected, and v2: destroyed as by
 * sbx_cgroup_destroy().  Folders left when the process exits are removed by the next run of the
 * slot like any leftover.  Returns 1 when kept, 0 when removed, -1 when it could not be removed.
 */
int sbx_cgroup_recycle(struct sbx_cgroup *cg, co_err *err) __attribute__((warn_unused_result));

/* Small file helpers shared with the rest of the sandbox. */

/** Write @s to the existing file @path (no O_CREAT).  Errors name the path. */
int sbx_write_file(const char *path, const char *s, co_err *err)
    __attribute__((warn_unused_result));
/**
 * Append the whole of @path to @b, then a NUL (counted in @b->len).  Returns -1 with errno set
 * when it cannot be read.
 */
struct co_buf;
int sbx_slurp(const char *path, struct co_buf *b) __attribute__((warn_unused_result));
/** sbx_slurp() for text files that may be missing (read as empty).  Errors name the path. */
int sbx_read_text(const char *path, struct co_buf *b, co_err *err)
    __attribute__((warn_unused_result));
/** Read up to @size - 1 bytes of @path into @buf (NUL-terminated). */
int sbx_read_file(const char *path, char *buf, size_t size, co_err *err)
    __attribute__((warn_unused_result));

#endif
