/* Job images: the default skeleton and rootfs folders (see sbx_image.h). */
#include "sbx_image.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_id.h"
#include "sbx.h"
#include "sbx_cgroup.h"

/* Bump when the skeleton's contents change, so that a new layout gets a new folder. */
#define SKELETON_NAME "default-root-v4"
/* Root's skeleton in the host's run folder is a tmpfs of its own (see build_skeleton_tmpfs). */
#define SKELETON_TMPFS_OPTS "size=8m,nr_inodes=4096,mode=755"

static const char *const host_dirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};
static const char *const mount_points[] = {"proc", "dev", "tmp", "work"};

/*
 * pathf() for paths: a path that does not fit becomes "" so that the system call using it
 * fails (ENOENT) instead of acting on a truncated path.
 */
static void __attribute__((format(printf, 3, 4)))
pathf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
}

static pthread_once_t user_run_once = PTHREAD_ONCE_INIT;
static char user_run_dir[PATH_MAX];

/*
 * A rootless caller's own run folder: /run/user/<uid>/cacheout when the user has that runtime
 * folder, else /tmp/cacheout-<uid>.  Not taken from $XDG_RUNTIME_DIR: every process of the user
 * must find the same slot locks, or two sandboxes could get the same slot (and host uid).
 */
static void
user_run_dir_once(void)
{
    unsigned uid = (unsigned)geteuid();
    char runtime[64];
    struct stat st;
    pathf(runtime, sizeof(runtime), "/run/user/%u", uid);
    if (stat(runtime, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid)
        pathf(user_run_dir, sizeof(user_run_dir), "%s/cacheout", runtime);
    else
        pathf(user_run_dir, sizeof(user_run_dir), "/tmp/cacheout-%u", uid);
}

const char *
sbx_run_dir(void)
{
    const char *d = getenv("CACHEOUT_RUN_DIR");
    if (d && *d)
        return d;
    if (geteuid() == 0)
        return SBX_RUN_DIR;
    pthread_once(&user_run_once, user_run_dir_once);
    return user_run_dir;
}

int
sbx_mkdir_p(const char *path, mode_t mode, co_err *err)
{
    char buf[PATH_MAX];
    if (co_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
        return co_err_set(err, CO_E_RANGE, "path too long: '%s'", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return co_err_sys(err, errno, "cannot create folder '%s'", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return co_err_sys(err, errno, "cannot create folder '%s'", buf);
    return 0;
}

static int
write_whole(const char *dir, const char *name, const void *data, size_t len, co_err *err)
{
    char path[PATH_MAX];
    pathf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot create '%s'", path);
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            return co_err_sys(err, saved, "cannot write '%s'", path);
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0)
        return co_err_sys(err, errno, "cannot write '%s'", path);
    return 0;
}

static int
copy_host_file(const char *src, const char *dir, const char *name, co_err *err)
{
    struct co_buf b = CO_BUF_INIT;
    if (sbx_slurp(src, &b) < 0) {
        int saved = errno;
        co_buf_release(&b);
        return saved == ENOENT ? 0 : co_err_sys(err, saved, "cannot read '%s'", src);
    }
    int rc = write_whole(dir, name, b.data, b.len - 1, err); /* without slurp's NUL */
    co_buf_release(&b);
    return rc;
}

static void
remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX];
            pathf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

/*
 * Copy the host's /etc/alternatives links into @etc/alternatives: Debian's alternatives-managed
 * commands (/usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk) would dangle in the
 * generated /etc otherwise.  Their targets are host paths below the folders the image binds.
 */
static int
copy_alternatives(const char *etc, co_err *err)
{
    char dir[PATH_MAX];
    pathf(dir, sizeof(dir), "%s/alternatives", etc);
    if (mkdir(dir, 0755) < 0)
        return co_err_sys(err, errno, "cannot create '%s'", dir);
    DIR *d = opendir("/etc/alternatives");
    if (!d)
        return errno == ENOENT ? 0 : co_err_sys(err, errno, "cannot open '/etc/alternatives'");
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char host[PATH_MAX], target[PATH_MAX], link[PATH_MAX];
        pathf(host, sizeof(host), "/etc/alternatives/%s", e->d_name);
        ssize_t n = readlink(host, target, sizeof(target) - 1);
        if (n < 0)
            continue; /* ".", "..", the README: not links */
        target[n] = '\0';
        pathf(link, sizeof(link), "%s/%s", dir, e->d_name);
        if (symlink(target, link) < 0)
            rc = co_err_sys(err, errno, "cannot create '%s'", link);
    }
    closedir(d);
    return rc;
}

/* Write the generated /etc of the default image into @etc. */
static int
write_etc(const char *etc, co_err *err)
{
    struct co_buf pw = CO_BUF_INIT, gr = CO_BUF_INIT;
    co_buf_puts(&pw, "root:x:0:0:root:/root:/usr/sbin/nologin\n");
    co_buf_puts(&gr, "root:x:0:\n");
    for (unsigned i = 0; i < SBX_MAX_SLOTS; i++) {
        co_buf_printf(&pw, "job%u:x:%u:%u:cacheout job:/work:/bin/sh\n", i, SBX_UID_BASE + i,
                      SBX_UID_BASE + i);
        co_buf_printf(&gr, "job%u:x:%u:\n", i, SBX_UID_BASE + i);
    }
    co_buf_puts(&pw, "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    co_buf_puts(&gr, "nogroup:x:65534:\n");
    static const char hosts[] = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n";
    static const char nss[] = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";
    int rc = -1;
    if (write_whole(etc, "passwd", pw.data, pw.len, err) < 0 ||
        write_whole(etc, "group", gr.data, gr.len, err) < 0 ||
        write_whole(etc, "hosts", hosts, sizeof(hosts) - 1, err) < 0 ||
        write_whole(etc, "hostname", "cacheout\n", 9, err) < 0 ||
        write_whole(etc, "nsswitch.conf", nss, sizeof(nss) - 1, err) < 0 ||
        copy_host_file("/etc/ld.so.cache", etc, "ld.so.cache", err) < 0 ||
        copy_alternatives(etc, err) < 0)
        goto out;
    /* No resolv.conf: jobs have no network.  os-release helps tools identify the system. */
    char os[PATH_MAX];
    pathf(os, sizeof(os), "%s/os-release", etc);
    if (symlink("../usr/lib/os-release", os) < 0) {
        co_err_sys(err, errno, "cannot create '%s'", os);
        goto out;
    }
    rc = 0;
out:
    co_buf_release(&pw);
    co_buf_release(&gr);
    return rc;
}

/* Fill the empty folder @tmp with the skeleton's contents; the caller removes it on failure. */
static int
fill_skeleton(const char *tmp, co_err *err)
{
    char p[PATH_MAX];
    for (size_t i = 0; i < CO_ARRAY_LEN(mount_points); i++) {
        pathf(p, sizeof(p), "%s/%s", tmp, mount_points[i]);
        if (mkdir(p, 0755) < 0)
            return co_err_sys(err, errno, "cannot create '%s'", p);
    }
    for (size_t i = 0; i < CO_ARRAY_LEN(host_dirs); i++) {
        char host[64], target[PATH_MAX];
        struct stat st;
        pathf(host, sizeof(host), "/%s", host_dirs[i]);
        pathf(p, sizeof(p), "%s/%s", tmp, host_dirs[i]);
        if (lstat(host, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(host, target, sizeof(target) - 1);
            if (n < 0)
                return co_err_sys(err, errno, "cannot read link '%s'", host);
            target[n] = '\0';
            if (symlink(target, p) < 0)
                return co_err_sys(err, errno, "cannot create '%s'", p);
        } else if (S_ISDIR(st.st_mode) && mkdir(p, 0755) < 0) {
            return co_err_sys(err, errno, "cannot create '%s'", p);
        }
    }
    pathf(p, sizeof(p), "%s/etc", tmp);
    if (mkdir(p, 0755) < 0)
        return co_err_sys(err, errno, "cannot create '%s'", p);
    return write_etc(p, err);
}

/*
 * Root's skeleton in the host's run folder: a small tmpfs mounted over @final, so that the job's
 * root is the root of a filesystem of its own and the sandbox's mountinfo shows "/" as its root
 * instead of the host path of the folder.  Built on a temporary mount point and moved into place
 * under a lock; the mount stays until the host reboots, like the folder before it.
 */
static int
build_skeleton_tmpfs(const char *final, co_err *err)
{
    char lock[PATH_MAX], tmp[PATH_MAX];
    pathf(lock, sizeof(lock), "%s.lock", final);
    co_autoclose int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0)
        return co_err_sys(err, errno, "cannot open '%s'", lock);
    while (flock(lfd, LOCK_EX) < 0)
        if (errno != EINTR)
            return co_err_sys(err, errno, "cannot lock '%s'", lock);
    struct stat st, run;
    if (stat(final, &st) == 0) {
        if (stat(sbx_run_dir(), &run) == 0 && run.st_dev != st.st_dev)
            return 0; /* another process mounted it meanwhile (only ever moved in complete) */
        rmdir(final); /* the empty mount point of an attempt killed before its move */
    }
    pathf(tmp, sizeof(tmp), "%s.tmp.%ld.%ld", final, (long)getpid(), (long)syscall(SYS_gettid));
    umount2(tmp, MNT_DETACH); /* a crashed attempt of a recycled pid */
    remove_tree(tmp);
    if (mkdir(tmp, 0755) < 0)
        return co_err_sys(err, errno, "cannot create '%s'", tmp);
    if (mount("cacheout-root", tmp, "tmpfs", MS_NOSUID | MS_NODEV, SKELETON_TMPFS_OPTS) < 0) {
        co_err_sys(err, errno, "cannot mount a tmpfs on '%s'", tmp);
        rmdir(tmp);
        return -1;
    }
    int rc = fill_skeleton(tmp, err);
    if (rc == 0 && mkdir(final, 0755) < 0)
        rc = co_err_sys(err, errno, "cannot create '%s'", final);
    if (rc == 0 && mount(tmp, final, NULL, MS_MOVE, NULL) < 0) {
        rc = co_err_sys(err, errno, "cannot move the skeleton's mount to '%s'", final);
        rmdir(final);
    }
    if (rc < 0)
        umount2(tmp, MNT_DETACH);
    rmdir(tmp);
    return rc;
}

static int
build_skeleton(const char *final, co_err *err)
{
    char tmp[PATH_MAX];
    if (geteuid() == 0 && strcmp(sbx_run_dir(), SBX_RUN_DIR) == 0)
        return build_skeleton_tmpfs(final, err);
    pathf(tmp, sizeof(tmp), "%s.tmp.%ld.%ld", final, (long)getpid(), (long)syscall(SYS_gettid));
    remove_tree(tmp);
    if (mkdir(tmp, 0755) < 0)
        return co_err_sys(err, errno, "cannot create '%s'", tmp);
    if (fill_skeleton(tmp, err) < 0)
        goto fail;
    if (rename(tmp, final) < 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            remove_tree(tmp); /* another process won the race; use its skeleton */
            return 0;
        }
        co_err_sys(err, errno, "cannot rename '%s' to '%s'", tmp, final);
        goto fail;
    }
    return 0;
fail:
    remove_tree(tmp);
    return -1;
}

static int
resolve_default(struct sbx_image *img, co_err *err)
{
    const char *run = sbx_run_dir();
    memset(img, 0, sizeof(*img));
    if (sbx_mkdir_p(run, 0755, err) < 0)
        return -1;
    pathf(img->root, sizeof(img->root), "%s/%s", run, SKELETON_NAME);
    struct stat st;
    if (stat(img->root, &st) < 0) {
        if (errno != ENOENT)
            return co_err_sys(err, errno, "cannot stat '%s'", img->root);
        if (build_skeleton(img->root, err) < 0)
            return co_err_wrap(err, "prepare default image");
    }
    for (size_t i = 0; i < CO_ARRAY_LEN(host_dirs); i++) {
        char host[64], in[PATH_MAX];
        struct stat hs, is;
        pathf(host, sizeof(host), "/%s", host_dirs[i]);
        pathf(in, sizeof(in), "%s/%s", img->root, host_dirs[i]);
        if (lstat(host, &hs) < 0 || !S_ISDIR(hs.st_mode))
            continue;
        if (lstat(in, &is) < 0 || !S_ISDIR(is.st_mode))
            return co_err_set(err, CO_E_SYS,
                              "default image skeleton '%s' is stale: no folder for '%s'", img->root,
                              host);
        int n = img->n_binds++;
        co_strlcpy(img->bind_src[n], host, sizeof(img->bind_src[n]));
        co_strlcpy(img->bind_dst[n], host_dirs[i], sizeof(img->bind_dst[n]));
    }
    if (img->n_binds == 0 || strcmp(img->bind_dst[0], "usr") != 0)
        return co_err_set(err, CO_E_SYS, "default image: the host has no '/usr' folder");
    return 0;
}

/*
 * The skeleton's linker cache is a copy of the host's: when ldconfig has run on the host since,
 * replace the copy (a new file renamed over the old one, so running jobs see either).
 */
static void
refresh_ld_cache(const char *root)
{
    char etc[PATH_MAX], copy[PATH_MAX], tmpname[64];
    struct stat hs, cs;
    pathf(etc, sizeof(etc), "%s/etc", root);
    pathf(copy, sizeof(copy), "%s/etc/ld.so.cache", root);
    if (stat("/etc/ld.so.cache", &hs) < 0)
        return;
    if (stat(copy, &cs) == 0 && cs.st_mtim.tv_sec > hs.st_mtim.tv_sec)
        return;
    if (stat(copy, &cs) == 0 && cs.st_mtim.tv_sec == hs.st_mtim.tv_sec &&
        cs.st_mtim.tv_nsec >= hs.st_mtim.tv_nsec)
        return;
    pathf(tmpname, sizeof(tmpname), "ld.so.cache.tmp.%ld.%ld", (long)getpid(),
          (long)syscall(SYS_gettid));
    co_err e = CO_ERR_INIT;
    char tmppath[PATH_MAX];
    pathf(tmppath, sizeof(tmppath), "%s/%s", etc, tmpname);
    if (copy_host_file("/etc/ld.so.cache", etc, tmpname, &e) == 0 && rename(tmppath, copy) == 0)
        return;
    unlink(tmppath);
}

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sbx_image *default_cached;

/*
 * Open @path (which has no symlinks: realpath() made it) as a folder, refusing any symlink met
 * on the way: a component swapped for one since realpath() fails instead of leading elsewhere.
 */
static int
open_no_symlinks(const char *path)
{
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS) /* before Linux 5.6: the last component at least */
        fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd;
}

