-- CacheOut schema, version 1 (PostgreSQL).
-- Money is integer micro-credits; times are milliseconds since the Unix epoch (NULL = never).
-- Applied by the coordinator at start inside a transaction and recorded in schema_migrations.

CREATE TABLE users (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT    NOT NULL UNIQUE,
    username    TEXT,
    email       TEXT,
    credits     BIGINT  NOT NULL DEFAULT 0 CHECK (credits >= 0),
    held        BIGINT  NOT NULL DEFAULT 0 CHECK (held >= 0),
    is_worker   INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE worker_registrations (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker_id      TEXT    NOT NULL UNIQUE,
    owner_id       TEXT    NOT NULL,
    cpu_cores      BIGINT  NOT NULL CHECK (cpu_cores >= 0),
    ram_mb         BIGINT  NOT NULL CHECK (ram_mb >= 0),
    status         TEXT    NOT NULL CHECK (status IN ('idle', 'busy', 'offline')),
    websocket      INTEGER NOT NULL DEFAULT 0,
    last_heartbeat BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

CREATE TABLE jobs (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    cost            BIGINT  NOT NULL CHECK (cost >= 0),
    required_cores  BIGINT  NOT NULL CHECK (required_cores >= 1),
    required_ram_mb BIGINT  NOT NULL CHECK (required_ram_mb >= 1),
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    timeout_seconds BIGINT  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    exit_code       INTEGER,
    wall_ms         BIGINT,
    cpu_ms          BIGINT,
    max_rss_kb      BIGINT,
    created_at      BIGINT  NOT NULL,
    assigned_at     BIGINT,
    started_at      BIGINT,
    completed_at    BIGINT
);

-- The scheduler's queue: pending jobs by priority, oldest first.
CREATE INDEX jobs_queue ON jobs (status, priority DESC, created_at, id);
CREATE INDEX jobs_buyer ON jobs (buyer_id, created_at);
CREATE INDEX jobs_worker ON jobs (assigned_worker, status);
CREATE INDEX jobs_created ON jobs (created_at, id);

-- Every movement of credits; (job_id, kind) is unique so a movement happens at most once.
CREATE TABLE ledger (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (user_id),
    job_id     TEXT    REFERENCES jobs (job_id),
    kind       TEXT    NOT NULL CHECK (kind IN ('grant', 'hold', 'charge', 'payout', 'refund')),
    amount     BIGINT  NOT NULL,
    held       BIGINT  NOT NULL,
    balance    BIGINT  NOT NULL,
    note       TEXT,
    created_at BIGINT  NOT NULL
);
CREATE UNIQUE INDEX ledger_job_kind ON ledger (job_id, kind) WHERE job_id IS NOT NULL;
CREATE INDEX ledger_user ON ledger (user_id, id);

CREATE TABLE job_output (
    job_id           TEXT    PRIMARY KEY REFERENCES jobs (job_id),
    stdout           BYTEA   NOT NULL,
    stderr           BYTEA   NOT NULL,
    stdout_truncated INTEGER NOT NULL DEFAULT 0,
    stderr_truncated INTEGER NOT NULL DEFAULT 0
);
