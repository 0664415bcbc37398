/*
 * Unit tests for the cgroup back ends against fake cgroupfs trees in a temp folder.  mkdir() and
 * rmdir() are wrapped (-Wl,--wrap): a folder created inside the fake tree gets the interface
 * files the kernel would create (with the contents a test chose), and rmdir() removes them
 * first.  This is how the pure v2 back end is checked on hosts that are not pure v2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "sbx_cgroup.h"

int __real_mkdir(const char *path, mode_t mode);
int __real_rmdir(const char *path);
int __wrap_mkdir(const char *path, mode_t mode);
int __wrap_rmdir(const char *path);

static char tree[256];           /* the fake root; "" outside tests */
static const char *missing_file; /* an interface file not to create (to inject a failure) */

struct iface {
    const char *name;
    const char *content;
};

/* Files of a new cgroup folder: a superset of v1 and v2 so one wrapper serves both. */
static const struct iface new_files[] = {
    {"cgroup.procs", ""},
    {"tasks", ""},
    {"cgroup.controllers", "cpu io memory pids\n"},
    {"cgroup.subtree_control", ""},
    {"cgroup.kill", ""},
    {"cgroup.events", "populated 0\nfrozen 0\n"},
    {"cpu.max", "max 100000\n"},
    {"cpu.weight", "100\n"},
    {"io.weight", "default 100\n"},
    {"blkio.bfq.weight", "100\n"},
    {"cpu.shares", "1024\n"},
    {"cpu.stat", "usage_usec 4242\nuser_usec 4000\nsystem_usec 242\n"},
    {"memory.max", "max\n"},
    {"memory.swap.max", "max\n"},
    {"memory.peak", "12345678\n"},
    {"memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n"},
    {"pids.max", "max\n"},
    {"cpu.cfs_period_us", "100000\n"},
    {"cpu.cfs_quota_us", "-1\n"},
    {"cpuacct.usage", "5000000\n"},
    {"memory.limit_in_bytes", "9223372036854771712\n"},
    {"memory.memsw.limit_in_bytes", "9223372036854771712\n"},
    {"memory.swappiness", "60\n"},
    {"memory.kmem.tcp.limit_in_bytes", "9223372036854771712\n"},
    {"memory.max_usage_in_bytes", "2097152\n"},
    {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"},
    {"freezer.state", "THAWED\n"},
};

static void
put(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];
    assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static char *
get(const char *dir, const char *name)
{
    static char buf[4096];
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int
__wrap_mkdir(const char *path, mode_t mode)
{
    int rc = __real_mkdir(path, mode);
    if (rc == 0 && tree[0] && strncmp(path, tree, strlen(tree)) == 0) {
        for (size_t i = 0; i < sizeof(new_files) / sizeof(new_files[0]); i++) {
            if (missing_file && strcmp(missing_file, new_files[i].name) == 0)
                continue;
            put(path, new_files[i].name, new_files[i].content);
        }
    }
    return rc;
}

int
__wrap_rmdir(const char *path)
{
    if (tree[0] && strncmp(path, tree, strlen(tree)) == 0) {
        /* Like cgroupfs: a folder with only interface files can be removed; one with child
         * folders cannot. */
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                char sub[PATH_MAX];
                struct stat st;
                snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                if (e->d_name[0] != '.' && lstat(sub, &st) == 0 && S_ISREG(st.st_mode))
                    unlink(sub);
            }
            closedir(d);
        }
    }
    return __real_rmdir(path);
}

static void
rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX];
        struct stat st;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    __real_rmdir(path);
}

static int
setup_tree(void **state)
{
    (void)state;
    snprintf(tree, sizeof(tree), "/tmp/sbx-fake-cgroup-XXXXXX");
    assert_non_null(mkdtemp(tree));
    missing_file = NULL;
    return 0;
}

static int
teardown_tree(void **state)
{
    (void)state;
    char root[PATH_MAX];
    co_strlcpy(root, tree, sizeof(root));
    tree[0] = '\0';
    rm_tree(root);
    return 0;
}

