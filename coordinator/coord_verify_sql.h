/*
 * coord_verify_sql: the statements of coord_verify's store steps (migration 0010), spliced into
 * the store's statement table (store.c) so that both drivers prepare and cache them like the
 * others.  Included by store_int.h only.  Read-only data (no code, no state): any thread.
 */
#ifndef COORD_VERIFY_SQL_H
/*
 * Q_VER_OWNERS: the owners used by the parents in $1 (a JSON array of job ids).
 * Q_VER_LOCK_OPEN: a cancel locks the parent's open replicas in id order before the parent (the
 * order a replica's result takes: its row, then the parent's).
 * Q_VER_INV_PARENT: a finished replicated job has one charge row, at most one refund row, the two
 * take exactly its hold, the charge equals the payouts and fees on its replicas, and `charged`
 * (when recorded: settled since pricing) is the charge.
 * Q_VER_INV_CHILD: a replica holds nothing and moves no money but its seller's payout and the
 * platform's fee on it.
 */
#define COORD_VERIFY_SQL_H

#define VERIFY_OWNER_OF(w)                                                                         \
    "(SELECT COALESCE(NULLIF(owner_id, ''), worker_id) FROM worker_registrations "                 \
    "WHERE worker_id = " w ")"

#define VERIFY_OWNER_FREE(w)                                                                       \
    "(parent_job_id IS NULL OR NOT EXISTS (SELECT 1 FROM job_replica_owner o "                     \
    "WHERE o.parent_job_id = jobs.parent_job_id AND o.owner_id = " VERIFY_OWNER_OF(w) ")) "

/* A replica runs on its parent's terms: pricing, prices (market: the buyer's maximum, the
 * seller's price replaces price_* at claim) and min_reputation. */
#define VERIFY_TERMS                                                                               \
    "pricing, price_per_core_second, price_per_gb_second, max_price_per_core_second, "             \
    "max_price_per_gb_second, min_reputation"

#define VERIFY_REPLICA_COLS                                                                        \
    "r.job_id, r.idx, r.tiebreak, COALESCE(r.worker_id, ''), COALESCE(r.owner_id, ''), "           \
    "r.digest, r.outcome, j.status"

