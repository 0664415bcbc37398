/* Unit tests for agent/agent_job.c: status mapping, results, work files, sandbox spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_job.h"
#include "co_alloc.h"
#include "proto_job.h"

static int
mkdir_p_for_test(const char *path)
{
    char *p = co_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0700);
            *s = '/';
        }
    }
    int rc = mkdir(p, 0700);
    free(p);
    return rc;
}

static void
test_status_mapping(void **state)
{
    (void)state;
    static const struct {
        enum sbx_status s;
        const char *name;
    } map[] = {
        {SBX_OK, "ok"},
        {SBX_RUNTIME_ERROR, "runtime_error"},
        {SBX_SIGNALED, "signaled"},
        {SBX_TIMEOUT, "timeout"},
        {SBX_CPU_TIMEOUT, "cpu_timeout"},
        {SBX_OOM, "oom"},
        {SBX_SECCOMP, "seccomp"},
        {SBX_OUTPUT_LIMIT, "output_limit"},
        {SBX_INTERNAL_ERROR, "internal_error"},
        {SBX_CANCELLED, "cancelled"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        assert_string_equal(proto_run_status_name(agent_status_from_sbx(map[i].s)), map[i].name);
    assert_int_equal(agent_status_from_sbx((enum sbx_status)99), PROTO_RUN_INTERNAL_ERROR);
}

static void
test_finished_from_result(void **state)
{
    (void)state;
    struct proto_job_ref ref = {.job_id = "j1", .attempt = 3};
    struct sbx_result r;
    memset(&r, 0, sizeof(r));
    r.status = SBX_RUNTIME_ERROR;
    r.exit_code = 2;
    r.wall_ms = 120;
    r.cpu_ms = 80;
    r.memory_peak_kb = 4096;
    r.max_rss_kb = 2048;
    r.stdout_truncated = true;
    struct proto_job_finished f;
    agent_finished_from_result(&ref, &r, &f);
    assert_string_equal(f.job.job_id, "j1");
    assert_int_equal(f.job.attempt, 3);
    assert_int_equal(f.status, PROTO_RUN_RUNTIME_ERROR);
    assert_true(f.has_exit_code);
    assert_int_equal(f.exit_code, 2);
    assert_false(f.has_signal);
    assert_int_equal(f.wall_ms, 120);
    assert_int_equal(f.cpu_ms, 80);
    assert_int_equal(f.memory_peak_kb, 4096);
    assert_int_equal(f.max_rss_kb, 2048);
    assert_true(f.stdout_truncated);
    assert_false(f.stderr_truncated);
    assert_null(f.error);
    agent_finished_release(&f);

    memset(&r, 0, sizeof(r));
    r.status = SBX_OOM;
    r.exit_code = -1;
    r.signal = 9;
    r.wall_ms = -5;
    agent_finished_from_result(&ref, &r, &f);
    assert_int_equal(f.status, PROTO_RUN_OOM);
    assert_false(f.has_exit_code);
    assert_true(f.has_signal);
    assert_int_equal(f.signal, 9);
    assert_int_equal(f.wall_ms, 0);
    agent_finished_release(&f);

    memset(&r, 0, sizeof(r));
    r.status = SBX_INTERNAL_ERROR;
    r.exit_code = -1;
    co_strlcpy(r.error_step, "cgroup", sizeof(r.error_step));
    co_strlcpy(r.error_msg, "cannot set memory.max", sizeof(r.error_msg));
    agent_finished_from_result(&ref, &r, &f);
    assert_int_equal(f.status, PROTO_RUN_INTERNAL_ERROR);
    assert_string_equal(f.error, "cgroup: cannot set memory.max");
    agent_finished_release(&f);

    agent_finished_internal(&ref, "no room", &f);
    assert_int_equal(f.status, PROTO_RUN_INTERNAL_ERROR);
    assert_string_equal(f.error, "no room");
    assert_false(f.has_exit_code);
    agent_finished_release(&f);
}

static struct proto_job_assign
make_assign(const char *code_file)
{
    struct proto_job_assign a;
    memset(&a, 0, sizeof(a));
    co_strlcpy(a.job.job_id, "job-7", sizeof(a.job.job_id));
    a.job.attempt = 2;
    a.title = "t";
    a.command = "python3 src/main.py --n 3";
    a.code = "print(1)\n";
    a.code_file = (char *)code_file;
    a.parameters = "{\"n\":3}";
    co_strlcpy(a.image, "default", sizeof(a.image));
    a.required_cores = 2;
    a.required_ram_mb = 300;
    a.timeout_seconds = 45;
    return a;
}

/* The work file @name of @f, as a NUL-terminated copy of its in-memory data (NULL if absent). */
static char *
file_text(const struct agent_job_files *f, const char *name)
{
    for (size_t i = 0; i < f->n_files; i++) {
        if (strcmp(f->files[i].name, name) != 0)
            continue;
        assert_null(f->files[i].host_path); /* nothing is staged on the host */
        char *t = co_xcalloc(1, f->files[i].len + 1);
        memcpy(t, f->files[i].data, f->files[i].len);
        return t;
    }
    return NULL;
}

