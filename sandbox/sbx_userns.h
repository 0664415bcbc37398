/*
 * sbx_userns: rootless sandboxes.  When the caller is not root, its sandboxes create their
 * namespaces inside a user namespace made for them.  In it, uid/gid 0 is the caller (init builds
 * the sandbox as that "root", with capabilities over the sandbox's namespaces only) and the job
 * uids/gids SBX_UID_BASE + slot are the caller's subordinate ids + slot, so that two jobs never
 * share a host uid and none has the caller's.  The maps are written by the setuid helpers
 * newuidmap/newgidmap (package uidmap), which check the caller's ranges in /etc/subuid and
 * /etc/subgid.  Internal to libsandbox.
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

/**
 * The rootless set-up of this process, found on first use (thread-safe).  Borrowed.  Errors
 * name what is missing: a subordinate uid or gid range of SBX_MAX_SLOTS ids for the caller, the
 * newuidmap/newgidmap helpers, or a private run folder (sbx_run_dir()).
 */
int sbx_userns_get(const struct sbx_userns **out, co_err *err) __attribute__((warn_unused_result));

/**
 * The user namespace of this process's sandboxes, made on first use (thread-safe; a caller
 * that finds it being made waits): an fd in *@out, borrowed, valid for the process's lifetime.
 * A short-lived process unshares it and newuidmap/newgidmap write its maps, "0 <uid> 1" and
 * "SBX_UID_BASE <subuid> SBX_MAX_SLOTS" (gids alike); the fd keeps the namespace.  Each sandbox
 * enters it with setns() and creates its other namespaces inside, as root's sandboxes all
 * share the host's user namespace: concurrent jobs are kept apart by their slot uids and their
 * own pid, mount, network, ipc and uts namespaces, not by the user namespace.  Errors (not
 * kept: the next call tries again): the process cannot be created (unprivileged user namespaces
 * disabled), a helper fails (its message is quoted), the namespace cannot be opened.
 */
int sbx_userns_shared(const struct sbx_userns *u, int *out, co_err *err)
    __attribute__((warn_unused_result));

/**
 * Start making the shared user namespace in a background thread (sbx_prewarm() of a rootless
 * process), so that the first sandbox does not wait the whole time for it.  Does nothing when
 * rootless sandboxes cannot work here (sbx_run() then says why).  Errors: the thread cannot
 * be started.
 */
int sbx_userns_prepare(co_err *err) __attribute__((warn_unused_result));

#endif