/* A pure v2 root as a delegated cgroup: controllers available, none enabled, us inside. */
static void
make_v2_base(const char *procs)
{
    put(tree, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(tree, "cgroup.subtree_control", "");
    put(tree, "cgroup.procs", procs);
}

static char *
self_pid_line(void)
{
    static char buf[32];
    snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    return buf;
}

static void
test_v2_moves_into_leaf_and_delegates(void **state)
{
    (void)state;
    make_v2_base(self_pid_line());
    struct sbx_cgroup_host host;
    memset(&host, 0, sizeof(host));
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), 0);
    assert_int_equal(host.mode, SBX_CG_V2);
    char leaf[PATH_MAX], parent[PATH_MAX];
    snprintf(leaf, sizeof(leaf), "%s/supervisor", tree);
    snprintf(parent, sizeof(parent), "%s/cacheout", tree);
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    /* We moved ourselves into the leaf before enabling controllers in the base. */
    assert_string_equal(get(leaf, "cgroup.procs"), pid);
    assert_string_equal(get(tree, "cgroup.subtree_control"), "+cpu +memory +pids +io");
    assert_string_equal(get(parent, "cgroup.subtree_control"), "+cpu +memory +pids +io");
    assert_string_equal(host.io_weight, "io.weight");
    assert_string_equal(host.v2, parent);
    char want[32];
    snprintf(want, sizeof(want), "%ld", 100 * sysconf(_SC_NPROCESSORS_ONLN));
    assert_string_equal(get(parent, "cpu.weight"), want);
}

static void
test_v2_no_move_when_already_delegated(void **state)
{
    (void)state;
    make_v2_base("1234\n");
    put(tree, "cgroup.subtree_control", "cpu memory pids\n");
    struct sbx_cgroup_host host;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), 0);
    char leaf[PATH_MAX];
    snprintf(leaf, sizeof(leaf), "%s/supervisor", tree);
    assert_int_equal(access(leaf, F_OK), -1);
    /* Controllers already on: the base's file was not rewritten. */
    assert_string_equal(get(tree, "cgroup.subtree_control"), "cpu memory pids\n");
}

static void
test_v2_refuses_foreign_processes(void **state)
{
    (void)state;
    char procs[64];
    snprintf(procs, sizeof(procs), "%ld\n1\n", (long)getpid());
    make_v2_base(procs);
    struct sbx_cgroup_host host;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), -1);
    assert_int_equal(err.code, CO_E_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "holds other processes"));
    assert_string_equal(get(tree, "cgroup.subtree_control"), "");
}

static void
test_v2_missing_controller(void **state)
{
    (void)state;
    make_v2_base("");
    put(tree, "cgroup.controllers", "cpu io memory\n");
    struct sbx_cgroup_host host;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), -1);
    assert_non_null(strstr(err.msg, "'pids'"));
}

static void
test_v2_job_cgroup(void **state)
{
    (void)state;
    make_v2_base("");
    struct sbx_cgroup_host host;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), 0);
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {1500, 64 << 20, 32, false};
    assert_int_equal(sbx_cgroup_create(cg, &host, "slot-3", &lim, &err), 0);
    char dir[PATH_MAX], procs[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/cacheout/slot-3", tree);
    snprintf(procs, sizeof(procs), "%s/cacheout/slot-3/cgroup.procs", tree);
    assert_int_equal(cg->n_dirs, 1);
    assert_string_equal(cg->dirs[0], dir);
    assert_string_equal(cg->procs[0], procs);
    assert_string_equal(get(dir, "cpu.max"), "150000 100000");
    assert_string_equal(get(dir, "cpu.weight"), "150");
    assert_string_equal(get(dir, "memory.max"), "67108864");
    assert_string_equal(get(dir, "memory.swap.max"), "0");
    assert_string_equal(get(dir, "pids.max"), "32");
    /* The I/O weight follows the cores: 100 per core. */
    assert_string_equal(get(dir, "io.weight"), "150");

    int64_t us = 0;
    assert_int_equal(sbx_cgroup_cpu_us(cg, &us, &err), 0);
    assert_int_equal(us, 4242);
    struct sbx_cg_stats st;
    assert_int_equal(sbx_cgroup_stats(cg, &st, &err), 0);
    assert_int_equal(st.cpu_us, 4242);
    assert_int_equal(st.mem_peak, 12345678);
    assert_int_equal(st.oom_kills, 1);

    /* An empty cgroup is removed without writing cgroup.kill. */
    assert_int_equal(sbx_cgroup_destroy(cg, &err), 0);
    assert_int_equal(access(dir, F_OK), -1);
    free(cg);
}

