/*
 * agent_results: on-disk journal of unacknowledged job results and their output (see
 * agent_results.h).
 */
#include "agent_results.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_log.h"
#include "agent_job.h"

#define RESULTS_DIR "results"

/* Open (creating) <work_root>/results as a folder descriptor. */
static int
results_dir_open(const char *work_root, bool create, co_err *err)
{
    co_autofree char *path = co_xasprintf("%s/" RESULTS_DIR, work_root);
    if (create) {
        if (mkdir(work_root, 0700) != 0 && errno != EEXIST)
            return co_err_sys(err, errno, "cannot create '%s'", work_root);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return co_err_sys(err, errno, "cannot create '%s'", path);
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot open '%s'", path);
    return fd;
}

static void
result_name(const struct proto_job_ref *ref, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%s.%" PRId64 ".json%s", ref->job_id, ref->attempt, suffix);
}

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write @len bytes of @text as the journal file of @ref: temporary name, fsync, rename, fsync. */
static int
save_file(const char *work_root, const struct proto_job_ref *ref, const char *text, size_t len,
          co_err *err)
{
    co_autoclose int dfd = results_dir_open(work_root, true, err);
    if (dfd < 0)
        return -1;
    char tmp[CO_ID_MAX + 48], name[CO_ID_MAX + 48];
    result_name(ref, ".tmp", tmp, sizeof(tmp));
    result_name(ref, "", name, sizeof(name));
    co_autoclose int fd =
        openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot create result file '%s'", tmp);
    if (write_all(fd, text, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        (void)unlinkat(dfd, tmp, 0);
        return co_err_sys(err, e, "cannot write result file '%s'", tmp);
    }
    if (renameat(dfd, tmp, dfd, name) != 0) {
        int e = errno;
        (void)unlinkat(dfd, tmp, 0);
        return co_err_sys(err, e, "cannot rename result file to '%s'", name);
    }
    if (fsync(dfd) != 0)
        return co_err_sys(err, errno, "cannot sync the results folder");
    return 0;
}

void
agent_outlog_init(struct agent_outlog *l, int64_t limit)
{
    memset(l, 0, sizeof(*l));
    l->limit = limit;
}

void
agent_outlog_release(struct agent_outlog *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->chunks[i].data);
    free(l->chunks);
    agent_outlog_init(l, l->limit);
}

/* Append @c (its data owned by the log from now on). */
static void
outlog_push(struct agent_outlog *l, const struct proto_job_output *c)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->chunks = co_xreallocarray(l->chunks, l->cap, sizeof(*l->chunks));
    }
    l->chunks[l->n++] = *c;
}

bool
agent_outlog_add(struct agent_outlog *l, struct proto_job_output *c)
{
    int st = c->stream == PROTO_STREAM_STDERR ? 1 : 0;
    c->offset = l->bytes[st];
    l->bytes[st] += (int64_t)c->data_len;
    if (c->offset >= l->limit) {
        l->dropped++;
        return false;
    }
    outlog_push(l, c);
    return true;
}

/* Append @m, encoded, and a newline to @b. */
static int
append_line(struct co_buf *b, const struct proto_msg *m)
{
    size_t len = 0;
    co_autofree char *text = proto_msg_encode(m, &len);
    if (!text)
        return -1;
    co_buf_append(b, text, len);
    co_buf_append(b, "\n", 1);
    return 0;
}

int
agent_results_save(const char *work_root, const struct proto_job_finished *fin,
                   const struct agent_outlog *log, co_err *err)
{
    struct co_buf b = CO_BUF_INIT;
    struct proto_msg m = {.type = PROTO_MSG_JOB_OUTPUT};
    for (size_t i = 0; log && i < log->n; i++) {
        m.u.output = log->chunks[i];
        if (append_line(&b, &m) != 0) {
            co_buf_release(&b);
            return co_err_set(err, CO_E_INVAL, "output of job '%s' cannot be encoded",
                              fin->job.job_id);
        }
    }
    m.type = PROTO_MSG_JOB_FINISHED;
    m.u.finished = *fin;
    if (append_line(&b, &m) != 0) {
        co_buf_release(&b);
        return co_err_set(err, CO_E_INVAL, "result of job '%s' cannot be encoded", fin->job.job_id);
    }
    int rc = save_file(work_root, &fin->job, b.data, b.len, err);
    co_buf_release(&b);
    return rc;
}

