/*
 * sbx_userns: rootless sandboxes.  When the caller is not root, every sandbox gets a user
 * namespace of its own, created by the same clone() as its other namespaces.  In it, uid/gid 0
 * is the caller (init builds the sandbox as that "root", with capabilities over the sandbox's
 * namespaces only) and the job's uid/gid SBX_UID_BASE + slot is the caller's subordinate id
 * + slot, so that two jobs never share a host uid and neither has the caller's.  The maps are
 * written by the setuid helpers newuidmap/newgidmap (package uidmap), which check the caller's
 * ranges in /etc/subuid and /etc/subgid.  Internal to libsandbox.
 */
#ifndef SBX_USERNS_H
#define SBX_USERNS_H

#include <stdbool.h>
#include <sys/types.h>

#include "co_err.h"

/** What a rootless caller has, found once per process by sbx_userns_get(). */
struct sbx_userns {
    uid_t uid; /* the caller's (effective) uid and gid */
    gid_t gid;
    char user[64];        /* its name from /etc/passwd, "" when it has none there */
    unsigned long subuid; /* first id of a subordinate range of at least SBX_MAX_SLOTS ids */
    unsigned long subgid;
    char newuidmap[64]; /* the helpers' paths */
    char newgidmap[64];
};

/** True when sandboxes of this process are rootless (its effective uid is not 0). */
bool sbx_rootless(void);

/**
 * Find a range of at least @need ids for the user @user (a name, may be "") or numeric id @id in
 * @text, the contents of /etc/subuid or /etc/subgid ("name-or-id:first:count" lines).  Stores the
 * first id in *@first.  Returns 0, or -1 when there is no such range.  Pure, for tests.
 */
int sbx_subid_find(const char *text, const char *user, unsigned long id, unsigned long need,
                   unsigned long *first);

/**
 * Find the user name of @uid in @passwd (the contents of /etc/passwd) into @out (@size bytes);
 * "" when it is not there.  Pure, for tests.
 */
void sbx_passwd_name(const char *passwd, uid_t uid, char *out, size_t size);

/**
 * Find the uid and gid of the user @name in @passwd (the contents of /etc/passwd).  Returns 0, or
 * -1 when there is no such user.  Pure, for tests.
 */
int sbx_passwd_lookup(const char *passwd, const char *name, uid_t *uid, gid_t *gid);

/**
 * The first id of a free block of 65536 subordinate ids, given the contents of /etc/subuid and
 * /etc/subgid (past every range of either, at least 100000).  Pure, for tests.
 */
unsigned long sbx_subid_next_free(const char *subuid, const char *subgid);

/** Read the whole of @path into @b, NUL-terminated; -1 with errno set on failure. */
struct co_buf;
int sbx_slurp(const char *path, struct co_buf *b) __attribute__((warn_unused_result));

/**
 * The rootless set-up of this process, found on first use (thread-safe).  Borrowed.  Errors
 * name what is missing: a subordinate uid or gid range of SBX_MAX_SLOTS ids for the caller, the
 * newuidmap/newgidmap helpers, or a private run folder (sbx_run_dir()).
 */
int sbx_userns_get(const struct sbx_userns **out, co_err *err) __attribute__((warn_unused_result));

/** The two helpers started for one sandbox (see sbx_userns_map_start()). */
struct sbx_idmap_run {
    pid_t pid[2];  /* newuidmap, newgidmap; 0 when not running */
    int err_fd[2]; /* their stderr, read once they exit; -1 when closed */
};

/**
 * Start newuidmap and newgidmap for the sandbox init @child (still waiting for its maps) of
 * slot @slot: "0 <uid> 1 <SBX_UID_BASE + slot> <subuid + slot> 1" and the same for gids.  They
 * run while the caller goes on; sbx_userns_map_finish() waits for them.  Errors: a helper
 * cannot be started (the other one is then waited for).
 */
int sbx_userns_map_start(const struct sbx_userns *u, pid_t child, unsigned slot,
                         struct sbx_idmap_run *run, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Wait for the helpers of @run.  Errors: one of them failed; the message quotes what it said.
 */
int sbx_userns_map_finish(struct sbx_idmap_run *run, co_err *err)
    __attribute__((warn_unused_result));

#endif
