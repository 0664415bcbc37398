/* Unit tests for agent/agent_outq.c: the bounded, blocking output queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "agent_outq.h"
#include "co_time.h"

static atomic_int notified;

static void
count_notify(void *ud)
{
    (void)ud;
    atomic_fetch_add(&notified, 1);
}

static void
test_merge_and_split_streams(void **state)
{
    (void)state;
    struct agent_outq *q = agent_outq_new(1024, count_notify, NULL);
    atomic_store(&notified, 0);
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDOUT, "ab", 2, 0), 2);
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDOUT, "cd", 2, 0), 2);
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDERR, "EF", 2, 0), 2);
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDOUT, "g", 1, 0), 1);
    assert_true(atomic_load(&notified) >= 4);
    assert_int_equal(agent_outq_bytes(q), 7);

    int st;
    char *d;
    size_t len;
    bool eof;
    /* Consecutive chunks of one stream merge, up to max. */
    assert_true(agent_outq_pop(q, 3, &st, &d, &len, &eof));
    assert_int_equal(st, AGENT_OUTQ_STDOUT);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "abc", 3);
    assert_false(eof);
    free(d);
    assert_true(agent_outq_pop(q, 100, &st, &d, &len, &eof));
    assert_int_equal(len, 1);
    assert_string_equal(d, "d");
    free(d);
    assert_true(agent_outq_pop(q, 100, &st, &d, &len, &eof));
    assert_int_equal(st, AGENT_OUTQ_STDERR);
    assert_string_equal(d, "EF");
    free(d);
    agent_outq_close(q);
    assert_true(agent_outq_pop(q, 100, &st, &d, &len, &eof));
    assert_int_equal(st, AGENT_OUTQ_STDOUT);
    assert_string_equal(d, "g");
    assert_true(eof); /* the last stdout chunk after close */
    free(d);
    assert_false(agent_outq_drained(q));
    /* stderr's last chunk went out before the close: it gets an empty eof chunk. */
    assert_true(agent_outq_pop(q, 100, &st, &d, &len, &eof));
    assert_int_equal(st, AGENT_OUTQ_STDERR);
    assert_int_equal(len, 0);
    assert_true(eof);
    free(d);
    assert_false(agent_outq_pop(q, 100, &st, &d, &len, &eof));
    assert_true(agent_outq_drained(q));
    /* Pushing after close drops the bytes. */
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDOUT, "x", 1, 0), 0);
    assert_int_equal(agent_outq_dropped(q), 1);
    agent_outq_free(q);
}

static void
test_empty_close(void **state)
{
    (void)state;
    struct agent_outq *q = agent_outq_new(16, NULL, NULL);
    int st;
    char *d;
    size_t len;
    bool eof;
    assert_false(agent_outq_pop(q, 10, &st, &d, &len, &eof));
    assert_false(agent_outq_drained(q));
    agent_outq_close(q);
    /* No output at all: no eof chunks either. */
    assert_false(agent_outq_pop(q, 10, &st, &d, &len, &eof));
    assert_true(agent_outq_drained(q));
    agent_outq_free(q);
}

struct producer {
    struct agent_outq *q;
    const char *data;
    size_t len;
    int64_t deadline;
    size_t pushed;
    atomic_bool done;
};

static void *
produce(void *arg)
{
    struct producer *p = arg;
    p->pushed = agent_outq_push(p->q, AGENT_OUTQ_STDOUT, p->data, p->len, p->deadline);
    atomic_store(&p->done, true);
    return NULL;
}

