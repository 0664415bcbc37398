/*
 * sbx_setup_rootless(): what an administrator does once, as root, so that a user can run
 * rootless sandboxes (cacheout-run or cacheout-agent as that user): subordinate uid and gid
 * ranges for the job uids, and cgroup folders the user may create job cgroups in.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "co_buf.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_userns.h"

/* Run usermod (no shell) to give @user the ids @first .. @first + 65535 in both files. */
static int
add_subids(const char *user, unsigned long first, co_err *err)
{
    static const char *const paths[] = {"/usr/sbin/usermod", "/sbin/usermod"};
    const char *usermod = NULL;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && !usermod; i++) {
        if (access(paths[i], X_OK) == 0)
            usermod = paths[i];
    }
    if (!usermod)
        return co_err_set(err, CO_E_UNAVAILABLE,
                          "usermod not found: add a range of 65536 ids for '%s' to /etc/subuid and "
                          "/etc/subgid by hand",
                          user);
    /* usermod refuses to add ranges to files that do not exist. */
    static const char *const files[] = {"/etc/subuid", "/etc/subgid"};
    for (size_t i = 0; i < 2; i++) {
        int fd = open(files[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return co_err_sys(err, errno, "cannot create '%s'", files[i]);
        close(fd);
    }
    char range[64];
    snprintf(range, sizeof(range), "%lu-%lu", first, first + 65535);
    char *const argv[] = {(char *)"usermod",
                          (char *)"--add-subuids",
                          range,
                          (char *)"--add-subgids",
                          range,
                          (char *)user,
                          NULL};
    pid_t pid;
    int e = posix_spawn(&pid, usermod, NULL, NULL, argv, NULL);
    if (e != 0)
        return co_err_sys(err, e, "cannot start '%s'", usermod);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return co_err_set(err, CO_E_SYS, "usermod --add-subuids %s --add-subgids %s %s failed",
                          range, range, user);
    return 0;
}

/* Make sure @user has SBX_MAX_SLOTS subordinate uids and gids; report the ranges. */
static int
setup_subids(const char *user, uid_t uid, struct co_buf *report, co_err *err)
{
    for (int round = 0; round < 2; round++) {
        struct co_buf su = CO_BUF_INIT, sg = CO_BUF_INIT;
        unsigned long fu = 0, fg = 0;
        int rc = sbx_read_text("/etc/subuid", &su, err);
        if (rc == 0)
            rc = sbx_read_text("/etc/subgid", &sg, err);
        bool have = rc == 0 && sbx_subid_find(su.data, user, uid, SBX_MAX_SLOTS, &fu) == 0 &&
                    sbx_subid_find(sg.data, user, uid, SBX_MAX_SLOTS, &fg) == 0;
        unsigned long next = rc == 0 ? sbx_subid_next_free(su.data, sg.data) : 0;
        co_buf_release(&su);
        co_buf_release(&sg);
        if (rc < 0)
            return -1;
        if (have) {
            co_buf_printf(report,
                          "subordinate ids: job uids %lu-%lu, gids %lu-%lu (/etc/subuid, "
                          "/etc/subgid)\n",
                          fu, fu + SBX_MAX_SLOTS - 1, fg, fg + SBX_MAX_SLOTS - 1);
            return 0;
        }
        if (round == 1)
            return co_err_set(err, CO_E_SYS, "no subordinate id range for '%s' after usermod",
                              user);
        if (add_subids(user, next, err) < 0)
            return -1;
        co_buf_printf(report, "subordinate ids: added %lu-%lu for %s\n", next, next + 65535, user);
    }
    return 0;
}

int
sbx_setup_rootless(const char *user, struct co_buf *report, co_err *err)
{
    if (geteuid() != 0)
        return co_err_set(err, CO_E_UNAVAILABLE, "--setup-rootless must run as root");
    struct co_buf pw = CO_BUF_INIT;
    uid_t uid;
    gid_t gid;
    if (sbx_read_text("/etc/passwd", &pw, err) < 0) {
        co_buf_release(&pw);
        return -1;
    }
    int found = sbx_passwd_lookup(pw.data, user, &uid, &gid);
    co_buf_release(&pw);
    if (found < 0)
        return co_err_set(err, CO_E_NOTFOUND, "no user '%s' in /etc/passwd", user);
    if (uid == 0)
        return co_err_set(err, CO_E_INVAL, "'%s' is root: root runs sandboxes without this", user);
    if (setup_subids(user, uid, report, err) < 0)
        return -1;
    if (access("/usr/bin/newuidmap", X_OK) < 0 || access("/usr/bin/newgidmap", X_OK) < 0)
        co_buf_printf(report, "warning: newuidmap/newgidmap missing: install the package uidmap\n");
    struct co_buf mi = CO_BUF_INIT;
    if (sbx_read_text("/proc/self/mountinfo", &mi, err) < 0) {
        co_buf_release(&mi);
        return -1;
    }
    char parent[128];
    sbx_cgroup_parent_name(uid, parent, sizeof(parent));
    int rc = sbx_cgroup_delegate("/sys/fs/cgroup", mi.data, parent, uid, gid, report, err);
    co_buf_release(&mi);
    if (rc < 0)
        return -1;
    co_buf_printf(report, "ready: run cacheout-run or cacheout-agent as %s (uid %u)\n", user,
                  (unsigned)uid);
    return 0;
}