static void
test_v2_leftover_is_replaced(void **state)
{
    (void)state;
    make_v2_base("");
    struct sbx_cgroup_host host;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), 0);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/cacheout/slot-1", tree);
    assert_int_equal(__wrap_mkdir(dir, 0755), 0);
    put(dir, "pids.max", "7\n");
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {1000, 32 << 20, 9, false};
    assert_int_equal(sbx_cgroup_create(cg, &host, "slot-1", &lim, &err), 0);
    assert_string_equal(get(dir, "pids.max"), "9");
    assert_int_equal(sbx_cgroup_destroy(cg, &err), 0);
    free(cg);
}

static void
test_v2_fails_closed(void **state)
{
    (void)state;
    make_v2_base("");
    struct sbx_cgroup_host host;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v2(&host, tree, "cacheout", &err), 0);
    missing_file = "memory.swap.max"; /* e.g. a kernel without swap accounting */
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {1000, 32 << 20, 9, false};
    assert_int_equal(sbx_cgroup_create(cg, &host, "slot-2", &lim, &err), -1);
    assert_non_null(strstr(err.msg, "memory.swap.max"));
    /* Nothing is left behind. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/cacheout/slot-2", tree);
    assert_int_equal(access(dir, F_OK), -1);
    free(cg);
}

static const char hybrid_mountinfo[] =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "42 31 0:39 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static const char joint_mountinfo[] =
    "25 18 0:22 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs ro,mode=755\n"
    "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory\n"
    "32 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid shared:14 - cgroup cgroup rw,freezer\n";

static void
test_parse_mountinfo(void **state)
{
    (void)state;
    struct sbx_cgroup_host h;
    char unified[PATH_MAX];
    memset(&h, 0, sizeof(h));
    unsigned found = sbx_cgroup_parse_mountinfo(hybrid_mountinfo, &h, unified);
    assert_int_equal(found, (1u << SBX_CG_NCTRL) - 1);
    assert_string_equal(h.v1[SBX_CG_CPU], "/sys/fs/cgroup/cpu");
    assert_string_equal(h.v1[SBX_CG_CPUACCT], "/sys/fs/cgroup/cpuacct");
    assert_string_equal(h.v1[SBX_CG_MEMORY], "/sys/fs/cgroup/memory");
    assert_string_equal(h.v1[SBX_CG_PIDS], "/sys/fs/cgroup/pids");
    assert_string_equal(h.v1[SBX_CG_FREEZER], "/sys/fs/cgroup/freezer");
    assert_string_equal(h.v1[SBX_CG_BLKIO], "/sys/fs/cgroup/blkio");
    assert_string_equal(unified, "/sys/fs/cgroup/unified");

    memset(&h, 0, sizeof(h));
    found = sbx_cgroup_parse_mountinfo(joint_mountinfo, &h, unified);
    /* No pids hierarchy (an old kernel): detection must refuse such a host. */
    assert_int_equal(found & (1u << SBX_CG_PIDS), 0);
    assert_string_equal(h.v1[SBX_CG_CPU], "/sys/fs/cgroup/cpu,cpuacct");
    assert_string_equal(h.v1[SBX_CG_CPUACCT], "/sys/fs/cgroup/cpu,cpuacct");
    assert_string_equal(unified, "");
}

/*
 * The cgroup mounts read with listmount()/statmount() parse to the same layout as this process's
 * /proc/self/mountinfo (the host's real mounts; on a kernel without them the fast path must say
 * so, and the caller reads mountinfo).
 */
static void
test_cgroup_mounts_fast_match_mountinfo(void **state)
{
    (void)state;
    char *fast = co_xmalloc(1 << 16), *mi = co_xmalloc(1 << 16);
    int lines = sbx_cgroup_mounts_fast(fast, 1 << 16);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_read_file("/proc/self/mountinfo", mi, 1 << 16, &err), 0);
    if (lines < 0) {
        fprintf(stderr,
                "SKIP: no listmount()/statmount() with mount options here (errno %d): "
                "the sandbox reads /proc/self/mountinfo instead\n",
                errno);
        free(fast);
        free(mi);
        skip();
    }
    struct sbx_cgroup_host a, b;
    char ua[PATH_MAX], ub[PATH_MAX];
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    unsigned fa = sbx_cgroup_parse_mountinfo(fast, &a, ua);
    unsigned fb = sbx_cgroup_parse_mountinfo(mi, &b, ub);
    assert_int_equal(fa, fb);
    assert_string_equal(ua, ub);
    for (int c = 0; c < SBX_CG_NCTRL; c++)
        assert_string_equal(a.v1[c], b.v1[c]);
    /* One line per cgroup mount, as many as mountinfo has. */
    int n_mi = 0;
    for (const char *p = mi; (p = strstr(p, " - cgroup")); p++)
        n_mi++;
    assert_int_equal(lines, n_mi);
    free(fast);
    free(mi);
}