/* A producer larger than the queue blocks at the bound and finishes only as the consumer reads. */
static void
test_bound_blocks_producer(void **state)
{
    (void)state;
    const size_t cap = 4096, total = 1 << 20;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)('a' + i % 26);
    struct agent_outq *q = agent_outq_new(cap, NULL, NULL);
    struct producer p = {.q = q, .data = data, .len = total};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    usleep(200 * 1000);
    assert_false(atomic_load(&p.done));
    assert_int_equal(agent_outq_bytes(q), cap);

    char *got = malloc(total);
    size_t n = 0;
    int64_t until = co_mono_ms() + 10000;
    while (n < total && co_mono_ms() < until) {
        int st;
        char *d;
        size_t len;
        bool eof;
        if (agent_outq_pop(q, 1000, &st, &d, &len, &eof)) {
            assert_true(len <= 1000);
            assert_true(agent_outq_bytes(q) <= cap);
            memcpy(got + n, d, len);
            n += len;
            free(d);
        } else {
            usleep(100);
        }
    }
    pthread_join(t, NULL);
    assert_int_equal(n, total);
    assert_int_equal(p.pushed, total);
    assert_memory_equal(got, data, total);
    assert_int_equal(agent_outq_dropped(q), 0);
    agent_outq_free(q);
    free(got);
    free(data);
}

static void
test_abort_unblocks(void **state)
{
    (void)state;
    char data[100];
    memset(data, 'z', sizeof(data));
    struct agent_outq *q = agent_outq_new(10, NULL, NULL);
    struct producer p = {.q = q, .data = data, .len = sizeof(data)};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    usleep(100 * 1000);
    assert_false(atomic_load(&p.done));
    agent_outq_abort(q);
    pthread_join(t, NULL);
    assert_int_equal(p.pushed, 10);
    assert_int_equal(agent_outq_dropped(q), 90);
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDERR, "x", 1, 0), 0);
    agent_outq_free(q);
}

static void
test_deadline(void **state)
{
    (void)state;
    struct agent_outq *q = agent_outq_new(4, NULL, NULL);
    int64_t t0 = co_mono_ms();
    size_t n = agent_outq_push(q, AGENT_OUTQ_STDOUT, "123456", 6, t0 + 150);
    int64_t dt = co_mono_ms() - t0;
    assert_int_equal(n, 4);
    assert_true(dt >= 140);
    assert_true(dt < 2000);
    assert_int_equal(agent_outq_dropped(q), 2);
    agent_outq_free(q);
}

static void
test_close_unblocks(void **state)
{
    (void)state;
    struct agent_outq *q = agent_outq_new(2, NULL, NULL);
    struct producer p = {.q = q, .data = "abcdef", .len = 6};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    usleep(100 * 1000);
    agent_outq_close(q);
    pthread_join(t, NULL);
    assert_int_equal(p.pushed, 2);
    agent_outq_free(q);
}

/* A chunk cut by the size limit does not end inside a UTF-8 character. */
static void
test_utf8_boundary(void **state)
{
    (void)state;
    struct agent_outq *q = agent_outq_new(1024, NULL, NULL);
    const char *text = "ab\xc3\xa9\xe2\x82\xac!"; /* "abé€!" */
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDOUT, text, strlen(text), 0), strlen(text));
    int st;
    char *d;
    size_t len;
    bool eof;
    assert_true(agent_outq_pop(q, 3, &st, &d, &len, &eof)); /* 3 would split the é */
    assert_int_equal(len, 2);
    assert_string_equal(d, "ab");
    free(d);
    assert_true(agent_outq_pop(q, 4, &st, &d, &len, &eof)); /* é (2) + 2 bytes of € -> é only */
    assert_int_equal(len, 2);
    assert_string_equal(d, "\xc3\xa9");
    free(d);
    assert_true(agent_outq_pop(q, 100, &st, &d, &len, &eof));
    assert_string_equal(d, "\xe2\x82\xac!");
    free(d);
    /* Binary data with no boundary in reach is still cut at the limit. */
    const char bin[] = {(char)0xff, (char)0xfe, (char)0xfd, (char)0xfc, (char)0xfb};
    assert_int_equal(agent_outq_push(q, AGENT_OUTQ_STDERR, bin, 5, 0), 5);
    assert_true(agent_outq_pop(q, 2, &st, &d, &len, &eof));
    assert_true(len >= 1 && len <= 2);
    free(d);
    agent_outq_free(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_and_split_streams),
        cmocka_unit_test(test_empty_close),
        cmocka_unit_test(test_bound_blocks_producer),
        cmocka_unit_test(test_abort_unblocks),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_close_unblocks),
        cmocka_unit_test(test_utf8_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
