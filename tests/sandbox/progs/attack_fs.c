/* Filesystem probes: reading secrets, writing /proc, /dev contents, mounts, mknod. */
#include "attack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The destructive probes (mount, umount, pivot_root, writing /proc) refuse to run as root: inside
 * the sandbox the job is never root, so a refusal is itself a failed test, and a broken sandbox
 * cannot damage the machine running the suite.
 */
static int
refuse_root(void)
{
    if (getuid() == 0 || geteuid() == 0) {
        printf("REFUSED running as root\n");
        return 1;
    }
    return 0;
}

/* Read each PATH; print a verdict and its content (NULs as spaces) so the host can grep it. */
static int
cmd_cat(int argc, char **argv)
{
    static char buf[1 << 16];

    for (int i = 0; i < argc; i++) {
        char check[600];
        int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
        ssize_t n = 0;

        snprintf(check, sizeof(check), "read:%s", argv[i]);
        if (fd >= 0) {
            n = read(fd, buf, sizeof(buf) - 1);
            close(fd);
        }
        if (fd < 0 || n < 0) {
            attack_verdict(check, -1);
            continue;
        }
        printf("%s OK\n", check);
        for (ssize_t j = 0; j < n; j++)
            if (buf[j] == '\0' || buf[j] == '\n')
                buf[j] = ' ';
        buf[n] = '\0';
        printf("CONTENT %s %s\n", argv[i], buf);
    }
    return 0;
}

/* Open PATH for writing and write DATA. */
static int
cmd_write(int argc, char **argv)
{
    char check[600];
    int fd;
    ssize_t n;

    if (argc < 2)
        return 64;
    if (refuse_root())
        return 3;
    snprintf(check, sizeof(check), "open:%s", argv[0]);
    fd = open(argv[0], O_WRONLY | O_CLOEXEC);
    attack_verdict(check, fd);
    if (fd < 0)
        return 0;
    n = write(fd, argv[1], strlen(argv[1]));
    snprintf(check, sizeof(check), "write:%s", argv[0]);
    attack_verdict(check, n);
    close(fd);
    return 0;
}

/* Write PATH's current content back to it: harmless if allowed, but it must not be allowed. */
static int
cmd_rewrite(int argc, char **argv)
{
    char buf[4096];
    char check[600];
    ssize_t n;
    int fd;

    if (argc < 1)
        return 64;
    if (refuse_root())
        return 3;
    snprintf(check, sizeof(check), "rewrite:%s", argv[0]);
    fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        /* Not even readable: try the write anyway with a neutral value. */
        memcpy(buf, "0\n", 2);
        n = 2;
    }
    fd = open(argv[0], O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        attack_verdict(check, -1);
        return 0;
    }
    attack_verdict(check, write(fd, buf, (size_t)n));
    close(fd);
    return 0;
}

static char
type_char(mode_t m)
{
    if (S_ISCHR(m))
        return 'c';
    if (S_ISBLK(m))
        return 'b';
    if (S_ISDIR(m))
        return 'd';
    if (S_ISLNK(m))
        return 'l';
    if (S_ISFIFO(m))
        return 'p';
    if (S_ISSOCK(m))
        return 's';
    return 'f';
}

/* List the entries of each directory. */
static int
cmd_ls(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        char check[600];
        DIR *d = opendir(argv[i]);
        struct dirent *de;

        snprintf(check, sizeof(check), "opendir:%s", argv[i]);
        if (!d) {
            attack_verdict(check, -1);
            continue;
        }
        printf("%s OK\n", check);
        while ((de = readdir(d)) != NULL) {
            struct stat sb;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char t = fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0
                         ? type_char(sb.st_mode)
                         : '?';
            printf("ENTRY %s/%s %c\n", argv[i], de->d_name, t);
        }
        closedir(d);
    }
    return 0;
}

static void
walk_devices(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat sb;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (lstat(path, &sb) < 0)
            continue;
        if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode))
            printf("DEV %s %c %u:%u\n", path, type_char(sb.st_mode), major(sb.st_rdev),
                   minor(sb.st_rdev));
        else if (S_ISDIR(sb.st_mode) && depth < 4)
            walk_devices(path, depth + 1);
    }
    closedir(d);
}

static void
probe_io(const char *check, const char *path, int write_it)
{
    char buf[64] = {0};
    int fd = open(path, (write_it ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        attack_verdict(check, -1);
        return;
    }
    n = write_it ? write(fd, buf, sizeof(buf)) : read(fd, buf, sizeof(buf));
    attack_verdict(check, n < 0 ? -1 : 0);
    close(fd);
}

/* The device nodes present and the behaviour of the ones that must exist. */
static int
cmd_devices(int argc, char **argv)
{
    const char *absent[] = {"/dev/mem", "/dev/kmem", "/dev/kmsg",    "/dev/port",
                            "/dev/sda", "/dev/vda",  "/dev/console", "/dev/tty"};
    char check[64];

    (void)argc;
    (void)argv;
    walk_devices("/dev", 0);
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        struct stat sb;
        snprintf(check, sizeof(check), "stat:%s", absent[i]);
        attack_verdict(check, stat(absent[i], &sb));
    }
    probe_io("write:/dev/null", "/dev/null", 1);
    probe_io("read:/dev/zero", "/dev/zero", 0);
    probe_io("write:/dev/full", "/dev/full", 1);
    probe_io("read:/dev/random", "/dev/random", 0);
    probe_io("read:/dev/urandom", "/dev/urandom", 0);
    return 0;
}