/* A v1 tree: one folder per hierarchy (cpu and cpuacct joint when @joint). */
static void
make_v1_tree(struct sbx_cgroup_host *h, bool joint, const char *unified)
{
    static const char *const names[SBX_CG_NREQUIRED] = {"cpu", "cpuacct", "memory", "pids",
                                                        "freezer"};
    memset(h, 0, sizeof(*h));
    for (int c = 0; c < SBX_CG_NREQUIRED; c++) {
        const char *n = joint && c <= SBX_CG_CPUACCT ? "cpu,cpuacct" : names[c];
        snprintf(h->v1[c], PATH_MAX, "%s/%s", tree, n);
        __real_mkdir(h->v1[c], 0755);
    }
    if (unified) {
        char u[PATH_MAX];
        snprintf(u, sizeof(u), "%s/%s", tree, unified);
        __real_mkdir(u, 0755);
    }
}

static void
test_v1_hybrid_job_cgroup(void **state)
{
    (void)state;
    struct sbx_cgroup_host h;
    make_v1_tree(&h, false, "unified");
    char unified[PATH_MAX];
    snprintf(unified, sizeof(unified), "%s/unified", tree);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v1(&h, unified, "cacheout", &err), 0);
    assert_int_equal(h.mode, SBX_CG_HYBRID);
    assert_true(h.memsw);
    /* The jobs' parent may weigh as much as the whole machine. */
    char want[32], parent[PATH_MAX];
    snprintf(want, sizeof(want), "%ld", 1024 * sysconf(_SC_NPROCESSORS_ONLN));
    snprintf(parent, sizeof(parent), "%s/cpu/cacheout", tree);
    assert_string_equal(get(parent, "cpu.shares"), want);
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {500, 32 << 20, 16, true}; /* a job with a network */
    assert_int_equal(sbx_cgroup_create(cg, &h, "slot-0", &lim, &err), 0);
    /* Five hierarchies, joined through "tasks" (see sbx_cgroup_create()); the cgroup2 mount
     * of a hybrid host gets no folder. */
    assert_int_equal(cg->n_dirs, 5);
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/memory/cacheout/slot-0/tasks", tree);
    assert_string_equal(cg->procs[cg->ctrl_dir[SBX_CG_MEMORY]], d);
    snprintf(d, sizeof(d), "%s/unified/cacheout/slot-0", tree);
    assert_int_equal(access(d, F_OK), -1);
    snprintf(d, sizeof(d), "%s/cpu/cacheout/slot-0", tree);
    assert_string_equal(get(d, "cpu.cfs_period_us"), "100000");
    assert_string_equal(get(d, "cpu.cfs_quota_us"), "50000");
    assert_string_equal(get(d, "cpu.shares"), "512");
    snprintf(d, sizeof(d), "%s/memory/cacheout/slot-0", tree);
    assert_string_equal(get(d, "memory.limit_in_bytes"), "33554432");
    assert_string_equal(get(d, "memory.memsw.limit_in_bytes"), "33554432");
    assert_string_equal(get(d, "memory.swappiness"), "0");
    /* F1: TCP buffers are charged up to the same limit. */
    assert_string_equal(get(d, "memory.kmem.tcp.limit_in_bytes"), "33554432");
    snprintf(d, sizeof(d), "%s/pids/cacheout/slot-0", tree);
    assert_string_equal(get(d, "pids.max"), "16");

    struct sbx_cg_stats st;
    assert_int_equal(sbx_cgroup_stats(cg, &st, &err), 0);
    assert_int_equal(st.cpu_us, 5000);
    assert_int_equal(st.mem_peak, 2097152);
    assert_int_equal(st.oom_kills, 2);

    assert_int_equal(sbx_cgroup_destroy(cg, &err), 0);
    for (int i = 0; i < cg->n_dirs; i++)
        assert_int_equal(access(cg->dirs[i], F_OK), -1);
    free(cg);
}

/* A blkio hierarchy in the v1 tree, with the weight file @weight_file in its root (or none). */
static void
add_blkio(struct sbx_cgroup_host *h, const char *weight_file)
{
    snprintf(h->v1[SBX_CG_BLKIO], PATH_MAX, "%s/blkio", tree);
    __real_mkdir(h->v1[SBX_CG_BLKIO], 0755);
    if (weight_file)
        put(h->v1[SBX_CG_BLKIO], weight_file, "100\n");
}