#define COORD_VERIFY_SQL                                                                           \
    [Q_VER_SPAWN] =                                                                                \
        {"INSERT INTO jobs (job_id, title, description, code, code_file, command, "                \
         "parameters, image, buyer_id, status, cost, required_cores, "                             \
         "required_ram_mb, priority, timeout_seconds, attempts, max_attempts, "                    \
         "created_at, files, replicas, parent_job_id, " VERIFY_TERMS ") SELECT $2, "               \
         "title, description, code, code_file, command, parameters, image, "                       \
         "buyer_id, 'pending', 0, required_cores, required_ram_mb, priority, "                     \
         "timeout_seconds, 0, max_attempts, created_at, files, 1, job_id, " VERIFY_TERMS           \
         " FROM jobs WHERE job_id = $1",                                                           \
         NULL, NULL, STORE_LOCK_NONE},                                                             \
    [Q_VER_REPLICA_INSERT] = {"INSERT INTO job_replica (job_id, parent_job_id, idx, tiebreak) "    \
                              "VALUES ($1, $2, $3, $4)",                                           \
                              NULL, NULL, STORE_LOCK_NONE},                                        \
    [Q_VER_SET_REPLICAS] = {"UPDATE jobs SET replicas = $2 WHERE job_id = $1", NULL, NULL,         \
                            STORE_LOCK_NONE},                                                      \
    [Q_VER_OWNER_ADD] = {"INSERT INTO job_replica_owner (parent_job_id, owner_id) "                \
                         "VALUES ($1, $2) ON CONFLICT DO NOTHING",                                 \
                         NULL, NULL, STORE_LOCK_NONE},                                             \
    [Q_VER_REPLICA_CLAIMED] = {"UPDATE job_replica SET worker_id = $2, owner_id = $3 "             \
                               "WHERE job_id = $1",                                                \
                               NULL, NULL, STORE_LOCK_NONE},                                       \
    [Q_VER_PARENT_RUNNING] = {"UPDATE jobs SET status = 'running', "                               \
                              "assigned_at = COALESCE(assigned_at, $2), "                          \
                              "started_at = COALESCE(started_at, $2) "                             \
                              "WHERE job_id = $1 AND status IN ('pending', 'running')",            \
                              NULL, NULL, STORE_LOCK_NONE},                                        \
    [Q_VER_REPLICA_RESULT] = {"UPDATE job_replica SET digest = $2, outcome = $3 "                  \
                              "WHERE job_id = $1 AND outcome IS NULL",                             \
                              NULL, NULL, STORE_LOCK_NONE},                                        \
    [Q_VER_REPLICAS] = {"SELECT " VERIFY_REPLICA_COLS " FROM job_replica r JOIN jobs j "           \
                        "ON j.job_id = r.job_id WHERE r.parent_job_id = $1 ORDER BY r.idx",        \
                        NULL, NULL, STORE_LOCK_NONE},                                              \
    [Q_VER_OUTCOME] = {"UPDATE job_replica SET outcome = $2, decided_at = $3 WHERE job_id = $1",   \
                       NULL, NULL, STORE_LOCK_NONE},                                               \
    [Q_VER_COPY_OUTPUT] = {"INSERT INTO job_output (job_id, stdout, stderr, stdout_truncated, "    \
                           "stderr_truncated, stdout_len, stderr_len) SELECT $1, stdout, stderr, " \
                           "stdout_truncated, stderr_truncated, stdout_len, stderr_len "           \
                           "FROM job_output WHERE job_id = $2",                                    \
                           NULL, NULL, STORE_LOCK_NONE},                                           \
    [Q_VER_COPY_CHUNKS] = {"INSERT INTO job_output_chunk (job_id, stream, data) "                  \
                           "SELECT $1, stream, data FROM job_output_chunk WHERE job_id = $2 "      \
                           "ORDER BY id",                                                          \
                           NULL, NULL, STORE_LOCK_NONE},                                           \
    [Q_VER_COPY_ART] = {"INSERT INTO job_artifact (job_id, attempt, path, size, sha256) "          \
                        "SELECT $1, attempt, path, size, sha256 FROM job_artifact "                \
                        "WHERE job_id = $2 AND attempt = $3",                                      \
                        NULL, NULL, STORE_LOCK_NONE},                                              \
    [Q_VER_COPY_ART_CHUNKS] = {"INSERT INTO job_artifact_chunk (job_id, attempt, path, data) "     \
                               "SELECT $1, attempt, path, data FROM job_artifact_chunk "           \
                               "WHERE job_id = $2 AND attempt = $3 ORDER BY id",                   \
                               NULL, NULL, STORE_LOCK_NONE},                                       \
    [Q_VER_COPY_ART_SET] = {"INSERT INTO job_artifact_set (job_id, attempt, files, bytes, "        \
                            "truncated, skipped, notes) SELECT $1, attempt, files, bytes, "        \
                            "truncated, skipped, notes FROM job_artifact_set WHERE job_id = $2",   \
                            NULL, NULL, STORE_LOCK_NONE},                                          \
    [Q_VER_OWNERS] = {"SELECT parent_job_id, owner_id FROM job_replica_owner "                     \
                      "WHERE parent_job_id IN (SELECT value FROM json_each($1))",                  \
                      "SELECT parent_job_id, owner_id FROM job_replica_owner "                     \
                      "WHERE parent_job_id IN (SELECT jsonb_array_elements_text($1::jsonb))",      \
                      NULL, STORE_LOCK_NONE},                                                      \
    [Q_VER_WAITING] = {"SELECT (SELECT COUNT(*) FROM jobs c WHERE c.parent_job_id = $1 "           \
                       "AND c.status = 'pending'), (SELECT COUNT(*) FROM job_replica_owner o "     \
                       "WHERE o.parent_job_id = $1), (SELECT COUNT(DISTINCT "                      \
                       "COALESCE(NULLIF(w.owner_id, ''), w.worker_id)) FROM "                      \
                       "worker_registrations w WHERE w.status <> 'offline' "                       \
                       "AND w.last_heartbeat >= $2 AND COALESCE(NULLIF(w.owner_id, ''), "          \
                       "w.worker_id) NOT IN (SELECT owner_id FROM job_replica_owner "              \
                       "WHERE parent_job_id = $1))",                                               \
                       NULL, NULL, STORE_LOCK_NONE},                                               \
    [Q_VER_LOCK_OPEN] = {"SELECT job_id FROM jobs WHERE parent_job_id = $1 AND status IN "         \
                         "('pending', 'assigned', 'running') ORDER BY job_id",                     \
                         NULL, NULL, STORE_LOCK_UPDATE},                                           \
    [Q_VER_CHILDREN] = {"SELECT job_id FROM jobs WHERE parent_job_id = $1 ORDER BY id", NULL,      \
                        NULL, STORE_LOCK_NONE},                                                    \
    [Q_VER_INV_PARENT] =                                                                           \
        {"SELECT p.job_id, p.cost, (SELECT COUNT(*) FROM ledger l WHERE l.job_id = p.job_id "      \
         "AND l.kind = 'charge'), (SELECT COALESCE(-SUM(l.held), 0) FROM ledger l "                \
         "WHERE l.job_id = p.job_id AND l.kind IN ('charge', 'refund')), (SELECT "                 \
         "COALESCE(-SUM(l.held), 0) FROM ledger l WHERE l.job_id = p.job_id AND l.kind = "         \
         "'charge'), (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l JOIN jobs c ON "             \
         "c.job_id = "                                                                             \
         "l.job_id WHERE c.parent_job_id = p.job_id AND l.kind IN ('payout', 'fee')), "            \
         "COALESCE(p.charged, -1) FROM jobs p "                                                    \
         "WHERE p.replicas > 1 AND p.status IN ('completed', 'failed', 'cancelled')",              \
         NULL, NULL, STORE_LOCK_NONE},                                                             \
    [Q_VER_INV_CHILD] = {"SELECT c.job_id FROM jobs c WHERE c.parent_job_id IS NOT NULL AND "      \
                         "(c.cost <> 0 OR EXISTS (SELECT 1 FROM ledger l WHERE l.job_id = "        \
                         "c.job_id AND l.kind NOT IN ('payout', 'fee'))) LIMIT 1",                 \
                         NULL, NULL, STORE_LOCK_NONE},

#endif
