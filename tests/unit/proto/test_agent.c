/* Tests for the "cacheout.agent.v1" messages: round trips of every type and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_alloc.h"
#include "proto_agent.h"

/* Encode @m, decode the text into @out, and check that re-encoding gives the same text. */
static void
round_trip(const struct proto_msg *m, struct proto_msg *out)
{
    co_err err = CO_ERR_INIT;
    size_t len = 0, len2 = 0;
    char *text = proto_msg_encode(m, &len);
    char *again;

    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    if (proto_msg_decode(text, len, out, &err) != 0)
        fail_msg("decode of own encoding failed: field '%s': %s\n%s", err.field, err.msg, text);
    assert_int_equal(out->type, m->type);
    again = proto_msg_encode(out, &len2);
    assert_non_null(again);
    assert_string_equal(again, text);
    free(again);
    free(text);
}

static void
set_ref(struct proto_job_ref *r, const char *id, int64_t attempt)
{
    co_strlcpy(r->job_id, id, sizeof(r->job_id));
    r->attempt = attempt;
}

static void
test_hello(void **state)
{
    (void)state;
    char *images[] = {"default", "python-3.11"};
    struct proto_job_ref running[2];
    struct proto_msg m = {.type = PROTO_MSG_HELLO}, out;

    set_ref(&running[0], "job-1", 1);
    set_ref(&running[1], "job-2", 3);
    m.u.hello.token = "s3cret";
    co_strlcpy(m.u.hello.worker_id, "worker-001", sizeof(m.u.hello.worker_id));
    co_strlcpy(m.u.hello.owner_id, "seller-7", sizeof(m.u.hello.owner_id));
    m.u.hello.cores = 8;
    m.u.hello.ram_mb = 16384;
    m.u.hello.images = images;
    m.u.hello.n_images = 2;
    m.u.hello.running = running;
    m.u.hello.n_running = 2;
    m.u.hello.agent_version = "cacheout-agent 1.0";
    m.u.hello.has_price = true;
    m.u.hello.price_per_core_second = 100; /* 0.0001 credits */
    m.u.hello.price_per_gb_second = 0;
    round_trip(&m, &out);
    assert_true(out.u.hello.has_price);
    assert_int_equal(out.u.hello.price_per_core_second, 100);
    assert_int_equal(out.u.hello.price_per_gb_second, 0);
    assert_string_equal(out.u.hello.token, "s3cret");
    assert_string_equal(out.u.hello.worker_id, "worker-001");
    assert_string_equal(out.u.hello.owner_id, "seller-7");
    assert_int_equal(out.u.hello.cores, 8);
    assert_int_equal(out.u.hello.ram_mb, 16384);
    assert_int_equal(out.u.hello.n_images, 2);
    assert_string_equal(out.u.hello.images[1], "python-3.11");
    assert_int_equal(out.u.hello.n_running, 2);
    assert_string_equal(out.u.hello.running[1].job_id, "job-2");
    assert_int_equal(out.u.hello.running[1].attempt, 3);
    assert_string_equal(out.u.hello.agent_version, "cacheout-agent 1.0");
    proto_msg_release(&out);
    assert_int_equal(out.type, PROTO_MSG_NONE);

    /* Empty token and arrays, owner defaulting to the worker. */
    struct proto_msg m2 = {.type = PROTO_MSG_HELLO};
    co_strlcpy(m2.u.hello.worker_id, "w", sizeof(m2.u.hello.worker_id));
    m2.u.hello.cores = 1;
    m2.u.hello.ram_mb = 1;
    round_trip(&m2, &out);
    assert_string_equal(out.u.hello.token, "");
    assert_string_equal(out.u.hello.owner_id, "w");
    assert_int_equal(out.u.hello.n_images, 0);
    assert_int_equal(out.u.hello.n_running, 0);
    assert_false(out.u.hello.has_price); /* none sent: the stored prices stay */
    proto_msg_release(&out);
}

