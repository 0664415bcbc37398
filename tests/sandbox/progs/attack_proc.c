/* Process probes: orphans, stopped children, ptrace, kill(-1), identity, environment, fds. */
#include "attack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

extern char **environ;

static void
ignore_polite_signals(void)
{
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
}

/* Re-execute this binary as "linger MARKER MODE" so the host can find it by its command line. */
static void
exec_linger(const char *marker, const char *mode)
{
    execl("/proc/self/exe", attack_argv0, "linger", marker, mode, (char *)NULL);
    _exit(127);
}

/* A process that must not survive its job: ignores polite signals, optionally stops itself. */
static int
cmd_linger(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    ignore_polite_signals();
    if (strcmp(mode, "stop") == 0)
        raise(SIGSTOP);
    for (int i = 0; i < 120; i++)
        sleep(1);
    return 0;
}

/* Double-fork, setsid() and ignore SIGTERM: the grandchild tries to outlive the job. */
static int
cmd_orphan(int argc, char **argv)
{
    const char *marker = argc > 0 ? argv[0] : "sbx-orphan";
    pid_t child = fork();
    int st;

    if (child < 0) {
        attack_verdict("fork", -1);
        return 3;
    }
    if (child == 0) {
        setsid();
        ignore_polite_signals();
        pid_t gc = fork();
        if (gc == 0)
            exec_linger(marker, "orphan");
        _exit(gc < 0 ? 1 : 0);
    }
    waitpid(child, &st, 0);
    printf("ORPHANED %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

/* Leave a SIGSTOPped child behind. */
static int
cmd_stopped(int argc, char **argv)
{
    const char *marker = argc > 0 ? argv[0] : "sbx-stopped";
    pid_t child = fork();
    int st;

    if (child < 0) {
        attack_verdict("fork", -1);
        return 3;
    }
    if (child == 0)
        exec_linger(marker, "stop");
    if (waitpid(child, &st, WUNTRACED) == child && WIFSTOPPED(st))
        printf("STOPPED\n");
    else
        printf("NOTSTOPPED\n");
    return 0;
}

/* ptrace and process_vm_readv/writev against PID (a process outside this sandbox). */
static int
cmd_ptrace(int argc, char **argv)
{
    pid_t pid = argc > 0 ? (pid_t)attack_num(argv[0]) : 1;
    char buf[8] = {0};
    struct iovec local = {buf, sizeof(buf)};
    /* Address 0 of the target: harmless even if the call were allowed (EFAULT). */
    struct iovec remote = {NULL, sizeof(buf)};
    long r;
    pid_t child;
    int st;

    r = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    attack_verdict("ptrace_attach", r);
    if (r == 0)
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
    r = ptrace(PTRACE_SEIZE, pid, NULL, NULL);
    attack_verdict("ptrace_seize", r);
    if (r == 0)
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
    attack_verdict("vm_readv", process_vm_readv(pid, &local, 1, &remote, 1, 0));
    attack_verdict("vm_writev", process_vm_writev(pid, &local, 1, &remote, 1, 0));
    child = fork();
    if (child == 0) {
        attack_verdict("ptrace_traceme", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
        _exit(0);
    }
    if (child > 0)
        waitpid(child, &st, 0);
    return 0;
}

/*
 * kill(-1, SIGKILL): inside the sandbox it may only reach the job's own processes.  A guard
 * refuses to run it as root or with capabilities, so a broken sandbox fails the test instead of
 * killing the machine it runs on.
 */
static int
cmd_killall(int argc, char **argv)
{
    pid_t child;
    int st;

    (void)argc;
    (void)argv;
    if (getuid() == 0 || geteuid() == 0 || prctl(PR_CAPBSET_READ, CAP_KILL) == 1) {
        printf("REFUSED running as root or with CAP_KILL in the bounding set\n");
        return 3;
    }
    child = fork();
    if (child == 0) {
        for (;;)
            pause();
    }
    usleep(100 * 1000);
    attack_verdict("kill_all", kill(-1, SIGKILL));
    if (child > 0 && waitpid(child, &st, 0) == child)
        printf("own_child VALUE %s\n",
               WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "killed" : "alive");
    printf("SURVIVED\n");
    return 0;
}

static void
plant_file(const char *dir, const char *marker)
{
    char path[512];
    char check[64];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, marker);
    snprintf(check, sizeof(check), "plant:%s", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, marker, strlen(marker)) < 0)
            fd = -1;
        close(fd);
    }
    attack_verdict(check, fd);
}