static void
test_build_files(void **state)
{
    (void)state;
    struct proto_job_assign a = make_assign("src/main.py");
    struct agent_job_files files;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_job_files_build(&a, &files, &err), 0);
    assert_int_equal(files.n_files, 2);
    assert_string_equal(files.files[0].name, "src/main.py");
    assert_string_equal(files.files[1].name, "params.json");
    char *code = file_text(&files, "src/main.py");
    char *params = file_text(&files, "params.json");
    assert_string_equal(code, "print(1)\n");
    assert_string_equal(params, "{\"n\":3}");
    free(code);
    free(params);

    struct sbx_spec spec;
    char *argv[] = {"python3", "src/main.py", NULL};
    agent_job_spec(&a, argv, &files, 0, 100, &spec);
    assert_ptr_equal(spec.argv, argv);
    assert_ptr_equal(spec.files, files.files);
    assert_int_equal(spec.n_files, 2);
    assert_string_equal(spec.image, "default");
    assert_int_equal(spec.cores_milli, 2000);
    assert_int_equal(spec.memory_bytes, 300LL * 1024 * 1024);
    assert_int_equal(spec.wall_ms, 45000);
    assert_int_equal(spec.pids, 100);
    assert_true(spec.output_limit > 0); /* the sandbox default */
    assert_true(spec.keep_work);
    assert_int_equal(sbx_spec_validate(&spec, &err), 0);
    agent_job_spec(&a, argv, &files, 12345, 0, &spec);
    assert_int_equal(spec.output_limit, 12345);
    agent_job_files_release(&files);
    assert_null(files.files);

    /* No parameters: params.json is "{}". */
    a.parameters = NULL;
    assert_int_equal(agent_job_files_build(&a, &files, &err), 0);
    params = file_text(&files, "params.json");
    assert_string_equal(params, "{}");
    free(params);
    agent_job_files_release(&files);

    /* A code file named params.json wins over the parameters. */
    a = make_assign("params.json");
    assert_int_equal(agent_job_files_build(&a, &files, &err), 0);
    assert_int_equal(files.n_files, 1);
    code = file_text(&files, "params.json");
    assert_string_equal(code, "print(1)\n");
    free(code);
    agent_job_files_release(&files);

    /* Input files follow; an empty code gives way to an input file of its name. */
    a = make_assign("main.sh");
    a.code = "";
    a.files = "{\"main.sh\":\"ZWNobyBoaQo=\",\"data/in.txt\":\"eA==\"}";
    assert_int_equal(agent_job_files_build(&a, &files, &err), 0);
    assert_int_equal(files.n_files, 3);
    assert_string_equal(files.files[0].name, "params.json");
    code = file_text(&files, "main.sh");
    assert_string_equal(code, "echo hi\n");
    free(code);
    char *in = file_text(&files, "data/in.txt");
    assert_string_equal(in, "x");
    free(in);
    agent_job_files_release(&files);

    /* Unsafe code files are refused. */
    a = make_assign("../escape.py");
    assert_int_equal(agent_job_files_build(&a, &files, &err), -1);
    a = make_assign("/etc/passwd");
    assert_int_equal(agent_job_files_build(&a, &files, &err), -1);
}

static void
test_root_prepare(void **state)
{
    (void)state;
    char root[] = "/tmp/agent_root_test_XXXXXX";
    assert_non_null(mkdtemp(root));
    char *sub = co_xasprintf("%s/a/b", root);
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_job_root_prepare(sub, &err), 0);
    /* A leftover job folder from an earlier run is removed by the next start. */
    char *left = co_xasprintf("%s/jobs/old.1/src", sub);
    assert_int_equal(mkdir_p_for_test(left), 0);
    char *file = co_xasprintf("%s/main.py", left);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(agent_job_root_prepare(sub, &err), 0);
    struct stat st;
    assert_int_equal(stat(file, &st), -1);
    char *jobs = co_xasprintf("%s/jobs", sub);
    assert_int_equal(stat(jobs, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* A root that is a file cannot be used. */
    char *plain = co_xasprintf("%s/plain", root);
    f = fopen(plain, "w");
    fclose(f);
    assert_int_equal(agent_job_root_prepare(plain, &err), -1);
    assert_non_null(strstr(err.msg, "AGENT_WORK_ROOT"));
    unlink(plain);
    rmdir(jobs);
    char *a = co_xasprintf("%s/a", root);
    rmdir(sub);
    rmdir(a);
    assert_int_equal(rmdir(root), 0);
    free(a);
    free(plain);
    free(jobs);
    free(file);
    free(left);
    free(sub);
}

static void
test_check(void **state)
{
    (void)state;
    struct proto_job_assign a = make_assign("main.py");
    char **argv = NULL;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_job_check(&a, &argv, &err), 0);
    assert_string_equal(argv[0], "python3");
    assert_string_equal(argv[3], "3");
    assert_null(argv[4]);
    proto_argv_free(argv);

    a.command = "echo \"unterminated";
    assert_int_equal(agent_job_check(&a, &argv, &err), -1);
    assert_null(argv);
    assert_non_null(strstr(err.msg, "command"));

    a = make_assign("a/../b");
    assert_int_equal(agent_job_check(&a, &argv, &err), -1);
    assert_non_null(strstr(err.msg, "code_file"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_mapping), cmocka_unit_test(test_finished_from_result),
        cmocka_unit_test(test_build_files),    cmocka_unit_test(test_root_prepare),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