static void
test_welcome_heartbeat(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_WELCOME}, out;

    co_strlcpy(m.u.welcome.worker_id, "worker-001", sizeof(m.u.welcome.worker_id));
    m.u.welcome.heartbeat_interval_ms = 5000;
    m.u.welcome.lease_timeout_ms = 60000;
    m.u.welcome.server_time = "2026-11-29T13:51:14.123Z";
    round_trip(&m, &out);
    assert_string_equal(out.u.welcome.worker_id, "worker-001");
    assert_int_equal(out.u.welcome.heartbeat_interval_ms, 5000);
    assert_int_equal(out.u.welcome.lease_timeout_ms, 60000);
    assert_string_equal(out.u.welcome.server_time, "2026-11-29T13:51:14.123Z");
    proto_msg_release(&out);

    struct proto_msg hb = {.type = PROTO_MSG_HEARTBEAT};
    hb.u.heartbeat.seq = 42;
    hb.u.heartbeat.running = 2;
    hb.u.heartbeat.free_cores = 6;
    hb.u.heartbeat.free_ram_mb = 8192;
    round_trip(&hb, &out);
    assert_int_equal(out.u.heartbeat.seq, 42);
    assert_int_equal(out.u.heartbeat.running, 2);
    assert_int_equal(out.u.heartbeat.free_cores, 6);
    assert_int_equal(out.u.heartbeat.free_ram_mb, 8192);
    proto_msg_release(&out);

    /* Optional numbers absent: -1 after decode, and not sent. */
    hb.u.heartbeat.running = hb.u.heartbeat.free_cores = hb.u.heartbeat.free_ram_mb = -1;
    char *text = proto_msg_encode(&hb, NULL);
    assert_string_equal(text, "{\"v\":1,\"type\":\"heartbeat\",\"seq\":42}");
    free(text);
    round_trip(&hb, &out);
    assert_int_equal(out.u.heartbeat.running, -1);
    assert_int_equal(out.u.heartbeat.free_cores, -1);
    assert_int_equal(out.u.heartbeat.free_ram_mb, -1);
    proto_msg_release(&out);
}

static void
test_assign(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_JOB_ASSIGN}, out;
    struct proto_job_assign *a = &m.u.assign;

    set_ref(&a->job, "0b5c6a1e-8a8e-4e43-9d1c-3c2f1a0e9b7d", 2);
    a->title = "Data Processing Job";
    a->command = "python script.py";
    a->code = "print(\"Hello World\")\n\t\x01 caf\xc3\xa9";
    a->code_file = "script.py";
    a->parameters = "{\"input\":\"data.csv\",\"n\":[1,2.5,null]}";
    co_strlcpy(a->image, "default", sizeof(a->image));
    a->required_cores = 2;
    a->required_ram_mb = 4096;
    a->timeout_seconds = 3600;
    round_trip(&m, &out);
    assert_string_equal(out.u.assign.job.job_id, "0b5c6a1e-8a8e-4e43-9d1c-3c2f1a0e9b7d");
    assert_int_equal(out.u.assign.job.attempt, 2);
    assert_string_equal(out.u.assign.title, a->title);
    assert_string_equal(out.u.assign.command, a->command);
    assert_string_equal(out.u.assign.code, a->code);
    assert_string_equal(out.u.assign.code_file, "script.py");
    assert_string_equal(out.u.assign.parameters, a->parameters);
    assert_string_equal(out.u.assign.image, "default");
    assert_int_equal(out.u.assign.required_cores, 2);
    assert_int_equal(out.u.assign.required_ram_mb, 4096);
    assert_int_equal(out.u.assign.timeout_seconds, 3600);
    proto_msg_release(&out);

    /* A parameters text that is not an object cannot be encoded. */
    a->parameters = "[1]";
    assert_null(proto_msg_encode(&m, NULL));
    a->parameters = "{\"a\":1,\"a\":2}";
    assert_null(proto_msg_encode(&m, NULL));
    a->parameters = NULL;
    round_trip(&m, &out);
    assert_string_equal(out.u.assign.parameters, "{}");
    proto_msg_release(&out);
    /* Invalid UTF-8 in a text field cannot be encoded. */
    a->title = "bad \xff";
    assert_null(proto_msg_encode(&m, NULL));
    a->title = NULL;
    assert_null(proto_msg_encode(&m, NULL));
}

