-- Worker ownership (PostgreSQL).  A worker id belongs to the user whose credential (a `sell` key, the
-- shared agent token's owner) first registered it; the store refuses another owner for it, and
-- payouts go to the stored owner.  Rows written before this migration carry the owner an agent
-- declared, which nobody checked: they have no claimed_at, and the first registration with a
-- credential claims them.
ALTER TABLE worker_registrations ADD COLUMN owner_claimed_at BIGINT;

-- A seller's workers.
CREATE INDEX worker_registrations_owner ON worker_registrations (owner_id, worker_id);
