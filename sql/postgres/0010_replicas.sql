-- Replicated execution (API.md "Verified results, reputation, pricing"; coordinator/README.md
-- "Replicas").  A job submitted with replicas > 1 (the parent) is never placed itself: it holds
-- the buyer's money and shows the verdict.  Each replica is an ordinary job row (parent_job_id
-- set, cost 0) that agents run like any other job, with its own attempts, output and artifacts.
ALTER TABLE jobs ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN parent_job_id TEXT;
CREATE INDEX jobs_parent ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;

-- One row per replica: the result digest the coordinator computed from what it stored, and the
-- outcome once the parent is decided: 'agree', 'mismatch' (a result outside the majority),
-- 'unverified' (no majority formed) or 'void' (no result: lost, cancelled, platform fault).
-- Reputation reads outcomes per worker and owner (job_replica_worker).
CREATE TABLE job_replica (
    job_id        TEXT    PRIMARY KEY REFERENCES jobs (job_id),
    parent_job_id TEXT    NOT NULL REFERENCES jobs (job_id),
    idx           INTEGER NOT NULL,
    tiebreak      INTEGER NOT NULL DEFAULT 0,
    worker_id     TEXT,
    owner_id      TEXT,
    digest        TEXT,
    outcome       TEXT,
    decided_at    BIGINT,
    UNIQUE (parent_job_id, idx)
);
CREATE INDEX job_replica_worker ON job_replica (worker_id, decided_at);
CREATE INDEX job_replica_owner_outcome ON job_replica (owner_id, decided_at);

-- Every owner a replica of the parent was ever claimed by (never twice on one owner, also after
-- a lost replica).  The claim inserts here in its transaction: the primary key decides races.
CREATE TABLE job_replica_owner (
    parent_job_id TEXT NOT NULL REFERENCES jobs (job_id),
    owner_id      TEXT NOT NULL,
    PRIMARY KEY (parent_job_id, owner_id)
);