static void
test_acks_started_cancel(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_JOB_ACCEPTED}, out;

    set_ref(&m.u.ack.job, "job-9", 1);
    round_trip(&m, &out);
    assert_string_equal(out.u.ack.job.job_id, "job-9");
    assert_int_equal(out.u.ack.job.attempt, 1);
    assert_null(out.u.ack.reason);
    proto_msg_release(&out);

    m.type = PROTO_MSG_JOB_REJECTED;
    m.u.ack.reason = "no image 'gpu'";
    round_trip(&m, &out);
    assert_string_equal(out.u.ack.reason, "no image 'gpu'");
    proto_msg_release(&out);

    struct proto_msg s = {.type = PROTO_MSG_JOB_STARTED};
    set_ref(&s.u.started.job, "job-9", 4);
    s.u.started.started_at = "2026-11-29T13:51:15.000Z";
    round_trip(&s, &out);
    assert_int_equal(out.u.started.job.attempt, 4);
    assert_string_equal(out.u.started.started_at, "2026-11-29T13:51:15.000Z");
    proto_msg_release(&out);

    struct proto_msg c = {.type = PROTO_MSG_JOB_CANCEL};
    set_ref(&c.u.cancel.job, "job-9", 4);
    c.u.cancel.reason = "cancelled by admin";
    round_trip(&c, &out);
    assert_string_equal(out.u.cancel.job.job_id, "job-9");
    assert_string_equal(out.u.cancel.reason, "cancelled by admin");
    proto_msg_release(&out);
    c.u.cancel.reason = NULL;
    round_trip(&c, &out);
    assert_string_equal(out.u.cancel.reason, "");
    proto_msg_release(&out);
}

static void
test_output(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_JOB_OUTPUT}, out;
    struct proto_job_output *o = &m.u.output;
    char *text;

    set_ref(&o->job, "job-1", 1);
    o->stream = PROTO_STREAM_STDOUT;
    o->seq = 0;
    o->offset = -1; /* absent on the wire */
    o->data = "Hello World\n";
    o->data_len = 12;
    text = proto_msg_encode(&m, NULL);
    assert_non_null(strstr(text, "\"data\":\"Hello World\\n\""));
    assert_null(strstr(text, "data_b64"));
    assert_null(strstr(text, "eof"));
    assert_null(strstr(text, "offset"));
    free(text);
    round_trip(&m, &out);
    assert_int_equal(out.u.output.stream, PROTO_STREAM_STDOUT);
    assert_int_equal(out.u.output.offset, -1);
    assert_int_equal(out.u.output.data_len, 12);
    assert_memory_equal(out.u.output.data, "Hello World\n", 12);
    assert_false(out.u.output.eof);
    proto_msg_release(&out);

    /* Bytes that are not UTF-8 (and NUL) travel as base64, unchanged. */
    static const char raw[] = {'a', '\0', (char)0xff, (char)0xc3, 'z', (char)0x80};
    o->stream = PROTO_STREAM_STDERR;
    o->seq = 17;
    o->offset = 4096; /* bytes of this stream sent before the chunk */
    o->data = (char *)raw;
    o->data_len = sizeof(raw);
    o->eof = true;
    text = proto_msg_encode(&m, NULL);
    assert_non_null(strstr(text, "\"data_b64\":\"YQD/w3qA\""));
    free(text);
    round_trip(&m, &out);
    assert_int_equal(out.u.output.stream, PROTO_STREAM_STDERR);
    assert_int_equal(out.u.output.seq, 17);
    assert_int_equal(out.u.output.offset, 4096);
    assert_int_equal(out.u.output.data_len, sizeof(raw));
    assert_memory_equal(out.u.output.data, raw, sizeof(raw));
    assert_int_equal(out.u.output.data[sizeof(raw)], '\0');
    assert_true(out.u.output.eof);
    proto_msg_release(&out);

    /* An empty chunk (e.g. only eof). */
    o->data = NULL;
    o->data_len = 0;
    round_trip(&m, &out);
    assert_int_equal(out.u.output.data_len, 0);
    assert_non_null(out.u.output.data);
    proto_msg_release(&out);
}

