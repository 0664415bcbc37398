/* agent_outq: bounded output queue with blocking push (see agent_outq.h). */
#include "agent_outq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "co_alloc.h"
#include "co_time.h"
#include "proto_utf8.h"

struct seg {
    struct seg *next;
    int stream;
    size_t len; /* bytes in data */
    size_t off; /* bytes already popped */
    char data[];
};

struct agent_outq {
    pthread_mutex_t mu;
    pthread_cond_t room; /* signalled when bytes leave the queue or it is aborted/closed */
    struct seg *head, *tail;
    size_t cap;
    size_t bytes;
    uint64_t dropped;
    bool closed, aborted;
    bool had_output[2]; /* the stream produced at least one chunk */
    bool eof_sent[2];
    agent_outq_notify_fn notify;
    void *ud;
};

struct agent_outq *
agent_outq_new(size_t cap, agent_outq_notify_fn notify, void *ud)
{
    struct agent_outq *q = co_xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->room, &attr);
    pthread_condattr_destroy(&attr);
    q->cap = cap > 0 ? cap : 1;
    q->notify = notify;
    q->ud = ud;
    return q;
}

void
agent_outq_free(struct agent_outq *q)
{
    if (!q)
        return;
    struct seg *s = q->head;
    while (s) {
        struct seg *next = s->next;
        free(s);
        s = next;
    }
    pthread_cond_destroy(&q->room);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Wait on q->room until @deadline_ms (0 = at most one second, then the caller loops). */
static void
wait_room(struct agent_outq *q, int64_t deadline_ms)
{
    int64_t now = co_mono_ms();
    int64_t until = now + 1000;
    if (deadline_ms > 0 && deadline_ms < until)
        until = deadline_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t wait_ms = until - now;
    if (wait_ms < 1)
        wait_ms = 1;
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&q->room, &q->mu, &ts);
}

size_t
agent_outq_push(struct agent_outq *q, int stream, const char *data, size_t len, int64_t deadline_ms)
{
    size_t done = 0;
    if (stream != AGENT_OUTQ_STDOUT && stream != AGENT_OUTQ_STDERR)
        return 0;

    pthread_mutex_lock(&q->mu);
    while (done < len) {
        if (q->aborted || q->closed)
            break;
        if (q->bytes >= q->cap) {
            if (deadline_ms > 0 && co_mono_ms() >= deadline_ms)
                break;
            wait_room(q, deadline_ms);
            continue;
        }
        size_t n = len - done;
        if (n > q->cap - q->bytes)
            n = q->cap - q->bytes;
        struct seg *s = co_xmalloc(sizeof(*s) + n);
        s->next = NULL;
        s->stream = stream;
        s->len = n;
        s->off = 0;
        memcpy(s->data, data + done, n);
        if (q->tail)
            q->tail->next = s;
        else
            q->head = s;
        q->tail = s;
        q->bytes += n;
        q->had_output[stream] = true;
        done += n;

        /* Let the consumer start on what is queued while we may wait for more room. */
        if (done < len && q->notify) {
            pthread_mutex_unlock(&q->mu);
            q->notify(q->ud);
            pthread_mutex_lock(&q->mu);
        }
    }
    q->dropped += len - done;
    pthread_mutex_unlock(&q->mu);
    if (done > 0 && q->notify)
        q->notify(q->ud);
    return done;
}

static bool
stream_pending(const struct agent_outq *q, int stream)
{
    for (const struct seg *s = q->head; s; s = s->next) {
        if (s->stream == stream)
            return true;
    }
    return false;
}

bool
agent_outq_pop(struct agent_outq *q, size_t max, int *stream, char **data, size_t *len, bool *eof)
{
    bool got = false;
    if (max == 0)
        return false;

    pthread_mutex_lock(&q->mu);
    if (q->head) {
        int st = q->head->stream;
        size_t avail = 0;
        for (struct seg *s = q->head; s && s->stream == st && avail <= max + 3; s = s->next)
            avail += s->len - s->off;
        size_t n = avail < max ? avail : max;
        /*
         * Copy first (with up to 3 bytes of look-ahead), consume after: the chunk may be
         * shortened to a character boundary.
         */
        size_t want = avail < max + 3 ? avail : max + 3;
        char *buf = co_xmalloc(want + 1);
        size_t copied = 0;
        for (struct seg *s = q->head; s && s->stream == st && copied < want; s = s->next) {
            size_t take = s->len - s->off;
            if (take > want - copied)
                take = want - copied;
            memcpy(buf + copied, s->data + s->off, take);
            copied += take;
        }
        if (avail > max) {
            /* More follows: do not split a UTF-8 character, so text chunks stay text. */
            size_t cut = proto_utf8_cut(buf, copied, n);
            if (cut > 0)
                n = cut;
        }
        size_t consumed = 0;
        while (consumed < n) {
            struct seg *s = q->head;
            size_t take = s->len - s->off;
            if (take > n - consumed)
                take = n - consumed;
            consumed += take;
            s->off += take;
            if (s->off == s->len) {
                q->head = s->next;
                if (!q->head)
                    q->tail = NULL;
                free(s);
            }
        }
        buf[n] = '\0';
        q->bytes -= n;
        *stream = st;
        *data = buf;
        *len = n;
        *eof = q->closed && !stream_pending(q, st);
        if (*eof)
            q->eof_sent[st] = true;
        got = true;
        pthread_cond_broadcast(&q->room);
    } else if (q->closed) {
        for (int st = 0; st < 2; st++) {
            if (q->had_output[st] && !q->eof_sent[st]) {
                q->eof_sent[st] = true;
                *stream = st;
                *data = co_xstrdup("");
                *len = 0;
                *eof = true;
                got = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&q->mu);
    return got;
}

void
agent_outq_close(struct agent_outq *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->room);
    pthread_mutex_unlock(&q->mu);
    if (q->notify)
        q->notify(q->ud);
}

void
agent_outq_abort(struct agent_outq *q)
{
    pthread_mutex_lock(&q->mu);
    q->aborted = true;
    pthread_cond_broadcast(&q->room);
    pthread_mutex_unlock(&q->mu);
}

size_t
agent_outq_bytes(struct agent_outq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->bytes;
    pthread_mutex_unlock(&q->mu);
    return n;
}

bool
agent_outq_drained(struct agent_outq *q)
{
    pthread_mutex_lock(&q->mu);
    bool d = q->closed && !q->head;
    for (int st = 0; st < 2 && d; st++) {
        if (q->had_output[st] && !q->eof_sent[st])
            d = false;
    }
    pthread_mutex_unlock(&q->mu);
    return d;
}

uint64_t
agent_outq_dropped(struct agent_outq *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t n = q->dropped;
    pthread_mutex_unlock(&q->mu);
    return n;
}
