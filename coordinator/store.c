/*
 * store.c: the store's logic, written once for both databases (the drivers in store_sqlite.c and
 * store_pg.c only run statements), plus URL parsing, migrations, enum names and list release.
 *
 * Lock order on PostgreSQL, kept by every write transaction to avoid deadlocks: the worker row,
 * then job rows, then user rows (in user_id order when there are several).  On SQLite every write
 * transaction takes the database write lock at its start (BEGIN IMMEDIATE).
 *
 * Thread: the database thread that owns the store (see coord_store.h).  Its state is in struct
 * coord_store (coord_store_open to coord_store_close), except the process-wide list of pending
 * reputation updates (under its own mutex, kept until the process exits).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "co_alloc.h"
#include "co_buf.h"
#include "co_jsonw.h"
#include "co_log.h"
#include "co_time.h"
#include "coord_artifact.h"
#include "coord_fault.h"
#include "coord_store.h"
#include "coord_verify.h"

#include "coord_webhook.h"
#include "store_backend.h"
#include "store_int.h"
#include "store_migrations.h"

/* ---- statements ---- */

#define JOB_COLS                                                                                   \
    "job_id, title, description, code_file, command, parameters, image, buyer_id, "                \
    "COALESCE(assigned_worker, ''), status, failure, cost, required_cores, required_ram_mb, "      \
    "priority, timeout_seconds, attempts, max_attempts, exit_code, wall_ms, cpu_ms, max_rss_kb, "  \
    "created_at, COALESCE(assigned_at, 0), COALESCE(started_at, 0), COALESCE(completed_at, 0), "   \
    "pricing, price_per_core_second, price_per_gb_second, max_price_per_core_second, "             \
    "max_price_per_gb_second, min_reputation, charged, replicas, COALESCE(parent_job_id, '')"
/* The columns after JOB_COLS (code, files) */
#define JOB_COL_CODE 35
/*
 * A score in parts per million over the last COORD_REPUTATION_WINDOW outcomes whose column @c
 * equals @v (coord_store.h: Beta(4, 1) prior).
 */
#define REPUTATION_SQL(c, v)                                                                       \
    "(SELECT (4 + COALESCE(SUM(CASE WHEN o.kind = 'completed' THEN 1 ELSE 0 END), 0)) * 1000000 "  \
    "/ (5 + COUNT(*)) FROM worker_outcome o WHERE o." c " = " v " AND o.id >= COALESCE((SELECT "   \
    "o2.id FROM worker_outcome o2 WHERE o2." c " = " v " ORDER BY o2.id DESC LIMIT 1 OFFSET 49), " \
    "0))"
#define ACTIVE_JOB "j.status IN ('assigned', 'running')"
#define WORKER_COLS WORKER_COLS_BUT_OWNER_SCORE REPUTATION_SQL("owner_id", "w.owner_id")
/*
 * The same with 0 for the owner's reputation: a claim needs the worker's room and terms, not a
 * window of every worker of its owner, and reads them while it holds the worker's row.
 */
#define WORKER_COLS_CLAIM WORKER_COLS_BUT_OWNER_SCORE "0"
#define WORKER_COLS_BUT_OWNER_SCORE                                                                \
    "w.worker_id, w.owner_id, w.cpu_cores, w.ram_mb, "                                             \
    "(SELECT COALESCE(SUM(j.required_cores), 0) FROM jobs j "                                      \
    " WHERE j.assigned_worker = w.worker_id AND " ACTIVE_JOB "), "                                 \
    "(SELECT COALESCE(SUM(j.required_ram_mb), 0) FROM jobs j "                                     \
    " WHERE j.assigned_worker = w.worker_id AND " ACTIVE_JOB "), "                                 \
    "(SELECT COUNT(*) FROM jobs j WHERE j.assigned_worker = w.worker_id AND " ACTIVE_JOB "), "     \
    "w.status, w.websocket, w.last_heartbeat, w.created_at, w.updated_at, "                        \
    "w.price_per_core_second, w.price_per_gb_second, w.reputation, "
#define ACCOUNT_COLS                                                                               \
    "user_id, username, email, is_admin, disabled, limits, credits, held, created_at, updated_at"
#define KEY_COLS                                                                                   \
    "key_id, user_id, name, scopes, created_at, COALESCE(last_used_at, 0), "                       \
    "COALESCE(revoked_at, 0)"
/* Authentication: one equality on the unique token hash, the user joined by its unique id. */
#define KEY_LOOKUP_SQL                                                                             \
    "SELECT k.key_id, k.user_id, k.scopes, u.is_admin, u.limits, COALESCE(k.last_used_at, 0) "     \
    "FROM api_keys k JOIN users u ON u.user_id = k.user_id "                                       \
    "WHERE k.token_hash = $1 AND k.revoked_at IS NULL AND u.disabled = 0"

/* A buyer's max_running_jobs ($1 the default; 0 = none), from the user's limits override. */
#define BUYER_CAP                                                                                  \
    "CASE WHEN u.is_admin <> 0 THEN 0 ELSE COALESCE(CAST(u.limits ->> 'max_running_jobs' AS "      \
    "INTEGER), $1) END"
#define BUYER_CAP_PG                                                                               \
    "CASE WHEN u.is_admin <> 0 THEN 0 ELSE COALESCE((u.limits::jsonb ->> 'max_running_jobs')"      \
    "::bigint, $1::bigint) END"

const struct store_sql store_sql[Q_COUNT] = {
    [Q_PING] = {"SELECT 1", NULL, NULL, STORE_LOCK_NONE},
    [Q_MIG_LOCK] = {"SELECT 1", "SELECT pg_advisory_xact_lock(7243001)", NULL, STORE_LOCK_NONE},
    [Q_MIG_MAX] = {"SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, NULL,
                   STORE_LOCK_NONE},
    [Q_MIG_HAS] = {"SELECT 1 FROM schema_migrations WHERE version = $1", NULL, NULL,
                   STORE_LOCK_NONE},
    [Q_MIG_INSERT] = {"INSERT INTO schema_migrations (version, name, applied_at) "
                      "VALUES ($1, $2, $3)",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_USER_INSERT] = {"INSERT INTO users (user_id, username, credits, held, is_worker, "
                       "created_at, updated_at) VALUES ($1, $1, 0, 0, $2, $3, $3) "
                       "ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
                       NULL, NULL, STORE_LOCK_NONE},
    [Q_USER_GET] = {"SELECT user_id, credits, held, created_at, updated_at FROM users "
                    "WHERE user_id = $1",
                    NULL, NULL, STORE_LOCK_NONE},
    [Q_USER_LOCK] = {"SELECT user_id FROM users WHERE user_id = $1", NULL, NULL, STORE_LOCK_UPDATE},
    /*
     * Several users ($1 a JSON array of ids) locked in one statement, in byte order (the order
     * of strcmp, which every transaction that locks users one by one follows): PostgreSQL locks
     * the rows as the sort hands them over.  The ids found come back in that order.
     */
    [Q_USERS_LOCK] =
        {"SELECT user_id FROM users WHERE user_id IN (SELECT value FROM json_each($1)) "
         "ORDER BY user_id",
         "SELECT user_id FROM users "
         "WHERE user_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb))) "
         "ORDER BY user_id COLLATE \"C\"",
         NULL, STORE_LOCK_UPDATE},
    [Q_USER_ADD] = {"UPDATE users SET credits = credits + $2, held = held + $3, updated_at = $4 "
                    "WHERE user_id = $1 AND credits + $2 >= 0 AND held + $3 >= 0 "
                    "RETURNING credits",
                    NULL, NULL, STORE_LOCK_NONE},
    [Q_LEDGER_INSERT] = {"INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, "
                         "note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                         NULL, NULL, STORE_LOCK_NONE},
    /*
     * PostgreSQL: Q_USER_ADD and Q_LEDGER_INSERT in one round trip (SQLite has no UPDATE in a
     * WITH clause).  No row when the user is unknown or a balance would go negative.
     */
    [Q_MONEY_MOVE_PG] = {"WITH u AS (UPDATE users SET credits = credits + $4, held = held + $5, "
                         "updated_at = $7 WHERE user_id = $1 AND credits + $4 >= 0 "
                         "AND held + $5 >= 0 RETURNING credits) "
                         "INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, "
                         "created_at) SELECT $1, $2, $3, $4, $5, u.credits, $6, $7 FROM u "
                         "RETURNING balance",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_LEDGER_LIST] = {"SELECT id, user_id, COALESCE(job_id, ''), kind, amount, held, balance, "
                       "note, created_at FROM ledger WHERE user_id = $1 "
                       "ORDER BY id DESC LIMIT $2 OFFSET $3",
                       NULL, NULL, STORE_LOCK_NONE},
    [Q_ACC_INSERT] = {"INSERT INTO users (user_id, username, email, credits, held, is_worker, "
                      "is_admin, disabled, limits, created_at, updated_at) "
                      "VALUES ($1, $2, $3, 0, 0, 0, $4, 0, '{}', $5, $5) "
                      "ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_ACC_GET] = {"SELECT " ACCOUNT_COLS " FROM users WHERE user_id = $1", NULL, NULL,
                   STORE_LOCK_NONE},
    [Q_ACC_LIST] = {"SELECT " ACCOUNT_COLS " FROM users ORDER BY user_id LIMIT $1 OFFSET $2", NULL,
                    NULL, STORE_LOCK_NONE},
    [Q_ACC_PATCH] = {"UPDATE users SET is_admin = COALESCE($2, is_admin), "
                     "disabled = COALESCE($3, disabled), limits = COALESCE($4, limits), "
                     "updated_at = $5 WHERE user_id = $1",
                     NULL, NULL, STORE_LOCK_NONE},
    [Q_KEY_INSERT] = {"INSERT INTO api_keys (key_id, user_id, name, scopes, token_hash, "
                      "created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_KEY_LIST] = {"SELECT " KEY_COLS " FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL "
                    "ORDER BY id",
                    NULL, NULL, STORE_LOCK_NONE},
    [Q_KEY_GET] = {"SELECT " KEY_COLS " FROM api_keys WHERE key_id = $1", NULL, NULL,
                   STORE_LOCK_NONE},
    [Q_KEY_REVOKE] = {"UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 "
                      "AND revoked_at IS NULL",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_KEY_LOOKUP] = {KEY_LOOKUP_SQL, NULL, NULL, STORE_LOCK_NONE},
    [Q_KEY_LOOKUP_PLAN] = {"EXPLAIN " KEY_LOOKUP_SQL, NULL, "EXPLAIN QUERY PLAN " KEY_LOOKUP_SQL,
                           STORE_LOCK_NONE},
    [Q_KEY_TOUCH] = {"UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1", NULL, NULL,
                     STORE_LOCK_NONE},
    [Q_AUDIT_INSERT] = {"INSERT INTO audit (at, actor, action, target, detail) "
                        "VALUES ($1, $2, $3, $4, $5)",
                        NULL, NULL, STORE_LOCK_NONE},
    [Q_AUDIT_LIST] = {"SELECT id, at, actor, action, target, detail FROM audit "
                      "ORDER BY id DESC LIMIT $1 OFFSET $2",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_PENDING_OF] = {"SELECT COUNT(*) FROM jobs WHERE buyer_id = $1 AND status = 'pending' "
                          "AND parent_job_id IS NULL",
                          NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_INSERT] = {"INSERT INTO jobs (job_id, title, description, code, code_file, command, "
                      "parameters, image, buyer_id, status, cost, required_cores, "
                      "required_ram_mb, priority, timeout_seconds, attempts, max_attempts, "
                      "created_at, files, pricing, price_per_core_second, price_per_gb_second, "
                      "max_price_per_core_second, max_price_per_gb_second, min_reputation) "
                      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', "
                      "$10, $11, $12, $13, $14, 0, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_GET] = {"SELECT " JOB_COLS ", code, files FROM jobs WHERE job_id = $1", NULL, NULL,
                   STORE_LOCK_NONE},
    [Q_JOB_GET_NOCODE] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs WHERE job_id = $1", NULL, NULL,
                          STORE_LOCK_NONE},
    [Q_JOB_LOCK] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs WHERE job_id = $1", NULL, NULL,
                    STORE_LOCK_UPDATE},
    [Q_JOB_LIST] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs "
                    "WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) "
                    "AND (CAST($2 AS TEXT) IS NULL OR buyer_id = $2) "
                    "AND (CAST($3 AS TEXT) IS NULL OR assigned_worker = $3) "
                    "AND (parent_job_id IS NULL OR CAST($3 AS TEXT) IS NOT NULL) "
                    "ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5",
                    NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_LIST_CODE] = {"SELECT " JOB_COLS ", code, NULL FROM jobs "
                         "WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) "
                         "AND (CAST($2 AS TEXT) IS NULL OR buyer_id = $2) "
                         "AND (CAST($3 AS TEXT) IS NULL OR assigned_worker = $3) "
                         "AND (parent_job_id IS NULL OR CAST($3 AS TEXT) IS NOT NULL) "
                         "ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_PENDING] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs WHERE status = 'pending' "
                       "AND replicas = 1 ORDER BY priority DESC, created_at, id LIMIT $1",
                       NULL, NULL, STORE_LOCK_NONE},
    /*
     * The placeable pending jobs: a shape (image, cores, RAM) that some connected agent can run
     * ($2 the most cores, $3 the most RAM, $4 a JSON array of images; $5 a JSON array of buyers
     * held back at their max_running_jobs), found through the
     * jobs_pending_shape index (named on SQLite, whose planner prefers jobs_queue without
     * statistics) so that unplaceable jobs are never visited.  Fair share: within a
     * priority level buyers take turns (each buyer's oldest job first, then their second...).
     * The first $1 are chosen by id before the join, so that only their rows are read whole
     * (PostgreSQL read every placeable pending row before its top-N sort: 8-18 ms a pass with
     * 2,000 pending jobs).
     */
    /*
     * SQLite: a skip scan of jobs_pending_class (0016). k walks the pending classes (priority,
     * buyer, image, cores, RAM) with one seek each: ">= (..., kr + 1)" lands past the class in
     * one seek (">" would step over its rows), and "kb || ''", "kc + 0" have no affinity so
     * that SQLite seeks on all five columns, not on priority alone. A placeable class gives
     * its first $1 jobs in (created_at, id) order: every job of the first $1 turns of its
     * (priority, buyer) is among them, and a later turn is never among the first $1 rows, so
     * the turns are those of numbering every placeable job. An unplaceable class: one seek.
     */
    [Q_JOB_PENDING_FIT] = {"WITH RECURSIVE k (kp, kb, ki, kc, kr) AS (SELECT * FROM (SELECT "
                           "priority, buyer_id, image, required_cores, required_ram_mb FROM jobs "
                           "INDEXED BY jobs_pending_class WHERE status = 'pending' "
                           "AND replicas = 1 "
                           "ORDER BY priority, buyer_id, image, required_cores, required_ram_mb "
                           "LIMIT 1) UNION ALL SELECT priority, buyer_id, image, required_cores, "
                           "required_ram_mb FROM k, jobs WHERE id = (SELECT id FROM jobs "
                           "INDEXED BY jobs_pending_class WHERE status = 'pending' "
                           "AND replicas = 1 "
                           "AND (priority, buyer_id, image, required_cores, required_ram_mb) "
                           ">= (kp, kb || '', ki || '', kc + 0, kr + 1) ORDER BY priority, "
                           "buyer_id, image, required_cores, required_ram_mb LIMIT 1)) "
                           "SELECT " JOB_COLS ", NULL, NULL FROM jobs JOIN (SELECT qid, turn FROM "
                           "(SELECT id AS qid, priority AS qp, created_at AS qc, "
                           "ROW_NUMBER() OVER (PARTITION BY priority, buyer_id "
                           "ORDER BY created_at, id) AS turn FROM k, jobs "
                           "WHERE kc <= $2 AND kr <= $3 "
                           "AND ki IN (SELECT value FROM json_each($4)) "
                           "AND kb NOT IN (SELECT value FROM json_each($5)) "
                           "AND id IN (SELECT id FROM jobs INDEXED BY jobs_pending_class "
                           "WHERE status = 'pending' AND replicas = 1 AND priority = kp "
                           "AND buyer_id = kb AND image = ki AND required_cores = kc "
                           "AND required_ram_mb = kr ORDER BY created_at, id LIMIT $1)) "
                           "ORDER BY qp DESC, turn, qc, qid LIMIT $1) q ON id = q.qid "
                           "ORDER BY priority DESC, q.turn, created_at, id",
                           /*
                            * PostgreSQL: only the first $1 placeable jobs of each (priority,
                            * buyer) can be among the first $1 turns, so each is read through
                            * jobs_pending_turn up to there; the pairs come from a skip scan of
                            * that index (b).  A pass reads about $1 rows per buyer with pending
                            * jobs instead of every placeable pending row.
                            */
                           "SELECT " JOB_COLS ", NULL, NULL FROM jobs JOIN ("
                           "WITH RECURSIVE b (bp, bb) AS ("
                           "(SELECT priority, buyer_id FROM jobs WHERE status = 'pending' "
                           "AND replicas = 1 ORDER BY priority, buyer_id LIMIT 1) UNION ALL "
                           "SELECT n.priority, n.buyer_id FROM b, LATERAL (SELECT priority, "
                           "buyer_id FROM jobs WHERE status = 'pending' AND replicas = 1 "
                           "AND (priority, buyer_id) > (b.bp, b.bb) "
                           "ORDER BY priority, buyer_id LIMIT 1) n) "
                           "SELECT t.qid, t.turn, t.qp, t.qc FROM b, LATERAL (SELECT id AS qid, "
                           "priority AS qp, created_at AS qc, "
                           "ROW_NUMBER() OVER (ORDER BY created_at, id) AS turn FROM "
                           "(SELECT id, priority, created_at FROM jobs WHERE status = 'pending' "
                           "AND replicas = 1 AND priority = b.bp AND buyer_id = b.bb "
                           "AND required_cores <= $2 AND required_ram_mb <= $3 "
                           "AND image = ANY (ARRAY(SELECT jsonb_array_elements_text($4::jsonb))) "
                           "ORDER BY created_at, id LIMIT $1) f) t "
                           "WHERE b.bb NOT IN (SELECT jsonb_array_elements_text($5::jsonb)) "
                           "ORDER BY t.qp DESC, t.turn, t.qc, t.qid LIMIT $1) q "
                           "ON id = q.qid ORDER BY priority DESC, q.turn, created_at, id",
                           NULL, STORE_LOCK_NONE},
    [Q_JOB_NEXT_FIT] = {"SELECT job_id FROM jobs WHERE status = 'pending' "
                        "AND required_cores <= $1 AND required_ram_mb <= $2 "
                        "AND min_reputation <= $3 AND (pricing <> 'market' OR "
                        "(max_price_per_core_second >= $4 AND max_price_per_gb_second >= $5)) "
                        "AND replicas = 1 AND " VERIFY_OWNER_FREE(
                            "$6") "ORDER BY priority DESC, created_at, id LIMIT 1",
                        NULL, NULL, STORE_LOCK_SKIP_LOCKED},
    /* A market job is charged at the prices of the worker that claims it ($4, $5). */
    /* The assigned row comes back whole (as Q_JOB_GET): no second read in the claim. */
    [Q_JOB_ASSIGN] = {"UPDATE jobs SET status = 'assigned', assigned_worker = $2, "
                      "attempts = attempts + 1, assigned_at = $3, started_at = NULL, "
                      "price_per_core_second = CASE WHEN pricing = 'market' THEN $4 "
                      "ELSE price_per_core_second END, "
                      "price_per_gb_second = CASE WHEN pricing = 'market' THEN $5 "
                      "ELSE price_per_gb_second END "
                      "WHERE job_id = $1 AND status = 'pending' RETURNING " JOB_COLS
                      ", code, files",
                      NULL, NULL, STORE_LOCK_NONE},
    /*
     * Fenced in the statement: only the holder of the attempt ($3, $4) starts it.  The worker is
     * compared through COALESCE so that the row is found by its id, never by a walk of the
     * worker's jobs in jobs_worker (PostgreSQL's generic plan took that one).
     */
    [Q_JOB_SET_RUNNING] = {"UPDATE jobs SET status = 'running', started_at = $2 "
                           "WHERE job_id = $1 AND status = 'assigned' "
                           "AND COALESCE(assigned_worker, '') = $3 AND attempts = $4",
                           NULL, NULL, STORE_LOCK_NONE},
    /*
     * The final state and, in the same row version, what the job was charged ($9; NULL keeps
     * it: a replicated job's is written by coord_verify): one write of the row, one outbox row,
     * and on PostgreSQL no second update that checks the row's foreign keys again.
     */
    [Q_JOB_FINISH] = {"UPDATE jobs SET status = $2, failure = $3, exit_code = $4, wall_ms = $5, "
                      "cpu_ms = $6, max_rss_kb = $7, completed_at = $8, "
                      "charged = COALESCE($9, charged) WHERE job_id = $1",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_REQUEUE] = {"UPDATE jobs SET status = 'pending', assigned_worker = NULL, "
                       "assigned_at = NULL, started_at = NULL WHERE job_id = $1",
                       NULL, NULL, STORE_LOCK_NONE},
    /* Reconciliation: every assigned or running job; a requeue that gives the attempt back. */
    [Q_JOB_ACTIVE] = {"SELECT " JOB_COLS
                      ", NULL, NULL FROM jobs WHERE status IN ('assigned', 'running') "
                      "ORDER BY job_id",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_POLL_UNSTARTED] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs WHERE status = 'assigned' "
                              "AND assigned_at < $1 AND assigned_worker IN "
                              "(SELECT worker_id FROM worker_registrations WHERE websocket = 0) "
                              "ORDER BY job_id",
                              NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_REQUEUE_FREE] = {"UPDATE jobs SET status = 'pending', assigned_worker = NULL, "
                            "assigned_at = NULL, started_at = NULL, "
                            "max_attempts = max_attempts + 1 WHERE job_id = $1",
                            NULL, NULL, STORE_LOCK_NONE},
    [Q_JOB_OF_WORKER] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs j WHERE assigned_worker = $1 "
                         "AND " ACTIVE_JOB " ORDER BY job_id",
                         NULL, NULL, STORE_LOCK_UPDATE},
    [Q_WORKER_CREATE_LOCK] = {"SELECT 1", "SELECT pg_advisory_xact_lock(7243002)", NULL,
                              STORE_LOCK_NONE},
    [Q_WORKER_LOCK] = {"SELECT worker_id FROM worker_registrations WHERE worker_id = $1", NULL,
                       NULL, STORE_LOCK_UPDATE},
    /* PostgreSQL: the worker's active jobs read once for the three sums, not once for each. */
    [Q_WORKER_GET_CLAIM] = {"SELECT " WORKER_COLS_CLAIM
                            " FROM worker_registrations w WHERE w.worker_id = $1",
                            "SELECT w.worker_id, w.owner_id, w.cpu_cores, w.ram_mb, a.cores, "
                            "a.ram, a.n, w.status, w.websocket, w.last_heartbeat, w.created_at, "
                            "w.updated_at, w.price_per_core_second, w.price_per_gb_second, "
                            "w.reputation, 0 FROM worker_registrations w, LATERAL (SELECT "
                            "COALESCE(SUM(j.required_cores), 0) AS cores, "
                            "COALESCE(SUM(j.required_ram_mb), 0) AS ram, COUNT(*) AS n "
                            "FROM jobs j WHERE j.assigned_worker = w.worker_id AND " ACTIVE_JOB
                            ") a WHERE w.worker_id = $1",
                            NULL, STORE_LOCK_NONE},
    [Q_WORKER_GET] = {"SELECT " WORKER_COLS " FROM worker_registrations w WHERE w.worker_id = $1",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_LIST] = {"SELECT " WORKER_COLS " FROM worker_registrations w ORDER BY w.worker_id",
                       NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_INSERT] = {"INSERT INTO worker_registrations (worker_id, owner_id, cpu_cores, "
                         "ram_mb, status, websocket, last_heartbeat, created_at, updated_at, "
                         "owner_claimed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $7)",
                         NULL, NULL, STORE_LOCK_NONE},
    /* Only the owner's registration updates a worker (or the first one of a row from before
     * ownership was recorded, which claims it). */
    [Q_WORKER_UPDATE] = {"UPDATE worker_registrations SET owner_id = $2, cpu_cores = $3, "
                         "ram_mb = $4, status = $5, websocket = $6, last_heartbeat = $7, "
                         "updated_at = $7, owner_claimed_at = COALESCE(owner_claimed_at, $7) "
                         "WHERE worker_id = $1 AND (owner_id = $2 OR owner_claimed_at IS NULL)",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_COUNT_ONLINE] = {"SELECT COUNT(*) FROM worker_registrations "
                               "WHERE status <> 'offline' AND last_heartbeat >= $1",
                               NULL, NULL, STORE_LOCK_NONE},
    /* PostgreSQL: database time (leases are judged by one clock whatever node writes). */
    [Q_WORKER_HEARTBEAT] = {"UPDATE worker_registrations SET last_heartbeat = $2, "
                            "status = CASE WHEN status = 'offline' THEN 'idle' ELSE status END "
                            "WHERE worker_id = $1",
                            "UPDATE worker_registrations SET last_heartbeat = "
                            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) "
                            "+ 0 * $2::bigint, "
                            "status = CASE WHEN status = 'offline' THEN 'idle' ELSE status END "
                            "WHERE worker_id = $1",
                            NULL, STORE_LOCK_NONE},
    /* coord_lease's tick: every heartbeat of the last second in one statement ($1 a JSON
     * array of worker ids, sorted, so that row locks are always taken in one order); the
     * database's clock on PostgreSQL, as Q_WORKER_HEARTBEAT. */
    [Q_WORKER_HEARTBEAT_MANY] =
        {"UPDATE worker_registrations SET last_heartbeat = $2, "
         "status = CASE WHEN status = 'offline' THEN 'idle' ELSE status END "
         "WHERE worker_id IN (SELECT value FROM json_each($1))",
         "UPDATE worker_registrations SET last_heartbeat = "
         "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + 0 * $2::bigint, "
         "status = CASE WHEN status = 'offline' THEN 'idle' ELSE status END "
         "WHERE worker_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
         NULL, STORE_LOCK_NONE},
    [Q_WORKER_SET_STATUS] = {"UPDATE worker_registrations SET status = $2, updated_at = $3 "
                             "WHERE worker_id = $1",
                             NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_EXPIRED] =
        {"SELECT " WORKER_COLS " FROM worker_registrations w "
         "WHERE w.last_heartbeat < $1 AND (w.status <> 'offline' OR EXISTS "
         "(SELECT 1 FROM jobs j WHERE j.assigned_worker = w.worker_id AND " ACTIVE_JOB
         ")) ORDER BY w.worker_id",
         NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_OWNER] = {"SELECT owner_id FROM worker_registrations WHERE worker_id = $1", NULL,
                        NULL, STORE_LOCK_NONE},
    [Q_JOB_SET_CHARGED] = {"UPDATE jobs SET charged = $2 WHERE job_id = $1", NULL, NULL,
                           STORE_LOCK_NONE},
    [Q_OUTCOME_INSERT] = {"INSERT INTO worker_outcome (worker_id, owner_id, job_id, kind, "
                          "created_at) SELECT worker_id, owner_id, $2, $3, $4 "
                          "FROM worker_registrations WHERE worker_id = $1 RETURNING owner_id",
                          NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_REPUTE] = {"UPDATE worker_registrations SET reputation = " REPUTATION_SQL(
                             "worker_id", "$1") " WHERE worker_id = $1",
                         NULL, NULL, STORE_LOCK_NONE},
    /* PostgreSQL: not when another transaction holds the row (a claim): no row changed then. */
    [Q_WORKER_REPUTE_TRY] = {"UPDATE worker_registrations SET reputation = " REPUTATION_SQL(
                                 "worker_id", "$1") " WHERE worker_id = $1",
                             "UPDATE worker_registrations SET reputation = " REPUTATION_SQL(
                                 "worker_id", "$1") " WHERE worker_id = (SELECT worker_id FROM "
                                                    "worker_registrations WHERE worker_id = $1 "
                                                    "FOR NO KEY UPDATE SKIP LOCKED)",
                             NULL, STORE_LOCK_NONE},
    [Q_WORKER_SET_PRICE] = {"UPDATE worker_registrations SET price_per_core_second = $2, "
                            "price_per_gb_second = $3 WHERE worker_id = $1",
                            NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_TERMS] = {"SELECT worker_id, owner_id, price_per_core_second, price_per_gb_second, "
                        "reputation FROM worker_registrations WHERE status <> 'offline' "
                        "ORDER BY worker_id",
                        NULL, NULL, STORE_LOCK_NONE},
    /* A user's movements per UTC day since $2 (ms): spent (charges), earned (payouts), fees. */
    [Q_STATEMENT] = {"SELECT created_at / 86400000 AS d, "
                     "COALESCE(SUM(CASE WHEN kind = 'charge' THEN -held ELSE 0 END), 0), "
                     "COALESCE(SUM(CASE WHEN kind = 'payout' THEN amount ELSE 0 END), 0), "
                     "COALESCE(SUM(CASE WHEN kind = 'fee' THEN amount ELSE 0 END), 0) "
                     "FROM ledger WHERE user_id = $1 AND created_at >= $2 "
                     "AND kind IN ('charge', 'payout', 'fee') GROUP BY d ORDER BY d",
                     NULL, NULL, STORE_LOCK_NONE},
    [Q_OUTPUT_LEN] = {"SELECT stdout_len, stderr_len, stdout_truncated, stderr_truncated "
                      "FROM job_output WHERE job_id = $1",
                      NULL, NULL, STORE_LOCK_UPDATE},
    [Q_OUTPUT_INSERT] =
        {"INSERT INTO job_output (job_id, stdout, stderr, stdout_truncated, "
         "stderr_truncated, stdout_len, stderr_len) VALUES ($1, $2, $2, 0, 0, 0, 0)",
         NULL, NULL, STORE_LOCK_NONE},
    [Q_OUTPUT_SET_OUT] = {"UPDATE job_output SET stdout_len = stdout_len + $2, "
                          "stdout_truncated = $3 WHERE job_id = $1",
                          NULL, NULL, STORE_LOCK_NONE},
    [Q_OUTPUT_SET_ERR] = {"UPDATE job_output SET stderr_len = stderr_len + $2, "
                          "stderr_truncated = $3 WHERE job_id = $1",
                          NULL, NULL, STORE_LOCK_NONE},
    [Q_OUTPUT_CHUNK] = {"INSERT INTO job_output_chunk (job_id, stream, data) VALUES ($1, $2, $3)",
                        NULL, NULL, STORE_LOCK_NONE},
    /* stdout/stderr hold output written before migration 0002; chunks follow it. */
    [Q_OUTPUT_GET] = {"SELECT stdout, stderr, stdout_truncated, stderr_truncated FROM job_output "
                      "WHERE job_id = $1",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_OUTPUT_CHUNKS] = {"SELECT stream, data FROM job_output_chunk WHERE job_id = $1 ORDER BY id",
                         NULL, NULL, STORE_LOCK_NONE},
    /* A new attempt starts with no output: the earlier attempts' rows go. */
    [Q_OUTPUT_CLEAR] = {"DELETE FROM job_output WHERE job_id = $1", NULL, NULL, STORE_LOCK_NONE},
    [Q_OUTPUT_CLEAR_CHUNKS] = {"DELETE FROM job_output_chunk WHERE job_id = $1", NULL, NULL,
                               STORE_LOCK_NONE},
    /* The job row locked, for a report that must come from its current attempt. */
    [Q_JOB_FENCE] = {"SELECT status, COALESCE(assigned_worker, ''), attempts FROM jobs "
                     "WHERE job_id = $1",
                     NULL, NULL, STORE_LOCK_UPDATE},
    [Q_H_JOBS] = {"SELECT status, COUNT(*) FROM jobs GROUP BY status", NULL, NULL, STORE_LOCK_NONE},
    [Q_H_WORKERS] = {"SELECT CASE WHEN status = 'offline' OR last_heartbeat < $1 THEN 'offline' "
                     "ELSE status END AS st, COUNT(*) FROM worker_registrations GROUP BY st",
                     NULL, NULL, STORE_LOCK_NONE},
    [Q_H_USERS] = {"SELECT (SELECT COALESCE(SUM(credits + held), 0) FROM users), "
                   "(SELECT COUNT(*) FROM users u WHERE EXISTS (SELECT 1 FROM jobs j "
                   "WHERE j.buyer_id = u.user_id) OR EXISTS (SELECT 1 FROM ledger l "
                   "WHERE l.user_id = u.user_id AND l.kind = 'grant'))",
                   NULL, NULL, STORE_LOCK_NONE},
    [Q_H_UNFIT] = {"SELECT COUNT(*) FROM jobs j WHERE j.status = 'pending' AND j.replicas = 1 "
                   "AND NOT EXISTS "
                   "(SELECT 1 FROM worker_registrations w WHERE w.status <> 'offline' "
                   "AND w.last_heartbeat >= $1 AND w.cpu_cores >= j.required_cores "
                   "AND w.ram_mb >= j.required_ram_mb)",
                   NULL, NULL, STORE_LOCK_NONE},
    [Q_INV_TOTALS] = {"SELECT (SELECT COALESCE(SUM(credits), 0) FROM users), "
                      "(SELECT COALESCE(SUM(held), 0) FROM users), "
                      "(SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'grant')",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_INV_LEDGER] = {"SELECT u.user_id, u.credits, u.held, COALESCE(SUM(l.amount), 0), "
                      "COALESCE(SUM(l.held), 0) FROM users u LEFT JOIN ledger l "
                      "ON l.user_id = u.user_id GROUP BY u.user_id, u.credits, u.held "
                      "HAVING u.credits <> COALESCE(SUM(l.amount), 0) "
                      "OR u.held <> COALESCE(SUM(l.held), 0) LIMIT 1",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_INV_HELD] = {"SELECT u.user_id, u.held, COALESCE((SELECT SUM(j.cost) FROM jobs j "
                    "WHERE j.buyer_id = u.user_id AND j.status IN ('pending', 'assigned', "
                    "'running')), 0) AS open FROM users u WHERE u.held <> COALESCE((SELECT "
                    "SUM(j.cost) FROM jobs j WHERE j.buyer_id = u.user_id AND j.status IN "
                    "('pending', 'assigned', 'running')), 0) LIMIT 1",
                    NULL, NULL, STORE_LOCK_NONE},
    /*
     * A finished job is settled once: charge and/or refund release exactly its hold (cost), its
     * payout and fee add up to its charge, and `charged` (when recorded) is its charge.
     */
    [Q_INV_SETTLED] = {"SELECT j.job_id, j.status, (SELECT COUNT(*) FROM ledger l "
                       "WHERE l.job_id = j.job_id AND l.kind IN ('charge', 'refund')) AS n "
                       "FROM jobs j WHERE j.replicas = 1 AND j.parent_job_id IS NULL AND "
                       "((j.status IN ('completed', 'failed', 'cancelled') "
                       "AND ((SELECT COUNT(*) FROM ledger l WHERE l.job_id = j.job_id "
                       "AND l.kind IN ('charge', 'refund')) = 0 "
                       "OR (SELECT COALESCE(SUM(l.held), 0) FROM ledger l "
                       "WHERE l.job_id = j.job_id AND l.kind IN ('charge', 'refund')) <> -j.cost "
                       "OR (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
                       "WHERE l.job_id = j.job_id AND l.kind IN ('payout', 'fee')) <> "
                       "-(SELECT COALESCE(SUM(l.held), 0) FROM ledger l WHERE l.job_id = j.job_id "
                       "AND l.kind = 'charge') OR (j.charged IS NOT NULL AND j.charged <> "
                       "-(SELECT COALESCE(SUM(l.held), 0) FROM ledger l WHERE l.job_id = j.job_id "
                       "AND l.kind = 'charge')))) OR (j.status IN ('pending', "
                       "'assigned', 'running') AND EXISTS (SELECT 1 FROM ledger l "
                       "WHERE l.job_id = j.job_id AND l.kind IN ('charge', 'refund', "
                       "'payout', 'fee')))) LIMIT 1",
                       NULL, NULL, STORE_LOCK_NONE},
    /*
     * max_running_jobs: a buyer's cap is the user's `limits` override, else the default ($1);
     * admins have none (0).  Buyers with assigned/running jobs and their counts; the caps of some
     * buyers (a JSON array of ids); pending jobs without those of some buyers (held back).
     */
    [Q_BUYERS_RUNNING] = {"SELECT j.buyer_id, COUNT(*), " BUYER_CAP " FROM jobs j "
                          "JOIN users u ON u.user_id = j.buyer_id "
                          "WHERE j.status IN ('assigned', 'running') AND j.replicas = 1 "
                          "GROUP BY j.buyer_id, u.is_admin, u.limits",
                          /* PostgreSQL: counted per buyer first, then one user row each. */
                          "SELECT j.buyer_id, j.n, " BUYER_CAP_PG " FROM (SELECT buyer_id, "
                          "COUNT(*) AS n FROM jobs WHERE status IN ('assigned', 'running') "
                          "AND replicas = 1 GROUP BY buyer_id) j "
                          "JOIN users u ON u.user_id = j.buyer_id",
                          NULL, STORE_LOCK_NONE},
    [Q_BUYER_CAPS] = {"SELECT u.user_id, 0, " BUYER_CAP " FROM users u "
                      "WHERE u.user_id IN (SELECT value FROM json_each($2))",
                      "SELECT u.user_id, 0, " BUYER_CAP_PG " FROM users u "
                      "WHERE u.user_id = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))",
                      NULL, STORE_LOCK_NONE},
    [Q_JOB_PENDING_EXCEPT] = {"SELECT " JOB_COLS ", NULL, NULL FROM jobs WHERE status = 'pending' "
                              "AND buyer_id NOT IN (SELECT value FROM json_each($2)) "
                              "AND replicas = 1 ORDER BY priority DESC, created_at, id LIMIT $1",
                              "SELECT " JOB_COLS ", NULL, NULL FROM jobs WHERE status = 'pending' "
                              "AND buyer_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)) "
                              "AND replicas = 1 ORDER BY priority DESC, created_at, id LIMIT $1",
                              NULL, STORE_LOCK_NONE},
