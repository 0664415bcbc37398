/* coord_node: node id and the SQLite instance lock (see coord_node.h). */
#include "coord_node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "co_id.h"
#include "co_log.h"
#include "coord_store.h"

static char node_id[COORD_NODE_ID_LEN + 1];
static int instance_fd = -1; /* kept open (and locked) until the process exits */

void
coord_node_init(void)
{
    if (!node_id[0])
        co_random_hex(node_id, COORD_NODE_ID_LEN / 2);
}

const char *
coord_node_id(void)
{
    return node_id;
}

int
coord_node_instance_lock(const char *database_url, co_err *err)
{
    const char *path = coord_store_sqlite_path(database_url);
    if (!path || !*path || strcmp(path, ":memory:") == 0 || instance_fd >= 0)
        return 0;
    char lock_path[4096];
    if (snprintf(lock_path, sizeof(lock_path), "%s.lock", path) >= (int)sizeof(lock_path))
        return co_err_set(err, CO_E_INVAL, "database path too long for its lock file");
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return co_err_sys(err, errno, "cannot open the instance lock '%s'", lock_path);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        int e = errno;
        struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        long pid = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : 0;
        close(fd);
        if (e == EACCES || e == EAGAIN)
            return co_err_set(err, CO_E_CONFLICT,
                              "another coordinator (pid %ld) already uses the SQLite database "
                              "'%s' (instance lock '%s'): SQLite runs a single coordinator; "
                              "several coordinators need PostgreSQL",
                              pid, path, lock_path);
        return co_err_sys(err, e, "cannot lock '%s'", lock_path);
    }
    instance_fd = fd;
    co_info("instance lock taken lock=%s", lock_path);
    return 0;
}

int
coord_node_fence(struct coord_store *store, const char *worker_id, int64_t epoch, bool lock,
                 co_err *err)
{
    if (epoch <= 0)
        return 0;
    char node[COORD_NODE_ID_LEN + 1] = "";
    int64_t cur = 0;
    if (coord_store_worker_session_get(store, worker_id, lock, node, sizeof(node), &cur, err) < 0)
        return -1;
    if (cur == epoch && strcmp(node, node_id) == 0)
        return 0;
    return co_err_field(err, CO_E_CONFLICT, "session",
                        "the session of worker '%s' moved on (now node %s epoch %lld; this one: "
                        "node %s epoch %lld)",
                        worker_id, node[0] ? node : "-", (long long)cur, node_id, (long long)epoch);
}

bool
coord_node_fenced(const co_err *err)
{
    return err && err->code == CO_E_CONFLICT && strcmp(err->field, "session") == 0;
}

int
coord_node_poll_take(struct coord_store *store, const char *worker_id, co_err *err)
{
    int64_t epoch = 0;
    return coord_store_worker_session_begin(store, worker_id, "", &epoch, err);
}

int
coord_node_poll_fence(struct coord_store *store, const char *worker_id, co_err *err)
{
    char node[COORD_NODE_ID_LEN + 1] = "";
    int64_t cur = 0;
    if (coord_store_worker_session_get(store, worker_id, true, node, sizeof(node), &cur, err) < 0)
        return -1;
    if (!node[0])
        return 0;
    return co_err_field(err, CO_E_CONFLICT, "session",
                        "worker '%s' is held by an agent session (node %s epoch %lld): its poll "
                        "requests are refused until it registers again (POST /api/v1/register)",
                        worker_id, node, (long long)cur);
}