static int
resolve_folder(const char *path, struct sbx_image *img, co_err *err)
{
    char real[PATH_MAX];
    memset(img, 0, sizeof(*img));
    if (!realpath(path, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return co_err_set(err, CO_E_NOTFOUND, "image folder '%s' does not exist", path);
        return co_err_sys(err, errno, "cannot resolve image folder '%s'", path);
    }
    /* Every check below is made on this one descriptor, and the sandbox binds only the folder
     * with its device and inode (sbx_run.c): what is checked is what is used. */
    co_autoclose int fd = open_no_symlinks(real);
    struct stat st, root;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
        return co_err_set(err, CO_E_NOTFOUND, "image '%s' is not a folder", path);
    if (strcmp(real, "/") == 0 ||
        (stat("/", &root) == 0 && root.st_dev == st.st_dev && root.st_ino == st.st_ino))
        return co_err_set(err, CO_E_INVAL, "the host root cannot be an image");
    for (size_t i = 0; i < CO_ARRAY_LEN(mount_points); i++) {
        struct stat mp;
        if (mkdirat(fd, mount_points[i], 0755) < 0 && errno != EEXIST)
            return co_err_sys(err, errno, "cannot create mount point '%s/%s' in image", real,
                              mount_points[i]);
        if (fstatat(fd, mount_points[i], &mp, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(mp.st_mode))
            return co_err_set(err, CO_E_INVAL, "image mount point '%s/%s' is not a folder", real,
                              mount_points[i]);
    }
    co_strlcpy(img->root, real, sizeof(img->root));
    img->root_dev = st.st_dev;
    img->root_ino = st.st_ino;
    return 0;
}

/*
 * Copy the used part of @src into @dst: the strings up to their end, the binds up to n_binds.
 * A whole-struct copy would write all of its ~37 KiB (PATH_MAX buffers) for every job.
 */
static void
image_copy(struct sbx_image *dst, const struct sbx_image *src)
{
    memcpy(dst->root, src->root, strnlen(src->root, sizeof(src->root) - 1) + 1);
    dst->root_dev = src->root_dev;
    dst->root_ino = src->root_ino;
    dst->n_binds = src->n_binds;
    for (int i = 0; i < src->n_binds; i++) {
        memcpy(dst->bind_src[i], src->bind_src[i],
               strnlen(src->bind_src[i], sizeof(src->bind_src[i]) - 1) + 1);
        memcpy(dst->bind_dst[i], src->bind_dst[i],
               strnlen(src->bind_dst[i], sizeof(src->bind_dst[i]) - 1) + 1);
    }
}

int
sbx_image_resolve(const char *name, struct sbx_image *img, co_err *err)
{
    if (!name || !*name || strcmp(name, "default") == 0) {
        pthread_mutex_lock(&default_lock);
        int rc = 0;
        if (!default_cached) {
            struct sbx_image *d = co_xcalloc(1, sizeof(*d));
            rc = resolve_default(d, err);
            if (rc == 0)
                default_cached = d;
            else
                free(d);
        }
        if (rc == 0) {
            refresh_ld_cache(default_cached->root);
            image_copy(img, default_cached);
            /* The skeleton may have been replaced since (it lives under a run folder). */
            struct stat st;
            if (stat(img->root, &st) < 0 || !S_ISDIR(st.st_mode))
                rc = co_err_sys(err, errno ? errno : ENOTDIR, "default image skeleton '%s' is gone",
                                img->root);
            img->root_dev = st.st_dev;
            img->root_ino = st.st_ino;
        }
        pthread_mutex_unlock(&default_lock);
        return rc;
    }
    if (name[0] == '/')
        return resolve_folder(name, img, err);
    if (!co_id_valid(name) || name[0] == '.')
        return co_err_field(err, CO_E_INVAL, "image", "invalid image name '%s'", name);
    const char *dir = getenv("CACHEOUT_IMAGE_DIR");
    char path[PATH_MAX];
    pathf(path, sizeof(path), "%s/%s", dir && *dir ? dir : SBX_IMAGE_DIR, name);
    if (access(path, F_OK) < 0)
        return co_err_set(err, CO_E_NOTFOUND, "image '%s' not found: no folder '%s'", name, path);
    return resolve_folder(path, img, err);
}