/* v1 with BFQ: the job's blkio weight follows its cores (100 per core); without a weight file
 * (no proportional I/O scheduler) the blkio hierarchy is not used at all. */
static void
test_v1_blkio_weight(void **state)
{
    (void)state;
    struct sbx_cgroup_host h;
    make_v1_tree(&h, false, NULL);
    add_blkio(&h, "blkio.bfq.weight");
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v1(&h, NULL, "cacheout", &err), 0);
    assert_string_equal(h.io_weight, "blkio.bfq.weight");
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {2500, 32 << 20, 16, false};
    assert_int_equal(sbx_cgroup_create(cg, &h, "slot-1", &lim, &err), 0);
    assert_int_equal(cg->n_dirs, 6);
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/blkio/cacheout/slot-1", tree);
    assert_string_equal(get(d, "blkio.bfq.weight"), "250");
    snprintf(d, sizeof(d), "%s/blkio/cacheout/slot-1/tasks", tree);
    assert_string_equal(cg->procs[cg->ctrl_dir[SBX_CG_BLKIO]], d);
    assert_int_equal(sbx_cgroup_destroy(cg, &err), 0);
    free(cg);

    /* No weight file: five folders, as before. */
    make_v1_tree(&h, false, NULL);
    snprintf(d, sizeof(d), "%s/blkio-none", tree);
    __real_mkdir(d, 0755);
    co_strlcpy(h.v1[SBX_CG_BLKIO], d, PATH_MAX);
    if (sbx_cgroup_host_init_v1(&h, NULL, "cacheout2", &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(h.io_weight, "");
    assert_string_equal(h.v1[SBX_CG_BLKIO], "");
    cg = co_xcalloc(1, sizeof(*cg));
    assert_int_equal(sbx_cgroup_create(cg, &h, "slot-2", &lim, &err), 0);
    assert_int_equal(cg->n_dirs, 5);
    assert_int_equal(sbx_cgroup_destroy(cg, &err), 0);
    free(cg);
}

static void
test_v1_joint_cpu_cpuacct(void **state)
{
    (void)state;
    struct sbx_cgroup_host h;
    make_v1_tree(&h, true, NULL);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v1(&h, NULL, "cacheout", &err), 0);
    assert_int_equal(h.mode, SBX_CG_V1);
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {2000, 64 << 20, 8, false};
    assert_int_equal(sbx_cgroup_create(cg, &h, "slot-9", &lim, &err), 0);
    assert_int_equal(cg->n_dirs, 4);
    assert_int_equal(cg->ctrl_dir[SBX_CG_CPU], cg->ctrl_dir[SBX_CG_CPUACCT]);
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/cpu,cpuacct/cacheout/slot-9", tree);
    assert_string_equal(get(d, "cpu.cfs_quota_us"), "200000");
    assert_string_equal(get(d, "cpu.shares"), "2048");
    /* Network "none": no TCP, the kernel's default is left alone. */
    snprintf(d, sizeof(d), "%s/memory/cacheout/slot-9", tree);
    assert_string_equal(get(d, "memory.kmem.tcp.limit_in_bytes"), "9223372036854771712\n");
    assert_int_equal(sbx_cgroup_destroy(cg, &err), 0);
    free(cg);
}

