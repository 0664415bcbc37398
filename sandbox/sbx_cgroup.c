/*
 * Job cgroups written directly to cgroupfs (see sbx_cgroup.h).  Two back ends behind a small
 * vtable chosen at detection time: v1 (also used on hybrid hosts, where the controllers live in
 * v1 hierarchies and the cgroup2 mount only adds a leaf for cgroup.kill) and v2.
 */
#include "sbx_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "sbx.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char *const ctrl_names[SBX_CG_NCTRL] = {"cpu",  "cpuacct", "memory",
                                                     "pids", "freezer", "blkio"};

/* I/O weight files, preferred first: name, default weight (one core), range. */
static const struct {
    const char *file;
    int def, min, max;
} io_weights[] = {
    {"io.weight", 100, 1, 10000},       /* v2, blk-iocost */
    {"io.bfq.weight", 100, 1, 1000},    /* v2, BFQ */
    {"blkio.bfq.weight", 100, 1, 1000}, /* v1, BFQ */
    {"blkio.weight", 500, 10, 1000},    /* v1, CFQ (before Linux 5.0) */
};

/* Find the I/O weight file that exists in @dir and record it in @host.  False if none. */
static bool
probe_io_weight(struct sbx_cgroup_host *host, const char *dir)
{
    for (size_t i = 0; i < CO_ARRAY_LEN(io_weights); i++) {
        char p[PATH_MAX];
        if (snprintf(p, sizeof(p), "%s/%s", dir, io_weights[i].file) < (int)sizeof(p) &&
            access(p, F_OK) == 0) {
            co_strlcpy(host->io_weight, io_weights[i].file, sizeof(host->io_weight));
            host->io_weight_default = io_weights[i].def;
            host->io_weight_max = io_weights[i].max;
            return true;
        }
    }
    host->io_weight[0] = '\0';
    return false;
}

struct cg_ops {
    int (*set_limits)(struct sbx_cgroup *cg, const struct sbx_cg_limits *l, co_err *err);
    int (*cpu_us)(const struct sbx_cgroup *cg, int64_t *out, co_err *err);
    int (*stats)(const struct sbx_cgroup *cg, struct sbx_cg_stats *out, co_err *err);
    int (*kill)(const struct sbx_cgroup *cg, co_err *err);
};

int
sbx_write_file(const char *path, const char *s, co_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_TRUNC);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot open '%s'", path);
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int saved = errno;
    close(fd);
    if (n < 0)
        return co_err_sys(err, saved, "cannot write '%s' to '%s'", s, path);
    if ((size_t)n != len)
        return co_err_set(err, CO_E_SYS, "short write of '%s' to '%s'", s, path);
    return 0;
}

int
sbx_read_file(const char *path, char *buf, size_t size, co_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot open '%s'", path);
    size_t off = 0;
    while (off + 1 < size) {
        ssize_t n = read(fd, buf + off, size - 1 - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            return co_err_sys(err, saved, "cannot read '%s'", path);
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    close(fd);
    return 0;
}

int
sbx_slurp(const char *path, struct co_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        co_buf_append(b, chunk, (size_t)n);
    }
    close(fd);
    co_buf_append(b, "", 1);
    return 0;
}

int
sbx_read_text(const char *path, struct co_buf *b, co_err *err)
{
    if (sbx_slurp(path, b) < 0) {
        if (errno != ENOENT)
            return co_err_sys(err, errno, "cannot read '%s'", path);
        co_buf_append(b, "", 1);
    }
    return 0;
}

static int
join(char out[PATH_MAX], const char *a, const char *b, co_err *err)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    if (n < 0 || n >= PATH_MAX)
        return co_err_set(err, CO_E_RANGE, "path too long: '%s/%s'", a, b);
    return 0;
}

static int
write_in(const char *dir, const char *file, const char *value, co_err *err)
{
    char path[PATH_MAX];
    if (join(path, dir, file, err) < 0)
        return -1;
    return sbx_write_file(path, value, err);
}

/* Write the decimal @value into @dir/@file. */
static int
write_int_in(const char *dir, const char *file, int64_t value, co_err *err)
{
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)value);
    return write_in(dir, file, v, err);
}

static int
read_in(const char *dir, const char *file, char *buf, size_t size, co_err *err)
{
    char path[PATH_MAX];
    if (join(path, dir, file, err) < 0)
        return -1;
    return sbx_read_file(path, buf, size, err);
}

/* The value after "key " on its own line of @text, or -1. */
static int64_t
keyed_value(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
            return strtoll(p + klen + 1, NULL, 10);
    }
    return -1;
}

static int
mkdir_p1(const char *path, co_err *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return co_err_sys(err, errno, "cannot create cgroup '%s'", path);
    return 0;
}

static void
sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* True when the cgroup.procs file of @dir is empty (or gone). */
static bool
procs_empty(const char *dir)
{
    char buf[64];
    co_err e = CO_ERR_INIT;
    if (read_in(dir, "cgroup.procs", buf, sizeof(buf), &e) < 0)
        return e.sys_errno == ENOENT;
    return buf[0] == '\0';
}

/* SIGKILL every pid listed in @dir/cgroup.procs.  Returns how many were listed. */
static int
kill_listed(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path))
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    int n = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid > 0)
            kill((pid_t)pid, SIGKILL);
        n++;
    }
    fclose(f);
    return n;
}

/* A CPU weight of @per_core per core, clamped to [lo, hi]. */
static int64_t
cpu_weight(int64_t cores_milli, int64_t per_core, int64_t lo, int64_t hi)
{
    int64_t w = cores_milli * per_core / 1000;
    return w < lo ? lo : w > hi ? hi : w;
}

