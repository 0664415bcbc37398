/*
 * libsandbox: run one program in a fresh, locked-down sandbox and report what happened.
 *
 * A sandbox has its own mount, pid, network, ipc, uts and cgroup namespaces, a read-only root
 * built from an image, size-limited tmpfs at /work (the working directory) and /tmp, a fresh
 * /proc, a minimal /dev and no /sys.  The job runs as an unprivileged uid/gid of its own (one per
 * concurrent sandbox, see SBX_UID_BASE), with every capability dropped, no_new_privs and a
 * seccomp allowlist, inside a cgroup that enforces the requested cores, memory (no swap) and pids.
 *
 * Threads: sbx_run() and sbx_run_ex() may be called from several threads at once (one call per
 * job).  Nothing is allocated between clone() and execve().  sbx_cancel() may be called from any
 * thread.  The host side runs as root, or rootless in a user namespace of each sandbox's own
 * (see sandbox/README.md); the sandbox fails closed: if a
 * namespace, mount, limit or filter cannot be applied the job does not run and the result says
 * which step failed.
 */
#ifndef SBX_H
#define SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "co_err.h"

/** First uid/gid used for jobs; slot N runs as SBX_UID_BASE + N (both uid and gid). */
#define SBX_UID_BASE 900000u
/** Number of concurrent sandboxes per host (slots 0 .. SBX_MAX_SLOTS - 1). */
#define SBX_MAX_SLOTS 256

/** Network modes. */
enum sbx_network {
    SBX_NET_NONE = 0, /* an empty network namespace: no interface is up */
    SBX_NET_LOOPBACK, /* an own network namespace with only "lo" up */
};

/**
 * A file written into /work before the job starts, owned by the job's uid.  Its contents are
 * @host_path (a host file copied in; its mode is kept unless @mode is non-zero) or, when
 * @host_path is NULL, the @len bytes at @data (@data may be NULL when @len is 0).  @name is
 * relative to /work and may contain sub-folders ("src/main.py"); it must not be empty, absolute, or
 * contain "." or ".." components.  Strings are borrowed.
 */
struct sbx_file {
    const char *name;
    const void *data;
    size_t len;
    const char *host_path;
    mode_t mode; /* 0: 0644 for data, the host file's mode for host_path */
};

/**
 * What to run and with which limits.  Initialise with sbx_spec_init() (which sets the defaults
 * below), then fill in.  Every pointer is borrowed for the duration of the call.
 */
struct sbx_spec {
    const char *const *argv;      /* required, NULL-terminated; argv[0] looked up in PATH */
    const char *const *env;       /* optional extra "KEY=VALUE" strings, NULL-terminated */
    const struct sbx_file *files; /* optional files for /work */
    size_t n_files;
    const char *image;         /* "default", a registered image name, or an absolute
                                  path to a rootfs folder; default "default" */
    int64_t cores_milli;       /* CPU quota in thousandths of a core; default 1000 */
    int64_t memory_bytes;      /* memory limit, swap disabled; default 256 MiB */
    int64_t pids;              /* pids limit; default 64 */
    int64_t tmp_bytes;         /* /tmp tmpfs size; default 64 MiB */
    int64_t work_bytes;        /* /work tmpfs size; default 64 MiB */
    int64_t shm_bytes;         /* /dev/shm tmpfs size; default 16 MiB */
    int64_t wall_ms;           /* wall-clock limit; default 10 s; 0 = none */
    int64_t cpu_ms;            /* CPU-time limit (user + sys, whole cgroup); 0 = none */
    int64_t output_limit;      /* per-stream cap in bytes (stdout, stderr); default 1 MiB */
    bool kill_on_output_limit; /* kill the job when a stream passes its cap */
    enum sbx_network network;  /* default SBX_NET_NONE */
    /*
     * Keep the job's /work: sbx_run() hands back a descriptor of the /work folder in
     * res->work_fd (see struct sbx_result).  The tmpfs outlives the sandbox while the
     * descriptor is open, so that the caller can read what the job left there (artifacts) once
     * every process of the job is gone.  Default false.
     */
    bool keep_work;
};

/** Fill @spec with the defaults documented in struct sbx_spec (argv NULL). */
void sbx_spec_init(struct sbx_spec *spec);

/**
 * Check @spec without running anything: argv present, limits in range, file names safe, image
 * name well-formed.  Errors: CO_E_INVAL / CO_E_RANGE with the field named in err->field.
 */
int sbx_spec_validate(const struct sbx_spec *spec, co_err *err) __attribute__((warn_unused_result));

