/*
 * agent_results: on-disk journal of unacknowledged job results (see agent_results.h).
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

#define RESULTS_DIR "results"
#define RESULT_FILE_MAX (PROTO_MSG_MAX + 1)

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

int
agent_results_save(const char *work_root, const struct proto_job_finished *fin, co_err *err)
{
    struct proto_msg m = {.type = PROTO_MSG_JOB_FINISHED};
    m.u.finished = *fin;
    size_t len = 0;
    co_autofree char *text = proto_msg_encode(&m, &len);
    if (!text)
        return co_err_set(err, CO_E_INVAL, "result of job '%s' cannot be encoded", fin->job.job_id);
    co_autoclose int dfd = results_dir_open(work_root, true, err);
    if (dfd < 0)
        return -1;
    char tmp[CO_ID_MAX + 48], name[CO_ID_MAX + 48];
    result_name(&fin->job, ".tmp", tmp, sizeof(tmp));
    result_name(&fin->job, "", name, sizeof(name));
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

/* Read one file (at most RESULT_FILE_MAX bytes) into @b. */
static int
read_small(int dfd, const char *name, struct co_buf *b)
{
    co_autoclose int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (b->len + (size_t)n > RESULT_FILE_MAX)
            return -1;
        co_buf_append(b, chunk, (size_t)n);
    }
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
        struct co_buf b = CO_BUF_INIT;
        struct proto_msg m;
        co_err merr = CO_ERR_INIT;
        char want[CO_ID_MAX + 48];
        if (read_small(dirfd(d), de->d_name, &b) != 0) {
            co_warn("result file unreadable, left alone file=%s", de->d_name);
        } else if (proto_msg_decode(b.data ? b.data : "", b.len, &m, &merr) != 0) {
            co_warn("result file does not decode, left alone file=%s error=\"%s\"", de->d_name,
                    merr.msg);
        } else if (m.type != PROTO_MSG_JOB_FINISHED ||
                   (result_name(&m.u.finished.job, "", want, sizeof(want)),
                    strcmp(want, de->d_name) != 0)) {
            co_warn("result file is not the job.finished it is named for, left alone file=%s",
                    de->d_name);
            proto_msg_release(&m);
        } else {
            fn(ud, &m.u.finished);
            memset(&m.u.finished, 0, sizeof(m.u.finished));
            m.type = PROTO_MSG_NONE;
        }
        co_buf_release(&b);
    }
    closedir(d);
    return 0;
}