static int64_t
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* The job's I/O weight: the file's default per paid core, clamped to the file's range. */
static int
set_io_weight(const struct sbx_cgroup *cg, const char *dir, int64_t cores_milli, co_err *err)
{
    const struct sbx_cgroup_host *h = cg->host;
    if (!h->io_weight[0])
        return 0;
    int64_t w = cpu_weight(cores_milli, h->io_weight_default, 1, h->io_weight_max);
    return write_int_in(dir, h->io_weight, w, err);
}

/* ---- v1 back end ---------------------------------------------------------------------------- */

static int
v1_set_limits(struct sbx_cgroup *cg, const struct sbx_cg_limits *l, co_err *err)
{
    const char *cpu = cg->dirs[cg->ctrl_dir[SBX_CG_CPU]];
    const char *mem = cg->dirs[cg->ctrl_dir[SBX_CG_MEMORY]];
    const char *pids = cg->dirs[cg->ctrl_dir[SBX_CG_PIDS]];

    if (write_in(cpu, "cpu.cfs_period_us", "100000", err) < 0)
        return -1;
    /* The weight follows the cores too, so that under contention a job is not squeezed below
     * what it paid for by host processes (each of which weighs one core, 1024). */
    if (write_int_in(cpu, "cpu.shares", cpu_weight(l->cores_milli, 1024, 2, 262144), err) < 0)
        return -1;
    if (write_int_in(cpu, "cpu.cfs_quota_us", l->cores_milli * 100, err) < 0)
        return -1;
    /* A fresh cgroup starts unlimited: lower memory.limit first, then memsw (LIBRARIES.md). */
    if (write_int_in(mem, "memory.limit_in_bytes", l->memory_bytes, err) < 0)
        return -1;
    if (cg->host->memsw) {
        if (write_int_in(mem, "memory.memsw.limit_in_bytes", l->memory_bytes, err) < 0)
            return -1;
    }
    if (write_in(mem, "memory.swappiness", "0", err) < 0)
        return -1;
    /* v1 does not count socket buffers against memory.limit_in_bytes: without this, a job on
     * loopback queued 87 MB in TCP buffers under a 32 MB limit. */
    if (l->tcp && write_int_in(mem, "memory.kmem.tcp.limit_in_bytes", l->memory_bytes, err) < 0)
        return -1;
    if (cg->host->v1[SBX_CG_BLKIO][0] &&
        set_io_weight(cg, cg->dirs[cg->ctrl_dir[SBX_CG_BLKIO]], l->cores_milli, err) < 0)
        return -1;
    if (write_int_in(pids, "pids.max", l->pids, err) < 0)
        return -1;
    return 0;
}

static int
v1_cpu_us(const struct sbx_cgroup *cg, int64_t *out, co_err *err)
{
    char buf[64];
    if (read_in(cg->dirs[cg->ctrl_dir[SBX_CG_CPUACCT]], "cpuacct.usage", buf, sizeof(buf), err) < 0)
        return -1;
    *out = strtoll(buf, NULL, 10) / 1000;
    return 0;
}

static int
v1_stats(const struct sbx_cgroup *cg, struct sbx_cg_stats *out, co_err *err)
{
    char buf[512];
    const char *mem = cg->dirs[cg->ctrl_dir[SBX_CG_MEMORY]];
    if (v1_cpu_us(cg, &out->cpu_us, err) < 0)
        return -1;
    if (read_in(mem, "memory.max_usage_in_bytes", buf, sizeof(buf), err) < 0)
        return -1;
    out->mem_peak = strtoll(buf, NULL, 10);
    if (read_in(mem, "memory.oom_control", buf, sizeof(buf), err) < 0)
        return -1;
    out->oom_kills = keyed_value(buf, "oom_kill") - cg->oom_base;
    if (out->oom_kills < 0)
        out->oom_kills = 0;
    return 0;
}

static int
v1_kill(const struct sbx_cgroup *cg, co_err *err)
{
    const char *pids = cg->dirs[cg->ctrl_dir[SBX_CG_PIDS]];
    const char *frz = cg->dirs[cg->ctrl_dir[SBX_CG_FREEZER]];

    for (int round = 0; round < 2000; round++) {
        if (procs_empty(pids))
            return 0;
        /* Freeze so that nothing forks while we kill, then SIGKILL everything, then thaw so
         * that the signals are delivered. */
        co_err e = CO_ERR_INIT;
        bool frozen = write_in(frz, "freezer.state", "FROZEN", &e) == 0;
        kill_listed(pids);
        if (frozen)
            (void)write_in(frz, "freezer.state", "THAWED", &e);
        sleep_us(round < 10 ? 200 : 1000);
    }
    return co_err_set(err, CO_E_SYS, "cannot empty cgroup '%s'", pids);
}

static const struct cg_ops v1_ops = {v1_set_limits, v1_cpu_us, v1_stats, v1_kill};

/* ---- v2 back end ---------------------------------------------------------------------------- */

static int
v2_set_limits(struct sbx_cgroup *cg, const struct sbx_cg_limits *l, co_err *err)
{
    char v[64];
    const char *d = cg->dirs[0];
    snprintf(v, sizeof(v), "%lld 100000", (long long)(l->cores_milli * 100));
    if (write_in(d, "cpu.max", v, err) < 0)
        return -1;
    if (write_int_in(d, "cpu.weight", cpu_weight(l->cores_milli, 100, 1, 10000), err) < 0)
        return -1;
    if (write_int_in(d, "memory.max", l->memory_bytes, err) < 0)
        return -1;
    if (write_in(d, "memory.swap.max", "0", err) < 0)
        return -1;
    if (write_int_in(d, "pids.max", l->pids, err) < 0)
        return -1;
    return set_io_weight(cg, d, l->cores_milli, err);
}

