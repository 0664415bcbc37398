/*
 * agent_config: the settings of cacheout-agent, read from the environment (after command-line
 * flags have been copied into it and an optional .env has been loaded), plus detection of the
 * machine's capacity.  Every bad value fails start-up with an error naming the variable.
 */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "co_err.h"
#include "co_id.h"
#include "co_log.h"

/* Default coordinator path when COORDINATOR_URL has none. */
#define AGENT_DEFAULT_PATH "/ws/agent"
#define AGENT_DEFAULT_WORK_ROOT "/var/lib/cacheout-agent"
#define AGENT_DEFAULT_GRACE_SECONDS 30
#define AGENT_DEFAULT_AUTH_RETRY_SECONDS 300
/* RAM kept back for the host: the larger of this and 10% of MemTotal. */
#define AGENT_RAM_RESERVE_MIN_MB 512
#define AGENT_IMAGES_MAX 64

/* Most coordinator URLs COORDINATOR_URL may list. */
#define AGENT_URLS_MAX 16

/** One parsed coordinator URL (strings owned by the agent_config holding it). */
struct agent_url {
    char *url;  /* as given */
    bool tls;   /* wss:// (or https://) */
    char *host; /* host name or address, without brackets */
    int port;   /* 1-65535, default 80 / 443 */
    char *path; /* starts with '/', default AGENT_DEFAULT_PATH */
};

/** The agent's settings (a plain value struct; strings are owned, see agent_config_release). */
struct agent_config {
    /* Every URL of COORDINATOR_URL (a comma-separated list), in order; the agent connects to
     * one at a time and fails over to the next (agent_core.c).  n_urls >= 1 after a load. */
    struct agent_url *urls;
    size_t n_urls;
    bool any_tls; /* one of them is wss:// */

    /* The first URL parsed (or the one agent_config_parse_url parsed). */
    char *url;  /* as given */
    bool tls;   /* wss:// (or https://) */
    char *host; /* host name or address, without brackets */
    int port;   /* 1-65535, default 80 / 443 */
    char *path; /* starts with '/', default AGENT_DEFAULT_PATH */

    char *tls_ca_file; /* AGENT_TLS_CA_FILE: CA bundle for wss://, NULL: the system's */
    bool tls_insecure; /* AGENT_TLS_INSECURE: accept any server certificate (testing only) */
    char *token;       /* AGENT_TOKEN, "" when unset */
    char *key; /* AGENT_KEY (a user's sell key, sent as Authorization: Bearer), "" when unset */
    char worker_id[CO_ID_MAX + 1];
    char owner_id[CO_ID_MAX + 1]; /* defaults to worker_id */
    int64_t cores;                /* AGENT_CORES, default: detected */
    int64_t ram_mb;               /* AGENT_RAM_MB, default: detected minus reserve */
    char **images;                /* AGENT_IMAGES (comma-separated ids), default "default" */
    size_t n_images;
    char *work_root;             /* AGENT_WORK_ROOT: absolute, per-job staging folders live here;
                                    default: agent_default_work_root() */
    int64_t grace_seconds;       /* AGENT_GRACE_SECONDS, default 30 */
    int64_t auth_retry_s;        /* AGENT_AUTH_RETRY_SECONDS, default 300 */
    bool exit_on_auth_error;     /* AGENT_EXIT_ON_AUTH_ERROR, default false */
    int64_t output_limit;        /* AGENT_OUTPUT_LIMIT bytes per stream, default 1 MiB */
    int64_t pids;                /* AGENT_JOB_PIDS, pids limit per job, default 256 */
    int64_t max_artifact_bytes;  /* AGENT_MAX_ARTIFACT_BYTES per attempt, default 64 MiB */
    int64_t max_artifact_files;  /* AGENT_MAX_ARTIFACT_FILES per attempt, default 1000 */
    bool bench_no_sandbox;       /* AGENT_BENCH_NO_SANDBOX: never run anything (benchmarks only) */
    enum co_log_level log_level; /* LOG_LEVEL, default INFO */
    char *log_file;              /* LOG_FILE, NULL when unset */
    /* AGENT_PRICE_PER_CORE_SECOND / AGENT_PRICE_PER_GB_SECOND (credits): the seller's market
     * prices, sent in the hello when either is set. */
    bool has_price;
    int64_t price_per_core_second; /* micro-credits */
    int64_t price_per_gb_second;   /* micro-credits */
};

/** What the machine offers, as detected (or given by tests). */
struct agent_host_caps {
    int64_t cpus;         /* usable online CPUs, >= 1 */
    int64_t mem_total_mb; /* MemTotal, >= 1 */
    char hostname[256];   /* "" when unknown */
};

/**
 * Detect the usable CPUs (online CPUs within this process's affinity mask), MemTotal from
 * /proc/meminfo and the host name.  Errors: /proc/meminfo cannot be read or parsed.
 */
int agent_host_caps_detect(struct agent_host_caps *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * The default AGENT_WORK_ROOT for a process of effective uid @euid: AGENT_DEFAULT_WORK_ROOT for
 * root; otherwise @xdg_state_home/cacheout-agent, else @home/.local/state/cacheout-agent (each
 * used only when it is an absolute path; both may be NULL).  Stores a caller-owned string in
 * *@out.  Errors: CO_E_INVAL naming AGENT_WORK_ROOT when a non-root caller has neither.
 */
int agent_default_work_root(uid_t euid, const char *xdg_state_home, const char *home, char **out,
                            co_err *err) __attribute__((warn_unused_result));

/** The default AGENT_RAM_MB for @mem_total_mb: MemTotal minus max(512 MiB, 10%), at least 1. */
int64_t agent_default_ram_mb(int64_t mem_total_mb);

/**
 * Parse a coordinator URL (ws://, wss://, http:// or https://; host, optional port, optional
 * path) into @cfg's url/tls/host/port/path.  Errors: CO_E_INVAL naming COORDINATOR_URL.
 */
int agent_config_parse_url(struct agent_config *cfg, const char *url, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Fill @cfg from the environment, using @caps for the defaults (WORKER_ID = host name,
 * AGENT_CORES = cpus, AGENT_RAM_MB = agent_default_ram_mb()).  COORDINATOR_URL is required.
 * Errors: CO_E_INVAL / CO_E_RANGE naming the variable.  On error @cfg is released.  The caller
 * releases @cfg with agent_config_release().
 */
int agent_config_load(struct agent_config *cfg, const struct agent_host_caps *caps, co_err *err)
    __attribute__((warn_unused_result));

/** Free the strings of @cfg and zero it (safe on a zeroed struct). */
void agent_config_release(struct agent_config *cfg);

/** True if @image is one of @cfg's images. */
bool agent_config_has_image(const struct agent_config *cfg, const char *image);

#endif