/* Idempotency keys (coord_idem): one row per (credential, method, path, key). */
#define IDEM_PK "credential = $1 AND method = $2 AND path = $3 AND idem_key = $4"
    [Q_IDEM_EXPIRE] = {"DELETE FROM idempotency_keys WHERE " IDEM_PK " AND expires_at <= $5", NULL,
                       NULL, STORE_LOCK_NONE},
    [Q_IDEM_INSERT] = {"INSERT INTO idempotency_keys (credential, method, path, idem_key, "
                       "body_hash, status, response, created_at, expires_at) "
                       "VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8) ON CONFLICT DO NOTHING",
                       NULL, NULL, STORE_LOCK_NONE},
    [Q_IDEM_GET] = {"SELECT body_hash, status, response FROM idempotency_keys WHERE " IDEM_PK, NULL,
                    NULL, STORE_LOCK_NONE},
    [Q_IDEM_SET] = {"UPDATE idempotency_keys SET status = $5, response = $6 WHERE " IDEM_PK, NULL,
                    NULL, STORE_LOCK_NONE},
#undef IDEM_PK
/* Retention: each statement handles at most $2 rows older than the cutoff $1. */
#define RET_FINISHED                                                                               \
    "j.status IN ('completed', 'failed', 'cancelled') AND j.completed_at IS NOT NULL "             \
    "AND j.completed_at < $1"
    [Q_RET_CODE] =
        {"UPDATE jobs SET code = NULL WHERE id IN (SELECT j.id FROM jobs j WHERE " RET_FINISHED
         " AND j.code IS NOT NULL LIMIT $2)",
         NULL, NULL, STORE_LOCK_NONE},
    [Q_RET_CHUNKS] = {"DELETE FROM job_output_chunk WHERE id IN (SELECT c.id FROM "
                      "job_output_chunk c JOIN jobs j ON j.job_id = c.job_id WHERE " RET_FINISHED
                      " LIMIT $2)",
                      NULL, NULL, STORE_LOCK_NONE},
    [Q_RET_OUTPUT] = {"DELETE FROM job_output WHERE job_id IN (SELECT o.job_id FROM job_output o "
                      "JOIN jobs j ON j.job_id = o.job_id WHERE " RET_FINISHED
                      " AND NOT EXISTS (SELECT 1 FROM job_output_chunk c "
                      "WHERE c.job_id = o.job_id) LIMIT $2)",
                      NULL, NULL, STORE_LOCK_NONE},
    /* Workers silent since the cutoff that no job row names (job rows keep their worker). */
    [Q_RET_WORKERS] = {"DELETE FROM worker_registrations WHERE worker_id IN (SELECT w.worker_id "
                       "FROM worker_registrations w WHERE w.last_heartbeat < $1 AND NOT EXISTS "
                       "(SELECT 1 FROM jobs j WHERE j.assigned_worker = w.worker_id) LIMIT $2)",
                       NULL, NULL, STORE_LOCK_NONE},
    [Q_RET_IDEM] = {"DELETE FROM idempotency_keys WHERE (credential, method, path, idem_key) IN "
                    "(SELECT credential, method, path, idem_key FROM idempotency_keys "
                    "WHERE expires_at <= $1 LIMIT $2)",
                    NULL, NULL, STORE_LOCK_NONE},
    /* Artifacts (0007): the set first (the job shows none), then the files, then the chunks. */
    [Q_RET_ART_SETS] = {"DELETE FROM job_artifact_set WHERE job_id IN (SELECT a.job_id FROM "
                        "job_artifact_set a JOIN jobs j ON j.job_id = a.job_id WHERE " RET_FINISHED
                        " LIMIT $2)",
                        NULL, NULL, STORE_LOCK_NONE},
    [Q_RET_ART_FILES] = {"DELETE FROM job_artifact WHERE (job_id, attempt, path) IN (SELECT "
                         "a.job_id, a.attempt, a.path FROM job_artifact a JOIN jobs j ON "
                         "j.job_id = a.job_id WHERE " RET_FINISHED " LIMIT $2)",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_RET_ART_CHUNKS] =
        {"DELETE FROM job_artifact_chunk WHERE id IN (SELECT c.id FROM "
         "job_artifact_chunk c JOIN jobs j ON j.job_id = c.job_id WHERE " RET_FINISHED " LIMIT $2)",
         NULL, NULL, STORE_LOCK_NONE},
    /* Outcomes older than the last 50 of their worker and of their owner (REPUTATION_SQL). */
    [Q_RET_OUTCOMES] = {"DELETE FROM worker_outcome WHERE id IN (SELECT o.id FROM worker_outcome o "
                        "WHERE o.id <= COALESCE((SELECT o2.id FROM worker_outcome o2 WHERE "
                        "o2.worker_id = o.worker_id ORDER BY o2.id DESC LIMIT 1 OFFSET 50), 0) "
                        "AND o.id <= COALESCE((SELECT o3.id FROM worker_outcome o3 WHERE "
                        "o3.owner_id = o.owner_id ORDER BY o3.id DESC LIMIT 1 OFFSET 50), 0) "
                        "LIMIT $1)",
                        /*
                         * PostgreSQL: each worker's and owner's cut found once (materialized),
                         * not once per row: two reads of the worker's and the owner's outcomes
                         * for each row (whole, by a bitmap scan and a sort, while the table has
                         * no statistics) took 0.6-2.5 s a step with 3,000 outcomes, and the
                         * first retention run falls in a drain of the benches.
                         */
                        "WITH wc AS MATERIALIZED (SELECT d.worker_id, (SELECT o2.id "
                        "FROM worker_outcome o2 WHERE o2.worker_id = d.worker_id "
                        "ORDER BY o2.id DESC LIMIT 1 OFFSET 50) AS cut "
                        "FROM (SELECT DISTINCT worker_id FROM worker_outcome) d), "
                        "oc AS MATERIALIZED (SELECT d.owner_id, (SELECT o3.id "
                        "FROM worker_outcome o3 WHERE o3.owner_id = d.owner_id "
                        "ORDER BY o3.id DESC LIMIT 1 OFFSET 50) AS cut "
                        "FROM (SELECT DISTINCT owner_id FROM worker_outcome) d) "
                        "DELETE FROM worker_outcome WHERE id IN (SELECT o.id FROM worker_outcome o "
                        "JOIN wc ON wc.worker_id = o.worker_id JOIN oc ON oc.owner_id = o.owner_id "
                        "WHERE o.id <= wc.cut AND o.id <= oc.cut LIMIT $1)",
                        NULL, STORE_LOCK_NONE},