static void
try_mknod(const char *check, const char *path, mode_t mode, dev_t dev)
{
    int r = mknod(path, mode, dev);

    attack_verdict(check, r);
    if (r == 0)
        unlink(path);
}

static int
cmd_mknod(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    try_mknod("mknod_mem", "/tmp/sbx-mem", S_IFCHR | 0600, makedev(1, 1));
    try_mknod("mknod_kmsg", "/work/sbx-kmsg", S_IFCHR | 0600, makedev(1, 11));
    try_mknod("mknod_block", "/tmp/sbx-blk", S_IFBLK | 0600, makedev(7, 0));
    return 0;
}

/* The mount table as seen inside, the cwd, and whether the read-only parts are read-only. */
static int
cmd_fsinfo(int argc, char **argv)
{
    char cwd[PATH_MAX];
    FILE *f;
    char line[1024];
    const char *ro[] = {"/usr/sbx-probe", "/sbx-probe", "/etc/sbx-probe", "/bin/sbx-probe"};
    const char *rw[] = {"/tmp/sbx-probe", "/work/sbx-probe"};

    (void)argc;
    (void)argv;
    attack_value("cwd", "%s", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
    f = fopen("/proc/self/mountinfo", "re");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            /* id parent maj:min root mountpoint options [optional...] - fstype source superopts */
            char *fields[16];
            int nf = 0;
            char *save = NULL;
            for (char *tok = strtok_r(line, " \n", &save); tok && nf < 16;
                 tok = strtok_r(NULL, " \n", &save))
                fields[nf++] = tok;
            int dash = -1;
            for (int i = 6; i < nf; i++)
                if (strcmp(fields[i], "-") == 0) {
                    dash = i;
                    break;
                }
            if (nf < 6 || dash < 0 || dash + 3 >= nf + 1)
                continue;
            printf("MOUNT %s %s %s %s\n", fields[4], fields[5], fields[dash + 1],
                   dash + 3 < nf ? fields[dash + 3] : "-");
        }
        fclose(f);
    } else {
        attack_verdict("mountinfo", -1);
    }
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        char check[64];
        int fd = open(ro[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        snprintf(check, sizeof(check), "create:%s", ro[i]);
        attack_verdict(check, fd);
        if (fd >= 0) {
            close(fd);
            unlink(ro[i]);
        }
    }
    for (size_t i = 0; i < sizeof(rw) / sizeof(rw[0]); i++) {
        char check[64];
        char src[64];
        int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        int out = open(rw[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        ssize_t n = 0;
        snprintf(check, sizeof(check), "create:%s", rw[i]);
        attack_verdict(check, out);
        if (in < 0 || out < 0) {
            if (in >= 0)
                close(in);
            if (out >= 0)
                close(out);
            continue;
        }
        while ((n = read(in, line, sizeof(line))) > 0)
            if (write(out, line, (size_t)n) != n)
                break;
        close(in);
        close(out);
        /* A job may execute files it wrote to /tmp and /work. */
        snprintf(check, sizeof(check), "exec:%s", rw[i]);
        snprintf(src, sizeof(src), "%s", rw[i]);
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0)
                dup2(devnull, 1);
            execl(src, "sbx-attack", "exit", "7", (char *)NULL);
            _exit(127);
        }
        int st = 0;
        if (pid > 0)
            waitpid(pid, &st, 0);
        attack_value(check, "%d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        unlink(rw[i]);
    }
    return 0;
}

static int
cmd_mount(int argc, char **argv)
{
    char dir[64];

    (void)argc;
    (void)argv;
    if (refuse_root())
        return 3;
    snprintf(dir, sizeof(dir), "/tmp/sbx-mnt-%d", (int)getpid());
    mkdir(dir, 0700);
    int r = mount("none", dir, "tmpfs", 0, "size=1m");
    attack_verdict("mount_tmpfs", r);
    if (r == 0)
        umount2(dir, MNT_DETACH);
    r = mount("/usr", dir, NULL, MS_BIND, NULL);
    attack_verdict("mount_bind", r);
    if (r == 0)
        umount2(dir, MNT_DETACH);
    attack_verdict("mount_remount_root", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
    attack_verdict("mount_proc", mount("proc", dir, "proc", 0, NULL));
    rmdir(dir);
    return 0;
}

static int
cmd_umount(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (refuse_root())
        return 3;
    attack_verdict("umount_proc", umount2("/proc", MNT_DETACH));
    attack_verdict("umount_tmp", umount2("/tmp", 0));
    attack_verdict("umount_root", umount2("/", MNT_DETACH));
    return 0;
}

static int
cmd_pivot_root(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (refuse_root())
        return 3;
    mkdir("/tmp/sbx-old", 0700);
    attack_verdict("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp/sbx-old"));
    attack_verdict("chroot", chroot("/tmp"));
    return 0;
}

/* Try to create PATH; prints RAN first (a job that must never run uses this). */
static int
cmd_touch(int argc, char **argv)
{
    printf("RAN\n");
    fflush(stdout);
    for (int i = 0; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
    }
    return 0;
}

const struct attack_cmd attack_fs_cmds[] = {
    {"cat", cmd_cat, "PATH..."},      {"write", cmd_write, "PATH DATA"},
    {"rewrite", cmd_rewrite, "PATH"}, {"ls", cmd_ls, "DIR..."},
    {"devices", cmd_devices, ""},     {"mknod", cmd_mknod, ""},
    {"fsinfo", cmd_fsinfo, ""},       {"mount", cmd_mount, ""},
    {"umount", cmd_umount, ""},       {"pivot_root", cmd_pivot_root, ""},
    {"touch", cmd_touch, "PATH..."},  {NULL, NULL, NULL},
};