static void
test_finished(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_JOB_FINISHED}, out;
    struct proto_job_finished *f = &m.u.finished;

    set_ref(&f->job, "job-1", 2);
    for (int st = PROTO_RUN_OK; st <= PROTO_RUN_CANCELLED; st++) {
        f->status = (enum proto_run_status)st;
        f->has_exit_code = st == PROTO_RUN_OK || st == PROTO_RUN_RUNTIME_ERROR;
        f->exit_code = st == PROTO_RUN_OK ? 0 : 3;
        f->has_signal = st == PROTO_RUN_SIGNALED || st == PROTO_RUN_OOM;
        f->signal = 9;
        f->wall_ms = 1234;
        f->cpu_ms = 1000 + st;
        f->max_rss_kb = 20480;
        f->memory_peak_kb = 30000;
        f->stdout_truncated = st % 2 == 0;
        f->stderr_truncated = st % 3 == 0;
        f->error = st == PROTO_RUN_INTERNAL_ERROR ? "cgroup: cannot set memory.max" : NULL;
        round_trip(&m, &out);
        assert_int_equal(out.u.finished.status, st);
        assert_string_equal(proto_run_status_name(out.u.finished.status),
                            proto_run_status_name(f->status));
        assert_int_equal(out.u.finished.has_exit_code, f->has_exit_code);
        if (f->has_exit_code)
            assert_int_equal(out.u.finished.exit_code, f->exit_code);
        assert_int_equal(out.u.finished.has_signal, f->has_signal);
        if (f->has_signal)
            assert_int_equal(out.u.finished.signal, 9);
        assert_int_equal(out.u.finished.cpu_ms, 1000 + st);
        assert_int_equal(out.u.finished.memory_peak_kb, 30000);
        assert_int_equal(out.u.finished.stdout_truncated, f->stdout_truncated);
        assert_int_equal(out.u.finished.stderr_truncated, f->stderr_truncated);
        if (f->error != NULL)
            assert_string_equal(out.u.finished.error, f->error);
        else
            assert_null(out.u.finished.error);
        proto_msg_release(&out);
    }
    /* Every status has a name that parses back. */
    enum proto_run_status st;
    assert_int_equal(proto_run_status_parse("cpu_timeout", &st), 0);
    assert_int_equal(st, PROTO_RUN_CPU_TIMEOUT);
    assert_int_equal(proto_run_status_parse("exploded", &st), -1);
    assert_null(proto_run_status_name((enum proto_run_status)99));
}

static void
test_error_msg(void **state)
{
    (void)state;
    struct proto_msg m = {.type = PROTO_MSG_ERROR}, out;

    co_strlcpy(m.u.error.code, "bad_message", sizeof(m.u.error.code));
    m.u.error.message = "job.output: invalid 'seq'";
    round_trip(&m, &out);
    assert_string_equal(out.u.error.code, "bad_message");
    assert_string_equal(out.u.error.message, "job.output: invalid 'seq'");
    assert_false(out.u.error.has_job);
    proto_msg_release(&out);
    m.u.error.has_job = true;
    set_ref(&m.u.error.job, "job-3", 5);
    round_trip(&m, &out);
    assert_true(out.u.error.has_job);
    assert_string_equal(out.u.error.job.job_id, "job-3");
    assert_int_equal(out.u.error.job.attempt, 5);
    proto_msg_release(&out);
}

static void
test_type_names(void **state)
{
    (void)state;
    assert_string_equal(proto_msg_type_name(PROTO_MSG_JOB_ASSIGN), "job.assign");
    assert_string_equal(proto_msg_type_name(PROTO_MSG_ERROR), "error");
    assert_null(proto_msg_type_name(PROTO_MSG_NONE));
    assert_null(proto_msg_type_name((enum proto_msg_type)1000));
    struct proto_msg m = {.type = PROTO_MSG_NONE};
    assert_null(proto_msg_encode(&m, NULL));
}

/* Hostile and malformed input ------------------------------------------------------------- */

static void
expect_fail(const char *text, const char *field)
{
    struct proto_msg out;
    co_err err = CO_ERR_INIT;

    if (proto_msg_decode(text, strlen(text), &out, &err) == 0)
        fail_msg("accepted: %s", text);
    assert_int_equal(out.type, PROTO_MSG_NONE); /* zeroed */
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: error on field '%s' (%s), want '%s'", text, err.field, err.msg, field);
}

