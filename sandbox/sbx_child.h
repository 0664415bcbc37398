/*
 * sbx_child: the sandbox's side of sbx_run() (internal to libsandbox).  The parent prepares a
 * struct child_ctx, clones, and the child (sbx_child_main(), pid 1 of the sandbox) builds the
 * sandbox from it and executes the job.  Between clone() and execve() the child allocates
 * nothing, logs nothing and uses raw system calls for credentials; failures travel to the
 * parent as a struct child_msg {step, errno} on the status pipe, and the parent names the step
 * with sbx_child_step_name()/sbx_child_step_what().
 */
#ifndef SBX_CHILD_H
#define SBX_CHILD_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_image.h"
#include "sbx_internal.h"

/* The steps of the child, reported by number and named in errors. */
enum step {
    STEP_NONE = 0,
    STEP_FDS,
    STEP_PDEATHSIG,
    STEP_SIGNALS,
    STEP_SCHED,
    STEP_WAIT_PARENT,
    STEP_CGROUP_JOIN,
    STEP_CGROUP_NS,
    STEP_NETNS,
    STEP_IPCNS,
    STEP_UTSNS,
    STEP_MOUNT_PRIVATE,
    STEP_MOUNT_TEMPLATE,
    STEP_ROOT_BIND,
    STEP_ROOT_CHDIR,
    STEP_BIND,
    STEP_BIND_RO,
    STEP_MOUNT_TMP,
    STEP_MOUNT_WORK,
    STEP_WORK_FILES,
    STEP_MOUNT_PROC,
    STEP_PROC_RO,
    STEP_PROC_MASK,
    STEP_MOUNT_DEV,
    STEP_MKNOD,
    STEP_DEV_BIND,
    STEP_DEV_LINKS,
    STEP_MOUNT_SHM,
    STEP_ROOT_RO,
    STEP_PIVOT_ROOT,
    STEP_UMOUNT_OLD,
    STEP_HOSTNAME,
    STEP_LOOPBACK,
    STEP_RLIMIT,
    STEP_CAPS,
    STEP_SETGROUPS,
    STEP_SETGID,
    STEP_SETUID,
    STEP_NO_NEW_PRIVS,
    STEP_SECCOMP,
    STEP_FORK,
    STEP_STDIO,
    STEP_CHDIR_WORK,
    STEP_EXECVE,
    STEP_COUNT
};

enum msg_kind { MSG_SETUP_ERR = 1, MSG_EXEC_ERR, MSG_EXIT };

struct child_msg {
    int32_t kind;
    int32_t step;
    int32_t err;
    int32_t wstatus;
    int64_t maxrss_kb; /* MSG_EXIT: largest RSS of the processes init reaped so far */
};

/* Everything the child needs, prepared by the parent (the child only reads it). */
#define SBX_FIXED_RLIMITS 5

struct child_ctx {
    const struct sbx_image *img;
    const struct sbx_cgroup *cg;
    int status_w, out_w, err_w;
    int go_r; /* the parent writes one byte once the cgroup exists */
    /*
     * Network "none" as root: the network namespace comes with the parent's "go", and the IPC
     * and UTS ones too when the pool made them (else init unshares them); init is then cloned
     * without CLONE_NEWNET, CLONE_NEWIPC and CLONE_NEWUTS.  See wait_go().
     */
    bool ns_via_go;
    /*
     * Rootless: the child lives in the sandboxes' user namespace (see clone_in_userns()).  Its
     * device nodes are binds of the host's (mknod is not allowed in a user namespace), and
     * every remount keeps the flags the kernel locked on the host's mounts (noexec, the atime
     * mode), which a user namespace may not clear.
     */
    bool userns;
    unsigned long root_flags;
    unsigned long dev_flags;
    unsigned long bind_flags[SBX_IMAGE_MAX_BINDS];
    int keep[16 + SBX_FILES_MAX];
    int n_keep;
    const struct sbx_spec *spec;
    const int *file_fds; /* per work file: host fd, or -1 for in-memory data */
    const mode_t *file_modes;
    char tmp_opts[128], work_opts[160], shm_opts[128];
    int cap_last;
    /* A mount template of the image (sbx_mnt_template_get()), or -1: init enters a copy of it
     * instead of building the root (it is then cloned without CLONE_NEWNS). */
    int mnt_template_fd;
    /* The host process's argument area (sbx_child_args_area(), found once per process): init
     * blanks it, since it is a copy of the host's memory.  0, 0: not found (nothing blanked). */
    unsigned long arg_start, arg_end;
    uid_t uid;
    gid_t gid;
    struct rlimit nproc, nofile, cpu;
    bool cpu_rlimit;
    struct rlimit fixed[SBX_FIXED_RLIMITS]; /* see sbx_fixed_rlimits */
    const struct sock_fprog *prog;
    char *const *argv;
    char *const *envp;
    const char *path; /* PATH used to find argv[0] */
};

