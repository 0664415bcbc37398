-- Reputation and prices (#14; coord_price.h, API.md "Verified results, reputation, pricing").
-- Money is integer micro-credits; a reputation is an integer in parts per million (0-1000000),
-- so that every database computes the same score without floating point.

-- How a job is priced, decided at submit (metered: the prices of that moment; market: the
-- buyer's maximum, and at the claim the chosen seller's prices), and what it was charged.
ALTER TABLE jobs ADD COLUMN pricing TEXT NOT NULL DEFAULT 'flat'
    CHECK (pricing IN ('flat', 'metered', 'market'));
ALTER TABLE jobs ADD COLUMN price_per_core_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN price_per_gb_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_price_per_core_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_price_per_gb_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN min_reputation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN charged BIGINT;

-- A seller's prices per worker (PRICING=market) and the worker's score, recomputed by the store
-- in the transaction that records an outcome.
ALTER TABLE worker_registrations ADD COLUMN price_per_core_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE worker_registrations ADD COLUMN price_per_gb_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE worker_registrations ADD COLUMN reputation BIGINT NOT NULL DEFAULT 800000;

-- Outcomes of attempts, the input of reputation.  'mismatch' is written by replica
-- verification (a result that disagreed with the majority).
CREATE TABLE worker_outcome (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker_id  TEXT    NOT NULL,
    owner_id   TEXT    NOT NULL,
    job_id     TEXT,
    kind       TEXT    NOT NULL CHECK (kind IN ('completed', 'lost', 'timeout', 'rejected',
                                                'mismatch')),
    created_at BIGINT  NOT NULL
);
CREATE INDEX worker_outcome_worker ON worker_outcome (worker_id, id);
CREATE INDEX worker_outcome_owner ON worker_outcome (owner_id, id);

-- Ledger kind 'fee' (PLATFORM_FEE_PERCENT of a payout, to user 'platform').
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('grant', 'hold', 'charge', 'payout', 'refund', 'fee'));
-- Statements: a user's rows by day.
CREATE INDEX ledger_user_time ON ledger (user_id, created_at);
