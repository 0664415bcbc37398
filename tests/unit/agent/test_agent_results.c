/* Unit tests for agent/agent_results.c: the results journal and the output log kept with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_job.h"
#include "agent_results.h"
#include "co_alloc.h"

#define JOB "0b5c6a1e-8a8e-4e43-9d1c-3c2f1a0e9b7d"

struct loaded {
    int n;
    struct proto_job_finished fin;
    struct agent_outlog log;
};

static void
on_result(void *ud, struct proto_job_finished *fin, struct agent_outlog *log)
{
    struct loaded *l = ud;
    l->n++;
    l->fin = *fin;
    l->log = *log;
    memset(fin, 0, sizeof(*fin));
    memset(log, 0, sizeof(*log));
}

static char *
tmp_root(void)
{
    char tmpl[] = "/tmp/test-agent-results-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return co_xstrdup(d);
}

/* Remove the journal file of JOB attempt 2 (if any), the results folder and @root. */
static void
remove_root(const char *root)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/results/" JOB ".2.json", root);
    unlink(path);
    snprintf(path, sizeof(path), "%s/results", root);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(rmdir(root), 0);
}

/* Add a chunk of @text (copied) to @l; returns whether the log kept it. */
static bool
add(struct agent_outlog *l, enum proto_stream st, int64_t seq, const char *text, bool eof)
{
    struct proto_job_output c = {.stream = st, .seq = seq, .eof = eof};
    co_strlcpy(c.job.job_id, JOB, sizeof(c.job.job_id));
    c.job.attempt = 2;
    c.data = co_xstrdup(text);
    c.data_len = strlen(text);
    bool kept = agent_outlog_add(l, &c);
    if (!kept)
        free(c.data);
    return kept;
}

static void
test_log_offsets_and_limit(void **state)
{
    (void)state;
    struct agent_outlog l;
    agent_outlog_init(&l, 8);
    assert_true(add(&l, PROTO_STREAM_STDOUT, 0, "abcde", false));
    assert_true(add(&l, PROTO_STREAM_STDERR, 1, "E", false));
    /* Starts below the limit: kept whole, although it ends past it. */
    assert_true(add(&l, PROTO_STREAM_STDOUT, 2, "fghij", false));
    /* Starts past it: not kept, but its offset still counts. */
    assert_false(add(&l, PROTO_STREAM_STDOUT, 3, "klm", false));
    assert_true(add(&l, PROTO_STREAM_STDERR, 4, "F", true));
    assert_int_equal(l.n, 4);
    assert_int_equal(l.chunks[0].offset, 0);
    assert_int_equal(l.chunks[1].offset, 0);
    assert_int_equal(l.chunks[2].offset, 5);
    assert_int_equal(l.chunks[3].offset, 1);
    assert_int_equal(l.bytes[0], 13);
    assert_int_equal(l.bytes[1], 2);
    assert_int_equal(l.dropped, 1);
    agent_outlog_release(&l);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.limit, 8);
}

static void
test_save_load_round_trip(void **state)
{
    (void)state;
    char *root = tmp_root();
    struct agent_outlog l;
    agent_outlog_init(&l, 1 << 20);
    assert_true(add(&l, PROTO_STREAM_STDOUT, 0, "first\n", false));
    assert_true(add(&l, PROTO_STREAM_STDERR, 1, "oops\n", false));
    /* Bytes that are not text travel as base64 and come back unchanged. */
    struct proto_job_output bin = {.stream = PROTO_STREAM_STDOUT, .seq = 2, .eof = true};
    bin.job = l.chunks[0].job;
    bin.data = co_xmalloc(4);
    memcpy(bin.data, "a\0\xff\n", 4);
    bin.data_len = 4;
    assert_true(agent_outlog_add(&l, &bin));

    struct proto_job_finished fin = {.status = PROTO_RUN_OK, .has_exit_code = true, .wall_ms = 7};
    fin.job = l.chunks[0].job;
    co_err err = CO_ERR_INIT;
    assert_int_equal(agent_results_save(root, &fin, &l, &err), 0);
    agent_outlog_release(&l);

    struct loaded got = {0};
    assert_int_equal(agent_results_load(root, on_result, &got, &err), 0);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.fin.job.job_id, JOB);
    assert_int_equal(got.fin.job.attempt, 2);
    assert_int_equal(got.fin.wall_ms, 7);
    assert_int_equal(got.log.n, 3);
    assert_int_equal(got.log.chunks[0].seq, 0);
    assert_int_equal(got.log.chunks[0].offset, 0);
    assert_memory_equal(got.log.chunks[0].data, "first\n", 6);
    assert_int_equal(got.log.chunks[1].stream, PROTO_STREAM_STDERR);
    assert_int_equal(got.log.chunks[1].offset, 0);
    assert_int_equal(got.log.chunks[2].offset, 6);
    assert_int_equal(got.log.chunks[2].data_len, 4);
    assert_memory_equal(got.log.chunks[2].data, "a\0\xff\n", 4);
    assert_true(got.log.chunks[2].eof);
    assert_int_equal(got.log.bytes[0], 10);
    agent_outlog_release(&got.log);
    agent_finished_release(&got.fin);

    /* Acknowledged: gone. */
    agent_results_forget(root, &fin.job);
    memset(&got, 0, sizeof(got));
    assert_int_equal(agent_results_load(root, on_result, &got, &err), 0);
    assert_int_equal(got.n, 0);
    remove_root(root);
    free(root);
}

/* Write @text as the journal file of JOB attempt 2. */
static void
write_journal(const char *root, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/results", root);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/results/" JOB ".2.json", root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define FIN_LINE                                                                                   \
    "{\"v\": 1, \"type\": \"job.finished\", \"job_id\": \"" JOB "\", \"attempt\": 2, "             \
    "\"status\": \"ok\", \"exit_code\": 0, \"signal\": null, \"wall_ms\": 1, \"cpu_ms\": 1, "      \
    "\"max_rss_kb\": 1}"
#define OUT_LINE(attempt)                                                                          \
    "{\"v\": 1, \"type\": \"job.output\", \"job_id\": \"" JOB "\", \"attempt\": " #attempt ", "    \
    "\"stream\": \"stdout\", \"seq\": 0, \"offset\": 0, \"data\": \"x\"}\n"

static void
test_load_old_and_bad_files(void **state)
{
    (void)state;
    char *root = tmp_root();
    co_err err = CO_ERR_INIT;
    struct loaded got = {0};

    /* An older agent's file: the result alone, without a newline. */
    write_journal(root, FIN_LINE);
    assert_int_equal(agent_results_load(root, on_result, &got, &err), 0);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.log.n, 0);
    agent_finished_release(&got.fin);

    /* Left alone: output of another attempt, output after the result, no result at all. */
    const char *bad[] = {OUT_LINE(3) FIN_LINE "\n", FIN_LINE "\n" OUT_LINE(2), OUT_LINE(2),
                         OUT_LINE(2) "not json\n" FIN_LINE};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_journal(root, bad[i]);
        memset(&got, 0, sizeof(got));
        assert_int_equal(agent_results_load(root, on_result, &got, &err), 0);
        assert_int_equal(got.n, 0);
    }
    remove_root(root);
    free(root);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_offsets_and_limit),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_load_old_and_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
