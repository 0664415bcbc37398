-- Reputation and prices (#14; coord_price.h, API.md "Verified results, reputation, pricing").
-- Money is integer micro-credits; a reputation is an integer in parts per million (0-1000000),
-- so that every database computes the same score without floating point.

-- How a job is priced, decided at submit (metered: the prices of that moment; market: the
-- buyer's maximum, and at the claim the chosen seller's prices), and what it was charged.
ALTER TABLE jobs ADD COLUMN pricing TEXT NOT NULL DEFAULT 'flat'
    CHECK (pricing IN ('flat', 'metered', 'market'));
ALTER TABLE jobs ADD COLUMN price_per_core_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN price_per_gb_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_price_per_core_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_price_per_gb_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN min_reputation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN charged INTEGER;

-- A seller's prices per worker (PRICING=market) and the worker's score, recomputed by the store
-- in the transaction that records an outcome.
ALTER TABLE worker_registrations ADD COLUMN price_per_core_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker_registrations ADD COLUMN price_per_gb_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker_registrations ADD COLUMN reputation INTEGER NOT NULL DEFAULT 800000;

-- Outcomes of attempts, the input of reputation.  'mismatch' is written by replica
-- verification (a result that disagreed with the majority).
CREATE TABLE worker_outcome (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id  TEXT    NOT NULL,
    owner_id   TEXT    NOT NULL,
    job_id     TEXT,
    kind       TEXT    NOT NULL CHECK (kind IN ('completed', 'lost', 'timeout', 'rejected',
                                                'mismatch')),
    created_at INTEGER NOT NULL
);
CREATE INDEX worker_outcome_worker ON worker_outcome (worker_id, id);
CREATE INDEX worker_outcome_owner ON worker_outcome (owner_id, id);

-- Ledger kind 'fee' (PLATFORM_FEE_PERCENT of a payout, to user 'platform').  SQLite cannot
-- change a CHECK constraint: the table is rebuilt with the same rows and ids.
CREATE TABLE ledger_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT    NOT NULL REFERENCES users (user_id),
    job_id     TEXT    REFERENCES jobs (job_id),
    kind       TEXT    NOT NULL CHECK (kind IN ('grant', 'hold', 'charge', 'payout', 'refund',
                                                'fee')),
    amount     INTEGER NOT NULL,
    held       INTEGER NOT NULL,
    balance    INTEGER NOT NULL,
    note       TEXT,
    created_at INTEGER NOT NULL
);
INSERT INTO ledger_new (id, user_id, job_id, kind, amount, held, balance, note, created_at)
    SELECT id, user_id, job_id, kind, amount, held, balance, note, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE UNIQUE INDEX ledger_job_kind ON ledger (job_id, kind) WHERE job_id IS NOT NULL;
CREATE INDEX ledger_user ON ledger (user_id, id);
-- Statements: a user's rows by day.
CREATE INDEX ledger_user_time ON ledger (user_id, created_at);