#undef RET_FINISHED
    [Q_ART_DROP_OLD_CHUNKS] = {"DELETE FROM job_artifact_chunk WHERE job_id = $1 AND attempt <> $2",
                               NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_DROP_OLD_FILES] = {"DELETE FROM job_artifact WHERE job_id = $1 AND attempt <> $2", NULL,
                              NULL, STORE_LOCK_NONE},
    [Q_ART_DROP_SET] = {"DELETE FROM job_artifact_set WHERE job_id = $1", NULL, NULL,
                        STORE_LOCK_NONE},
    [Q_ART_FILE_INSERT] = {"INSERT INTO job_artifact (job_id, attempt, path, size) "
                           "VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                           NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_FILE_SIZE] = {"SELECT size, COUNT(sha256) FROM job_artifact WHERE job_id = $1 "
                         "AND attempt = $2 AND path = $3 GROUP BY size",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_CHUNK_INSERT] = {"INSERT INTO job_artifact_chunk (job_id, attempt, path, data) "
                            "VALUES ($1, $2, $3, $4)",
                            NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_FILE_GROW] = {"UPDATE job_artifact SET size = size + $4 WHERE job_id = $1 "
                         "AND attempt = $2 AND path = $3",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_FILE_CHUNKS] = {"SELECT data FROM job_artifact_chunk WHERE job_id = $1 AND attempt = $2 "
                           "AND path = $3 ORDER BY id",
                           NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_FILE_SHA] = {"UPDATE job_artifact SET sha256 = $4 WHERE job_id = $1 AND attempt = $2 "
                        "AND path = $3",
                        NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_ATTEMPT_BYTES] = {"SELECT COALESCE(SUM(size), 0) FROM job_artifact WHERE job_id = $1 "
                             "AND attempt = $2",
                             NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_SET_INSERT] = {"INSERT INTO job_artifact_set (job_id, attempt, files, bytes, truncated, "
                          "skipped, notes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                          NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_SET_GET] = {"SELECT attempt, truncated, skipped, COALESCE(notes, '') "
                       "FROM job_artifact_set WHERE job_id = $1",
                       NULL, NULL, STORE_LOCK_NONE},
    [Q_ART_LIST] =
        {"SELECT path, size, sha256 FROM job_artifact WHERE job_id = $1 AND attempt = $2 "
         "AND sha256 IS NOT NULL ORDER BY path",
         NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_SESSION_BEGIN] = {"UPDATE worker_registrations SET session_node = $2, "
                                "session_epoch = session_epoch + 1 WHERE worker_id = $1 "
                                "RETURNING session_epoch",
                                NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_SESSION_GET] = {"SELECT session_node, session_epoch FROM worker_registrations "
                              "WHERE worker_id = $1",
                              NULL, NULL, STORE_LOCK_NONE},
    [Q_WORKER_SESSION_LOCK] = {"SELECT session_node, session_epoch FROM worker_registrations "
                               "WHERE worker_id = $1",
                               NULL, NULL, STORE_LOCK_UPDATE},
    /* One node at a time reaps: a transaction-level advisory lock ("COREAP"). */
    [Q_REAPER_LOCK] = {"SELECT 1",
                       "SELECT CASE WHEN pg_try_advisory_xact_lock(73612193435728) THEN 1 ELSE 0 "
                       "END",
                       NULL, STORE_LOCK_NONE},
    [Q_DB_NOW] = {"SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
                  "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)", NULL,
                  STORE_LOCK_NONE},
    /* Completion callbacks (0008; coord_webhook.h). */
    [Q_WH_INSERT] = {"INSERT INTO webhook_delivery (delivery_id, job_id, url, state, created_at) "
                     "VALUES ($1, $2, $3, 'waiting', $4)",
                     NULL, NULL, STORE_LOCK_NONE},
    [Q_WH_QUEUE] = {"UPDATE webhook_delivery SET state = 'pending', queued_at = $2, next_at = $2 "
                    "WHERE job_id = $1 AND state = 'waiting'",
                    NULL, NULL, STORE_LOCK_NONE},
    [Q_WH_DUE] = {"SELECT delivery_id, job_id, url, attempts, COALESCE(first_attempt_at, 0) "
                  "FROM webhook_delivery WHERE state = 'pending' AND next_at <= $1 "
                  "ORDER BY next_at LIMIT $2",
                  NULL, NULL, STORE_LOCK_SKIP_LOCKED},
    [Q_WH_LEASE] = {"UPDATE webhook_delivery SET next_at = $2 WHERE delivery_id = $1", NULL, NULL,
                    STORE_LOCK_NONE},
    [Q_WH_SECRET_GET] = {"SELECT secret FROM webhook_secret WHERE user_id = $1", NULL, NULL,
                         STORE_LOCK_NONE},
    [Q_WH_SECRET_SET] = {"INSERT INTO webhook_secret (user_id, secret, created_at) "
                         "VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET "
                         "secret = excluded.secret, created_at = excluded.created_at",
                         NULL, NULL, STORE_LOCK_NONE},
    [Q_WH_ATTEMPT_INSERT] = {"INSERT INTO webhook_attempt (delivery_id, job_id, attempt, at, "
                             "status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                             NULL, NULL, STORE_LOCK_NONE},
    [Q_WH_UPDATE] = {"UPDATE webhook_delivery SET state = $2, attempts = $3, "
                     "first_attempt_at = COALESCE(first_attempt_at, $4), next_at = $5, "
                     "done_at = $6 WHERE delivery_id = $1",
                     NULL, NULL, STORE_LOCK_NONE},
    [Q_WH_GET] = {"SELECT delivery_id, url, state, attempts, COALESCE(first_attempt_at, 0), "
                  "COALESCE(next_at, 0), COALESCE(done_at, 0) FROM webhook_delivery "
                  "WHERE job_id = $1",
                  NULL, NULL, STORE_LOCK_NONE},
    [Q_WH_ATTEMPTS] = {"SELECT attempt, at, COALESCE(status_code, 0), error, duration_ms "
                       "FROM webhook_attempt WHERE job_id = $1 ORDER BY id",
                       NULL, NULL, STORE_LOCK_NONE},
/* Retention: the log, then the deliveries, of old finished jobs whose delivery is over. */
#define WH_RET_OVER                                                                                \
    "j.status IN ('completed', 'failed', 'cancelled') AND j.completed_at IS NOT NULL "             \
    "AND j.completed_at < $1 AND d.state IN ('delivered', 'failed')"
    [Q_RET_WH_ATTEMPTS] = {"DELETE FROM webhook_attempt WHERE id IN (SELECT a.id FROM "
                           "webhook_attempt a JOIN webhook_delivery d ON d.delivery_id = "
                           "a.delivery_id JOIN jobs j ON j.job_id = d.job_id WHERE " WH_RET_OVER
                           " LIMIT $2)",
                           NULL, NULL, STORE_LOCK_NONE},
    [Q_RET_WH_DELIVERIES] = {"DELETE FROM webhook_delivery WHERE delivery_id IN (SELECT "
                             "d.delivery_id FROM webhook_delivery d JOIN jobs j ON j.job_id = "
                             "d.job_id WHERE " WH_RET_OVER " AND NOT EXISTS (SELECT 1 FROM "
                             "webhook_attempt a WHERE a.delivery_id = d.delivery_id) LIMIT $2)",
                             NULL, NULL, STORE_LOCK_NONE},
#undef WH_RET_OVER
    /*
     * PostgreSQL (migration 0017): a claim in one call (the worker locked first, then the job,
     * the checks of coord_store_job_claim, the assign), the assigned row whole.
     */
    [Q_JOB_CLAIM_PG] = {"SELECT " JOB_COLS ", code, files FROM cacheout_claim($1, $2, $3)", NULL,
                        NULL, STORE_LOCK_NONE},
    /* PostgreSQL (0017): the end of a locked, fenced job with the settlement store.c planned. */
    [Q_JOB_SETTLE_PG] =
        {"SELECT queued::int, noted::int, reputed FROM cacheout_settle($1, $2, $3, $4, $5, "
         "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
         NULL, NULL, STORE_LOCK_NONE},
    COORD_VERIFY_SQL /* replicas (coord_verify_sql.h) */
};

/* The highest balance a grant may produce: 10^9 credits. */
#define STORE_MAX_BALANCE (INT64_C(1000000000) * INT64_C(1000000))

/* ---- enum names ---- */

static const char *const job_status_names[COORD_JOB_STATUS_COUNT] = {
    "pending", "assigned", "running", "completed", "failed", "cancelled"};
static const char *const failure_names[COORD_FAIL_COUNT] = {
    NULL,          "exit_code", "timeout",   "oom", "killed", "sandbox_error",
    "worker_lost", "cancelled", "unverified"};
static const char *const worker_status_names[COORD_WORKER_STATUS_COUNT] = {"idle", "busy",
                                                                           "offline"};
static const char *const ledger_kind_names[COORD_LEDGER_KIND_COUNT] = {"grant",  "hold",   "charge",
                                                                       "payout", "refund", "fee"};

static int
name_index(const char *const *names, int n, const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *
coord_job_status_name(enum coord_job_status s)
{
    return (unsigned)s < COORD_JOB_STATUS_COUNT ? job_status_names[s] : "unknown";
}

int
coord_job_status_parse(const char *s)
{
    return name_index(job_status_names, COORD_JOB_STATUS_COUNT, s);
}

const char *
coord_failure_name(enum coord_failure f)
{
    return (unsigned)f < COORD_FAIL_COUNT ? failure_names[f] : NULL;
}

int
coord_failure_parse(const char *s)
{
    return name_index(failure_names, COORD_FAIL_COUNT, s);
}

const char *
coord_worker_status_name(enum coord_worker_status s)
{
    return (unsigned)s < COORD_WORKER_STATUS_COUNT ? worker_status_names[s] : "unknown";
}

int
coord_worker_status_parse(const char *s)
{
    return name_index(worker_status_names, COORD_WORKER_STATUS_COUNT, s);
}

const char *
coord_ledger_kind_name(enum coord_ledger_kind k)
{
    return (unsigned)k < COORD_LEDGER_KIND_COUNT ? ledger_kind_names[k] : "unknown";
}

/* ---- list release ---- */

void
coord_job_release(struct coord_job *job)
{
    if (!job)
        return;
    free(job->title);
    free(job->description);
    free(job->code);
    free(job->code_file);
    free(job->files);
    job->files = NULL;
    free(job->callback_url);
    job->callback_url = NULL;
    free(job->command);
    free(job->parameters);
    free(job->image);
    job->title = job->description = job->code = job->code_file = NULL;
    job->command = job->parameters = job->image = NULL;
    free(job->verification);
    free(job->avoid_owners);
    job->verification = job->avoid_owners = NULL;
}

void
coord_job_list_release(struct coord_job_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++)
        coord_job_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void
coord_worker_list_release(struct coord_worker_list *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void
coord_ledger_list_release(struct coord_ledger_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i].note);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

/* ---- driver helpers ---- */

#define PARAMS(...)                                                                                \
    (const struct db_param[]){__VA_ARGS__},                                                        \
        (int)(sizeof((struct db_param[]){__VA_ARGS__}) / sizeof(struct db_param))

const char *const store_sp_sql[3] = {"SAVEPOINT co_call", "RELEASE SAVEPOINT co_call",
                                     "ROLLBACK TO SAVEPOINT co_call"};

/* Inside a batch: the batch transaction must still be open (else nothing would be atomic). */
static int
batch_alive(struct coord_store *s, co_err *err)
{
    if (s->ops->tx_state(s) == 1)
        return 0;
    return co_err_set(err, CO_E_UNAVAILABLE, "the batch transaction was lost");
}

static int
q_run(struct coord_store *s, enum store_q q, const struct db_param *p, int n, struct db_res *r,
      co_err *err)
{
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->row = -1;
    if (!s->batch || s->in_call)
        return s->ops->query(s, q, p, n, r, err);
    /*
     * A store call that runs a single statement, inside a batch.  Where a failing statement
     * aborts the transaction, it gets a savepoint of its own so that it fails alone (its rows,
     * already fetched, stay readable after the release).
     */
    if (batch_alive(s, err) < 0)
        return -1;
    if (!s->ops->error_aborts_tx)
        return s->ops->query(s, q, p, n, r, err);
    if (s->ops->savepoint(s, STORE_SP_SET, err) < 0)
        return -1;
    if (s->ops->query(s, q, p, n, r, err) < 0) {
        (void)s->ops->savepoint(s, STORE_SP_ROLLBACK, NULL);
        (void)s->ops->savepoint(s, STORE_SP_RELEASE, NULL);
        r->s = NULL;
        return -1;
    }
    if (s->ops->savepoint(s, STORE_SP_RELEASE, err) < 0) {
        s->ops->done(r);
        r->s = NULL;
        return -1;
    }
    return 0;
}

/*
 * The last statement of a store call's own transaction (not inside a batch): on PostgreSQL its
 * COMMIT goes with it (store_ops.query_last), so that the locks it holds are released at once;
 * tx_end's commit then reads the COMMIT's outcome.  Nothing may run after it but tx_end.
 */
static int
q_run_last(struct coord_store *s, enum store_q q, const struct db_param *p, int n, struct db_res *r,
           co_err *err)
{
    if (s->batch || !s->ops->query_last)
        return q_run(s, q, p, n, r, err);
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->row = -1;
    return s->ops->query_last(s, q, p, n, r, err);
}

static int
q_next(struct db_res *r, co_err *err)
{
    return r->s->ops->next(r, err);
}

static void
q_done(struct db_res *r)
{
    if (r->s)
        r->s->ops->done(r);
    r->s = NULL;
}

static int64_t
col_int(struct db_res *r, int c)
{
    return r->s->ops->col_int(r, c);
}

static bool
col_null(struct db_res *r, int c)
{
    return r->s->ops->col_null(r, c);
}

static const char *
col_text(struct db_res *r, int c)
{
    return r->s->ops->col_text(r, c);
}

static char *
col_dup(struct db_res *r, int c)
{
    return col_null(r, c) ? NULL : co_xstrdup(col_text(r, c));
}

static void
col_id(struct db_res *r, int c, char out[CO_ID_MAX + 1])
{
    co_strlcpy(out, col_text(r, c), CO_ID_MAX + 1);
}

/* Run a statement that returns no rows we need; *changes gets the affected row count. */
static int
q_exec(struct coord_store *s, enum store_q q, const struct db_param *p, int n, int64_t *changes,
       co_err *err)
{
    struct db_res r;
    if (q_run(s, q, p, n, &r, err) < 0)
        return -1;
    if (changes)
        *changes = r.changes;
    q_done(&r);
    return 0;
}

/* Run a statement and read the first column of its first row as an integer; *found = row seen. */
static int
q_int(struct coord_store *s, enum store_q q, const struct db_param *p, int n, int64_t *out,
      bool *found, co_err *err)
{
    struct db_res r;
    if (q_run(s, q, p, n, &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0)
        *out = col_int(&r, 0);
    q_done(&r);
    if (rc < 0)
        return -1;
    if (found)
        *found = rc > 0;
    return 0;
}

/* PostgreSQL (else SQLite): for the few statements written differently for one round trip. */
static bool
store_is_pg(const struct coord_store *s)
{
    return strcmp(s->ops->name, "postgres") == 0;
}

/*
 * A store call's transaction: its own, or inside a batch a savepoint of the batch transaction
 * (so that a failing call rolls back only itself).
 */
static int
tx_begin(struct coord_store *s, bool write, co_err *err)
{
    if (!s->batch) {
        s->fault_tx = 0;
        return s->ops->begin(s, write, err);
    }
    if (batch_alive(s, err) < 0 || s->ops->savepoint(s, STORE_SP_SET, err) < 0)
        return -1;
    s->in_call = true;
    return 0;
}

/*
 * COMMIT the open transaction.  DEBUG_FAULTS (coord_fault) may report its reply lost: it was
 * applied, yet the call fails as when the connection breaks right after the server committed.
 */
static int
store_commit(struct coord_store *s, co_err *err)
{
    unsigned kinds = s->fault_tx;
    s->fault_tx = 0;
    if (s->ops->commit(s, err) < 0)
        return -1;
    if (coord_fault_commit_lost(kinds)) {
        if (s->ops->lose_connection)
            s->ops->lose_connection(s);
        return co_err_set(err, CO_E_UNAVAILABLE,
                          "%s: commit: the reply was lost (DEBUG_FAULTS commit_lost)",
                          s->ops->name);
    }
    return 0;
}

/*
 * Commit when @rc is 0 or more (a count, e.g. a claim's 1), else roll back; returns @rc or the
 * commit's failure.
 */
static int
tx_end(struct coord_store *s, int rc, co_err *err)
{
    if (s->batch) {
        s->in_call = false;
        if (rc >= 0 && s->ops->savepoint(s, STORE_SP_RELEASE, err) == 0)
            return rc;
        /* A failure here leaves the batch transaction unusable: its commit then fails. */
        (void)s->ops->savepoint(s, STORE_SP_ROLLBACK, NULL);
        (void)s->ops->savepoint(s, STORE_SP_RELEASE, NULL);
        return -1;
    }
    if (rc < 0) {
        s->ops->rollback(s);
        return rc;
    }
    if (store_commit(s, err) < 0) {
        s->ops->rollback(s);
        return -1;
    }
    return rc;
}

/* tx_end() of a transaction of kind @kind (coord_fault_tx bits; 0: none), for DEBUG_FAULTS. */
static int
tx_end_kind(struct coord_store *s, int rc, unsigned kind, co_err *err)
{
    if (rc >= 0 && coord_fault_armed)
        s->fault_tx |= kind;
    return tx_end(s, rc, err);
}

/* ---- batches ---- */

int
coord_store_batch_begin(struct coord_store *s, co_err *err)
{
    if (s->batch) {
        /* A batch inside a batch (a handler's own batch under coord_idem's): a savepoint. */
        if (s->in_call)
            return co_err_set(err, CO_E_INTERNAL, "a batch inside a store call");
        if (batch_alive(s, err) < 0 || s->ops->savepoint(s, STORE_SP_SET, err) < 0)
            return -1;
        s->batch_depth++;
        return 0;
    }
    s->fault_tx = 0;
    if (s->ops->begin(s, true, err) < 0)
        return -1;
    s->batch = true;
    s->in_call = false;
    return 0;
}

int
coord_store_batch_commit(struct coord_store *s, co_err *err)
{
    if (!s->batch)
        return co_err_set(err, CO_E_INTERNAL, "no batch is open");
    if (s->batch_depth > 0) {
        /* The inner batch's changes join the outer one, committed (or not) with it. */
        s->batch_depth--;
        if (s->ops->savepoint(s, STORE_SP_RELEASE, err) == 0)
            return 0;
        (void)s->ops->savepoint(s, STORE_SP_ROLLBACK, NULL);
        (void)s->ops->savepoint(s, STORE_SP_RELEASE, NULL);
        return -1;
    }
    s->batch = false;
    if (s->ops->tx_state(s) != 1) {
        s->ops->rollback(s);
        return co_err_set(err, CO_E_UNAVAILABLE, "the batch transaction was lost");
    }
    if (store_commit(s, err) < 0) {
        s->ops->rollback(s);
        if (err)
            err->code = CO_E_UNAVAILABLE;
        return -1;
    }
    return 0;
}

void
coord_store_batch_rollback(struct coord_store *s)
{
    if (!s->batch)
        return;
    s->in_call = false;
    if (s->batch_depth > 0) {
        /* Only the inner batch: the outer one goes on without its changes. */
        s->batch_depth--;
        (void)s->ops->savepoint(s, STORE_SP_ROLLBACK, NULL);
        (void)s->ops->savepoint(s, STORE_SP_RELEASE, NULL);
        return;
    }
    s->batch = false;
    s->ops->rollback(s);
}

/* ---- open, close, migrate ---- */

static int
ensure_parent_dir(const char *path, co_err *err)
{
    co_autofree char *dir = co_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    /* Create each missing component, like mkdir -p. */
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
            return co_err_sys(err, errno, "cannot create directory '%s'", dir);
        *p = '/';
    }
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return co_err_sys(err, errno, "cannot create directory '%s'", dir);
    return 0;
}

const char *
coord_store_sqlite_path(const char *url)
{
    if (!url || !*url)
        url = "sqlite:///var/cacheout.db";
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return NULL;
    if (strncmp(url, "sqlite:///", 10) == 0)
        return url + 10; /* "sqlite:////abs" leaves "/abs", "sqlite:///rel" leaves "rel" */
    if (strncmp(url, "sqlite:", 7) == 0 || strstr(url, "://"))
        return NULL;
    return url;
}

int
coord_store_open(const struct coord_store_config *cfg, struct coord_store **out, co_err *err)
{
    const char *url = cfg->url && *cfg->url ? cfg->url : "sqlite:///var/cacheout.db";
    struct coord_store *s = NULL;
    int rc;

    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        rc = store_pg_open(url, cfg->node_id, &s, err);
    } else {
        const char *path = coord_store_sqlite_path(url);
        if (!path)
            /* Only the scheme: the rest may hold a password. */
            return co_err_set(err, CO_E_INVAL,
                              "unsupported DATABASE_URL scheme '%.*s': expected sqlite:///path or "
                              "postgresql://...",
                              (int)strcspn(url, ":"), url);
        if (!*path)
            return co_err_set(err, CO_E_INVAL, "no file name in DATABASE_URL '%s'", url);
        if (ensure_parent_dir(path, err) < 0)
            return -1;
        rc = store_sqlite_open(path, &s, err);
    }
    if (rc < 0)
        return -1;
    s->url = co_xstrdup(url);
    s->cfg = *cfg;
    s->cfg.url = s->url;
    if (s->cfg.output_cap_bytes <= 0)
        s->cfg.output_cap_bytes = 1024 * 1024;
    if (s->cfg.worker_timeout_ms <= 0)
        s->cfg.worker_timeout_ms = 60 * 1000;
    *out = s;
    return 0;
}

void
coord_store_close(struct coord_store *s)
{
    if (!s)
        return;
    char *url = s->url;
    s->ops->close(s);
    free(url);
}

const char *
coord_store_backend(const struct coord_store *s)
{
    return s->ops->name;
}

int
coord_store_ping(struct coord_store *s, co_err *err)
{
    int64_t one = 0;
    return q_int(s, Q_PING, NULL, 0, &one, NULL, err);
}

struct migration {
    long version;
    char *name;
    char *path;      /* the file under SQL_DIR, NULL for a compiled-in one */
    const char *sql; /* the compiled-in text (store_migrations.h), NULL for a file */
};

static int
migration_cmp(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static void
migrations_free(struct migration *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].path);
    }
    free(m);
}

/*
 * Append migration @name (a file name; @path or @sql says where its text is) to @m, checking
 * the NNNN_name.sql form and that its number is new; @where names the source in errors.
 */
static int
migrations_add(struct migration **m, size_t *n, const char *where, const char *name,
               const char *path, const char *sql, co_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(name, &end, 10);
    if (end == name || *end != '_' || v <= 0 || errno)
        return co_err_set(err, CO_E_INVAL,
                          "bad migration file name '%s/%s': expected NNNN_name.sql", where, name);
    for (size_t i = 0; i < *n; i++) {
        if ((*m)[i].version == v)
            return co_err_set(err, CO_E_INVAL, "two migrations numbered %ld in '%s'", v, where);
    }
    *m = co_xreallocarray(*m, *n + 1, sizeof(**m));
    (*m)[*n] = (struct migration){
        .version = v,
        .name = co_xstrdup(name),
        .path = path ? co_xasprintf("%s/%s", path, name) : NULL,
        .sql = sql,
    };
    (*n)++;
    return 0;
}

/* List NNNN_name.sql files of @dir in version order. */
static int
migrations_scan(const char *dir, struct migration **out, size_t *n_out, co_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return co_err_sys(err, errno, "cannot open migrations directory '%s'", dir);
    struct migration *m = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, ".sql") != 0)
            continue;
        if (migrations_add(&m, &n, dir, name, dir, NULL, err) < 0) {
            closedir(d);
            migrations_free(m, n);
            return -1;
        }
    }
    closedir(d);
    if (n)
        qsort(m, n, sizeof(*m), migration_cmp);
    *out = m;
    *n_out = n;
    return 0;
}

/* The compiled-in migrations of @backend in version order. */
static int
migrations_builtin(const char *backend, struct migration **out, size_t *n_out, co_err *err)
{
    co_autofree char *where = co_xasprintf("built-in sql/%s", backend);
    struct migration *m = NULL;
    size_t n = 0;
    for (const struct store_migration *b = store_migrations; b->backend; b++) {
        if (strcmp(b->backend, backend) != 0)
            continue;
        if (migrations_add(&m, &n, where, b->name, NULL, b->sql, err) < 0) {
            migrations_free(m, n);
            return -1;
        }
    }
    if (n)
        qsort(m, n, sizeof(*m), migration_cmp);
    *out = m;
    *n_out = n;
    return 0;
}

static int
read_file(const char *path, char **out, co_err *err)
{
    co_autofclose FILE *f = fopen(path, "re");
    if (!f)
        return co_err_sys(err, errno, "cannot open '%s'", path);
    struct co_buf b = CO_BUF_INIT;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        co_buf_append(&b, chunk, got);
    if (ferror(f)) {
        co_buf_release(&b);
        return co_err_sys(err, EIO, "cannot read '%s'", path);
    }
    *out = co_buf_steal(&b, NULL);
    return 0;
}

static const char migrations_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
    "name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/* Apply @m unless recorded; one transaction, serialized with other coordinators. */