void
agent_results_forget(const char *work_root, const struct proto_job_ref *ref)
{
    co_err err = CO_ERR_INIT;
    co_autoclose int dfd = results_dir_open(work_root, false, &err);
    if (dfd < 0)
        return;
    char name[CO_ID_MAX + 48];
    result_name(ref, "", name, sizeof(name));
    if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
        co_warn("cannot delete result file '%s': %s", name, strerror(errno));
}

/*
 * Read the journal file @name: job.output lines of one attempt, then its job.finished, the last
 * line.  Returns 0 and fills *@fin and *@log, or -1 with *@why set (nothing to release).
 */
static int
read_journal(int dfd, const char *name, struct proto_job_finished *fin, struct agent_outlog *log,
             const char **why)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        *why = "unreadable";
        return -1;
    }
    agent_outlog_init(log, 0);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool have_fin = false;
    *why = NULL;
    while (!*why && (n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n == 0)
            continue;
        struct proto_msg m;
        co_err merr = CO_ERR_INIT;
        if (have_fin || (size_t)n > PROTO_MSG_MAX ||
            proto_msg_decode(line, (size_t)n, &m, &merr) != 0) {
            *why = have_fin ? "has lines after its job.finished" : "does not decode";
            break;
        }
        if (m.type == PROTO_MSG_JOB_FINISHED) {
            *fin = m.u.finished;
            have_fin = true;
        } else if (m.type == PROTO_MSG_JOB_OUTPUT) {
            struct proto_job_output *c = &m.u.output;
            int st = c->stream == PROTO_STREAM_STDERR ? 1 : 0;
            if (c->offset >= 0 && c->offset + (int64_t)c->data_len > log->bytes[st])
                log->bytes[st] = c->offset + (int64_t)c->data_len;
            outlog_push(log, c);
            continue; /* the log owns the data now */
        } else {
            *why = "holds a message that is neither job.output nor job.finished";
        }
        if (*why || m.type != PROTO_MSG_JOB_FINISHED)
            proto_msg_release(&m);
    }
    if (ferror(f) && !*why)
        *why = "unreadable";
    free(line);
    fclose(f);
    if (!*why && !have_fin)
        *why = "has no job.finished";
    for (size_t i = 0; !*why && i < log->n; i++) {
        if (strcmp(log->chunks[i].job.job_id, fin->job.job_id) != 0 ||
            log->chunks[i].job.attempt != fin->job.attempt)
            *why = "holds output of another attempt";
    }
    if (*why) {
        if (have_fin)
            agent_finished_release(fin);
        agent_outlog_release(log);
        return -1;
    }
    return 0;
}

int
agent_results_load(const char *work_root, agent_results_fn fn, void *ud, co_err *err)
{
    co_err derr = CO_ERR_INIT;
    int dfd = results_dir_open(work_root, false, &derr);
    if (dfd < 0) {
        if (derr.sys_errno == ENOENT)
            return 0;
        if (err)
            *err = derr;
        return -1;
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return co_err_sys(err, errno, "cannot read the results folder");
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        struct proto_job_finished fin;
        struct agent_outlog log;
        const char *why = NULL;
        char want[CO_ID_MAX + 48];
        if (read_journal(dirfd(d), de->d_name, &fin, &log, &why) != 0) {
            co_warn("result file %s, left alone file=%s", why, de->d_name);
        } else if (result_name(&fin.job, "", want, sizeof(want)), strcmp(want, de->d_name) != 0) {
            co_warn("result file is not the job.finished it is named for, left alone file=%s",
                    de->d_name);
            agent_finished_release(&fin);
            agent_outlog_release(&log);
        } else {
            fn(ud, &fin, &log);
        }
    }
    closedir(d);
    return 0;
}