static void
expect_pass(const char *text, enum proto_msg_type type)
{
    struct proto_msg out;
    co_err err = CO_ERR_INIT;

    if (proto_msg_decode(text, strlen(text), &out, &err) != 0)
        fail_msg("rejected: %s: field '%s': %s", text, err.field, err.msg);
    assert_int_equal(out.type, type);
    proto_msg_release(&out);
}

#define REF "\"job_id\":\"j1\",\"attempt\":1"

static void
test_envelope(void **state)
{
    (void)state;
    expect_fail("", "");
    expect_fail("[]", "");
    expect_fail("\"hello\"", "");
    expect_fail("{\"v\":1,\"v\":1,\"type\":\"heartbeat\",\"seq\":0}", "");
    expect_fail("{\"v\":1,\"type\":\"heartbeat\",\"seq\":0", "");
    expect_fail("{\"type\":\"heartbeat\",\"seq\":0}", "v");
    expect_fail("{\"v\":2,\"type\":\"heartbeat\",\"seq\":0}", "v");
    expect_fail("{\"v\":\"1\",\"type\":\"heartbeat\",\"seq\":0}", "v");
    expect_fail("{\"v\":1.0,\"type\":\"heartbeat\",\"seq\":0}", "v");
    expect_fail("{\"v\":4294967297,\"type\":\"heartbeat\",\"seq\":0}", "v");
    expect_fail("{\"v\":1,\"seq\":0}", "type");
    expect_fail("{\"v\":1,\"type\":7,\"seq\":0}", "type");
    expect_fail("{\"v\":1,\"type\":\"job.explode\"}", "type");
    expect_fail("{\"v\":1,\"type\":\"Heartbeat\",\"seq\":0}", "type");
    expect_pass("{\"v\":1,\"type\":\"heartbeat\",\"seq\":0}", PROTO_MSG_HEARTBEAT);
    /* Unknown extra fields are ignored (forward compatibility). */
    expect_pass("{\"v\":1,\"type\":\"heartbeat\",\"seq\":0,\"load\":[0.5,{\"x\":1}],\"z\":null}",
                PROTO_MSG_HEARTBEAT);
    /* ...but duplicate keys inside them are still rejected. */
    expect_fail("{\"v\":1,\"type\":\"heartbeat\",\"seq\":0,\"x\":{\"a\":1,\"a\":2}}", "");
}

