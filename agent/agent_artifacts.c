/* agent_artifacts: reading a finished job's /work/out without following links (see the header). */
#include "agent_artifacts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "co_alloc.h"
#include "proto_files.h"
#include "proto_utf8.h"

struct walk {
    const struct agent_art_limits *lim;
    agent_art_emit_fn emit;
    void *ud;
    struct agent_art_summary *sum;
    int64_t entries;
    char *buf; /* one chunk */
};

/* Note a skipped entry (the first ones, while the notes have room). */
static void
skip(struct walk *w, const char *path, const char *why)
{
    w->sum->skipped++;
    size_t used = strlen(w->sum->notes);
    size_t room = sizeof(w->sum->notes) - used;
    if (room < 80)
        return;
    co_autofree char *name = proto_utf8_sanitize(path, strlen(path), NULL);
    snprintf(w->sum->notes + used, room, "%s%.200s: %s", used ? "; " : "", name, why);
}

/* Send one regular file (open @fd); -1 when the walk must end (stopped or truncated). */
static int
send_file(struct walk *w, const char *path, int fd)
{
    struct agent_art_summary *s = w->sum;
    int64_t off = 0;
    for (;;) {
        int64_t room = w->lim->max_bytes - s->bytes;
        size_t want = AGENT_ARTIFACT_CHUNK;
        if (room < (int64_t)want)
            want = (size_t)(room > 0 ? room : 0);
        ssize_t n;
        if (want == 0) {
            /* At the cap: one more byte would be over it. */
            char one;
            do {
                n = read(fd, &one, 1);
            } while (n < 0 && errno == EINTR);
            if (n > 0)
                s->truncated = true;
            n = 0;
        } else {
            do {
                n = read(fd, w->buf, want);
            } while (n < 0 && errno == EINTR);
        }
        if (n < 0) {
            /* Unreadable midway: what was sent stays, the file ends here. */
            skip(w, path, "read error");
            n = 0;
        }
        if (n == 0) {
            if (w->emit(w->ud, path, off, NULL, 0, true) < 0) {
                s->stopped = true;
                return -1;
            }
            s->files++;
            return s->truncated ? -1 : 0;
        }
        if (w->emit(w->ud, path, off, w->buf, (size_t)n, false) < 0) {
            s->stopped = true;
            return -1;
        }
        off += n;
        s->bytes += n;
    }
}

/*
 * Visit the entries of the open folder @dfd (relative path @rel, "" for out/ itself) at @depth.
 * Returns -1 when the walk must end.
 */
static int
walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        skip(w, rel[0] ? rel : ".", "cannot read folder");
        return 0;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (++w->entries > AGENT_ARTIFACT_ENTRIES_MAX) {
            w->sum->truncated = true;
            rc = -1;
            break;
        }
        char path[PROTO_FILE_PATH_MAX + 64];
        int plen = snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        if (plen < 0 || (size_t)plen >= sizeof(path) ||
            proto_file_path_check(path, (size_t)plen, "path", NULL) < 0) {
            skip(w, path, "name is not a safe relative path");
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            skip(w, path, "cannot stat");
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= AGENT_ARTIFACT_DEPTH_MAX) {
                skip(w, path, "folder too deep");
                continue;
            }
            int sub = openat(dirfd(d), de->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (sub < 0) {
                skip(w, path, "cannot open folder");
                continue;
            }
            rc = walk_dir(w, sub, path, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            skip(w, path,
                 S_ISLNK(st.st_mode)    ? "symbolic link, skipped"
                 : S_ISFIFO(st.st_mode) ? "FIFO, skipped"
                 : S_ISSOCK(st.st_mode) ? "socket, skipped"
                                        : "special file, skipped");
            continue;
        }
        if (w->sum->files >= w->lim->max_files) {
            w->sum->truncated = true;
            rc = -1;
            break;
        }
        /* O_NONBLOCK: a FIFO swapped in after the fstatat cannot block the open. */
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        struct stat fst;
        if (fd < 0 || fstat(fd, &fst) < 0 || !S_ISREG(fst.st_mode)) {
            skip(w, path, fd < 0 ? "cannot open" : "not a regular file, skipped");
            if (fd >= 0)
                close(fd);
            continue;
        }
        rc = send_file(w, path, fd);
        close(fd);
    }
    closedir(d);
    return rc;
}

int
agent_artifacts_collect(int work_fd, const struct agent_art_limits *lim, agent_art_emit_fn emit,
                        void *ud, struct agent_art_summary *sum)
{
    memset(sum, 0, sizeof(*sum));
    int out = openat(work_fd, "out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (out < 0) {
        if (errno != ENOENT)
            skip(&(struct walk){.sum = sum}, "out", "not a folder, skipped");
        return 0;
    }
    struct walk w = {.lim = lim, .emit = emit, .ud = ud, .sum = sum};
    w.buf = co_xmalloc(AGENT_ARTIFACT_CHUNK);
    walk_dir(&w, out, "", 0);
    free(w.buf);
    return sum->stopped ? -1 : 0;
}
