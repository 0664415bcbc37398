-- Idempotency keys (API.md "Scheduling guarantees"): the first answer to a POST that carried an
-- Idempotency-Key, per (credential, method, path, key), kept until expires_at (24 h).  The row is
-- inserted and its answer stored in the same transaction as the request's own changes, so a
-- concurrent duplicate waits for it and then replays it.  Expired rows are purged by retention.

CREATE TABLE idempotency_keys (
    credential TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    idem_key   TEXT    NOT NULL,
    body_hash  TEXT    NOT NULL,
    status     INTEGER NOT NULL DEFAULT 0,
    response   BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (credential, method, path, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Retention looks for finished jobs by completion time.
CREATE INDEX jobs_completed ON jobs (completed_at) WHERE completed_at IS NOT NULL;
