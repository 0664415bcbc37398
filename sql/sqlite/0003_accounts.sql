-- Accounts: users become real identities (admin flag, disabled flag, per-user limits), API keys
-- (only a SHA-256 hash of each token is kept, unique-indexed: a lookup is one indexed equality)
-- and the audit log of admin actions.  Worker ownership is a later migration.

ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
-- Per-user overrides of the limits (JSON object text): submit_per_second, max_pending_jobs,
-- max_running_jobs.  A missing key means the coordinator's default.
ALTER TABLE users ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id       TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (user_id),
    name         TEXT    NOT NULL,
    scopes       INTEGER NOT NULL CHECK (scopes BETWEEN 1 AND 7), -- bits: 1 buy, 2 sell, 4 admin
    token_hash   TEXT    NOT NULL UNIQUE,                         -- hex SHA-256 of the token
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id, id);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL DEFAULT '{}'
);

-- The submit quota counts a buyer's pending jobs.
CREATE INDEX jobs_buyer_status ON jobs (buyer_id, status);

-- The built-in admin user that X-Admin-Token acts as.
INSERT INTO users (user_id, username, credits, held, is_worker, is_admin, created_at, updated_at)
VALUES ('admin', 'admin', 0, 0, 0, 1, CAST(strftime('%s', 'now') AS INTEGER) * 1000,
        CAST(strftime('%s', 'now') AS INTEGER) * 1000)
ON CONFLICT (user_id) DO UPDATE SET is_admin = 1;
