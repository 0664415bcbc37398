/*
 * In-process tests of sbx_run() as the agent uses it: capture, in-memory work files, streaming,
 * cancellation from another thread, concurrent runs from several threads, exec failures and
 * fail-closed errors.  These run real sandboxes and need root; as another user they are skipped
 * (and say so), unless SBX_TEST_ROOTLESS=1 says that the user was prepared for rootless
 * sandboxes: tests/sandbox/run.sh runs them that way too.  The escape and limit suite is
 * tests/sandbox/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "sbx.h"

static bool
rootless_run(void)
{
    const char *v = getenv("SBX_TEST_ROOTLESS");
    return geteuid() != 0 && v && strcmp(v, "1") == 0;
}

static int
need_root(void **state)
{
    (void)state;
    if (geteuid() != 0 && !rootless_run()) {
        fprintf(stderr, "SKIP: sandbox run tests need root (namespaces, cgroups, uid switch), "
                        "or SBX_TEST_ROOTLESS=1 for a user prepared for rootless sandboxes\n");
        skip();
    }
    return 0;
}

static void
run_ok(const struct sbx_spec *spec, struct sbx_result *res)
{
    co_err err = CO_ERR_INIT;
    int rc = sbx_run(spec, res, &err);
    if (rc < 0)
        fail_msg("sbx_run failed: %s", err.msg);
}

static void
test_capture_and_files(void **state)
{
    need_root(state);
    static const char code[] = "import os, sys\n"
                               "print(open('params.json').read().strip())\n"
                               "print(os.getcwd(), os.getuid() >= 900000, sys.argv[1])\n"
                               "print('err', file=sys.stderr)\n"
                               "print(sorted(os.listdir('/work')))\n";
    struct sbx_file files[] = {
        {"main.py", code, sizeof(code) - 1, NULL, 0},
        {"params.json", "{\"a\": 1}\n", 9, NULL, 0},
        {"sub/dir/empty.txt", "", 0, NULL, 0600},
    };
    const char *argv[] = {"python3", "main.py", "arg1", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    spec.files = files;
    spec.n_files = 3;
    struct sbx_result res;
    run_ok(&spec, &res);
    assert_string_equal(sbx_status_name(res.status), "ok");
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.stdout_data,
                        "{\"a\": 1}\n/work True arg1\n['main.py', 'params.json', 'sub']\n");
    assert_string_equal(res.stderr_data, "err\n");
    assert_int_equal(res.stdout_bytes, (int64_t)strlen(res.stdout_data));
    assert_true(res.uid >= SBX_UID_BASE);
    assert_true(res.wall_ms >= 0);
    sbx_result_release(&res);
}

/* keep_work: /work outlives the sandbox through res.work_fd, links are not followed. */
static void
test_keep_work(void **state)
{
    need_root(state);
    const char *argv[] = {
        "sh", "-c", "mkdir -p out/sub && printf kept > out/sub/a.txt && ln -s /etc/passwd out/link",
        NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    spec.keep_work = true;
    struct sbx_result res;
    run_ok(&spec, &res);
    assert_string_equal(sbx_status_name(res.status), "ok");
    assert_true(res.has_work_fd);
    assert_true(res.work_fd >= 0);
    int fd = openat(res.work_fd, "out/sub/a.txt", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(fd >= 0);
    char buf[16] = {0};
    assert_int_equal(read(fd, buf, sizeof(buf) - 1), 4);
    assert_string_equal(buf, "kept");
    close(fd);
    errno = 0;
    assert_int_equal(openat(res.work_fd, "out/link", O_RDONLY | O_NOFOLLOW | O_CLOEXEC), -1);
    assert_int_equal(errno, ELOOP);
    sbx_result_release(&res);
    assert_false(res.has_work_fd);

    /* Without keep_work there is no descriptor. */
    spec.keep_work = false;
    run_ok(&spec, &res);
    assert_false(res.has_work_fd);
    sbx_result_release(&res);
}

static void
test_runtime_error_and_exec_failure(void **state)
{
    need_root(state);
    const char *argv[] = {"sh", "-c", "exit 3", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    struct sbx_result res;
    run_ok(&spec, &res);
    assert_int_equal(res.status, SBX_RUNTIME_ERROR);
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(res.error_step, "");
    sbx_result_release(&res);

    const char *missing[] = {"no-such-program-xyz", NULL};
    spec.argv = missing;
    run_ok(&spec, &res);
    assert_int_equal(res.status, SBX_RUNTIME_ERROR);
    assert_int_equal(res.exit_code, 127);
    assert_string_equal(res.error_step, "execve");
    assert_int_equal(res.error_errno, ENOENT);
    sbx_result_release(&res);
}

static void
test_output_cap(void **state)
{
    need_root(state);
    const char *argv[] = {"python3", "-c", "import sys; sys.stdout.write('x' * 100000)", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    spec.output_limit = 1000;
    struct sbx_result res;
    run_ok(&spec, &res);
    assert_int_equal(res.status, SBX_OK);
    assert_true(res.stdout_truncated);
    assert_false(res.stderr_truncated);
    assert_int_equal(res.stdout_len, 1000);
    assert_int_equal(res.stdout_bytes, 100000);
    sbx_result_release(&res);
}

struct stream_log {
    size_t out, err;
    int calls;
};

static void
on_output(void *ud, enum sbx_stream stream, const char *data, size_t len)
{
    struct stream_log *l = ud;
    (void)data;
    l->calls++;
    if (stream == SBX_STDOUT)
        l->out += len;
    else
        l->err += len;
}

static void
test_streaming_without_capture(void **state)
{
    need_root(state);
    const char *argv[] = {"sh", "-c", "echo one; echo two >&2; echo three", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    struct stream_log log = {0, 0, 0};
    struct sbx_run_opts opts = {on_output, &log, false, NULL};
    struct sbx_result res;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_run_ex(&spec, &opts, &res, &err), 0);
    assert_int_equal(res.status, SBX_OK);
    assert_int_equal(log.out, 10);
    assert_int_equal(log.err, 4);
    assert_true(log.calls >= 2);
    assert_null(res.stdout_data);
    sbx_result_release(&res);
}

static void *
cancel_later(void *arg)
{
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    sbx_cancel(arg);
    return NULL;
}

static void
test_cancel_from_thread(void **state)
{
    need_root(state);
    const char *argv[] = {"sleep", "5", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    struct sbx_cancel *c;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_cancel_new(&c, &err), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, c), 0);
    struct sbx_run_opts opts = {NULL, NULL, true, c};
    struct sbx_result res;
    assert_int_equal(sbx_run_ex(&spec, &opts, &res, &err), 0);
    pthread_join(t, NULL);
    assert_int_equal(res.status, SBX_CANCELLED);
    assert_int_equal(res.signal, 9);
    assert_true(res.wall_ms < 3000);
    sbx_result_release(&res);
    sbx_cancel_free(c);
}

struct conc {
    struct sbx_result res;
    int rc;
    co_err err;
};

static void *
run_thread(void *arg)
{
    struct conc *c = arg;
    const char *argv[] = {"sh", "-c", "id -u; sleep 0.3", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    c->err = (co_err)CO_ERR_INIT;
    c->rc = sbx_run(&spec, &c->res, &c->err);
    return NULL;
}

static void
test_concurrent_threads_get_distinct_uids(void **state)
{
    need_root(state);
    enum { N = 4 };
    struct conc c[N];
    pthread_t t[N];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, run_thread, &c[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        if (c[i].rc != 0 || c[i].res.status != SBX_OK) {
            /* Say what happened to the sandbox before the assertions below fail. */
            fprintf(stderr,
                    "sandbox %d: rc %d (%s), status %d, exit %d, signal %d, wall %lld ms, "
                    "cpu %lld ms, slot %u, step '%s', errno %d, '%s', stdout '%s', stderr '%s'\n",
                    i, c[i].rc, c[i].err.msg, (int)c[i].res.status, c[i].res.exit_code,
                    c[i].res.signal, (long long)c[i].res.wall_ms, (long long)c[i].res.cpu_ms,
                    c[i].res.slot, c[i].res.error_step, c[i].res.error_errno, c[i].res.error_msg,
                    c[i].res.stdout_data ? c[i].res.stdout_data : "",
                    c[i].res.stderr_data ? c[i].res.stderr_data : "");
        }
        assert_int_equal(c[i].rc, 0);
        assert_int_equal(c[i].res.status, SBX_OK);
        char want[32];
        snprintf(want, sizeof(want), "%u\n", (unsigned)c[i].res.uid);
        assert_string_equal(c[i].res.stdout_data, want);
        for (int j = 0; j < i; j++) {
            assert_int_not_equal(c[i].res.uid, c[j].res.uid);
            assert_int_not_equal(c[i].res.host_uid, c[j].res.host_uid);
        }
        /* Rootless: on the host, the job runs as a subordinate uid, not as this user. */
        if (rootless_run()) {
            assert_int_not_equal(c[i].res.host_uid, c[i].res.uid);
            assert_int_not_equal(c[i].res.host_uid, geteuid());
        } else {
            assert_int_equal(c[i].res.host_uid, c[i].res.uid);
        }
    }
    for (int i = 0; i < N; i++)
        sbx_result_release(&c[i].res);
}

static void
test_network_namespace_without_pool(void **state)
{
    need_root(state);
    /* Before any sbx_prewarm(): the parent makes the namespace itself while the child builds
     * the root, and hands it over; it is empty and not the host's. */
    const char *argv[] = {"sh", "-c", "tail -n +3 /proc/net/dev; readlink /proc/self/ns/net", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    struct sbx_result a;
    run_ok(&spec, &a);
    assert_int_equal(a.status, SBX_OK);
    assert_non_null(strstr(a.stdout_data, "lo:"));
    assert_null(strstr(a.stdout_data, "eth"));
    char host[64] = "";
    ssize_t n = readlink("/proc/self/ns/net", host, sizeof(host) - 1);
    assert_true(n > 0);
    host[n] = '\0';
    assert_non_null(strstr(a.stdout_data, "net:["));
    assert_null(strstr(a.stdout_data, host));
    sbx_result_release(&a);
}

struct prewarm_job {
    struct sbx_result res;
    int rc;
};

static void *
prewarm_job_run(void *arg)
{
    struct prewarm_job *j = arg;
    const char *argv[] = {"sh", "-c",
                          "cat /proc/net/dev | tail -n +3; readlink /proc/self/ns/net "
                          "/proc/self/ns/ipc /proc/self/ns/uts; sleep 0.5",
                          NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    co_err err = CO_ERR_INIT;
    j->rc = sbx_run(&spec, &j->res, &err);
    return NULL;
}

static void
test_prewarmed_namespaces(void **state)
{
    need_root(state);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_prewarm(2, true, &err), 0);
    assert_int_equal(sbx_async_cleanup(&err), 0);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    /*
     * Two jobs at once see a network namespace with only a down "lo", and not the same one, nor
     * the same IPC or UTS namespace (the pool makes the three together), none of them the host's.
     * They overlap (each sleeps after printing) so that both namespaces exist at the same time:
     * jobs run one after the other could show the same inode number for two different
     * namespaces, because the kernel reuses the number of a freed one.
     */
    struct prewarm_job pa = {0}, pb = {0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, prewarm_job_run, &pa), 0);
    assert_int_equal(pthread_create(&tb, NULL, prewarm_job_run, &pb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(pa.rc, 0);
    assert_int_equal(pb.rc, 0);
    struct sbx_result a = pa.res, b = pb.res;
    assert_int_equal(a.status, SBX_OK);
    assert_int_equal(b.status, SBX_OK);
    assert_non_null(strstr(a.stdout_data, "lo:"));
    assert_null(strstr(a.stdout_data, "eth"));
    static const char *const kinds[] = {"net", "ipc", "uts"};
    for (size_t k = 0; k < 3; k++) {
        char tag[16], host[64] = "", path[32];
        snprintf(tag, sizeof(tag), "%s:[", kinds[k]);
        const char *na = strstr(a.stdout_data, tag), *nb = strstr(b.stdout_data, tag);
        assert_non_null(na);
        assert_non_null(nb);
        size_t la = strcspn(na, "\n"), lb = strcspn(nb, "\n");
        assert_false(la == lb && memcmp(na, nb, la) == 0);
        snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[k]);
        ssize_t n = readlink(path, host, sizeof(host) - 1);
        assert_true(n > 0);
        host[n] = '\0';
        assert_null(strstr(a.stdout_data, host));
        assert_null(strstr(b.stdout_data, host));
    }
    sbx_result_release(&a);
    sbx_result_release(&b);
}

/*
 * The IPC and UTS namespaces come from the pool too (sbx_prewarm()): each job gets fresh ones.
 * A job leaves SysV objects behind (a message queue, a shared memory segment and a semaphore
 * set outlive their process within their namespace) and names itself; the next jobs find no
 * object and the sandbox's hostname.  A namespace handed to two jobs, or a job left in the
 * host's, would show the first job's objects.
 */
static void
test_prewarmed_ipc_uts_fresh(void **state)
{
    need_root(state);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_prewarm(2, true, &err), 0);
    assert_int_equal(sbx_async_cleanup(&err), 0);
    const char *argv[] = {
        "sh",
        "-c",
        "if [ \"$1\" = make ]; then ipcmk -Q >/dev/null && ipcmk -M 4096 >/dev/null && "
        "ipcmk -S 1 >/dev/null || echo ipcmk-failed; fi; "
        "echo objects=$(cat /proc/sysvipc/msg /proc/sysvipc/shm /proc/sysvipc/sem | grep -vc key); "
        "echo host=$(cat /proc/sys/kernel/hostname)",
        "sh",
        "make",
        NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    for (int i = 0; i < 4; i++) {
        argv[4] = i % 2 == 0 ? "make" : "look";
        struct sbx_result r;
        run_ok(&spec, &r);
        assert_int_equal(r.status, SBX_OK);
        assert_non_null(r.stdout_data);
        assert_null(strstr(r.stdout_data, "ipcmk-failed"));
        assert_non_null(strstr(r.stdout_data, i % 2 == 0 ? "objects=3\n" : "objects=0\n"));
        assert_non_null(strstr(r.stdout_data, "host=cacheout\n"));
        sbx_result_release(&r);
    }
}

/* Run @spec until it gets @slot (the janitor keeps the slot's cgroup a moment after a run). */
static void
run_in_slot(struct sbx_spec *spec, unsigned slot, struct sbx_result *res)
{
    for (int i = 0; i < 50; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        run_ok(spec, res);
        if (res->slot == slot)
            return;
        sbx_result_release(res);
    }
    fail_msg("slot %u (whose cgroup was kept) was never offered again", slot);
}

static void
test_recycled_cgroup_starts_clean(void **state)
{
    need_root(state);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_async_cleanup(&err), 0);
    /* A job killed by the OOM killer after burning CPU, then jobs in the same slot (its cgroup
     * reused, on v1 hosts): no OOM, CPU or memory peak of the first may show in their results,
     * and the limits are the new job's (a larger memory limit, then a smaller one). */
    const char *hog[] = {"sh", "-c",
                         "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; "
                         "python3 -c 'x = bytearray(96 << 20)'",
                         NULL};
    const char *small[] = {"sh", "-c", "cat /proc/self/cgroup >/dev/null", NULL};
    const char *big[] = {"python3", "-c", "x = bytearray(96 << 20); print(len(x))", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = hog;
    spec.memory_bytes = 48 << 20;
    struct sbx_result a, b, c, d;
    run_ok(&spec, &a);
    assert_string_equal(sbx_status_name(a.status), "oom");
    assert_true(a.cpu_ms >= 50);
    spec.argv = small;
    run_in_slot(&spec, a.slot, &b);
    assert_string_equal(sbx_status_name(b.status), "ok");
    assert_false(b.oom_killed);
    assert_true(b.cpu_ms < a.cpu_ms);
    assert_true(b.memory_peak_kb < 40 * 1024);
    spec.argv = big;
    spec.memory_bytes = 256 << 20;
    run_in_slot(&spec, a.slot, &c);
    assert_string_equal(sbx_status_name(c.status), "ok");
    spec.memory_bytes = 48 << 20;
    run_in_slot(&spec, a.slot, &d);
    assert_string_equal(sbx_status_name(d.status), "oom");
    sbx_result_release(&a);
    sbx_result_release(&b);
    sbx_result_release(&c);
    sbx_result_release(&d);
}

/*
 * A recycled cgroup whose next job asks for the same limits keeps them without writing them
 * again (sbx_cgroup.c): every job of a slot must still get exactly its own memory limit and
 * nothing the previous job left (files, processes, OOM counts).  Each job reports what it finds,
 * then allocates 80 MiB: OOM-killed under 48 MiB (written, then kept, then written again after a
 * larger limit), not under 128 MiB.
 */
static void
test_recycled_cgroup_same_limits(void **state)
{
    need_root(state);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_async_cleanup(&err), 0);
    static const char probe[] =
        "import os\n"
        "left = len(os.listdir('/tmp')) + len(os.listdir('/dev/shm')) + len(os.listdir('/work'))\n"
        "procs = len([d for d in os.listdir('/proc') if d.isdigit()])\n"
        "for p in ('/tmp/a', '/dev/shm/a', '/work/a'):\n"
        "    open(p, 'w').write('x')\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.execvp('sleep', ['sleep', '30'])\n"
        "print('left=%d procs=%d' % (left, procs), flush=True)\n"
        "x = bytearray(80 << 20)\n";
    const char *argv[] = {"python3", "-c", probe, NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    const int64_t mem_mib[] = {48, 48, 48, 128, 48};
    const char *want[] = {"oom", "oom", "oom", "ok", "oom"};
    unsigned slot = 0;
    for (int i = 0; i < 5; i++) {
        struct sbx_result r;
        spec.memory_bytes = mem_mib[i] << 20;
        if (i == 0)
            run_ok(&spec, &r);
        else
            run_in_slot(&spec, slot, &r);
        slot = r.slot;
        assert_string_equal(sbx_status_name(r.status), want[i]);
        assert_int_equal(r.oom_killed, strcmp(want[i], "oom") == 0);
        /* Nothing of the previous job: no file in the tmpfs folders, no process left (init and
         * the probe only: the previous job's detached sleep died with its sandbox). */
        int left = -1, procs = -1;
        assert_non_null(r.stdout_data);
        assert_int_equal(sscanf(r.stdout_data, "left=%d procs=%d", &left, &procs), 2);
        assert_int_equal(left, 0);
        assert_int_equal(procs, 2);
        sbx_result_release(&r);
    }
}

/*
 * A long-lived caller (janitor on) runs its jobs in copies of the image's mount template
 * (sbx_mnt_template.c): each copy must be fresh.  A first job writes into every writable mount
 * and tries the read-only ones; the next jobs find none of it, the same mounts (nothing leaked
 * into the template) and their own /proc.  As root the masked /proc files are binds of the
 * sandbox's own /dev/null (its /dev tmpfs), which shows the template was used.
 */
static void
test_mount_template_copies_are_fresh(void **state)
{
    need_root(state);
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_async_cleanup(&err), 0);
    static const char probe[] =
        "import os\n"
        "left = sorted(os.listdir('/tmp') + os.listdir('/dev/shm') + os.listdir('/work'))\n"
        "wrote = []\n"
        "for p in ('/tmp/a', '/dev/shm/a', '/work/a', '/a', '/usr/a', '/etc/a', '/dev/a'):\n"
        "    try:\n"
        "        open(p, 'w').write('x')\n"
        "        wrote.append(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "mounts = open('/proc/self/mountinfo').read().splitlines()\n"
        "cmdline = [l.split(' - ')[1].split()[0] for l in mounts if l.split()[4] == "
        "'/proc/cmdline']\n"
        "print('left=%s' % ','.join(left))\n"
        "print('wrote=%s' % ','.join(wrote))\n"
        "print('mounts=%d' % len(mounts))\n"
        "print('cmdline=%s' % ','.join(cmdline))\n"
        "print('pid=%d' % os.getpid())\n"
        "dev = [l.split()[5].split(',')[0] for l in mounts if l.split()[4] in ('/dev', "
        "'/dev/shm')]\n"
        "print('dev=%s' % ','.join(dev))\n";
    const char *argv[] = {"python3", "-c", probe, NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    char first_mounts[64] = "";
    for (int i = 0; i < 3; i++) {
        struct sbx_result r;
        run_ok(&spec, &r);
        assert_int_equal(r.status, SBX_OK);
        const char *out = r.stdout_data;
        assert_non_null(out);
        assert_non_null(strstr(out, "left=\n"));
        assert_non_null(strstr(out, "wrote=/tmp/a,/dev/shm/a,/work/a\n"));
        assert_non_null(strstr(out, "pid=2\n"));
        const char *m = strstr(out, "mounts=");
        assert_non_null(m);
        char mounts[64];
        size_t n = strcspn(m, "\n");
        assert_true(n < sizeof(mounts));
        memcpy(mounts, m, n);
        mounts[n] = '\0';
        if (i == 0)
            memcpy(first_mounts, mounts, n + 1);
        else
            assert_string_equal(mounts, first_mounts);
        if (!rootless_run()) {
            assert_non_null(strstr(out, "cmdline=tmpfs\n"));
            /* The template's /dev is read-only; each copy mounts its own /dev/shm on it. */
            assert_non_null(strstr(out, "dev=ro,rw\n"));
        }
        sbx_result_release(&r);
    }
}

static void
test_fail_closed(void **state)
{
    need_root(state);
    const char *argv[] = {"true", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    spec.image = "/nonexistent/image/folder";
    struct sbx_result res;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_run(&spec, &res, &err), -1);
    assert_int_equal(res.status, SBX_INTERNAL_ERROR);
    assert_string_equal(res.error_step, "image");
    assert_non_null(strstr(res.error_msg, "/nonexistent/image/folder"));
    sbx_result_release(&res);

    /* A work file whose host path is missing: the job does not run. */
    struct sbx_file f = {"x", NULL, 0, "/nonexistent/file", 0};
    spec.image = "default";
    spec.files = &f;
    spec.n_files = 1;
    assert_int_equal(sbx_run(&spec, &res, &err), -1);
    assert_string_equal(res.error_step, "work_file");
    sbx_result_release(&res);

    /* An invalid spec never reaches the kernel. */
    spec.n_files = 0;
    spec.memory_bytes = 1;
    assert_int_equal(sbx_run(&spec, &res, &err), -1);
    assert_string_equal(res.error_step, "spec");
    sbx_result_release(&res);
}

/* The parent (field 4) and state (field 3) of process @pid from /proc; false if it is gone. */
static bool
proc_stat(pid_t pid, pid_t *ppid, char *state)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    int pp = 0;
    if (!p || sscanf(p + 1, " %c %d", state, &pp) != 2)
        return false;
    *ppid = pp;
    return true;
}

struct init_probe {
    pid_t inits; /* processes named cacheout-init whose parent is this process */
    bool checked;
};

/* On the job's first output: look for the sandbox's init among this process's children. */
static void
on_output_find_init(void *ud, enum sbx_stream stream, const char *data, size_t len)
{
    struct init_probe *p = ud;
    (void)stream, (void)data, (void)len;
    if (p->checked)
        return;
    p->checked = true;
    char path[300], comm[32];
    DIR *d = opendir("/proc");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool named = fgets(comm, sizeof(comm), f) && strcmp(comm, "cacheout-init\n") == 0;
        fclose(f);
        pid_t ppid = 0;
        char st = 0;
        if (named && proc_stat(pid, &ppid, &st) && ppid == getpid())
            p->inits++;
    }
    closedir(d);
}

/* sbx_launcher_enable(), then run `true` with @spec (argv set to @argv), which must succeed. */
static void
enable_launcher_run_true(struct sbx_spec *spec, const char **argv)
{
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_launcher_enable(&err), 0);
    argv[0] = "true";
    argv[1] = NULL;
    sbx_spec_init(spec);
    spec->argv = argv;
    struct sbx_result res;
    run_ok(spec, &res);
    assert_int_equal(res.status, SBX_OK);
    sbx_result_release(&res);
}

/*
 * Rootless: sbx_launcher_enable() starts no launcher and runs clone directly (their init is
 * cloned inside the sandboxes' user namespace).  Returns true (checked) when rootless.
 */
static bool
rootless_without_launcher(void)
{
    if (!rootless_run())
        return false;
    const char *argv[2];
    struct sbx_spec spec;
    enable_launcher_run_true(&spec, argv);
    pid_t lpid = -1;
    uint64_t clones = 1;
    unsigned starts = 1;
    sbx_launcher_stats(&lpid, &clones, &starts);
    assert_int_equal(lpid, 0);
    assert_int_equal(clones, 0);
    assert_int_equal(starts, 0);
    return true;
}

/*
 * The launcher clones init, and init is still this process's child: the launcher's count of
 * clones goes up by one per run, the launcher is a child of this process, and while the job
 * runs, one cacheout-init is this process's child.
 */
static void
test_launcher_clones_init(void **state)
{
    need_root(state);
    if (rootless_without_launcher())
        return;
    co_err err = CO_ERR_INIT;
    assert_int_equal(sbx_launcher_enable(&err), 0);
    pid_t lpid = 0;
    uint64_t before = 0, after = 0;
    unsigned starts = 0;
    sbx_launcher_stats(&lpid, &before, &starts);
    assert_true(lpid > 0);
    pid_t ppid = 0;
    char st = 0;
    assert_true(proc_stat(lpid, &ppid, &st));
    assert_int_equal(ppid, getpid());

    /* The inits of earlier cases are reaped by the janitor after their runs returned. */
    for (int i = 0; i < 500; i++) {
        struct init_probe earlier = {0, false};
        on_output_find_init(&earlier, SBX_STDOUT, "", 0);
        if (earlier.inits == 0)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    const char *argv[] = {"sh", "-c", "echo ready; sleep 0.3", NULL};
    struct sbx_spec spec;
    sbx_spec_init(&spec);
    spec.argv = argv;
    struct init_probe probe = {0, false};
    struct sbx_run_opts opts = {on_output_find_init, &probe, true, NULL};
    struct sbx_result res;
    assert_int_equal(sbx_run_ex(&spec, &opts, &res, &err), 0);
    assert_int_equal(res.status, SBX_OK);
    sbx_result_release(&res);
    assert_true(probe.checked);
    assert_int_equal(probe.inits, 1);
    pid_t lpid2 = 0;
    sbx_launcher_stats(&lpid2, &after, &starts);
    assert_int_equal(lpid2, lpid);
    assert_int_equal(after, before + 1);
}

/* Sleep @ms milliseconds (polling for a state; no timing is asserted). */
static void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* The current launcher's pid (0: none), and the launchers started so far in *@starts. */
static pid_t
launcher_now(unsigned *starts)
{
    pid_t lpid = 0;
    uint64_t clones = 0;
    sbx_launcher_stats(&lpid, &clones, starts);
    return lpid;
}

/* Run @spec, which must fail closed at step "clone" with a message naming the launcher. */
static void
run_fails_at_clone(const struct sbx_spec *spec, const char *msg_part)
{
    co_err err = CO_ERR_INIT;
    struct sbx_result res;
    assert_int_equal(sbx_run(spec, &res, &err), -1);
    assert_int_equal(res.status, SBX_INTERNAL_ERROR);
    assert_string_equal(res.error_step, "clone");
    if (!strstr(res.error_msg, msg_part))
        fail_msg("error \"%s\" does not say \"%s\"", res.error_msg, msg_part);
    sbx_result_release(&res);
}

/*
 * Kill the current launcher with SIGKILL; the next run of @spec fails at step "clone" ("gone"),
 * which drops it, so that the run after starts a new launcher with this process's environment
 * as it is now.  Returns the killed launcher's pid.
 */
static pid_t
kill_launcher_fail_once(const struct sbx_spec *spec)
{
    unsigned starts = 0;
    pid_t lpid = launcher_now(&starts);
    assert_true(lpid > 0);
    assert_int_equal(kill(lpid, SIGKILL), 0);
    /* Dead (a zombie until the next run reaps it): its end of the socket is closed by then. */
    for (int i = 0; i < 500; i++) {
        pid_t ppid = 0;
        char st = 0;
        if (!proc_stat(lpid, &ppid, &st) || st == 'Z')
            break;
        nap_ms(10);
    }
    run_fails_at_clone(spec, "launcher is gone");
    /* The failed run reaped it. */
    assert_int_equal(kill(lpid, 0), -1);
    return lpid;
}

/* This process's children: how many in all, zombies, and sandbox inits. */
static void
count_children(int *all, int *zombies, int *inits)
{
    *all = *zombies = *inits = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        pid_t pid = (pid_t)atoi(e->d_name);
        pid_t ppid = 0;
        char st = 0;
        if (pid <= 0 || !proc_stat(pid, &ppid, &st) || ppid != getpid())
            continue;
        (*all)++;
        *zombies += st == 'Z';
        char path[64], comm[32] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        FILE *f = fopen(path, "r");
        if (f) {
            *inits += fgets(comm, sizeof(comm), f) && strcmp(comm, "cacheout-init\n") == 0;
            fclose(f);
        }
    }
    closedir(d);
}

/*
 * Wait until this process has no child: the janitor reaps the inits of earlier runs after they
 * return, and no launcher runs (the last one was dropped).
 */
static void
wait_no_children_left(void)
{
    int all = 0, zombies = 0, inits = 0;
    for (int i = 0; i < 500; i++) {
        count_children(&all, &zombies, &inits);
        if (all == 0)
            return;
        nap_ms(10);
    }
    fail_msg("%d children (%d zombies, %d inits) left by earlier runs", all, zombies, inits);
}

/* The start of a launcher case: false when rootless (checked); else the launcher is on and
 * @spec (argv in @argv) runs `true`. */
static bool
launcher_case(void **state, struct sbx_spec *spec, const char **argv)
{
    need_root(state);
    if (rootless_without_launcher())
        return false;
    enable_launcher_run_true(spec, argv);
    return true;
}

/* Run @spec, which must succeed in a launcher started after the one of @old_pid, @old_starts. */
static void
run_ok_in_new_launcher(const struct sbx_spec *spec, pid_t old_pid, unsigned old_starts)
{
    struct sbx_result res;
    run_ok(spec, &res);
    assert_int_equal(res.status, SBX_OK);
    sbx_result_release(&res);
    unsigned starts = 0;
    pid_t lpid = launcher_now(&starts);
    assert_true(lpid > 0 && lpid != old_pid);
    assert_int_equal(starts, old_starts + 1);
}

/* A launcher killed between runs fails the next run closed (step "clone"); the one after works. */
static void
test_launcher_killed_fails_closed(void **state)
{
    const char *argv[2];
    struct sbx_spec spec;
    if (!launcher_case(state, &spec, argv))
        return;
    unsigned starts = 0;
    pid_t lpid = launcher_now(&starts);
    kill_launcher_fail_once(&spec);
    run_ok_in_new_launcher(&spec, lpid, starts);
}

/*
 * A launcher that hangs (SIGSTOP) does not stall the runs: the next run fails closed at step
 * "clone" once the bound on the launcher's answer passes (shortened to 3 s here), the hung
 * launcher is killed and reaped, and the run after works in a new launcher.
 */
static void
test_launcher_stopped_fails_closed(void **state)
{
    const char *argv[2];
    struct sbx_spec spec;
    if (!launcher_case(state, &spec, argv))
        return;
    struct sbx_result res;
    /* The bound is read when a launcher starts: start one with it. */
    setenv("CACHEOUT_LAUNCHER_TIMEOUT_MS", "3000", 1);
    kill_launcher_fail_once(&spec);
    run_ok(&spec, &res);
    sbx_result_release(&res);

    unsigned starts = 0;
    pid_t lpid = launcher_now(&starts);
    assert_true(lpid > 0);
    assert_int_equal(kill(lpid, SIGSTOP), 0);
    run_fails_at_clone(&spec, "did not answer in time");
    assert_int_equal(kill(lpid, 0), -1); /* killed and reaped */
    run_ok_in_new_launcher(&spec, lpid, starts);
    unsetenv("CACHEOUT_LAUNCHER_TIMEOUT_MS");
}

/*
 * A launcher that clones init and then dies (@fault "exit_after_clone") or hangs
 * ("stop_after_clone") before it answers: the run fails closed at step "clone" with @msg_part,
 * the init it cloned (this process's child, whose pid the run never got) is killed and reaped
 * before the run returns (no zombie, no init left: no child at all), and the next run works.
 */
static void
launcher_dies_after_clone(void **state, const char *fault, const char *msg_part)
{
    const char *argv[2];
    struct sbx_spec spec;
    if (!launcher_case(state, &spec, argv))
        return;
    struct sbx_result res;
    setenv("CACHEOUT_LAUNCHER_TIMEOUT_MS", "3000", 1);
    setenv("CACHEOUT_LAUNCHER_FAULT", fault, 1);
    kill_launcher_fail_once(&spec); /* the next run starts a launcher with the fault */

    wait_no_children_left();
    run_fails_at_clone(&spec, msg_part);
    unsetenv("CACHEOUT_LAUNCHER_FAULT");
    unsetenv("CACHEOUT_LAUNCHER_TIMEOUT_MS");
    /* The launcher that ran is reaped, and so is its init: this process has no child at all. */
    int all = -1, zombies = -1, inits = -1;
    count_children(&all, &zombies, &inits);
    assert_int_equal(all, 0);

    /* A new launcher (without the fault) runs the next job. */
    run_ok(&spec, &res);
    assert_int_equal(res.status, SBX_OK);
    sbx_result_release(&res);
}

static void
test_launcher_exits_after_clone_no_zombie(void **state)
{
    launcher_dies_after_clone(state, "exit_after_clone", "launcher is gone");
}

static void
test_launcher_stops_after_clone_no_zombie(void **state)
{
    launcher_dies_after_clone(state, "stop_after_clone", "did not answer in time");
}

int
main(int argc, char **argv)
{
    sbx_launcher_entry(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_and_files),
        cmocka_unit_test(test_keep_work),
        cmocka_unit_test(test_runtime_error_and_exec_failure),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_streaming_without_capture),
        cmocka_unit_test(test_cancel_from_thread),
        cmocka_unit_test(test_concurrent_threads_get_distinct_uids),
        cmocka_unit_test(test_network_namespace_without_pool),
        cmocka_unit_test(test_prewarmed_namespaces),
        cmocka_unit_test(test_prewarmed_ipc_uts_fresh),
        cmocka_unit_test(test_recycled_cgroup_starts_clean),
        cmocka_unit_test(test_recycled_cgroup_same_limits),
        cmocka_unit_test(test_mount_template_copies_are_fresh),
        cmocka_unit_test(test_fail_closed),
        /* Last: they turn the launcher on for the rest of the process. */
        cmocka_unit_test(test_launcher_clones_init),
        cmocka_unit_test(test_launcher_killed_fails_closed),
        cmocka_unit_test(test_launcher_stopped_fails_closed),
        cmocka_unit_test(test_launcher_exits_after_clone_no_zombie),
        cmocka_unit_test(test_launcher_stops_after_clone_no_zombie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