static int
v2_cpu_us(const struct sbx_cgroup *cg, int64_t *out, co_err *err)
{
    char buf[1024];
    if (read_in(cg->dirs[0], "cpu.stat", buf, sizeof(buf), err) < 0)
        return -1;
    int64_t v = keyed_value(buf, "usage_usec");
    if (v < 0)
        return co_err_set(err, CO_E_SYS, "no usage_usec in '%s/cpu.stat'", cg->dirs[0]);
    *out = v;
    return 0;
}

static int
v2_stats(const struct sbx_cgroup *cg, struct sbx_cg_stats *out, co_err *err)
{
    char buf[1024];
    if (v2_cpu_us(cg, &out->cpu_us, err) < 0)
        return -1;
    /* memory.peak exists from Linux 5.19; older kernels report no peak. */
    co_err e = CO_ERR_INIT;
    if (read_in(cg->dirs[0], "memory.peak", buf, sizeof(buf), &e) == 0)
        out->mem_peak = strtoll(buf, NULL, 10);
    else
        out->mem_peak = -1;
    if (read_in(cg->dirs[0], "memory.events", buf, sizeof(buf), err) < 0)
        return -1;
    out->oom_kills = keyed_value(buf, "oom_kill");
    if (out->oom_kills < 0)
        out->oom_kills = 0;
    return 0;
}

static int
v2_kill(const struct sbx_cgroup *cg, co_err *err)
{
    const char *d = cg->dirs[0];
    if (procs_empty(d))
        return 0;
    if (write_in(d, "cgroup.kill", "1", err) < 0)
        return -1;
    for (int round = 0; round < 2000; round++) {
        if (procs_empty(d))
            return 0;
        sleep_us(round < 10 ? 200 : 1000);
    }
    return co_err_set(err, CO_E_SYS, "cannot empty cgroup '%s'", d);
}

static const struct cg_ops v2_ops = {v2_set_limits, v2_cpu_us, v2_stats, v2_kill};

static const struct cg_ops *
ops_of(const struct sbx_cgroup_host *host)
{
    return host->mode == SBX_CG_V2 ? &v2_ops : &v1_ops;
}

/* ---- detection ------------------------------------------------------------------------------ */

const char *
sbx_cgroup_mode_name(enum sbx_cg_mode mode)
{
    switch (mode) {
    case SBX_CG_V1:
        return "v1";
    case SBX_CG_HYBRID:
        return "hybrid";
    case SBX_CG_V2:
        return "v2";
    }
    return "unknown";
}

/*
 * listmount() and statmount() (<linux/mount.h> of Linux 6.8 and later; the build's headers may be
 * older): a request names a mount by its unique id, and statmount() fills a struct whose strings
 * follow it, at offsets from its str[] (512 bytes in).
 */
#define SBX_NR_STATMOUNT 457
#define SBX_NR_LISTMOUNT 458
#define SBX_LSMT_ROOT 0xffffffffffffffffULL
#define SBX_STATMOUNT_SB_BASIC 0x01U
#define SBX_STATMOUNT_MNT_POINT 0x10U
#define SBX_STATMOUNT_MNT_OPTS 0x80U
#define SBX_CGROUP_SUPER_MAGIC 0x27e0ebULL
#define SBX_CGROUP2_SUPER_MAGIC 0x63677270ULL

struct sbx_mnt_id_req {
    uint32_t size, spare;
    uint64_t mnt_id, param;
};

struct sbx_statmount {
    uint32_t size, mnt_opts;
    uint64_t mask;
    uint32_t sb_dev_major, sb_dev_minor;
    uint64_t sb_magic;
    uint32_t sb_flags, fs_type;
    uint64_t mnt_id, mnt_parent_id;
    uint32_t mnt_id_old, mnt_parent_id_old;
    uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
    uint32_t mnt_root, mnt_point;
    uint64_t spare[50];
    char str[];
};
_Static_assert(sizeof(struct sbx_statmount) == 512, "struct statmount is 512 bytes before str");

static long
statmount_one(uint64_t id, uint64_t mask, struct sbx_statmount *buf, size_t size)
{
    struct sbx_mnt_id_req req = {sizeof(req), 0, id, mask};
    return syscall(SBX_NR_STATMOUNT, &req, buf, size, 0);
}

int
sbx_cgroup_mounts_fast(char *out, size_t size)
{
    uint64_t ids[256];
    size_t bufsize = 512 + 2 * PATH_MAX;
    struct sbx_statmount *sm = co_xmalloc(bufsize);
    size_t off = 0;
    int lines = 0;
    uint64_t last = 0;
    for (;;) {
        struct sbx_mnt_id_req req = {sizeof(req), 0, SBX_LSMT_ROOT, last};
        long n = syscall(SBX_NR_LISTMOUNT, &req, ids, CO_ARRAY_LEN(ids), 0);
        if (n < 0)
            goto fail;
        for (long i = 0; i < n; i++) {
            /* First the superblock's magic only (no strings, nothing formatted), then the mount
             * point and options of the cgroup mounts. */
            if (statmount_one(ids[i], SBX_STATMOUNT_SB_BASIC, sm, bufsize) < 0) {
                if (errno == ENOENT)
                    continue; /* unmounted meanwhile */
                goto fail;
            }
            if (!(sm->mask & SBX_STATMOUNT_SB_BASIC))
                goto fail;
            bool v2 = sm->sb_magic == SBX_CGROUP2_SUPER_MAGIC;
            if (!v2 && sm->sb_magic != SBX_CGROUP_SUPER_MAGIC)
                continue;
            uint64_t want = SBX_STATMOUNT_MNT_POINT | (v2 ? 0 : SBX_STATMOUNT_MNT_OPTS);
            if (statmount_one(ids[i], want, sm, bufsize) < 0 || (sm->mask & want) != want ||
                sm->size > bufsize)
                goto fail;
            size_t room = sm->size - sizeof(*sm);
            const char *mnt = sm->mnt_point < room ? sm->str + sm->mnt_point : NULL;
            const char *opts = v2 ? "rw" : sm->mnt_opts < room ? sm->str + sm->mnt_opts : NULL;
            if (!mnt || !opts || strnlen(mnt, room) == room || strpbrk(mnt, " \t\n\\") ||
                strpbrk(opts, " \t\n\\"))
                goto fail; /* mountinfo would escape it: let the caller read that */
            int len = snprintf(out + off, size - off, "0 0 0:0 / %s rw - %s cgroup rw,%s\n", mnt,
                               v2 ? "cgroup2" : "cgroup", opts);
            if (len < 0 || (size_t)len >= size - off)
                goto fail;
            off += (size_t)len;
            lines++;
        }
        if (n < (long)CO_ARRAY_LEN(ids))
            break;
        last = ids[n - 1];
    }
    free(sm);
    return lines;
fail:
    free(sm);
    return -1;
}