/** How a job ended. */
enum sbx_status {
    SBX_OK = 0,         /* exit code 0 */
    SBX_RUNTIME_ERROR,  /* non-zero exit code (also: the program could not be executed) */
    SBX_SIGNALED,       /* killed by a signal not sent by the sandbox */
    SBX_TIMEOUT,        /* wall-clock limit reached */
    SBX_CPU_TIMEOUT,    /* CPU-time limit reached */
    SBX_OOM,            /* the memory limit was hit and the OOM killer killed a process */
    SBX_SECCOMP,        /* killed by SIGSYS (a forbidden system call, e.g. a foreign arch) */
    SBX_OUTPUT_LIMIT,   /* killed for passing the output cap (kill_on_output_limit) */
    SBX_INTERNAL_ERROR, /* the sandbox itself failed; the job did not run */
    SBX_CANCELLED,      /* killed by sbx_cancel() */
};

/** A stable lower-case name: "ok", "runtime_error", ..., "internal_error", "cancelled". */
const char *sbx_status_name(enum sbx_status status);

/** Stream numbers passed to output callbacks. */
enum sbx_stream { SBX_STDOUT = 1, SBX_STDERR = 2 };

/** The outcome of one run.  Release with sbx_result_release(). */
struct sbx_result {
    enum sbx_status status;
    int exit_code;          /* -1 when the job did not exit normally */
    int signal;             /* the killing signal, 0 when none */
    int64_t wall_ms;        /* from start of the sandbox to the end of the job */
    int64_t cpu_ms;         /* user + system CPU of the whole cgroup */
    int64_t memory_peak_kb; /* cgroup memory peak (includes tmpfs pages and page cache) */
    int64_t max_rss_kb;     /* largest RSS of any waited-for process */
    bool oom_killed;        /* the OOM killer killed at least one process */
    bool stdout_truncated, stderr_truncated;
    int64_t stdout_bytes, stderr_bytes; /* bytes the job wrote, including dropped ones */
    char *stdout_data;                  /* captured output (sbx_run only, up to the cap), owned */
    char *stderr_data;                  /* NUL-terminated; lengths are min(bytes, cap) */
    size_t stdout_len, stderr_len;
    unsigned slot; /* the slot used; the job ran as uid/gid SBX_UID_BASE + slot */
    uid_t uid;
    uid_t host_uid; /* the job's uid seen from the host: uid, or for a rootless caller its
                       subordinate uid + slot (see sandbox/README.md) */
    /* For SBX_INTERNAL_ERROR, and for exec failures: the failing step, errno and a message. */
    char error_step[32]; /* "" when no error, else e.g. "cgroup", "mount_proc", "execve" */
    int error_errno;
    char error_msg[512];
    /*
     * spec->keep_work: a read-only descriptor (O_DIRECTORY, close-on-exec) of the job's /work
     * when has_work_fd, owned by @res (sbx_result_release() closes it; take it with
     * co_steal_fd() to keep it longer).  Nothing of the job runs any more when sbx_run()
     * returns, so nothing changes below it; its files are still charged to the job's memory
     * limit on the host until it is closed.  Read it without following links (openat with
     * O_NOFOLLOW): the job chose every name and link in it.
     */
    bool has_work_fd;
    int work_fd;
};

/** Free what @res owns (the captured output) and zero it. */
void sbx_result_release(struct sbx_result *res);

/**
 * Append @res as one JSON object (no newline) to @out: status, exit_code, signal, wall_ms, cpu_ms,
 * memory_peak_kb, max_rss_kb, oom_killed, stdout_truncated, stderr_truncated, stdout_bytes,
 * stderr_bytes, error (null or {step, errno, message}), slot, uid, host_uid.  @out is owned by the
 * caller.
 */
struct co_buf;
void sbx_result_json(const struct sbx_result *res, struct co_buf *out);

/**
 * Called from the thread running the job with each chunk of output, as it arrives and only up to
 * the per-stream cap.  @data is borrowed for the call.
 */
typedef void (*sbx_output_fn)(void *ud, enum sbx_stream stream, const char *data, size_t len);

/** A cancellation handle (opaque). */
struct sbx_cancel;

/** Create a cancellation handle.  Errors: the eventfd cannot be created. */
int sbx_cancel_new(struct sbx_cancel **out, co_err *err) __attribute__((warn_unused_result));
/** Free a handle (NULL allowed).  The run using it must have returned. */
void sbx_cancel_free(struct sbx_cancel *c);
/**
 * Ask the run using @c to kill its job (async-signal-safe and thread-safe; idempotent).  A run
 * that has not started yet is killed as soon as it starts.  Its status becomes SBX_CANCELLED.
 */
