-- CacheOut schema, version 1 (SQLite).
-- Money is integer micro-credits; times are milliseconds since the Unix epoch (NULL = never).
-- Applied by the coordinator at start inside a transaction and recorded in schema_migrations.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL UNIQUE,
    username    TEXT,
    email       TEXT,
    credits     INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    is_worker   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE worker_registrations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id      TEXT    NOT NULL UNIQUE,
    owner_id       TEXT    NOT NULL,
    cpu_cores      INTEGER NOT NULL CHECK (cpu_cores >= 0),
    ram_mb         INTEGER NOT NULL CHECK (ram_mb >= 0),
    status         TEXT    NOT NULL CHECK (status IN ('idle', 'busy', 'offline')),
    websocket      INTEGER NOT NULL DEFAULT 0,
    last_heartbeat INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT    NOT NULL UNIQUE,
    title           TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    code            TEXT,
    code_file       TEXT,
    command         TEXT    NOT NULL,
    parameters      TEXT    NOT NULL DEFAULT '{}',
    image           TEXT    NOT NULL DEFAULT 'default',
    buyer_id        TEXT    NOT NULL REFERENCES users (user_id),
    assigned_worker TEXT    REFERENCES worker_registrations (worker_id),
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'assigned', 'running',
                                                       'completed', 'failed', 'cancelled')),
    failure         TEXT,
    cost            INTEGER NOT NULL CHECK (cost >= 0),
    required_cores  INTEGER NOT NULL CHECK (required_cores >= 1),
    required_ram_mb INTEGER NOT NULL CHECK (required_ram_mb >= 1),
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    timeout_seconds INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    exit_code       INTEGER,
    wall_ms         INTEGER,
    cpu_ms          INTEGER,
    max_rss_kb      INTEGER,
    created_at      INTEGER NOT NULL,
    assigned_at     INTEGER,
    started_at      INTEGER,
    completed_at    INTEGER
);

-- The scheduler's queue: pending jobs by priority, oldest first.
CREATE INDEX jobs_queue ON jobs (status, priority DESC, created_at, id);
CREATE INDEX jobs_buyer ON jobs (buyer_id, created_at);
CREATE INDEX jobs_worker ON jobs (assigned_worker, status);
CREATE INDEX jobs_created ON jobs (created_at, id);

-- Every movement of credits; (job_id, kind) is unique so a movement happens at most once.
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT    NOT NULL REFERENCES users (user_id),
    job_id     TEXT    REFERENCES jobs (job_id),
    kind       TEXT    NOT NULL CHECK (kind IN ('grant', 'hold', 'charge', 'payout', 'refund')),
    amount     INTEGER NOT NULL,
    held       INTEGER NOT NULL,
    balance    INTEGER NOT NULL,
    note       TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX ledger_job_kind ON ledger (job_id, kind) WHERE job_id IS NOT NULL;
CREATE INDEX ledger_user ON ledger (user_id, id);

CREATE TABLE job_output (
    job_id           TEXT    PRIMARY KEY REFERENCES jobs (job_id),
    stdout           BLOB    NOT NULL,
    stderr           BLOB    NOT NULL,
    stdout_truncated INTEGER NOT NULL DEFAULT 0,
    stderr_truncated INTEGER NOT NULL DEFAULT 0
);