static void
test_fields(void **state)
{
    (void)state;
    /* Fencing pair. */
    expect_pass("{\"v\":1,\"type\":\"job.accepted\"," REF "}", PROTO_MSG_JOB_ACCEPTED);
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"attempt\":1}", "job_id");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"j1\"}", "attempt");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"j 1\",\"attempt\":1}", "job_id");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"\",\"attempt\":1}", "job_id");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"j1\",\"attempt\":0}", "attempt");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"j1\",\"attempt\":1.0}", "attempt");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"j1\",\"attempt\":4294967297}",
                "attempt");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":\"j1\",\"attempt\":true}",
                "attempt");
    expect_fail("{\"v\":1,\"type\":\"job.accepted\",\"job_id\":null,\"attempt\":1}", "job_id");
    expect_fail("{\"v\":1,\"type\":\"job.rejected\"," REF "}", "reason");
    expect_pass("{\"v\":1,\"type\":\"job.rejected\"," REF ",\"reason\":\"\"}",
                PROTO_MSG_JOB_REJECTED);

    /* hello. */
    expect_pass("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1}",
                PROTO_MSG_HELLO);
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":0,\"ram_mb\":1}",
                "cores");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1}", "ram_mb");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w/x\",\"cores\":1,\"ram_mb\":1}",
                "worker_id");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"token\":5}",
                "token");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"images\":[\"ok\",\"not ok\"]}",
                "images");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"images\":\"default\"}",
                "images");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"running\":[{" REF "},{\"job_id\":\"j2\",\"attempt\":0}]}",
                "running");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"running\":[5]}",
                "running");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"agent_version\":\"a\\u001bb\"}",
                "agent_version");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"price_per_core_second\":-0.1}",
                "price_per_core_second");
    expect_fail("{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,\"ram_mb\":1,"
                "\"price_per_gb_second\":0.0000001}",
                "price_per_gb_second");

    /* job.output. */
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdin\",\"seq\":0,"
                "\"data\":\"x\"}",
                "stream");
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":-1,"
                "\"data\":\"x\"}",
                "seq");
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":0}",
                "data");
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":0,"
                "\"data\":\"x\",\"data_b64\":\"eA==\"}",
                "data_b64");
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":0,"
                "\"data_b64\":\"eA=\"}",
                "data_b64");
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":0,"
                "\"data_b64\":\"eB==\"}",
                "data_b64");
    expect_fail("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":0,"
                "\"data\":\"x\",\"eof\":1}",
                "eof");
    expect_pass("{\"v\":1,\"type\":\"job.output\"," REF ",\"stream\":\"stdout\",\"seq\":0,"
                "\"data_b64\":\"eA==\",\"eof\":true}",
                PROTO_MSG_JOB_OUTPUT);

    /* job.finished. */
    const char *fin = "{\"v\":1,\"type\":\"job.finished\"," REF ",\"status\":\"ok\","
                      "\"exit_code\":0,\"signal\":null,\"wall_ms\":1,\"cpu_ms\":1,"
                      "\"max_rss_kb\":1";
    char buf[512];
    snprintf(buf, sizeof(buf), "%s}", fin);
    expect_pass(buf, PROTO_MSG_JOB_FINISHED);
    snprintf(buf, sizeof(buf), "%s,\"status\":\"fine\"}", fin);
    expect_fail(buf, ""); /* duplicate key */
    expect_fail("{\"v\":1,\"type\":\"job.finished\"," REF ",\"status\":\"fine\",\"wall_ms\":1,"
                "\"cpu_ms\":1,\"max_rss_kb\":1}",
                "status");
    expect_fail("{\"v\":1,\"type\":\"job.finished\"," REF ",\"status\":\"ok\",\"exit_code\":256,"
                "\"wall_ms\":1,\"cpu_ms\":1,\"max_rss_kb\":1}",
                "exit_code");
    expect_fail("{\"v\":1,\"type\":\"job.finished\"," REF ",\"status\":\"signaled\",\"signal\":0,"
                "\"wall_ms\":1,\"cpu_ms\":1,\"max_rss_kb\":1}",
                "signal");
    expect_fail("{\"v\":1,\"type\":\"job.finished\"," REF ",\"status\":\"ok\",\"wall_ms\":-1,"
                "\"cpu_ms\":1,\"max_rss_kb\":1}",
                "wall_ms");
    expect_fail("{\"v\":1,\"type\":\"job.finished\"," REF ",\"status\":\"ok\",\"wall_ms\":1,"
                "\"cpu_ms\":1,\"max_rss_kb\":1,\"stdout_truncated\":\"yes\"}",
                "stdout_truncated");

    /* job.assign. */
    const char *asg = "{\"v\":1,\"type\":\"job.assign\"," REF ",\"title\":\"t\","
                      "\"required_cores\":1,\"required_ram_mb\":1,\"timeout_seconds\":10";
    snprintf(buf, sizeof(buf), "%s,\"command\":\"python x.py\",\"code_file\":\"x.py\"}", asg);
    expect_pass(buf, PROTO_MSG_JOB_ASSIGN);
    snprintf(buf, sizeof(buf), "%s,\"command\":\"python 'x.py\",\"code_file\":\"x.py\"}", asg);
    expect_fail(buf, "command");
    snprintf(buf, sizeof(buf), "%s,\"command\":\"python x.py\",\"code_file\":\"../x.py\"}", asg);
    expect_fail(buf, "code_file");
    snprintf(buf, sizeof(buf), "%s,\"command\":\"python x.py\"}", asg);
    expect_fail(buf, "code_file");
    snprintf(buf, sizeof(buf),
             "%s,\"command\":\"python x.py\",\"code_file\":\"x.py\",\"parameters\":[]}", asg);
    expect_fail(buf, "parameters");
    snprintf(buf, sizeof(buf),
             "%s,\"command\":\"python x.py\",\"code_file\":\"x.py\",\"image\":\"a b\"}", asg);
    expect_fail(buf, "image");

    /* welcome and error. */
    expect_fail("{\"v\":1,\"type\":\"welcome\",\"worker_id\":\"w\",\"heartbeat_interval_ms\":0,"
                "\"lease_timeout_ms\":1,\"server_time\":\"t\"}",
                "heartbeat_interval_ms");
    expect_fail("{\"v\":1,\"type\":\"error\",\"code\":\"x\",\"message\":\"m\",\"job_id\":\"j\"}",
                "attempt");
    expect_fail("{\"v\":1,\"type\":\"error\",\"code\":\"bad code\",\"message\":\"m\"}", "code");
}