void sbx_cancel(struct sbx_cancel *c);

/** Options of sbx_run_ex(); zero-initialise. */
struct sbx_run_opts {
    sbx_output_fn on_output;   /* NULL: no streaming */
    void *ud;                  /* passed to on_output */
    bool capture;              /* also keep the output in res->stdout_data / stderr_data */
    struct sbx_cancel *cancel; /* NULL: not cancellable; borrowed */
};

/**
 * Run @spec and wait for it, capturing stdout and stderr (up to the cap) into @res.
 * Returns 0 when the job ran (whatever its status), -1 when it did not: @err then says why and
 * @res has status SBX_INTERNAL_ERROR with error_step / error_errno / error_msg filled in.
 * @res is always initialised (release it with sbx_result_release()).
 */
int sbx_run(const struct sbx_spec *spec, struct sbx_result *res, co_err *err)
    __attribute__((warn_unused_result));

/** Like sbx_run() with streaming, capture choice and cancellation from @opts (may be NULL). */
int sbx_run_ex(const struct sbx_spec *spec, const struct sbx_run_opts *opts, struct sbx_result *res,
               co_err *err) __attribute__((warn_unused_result));

/**
 * Create fresh, empty network namespaces ahead of time in a background thread, so that jobs with
 * network "none" do not create one on their critical path (about 0.5-0.8 ms of kernel work).
 * Each namespace serves exactly one job.  @refill: keep @n ready all the time (the agent);
 * otherwise create @n once (cacheout-run: one, made while the parent prepares the rest).  A run
 * that finds the pool empty while one is being made waits for it.  Calling again changes the
 * settings; @n = 0 stops creating.  Errors: the thread cannot be started.
 */
int sbx_prewarm(unsigned n, bool refill, co_err *err) __attribute__((warn_unused_result));

/**
 * The sandbox launcher (sandbox/README.md, "The launcher"): sandboxes cloned from a small
 * single-threaded process, this program re-executed, instead of from the caller, whose page
 * tables a clone would copy.  A program that may use it calls sbx_launcher_entry(argc, argv)
 * first thing in main(): in the launcher it serves runs and never returns; elsewhere it returns
 * at once.  Long-lived callers opt in with sbx_launcher_enable(), which starts it (a thread of
 * the caller keeps one running: a launcher that died fails the run it was serving as an internal
 * error at step "clone", and the next run starts a new one).  CACHEOUT_LAUNCHER=1 uses it in any
 * root caller that called sbx_launcher_entry() (cacheout-run in the escape suite), =0 never.
 * Rootless sandboxes never use it.  Errors: the launcher cannot be started.
 */
void sbx_launcher_entry(int argc, char **argv);
int sbx_launcher_enable(co_err *err) __attribute__((warn_unused_result));

/** For tests: the current launcher's pid (0: none), its sandboxes so far, launchers started. */
void sbx_launcher_stats(pid_t *pid, uint64_t *clones, unsigned *starts);

/**
 * Let a janitor thread finish runs after sbx_run() returns (long-lived callers only, e.g. the
 * agent; never in a process that exits right after a run): for a job that ended by itself, it
 * reaps the sandbox's init and kills what is left in its cgroup; the slot stays locked until then.
 * On v1 and hybrid hosts the emptied cgroup is kept for the slot's next job in this process
 * (counters reset, limits written again unless they are the slot's last job's; the slot is
 * offered first), elsewhere removed.  As root, later runs also enter copies of a mount template
 * per image instead of building the root each time (sandbox/README.md, "Mount templates").
 * The kernel is already killing whatever the job left behind when sbx_run() returns.
 * Errors: the thread cannot be started.
 */
int sbx_async_cleanup(co_err *err) __attribute__((warn_unused_result));

/**
 * As root, prepare the user @user for rootless sandboxes (sandbox/README.md, "Rootless"): a range
 * of subordinate uids and gids for the job ids (added with usermod when missing) and, on v1 and
 * hybrid hosts, cgroup folders the user may create job cgroups in.  Appends what it found and
 * did, a line each, to @report (caller-owned).  Errors: not root, no such user, usermod or a
 * cgroup write failing, a pure cgroup2 host (the message says how to delegate there).
 */
int sbx_setup_rootless(const char *user, struct co_buf *report, co_err *err)
    __attribute__((warn_unused_result));

#endif