/**
 * The rlimits set explicitly instead of being inherited from the caller, in the order of
 * child_ctx.fixed: RTPRIO, NICE, MEMLOCK, STACK, FSIZE.
 */
extern const int sbx_fixed_rlimits[SBX_FIXED_RLIMITS];

/**
 * The argument area of this process ([*@start, *@end), from /proc/self/stat), read once per
 * process: init, a copy of this process's memory, blanks it (see sbx_child_main()).  Both 0 when
 * it cannot be found.
 */
void sbx_child_args_area(unsigned long *start, unsigned long *end);

/** The name ("mount_proc") and the description of child step @step; "none"/"?" if unknown. */
const char *sbx_child_step_name(int step);
const char *sbx_child_step_what(int step);

/**
 * The sandbox's init: build the sandbox described by @c (borrowed, read only), drop privileges,
 * load the seccomp program, fork the job and report its end on the status pipe.  Never returns.
 */
int sbx_child_main(const struct child_ctx *c) __attribute__((noreturn));

/**
 * The helper process of a mount template (sbx_mnt_template.c), cloned into a new mount
 * namespace: build @c's root as init would (binds, read-only, pivot_root, old root detached),
 * report on c->status_w (MSG_EXIT when done, else MSG_SETUP_ERR with the step), then wait for a
 * byte or the end on @hold_r, and exit.  Never returns.
 */
int sbx_child_template_main(const struct child_ctx *c, int hold_r) __attribute__((noreturn));

/**
 * The parent's "go" to the child on the socket @fd, with the descriptors @pass[0..@n) that are
 * >= 0 (at most 3: the network, IPC and UTS namespaces, in that order; init sends /work back as
 * the first).  Errors: the child is gone (-1, errno set).
 */
int sbx_child_send_go(int fd, const int *pass, int n);

/**
 * The parent's side of spec->keep_work: take the /work descriptor init sent on the "go" socket
 * @fd, without waiting (init sends it before the job starts).  Returns 0 with *@work_fd set, or
 * -1 (*@work_fd = -1) when init sent none (it failed before).
 */
int sbx_child_recv_work(int fd, int *work_fd);

/**
 * Whether the init of @c is cloned by the launcher (sbx_launcher.c): CACHEOUT_LAUNCHER=1 yes,
 * =0 no, else when the process called sbx_launcher_enable(); never when its descriptors do not
 * fit in one message.  Root sandboxes only (the caller checks: a rootless init is cloned inside
 * its user namespace, see clone_in_userns()).
 */
bool sbx_launcher_wanted(const struct child_ctx *c);

/**
 * Clone init from the launcher with @flags (namespaces and SIGCHLD) and CLONE_PARENT, so that it
 * is this process's child; @c is packed and sent with its descriptors.  Returns init's pid with
 * its pidfd in *@pidfd, or -1 with *@errnum and *@what set: the launcher could not be started,
 * is gone or answered garbage (it is then dropped and the next run starts a new one), or its
 * clone failed.
 */
long sbx_launcher_clone(const struct child_ctx *c, unsigned long flags, int *pidfd, int *errnum,
                        const char **what);

#endif