/* Delegation to a rootless user (cacheout-run --setup-rootless) on a fake v1 tree. */
static void
test_v1_delegate(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("SKIP test_v1_delegate: chown to another uid needs root\n");
        skip();
    }
    struct sbx_cgroup_host h;
    make_v1_tree(&h, true, NULL);
    char pids[PATH_MAX];
    snprintf(pids, sizeof(pids), "%s/pids", tree);
    __real_mkdir(pids, 0755);
    char mi[4096];
    snprintf(mi, sizeof(mi),
             "30 25 0:26 / %s/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
             "31 25 0:27 / %s/memory rw,nosuid - cgroup cgroup rw,memory\n"
             "32 25 0:28 / %s/freezer rw,nosuid - cgroup cgroup rw,freezer\n"
             "33 25 0:29 / %s/pids rw,nosuid - cgroup cgroup rw,pids\n",
             tree, tree, tree, tree);
    struct co_buf report = CO_BUF_INIT;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_delegate(tree, mi, "cacheout-4321", 4321, 5432, &report, &err), 0);
    /* One folder per hierarchy (cpu and cpuacct share one), each reported. */
    static const char *const hier[] = {"cpu,cpuacct", "memory", "freezer", "pids"};
    for (size_t i = 0; i < 4; i++) {
        char d[512], f[PATH_MAX];
        struct stat st;
        snprintf(d, sizeof(d), "%s/%s/cacheout-4321", tree, hier[i]);
        assert_int_equal(stat(d, &st), 0);
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_gid, 5432);
        snprintf(f, sizeof(f), "%s/tasks", d);
        assert_int_equal(stat(f, &st), 0);
        assert_int_equal(st.st_uid, 4321);
        snprintf(f, sizeof(f), "%s/cgroup.procs", d);
        assert_int_equal(stat(f, &st), 0);
        assert_int_equal(st.st_uid, 4321);
        /* The folder's own limits stay root's. */
        snprintf(f, sizeof(f), "%s/memory.limit_in_bytes", d);
        assert_int_equal(stat(f, &st), 0);
        assert_int_equal(st.st_uid, 0);
        assert_non_null(strstr(report.data, d));
    }
    /* The jobs' folder may weigh as much as the whole machine, as root's does. */
    char cpu_dir[512], want[32];
    snprintf(cpu_dir, sizeof(cpu_dir), "%s/cpu,cpuacct/cacheout-4321", tree);
    snprintf(want, sizeof(want), "%ld", 1024 * sysconf(_SC_NPROCESSORS_ONLN));
    assert_string_equal(get(cpu_dir, "cpu.shares"), want);
    /* Again: nothing to create, ownership stays. */
    assert_int_equal(sbx_cgroup_delegate(tree, mi, "cacheout-4321", 4321, 5432, &report, &err), 0);
    co_buf_release(&report);

    /* A controller missing from the host: refused, naming it. */
    snprintf(mi, sizeof(mi), "31 25 0:27 / %s/memory rw - cgroup cgroup rw,memory\n", tree);
    assert_int_equal(sbx_cgroup_delegate(tree, mi, "cacheout-4321", 4321, 5432, &report, &err), -1);
    assert_non_null(strstr(err.msg, "'cpu'"));
    co_buf_release(&report);
}

static void
test_parent_name(void **state)
{
    (void)state;
    char name[128];
    unsetenv("CACHEOUT_CGROUP_PARENT");
    sbx_cgroup_parent_name(0, name, sizeof(name));
    assert_string_equal(name, "cacheout");
    sbx_cgroup_parent_name(1000, name, sizeof(name));
    assert_string_equal(name, "cacheout-1000");
    setenv("CACHEOUT_CGROUP_PARENT", "jobs", 1);
    sbx_cgroup_parent_name(1000, name, sizeof(name));
    assert_string_equal(name, "jobs");
    unsetenv("CACHEOUT_CGROUP_PARENT");
}

static void
test_v1_fails_closed(void **state)
{
    (void)state;
    struct sbx_cgroup_host h;
    make_v1_tree(&h, false, NULL);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cgroup_host_init_v1(&h, NULL, "cacheout", &err), 0);
    missing_file = "pids.max";
    struct sbx_cgroup *cg = co_xcalloc(1, sizeof(*cg));
    struct sbx_cg_limits lim = {1000, 64 << 20, 8, false};
    assert_int_equal(sbx_cgroup_create(cg, &h, "slot-5", &lim, &err), -1);
    assert_non_null(strstr(err.msg, "pids.max"));
    for (int i = 0; i < cg->n_dirs; i++)
        assert_int_equal(access(cg->dirs[i], F_OK), -1);
    free(cg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_moves_into_leaf_and_delegates, setup_tree,
                                        teardown_tree),
        cmocka_unit_test_setup_teardown(test_v2_no_move_when_already_delegated, setup_tree,
                                        teardown_tree),
        cmocka_unit_test_setup_teardown(test_v2_refuses_foreign_processes, setup_tree,
                                        teardown_tree),
        cmocka_unit_test_setup_teardown(test_v2_missing_controller, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v2_job_cgroup, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v2_leftover_is_replaced, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v2_fails_closed, setup_tree, teardown_tree),
        cmocka_unit_test(test_parse_mountinfo),
        cmocka_unit_test(test_cgroup_mounts_fast_match_mountinfo),
        cmocka_unit_test_setup_teardown(test_v1_hybrid_job_cgroup, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v1_joint_cpu_cpuacct, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v1_blkio_weight, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v1_fails_closed, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_v1_delegate, setup_tree, teardown_tree),
        cmocka_unit_test(test_parent_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