static void
test_hostile(void **state)
{
    (void)state;
    struct proto_msg out;
    co_err err = CO_ERR_INIT;

    /* Over the size cap: refused before parsing. */
    size_t n = PROTO_MSG_MAX + 1;
    char *big = co_xmalloc(n);
    memset(big, ' ', n);
    assert_int_equal(proto_msg_decode(big, n, &out, &err), -1);
    assert_int_equal(err.code, CO_E_TOOLARGE);
    free(big);

    /* Deep nesting in an ignored field. */
    size_t depth = 10000;
    char *deep = co_xmalloc(2 * depth + 128);
    size_t len = (size_t)snprintf(deep, 128, "{\"v\":1,\"type\":\"heartbeat\",\"seq\":0,\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[len++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[len++] = ']';
    deep[len++] = '}';
    assert_int_equal(proto_msg_decode(deep, len, &out, &err), -1);
    assert_int_equal(err.code, CO_E_INVAL);
    free(deep);

    /* Too many images. */
    char buf[4096];
    len = (size_t)snprintf(buf, sizeof(buf),
                           "{\"v\":1,\"type\":\"hello\",\"worker_id\":\"w\",\"cores\":1,"
                           "\"ram_mb\":1,\"images\":[");
    for (int i = 0; i <= PROTO_HELLO_IMAGES_MAX; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\"i%d\"", i ? "," : "", i);
    snprintf(buf + len, sizeof(buf) - len, "]}");
    expect_fail(buf, "images");

    /* Huge numbers, NaN-like words, invalid UTF-8, embedded NUL. */
    expect_fail("{\"v\":1,\"type\":\"heartbeat\",\"seq\":1e999}", "");
    expect_fail("{\"v\":1,\"type\":\"heartbeat\",\"seq\":NaN}", "");
    expect_fail("{\"v\":1,\"type\":\"heartbeat\",\"seq\":184467440737095516160}", "");
    expect_fail("{\"v\":1,\"type\":\"heartbeat\",\"seq\":1.5}", "seq");
    expect_fail("{\"v\":1,\"type\":\"error\",\"code\":\"x\",\"message\":\"\xed\xa0\x80\"}", "");
    expect_fail("{\"v\":1,\"type\":\"error\",\"code\":\"x\",\"message\":\"a\\u0000b\"}", "");

    /* A message that is not NUL-terminated: only len bytes are read. */
    const char *hb = "{\"v\":1,\"type\":\"heartbeat\",\"seq\":3}";
    memcpy(buf, hb, strlen(hb));
    buf[strlen(hb)] = '}';
    assert_int_equal(proto_msg_decode(buf, strlen(hb), &out, &err), 0);
    assert_int_equal(out.u.heartbeat.seq, 3);
    proto_msg_release(&out);

    /* Unknown type names are quoted cut and valid UTF-8 in the message. */
    memset(buf, 0, sizeof(buf));
    len = (size_t)snprintf(buf, sizeof(buf), "{\"v\":1,\"type\":\"");
    for (int i = 0; i < 200; i++) {
        memcpy(buf + len, "\xe2\x82\xac", 3);
        len += 3;
    }
    memcpy(buf + len, "\"}", 3);
    assert_int_equal(proto_msg_decode(buf, strlen(buf), &out, &err), -1);
    assert_string_equal(err.field, "type");
    assert_true(proto_utf8_valid(err.msg, strlen(err.msg)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),     cmocka_unit_test(test_welcome_heartbeat),
        cmocka_unit_test(test_assign),    cmocka_unit_test(test_acks_started_cancel),
        cmocka_unit_test(test_output),    cmocka_unit_test(test_finished),
        cmocka_unit_test(test_error_msg), cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_envelope),  cmocka_unit_test(test_fields),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