static int
migration_apply(struct coord_store *s, const struct migration *m, long highest, bool *applied,
                co_err *err)
{
    co_autofree char *sql = NULL;
    int64_t v = 0;
    bool found = false;
    int rc = -1;

    *applied = false;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(s, Q_MIG_LOCK, NULL, 0, NULL, err) < 0)
        goto out;
    if (s->ops->exec_script(s, migrations_table, err) < 0)
        goto out;
    if (q_int(s, Q_MIG_MAX, NULL, 0, &v, NULL, err) < 0)
        goto out;
    if (v > highest) {
        co_err_set(err, CO_E_CONFLICT,
                   "database schema version %lld is newer than this coordinator knows (%ld): "
                   "upgrade the coordinator",
                   (long long)v, highest);
        goto out;
    }
    if (q_int(s, Q_MIG_HAS, PARAMS(P_INT(m->version)), &v, &found, err) < 0)
        goto out;
    if (found) {
        rc = 0;
        goto out;
    }
    if (m->path && read_file(m->path, &sql, err) < 0)
        goto out;
    if (s->ops->exec_script(s, m->path ? sql : m->sql, err) < 0) {
        co_err_wrap(err, "migration '%s'", m->path ? m->path : m->name);
        goto out;
    }
    if (q_exec(s, Q_MIG_INSERT, PARAMS(P_INT(m->version), P_TEXT(m->name), P_INT(co_wall_ms())),
               NULL, err) < 0)
        goto out;
    *applied = true;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_migrate(struct coord_store *s, const char *sql_dir, co_err *err)
{
    co_autofree char *dir = sql_dir ? co_xasprintf("%s/%s", sql_dir, s->ops->name)
                                    : co_xasprintf("built-in sql/%s", s->ops->name);
    struct migration *m = NULL;
    size_t n = 0;
    int rc = -1;

    if (sql_dir ? migrations_scan(dir, &m, &n, err) < 0
                : migrations_builtin(s->ops->name, &m, &n, err) < 0)
        return -1;
    if (n == 0) {
        migrations_free(m, n);
        return co_err_set(err, CO_E_INVAL, "no migrations in '%s'", dir);
    }
    long highest = m[n - 1].version;
    for (size_t i = 0; i < n; i++) {
        bool applied;
        if (migration_apply(s, &m[i], highest, &applied, err) < 0)
            goto out;
    }
    rc = 0;
out:
    migrations_free(m, n);
    return rc;
}

/* ---- rows ---- */

static void
job_from_row(struct db_res *r, struct coord_job *j)
{
    memset(j, 0, sizeof(*j));
    col_id(r, 0, j->job_id);
    j->title = co_xstrdup(col_text(r, 1));
    j->description = co_xstrdup(col_text(r, 2));
    j->code_file = col_dup(r, 3);
    j->command = co_xstrdup(col_text(r, 4));
    j->parameters = co_xstrdup(col_text(r, 5));
    j->image = co_xstrdup(col_text(r, 6));
    col_id(r, 7, j->buyer_id);
    col_id(r, 8, j->assigned_worker);
    int st = coord_job_status_parse(col_text(r, 9));
    j->status = st < 0 ? COORD_JOB_FAILED : (enum coord_job_status)st;
    int f = col_null(r, 10) ? 0 : coord_failure_parse(col_text(r, 10));
    j->failure = f < 0 ? COORD_FAIL_NONE : (enum coord_failure)f;
    j->cost = col_int(r, 11);
    j->required_cores = col_int(r, 12);
    j->required_ram_mb = col_int(r, 13);
    j->priority = (int)col_int(r, 14);
    j->timeout_seconds = col_int(r, 15);
    j->attempts = (int)col_int(r, 16);
    j->max_attempts = (int)col_int(r, 17);
    j->has_exit_code = !col_null(r, 18);
    j->exit_code = j->has_exit_code ? (int)col_int(r, 18) : 0;
    j->has_usage = !col_null(r, 19);
    if (j->has_usage) {
        j->usage.wall_ms = col_int(r, 19);
        j->usage.cpu_ms = col_int(r, 20);
        j->usage.max_rss_kb = col_int(r, 21);
    }
    j->created_at = col_int(r, 22);
    j->assigned_at = col_int(r, 23);
    j->started_at = col_int(r, 24);
    j->completed_at = col_int(r, 25);
    int pr = coord_pricing_parse(col_text(r, 26));
    j->pricing = pr < 0 ? COORD_PRICING_FLAT : (enum coord_pricing)pr;
    j->rate.per_core_second = col_int(r, 27);
    j->rate.per_gb_second = col_int(r, 28);
    j->max_rate.per_core_second = col_int(r, 29);
    j->max_rate.per_gb_second = col_int(r, 30);
    j->min_reputation = col_int(r, 31);
    j->has_charged = !col_null(r, 32);
    j->charged = j->has_charged ? col_int(r, 32) : 0;
    j->replicas = (int)col_int(r, 33);
    col_id(r, 34, j->parent_job_id);
    j->code = col_dup(r, JOB_COL_CODE);
    j->files = col_dup(r, JOB_COL_CODE + 1);
}

static void
worker_from_row(struct db_res *r, struct coord_worker *w)
{
    memset(w, 0, sizeof(*w));
    col_id(r, 0, w->worker_id);
    col_id(r, 1, w->owner_id);
    w->cpu_cores = col_int(r, 2);
    w->ram_mb = col_int(r, 3);
    w->used_cores = col_int(r, 4);
    w->used_ram_mb = col_int(r, 5);
    w->running_jobs = col_int(r, 6);
    int st = coord_worker_status_parse(col_text(r, 7));
    w->status = st < 0 ? COORD_WORKER_OFFLINE : (enum coord_worker_status)st;
    w->websocket = col_int(r, 8) != 0;
    w->last_heartbeat = col_int(r, 9);
    w->created_at = col_int(r, 10);
    w->updated_at = col_int(r, 11);
    w->price.per_core_second = col_int(r, 12);
    w->price.per_gb_second = col_int(r, 13);
    w->reputation = col_int(r, 14);
    w->owner_reputation = col_int(r, 15);
}