/* Sandbox A of the concurrency cases: plant files named MARKER and stay alive for SECONDS. */
static int
cmd_plant(int argc, char **argv)
{
    const char *marker = argc > 0 ? argv[0] : "sbx-plant";
    long secs = argc > 1 ? attack_num(argv[1]) : 3;
    const char *dirs[] = {"/tmp", "/work", "/dev/shm"};
    char path[512];
    int intact = 1;

    for (size_t i = 0; i < 3; i++)
        plant_file(dirs[i], marker);
    printf("PLANTED\n");
    fflush(stdout);
    sleep((unsigned)secs);
    for (size_t i = 0; i < 3; i++) {
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dirs[i], marker);
        if (stat(path, &sb) < 0)
            intact = 0;
    }
    printf("%s\n", intact ? "DONE" : "TAMPERED");
    return 0;
}

static int
cmdline_has(const char *pid, const char *marker)
{
    char path[300];
    char buf[4096];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, marker) != NULL;
}

static void
print_cmdline(const char *pid)
{
    char path[300];
    char buf[512];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0' || buf[i] == '\n')
            buf[i] = ' ';
    buf[n] = '\0';
    printf("MARKER_PROC %s %s\n", pid, buf);
}

/* Sandbox B: look for sandbox A's files and processes (named MARKER). */
static int
cmd_isolation(int argc, char **argv)
{
    const char *marker = argc > 0 ? argv[0] : "sbx-plant";
    const char *dirs[] = {"/tmp", "/work", "/dev/shm"};
    char path[512];
    char check[64];
    DIR *d;
    struct dirent *de;
    long total = 0;
    long found = 0;

    for (size_t i = 0; i < 3; i++) {
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dirs[i], marker);
        snprintf(check, sizeof(check), "peek:%s", dirs[i]);
        attack_verdict(check, stat(path, &sb));
    }
    d = opendir("/proc");
    if (!d) {
        attack_verdict("proc", -1);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        total++;
        if (cmdline_has(de->d_name, marker)) {
            found++;
            print_cmdline(de->d_name);
        }
    }
    closedir(d);
    attack_value("procs", "%ld", total);
    attack_value("marker_procs", "%ld", found);
    return 0;
}

static void
status_field(const char *name)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    size_t len = strlen(name);

    if (!f) {
        attack_verdict(name, -1);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            char *v = line + len + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            attack_value(name, "%s", v);
            fclose(f);
            return;
        }
    }
    fclose(f);
    attack_value(name, "missing");
}

/* Identity and privileges of this process. */
static int
cmd_whoami(int argc, char **argv)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    gid_t groups[64];
    int ng;
    const char *fields[] = {"CapInh", "CapPrm",     "CapEff", "CapBnd",
                            "CapAmb", "NoNewPrivs", "Seccomp"};

    (void)argc;
    (void)argv;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    attack_value("uid", "%u", (unsigned)r);
    attack_value("euid", "%u", (unsigned)e);
    attack_value("suid", "%u", (unsigned)s);
    attack_value("gid", "%u", (unsigned)gr);
    attack_value("egid", "%u", (unsigned)ge);
    attack_value("sgid", "%u", (unsigned)gs);
    ng = getgroups(64, groups);
    attack_value("ngroups", "%d", ng);
    for (int i = 0; i < ng; i++)
        attack_value("group", "%u", (unsigned)groups[i]);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        status_field(fields[i]);
    attack_verdict("setuid0", setuid(0));
    return 0;
}

static int
cmd_env(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (char **e = environ; *e; e++)
        printf("ENV %s\n", *e);
    return 0;
}

/* Every open file descriptor and what it refers to. */
static int
cmd_fds(int argc, char **argv)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    char path[300];
    char target[512];

    (void)argc;
    (void)argv;
    if (!d) {
        attack_verdict("fds", -1);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (atoi(de->d_name) == dirfd(d))
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        printf("FD %s %s\n", de->d_name, target);
    }
    closedir(d);
    return 0;
}

/* What this process sees in /proc: its own pid, the visible pids and pid 1. */
static int
cmd_procinfo(int argc, char **argv)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    long total = 0;

    (void)argc;
    (void)argv;
    attack_value("pid", "%d", (int)getpid());
    attack_value("ppid", "%d", (int)getppid());
    if (!d) {
        attack_verdict("proc", -1);
        return 0;
    }
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
            total++;
    closedir(d);
    attack_value("procs", "%ld", total);
    return 0;
}

const struct attack_cmd attack_proc_cmds[] = {
    {"linger", cmd_linger, "MARKER [stop|orphan]"},
    {"orphan", cmd_orphan, "MARKER"},
    {"stopped", cmd_stopped, "MARKER"},
    {"ptrace", cmd_ptrace, "PID"},
    {"killall", cmd_killall, ""},
    {"plant", cmd_plant, "MARKER SECONDS"},
    {"isolation", cmd_isolation, "MARKER"},
    {"whoami", cmd_whoami, ""},
    {"env", cmd_env, ""},
    {"fds", cmd_fds, ""},
    {"procinfo", cmd_procinfo, ""},
    {NULL, NULL, NULL},
};