unsigned
sbx_cgroup_parse_mountinfo(const char *mountinfo, struct sbx_cgroup_host *host,
                           char unified_mnt[PATH_MAX])
{
    unsigned found = 0;
    unified_mnt[0] = '\0';
    const char *line = mountinfo;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[4096];
        /* Fields: id parent maj:min root mountpoint options [optional...] - fstype source
         * superoptions. */
        char *sep;
        if (len < sizeof(buf)) {
            memcpy(buf, line, len);
            buf[len] = '\0';
        } else {
            buf[0] = '\0';
        }
        if (buf[0] && (sep = strstr(buf, " - ")) != NULL) {
            *sep = '\0';
            char *save = NULL;
            char *mnt = NULL;
            char *tok = strtok_r(buf, " ", &save);
            for (int i = 0; tok && i < 4; i++)
                tok = strtok_r(NULL, " ", &save);
            mnt = tok;
            char *fstype = strtok_r(sep + 3, " ", &save);
            char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
            char *super = source ? strtok_r(NULL, " ", &save) : NULL;
            if (mnt && fstype && strcmp(fstype, "cgroup2") == 0 && !unified_mnt[0]) {
                co_strlcpy(unified_mnt, mnt, PATH_MAX);
            } else if (mnt && fstype && strcmp(fstype, "cgroup") == 0 && super) {
                char *s2 = NULL;
                for (char *opt = strtok_r(super, ",", &s2); opt; opt = strtok_r(NULL, ",", &s2)) {
                    for (int c = 0; c < SBX_CG_NCTRL; c++) {
                        if (strcmp(opt, ctrl_names[c]) == 0 && !(found & (1u << c))) {
                            co_strlcpy(host->v1[c], mnt, PATH_MAX);
                            found |= 1u << c;
                        }
                    }
                }
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return found;
}

/* All jobs in @dir together may weigh as much as the whole machine (each is capped by its quota).
 */
static void
weigh_as_machine_v1(const char *dir)
{
    co_err e = CO_ERR_INIT;
    (void)write_int_in(dir, "cpu.shares", cpu_weight(online_cpus() * 1000, 1024, 2, 262144), &e);
}

/* Whether @cgroup_root is a cgroup2 mount (a pure v2 host) in *@v2. */
static int
root_is_v2(const char *cgroup_root, bool *v2, co_err *err)
{
    struct statfs sfs;
    if (statfs(cgroup_root, &sfs) < 0)
        return co_err_sys(err, errno, "cannot stat '%s'", cgroup_root);
    *v2 = (unsigned long)sfs.f_type == CGROUP2_SUPER_MAGIC;
    return 0;
}

/*
 * The v1 hierarchies of @mountinfo into @host->v1 (mount points) and @unified_mnt (see
 * sbx_cgroup_parse_mountinfo()).  Errors: a controller the sandbox needs is not mounted.
 */
static int
v1_hierarchies(const char *mountinfo, const char *cgroup_root, struct sbx_cgroup_host *host,
               char unified_mnt[PATH_MAX], co_err *err)
{
    unsigned found = sbx_cgroup_parse_mountinfo(mountinfo, host, unified_mnt);
    for (int c = 0; c < SBX_CG_NREQUIRED; c++) {
        if (!(found & (1u << c)))
            return co_err_set(err, CO_E_UNAVAILABLE,
                              "cgroup v1 controller '%s' is not mounted under '%s'", ctrl_names[c],
                              cgroup_root);
    }
    return 0;
}

int
sbx_cgroup_host_init_v1(struct sbx_cgroup_host *host, const char *unified_mnt, const char *parent,
                        co_err *err)
{
    char tmp[PATH_MAX];
    host->mode = unified_mnt ? SBX_CG_HYBRID : SBX_CG_V1;
    host->io_weight[0] = '\0';
    /* blkio only with a weight file in its root: without a proportional I/O scheduler a job
     * folder there would cost a join per run and weigh nothing. */
    if (host->v1[SBX_CG_BLKIO][0] && !probe_io_weight(host, host->v1[SBX_CG_BLKIO]))
        host->v1[SBX_CG_BLKIO][0] = '\0';
    for (int c = 0; c < SBX_CG_NCTRL; c++) {
        if (!host->v1[c][0])
            continue; /* an optional controller the host does not have */
        if (join(tmp, host->v1[c], parent, err) < 0)
            return -1;
        co_strlcpy(host->v1[c], tmp, PATH_MAX);
        if (mkdir_p1(host->v1[c], err) < 0)
            return -1;
        host->dirfd[c] = open(host->v1[c], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (host->dirfd[c] < 0)
            return co_err_sys(err, errno, "cannot open cgroup '%s'", host->v1[c]);
    }
    /*
     * Hybrid hosts: the controllers are in v1; the cgroup2 mount gets no job folder.  Joining a
     * cgroup2 folder would need a write to cgroup.procs, which takes the kernel's global
     * threadgroup lock and waits for an RCU grace period (milliseconds on a busy host), where
     * v1 "tasks" writes by a single-threaded process do not (see sbx_cgroup_create()).
     */
    weigh_as_machine_v1(host->v1[SBX_CG_CPU]);
    char probe[PATH_MAX];
    if (join(probe, host->v1[SBX_CG_MEMORY], "memory.memsw.limit_in_bytes", err) < 0)
        return -1;
    host->memsw = access(probe, F_OK) == 0;
    if (!host->memsw) {
        /* Without swap accounting, memory.limit alone cannot forbid swap: refuse when the host
         * has swap at all (fail closed), accept when it has none. */
        char swaps[256];
        co_err e = CO_ERR_INIT;
        if (sbx_read_file("/proc/swaps", swaps, sizeof(swaps), &e) == 0 && strchr(swaps, '\n') &&
            strchr(swaps, '\n')[1] != '\0')
            return co_err_set(err, CO_E_UNAVAILABLE,
                              "cannot disable swap for jobs: no 'memory.memsw.limit_in_bytes' "
                              "(boot with swapaccount=1) and the host has swap");
    }
    return 0;
}

static bool
has_word(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += wl) {
        bool start = p == text || p[-1] == ' ' || p[-1] == '\n';
        bool end = p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n';
        if (start && end)
            return true;
    }
    return false;
}

/*
 * Enable cpu, memory and pids for the children of @dir, and io too when @dir has it (for the
 * I/O weight; a host whose io controller cannot be enabled still runs jobs, without it).
 */
static int
enable_controllers(const char *dir, co_err *err)
{
    char have[512], avail[512];
    if (read_in(dir, "cgroup.subtree_control", have, sizeof(have), err) < 0)
        return -1;
    if (has_word(have, "cpu") && has_word(have, "memory") && has_word(have, "pids"))
        return 0;
    co_err e = CO_ERR_INIT;
    if (read_in(dir, "cgroup.controllers", avail, sizeof(avail), &e) == 0 &&
        has_word(avail, "io") &&
        write_in(dir, "cgroup.subtree_control", "+cpu +memory +pids +io", &e) == 0)
        return 0;
    return write_in(dir, "cgroup.subtree_control", "+cpu +memory +pids", err);
}

int
sbx_cgroup_host_init_v2(struct sbx_cgroup_host *host, const char *base, const char *parent,
                        co_err *err)
{
    char buf[4096];
    host->mode = SBX_CG_V2;
    host->memsw = false;
    host->io_weight[0] = '\0';
    if (read_in(base, "cgroup.controllers", buf, sizeof(buf), err) < 0)
        return -1;
    static const char *const need[] = {"cpu", "memory", "pids"};
    for (size_t i = 0; i < CO_ARRAY_LEN(need); i++) {
        if (!has_word(buf, need[i]))
            return co_err_set(err, CO_E_UNAVAILABLE, "cgroup controller '%s' not delegated to '%s'",
                              need[i], base);
    }
    char sub[512];
    if (read_in(base, "cgroup.subtree_control", sub, sizeof(sub), err) < 0)
        return -1;
    if (!(has_word(sub, "cpu") && has_word(sub, "memory") && has_word(sub, "pids"))) {
        /* No internal processes: move this process into a leaf before enabling controllers. */
        if (read_in(base, "cgroup.procs", buf, sizeof(buf), err) < 0)
            return -1;
        char self[32];
        snprintf(self, sizeof(self), "%ld", (long)getpid());
        for (char *p = buf; *p;) {
            char *eol = strchr(p, '\n');
            if (eol)
                *eol = '\0';
            if (*p && strcmp(p, self) != 0)
                return co_err_set(err, CO_E_UNAVAILABLE,
                                  "cgroup '%s' holds other processes (pid %s): run the sandbox "
                                  "in a delegated cgroup of its own",
                                  base, p);
            p = eol ? eol + 1 : p + strlen(p);
        }
        if (buf[0]) {
            char leaf[PATH_MAX];
            if (join(leaf, base, "supervisor", err) < 0 || mkdir_p1(leaf, err) < 0 ||
                write_in(leaf, "cgroup.procs", self, err) < 0)
                return co_err_wrap(err, "move into leaf cgroup");
        }
        if (enable_controllers(base, err) < 0)
            return -1;
    }
    if (join(host->v2, base, parent, err) < 0 || mkdir_p1(host->v2, err) < 0)
        return -1;
    co_err e = CO_ERR_INIT;
    (void)write_int_in(host->v2, "cpu.weight", cpu_weight(online_cpus() * 1000, 100, 1, 10000), &e);
    host->dirfd[0] = open(host->v2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (host->dirfd[0] < 0)
        return co_err_sys(err, errno, "cannot open cgroup '%s'", host->v2);
    if (enable_controllers(host->v2, err) < 0)
        return -1;
    /* The I/O weight: when io is enabled for the job folders, "cacheout" (itself a child of a
     * folder with io on) has the same weight file they will have. */
    char enabled[512];
    co_err e2 = CO_ERR_INIT;
    if (read_in(host->v2, "cgroup.subtree_control", enabled, sizeof(enabled), &e2) == 0 &&
        (has_word(enabled, "io") || has_word(enabled, "+io")))
        (void)probe_io_weight(host, host->v2);
    return 0;
}

int
sbx_cgroup_host_detect(struct sbx_cgroup_host *host, const char *cgroup_root, const char *mountinfo,
                       const char *self_cgroup, const char *parent, co_err *err)
{
    memset(host, 0, sizeof(*host));
    for (int c = 0; c < SBX_CG_NCTRL; c++)
        host->dirfd[c] = -1;
    bool v2 = false;
    if (root_is_v2(cgroup_root, &v2, err) < 0)
        return -1;
    if (v2) {
        /* Pure v2: our own cgroup is the "0::/path" line. */
        const char *p = strstr(self_cgroup, "0::");
        if (!p)
            return co_err_set(err, CO_E_UNAVAILABLE, "no cgroup2 entry in /proc/self/cgroup");
        p += 3;
        size_t len = strcspn(p, "\n");
        char rel[PATH_MAX], base[PATH_MAX];
        if (len >= sizeof(rel))
            return co_err_set(err, CO_E_RANGE, "cgroup path too long");
        memcpy(rel, p, len);
        rel[len] = '\0';
        /* An administrator may name a delegated, empty cgroup for the jobs explicitly. */
        const char *explicit_base = getenv("CACHEOUT_CGROUP_BASE");
        if (explicit_base && *explicit_base)
            return sbx_cgroup_host_init_v2(host, explicit_base, parent, err);
        /* A leftover "supervisor" leaf from an earlier start of this process is its base. */
        size_t rl = strlen(rel);
        if (rl >= 11 && strcmp(rel + rl - 11, "/supervisor") == 0)
            rel[rl - 11] = '\0';
        if (snprintf(base, sizeof(base), "%s%s", cgroup_root, strcmp(rel, "/") ? rel : "") >=
            (int)sizeof(base))
            return co_err_set(err, CO_E_RANGE, "cgroup path too long");
        return sbx_cgroup_host_init_v2(host, base, parent, err);
    }
    char unified_mnt[PATH_MAX];
    if (v1_hierarchies(mountinfo, cgroup_root, host, unified_mnt, err) < 0)
        return -1;
    return sbx_cgroup_host_init_v1(host, unified_mnt[0] ? unified_mnt : NULL, parent, err);
}

void
sbx_cgroup_parent_name(uid_t uid, char *out, size_t size)
{
    const char *env = getenv("CACHEOUT_CGROUP_PARENT");
    if (env && *env)
        snprintf(out, size, "%s", env);
    else if (uid == 0)
        snprintf(out, size, "cacheout");
    else
        snprintf(out, size, "cacheout-%u", (unsigned)uid);
}

static int
chown_in(const char *dir, const char *name, uid_t uid, gid_t gid, co_err *err)
{
    char path[PATH_MAX];
    if (join(path, dir, name, err) < 0)
        return -1;
    if (chown(path, uid, gid) < 0)
        return co_err_sys(err, errno, "cannot chown '%s'", path);
    return 0;
}

int
sbx_cgroup_delegate(const char *cgroup_root, const char *mountinfo, const char *parent, uid_t uid,
                    gid_t gid, struct co_buf *report, co_err *err)
{
    bool v2 = false;
    if (root_is_v2(cgroup_root, &v2, err) < 0)
        return -1;
    if (v2)
        return co_err_set(err, CO_E_UNAVAILABLE,
                          "pure cgroup2 host: a rootless sandbox uses the cgroup its process was "
                          "started in, which must be delegated to the user (systemd: a service "
                          "with User= and Delegate=yes, or 'systemd-run --user -p Delegate=yes "
                          "--scope cacheout-agent ...'); nothing to create here");
    struct sbx_cgroup_host h;
    memset(&h, 0, sizeof(h));
    char unified[PATH_MAX];
    if (v1_hierarchies(mountinfo, cgroup_root, &h, unified, err) < 0)
        return -1;
    for (int c = 0; c < SBX_CG_NCTRL; c++) {
        if (!h.v1[c][0])
            continue; /* blkio, when the host has none */
        bool seen = false;
        for (int k = 0; k < c; k++)
            seen = seen || strcmp(h.v1[k], h.v1[c]) == 0;
        if (seen)
            continue;
        char dir[PATH_MAX];
        if (join(dir, h.v1[c], parent, err) < 0)
            return -1;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return co_err_sys(err, errno, "cannot create cgroup '%s'", dir);
        /* The folder (to create job cgroups in it) and the files that move processes, as the
         * kernel's cgroup documentation describes delegation; the folder's limits stay root's. */
        if (chown(dir, uid, gid) < 0)
            return co_err_sys(err, errno, "cannot chown '%s'", dir);
        if (chown_in(dir, "tasks", uid, gid, err) < 0 ||
            chown_in(dir, "cgroup.procs", uid, gid, err) < 0)
            return -1;
        co_buf_printf(report, "cgroup folder %s: owned by uid %u\n", dir, (unsigned)uid);
        if (c == SBX_CG_CPU)
            weigh_as_machine_v1(dir); /* as root's job folder */
    }
    return 0;
}

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static struct sbx_cgroup_host *host_cached;
static co_err host_err;

static void
host_detect_once(void)
{
    char *mi = co_xmalloc(1 << 16);
    char self[4096];
    co_err_clear(&host_err);
    struct sbx_cgroup_host *h = co_xcalloc(1, sizeof(*h));
    char parent[128];
    sbx_cgroup_parent_name(geteuid(), parent, sizeof(parent));
    bool fast = sbx_cgroup_mounts_fast(mi, 1 << 16) >= 0;
    if ((fast || sbx_read_file("/proc/self/mountinfo", mi, 1 << 16, &host_err) == 0) &&
        sbx_read_file("/proc/self/cgroup", self, sizeof(self), &host_err) == 0 &&
        sbx_cgroup_host_detect(h, "/sys/fs/cgroup", mi, self, parent, &host_err) == 0) {
        host_cached = h;
    } else {
        free(h);
    }
    free(mi);
}

int
sbx_cgroup_host_get(const struct sbx_cgroup_host **out, co_err *err)
{
    pthread_once(&host_once, host_detect_once);
    if (!host_cached) {
        if (err)
            *err = host_err;
        return -1;
    }
    *out = host_cached;
    return 0;
}

/* ---- job cgroups ---------------------------------------------------------------------------- */

static int
add_dir(struct sbx_cgroup *cg, const char *parent, int parent_fd, const char *name, co_err *err)
{
    char path[PATH_MAX];
    if (join(path, parent, name, err) < 0)
        return -1;
    for (int i = 0; i < cg->n_dirs; i++) {
        if (strcmp(cg->dirs[i], path) == 0)
            return i;
    }
    int i = cg->n_dirs++;
    co_strlcpy(cg->dirs[i], path, PATH_MAX);
    /*
     * v1: the child writes "0" to "tasks", which moves only the writing thread (the child has
     * one).  Unlike a cgroup.procs write, that skips the kernel's global threadgroup lock and
     * the RCU grace period it waits for: about 9 ms median on a loaded build machine, against
     * 0.1 ms.  v2 domain cgroups only accept whole processes (cgroup.procs).
     */
    const char *file = cg->host->mode == SBX_CG_V2 ? "cgroup.procs" : "tasks";
    if (join(cg->procs[i], path, file, err) < 0)
        return -1;
    cg->join_dirfd[i] = parent_fd;
    int n = snprintf(cg->join_rel[i], sizeof(cg->join_rel[i]), "%s/%s", name, file);
    if (n < 0 || (size_t)n >= sizeof(cg->join_rel[i]))
        return co_err_set(err, CO_E_RANGE, "cgroup name too long: '%s'", name);
    return i;
}

static int
remove_dirs(struct sbx_cgroup *cg, co_err *err)
{
    int rc = 0;
    for (int i = cg->n_dirs - 1; i >= 0; i--) {
        int tries = 0;
        while (rmdir(cg->dirs[i]) < 0) {
            if (errno == ENOENT)
                break;
            /* A cgroup whose last task just died may still be busy for a moment. */
            if (errno == EBUSY && tries++ < 200) {
                sleep_us(500);
                continue;
            }
            if (rc == 0)
                rc = co_err_sys(err, errno, "cannot remove cgroup '%s'", cg->dirs[i]);
            break;
        }
    }
    return rc;
}

int
sbx_cgroup_prepare(struct sbx_cgroup *cg, const struct sbx_cgroup_host *host, const char *name,
                   co_err *err)
{
    memset(cg, 0, sizeof(*cg));
    cg->host = host;
    if (host->mode == SBX_CG_V2) {
        if (add_dir(cg, host->v2, host->dirfd[0], name, err) < 0)
            return -1;
    } else {
        for (int c = 0; c < SBX_CG_NCTRL; c++) {
            if (!host->v1[c][0])
                continue;
            int i = add_dir(cg, host->v1[c], host->dirfd[c], name, err);
            if (i < 0)
                return -1;
            cg->ctrl_dir[c] = i;
        }
    }
    return 0;
}

/* ---- recycled job cgroups (long-lived callers, v1) ------------------------------------------ */

/* Emptied job cgroups of this process, by the path of their first folder, with their folders'
 * inodes, so that a folder removed and made again by another process is not taken for ours. */
struct kept_cg {
    char dir0[PATH_MAX];
    int n_dirs;
    dev_t dev[SBX_CG_MAX_DIRS];
    ino_t ino[SBX_CG_MAX_DIRS];
    struct sbx_cg_limits lim; /* what the folders are limited to (if lim_set) */
    bool lim_set;
};
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kept_cg *kept[SBX_MAX_SLOTS];

/* Take the entry of @cg out of the table; false if there is none. */
static bool
kept_take(const struct sbx_cgroup *cg, struct kept_cg *out)
{
    bool found = false;
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < SBX_MAX_SLOTS && !found; i++) {
        if (kept[i] && strcmp(kept[i]->dir0, cg->dirs[0]) == 0) {
            *out = *kept[i];
            free(kept[i]);
            kept[i] = NULL;
            found = true;
        }
    }
    pthread_mutex_unlock(&kept_mu);
    return found;
}

static bool
kept_put(const struct kept_cg *k)
{
    bool done = false;
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < SBX_MAX_SLOTS && !done; i++) {
        if (!kept[i]) {
            kept[i] = co_xmalloc(sizeof(*k));
            *kept[i] = *k;
            done = true;
        }
    }
    pthread_mutex_unlock(&kept_mu);
    return done;
}

static bool
same_limits(const struct sbx_cg_limits *a, const struct sbx_cg_limits *b)
{
    return a->cores_milli == b->cores_milli && a->memory_bytes == b->memory_bytes &&
           a->pids == b->pids && a->tcp == b->tcp;
}

/* Write every limit of @l into @cg's folders and remember them. */
static int
apply_limits(struct sbx_cgroup *cg, const struct sbx_cg_limits *l, co_err *err)
{
    cg->applied_set = false;
    if (ops_of(cg->host)->set_limits(cg, l, err) < 0)
        return -1;
    cg->applied = *l;
    cg->applied_set = true;
    return 0;
}

/*
 * Reuse the emptied cgroup this process kept for @cg's name: 1 when reused (limits written,
 * counters reset), 0 when there is none or it is not exactly as it was left (the caller then
 * removes whatever is there and makes a new one), -1 when a limit cannot be written.
 */
static int
reuse_kept(struct sbx_cgroup *cg, const struct sbx_cg_limits *l, co_err *err)
{
    struct kept_cg k;
    if (cg->host->mode == SBX_CG_V2 || !kept_take(cg, &k) || k.n_dirs != cg->n_dirs)
        return 0;
    for (int i = 0; i < cg->n_dirs; i++) {
        struct stat st;
        if (stat(cg->dirs[i], &st) < 0 || st.st_dev != k.dev[i] || st.st_ino != k.ino[i])
            return 0;
    }
    const char *mem = cg->dirs[cg->ctrl_dir[SBX_CG_MEMORY]];
    char buf[512];
    co_err e = CO_ERR_INIT;
    if (!procs_empty(cg->dirs[cg->ctrl_dir[SBX_CG_PIDS]]) ||
        write_in(cg->dirs[cg->ctrl_dir[SBX_CG_CPUACCT]], "cpuacct.usage", "0", &e) < 0 ||
        write_in(mem, "memory.max_usage_in_bytes", "0", &e) < 0 ||
        read_in(mem, "memory.oom_control", buf, sizeof(buf), &e) < 0)
        return 0;
    cg->oom_base = keyed_value(buf, "oom_kill");
    if (cg->oom_base < 0)
        cg->oom_base = 0;
    cg->created = true;
    /*
     * The same limits as the slot's last job (the usual case: one seller's jobs ask for the same
     * cores and memory): the folders hold them already.  Nothing of a job can change them (the
     * files are root's, outside the job's cgroup namespace and root), and the folders are the
     * very ones this process wrote (checked by device and inode above).
     */
    if (k.lim_set && same_limits(&k.lim, l)) {
        cg->applied = *l;
        cg->applied_set = true;
        return 1;
    }
    /* The memory limit may grow: lift the memory+swap limit first (it may not be below it). */
    if (cg->host->memsw && write_in(mem, "memory.memsw.limit_in_bytes", "-1", &e) < 0)
        return 0;
    if (apply_limits(cg, l, err) < 0)
        return -1;
    return 1;
}

/* Memory a recycled v1 cgroup may keep charged (page cache the last job read): above it the
 * janitor has it released with memory.force_empty, whose fixed cost (draining every CPU's
 * per-cpu lists) is about 0.4 ms, as much as the whole recycling saves. */
#define RECYCLE_KEEP_BYTES (4 << 20)

int
sbx_cgroup_recycle(struct sbx_cgroup *cg, co_err *err)
{
    if (!cg->created || cg->host->mode == SBX_CG_V2)
        return sbx_cgroup_destroy(cg, err);
    struct kept_cg k = {.n_dirs = cg->n_dirs, .lim = cg->applied, .lim_set = cg->applied_set};
    co_strlcpy(k.dir0, cg->dirs[0], sizeof(k.dir0));
    const char *mem = cg->dirs[cg->ctrl_dir[SBX_CG_MEMORY]];
    char state[32], usage[32];
    co_err e = CO_ERR_INIT;
    bool ok = sbx_cgroup_kill(cg, &e) == 0 &&
              read_in(cg->dirs[cg->ctrl_dir[SBX_CG_FREEZER]], "freezer.state", state, sizeof(state),
                      &e) == 0 &&
              strncmp(state, "THAWED", 6) == 0 &&
              read_in(mem, "memory.usage_in_bytes", usage, sizeof(usage), &e) == 0;
    if (ok && strtoll(usage, NULL, 10) > RECYCLE_KEEP_BYTES)
        ok = write_in(mem, "memory.force_empty", "0", &e) == 0;
    for (int i = 0; ok && i < cg->n_dirs; i++) {
        struct stat st;
        ok = stat(cg->dirs[i], &st) == 0;
        k.dev[i] = st.st_dev;
        k.ino[i] = st.st_ino;
    }
    if (!ok || !kept_put(&k))
        return sbx_cgroup_destroy(cg, err);
    cg->created = false;
    return 1;
}

int
sbx_cgroup_make(struct sbx_cgroup *cg, const struct sbx_cg_limits *limits, co_err *err)
{
    int reused = reuse_kept(cg, limits, err);
    if (reused == 1)
        return 0;
    if (reused < 0)
        goto fail;
    /* A leftover from a crashed run of the same slot: kill what is in it and remove it. */
    cg->created = true;
    if (sbx_cgroup_destroy(cg, err) < 0)
        return co_err_wrap(err, "remove leftover cgroup '%s'", cg->dirs[0]);
    for (int i = 0; i < cg->n_dirs; i++) {
        cg->created = true;
        if (mkdir(cg->dirs[i], 0755) < 0) {
            co_err_sys(err, errno, "cannot create cgroup '%s'", cg->dirs[i]);
            goto fail;
        }
    }
    if (apply_limits(cg, limits, err) < 0)
        goto fail;
    return 0;
fail:;
    co_err e = CO_ERR_INIT;
    if (sbx_cgroup_destroy(cg, &e) < 0) {
        /* best effort: the error that got us here matters more */
    }
    return -1;
}

int
sbx_cgroup_create(struct sbx_cgroup *cg, const struct sbx_cgroup_host *host, const char *name,
                  const struct sbx_cg_limits *limits, co_err *err)
{
    if (sbx_cgroup_prepare(cg, host, name, err) < 0)
        return -1;
    return sbx_cgroup_make(cg, limits, err);
}

int
sbx_cgroup_cpu_us(const struct sbx_cgroup *cg, int64_t *out, co_err *err)
{
    return ops_of(cg->host)->cpu_us(cg, out, err);
}

int
sbx_cgroup_stats(const struct sbx_cgroup *cg, struct sbx_cg_stats *out, co_err *err)
{
    memset(out, 0, sizeof(*out));
    return ops_of(cg->host)->stats(cg, out, err);
}

int
sbx_cgroup_kill(const struct sbx_cgroup *cg, co_err *err)
{
    return ops_of(cg->host)->kill(cg, err);
}

int
sbx_cgroup_destroy(struct sbx_cgroup *cg, co_err *err)
{
    if (!cg->created)
        return 0;
    bool exists = false;
    for (int i = 0; i < cg->n_dirs; i++)
        exists = exists || access(cg->dirs[i], F_OK) == 0;
    if (!exists) {
        cg->created = false;
        return 0;
    }
    if (sbx_cgroup_kill(cg, err) < 0)
        return -1;
    if (remove_dirs(cg, err) < 0)
        return -1;
    cg->created = false;
    return 0;
}