/* Load one job (*found false when absent). */
static int
job_load(struct coord_store *s, enum store_q q, const char *job_id, struct coord_job *out,
         bool *found, co_err *err)
{
    struct db_res r;
    if (q_run(s, q, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0)
        job_from_row(&r, out);
    q_done(&r);
    if (rc < 0)
        return -1;
    *found = rc > 0;
    return 0;
}

static int
job_load_must(struct coord_store *s, enum store_q q, const char *job_id, struct coord_job *out,
              co_err *err)
{
    bool found;
    if (job_load(s, q, job_id, out, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such job '%s'", job_id);
    return 0;
}

/* Fills one list item (zeroed) from the current row. */
typedef void (*row_fn)(struct db_res *r, void *item);
/* Frees what one list item owns (NULL: nothing). */
typedef void (*item_release_fn)(void *item);

/*
 * Run @q and turn every row into an item of @size bytes with @from_row.  On success *@items (a
 * caller-owned array, NULL when empty) and *@len are set; on error nothing is returned and what
 * was read is freed.
 */
static int
rows_load(struct coord_store *s, enum store_q q, const struct db_param *p, int n, size_t size,
          row_fn from_row, item_release_fn release, void **items, size_t *len, co_err *err)
{
    struct db_res r;
    char *arr = NULL;
    size_t cap = 0, count = 0;
    int rc;

    if (q_run(s, q, p, n, &r, err) < 0)
        return -1;
    while ((rc = q_next(&r, err)) > 0) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            arr = co_xreallocarray(arr, cap, size);
        }
        void *item = arr + count++ * size;
        memset(item, 0, size);
        from_row(&r, item);
    }
    q_done(&r);
    if (rc < 0) {
        for (size_t i = 0; release != NULL && i < count; i++)
            release(arr + i * size);
        free(arr);
        return -1;
    }
    *items = arr;
    *len = count;
    return 0;
}

static void
job_row(struct db_res *r, void *item)
{
    job_from_row(r, item);
}

static void
job_item_release(void *item)
{
    coord_job_release(item);
}

static int
jobs_load(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
          struct coord_job_list *out, co_err *err)
{
    void *items;
    size_t len;
    if (rows_load(s, q, p, n, sizeof(struct coord_job), job_row, job_item_release, &items, &len,
                  err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

static void
worker_row(struct db_res *r, void *item)
{
    worker_from_row(r, item);
}

static int
workers_load(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
             struct coord_worker_list *out, co_err *err)
{
    void *items;
    size_t len;
    if (rows_load(s, q, p, n, sizeof(struct coord_worker), worker_row, NULL, &items, &len, err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

static int
worker_load_q(struct coord_store *s, enum store_q q, const char *worker_id,
              struct coord_worker *out, bool *found, co_err *err)
{
    struct db_res r;
    if (q_run(s, q, PARAMS(P_TEXT(worker_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0)
        worker_from_row(&r, out);
    q_done(&r);
    if (rc < 0)
        return -1;
    *found = rc > 0;
    return 0;
}

static int
worker_load(struct coord_store *s, const char *worker_id, struct coord_worker *out, bool *found,
            co_err *err)
{
    return worker_load_q(s, Q_WORKER_GET, worker_id, out, found, err);
}

static int
user_load(struct coord_store *s, const char *user_id, struct coord_user *out, bool *found,
          co_err *err)
{
    struct db_res r;
    if (q_run(s, Q_USER_GET, PARAMS(P_TEXT(user_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0) {
        memset(out, 0, sizeof(*out));
        col_id(&r, 0, out->user_id);
        out->credits = col_int(&r, 1);
        out->held = col_int(&r, 2);
        out->created_at = col_int(&r, 3);
        out->updated_at = col_int(&r, 4);
    }
    q_done(&r);
    if (rc < 0)
        return -1;
    *found = rc > 0;
    return 0;
}

/* A list's limit (1-1000) and offset (>= 0); CO_E_RANGE otherwise. */
static int
paging_check(int64_t limit, int64_t offset, co_err *err)
{
    if (limit < 1 || limit > 1000 || offset < 0)
        return co_err_field(err, CO_E_RANGE, "limit", "limit %lld or offset %lld out of range",
                            (long long)limit, (long long)offset);
    return 0;
}

/* ---- money ---- */

/*
 * Change a user's available credits by @d_credits and held credits by @d_held and write the
 * ledger row.  CO_E_FUNDS when the change would make either negative.
 */
static int
money_move(struct coord_store *s, const char *user_id, const char *job_id,
           enum coord_ledger_kind kind, int64_t d_credits, int64_t d_held, const char *note,
           int64_t now, co_err *err)
{
    int64_t balance = 0;
    bool found = false;
    bool pg = store_is_pg(s);
    const char *kname = coord_ledger_kind_name(kind);
    int rc = pg ? q_int(s, Q_MONEY_MOVE_PG,
                        PARAMS(P_TEXT(user_id), P_TEXT(job_id), P_TEXT(kname), P_INT(d_credits),
                               P_INT(d_held), P_TEXT(note), P_INT(now)),
                        &balance, &found, err)
                : q_int(s, Q_USER_ADD,
                        PARAMS(P_TEXT(user_id), P_INT(d_credits), P_INT(d_held), P_INT(now)),
                        &balance, &found, err);
    if (rc == 0 && !found) {
        struct coord_user u;
        bool exists = false;
        if (user_load(s, user_id, &u, &exists, err) < 0)
            return -1;
        if (!exists)
            return co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
        if (kind == COORD_LEDGER_HOLD)
            return co_err_set(err, CO_E_FUNDS,
                              "insufficient credits: user '%s' has %lld micro-credits, the job "
                              "costs %lld",
                              user_id, (long long)u.credits, (long long)-d_credits);
        return co_err_set(err, CO_E_INTERNAL,
                          "ledger %s for user '%s' job '%s' would make a balance negative", kname,
                          user_id, job_id ? job_id : "");
    }
    /* PostgreSQL: the ledger row went with the update. */
    if (rc == 0 && !pg)
        rc = q_exec(s, Q_LEDGER_INSERT,
                    PARAMS(P_TEXT(user_id), P_TEXT(job_id), P_TEXT(kname), P_INT(d_credits),
                           P_INT(d_held), P_INT(balance), P_TEXT(note), P_INT(now)),
                    NULL, err);
    if (rc < 0 && err && err->code == CO_E_CONFLICT)
        co_err_wrap(err, "ledger %s for job '%s' already recorded", kname, job_id ? job_id : "");
    return rc < 0 ? -1 : 0;
}

/*
 * Create @user_id if unknown, with the starting credits (a grant row).  Every user gets them,
 * whichever way it first appears (buyer, grant, payout to a worker's owner), so that a seller who
 * later buys is treated like any other buyer.
 */
static int
user_ensure(struct coord_store *s, const char *user_id, bool is_worker, int64_t now, co_err *err)
{
    bool created = false;
    struct db_res r;
    if (q_run(s, Q_USER_INSERT, PARAMS(P_TEXT(user_id), P_INT(is_worker), P_INT(now)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    created = rc > 0;
    q_done(&r);
    if (rc < 0)
        return -1;
    if (created && s->cfg.starting_credits > 0)
        return money_move(s, user_id, NULL, COORD_LEDGER_GRANT, s->cfg.starting_credits, 0,
                          "starting credits", now, err);
    return 0;
}

static int
user_lock(struct coord_store *s, const char *user_id, co_err *err)
{
    return q_exec(s, Q_USER_LOCK, PARAMS(P_TEXT(user_id)), NULL, err);
}

/* The stored owner of @worker_id into @owner ("" and *@found false when unknown). */
static int
worker_owner(struct coord_store *s, const char *worker_id, char owner[CO_ID_MAX + 1], bool *found,
             co_err *err)
{
    struct db_res r;
    *owner = '\0';
    if (q_run(s, Q_WORKER_OWNER, PARAMS(P_TEXT(worker_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0)
        col_id(&r, 0, owner);
    q_done(&r);
    *found = rc > 0;
    return rc < 0 ? -1 : 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lock @user_id's row; *@found says whether it exists. */
static int
user_lock_found(struct coord_store *s, const char *user_id, bool *found, co_err *err)
{
    struct db_res r;
    if (q_run(s, Q_USER_LOCK, PARAMS(P_TEXT(user_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    q_done(&r);
    *found = rc > 0;
    return rc < 0 ? -1 : 0;
}

/*
 * Lock @n users in user_id order (duplicates once), so that settlements never wait in a cycle,
 * in one statement (Q_USERS_LOCK).  A user named in @workers (NULL-terminated, may be NULL: the
 * paid owners, created as sellers) or @plain (may be NULL: the fee's user) that does not exist
 * yet is created (user_ensure) and then locked.  Creating only the missing ones after the lock,
 * rather than trying an insert first, keeps the insert from waiting on the transactions that hold
 * the row (a settlement of the same owner).  Every transaction that goes through here takes all its
 * locks before it creates anyone, and creates the missing in id order: an insert waits only on
 * another transaction's insert of the same id, which waits on nothing but inserts of higher ids.
 */
static int
users_lock_sorted_ensure(struct coord_store *s, const char **ids, size_t n,
                         const char *const *workers, const char *plain, int64_t now, co_err *err)
{
    struct co_buf json = CO_BUF_INIT;
    struct co_jsonw w;
    struct db_res r;
    size_t m = 0;
    int rc = -1;

    qsort(ids, n, sizeof(*ids), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(ids[i - 1], ids[i]) != 0)
            ids[m++] = ids[i];
    }
    co_autofree bool *found = co_xcalloc(m + 1, sizeof(*found));
    co_jsonw_init(&w, &json);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < m; i++)
        co_jsonw_str(&w, ids[i]);
    co_jsonw_arr_end(&w);
    if (q_run(s, Q_USERS_LOCK, PARAMS(P_TEXT(json.data)), &r, err) < 0)
        goto out;
    int got;
    size_t at = 0;
    while ((got = q_next(&r, err)) > 0) {
        const char *u = col_text(&r, 0); /* in the order of @ids */
        while (at < m && strcmp(ids[at], u) < 0)
            at++;
        if (at < m && strcmp(ids[at], u) == 0)
            found[at] = true;
    }
    q_done(&r);
    if (got < 0)
        goto out;
    for (size_t i = 0; i < m; i++) {
        if (found[i])
            continue;
        bool worker = false;
        for (size_t k = 0; workers && workers[k] && !worker; k++)
            worker = strcmp(workers[k], ids[i]) == 0;
        if (!worker && (!plain || strcmp(plain, ids[i]) != 0))
            continue;
        if (user_ensure(s, ids[i], worker, now, err) < 0 ||
            user_lock_found(s, ids[i], &found[i], err) < 0)
            goto out;
    }
    rc = 0;
out:
    co_buf_release(&json);
    return rc;
}

static int
users_lock_sorted(struct coord_store *s, const char **ids, size_t n, co_err *err)
{
    return users_lock_sorted_ensure(s, ids, n, NULL, NULL, 0, err);
}

/* How a job ended, for its settlement. */
struct settle_end {
    bool refund_all; /* not run: everything back to the buyer */
    bool timed_out;  /* charged every second of timeout_seconds */
    int64_t wall_ms; /* wall time used */
    const char *why; /* the refund's note */
};

/* A replicated job and its replicas settle by the plan coord_verify decides. */
static bool
settle_by_verify(const struct coord_job *j)
{
    return j->replicas > 1 || j->parent_job_id[0];
}

/* The amounts of @j's settlement (coord_price, every pricing mode). */
static void
settle_plan(const struct coord_store *s, const struct coord_job *j, const struct settle_end *e,
            struct coord_settlement *st)
{
    struct coord_price_job pj = {
        .pricing = j->pricing,
        .hold = j->cost,
        .rate = j->rate,
        .cores = j->required_cores,
        .ram_mb = j->required_ram_mb,
        .timeout_seconds = j->timeout_seconds,
        .wall_ms = e->wall_ms,
        .timed_out = e->timed_out,
        .refund_all = e->refund_all,
    };
    coord_price_settle(&pj, s->cfg.fee_percent, st);
}

/*
 * Settle @j's hold through coord_price (every pricing mode): charge, refund of the rest, payout
 * to the owner of the worker that ran it (as stored, never as declared), fee to the platform.
 * One ledger row per movement.  `charged` was recorded on the job with its final status
 * (job_end), before the users are locked: that first update of the job row in the transaction
 * leaves its foreign keys unchecked on PostgreSQL (a second update checked them again, with a
 * key-share lock on the buyer).
 */
static int
settle(struct coord_store *s, const struct coord_job *j, const struct settle_end *e, int64_t now,
       co_err *err)
{
    if (settle_by_verify(j))
        return coord_verify_settle(s, j, !e->refund_all, now, err);
    struct coord_settlement st;
    settle_plan(s, j, e, &st);
    if (e->refund_all)
        return money_move(s, j->buyer_id, j->job_id, COORD_LEDGER_REFUND, j->cost, -j->cost, e->why,
                          now, err);

    char owner[CO_ID_MAX + 1];
    bool found;
    const char *fee_user = s->cfg.fee_user ? s->cfg.fee_user : "platform";
    if (worker_owner(s, j->assigned_worker, owner, &found, err) < 0)
        return -1;
    if (!*owner)
        co_strlcpy(owner, j->assigned_worker, sizeof(owner));
    if (!*owner)
        return co_err_set(err, CO_E_INTERNAL, "job '%s' has no worker to pay", j->job_id);
    const char *ids[3] = {j->buyer_id, owner, fee_user};
    const char *const workers[2] = {owner, NULL};
    if (users_lock_sorted_ensure(s, ids, st.fee > 0 ? 3 : 2, workers, st.fee > 0 ? fee_user : NULL,
                                 now, err) < 0)
        return -1;
    if (money_move(s, j->buyer_id, j->job_id, COORD_LEDGER_CHARGE, 0, -st.charge, "job settled",
                   now, err) < 0 ||
        (st.refund > 0 && money_move(s, j->buyer_id, j->job_id, COORD_LEDGER_REFUND, st.refund,
                                     -st.refund, "unused time", now, err) < 0) ||
        money_move(s, owner, j->job_id, COORD_LEDGER_PAYOUT, st.payout, 0, "job payout", now, err) <
            0 ||
        (st.fee > 0 && money_move(s, fee_user, j->job_id, COORD_LEDGER_FEE, st.fee, 0,
                                  "platform fee", now, err) < 0))
        return -1;
    return 0;
}

/* The wall time of @j so far, from the coordinator's clock (no usage reported). */
static int64_t
job_wall_ms(const struct coord_job *j, int64_t now)
{
    int64_t from = j->started_at ? j->started_at : j->assigned_at;
    return from && now > from ? now - from : 0;
}

/*
 * Record an outcome inside the caller's transaction; an unknown worker records nothing.  The
 * worker's reputation is updated there too, unless @found is given: the caller then updates it
 * (outcome_repute) once its transaction committed, when *@found says an outcome was recorded.
 */
static int
outcome_record(struct coord_store *s, const char *worker_id, const char *job_id,
               enum coord_outcome o, int64_t now, bool *found_out, co_err *err)
{
    bool found = false;
    char owner[CO_ID_MAX + 1];
    struct db_res r;
    if (found_out)
        *found_out = false;
    if (!worker_id || !*worker_id)
        return 0;
    if (q_run(s, Q_OUTCOME_INSERT,
              PARAMS(P_TEXT(worker_id), P_TEXT(job_id), P_TEXT(coord_outcome_name(o)), P_INT(now)),
              &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0)
        col_id(&r, 0, owner);
    q_done(&r);
    if (rc < 0)
        return -1;
    found = rc > 0;
    if (!found)
        return 0;
    if (found_out) {
        *found_out = true;
        return 0;
    }
    return q_exec(s, Q_WORKER_REPUTE, PARAMS(P_TEXT(worker_id)), NULL, err);
}

static int
outcome_note(struct coord_store *s, const char *worker_id, const char *job_id, enum coord_outcome o,
             int64_t now, co_err *err)
{
    return outcome_record(s, worker_id, job_id, o, now, NULL, err);
}

/*
 * Workers whose reputation update was skipped (outcome_repute), in this process, for
 * coord_store_worker_repute_pending.  At most REPUTE_PENDING_MAX: past that a worker's score
 * waits for its next outcome.
 */
#define REPUTE_PENDING_MAX 4096
static pthread_mutex_t repute_mu = PTHREAD_MUTEX_INITIALIZER;
static char (*repute_pending)[CO_ID_MAX + 1];
static size_t repute_pending_n;

static void
repute_pending_add(const char *worker_id)
{
    pthread_mutex_lock(&repute_mu);
    bool known = false;
    for (size_t i = 0; i < repute_pending_n && !known; i++)
        known = strcmp(repute_pending[i], worker_id) == 0;
    if (!known && repute_pending_n < REPUTE_PENDING_MAX) {
        if (!repute_pending)
            repute_pending = co_xcalloc(REPUTE_PENDING_MAX, sizeof(*repute_pending));
        co_strlcpy(repute_pending[repute_pending_n++], worker_id, CO_ID_MAX + 1);
    }
    pthread_mutex_unlock(&repute_mu);
}

/*
 * The reputation of @worker_id from its outcomes, in a statement of its own after the
 * transaction that recorded one committed (a finish): the settlement does not hold the worker's
 * row, and this statement does not wait for it either: when a claim holds it (PostgreSQL), the
 * worker is remembered and the lease tick updates it (coord_store_worker_repute_pending), within
 * a second.  A failure changes nothing that was committed (the score is derived from the
 * outcomes, and the next outcome recomputes it): logged.
 */
static void
outcome_repute(struct coord_store *s, const char *worker_id)
{
    co_err err = CO_ERR_INIT;
    int64_t changes = 0;
    if (q_exec(s, Q_WORKER_REPUTE_TRY, PARAMS(P_TEXT(worker_id)), &changes, &err) < 0)
        co_warn("worker reputation not updated worker=%s error=\"%s\"", worker_id, err.msg);
    else if (changes == 0 && store_is_pg(s))
        repute_pending_add(worker_id);
}

int
coord_store_worker_repute_pending(struct coord_store *s, co_err *err)
{
    pthread_mutex_lock(&repute_mu);
    size_t n = repute_pending_n;
    char(*ids)[CO_ID_MAX + 1] = NULL;
    if (n) {
        ids = co_xcalloc(n, sizeof(*ids));
        memcpy(ids, repute_pending, n * sizeof(*ids));
        repute_pending_n = 0;
    }
    pthread_mutex_unlock(&repute_mu);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && q_exec(s, Q_WORKER_REPUTE, PARAMS(P_TEXT(ids[i])), NULL, err) < 0)
            rc = -1;
        if (rc < 0)
            repute_pending_add(ids[i]); /* kept for the next tick */
    }
    free(ids);
    return rc;
}

/* ---- jobs ---- */

/* The job's callback, waiting for its final status (coord_webhook.h). */
static int
webhook_insert(struct coord_store *s, const struct coord_job *job, int64_t now, co_err *err)
{
    char uuid[CO_UUID_STRLEN + 1];
    const char *id = uuid;
    co_uuid4(uuid);
    return q_exec(s, Q_WH_INSERT,
                  PARAMS(P_TEXT(id), P_TEXT(job->job_id), P_TEXT(job->callback_url), P_INT(now)),
                  NULL, err);
}

int
coord_store_job_submit(struct coord_store *s, struct coord_job *job, co_err *err)
{
    return coord_store_job_submit_capped(s, job, 0, err);
}

int
coord_store_job_submit_capped(struct coord_store *s, struct coord_job *job, int64_t max_pending,
                              co_err *err)
{
    if (!co_id_valid(job->job_id))
        return co_err_field(err, CO_E_INVAL, "job_id", "invalid job id '%s'", job->job_id);
    if (!co_id_valid(job->buyer_id))
        return co_err_field(err, CO_E_INVAL, "buyer_id", "invalid buyer id '%s'", job->buyer_id);
    if (!job->title || !job->command)
        return co_err_set(err, CO_E_INVAL, "job '%s' lacks a title or a command", job->job_id);
    if (job->cost < 0 || job->required_cores < 1 || job->required_ram_mb < 1 || job->priority < 1 ||
        job->priority > 10 || job->max_attempts < 1)
        return co_err_set(err, CO_E_INVAL, "job '%s' has out-of-range numbers", job->job_id);

    int64_t now = co_wall_ms();
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    /* A known buyer (the usual case) is read, not offered an insert that would do nothing. */
    struct coord_user buyer;
    bool known = false;
    if (user_load(s, job->buyer_id, &buyer, &known, err) < 0 ||
        (!known && user_ensure(s, job->buyer_id, false, now, err) < 0))
        goto out;
    if (max_pending > 0) {
        /* The buyer's row lock serializes its submits, so the count cannot be raced past. */
        int64_t pending = 0;
        if (user_lock(s, job->buyer_id, err) < 0 ||
            q_int(s, Q_JOB_PENDING_OF, PARAMS(P_TEXT(job->buyer_id)), &pending, NULL, err) < 0)
            goto out;
        if (pending >= max_pending) {
            co_err_set(err, CO_E_LIMIT,
                       "quota exceeded: buyer '%s' has %lld pending jobs (max_pending_jobs %lld)",
                       job->buyer_id, (long long)pending, (long long)max_pending);
            goto out;
        }
    }
    if (q_exec(s, Q_JOB_INSERT,
               PARAMS(P_TEXT(job->job_id), P_TEXT(job->title),
                      P_TEXT(job->description ? job->description : ""), P_TEXT(job->code),
                      P_TEXT(job->code_file), P_TEXT(job->command),
                      P_TEXT(job->parameters ? job->parameters : "{}"),
                      P_TEXT(job->image ? job->image : "default"), P_TEXT(job->buyer_id),
                      P_INT(job->cost), P_INT(job->required_cores), P_INT(job->required_ram_mb),
                      P_INT(job->priority), P_INT(job->timeout_seconds), P_INT(job->max_attempts),
                      P_INT(now), P_TEXT(job->files), P_TEXT(coord_pricing_name(job->pricing)),
                      P_INT(job->rate.per_core_second), P_INT(job->rate.per_gb_second),
                      P_INT(job->max_rate.per_core_second), P_INT(job->max_rate.per_gb_second),
                      P_INT(job->min_reputation)),
               NULL, err) < 0) {
        if (err && err->code == CO_E_CONFLICT)
            co_err_set(err, CO_E_CONFLICT, "job '%s' already exists", job->job_id);
        goto out;
    }
    if (money_move(s, job->buyer_id, job->job_id, COORD_LEDGER_HOLD, -job->cost, job->cost,
                   "job submitted", now, err) < 0)
        goto out;
    if (job->replicas > 1 && coord_verify_spawn(s, job, err) < 0)
        goto out;
    if (job->callback_url && webhook_insert(s, job, now, err) < 0)
        goto out;
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc == 0) {
        job->created_at = now;
        job->status = COORD_JOB_PENDING;
        job->attempts = 0;
        job->assigned_worker[0] = '\0';
    }
    return rc;
}

int
coord_store_job_get(struct coord_store *s, const char *job_id, bool with_code,
                    struct coord_job *out, co_err *err)
{
    if (job_load_must(s, with_code ? Q_JOB_GET : Q_JOB_GET_NOCODE, job_id, out, err) < 0)
        return -1;
    if (out->replicas > 1 && coord_verify_load_view(s, out, err) < 0) {
        coord_job_release(out);
        return -1;
    }
    return 0;
}

int
coord_store_job_list(struct coord_store *s, const struct coord_job_filter *f,
                     struct coord_job_list *out, co_err *err)
{
    if (f->limit < 1 || f->limit > 1000)
        return co_err_field(err, CO_E_RANGE, "limit", "limit %lld outside 1-1000",
                            (long long)f->limit);
    if (f->offset < 0)
        return co_err_field(err, CO_E_RANGE, "offset", "negative offset %lld",
                            (long long)f->offset);
    const char *st = f->status < 0 ? NULL : coord_job_status_name(f->status);
    if (jobs_load(s, f->with_code ? Q_JOB_LIST_CODE : Q_JOB_LIST,
                  PARAMS(P_TEXT(st), P_TEXT(f->buyer_id), P_TEXT(f->worker_id), P_INT(f->limit),
                         P_INT(f->offset)),
                  out, err) < 0)
        return -1;
    for (size_t i = 0; i < out->len; i++) {
        if (out->items[i].replicas > 1 && coord_verify_load_view(s, &out->items[i], err) < 0) {
            coord_job_list_release(out);
            return -1;
        }
    }
    return 0;
}

int
coord_store_job_pending(struct coord_store *s, int64_t limit, struct coord_job_list *out,
                        co_err *err)
{
    return jobs_load(s, Q_JOB_PENDING, PARAMS(P_INT(limit > 0 ? limit : 1)), out, err);
}

static int
pending_fit_load(struct coord_store *s, int64_t limit, const struct coord_job_fit *fit,
                 const char *held_json, struct coord_job_list *out, co_err *err)
{
    return jobs_load(s, Q_JOB_PENDING_FIT,
                     PARAMS(P_INT(limit > 0 ? limit : 1), P_INT(fit->max_cores),
                            P_INT(fit->max_ram_mb), P_TEXT(fit->images_json), P_TEXT(held_json)),
                     out, err);
}

int
coord_store_job_pending_fit(struct coord_store *s, int64_t limit, const struct coord_job_fit *fit,
                            struct coord_job_list *out, co_err *err)
{
    return pending_fit_load(s, limit, fit, "[]", out, err);
}

static void
buyer_cap_row(struct db_res *r, void *item)
{
    struct coord_buyer_cap *c = item;
    col_id(r, 0, c->buyer_id);
    c->running = col_int(r, 1);
    c->cap = col_int(r, 2);
}

/* Load buyer caps with @q into @l (appended), keeping only buyers that have one. */
static int
buyer_caps_load(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
                struct coord_buyer_cap_list *l, co_err *err)
{
    void *items;
    size_t len;
    if (rows_load(s, q, p, n, sizeof(struct coord_buyer_cap), buyer_cap_row, NULL, &items, &len,
                  err) < 0)
        return -1;
    struct coord_buyer_cap *c = items;
    l->items = co_xreallocarray(l->items, l->len + len + 1, sizeof(*l->items));
    for (size_t i = 0; i < len; i++) {
        if (c[i].cap > 0)
            l->items[l->len++] = c[i];
    }
    free(items);
    return 0;
}

static bool
buyer_caps_has(const struct coord_buyer_cap_list *l, const char *buyer_id)
{
    for (size_t i = 0; i < l->len; i++) {
        if (strcmp(l->items[i].buyer_id, buyer_id) == 0)
            return true;
    }
    return false;
}

int
coord_store_job_pending_capped(struct coord_store *s, int64_t limit, int64_t default_cap,
                               struct coord_job_list *out, struct coord_buyer_cap_list *caps,
                               co_err *err)
{
    return coord_store_job_pending_fit_capped(s, limit, NULL, default_cap, out, caps, err);
}

int
coord_store_job_pending_fit_capped(struct coord_store *s, int64_t limit,
                                   const struct coord_job_fit *fit, int64_t default_cap,
                                   struct coord_job_list *out, struct coord_buyer_cap_list *caps,
                                   co_err *err)
{
    struct coord_buyer_cap_list running = {0};
    struct co_buf held = CO_BUF_INIT, seen = CO_BUF_INIT;
    struct co_jsonw w;
    size_t n_held = 0, n_seen = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    memset(caps, 0, sizeof(*caps));
    if (limit <= 0)
        limit = 1;
    if (buyer_caps_load(s, Q_BUYERS_RUNNING, PARAMS(P_INT(default_cap)), &running, err) < 0)
        goto out;
    co_jsonw_init(&w, &held);
    co_jsonw_arr_begin(&w);
    for (size_t i = 0; i < running.len; i++) {
        if (running.items[i].running >= running.items[i].cap) {
            co_jsonw_str(&w, running.items[i].buyer_id);
            n_held++;
        }
    }
    co_jsonw_arr_end(&w);
    int got = fit           ? pending_fit_load(s, limit, fit, held.data, out, err)
              : n_held == 0 ? jobs_load(s, Q_JOB_PENDING, PARAMS(P_INT(limit)), out, err)
                            : jobs_load(s, Q_JOB_PENDING_EXCEPT,
                                        PARAMS(P_INT(limit), P_TEXT(held.data)), out, err);
    if (got < 0)
        goto out;
    /* The caps of the other buyers in the read, which have nothing running yet. */
    co_jsonw_init(&w, &seen);
    co_jsonw_arr_begin(&w);
    for (size_t k = 0; k < out->len; k++) {
        const char *b = out->items[k].buyer_id;
        bool dup = buyer_caps_has(&running, b);
        for (size_t j = 0; !dup && j < k; j++)
            dup = strcmp(out->items[j].buyer_id, b) == 0;
        if (!dup) {
            co_jsonw_str(&w, b);
            n_seen++;
        }
    }
    co_jsonw_arr_end(&w);
    if (n_seen > 0 &&
        buyer_caps_load(s, Q_BUYER_CAPS, PARAMS(P_INT(default_cap), P_TEXT(seen.data)), &running,
                        err) < 0)
        goto out;
    *caps = running;
    memset(&running, 0, sizeof(running));
    rc = 0;
out:
    if (rc < 0)
        coord_job_list_release(out);
    free(running.items);
    co_buf_release(&held);
    co_buf_release(&seen);
    return rc;
}

/*
 * At the start of a transaction that ends by noting an outcome of @worker_id (outcome_note
 * updates the worker's reputation; the releases of a lost worker's jobs): its row first.  (A
 * finish updates the reputation after its commit instead, outcome_repute.)  A claim locks the
 * worker, then jobs (skipping locked ones), then the buyer; a transaction that locked a job and the
 * buyer before the worker would wait on a claim waiting on it (PostgreSQL deadlocks, each found
 * after deadlock_timeout).  NULL or "" locks nothing.
 */
static int
worker_lock_first(struct coord_store *s, const char *worker_id, co_err *err)
{
    if (!worker_id || !worker_id[0])
        return 0;
    return q_exec(s, Q_WORKER_LOCK, PARAMS(P_TEXT(worker_id)), NULL, err);
}

/* Inside a write transaction (a claim): the worker row locked, its usage and terms read. */
static int
worker_lock_load(struct coord_store *s, const char *worker_id, struct coord_worker *w, co_err *err)
{
    bool found;
    if (q_exec(s, Q_WORKER_LOCK, PARAMS(P_TEXT(worker_id)), NULL, err) < 0)
        return -1;
    if (worker_load_q(s, Q_WORKER_GET_CLAIM, worker_id, w, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
    return 0;
}

/* A market job is charged at the prices of the worker that claims it. */
static int
job_assign(struct coord_store *s, const char *job_id, const struct coord_worker *w, int64_t now,
           struct coord_job *out, co_err *err)
{
    struct db_res r;
    const char *worker_id = w->worker_id;
    if (q_run(s, Q_JOB_ASSIGN,
              PARAMS(P_TEXT(job_id), P_TEXT(worker_id), P_INT(now), P_INT(w->price.per_core_second),
                     P_INT(w->price.per_gb_second)),
              &r, err) < 0)
        return -1;
    int got = q_next(&r, err);
    if (got > 0)
        job_from_row(&r, out);
    q_done(&r);
    if (got < 0)
        return -1;
    if (got == 0)
        return co_err_set(err, CO_E_CONFLICT, "job '%s' is no longer pending", job_id);
    if (out->parent_job_id[0] && coord_verify_claimed(s, out, worker_id, now, err) < 0) {
        coord_job_release(out);
        return -1;
    }
    /*
     * A re-run: the output of the earlier attempts goes in the same transaction, so that the
     * stored output is always the current attempt's.
     */
    if (out->attempts > 1 &&
        (q_exec(s, Q_OUTPUT_CLEAR_CHUNKS, PARAMS(P_TEXT(job_id)), NULL, err) < 0 ||
         q_exec(s, Q_OUTPUT_CLEAR, PARAMS(P_TEXT(job_id)), NULL, err) < 0)) {
        coord_job_release(out);
        return -1;
    }
    return 0;
}

/*
 * PostgreSQL: the claim's locks, checks and assign in one call (cacheout_claim, migration 0017),
 * in the caller's transaction; then what needs the store's C code (a replica's claim, rare).  A
 * refusal comes back as a row without a job id, not as an error (routine when schedulers race).
 */
static int
job_claim_pg(struct coord_store *s, const char *job_id, const char *worker_id,
             struct coord_job *out, co_err *err)
{
    struct db_res r;
    int64_t now = co_wall_ms();
    if (q_run(s, Q_JOB_CLAIM_PG, PARAMS(P_TEXT(job_id), P_TEXT(worker_id), P_INT(now)), &r, err) <
        0)
        return -1;
    int got = q_next(&r, err);
    bool refused = got > 0 && col_null(&r, 0);
    if (refused) /* job_id NULL: status the code, failure the message (0017) */
        co_err_set(err, strcmp(col_text(&r, 9), "CO404") == 0 ? CO_E_NOTFOUND : CO_E_CONFLICT, "%s",
                   col_text(&r, 10));
    else if (got > 0)
        job_from_row(&r, out);
    q_done(&r);
    if (got <= 0 || refused)
        return got < 0 || refused
                   ? -1
                   : co_err_set(err, CO_E_INTERNAL, "claim of job '%s': no row", job_id);
    if (out->parent_job_id[0] && coord_verify_claimed(s, out, worker_id, now, err) < 0) {
        coord_job_release(out);
        return -1;
    }
    return 0;
}

int
coord_store_job_claim(struct coord_store *s, const char *job_id, const char *worker_id,
                      struct coord_job *out, co_err *err)
{
    struct coord_worker w;
    struct coord_job j;
    bool have_job = false, assigned = false;
    int rc = -1;

    coord_fault_claim_hold(job_id);
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (store_is_pg(s)) {
        rc = job_claim_pg(s, job_id, worker_id, out, err);
        assigned = rc == 0;
        goto out;
    }
    if (worker_lock_load(s, worker_id, &w, err) < 0)
        goto out;
    if (job_load_must(s, Q_JOB_LOCK, job_id, &j, err) < 0)
        goto out;
    have_job = true;
    if (j.status != COORD_JOB_PENDING) {
        co_err_set(err, CO_E_CONFLICT, "job '%s' is %s, not pending", job_id,
                   coord_job_status_name(j.status));
        goto out;
    }
    if (w.cpu_cores - w.used_cores < j.required_cores ||
        w.ram_mb - w.used_ram_mb < j.required_ram_mb) {
        co_err_set(err, CO_E_CONFLICT, "worker '%s' has no room for job '%s'", worker_id, job_id);
        goto out;
    }
    if (w.reputation < j.min_reputation ||
        (j.pricing == COORD_PRICING_MARKET && !coord_rate_within(&w.price, &j.max_rate))) {
        co_err_set(err, CO_E_CONFLICT, "worker '%s' is outside the price or reputation of job '%s'",
                   worker_id, job_id);
        goto out;
    }
    rc = job_assign(s, job_id, &w, co_wall_ms(), out, err);
    assigned = rc == 0;
out:
    if (have_job)
        coord_job_release(&j);
    rc = tx_end_kind(s, rc, COORD_FAULT_TX_CLAIM, err);
    if (rc < 0 && assigned)
        coord_job_release(out); /* the commit failed after @out was filled */
    return rc;
}

int
coord_store_job_claim_next(struct coord_store *s, const char *worker_id, struct coord_job *out,
                           co_err *err)
{
    struct coord_worker w;
    char job_id[CO_ID_MAX + 1] = "";
    struct db_res r;
    int rc = -1, got;
    bool assigned = false;

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (worker_lock_load(s, worker_id, &w, err) < 0)
        goto out;
    if (q_run(s, Q_JOB_NEXT_FIT,
              PARAMS(P_INT(w.cpu_cores - w.used_cores), P_INT(w.ram_mb - w.used_ram_mb),
                     P_INT(w.reputation), P_INT(w.price.per_core_second),
                     P_INT(w.price.per_gb_second), P_TEXT(worker_id)),
              &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0)
        col_id(&r, 0, job_id);
    q_done(&r);
    if (got < 0)
        goto out;
    if (got == 0) {
        rc = 0;
        goto out;
    }
    if (job_assign(s, job_id, &w, co_wall_ms(), out, err) < 0)
        goto out;
    assigned = true;
    rc = 1;
out:
    rc = tx_end_kind(s, rc, assigned ? COORD_FAULT_TX_CLAIM : 0, err);
    if (rc < 0 && assigned)
        coord_job_release(out); /* the commit failed after @out was filled */
    return rc;
}

/* Fencing: the report must come from the worker holding the current attempt. */
static int
job_fence(const struct coord_job *j, const char *worker_id, int attempt, co_err *err)
{
    if (strcmp(j->assigned_worker, worker_id) != 0 || j->attempts != attempt)
        return co_err_set(err, CO_E_CONFLICT,
                          "stale report for job '%s': attempt %d of worker '%s', current is "
                          "attempt %d of '%s'",
                          j->job_id, attempt, worker_id, j->attempts,
                          *j->assigned_worker ? j->assigned_worker : "(none)");
    return 0;
}

int
coord_store_job_started(struct coord_store *s, const char *job_id, const char *worker_id,
                        int attempt, co_err *err)
{
    struct coord_job j;
    int rc = -1;
    int64_t changes = 0;
    const struct db_param run[] = {P_TEXT(job_id), P_INT(co_wall_ms()), P_TEXT(worker_id),
                                   P_INT(attempt)};

    /* The usual case, the holder of the assigned attempt, in one fenced statement. */
    if (q_exec(s, Q_JOB_SET_RUNNING, run, (int)CO_ARRAY_LEN(run), &changes, err) < 0)
        return -1;
    if (changes > 0)
        return 0;
    /* Else: already running (a repeated report), or why not. */
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (job_load_must(s, Q_JOB_LOCK, job_id, &j, err) < 0)
        goto out;
    if (j.status != COORD_JOB_ASSIGNED && j.status != COORD_JOB_RUNNING)
        co_err_set(err, CO_E_CONFLICT, "job '%s' is %s, it cannot start", job_id,
                   coord_job_status_name(j.status));
    else if (job_fence(&j, worker_id, attempt, err) == 0)
        rc = j.status == COORD_JOB_RUNNING
                 ? 0
                 : q_exec(s, Q_JOB_SET_RUNNING, run, (int)CO_ARRAY_LEN(run), NULL, err);
    coord_job_release(&j);
out:
    return tx_end(s, rc, err);
}

static bool
job_final(enum coord_job_status st)
{
    return st == COORD_JOB_COMPLETED || st == COORD_JOB_FAILED || st == COORD_JOB_CANCELLED;
}

/*
 * The parameters of a job's final state: its id, status @st, failure @f, @r's exit code and
 * usage (NULL when not reported), the time @now (Q_JOB_FINISH, Q_JOB_SETTLE_PG).
 */
#define JOB_FINAL_PARAMS(j, st, f, r, now)                                                         \
    P_TEXT((j)->job_id), P_TEXT(coord_job_status_name(st)), P_TEXT(coord_failure_name(f)),         \
        (r) && (r)->has_exit_code ? P_INT((r)->exit_code) : P_NULL,                                \
        (r) && (r)->has_usage ? P_INT((r)->usage.wall_ms) : P_NULL,                                \
        (r) && (r)->has_usage ? P_INT((r)->usage.cpu_ms) : P_NULL,                                 \
        (r) && (r)->has_usage ? P_INT((r)->usage.max_rss_kb) : P_NULL, P_INT(now)

/*
 * Write @j's final state (with @r's exit code and usage) and queue its callback.  @charged: what
 * it was charged, or NULL to leave the column as it is.
 */
static int
job_set_final(struct coord_store *s, const struct coord_job *j, enum coord_job_status st,
              enum coord_failure f, const struct coord_job_result *r, const int64_t *charged,
              int64_t now, co_err *err)
{
    int64_t queued = 0;
    if (q_exec(s, Q_JOB_FINISH,
               PARAMS(JOB_FINAL_PARAMS(j, st, f, r, now), charged ? P_INT(*charged) : P_NULL), NULL,
               err) < 0 ||
        /* Its callback is queued in the same transaction (coord_webhook). */
        q_exec(s, Q_WH_QUEUE, PARAMS(P_TEXT(j->job_id), P_INT(now)), &queued, err) < 0)
        return -1;
    if (queued > 0)
        coord_webhook_kick();
    return 0;
}

/*
 * End @j (locked by the caller) as @st/@f and settle it as @e says: its final state and charge
 * in one update of its row, then the money moves.
 */
static int
job_end(struct coord_store *s, const struct coord_job *j, enum coord_job_status st,
        enum coord_failure f, const struct coord_job_result *r, const struct settle_end *e,
        int64_t now, co_err *err)
{
    struct coord_settlement plan;
    bool own = !settle_by_verify(j);
    if (own)
        settle_plan(s, j, e, &plan);
    if (job_set_final(s, j, st, f, r, own ? &plan.charge : NULL, now, err) < 0)
        return -1;
    return settle(s, j, e, now, err);
}

/* job_end for a job that did not run: everything back to the buyer (@why the ledger's note). */
static int
job_end_refund(struct coord_store *s, const struct coord_job *j, enum coord_job_status st,
               enum coord_failure f, const struct coord_job_result *r, const char *why, int64_t now,
               co_err *err)
{
    struct settle_end e = {.refund_all = true, .why = why};
    return job_end(s, j, st, f, r, &e, now, err);
}

/*
 * PostgreSQL: job_end() of a finish and its outcome (@outcome: its name, NULL for none) in one
 * call (cacheout_settle, migration 0017), with the amounts coord_price plans here.  The worker's
 * reputation is updated there when its score moved, unless a claim holds its row: then
 * *@repute_later is set (the lease tick updates it, coord_store_worker_repute_pending).
 */
static int
job_settle_pg(struct coord_store *s, const struct coord_job *j, enum coord_job_status st,
              enum coord_failure f, const struct coord_job_result *r, const struct settle_end *e,
              const char *outcome, int64_t now, bool *repute_later, co_err *err)
{
    struct coord_settlement plan;
    struct db_res res;
    const char *fee_user = s->cfg.fee_user ? s->cfg.fee_user : "platform";
    settle_plan(s, j, e, &plan);
    /* The finish's last statement: its users' and job's locks go with its COMMIT. */
    if (q_run_last(s, Q_JOB_SETTLE_PG,
                   PARAMS(JOB_FINAL_PARAMS(j, st, f, r, now), P_TEXT(j->buyer_id),
                          P_TEXT(j->assigned_worker), P_TEXT(e->refund_all ? "true" : "false"),
                          P_INT(j->cost), P_INT(plan.charge), P_INT(plan.refund),
                          P_INT(plan.payout), P_INT(plan.fee), P_TEXT(fee_user),
                          P_INT(s->cfg.starting_credits), P_TEXT(e->why), P_TEXT(outcome)),
                   &res, err) < 0)
        return -1;
    int got = q_next(&res, err);
    bool queued = got > 0 && col_int(&res, 0) != 0;
    *repute_later = got > 0 && col_int(&res, 2) < 0;
    q_done(&res);
    if (got <= 0)
        return got < 0
                   ? -1
                   : co_err_set(err, CO_E_INTERNAL, "settlement of job '%s': no row", j->job_id);
    if (queued)
        coord_webhook_kick();
    return 0;
}

/* What a final report says about the seller (reputation). */
static enum coord_outcome
finish_outcome(enum coord_job_status st, enum coord_failure f, bool platform_fault)
{
    if (platform_fault || f == COORD_FAIL_SANDBOX_ERROR || f == COORD_FAIL_KILLED)
        return COORD_OUTCOME_REJECTED;
    if (st == COORD_JOB_FAILED && f == COORD_FAIL_TIMEOUT)
        return COORD_OUTCOME_TIMEOUT;
    return COORD_OUTCOME_COMPLETED; /* completed, or the buyer's code failed or ran out of RAM */
}

int
coord_store_job_finish(struct coord_store *s, const char *job_id, const char *worker_id,
                       int attempt, const struct coord_job_result *r, bool *changed, co_err *err)
{
    struct coord_job j;
    int rc = -1;
    bool have_job = false;

    *changed = false;
    if (r->status != COORD_JOB_COMPLETED && r->status != COORD_JOB_FAILED &&
        r->status != COORD_JOB_CANCELLED)
        return co_err_field(err, CO_E_INVAL, "status", "final status '%s' is not final",
                            coord_job_status_name(r->status));
    int64_t now = co_wall_ms();
    bool noted = false, repute_later = false;
    /*
     * The worker's row is not locked here: the reputation update that needs it runs after the
     * commit (outcome_repute), so a finish does not wait for that worker's claims (which hold
     * its row until they commit) nor make them wait for a whole settlement.
     */
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (job_load_must(s, Q_JOB_LOCK, job_id, &j, err) < 0)
        goto out;
    have_job = true;
    if (job_final(j.status)) {
        rc = 0; /* a repeated report changes nothing */
        goto out;
    }
    if (j.status == COORD_JOB_PENDING) {
        co_err_set(err, CO_E_CONFLICT, "job '%s' is pending, no attempt is running", job_id);
        goto out;
    }
    if (job_fence(&j, worker_id, attempt, err) < 0)
        goto out;

    enum coord_failure f = r->failure;
    bool refund;
    if (r->status == COORD_JOB_COMPLETED) {
        f = COORD_FAIL_NONE;
        refund = false;
    } else if (r->status == COORD_JOB_CANCELLED) {
        f = COORD_FAIL_CANCELLED;
        refund = j.status == COORD_JOB_ASSIGNED; /* cancelled before it started */
    } else {
        if (f == COORD_FAIL_NONE)
            f = COORD_FAIL_EXIT_CODE;
        refund = r->platform_fault;
    }
    struct settle_end e = {
        .refund_all = refund,
        .timed_out = f == COORD_FAIL_TIMEOUT,
        .wall_ms = r->has_usage ? r->usage.wall_ms : job_wall_ms(&j, now),
        .why = "job not run",
    };
    enum coord_outcome oc = finish_outcome(r->status, f, r->platform_fault);
    bool note = r->status != COORD_JOB_CANCELLED;
    if (store_is_pg(s) && !settle_by_verify(&j)) {
        if (job_settle_pg(s, &j, r->status, f, r, &e, note ? coord_outcome_name(oc) : NULL, now,
                          &repute_later, err) < 0)
            goto out;
    } else if (job_end(s, &j, r->status, f, r, &e, now, err) < 0 ||
               (note && outcome_record(s, worker_id, job_id, oc, now, &noted, err) < 0)) {
        goto out;
    }
    *changed = true;
    rc = 0;
out:
    if (have_job)
        coord_job_release(&j);
    rc = tx_end(s, rc, err);
    if (rc < 0)
        *changed = false;
    else if (noted)
        outcome_repute(s, worker_id);
    else if (repute_later)
        repute_pending_add(worker_id);
    return rc;
}

int
coord_store_job_cancel(struct coord_store *s, const char *job_id, struct coord_job *out,
                       enum coord_job_status *was, co_err *err)
{
    struct coord_job j;
    int rc = -1;
    bool have_job = false, loaded = false;
    int64_t now = co_wall_ms();

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (coord_verify_lock_replicas(s, job_id, err) < 0 ||
        job_load_must(s, Q_JOB_LOCK, job_id, &j, err) < 0)
        goto out;
    have_job = true;
    if (was)
        *was = j.status;
    if (job_final(j.status)) {
        co_err_set(err, CO_E_CONFLICT, "job '%s' is already %s", job_id,
                   coord_job_status_name(j.status));
        goto out;
    }
    struct settle_end e = {
        .refund_all = j.status != COORD_JOB_RUNNING,
        .wall_ms = job_wall_ms(&j, now),
        .why = "job cancelled",
    };
    if (job_end(s, &j, COORD_JOB_CANCELLED, COORD_FAIL_CANCELLED, NULL, &e, now, err) < 0)
        goto out;
    if (job_load_must(s, Q_JOB_GET_NOCODE, job_id, out, err) < 0)
        goto out;
    loaded = true;
    rc = 0;
out:
    if (have_job)
        coord_job_release(&j);
    rc = tx_end(s, rc, err);
    if (rc < 0 && loaded)
        coord_job_release(out); /* the commit failed after @out was filled */
    return rc;
}

/*
 * Inside a write transaction: lock and load @job_id, which @worker_id must hold as attempt
 * @attempt (assigned or running), else CO_E_CONFLICT (CO_E_NOTFOUND for an unknown job).  @j is
 * loaded only on success.
 */
static int
job_lock_held(struct coord_store *s, const char *job_id, const char *worker_id, int attempt,
              struct coord_job *j, co_err *err)
{
    if (job_load_must(s, Q_JOB_LOCK, job_id, j, err) < 0)
        return -1;
    if (j->status != COORD_JOB_ASSIGNED && j->status != COORD_JOB_RUNNING) {
        co_err_set(err, CO_E_CONFLICT, "job '%s' is %s, no attempt of it is held", job_id,
                   coord_job_status_name(j->status));
        coord_job_release(j);
        return -1;
    }
    if (job_fence(j, worker_id, attempt, err) < 0) {
        coord_job_release(j);
        return -1;
    }
    return 0;
}

int
coord_store_job_release(struct coord_store *s, const char *job_id, const char *worker_id,
                        int attempt, enum coord_job_status *after, co_err *err)
{
    struct coord_job j;
    enum coord_job_status st = COORD_JOB_PENDING;
    bool have_job = false;
    int rc = -1;
    int64_t now = co_wall_ms();

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (worker_lock_first(s, worker_id, err) < 0 ||
        job_lock_held(s, job_id, worker_id, attempt, &j, err) < 0)
        goto out;
    have_job = true;
    if (outcome_note(s, worker_id, job_id, COORD_OUTCOME_LOST, now, err) < 0)
        goto out;
    if (j.attempts >= j.max_attempts) {
        st = COORD_JOB_FAILED;
        if (job_end_refund(s, &j, st, COORD_FAIL_WORKER_LOST, NULL, "worker lost", now, err) < 0)
            goto out;
    } else if (q_exec(s, Q_JOB_REQUEUE, PARAMS(P_TEXT(job_id)), NULL, err) < 0) {
        goto out;
    }
    rc = 0;
out:
    if (have_job)
        coord_job_release(&j);
    rc = tx_end(s, rc, err);
    if (rc == 0 && after)
        *after = st;
    return rc;
}

int
coord_store_job_active(struct coord_store *s, struct coord_job_list *out, co_err *err)
{
    return jobs_load(s, Q_JOB_ACTIVE, NULL, 0, out, err);
}

int
coord_store_job_poll_unstarted(struct coord_store *s, int64_t before, struct coord_job_list *out,
                               co_err *err)
{
    return jobs_load(s, Q_JOB_POLL_UNSTARTED, PARAMS(P_INT(before)), out, err);
}

int
coord_store_job_requeue_free(struct coord_store *s, const char *job_id, const char *worker_id,
                             int attempt, co_err *err)
{
    struct coord_job j;
    bool have_job = false;
    int rc = -1;

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (job_lock_held(s, job_id, worker_id, attempt, &j, err) < 0)
        goto out;
    have_job = true;
    if (q_exec(s, Q_JOB_REQUEUE_FREE, PARAMS(P_TEXT(job_id)), NULL, err) < 0)
        goto out;
    rc = 0;
out:
    if (have_job)
        coord_job_release(&j);
    return tx_end(s, rc, err);
}

/*
 * Lock the buyers that release_jobs will refund, in user_id order like every other transaction
 * that locks several users, so that none of them can wait on each other in a cycle.
 */
static int
lock_refunded_buyers(struct coord_store *s, const struct coord_job_list *l, co_err *err)
{
    co_autofree const char **ids = co_xcalloc(l->len + 1, sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i].attempts >= l->items[i].max_attempts)
            ids[n++] = l->items[i].buyer_id;
    if (n < 2)
        return 0;
    return users_lock_sorted(s, ids, n, err);
}

int
coord_store_worker_release_jobs(struct coord_store *s, const char *worker_id, char ***changed_ids,
                                size_t *n_changed, co_err *err)
{
    struct coord_job_list l = {NULL, 0};
    int rc = -1;
    int64_t now = co_wall_ms();

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (worker_lock_first(s, worker_id, err) < 0 ||
        jobs_load(s, Q_JOB_OF_WORKER, PARAMS(P_TEXT(worker_id)), &l, err) < 0)
        goto out;
    if (lock_refunded_buyers(s, &l, err) < 0)
        goto out;
    for (size_t i = 0; i < l.len; i++) {
        struct coord_job *j = &l.items[i];
        if (outcome_note(s, worker_id, j->job_id, COORD_OUTCOME_LOST, now, err) < 0)
            goto out;
        if (j->attempts >= j->max_attempts) {
            if (job_end_refund(s, j, COORD_JOB_FAILED, COORD_FAIL_WORKER_LOST, NULL, "worker lost",
                               now, err) < 0)
                goto out;
        } else if (q_exec(s, Q_JOB_REQUEUE, PARAMS(P_TEXT(j->job_id)), NULL, err) < 0) {
            goto out;
        }
    }
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc == 0 && changed_ids) {
        char **ids = *changed_ids;
        size_t n = *n_changed;
        ids = co_xreallocarray(ids, n + l.len + 1, sizeof(*ids));
        for (size_t i = 0; i < l.len; i++)
            ids[n++] = co_xstrdup(l.items[i].job_id);
        *changed_ids = ids;
        *n_changed = n;
    }
    coord_job_list_release(&l);
    return rc;
}

static int job_fence_row(struct coord_store *s, const char *job_id, const char *worker_id,
                         int attempt, bool final_ok, co_err *err);

/*
 * Inside a write transaction: lock the job row and check that (@worker_id, @attempt) is its
 * current attempt, assigned or running.  CO_E_NOTFOUND for an unknown job, CO_E_CONFLICT else.
 */
static int
job_fence_current(struct coord_store *s, const char *job_id, const char *worker_id, int attempt,
                  co_err *err)
{
    return job_fence_row(s, job_id, worker_id, attempt, false, err);
}

/* job_fence_current(), or with @final_ok also the last attempt of a final job. */
static int
job_fence_row(struct coord_store *s, const char *job_id, const char *worker_id, int attempt,
              bool final_ok, co_err *err)
{
    struct db_res r;
    char status[16] = "", holder[CO_ID_MAX + 1] = "";
    int64_t cur = 0;
    if (q_run(s, Q_JOB_FENCE, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        return -1;
    int got = q_next(&r, err);
    if (got > 0) {
        co_strlcpy(status, col_text(&r, 0), sizeof(status));
        col_id(&r, 1, holder);
        cur = col_int(&r, 2);
    }
    q_done(&r);
    if (got < 0)
        return -1;
    if (got == 0)
        return co_err_set(err, CO_E_NOTFOUND, "no such job '%s'", job_id);
    int st = coord_job_status_parse(status);
    bool live = st == COORD_JOB_ASSIGNED || st == COORD_JOB_RUNNING;
    bool final = st == COORD_JOB_COMPLETED || st == COORD_JOB_FAILED || st == COORD_JOB_CANCELLED;
    if (!(live || (final_ok && final)) || strcmp(holder, worker_id) != 0 || cur != attempt)
        return co_err_set(err, CO_E_CONFLICT,
                          "stale report for job '%s': attempt %d of worker '%s', the job is %s "
                          "with attempt %lld of '%s'",
                          job_id, attempt, worker_id, status, (long long)cur,
                          *holder ? holder : "(none)");
    return 0;
}

static int output_append(struct coord_store *s, const char *job_id, const char *worker_id,
                         int attempt, bool final_ok, int stream, int64_t offset, const char *data,
                         size_t len, co_err *err);

int
coord_store_output_append(struct coord_store *s, const char *job_id, int stream, const char *data,
                          size_t len, co_err *err)
{
    return output_append(s, job_id, NULL, 0, false, stream, -1, data, len, err);
}

int
coord_store_output_append_attempt(struct coord_store *s, const char *job_id, const char *worker_id,
                                  int attempt, int stream, const char *data, size_t len,
                                  co_err *err)
{
    return output_append(s, job_id, worker_id, attempt, false, stream, -1, data, len, err);
}

int
coord_store_output_put(struct coord_store *s, const char *job_id, const char *worker_id,
                       int attempt, bool final_ok, int stream, int64_t offset, const char *data,
                       size_t len, co_err *err)
{
    return output_append(s, job_id, worker_id, attempt, final_ok, stream, offset, data, len, err);
}

/*
 * Append for any attempt (@worker_id NULL) or only for (@worker_id, @attempt) (and, @final_ok,
 * its final job).  @offset >= 0: where the chunk starts in its stream; bytes before the stored
 * length are already there and skipped.
 */
static int
output_append(struct coord_store *s, const char *job_id, const char *worker_id, int attempt,
              bool final_ok, int stream, int64_t offset, const char *data, size_t len, co_err *err)
{
    if (stream != 1 && stream != 2)
        return co_err_set(err, CO_E_INVAL, "bad output stream %d", stream);
    struct db_res r;
    int rc = -1, got;
    int64_t cur = 0;
    bool truncated = false;
    bool found = false;

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (worker_id && job_fence_row(s, job_id, worker_id, attempt, final_ok, err) < 0)
        goto out;
    if (q_run(s, Q_OUTPUT_LEN, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        cur = col_int(&r, stream == 1 ? 0 : 1);
        truncated = col_int(&r, stream == 1 ? 2 : 3) != 0;
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (got == 0) {
        int64_t one;
        if (q_int(s, Q_JOB_GET_NOCODE, PARAMS(P_TEXT(job_id)), &one, &found, err) < 0)
            goto out;
        if (!found) {
            co_err_set(err, CO_E_NOTFOUND, "no such job '%s'", job_id);
            goto out;
        }
        if (q_exec(s, Q_OUTPUT_INSERT, PARAMS(P_TEXT(job_id), P_BLOB("", 0)), NULL, err) < 0)
            goto out;
    }
    if (offset >= 0 && offset < cur) {
        /* Sent again (a reconnect or a restart of the agent): keep only what is not stored. */
        uint64_t have = (uint64_t)(cur - offset);
        if (have >= len) {
            rc = 0;
            goto out;
        }
        data += have;
        len -= (size_t)have;
    }
    int64_t room = s->cfg.output_cap_bytes - cur;
    size_t take = len;
    if (room < 0)
        room = 0;
    if ((uint64_t)take > (uint64_t)room) {
        take = (size_t)room;
        truncated = true;
    }
    /* Each append is its own row: writing it costs its own size, not the output's so far. */
    if (take > 0 &&
        q_exec(s, Q_OUTPUT_CHUNK, PARAMS(P_TEXT(job_id), P_INT(stream), P_BLOB(data, take)), NULL,
               err) < 0)
        goto out;
    if (take > 0 || truncated) {
        if (q_exec(s, stream == 1 ? Q_OUTPUT_SET_OUT : Q_OUTPUT_SET_ERR,
                   PARAMS(P_TEXT(job_id), P_INT(take), P_INT(truncated)), NULL, err) < 0)
            goto out;
    }
    rc = 0;
out:
    return tx_end(s, rc, err);
}

static void
blob_append(struct db_res *r, int c, struct co_buf *b)
{
    size_t n = 0;
    const void *p = r->s->ops->col_blob(r, c, &n);
    co_buf_append(b, n ? p : "", n);
}

int
coord_store_output_get(struct coord_store *s, const char *job_id, char **out_stdout,
                       size_t *stdout_len, char **out_stderr, size_t *stderr_len, bool *truncated,
                       co_err *err)
{
    struct co_buf bufs[2] = {CO_BUF_INIT, CO_BUF_INIT};
    struct db_res r;
    int rc = -1, got;
    int64_t one;
    bool found, trunc = false;

    *out_stdout = *out_stderr = NULL;
    if (tx_begin(s, false, err) < 0)
        return -1;
    if (q_int(s, Q_JOB_GET_NOCODE, PARAMS(P_TEXT(job_id)), &one, &found, err) < 0)
        goto out;
    if (!found) {
        co_err_set(err, CO_E_NOTFOUND, "no such job '%s'", job_id);
        goto out;
    }
    if (q_run(s, Q_OUTPUT_GET, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        blob_append(&r, 0, &bufs[0]);
        blob_append(&r, 1, &bufs[1]);
        trunc = col_int(&r, 2) != 0 || col_int(&r, 3) != 0;
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (q_run(s, Q_OUTPUT_CHUNKS, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        goto out;
    while ((got = q_next(&r, err)) > 0)
        blob_append(&r, 1, &bufs[col_int(&r, 0) == 2 ? 1 : 0]);
    q_done(&r);
    if (got < 0)
        goto out;
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc == 0) {
        /* co_buf_steal gives "" for an empty buffer, so the caller always gets two strings. */
        *out_stdout = co_buf_steal(&bufs[0], stdout_len);
        *out_stderr = co_buf_steal(&bufs[1], stderr_len);
        *truncated = trunc;
    }
    co_buf_release(&bufs[0]);
    co_buf_release(&bufs[1]);
    return rc;
}

/* ---- workers ---- */

int
coord_store_worker_check_owner(struct coord_store *s, const char *worker_id, const char *owner_id,
                               co_err *err)
{
    char stored[CO_ID_MAX + 1];
    bool found;
    if (!co_id_valid(worker_id))
        return co_err_field(err, CO_E_INVAL, "worker_id", "invalid worker id '%s'", worker_id);
    if (worker_owner(s, worker_id, stored, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_field(err, CO_E_NOTFOUND, "worker_id", "unknown worker '%s'", worker_id);
    if (strcmp(stored, owner_id) != 0)
        return co_err_field(err, CO_E_FORBIDDEN, "worker_id",
                            "worker id '%s' belongs to another user", worker_id);
    return 0;
}

int
coord_store_worker_upsert(struct coord_store *s, const struct coord_worker *w,
                          struct coord_worker *out, co_err *err)
{
    if (!co_id_valid(w->worker_id))
        return co_err_field(err, CO_E_INVAL, "worker_id", "invalid worker id '%s'", w->worker_id);
    if (*w->owner_id && !co_id_valid(w->owner_id))
        return co_err_field(err, CO_E_INVAL, "owner_id", "invalid owner id '%s'", w->owner_id);
    if (w->cpu_cores < 0 || w->ram_mb < 0 || (unsigned)w->status >= COORD_WORKER_STATUS_COUNT)
        return co_err_set(err, CO_E_INVAL, "worker '%s' has out-of-range values", w->worker_id);

    const char *owner = *w->owner_id ? w->owner_id : w->worker_id;
    int64_t now = co_wall_ms();
    int64_t changes = 0, online = 0;
    bool found;
    int rc = -1;

    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(s, Q_WORKER_UPDATE,
               PARAMS(P_TEXT(w->worker_id), P_TEXT(owner), P_INT(w->cpu_cores), P_INT(w->ram_mb),
                      P_TEXT(coord_worker_status_name(w->status)), P_INT(w->websocket), P_INT(now)),
               &changes, err) < 0)
        goto out;
    if (changes == 0) {
        /*
         * New worker: creations are serialized so two cannot both take the last slot; once
         * serialized, look again in case the same worker was created meanwhile.
         */
        if (q_exec(s, Q_WORKER_CREATE_LOCK, NULL, 0, NULL, err) < 0)
            goto out;
        if (q_exec(s, Q_WORKER_UPDATE,
                   PARAMS(P_TEXT(w->worker_id), P_TEXT(owner), P_INT(w->cpu_cores),
                          P_INT(w->ram_mb), P_TEXT(coord_worker_status_name(w->status)),
                          P_INT(w->websocket), P_INT(now)),
                   &changes, err) < 0)
            goto out;
    }
    if (changes == 0) {
        /* Still no row updated: either it belongs to someone else or it is new. */
        char stored[CO_ID_MAX + 1];
        if (worker_owner(s, w->worker_id, stored, &found, err) < 0)
            goto out;
        if (found) {
            co_err_field(err, CO_E_FORBIDDEN, "worker_id", "worker id '%s' belongs to another user",
                         w->worker_id);
            goto out;
        }
        if (s->cfg.max_workers > 0) {
            if (q_int(s, Q_WORKER_COUNT_ONLINE, PARAMS(P_INT(now - s->cfg.worker_timeout_ms)),
                      &online, NULL, err) < 0)
                goto out;
            if (online >= s->cfg.max_workers) {
                co_err_set(err, CO_E_LIMIT, "too many workers: MAX_WORKERS is %lld",
                           (long long)s->cfg.max_workers);
                goto out;
            }
        }
        if (q_exec(s, Q_WORKER_INSERT,
                   PARAMS(P_TEXT(w->worker_id), P_TEXT(owner), P_INT(w->cpu_cores),
                          P_INT(w->ram_mb), P_TEXT(coord_worker_status_name(w->status)),
                          P_INT(w->websocket), P_INT(now)),
                   NULL, err) < 0)
            goto out;
    }
    if (w->has_price && q_exec(s, Q_WORKER_SET_PRICE,
                               PARAMS(P_TEXT(w->worker_id), P_INT(w->price.per_core_second),
                                      P_INT(w->price.per_gb_second)),
                               NULL, err) < 0)
        goto out;
    if (out) {
        if (worker_load(s, w->worker_id, out, &found, err) < 0)
            goto out;
        if (!found) {
            co_err_set(err, CO_E_INTERNAL, "worker '%s' vanished", w->worker_id);
            goto out;
        }
    }
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_worker_heartbeat(struct coord_store *s, const char *worker_id, co_err *err)
{
    int64_t changes = 0;
    if (q_exec(s, Q_WORKER_HEARTBEAT, PARAMS(P_TEXT(worker_id), P_INT(co_wall_ms())), &changes,
               err) < 0)
        return -1;
    if (changes == 0)
        return co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
    return 0;
}

static int
id_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
coord_store_worker_heartbeat_many(struct coord_store *s, const char (*ids)[CO_ID_MAX + 1], size_t n,
                                  co_err *err)
{
    if (n == 0)
        return 0;
    const char **sorted = co_xcalloc(n, sizeof(*sorted));
    for (size_t i = 0; i < n; i++)
        sorted[i] = ids[i];
    qsort(sorted, n, sizeof(*sorted), id_cmp);
    int rc = 0;
    int64_t now = co_wall_ms();
    for (size_t at = 0; at < n && rc == 0; at += COORD_STORE_HEARTBEAT_BATCH) {
        size_t end = at + COORD_STORE_HEARTBEAT_BATCH < n ? at + COORD_STORE_HEARTBEAT_BATCH : n;
        struct co_buf json = CO_BUF_INIT;
        struct co_jsonw w;
        co_jsonw_init(&w, &json);
        co_jsonw_arr_begin(&w);
        for (size_t i = at; i < end; i++)
            co_jsonw_str(&w, sorted[i]);
        co_jsonw_arr_end(&w);
        int64_t changes = 0;
        if (q_exec(s, Q_WORKER_HEARTBEAT_MANY, PARAMS(P_TEXT(json.data), P_INT(now)), &changes,
                   err) < 0)
            rc = -1;
        co_buf_release(&json);
    }
    free(sorted);
    return rc;
}

int
coord_store_worker_set_status(struct coord_store *s, const char *worker_id,
                              enum coord_worker_status st, co_err *err)
{
    int64_t changes = 0;
    if ((unsigned)st >= COORD_WORKER_STATUS_COUNT)
        return co_err_set(err, CO_E_INVAL, "bad worker status %d", (int)st);
    if (q_exec(s, Q_WORKER_SET_STATUS,
               PARAMS(P_TEXT(worker_id), P_TEXT(coord_worker_status_name(st)), P_INT(co_wall_ms())),
               &changes, err) < 0)
        return -1;
    if (changes == 0)
        return co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
    return 0;
}

int
coord_store_worker_get(struct coord_store *s, const char *worker_id, struct coord_worker *out,
                       co_err *err)
{
    bool found;
    if (worker_load(s, worker_id, out, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
    return 0;
}

int
coord_store_worker_list(struct coord_store *s, struct coord_worker_list *out, co_err *err)
{
    return workers_load(s, Q_WORKER_LIST, NULL, 0, out, err);
}

int
coord_store_worker_expired(struct coord_store *s, int64_t before_ms, struct coord_worker_list *out,
                           co_err *err)
{
    return workers_load(s, Q_WORKER_EXPIRED, PARAMS(P_INT(before_ms)), out, err);
}

/* ---- credits ---- */

int
coord_store_user_get(struct coord_store *s, const char *user_id, struct coord_user *out,
                     co_err *err)
{
    bool found;
    if (user_load(s, user_id, out, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
    return 0;
}

int
coord_store_user_grant(struct coord_store *s, const char *user_id, int64_t amount,
                       struct coord_user *out, co_err *err)
{
    if (!co_id_valid(user_id))
        return co_err_field(err, CO_E_INVAL, "user_id", "invalid user id '%s'", user_id);
    if (amount <= 0)
        return co_err_field(err, CO_E_INVAL, "amount", "grant amount %lld is not positive",
                            (long long)amount);
    int64_t now = co_wall_ms();
    struct coord_user u;
    bool found;
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (user_ensure(s, user_id, false, now, err) < 0)
        goto out;
    if (user_lock(s, user_id, err) < 0 || user_load(s, user_id, &u, &found, err) < 0)
        goto out;
    /*
     * Balances stay far below int64 so that sums over many users cannot overflow (SQLite would
     * turn an overflowing sum into an error, or arithmetic into floating point).
     */
    if (amount > STORE_MAX_BALANCE || u.credits > STORE_MAX_BALANCE - amount) {
        co_err_field(err, CO_E_RANGE, "amount",
                     "grant to '%s' would pass the balance limit of %lld micro-credits", user_id,
                     (long long)STORE_MAX_BALANCE);
        goto out;
    }
    if (money_move(s, user_id, NULL, COORD_LEDGER_GRANT, amount, 0, "admin grant", now, err) < 0)
        goto out;
    if (out && user_load(s, user_id, out, &found, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

static void
ledger_row(struct db_res *r, void *item)
{
    struct coord_ledger_row *row = item;
    row->id = col_int(r, 0);
    col_id(r, 1, row->user_id);
    col_id(r, 2, row->job_id);
    int k = name_index(ledger_kind_names, COORD_LEDGER_KIND_COUNT, col_text(r, 3));
    row->kind = k < 0 ? COORD_LEDGER_GRANT : (enum coord_ledger_kind)k;
    row->amount = col_int(r, 4);
    row->held = col_int(r, 5);
    row->balance = col_int(r, 6);
    row->note = col_dup(r, 7);
    row->created_at = col_int(r, 8);
}

static void
ledger_item_release(void *item)
{
    struct coord_ledger_row *row = item;
    free(row->note);
}

int
coord_store_ledger_list(struct coord_store *s, const char *user_id, int64_t limit, int64_t offset,
                        struct coord_ledger_list *out, co_err *err)
{
    struct coord_user u;
    bool found;
    void *items;
    size_t len;

    if (paging_check(limit, offset, err) < 0)
        return -1;
    if (user_load(s, user_id, &u, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
    if (rows_load(s, Q_LEDGER_LIST, PARAMS(P_TEXT(user_id), P_INT(limit), P_INT(offset)),
                  sizeof(struct coord_ledger_row), ledger_row, ledger_item_release, &items, &len,
                  err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

/* ---- accounts, API keys, audit ---- */

void
coord_account_release(struct coord_account *a)
{
    if (!a)
        return;
    free(a->username);
    free(a->email);
    free(a->limits);
    a->username = a->email = a->limits = NULL;
}

void
coord_account_list_release(struct coord_account_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        coord_account_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void
coord_api_key_list_release(struct coord_api_key_list *l)
{
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void
coord_audit_list_release(struct coord_audit_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i].detail);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

static void
account_row(struct db_res *r, void *item)
{
    struct coord_account *a = item;
    col_id(r, 0, a->user_id);
    a->username = col_dup(r, 1);
    a->email = col_dup(r, 2);
    a->is_admin = col_int(r, 3) != 0;
    a->disabled = col_int(r, 4) != 0;
    a->limits = co_xstrdup(col_null(r, 5) ? "{}" : col_text(r, 5));
    a->credits = col_int(r, 6);
    a->held = col_int(r, 7);
    a->created_at = col_int(r, 8);
    a->updated_at = col_int(r, 9);
}

static void
account_item_release(void *item)
{
    coord_account_release(item);
}

/* Load one account (*found false when absent; @out untouched then). */
static int
account_load(struct coord_store *s, const char *user_id, struct coord_account *out, bool *found,
             co_err *err)
{
    struct db_res r;
    if (q_run(s, Q_ACC_GET, PARAMS(P_TEXT(user_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0) {
        memset(out, 0, sizeof(*out));
        account_row(&r, out);
    }
    q_done(&r);
    if (rc < 0)
        return -1;
    *found = rc > 0;
    return 0;
}

int
coord_store_account_create(struct coord_store *s, const struct coord_account *a, int64_t credits,
                           struct coord_account *out, co_err *err)
{
    if (!co_id_valid(a->user_id))
        return co_err_field(err, CO_E_INVAL, "user_id", "invalid user id '%s'", a->user_id);
    if (credits < 0 || credits > STORE_MAX_BALANCE)
        return co_err_field(err, CO_E_RANGE, "credits", "starting credits %lld out of range",
                            (long long)credits);
    int64_t now = co_wall_ms();
    int rc = -1;
    bool found = false;
    struct db_res r;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_run(s, Q_ACC_INSERT,
              PARAMS(P_TEXT(a->user_id), P_TEXT(a->username), P_TEXT(a->email),
                     P_INT(a->is_admin ? 1 : 0), P_INT(now)),
              &r, err) < 0)
        goto out;
    int got = q_next(&r, err);
    q_done(&r);
    if (got < 0)
        goto out;
    if (got == 0) {
        co_err_field(err, CO_E_CONFLICT, "user_id", "user '%s' exists already", a->user_id);
        goto out;
    }
    if (credits > 0 && money_move(s, a->user_id, NULL, COORD_LEDGER_GRANT, credits, 0,
                                  "starting credits", now, err) < 0)
        goto out;
    if (out && account_load(s, a->user_id, out, &found, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_account_get(struct coord_store *s, const char *user_id, struct coord_account *out,
                        co_err *err)
{
    bool found;
    if (account_load(s, user_id, out, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
    return 0;
}

int
coord_store_account_list(struct coord_store *s, int64_t limit, int64_t offset,
                         struct coord_account_list *out, co_err *err)
{
    void *items;
    size_t len;
    if (paging_check(limit, offset, err) < 0)
        return -1;
    if (rows_load(s, Q_ACC_LIST, PARAMS(P_INT(limit), P_INT(offset)), sizeof(struct coord_account),
                  account_row, account_item_release, &items, &len, err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

int
coord_store_account_patch(struct coord_store *s, const char *user_id,
                          const struct coord_account_patch *p, struct coord_account *out,
                          co_err *err)
{
    int64_t now = co_wall_ms();
    int64_t changes = 0;
    bool found = false;
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(s, Q_ACC_PATCH,
               PARAMS(P_TEXT(user_id), p->is_admin < 0 ? P_NULL : P_INT(p->is_admin),
                      p->disabled < 0 ? P_NULL : P_INT(p->disabled), P_TEXT(p->limits), P_INT(now)),
               &changes, err) < 0)
        goto out;
    if (changes == 0) {
        co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
        goto out;
    }
    if (out && account_load(s, user_id, out, &found, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

static void
key_row(struct db_res *r, void *item)
{
    struct coord_api_key *k = item;
    col_id(r, 0, k->key_id);
    col_id(r, 1, k->user_id);
    co_strlcpy(k->name, col_text(r, 2), sizeof(k->name));
    k->scopes = (unsigned)col_int(r, 3);
    k->created_at = col_int(r, 4);
    k->last_used_at = col_int(r, 5);
    k->revoked_at = col_int(r, 6);
}

static int
key_load(struct coord_store *s, const char *key_id, struct coord_api_key *out, bool *found,
         co_err *err)
{
    struct db_res r;
    if (q_run(s, Q_KEY_GET, PARAMS(P_TEXT(key_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0) {
        memset(out, 0, sizeof(*out));
        key_row(&r, out);
    }
    q_done(&r);
    if (rc < 0)
        return -1;
    *found = rc > 0;
    return 0;
}

int
coord_store_key_create(struct coord_store *s, struct coord_api_key *k, const char *token_hash,
                       co_err *err)
{
    if (!co_id_valid(k->key_id) || !co_id_valid(k->user_id))
        return co_err_set(err, CO_E_INVAL, "invalid key id '%s' or user id '%s'", k->key_id,
                          k->user_id);
    if (!token_hash || strlen(token_hash) != 64 || k->scopes < 1 || k->scopes > 7)
        return co_err_set(err, CO_E_INVAL, "key '%s': bad hash or scopes", k->key_id);
    int64_t now = co_wall_ms();
    struct coord_user u;
    bool found = false;
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (user_load(s, k->user_id, &u, &found, err) < 0)
        goto out;
    if (!found) {
        co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", k->user_id);
        goto out;
    }
    if (q_exec(s, Q_KEY_INSERT,
               PARAMS(P_TEXT(k->key_id), P_TEXT(k->user_id), P_TEXT(k->name), P_INT(k->scopes),
                      P_TEXT(token_hash), P_INT(now)),
               NULL, err) < 0)
        goto out;
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc == 0) {
        k->created_at = now;
        k->last_used_at = k->revoked_at = 0;
    }
    return rc;
}

int
coord_store_key_list(struct coord_store *s, const char *user_id, struct coord_api_key_list *out,
                     co_err *err)
{
    struct coord_user u;
    bool found = false;
    void *items;
    size_t len;
    if (user_load(s, user_id, &u, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
    if (rows_load(s, Q_KEY_LIST, PARAMS(P_TEXT(user_id)), sizeof(struct coord_api_key), key_row,
                  NULL, &items, &len, err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

int
coord_store_key_get(struct coord_store *s, const char *key_id, struct coord_api_key *out,
                    co_err *err)
{
    bool found;
    if (key_load(s, key_id, out, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such key '%s'", key_id);
    return 0;
}

int
coord_store_key_revoke(struct coord_store *s, const char *key_id, struct coord_api_key *out,
                       co_err *err)
{
    int64_t changes = 0;
    bool found = false;
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(s, Q_KEY_REVOKE, PARAMS(P_TEXT(key_id), P_INT(co_wall_ms())), &changes, err) < 0)
        goto out;
    if (changes == 0) {
        co_err_set(err, CO_E_NOTFOUND, "no such key '%s' (unknown or revoked already)", key_id);
        goto out;
    }
    if (out && key_load(s, key_id, out, &found, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_key_lookup(struct coord_store *s, const char *token_hash, int64_t touch_ms,
                       struct coord_key_owner *out, co_err *err)
{
    struct db_res r;
    int64_t last_used = 0;
    if (q_run(s, Q_KEY_LOOKUP, PARAMS(P_TEXT(token_hash)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0) {
        memset(out, 0, sizeof(*out));
        col_id(&r, 0, out->key_id);
        col_id(&r, 1, out->user_id);
        out->scopes = (unsigned)col_int(&r, 2);
        out->user_is_admin = col_int(&r, 3) != 0;
        const char *lim = col_null(&r, 4) ? "{}" : col_text(&r, 4);
        if (co_strlcpy(out->limits, lim, sizeof(out->limits)) >= sizeof(out->limits))
            co_strlcpy(out->limits, "{}", sizeof(out->limits));
        last_used = col_int(&r, 5);
    }
    q_done(&r);
    if (rc <= 0)
        return rc;
    int64_t now = co_wall_ms();
    /* A usage stamp, not a fact anything depends on: a failure to write it is not an error. */
    if (touch_ms > 0 && now - last_used >= touch_ms)
        (void)q_exec(s, Q_KEY_TOUCH, PARAMS(P_TEXT(out->key_id), P_INT(now)), NULL, NULL);
    return 1;
}

int
coord_store_key_lookup_plan(struct coord_store *s, char **plan, co_err *err)
{
    struct db_res r;
    struct co_buf b;
    int rc;
    co_buf_init(&b);
    if (q_run(s, Q_KEY_LOOKUP_PLAN, PARAMS(P_TEXT("0")), &r, err) < 0)
        return -1;
    /* SQLite: (id, parent, notused, detail); PostgreSQL: one text column per line. */
    int col = strcmp(s->ops->name, "sqlite") == 0 ? 3 : 0;
    while ((rc = q_next(&r, err)) > 0) {
        co_buf_puts(&b, col_text(&r, col));
        co_buf_puts(&b, "\n");
    }
    q_done(&r);
    if (rc < 0) {
        co_buf_release(&b);
        return -1;
    }
    *plan = b.data ? b.data : co_xstrdup("");
    return 0;
}

int
coord_store_audit_append(struct coord_store *s, const char *actor, const char *action,
                         const char *target, const char *detail, co_err *err)
{
    return q_exec(s, Q_AUDIT_INSERT,
                  PARAMS(P_INT(co_wall_ms()), P_TEXT(actor ? actor : ""), P_TEXT(action),
                         P_TEXT(target ? target : ""), P_TEXT(detail ? detail : "{}")),
                  NULL, err);
}

static void
audit_row(struct db_res *r, void *item)
{
    struct coord_audit_row *a = item;
    a->id = col_int(r, 0);
    a->at = col_int(r, 1);
    col_id(r, 2, a->actor);
    co_strlcpy(a->action, col_text(r, 3), sizeof(a->action));
    col_id(r, 4, a->target);
    a->detail = co_xstrdup(col_null(r, 5) ? "{}" : col_text(r, 5));
}

static void
audit_item_release(void *item)
{
    free(((struct coord_audit_row *)item)->detail);
}

int
coord_store_audit_list(struct coord_store *s, int64_t limit, int64_t offset,
                       struct coord_audit_list *out, co_err *err)
{
    void *items;
    size_t len;
    if (paging_check(limit, offset, err) < 0)
        return -1;
    if (rows_load(s, Q_AUDIT_LIST, PARAMS(P_INT(limit), P_INT(offset)),
                  sizeof(struct coord_audit_row), audit_row, audit_item_release, &items, &len,
                  err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

int
coord_store_check_invariant(struct coord_store *s, co_err *err)
{
    struct db_res r;
    int rc = -1, got;

    if (tx_begin(s, false, err) < 0)
        return -1;
    if (q_run(s, Q_INV_TOTALS, NULL, 0, &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        int64_t credits = col_int(&r, 0), held = col_int(&r, 1), grants = col_int(&r, 2);
        if (credits + held != grants)
            got = co_err_set(err, CO_E_INTERNAL,
                             "credit invariant broken: balances %lld + holds %lld != grants %lld",
                             (long long)credits, (long long)held, (long long)grants);
    }
    q_done(&r);
    if (got < 0)
        goto out;

    if (q_run(s, Q_INV_LEDGER, NULL, 0, &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0)
        got = co_err_set(err, CO_E_INTERNAL,
                         "credit invariant broken: user '%s' has %lld + %lld held but its "
                         "ledger sums to %lld + %lld held",
                         col_text(&r, 0), (long long)col_int(&r, 1), (long long)col_int(&r, 2),
                         (long long)col_int(&r, 3), (long long)col_int(&r, 4));
    q_done(&r);
    if (got != 0)
        goto out;

    if (q_run(s, Q_INV_HELD, NULL, 0, &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0)
        got = co_err_set(err, CO_E_INTERNAL,
                         "credit invariant broken: user '%s' holds %lld but its open jobs cost "
                         "%lld",
                         col_text(&r, 0), (long long)col_int(&r, 1), (long long)col_int(&r, 2));
    q_done(&r);
    if (got != 0)
        goto out;

    if (q_run(s, Q_INV_SETTLED, NULL, 0, &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0)
        got = co_err_set(err, CO_E_INTERNAL,
                         "credit invariant broken: job '%s' (%s) has %lld settlements",
                         col_text(&r, 0), col_text(&r, 1), (long long)col_int(&r, 2));
    q_done(&r);
    if (got != 0 || coord_verify_check_invariant(s, err) != 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

/* ---- system ---- */

int
coord_store_health(struct coord_store *s, struct coord_health *out, co_err *err)
{
    struct db_res r;
    int rc = -1, got;
    int64_t before = co_wall_ms() - s->cfg.worker_timeout_ms;

    memset(out, 0, sizeof(*out));
    if (tx_begin(s, false, err) < 0)
        return -1;
    if (q_run(s, Q_H_JOBS, NULL, 0, &r, err) < 0)
        goto out;
    while ((got = q_next(&r, err)) > 0) {
        int st = coord_job_status_parse(col_text(&r, 0));
        if (st >= 0)
            out->jobs[st] = col_int(&r, 1);
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (q_run(s, Q_H_WORKERS, PARAMS(P_INT(before)), &r, err) < 0)
        goto out;
    while ((got = q_next(&r, err)) > 0) {
        int st = coord_worker_status_parse(col_text(&r, 0));
        if (st >= 0)
            out->workers[st] += col_int(&r, 1);
        out->workers_total += col_int(&r, 1);
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (q_run(s, Q_H_USERS, NULL, 0, &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        out->total_credits = col_int(&r, 0);
        out->active_users = col_int(&r, 1);
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (q_int(s, Q_H_UNFIT, PARAMS(P_INT(before)), &out->pending_unfit, NULL, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

/* ---- idempotency keys ---- */

#define IDEM_PARAMS(k)                                                                             \
    P_TEXT((k)->credential), P_TEXT((k)->method), P_TEXT((k)->path), P_TEXT((k)->key)

void
coord_idem_answer_release(struct coord_idem_answer *a)
{
    free(a->response);
    a->response = NULL;
    a->len = 0;
}

int
coord_store_idem_reserve(struct coord_store *s, const struct coord_idem_key *k,
                         const char *body_hash, int64_t now_ms, int64_t ttl_ms, bool *reserved,
                         struct coord_idem_answer *prev, co_err *err)
{
    struct db_res r;
    int64_t changes = 0;
    int rc = -1, got;

    *reserved = false;
    memset(prev, 0, sizeof(*prev));
    if (tx_begin(s, true, err) < 0)
        return -1;
    /* An expired row no longer binds the key: the request runs again. */
    if (q_exec(s, Q_IDEM_EXPIRE, PARAMS(IDEM_PARAMS(k), P_INT(now_ms)), NULL, err) < 0)
        goto out;
    if (q_exec(s, Q_IDEM_INSERT,
               PARAMS(IDEM_PARAMS(k), P_TEXT(body_hash), P_BLOB("", 0), P_INT(now_ms),
                      P_INT(now_ms + ttl_ms)),
               &changes, err) < 0)
        goto out;
    if (changes > 0) {
        *reserved = true;
        rc = 0;
        goto out;
    }
    if (q_run(s, Q_IDEM_GET, PARAMS(IDEM_PARAMS(k)), &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        size_t len = 0;
        const void *data = s->ops->col_blob(&r, 2, &len);
        co_strlcpy(prev->body_hash, col_text(&r, 0), sizeof(prev->body_hash));
        prev->status = (int)col_int(&r, 1);
        prev->response = co_xmalloc(len + 1);
        if (len)
            memcpy(prev->response, data, len);
        prev->response[len] = '\0';
        prev->len = len;
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (got == 0) {
        /* Gone between the insert and the read (purged): the caller may try again. */
        co_err_set(err, CO_E_CONFLICT, "idempotency key vanished");
        goto out;
    }
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc < 0)
        coord_idem_answer_release(prev);
    return rc;
}

int
coord_store_idem_complete(struct coord_store *s, const struct coord_idem_key *k, int status,
                          const char *response, size_t len, co_err *err)
{
    int64_t changes = 0;
    if (q_exec(s, Q_IDEM_SET, PARAMS(IDEM_PARAMS(k), P_INT(status), P_BLOB(response, len)),
               &changes, err) < 0)
        return -1;
    if (changes == 0)
        return co_err_set(err, CO_E_NOTFOUND, "idempotency key not reserved");
    return 0;
}

/* ---- retention ---- */

/* Artifact rows of old finished jobs: at most @limit rows of each table, counted together. */
static int
retention_artifacts_step(struct coord_store *s, int64_t cutoff_ms, int64_t limit, int64_t *n,
                         co_err *err)
{
    static const enum store_q qs[] = {Q_RET_ART_SETS, Q_RET_ART_FILES, Q_RET_ART_CHUNKS};
    *n = 0;
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        int64_t k = 0;
        if (q_exec(s, qs[i], PARAMS(P_INT(cutoff_ms), P_INT(limit)), &k, err) < 0)
            return -1;
        *n += k;
    }
    return 0;
}

/* Callback rows (0008) of old finished jobs whose delivery is over. */
static int
retention_webhook_step(struct coord_store *s, int64_t cutoff_ms, int64_t limit, int64_t *n,
                       co_err *err)
{
    int64_t a = 0, d = 0;
    if (q_exec(s, Q_RET_WH_ATTEMPTS, PARAMS(P_INT(cutoff_ms), P_INT(limit)), &a, err) < 0 ||
        q_exec(s, Q_RET_WH_DELIVERIES, PARAMS(P_INT(cutoff_ms), P_INT(limit)), &d, err) < 0)
        return -1;
    *n = a + d;
    return 0;
}

int
coord_store_retention_step(struct coord_store *s, int64_t cutoff_ms, int64_t now_ms, int64_t limit,
                           struct coord_retention_counts *c, co_err *err)
{
    int64_t n = 0;
    int rc = -1;

    memset(c, 0, sizeof(*c));
    if (limit < 1)
        return co_err_set(err, CO_E_RANGE, "retention batch must be >= 1");
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(s, Q_RET_CODE, PARAMS(P_INT(cutoff_ms), P_INT(limit)), &c->job_code, err) < 0 ||
        q_exec(s, Q_RET_CHUNKS, PARAMS(P_INT(cutoff_ms), P_INT(limit)), &c->output_chunks, err) <
            0 ||
        q_exec(s, Q_RET_OUTPUT, PARAMS(P_INT(cutoff_ms), P_INT(limit)), &c->outputs, err) < 0 ||
        retention_artifacts_step(s, cutoff_ms, limit, &c->artifacts, err) < 0 ||
        q_exec(s, Q_RET_WORKERS, PARAMS(P_INT(cutoff_ms), P_INT(limit)), &c->workers, err) < 0 ||
        q_exec(s, Q_RET_IDEM, PARAMS(P_INT(now_ms), P_INT(limit)), &n, err) < 0 ||
        retention_webhook_step(s, cutoff_ms, limit, &c->deliveries, err) < 0 ||
        q_exec(s, Q_RET_OUTCOMES, PARAMS(P_INT(limit)), &c->outcomes, err) < 0)
        goto out;
    c->idem_keys = n;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

/* ---- artifacts ---- */

/* The sha256 of the stored chunks of one file, as 64 hex digits in @hex. */
static int
artifact_hash(struct coord_store *s, const char *job_id, int attempt, const char *path,
              char hex[65], co_err *err)
{
    struct db_res r;
    struct coord_sha256 h;
    coord_sha256_init(&h);
    if (q_run(s, Q_ART_FILE_CHUNKS, PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path)), &r, err) <
        0)
        return -1;
    int got;
    while ((got = q_next(&r, err)) > 0) {
        size_t n = 0;
        const void *p = s->ops->col_blob(&r, 0, &n);
        coord_sha256_update(&h, p, n);
    }
    q_done(&r);
    if (got < 0)
        return -1;
    coord_sha256_hex(&h, hex);
    return 0;
}

int
coord_store_artifact_append(struct coord_store *s, const char *job_id, const char *worker_id,
                            int attempt, const char *path, int64_t offset, const char *data,
                            size_t len, bool eof, int64_t max_bytes, bool *capped, co_err *err)
{
    struct db_res r;
    int rc = -1, got;
    int64_t size = -1, done = 0, stored = 0;

    *capped = false;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (job_fence_current(s, job_id, worker_id, attempt, err) < 0)
        goto out;
    if (offset == 0) {
        /* An attempt's artifacts replace the earlier attempts'. */
        if (q_exec(s, Q_ART_DROP_OLD_CHUNKS, PARAMS(P_TEXT(job_id), P_INT(attempt)), NULL, err) <
                0 ||
            q_exec(s, Q_ART_DROP_OLD_FILES, PARAMS(P_TEXT(job_id), P_INT(attempt)), NULL, err) <
                0 ||
            q_exec(s, Q_ART_DROP_SET, PARAMS(P_TEXT(job_id)), NULL, err) < 0)
            goto out;
    }
    if (max_bytes > 0) {
        /* The coordinator's own cap: an agent that sends more is cut off here. */
        if (q_int(s, Q_ART_ATTEMPT_BYTES, PARAMS(P_TEXT(job_id), P_INT(attempt)), &stored, NULL,
                  err) < 0)
            goto out;
        /* A file that ends exactly at the cap still gets its end (an empty chunk with eof). */
        if (stored >= max_bytes && !(len == 0 && eof)) {
            *capped = true;
            rc = 0;
            goto out;
        }
        if ((int64_t)len > max_bytes - stored) {
            len = (size_t)(max_bytes - stored);
            eof = true;
            *capped = true;
        }
    }
    if (offset == 0 && q_exec(s, Q_ART_FILE_INSERT,
                              PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path)), NULL, err) < 0)
        goto out;
    if (q_run(s, Q_ART_FILE_SIZE, PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path)), &r, err) <
        0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        size = col_int(&r, 0);
        done = col_int(&r, 1);
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (size != offset || done) {
        co_err_set(err, CO_E_CONFLICT,
                   "artifact '%s' of job '%s' attempt %d: chunk at offset %lld, stored %lld%s",
                   path, job_id, attempt, (long long)offset, (long long)size,
                   done ? " (complete)" : "");
        goto out;
    }
    if (len > 0 &&
        (q_exec(s, Q_ART_CHUNK_INSERT,
                PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path), P_BLOB(data, len)), NULL,
                err) < 0 ||
         q_exec(s, Q_ART_FILE_GROW,
                PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path), P_INT(len)), NULL, err) < 0))
        goto out;
    if (eof) {
        char hex[65];
        const char *sha = hex;
        if (artifact_hash(s, job_id, attempt, path, hex, err) < 0 ||
            q_exec(s, Q_ART_FILE_SHA,
                   PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path), P_TEXT(sha)), NULL,
                   err) < 0)
            goto out;
    }
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_artifact_finish(struct coord_store *s, const char *job_id, const char *worker_id,
                            int attempt, const struct coord_artifact_set *set, int64_t max_bytes,
                            co_err *err)
{
    int rc = -1;
    int64_t stored = 0;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (job_fence_current(s, job_id, worker_id, attempt, err) < 0)
        goto out;
    /* No file at all: nothing dropped the earlier attempts' rows yet. */
    if (q_exec(s, Q_ART_DROP_OLD_CHUNKS, PARAMS(P_TEXT(job_id), P_INT(attempt)), NULL, err) < 0 ||
        q_exec(s, Q_ART_DROP_OLD_FILES, PARAMS(P_TEXT(job_id), P_INT(attempt)), NULL, err) < 0 ||
        q_exec(s, Q_ART_DROP_SET, PARAMS(P_TEXT(job_id)), NULL, err) < 0 ||
        q_int(s, Q_ART_ATTEMPT_BYTES, PARAMS(P_TEXT(job_id), P_INT(attempt)), &stored, NULL, err) <
            0)
        goto out;
    /* What was stored, not what the agent claims: the coordinator's cap cut something when it
     * is reached with less stored than the agent sent (a set of exactly the cap is whole). */
    bool truncated =
        set->truncated || (max_bytes > 0 && stored >= max_bytes && set->bytes > stored);
    if (q_exec(s, Q_ART_SET_INSERT,
               PARAMS(P_TEXT(job_id), P_INT(attempt), P_INT(set->files), P_INT(stored),
                      P_INT(truncated), P_INT(set->skipped), P_TEXT(set->notes)),
               NULL, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_artifact_list(struct coord_store *s, const char *job_id,
                          struct coord_artifact_list *out, co_err *err)
{
    struct db_res r;
    int rc = -1, got;
    int64_t one;
    bool found;

    memset(out, 0, sizeof(*out));
    if (tx_begin(s, false, err) < 0)
        return -1;
    if (q_int(s, Q_JOB_GET_NOCODE, PARAMS(P_TEXT(job_id)), &one, &found, err) < 0)
        goto out;
    if (!found) {
        co_err_set(err, CO_E_NOTFOUND, "no such job '%s'", job_id);
        goto out;
    }
    if (q_run(s, Q_ART_SET_GET, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        goto out;
    got = q_next(&r, err);
    if (got > 0) {
        out->complete = true;
        out->attempt = (int)col_int(&r, 0);
        out->truncated = col_int(&r, 1) != 0;
        out->skipped = col_int(&r, 2);
        out->notes = co_xstrdup(col_text(&r, 3));
    }
    q_done(&r);
    if (got < 0)
        goto out;
    if (out->complete) {
        if (q_run(s, Q_ART_LIST, PARAMS(P_TEXT(job_id), P_INT(out->attempt)), &r, err) < 0)
            goto out;
        size_t cap = 0;
        while ((got = q_next(&r, err)) > 0) {
            if (out->len == cap) {
                cap = cap ? cap * 2 : 16;
                out->items = co_xreallocarray(out->items, cap, sizeof(*out->items));
            }
            struct coord_artifact *a = &out->items[out->len++];
            a->path = co_xstrdup(col_text(&r, 0));
            a->size = col_int(&r, 1);
            co_strlcpy(a->sha256, col_text(&r, 2), sizeof(a->sha256));
        }
        q_done(&r);
        if (got < 0)
            goto out;
    }
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc < 0)
        coord_artifact_list_release(out);
    return rc;
}

int
coord_store_artifact_read(struct coord_store *s, const char *job_id, int attempt, const char *path,
                          struct co_buf *out, co_err *err)
{
    struct db_res r;
    int rc = -1, got;
    if (tx_begin(s, false, err) < 0)
        return -1;
    if (q_run(s, Q_ART_FILE_CHUNKS, PARAMS(P_TEXT(job_id), P_INT(attempt), P_TEXT(path)), &r, err) <
        0)
        goto out;
    while ((got = q_next(&r, err)) > 0)
        blob_append(&r, 0, out);
    q_done(&r);
    if (got < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

/* ---- scale-out (coord_node) ---- */

int
coord_store_worker_session_begin(struct coord_store *s, const char *worker_id, const char *node_id,
                                 int64_t *epoch, co_err *err)
{
    bool found = false;
    if (q_int(s, Q_WORKER_SESSION_BEGIN, PARAMS(P_TEXT(worker_id), P_TEXT(node_id)), epoch, &found,
              err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
    return 0;
}

int
coord_store_worker_session_get(struct coord_store *s, const char *worker_id, bool lock,
                               char *node_id, size_t node_size, int64_t *epoch, co_err *err)
{
    struct db_res r;
    if (q_run(s, lock ? Q_WORKER_SESSION_LOCK : Q_WORKER_SESSION_GET, PARAMS(P_TEXT(worker_id)), &r,
              err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0) {
        co_strlcpy(node_id, col_text(&r, 0), node_size);
        *epoch = col_int(&r, 1);
    }
    q_done(&r);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
    return 0;
}

int
coord_store_reaper_lock(struct coord_store *s, co_err *err)
{
    int64_t got = 0;
    if (q_int(s, Q_REAPER_LOCK, NULL, 0, &got, NULL, err) < 0)
        return -1;
    return got ? 1 : 0;
}

int
coord_store_now_ms(struct coord_store *s, int64_t *out, co_err *err)
{
    return q_int(s, Q_DB_NOW, NULL, 0, out, NULL, err);
}
/* ---- for coord_verify (store_int.h) ---- */

int
store_run(struct coord_store *s, enum store_q q, const struct db_param *p, int n, struct db_res *r,
          co_err *err)
{
    return q_run(s, q, p, n, r, err);
}

int
store_next(struct db_res *r, co_err *err)
{
    return q_next(r, err);
}

void
store_done(struct db_res *r)
{
    q_done(r);
}

int
store_exec(struct coord_store *s, enum store_q q, const struct db_param *p, int n, int64_t *changes,
           co_err *err)
{
    return q_exec(s, q, p, n, changes, err);
}

int
store_job_load(struct coord_store *s, enum store_q q, const char *job_id, struct coord_job *out,
               co_err *err)
{
    return job_load_must(s, q, job_id, out, err);
}

int
store_job_set_final(struct coord_store *s, const struct coord_job *j, enum coord_job_status st,
                    enum coord_failure f, const struct coord_job_result *r, int64_t now,
                    co_err *err)
{
    return job_set_final(s, j, st, f, r, NULL, now, err);
}

int
store_money_move(struct coord_store *s, const char *user_id, const char *job_id,
                 enum coord_ledger_kind kind, int64_t d_credits, int64_t d_held, const char *note,
                 int64_t now, co_err *err)
{
    return money_move(s, user_id, job_id, kind, d_credits, d_held, note, now, err);
}

int
store_outcome_note(struct coord_store *s, const char *worker_id, const char *job_id,
                   enum coord_outcome o, int64_t now, co_err *err)
{
    return outcome_note(s, worker_id, job_id, o, now, err);
}

int
store_users_lock_ensure(struct coord_store *s, const char **ids, size_t n,
                        const char *const *workers, const char *plain, int64_t now, co_err *err)
{
    return users_lock_sorted_ensure(s, ids, n, workers, plain, now, err);
}

int
store_worker_owner(struct coord_store *s, const char *worker_id, char owner[CO_ID_MAX + 1],
                   co_err *err)
{
    bool found;
    return worker_owner(s, worker_id, owner, &found, err);
}

/* ---- callbacks (coord_webhook.h; tables of sql/<backend>/0008_callbacks.sql) ---- */

void
coord_webhook_due_list_release(struct coord_webhook_due_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].url);
        free(l->items[i].secret);
        coord_job_release(&l->items[i].job);
    }
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

static void
webhook_due_row(struct db_res *r, void *item)
{
    struct coord_webhook_due *d = item;
    col_id(r, 0, d->delivery_id);
    co_strlcpy(d->job.job_id, col_text(r, 1), sizeof(d->job.job_id));
    d->url = col_dup(r, 2);
    d->attempts = (int)col_int(r, 3);
    d->first_attempt_at = col_int(r, 4);
}

static void
webhook_due_release(void *item)
{
    struct coord_webhook_due *d = item;
    free(d->url);
    free(d->secret);
    coord_job_release(&d->job);
}

/* The row's job and its buyer's secret. */
static int
webhook_due_fill(struct coord_store *s, struct coord_webhook_due *d, co_err *err)
{
    char job_id[CO_ID_MAX + 1];
    co_strlcpy(job_id, d->job.job_id, sizeof(job_id));
    if (job_load_must(s, Q_JOB_GET_NOCODE, job_id, &d->job, err) < 0)
        return -1;
    struct db_res r;
    if (q_run(s, Q_WH_SECRET_GET, PARAMS(P_TEXT(d->job.buyer_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    d->secret = co_xstrdup(rc > 0 ? col_text(&r, 0) : "");
    q_done(&r);
    return rc < 0 ? -1 : 0;
}

int
coord_store_webhook_claim(struct coord_store *s, int64_t now_ms, int64_t lease_until_ms,
                          int64_t limit, struct coord_webhook_due_list *out, co_err *err)
{
    void *items = NULL;
    size_t len = 0;
    int rc = -1;

    out->items = NULL;
    out->len = 0;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (rows_load(s, Q_WH_DUE, PARAMS(P_INT(now_ms), P_INT(limit)),
                  sizeof(struct coord_webhook_due), webhook_due_row, webhook_due_release, &items,
                  &len, err) < 0)
        goto out;
    out->items = items;
    out->len = len;
    for (size_t i = 0; i < len; i++) {
        struct coord_webhook_due *d = &out->items[i];
        if (q_exec(s, Q_WH_LEASE, PARAMS(P_TEXT(d->delivery_id), P_INT(lease_until_ms)), NULL,
                   err) < 0 ||
            webhook_due_fill(s, d, err) < 0)
            goto out;
    }
    rc = 0;
out:
    rc = tx_end(s, rc, err);
    if (rc < 0)
        coord_webhook_due_list_release(out);
    return rc;
}

int
coord_store_webhook_record(struct coord_store *s, const struct coord_webhook_outcome *o,
                           co_err *err)
{
    bool pending = strcmp(o->state, "pending") == 0;
    int64_t now = co_wall_ms();
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(s, Q_WH_ATTEMPT_INSERT,
               PARAMS(P_TEXT(o->delivery_id), P_TEXT(o->job_id), P_INT(o->attempt), P_INT(o->at_ms),
                      o->status_code > 0 ? P_INT(o->status_code) : P_NULL, P_TEXT(o->error),
                      P_INT(o->duration_ms)),
               NULL, err) < 0 ||
        q_exec(s, Q_WH_UPDATE,
               PARAMS(P_TEXT(o->delivery_id), P_TEXT(o->state), P_INT(o->attempt),
                      P_INT(o->first_attempt_at), pending ? P_INT(o->next_at) : P_NULL,
                      pending ? P_NULL : P_INT(now)),
               NULL, err) < 0)
        goto out;
    rc = 0;
out:
    return tx_end(s, rc, err);
}

int
coord_store_webhook_secret_set(struct coord_store *s, const char *user_id, const char *secret,
                               co_err *err)
{
    return q_exec(s, Q_WH_SECRET_SET, PARAMS(P_TEXT(user_id), P_TEXT(secret), P_INT(co_wall_ms())),
                  NULL, err);
}

void
coord_webhook_log_release(struct coord_webhook_log *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i].error);
    free(l->items);
    free(l->url);
    memset(l, 0, sizeof(*l));
}

static void
webhook_attempt_row(struct db_res *r, void *item)
{
    struct coord_webhook_attempt *a = item;
    a->attempt = (int)col_int(r, 0);
    a->at = col_int(r, 1);
    a->status_code = (int)col_int(r, 2);
    a->error = col_dup(r, 3);
    a->duration_ms = col_int(r, 4);
}

static void
webhook_attempt_release(void *item)
{
    free(((struct coord_webhook_attempt *)item)->error);
}

int
coord_store_webhook_log(struct coord_store *s, const char *job_id, struct coord_webhook_log *out,
                        co_err *err)
{
    struct db_res r;
    memset(out, 0, sizeof(*out));
    if (q_run(s, Q_WH_GET, PARAMS(P_TEXT(job_id)), &r, err) < 0)
        return -1;
    int rc = q_next(&r, err);
    if (rc > 0) {
        out->found = true;
        col_id(&r, 0, out->delivery_id);
        out->url = col_dup(&r, 1);
        co_strlcpy(out->state, col_text(&r, 2), sizeof(out->state));
        out->attempts = (int)col_int(&r, 3);
        out->first_attempt_at = col_int(&r, 4);
        out->next_at = col_int(&r, 5);
        out->done_at = col_int(&r, 6);
    }
    q_done(&r);
    if (rc <= 0)
        return rc;
    void *items = NULL;
    if (rows_load(s, Q_WH_ATTEMPTS, PARAMS(P_TEXT(job_id)), sizeof(struct coord_webhook_attempt),
                  webhook_attempt_row, webhook_attempt_release, &items, &out->len, err) < 0) {
        coord_webhook_log_release(out);
        return -1;
    }
    out->items = items;
    return 0;
}

/* ---- reputation, prices, statements (migration 0011) ---- */

static const char *const outcome_names[COORD_OUTCOME_COUNT] = {"completed", "lost", "timeout",
                                                               "rejected", "mismatch"};

const char *
coord_outcome_name(enum coord_outcome o)
{
    return (unsigned)o < COORD_OUTCOME_COUNT ? outcome_names[o] : "completed";
}

int
coord_store_outcome_record(struct coord_store *s, const char *worker_id, const char *job_id,
                           enum coord_outcome o, co_err *err)
{
    struct coord_worker w;
    bool found;
    int rc = -1;
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (worker_load(s, worker_id, &w, &found, err) < 0)
        goto out;
    if (!found) {
        co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
        goto out;
    }
    rc = outcome_note(s, worker_id, job_id, o, co_wall_ms(), err);
out:
    return tx_end(s, rc, err);
}

int
coord_store_worker_set_price(struct coord_store *s, const char *worker_id,
                             const struct coord_rate *price, struct coord_worker *out, co_err *err)
{
    int64_t changes = 0;
    bool found;
    int rc = -1;
    if (price->per_core_second < 0 || price->per_gb_second < 0)
        return co_err_field(err, CO_E_INVAL, "price_per_core_second", "negative price");
    if (tx_begin(s, true, err) < 0)
        return -1;
    if (q_exec(
            s, Q_WORKER_SET_PRICE,
            PARAMS(P_TEXT(worker_id), P_INT(price->per_core_second), P_INT(price->per_gb_second)),
            &changes, err) < 0)
        goto out;
    if (changes == 0) {
        co_err_set(err, CO_E_NOTFOUND, "no such worker '%s'", worker_id);
        goto out;
    }
    if (out) {
        if (worker_load(s, worker_id, out, &found, err) < 0)
            goto out;
    }
    rc = 0;
out:
    return tx_end(s, rc, err);
}

static void
terms_row(struct db_res *r, void *item)
{
    struct coord_worker *w = item;
    col_id(r, 0, w->worker_id);
    col_id(r, 1, w->owner_id);
    w->price.per_core_second = col_int(r, 2);
    w->price.per_gb_second = col_int(r, 3);
    w->reputation = col_int(r, 4);
}

int
coord_store_worker_terms(struct coord_store *s, struct coord_worker_list *out, co_err *err)
{
    void *items;
    size_t len;
    if (rows_load(s, Q_WORKER_TERMS, NULL, 0, sizeof(struct coord_worker), terms_row, NULL, &items,
                  &len, err) < 0)
        return -1;
    out->items = items;
    out->len = len;
    return 0;
}

#define DAY_MS INT64_C(86400000)

int
coord_store_statement(struct coord_store *s, const char *user_id, int64_t days, int64_t now_ms,
                      struct coord_statement *out, co_err *err)
{
    struct coord_user u;
    bool found;
    struct db_res r;
    memset(out, 0, sizeof(*out));
    if (days < 1 || days > 366)
        return co_err_field(err, CO_E_RANGE, "days", "days %lld outside 1-366", (long long)days);
    if (user_load(s, user_id, &u, &found, err) < 0)
        return -1;
    if (!found)
        return co_err_set(err, CO_E_NOTFOUND, "no such user '%s'", user_id);
    int64_t last = now_ms / DAY_MS, first = last - days + 1;
    out->items = co_xcalloc((size_t)days, sizeof(*out->items));
    out->len = (size_t)days;
    for (int64_t d = 0; d < days; d++) {
        time_t t = (time_t)((first + d) * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out->items[d].day, sizeof(out->items[d].day), "%Y-%m-%d", &tm);
    }
    if (q_run(s, Q_STATEMENT, PARAMS(P_TEXT(user_id), P_INT(first * DAY_MS)), &r, err) < 0)
        goto fail;
    int rc;
    while ((rc = q_next(&r, err)) > 0) {
        int64_t d = col_int(&r, 0) - first;
        if (d < 0 || d >= days)
            continue;
        out->items[d].spent = col_int(&r, 1);
        out->items[d].earned = col_int(&r, 2);
        out->items[d].fees = col_int(&r, 3);
    }
    q_done(&r);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    free(out->items);
    memset(out, 0, sizeof(*out));
    return -1;
}
