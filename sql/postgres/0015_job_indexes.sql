-- Fewer index entries per job row write (PostgreSQL only: SQLite updates an index only when a
-- column of it changes, so it keeps its indexes and has no 0015).
--
-- Every step of a job (insert, claim, start, finish) changes an indexed column (status,
-- assigned_worker), so each writes a new row version with a new entry in every index of jobs
-- except the partial ones whose predicate the new version fails.  An index that the queries
-- only ever search for open jobs is made partial on them: it takes no entry when the job
-- finishes and stays as small as the queue instead of growing with the history.
--
-- jobs_queue: searched by status only for open jobs (store.c Q_JOB_PENDING, Q_JOB_NEXT_FIT,
-- Q_JOB_PENDING_EXCEPT, Q_JOB_ACTIVE, Q_JOB_POLL_UNSTARTED, Q_BUYERS_RUNNING, Q_H_UNFIT).
-- Listing jobs of any status goes through jobs_created or jobs_buyer (Q_JOB_LIST).
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (status, priority DESC, created_at, id)
    WHERE status IN ('pending', 'assigned', 'running');
-- jobs_buyer_status: a buyer's pending jobs at submission (Q_JOB_PENDING_OF) and open jobs
-- (Q_INV_HELD); a buyer's listing of any status goes through jobs_buyer.
DROP INDEX jobs_buyer_status;
CREATE INDEX jobs_buyer_status ON jobs (buyer_id, status)
    WHERE status IN ('pending', 'assigned', 'running');
-- jobs_worker: every query names a worker (assigned_worker = ..., which implies NOT NULL), so
-- a pending job (no worker yet) needs no entry.  It stays on every assigned job, finished or
-- not: retention asks whether any job row names a worker (Q_RET_WORKERS).
DROP INDEX jobs_worker;
CREATE INDEX jobs_worker ON jobs (assigned_worker, status) WHERE assigned_worker IS NOT NULL;
-- jobs_pending_shape: SQLite's placement index (named in Q_JOB_PENDING_FIT there); PostgreSQL
-- reads the placeable jobs through jobs_pending_turn and the pending ones through jobs_queue.
DROP INDEX jobs_pending_shape;
-- Counting every job by status (Q_H_JOBS) read the whole jobs_worker, the one full index that
-- held status: jobs_buyer carries it instead (no more entries, a little wider).
DROP INDEX jobs_buyer;
CREATE INDEX jobs_buyer ON jobs (buyer_id, created_at) INCLUDE (status);
