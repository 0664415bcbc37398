-- Completion callbacks (submit field "callback_url", coordinator/coord_webhook.c).
--
-- webhook_secret: each user's signing secret, stored as-is (the coordinator must read it to
-- compute HMAC-SHA256; see coordinator/README.md "Callbacks").  A new one replaces the old.
CREATE TABLE webhook_secret (
    user_id    TEXT    PRIMARY KEY REFERENCES users (user_id),
    secret     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

-- webhook_delivery: one row per job with a callback_url, written with the job.  state:
-- 'waiting' until the job is final, then 'pending' (queued in the transaction that finishes the
-- job), then 'delivered' or 'failed' (gave up after WEBHOOK_MAX_HOURS).  next_at is when the next
-- attempt is due; a claimed row's next_at is pushed past the attempt's time (a lease), so that
-- a coordinator that dies mid-attempt leaves the row due again.
CREATE TABLE webhook_delivery (
    delivery_id      TEXT    PRIMARY KEY,
    job_id           TEXT    NOT NULL UNIQUE REFERENCES jobs (job_id),
    url              TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    queued_at        BIGINT,
    first_attempt_at BIGINT,
    next_at          BIGINT,
    done_at          BIGINT
);
CREATE INDEX webhook_delivery_due ON webhook_delivery (state, next_at);

-- webhook_attempt: the delivery log, one row per attempt.
CREATE TABLE webhook_attempt (
    id          BIGSERIAL PRIMARY KEY,
    delivery_id TEXT    NOT NULL REFERENCES webhook_delivery (delivery_id),
    job_id      TEXT    NOT NULL,
    attempt     BIGINT  NOT NULL,
    at          BIGINT  NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms BIGINT  NOT NULL
);
CREATE INDEX webhook_attempt_job ON webhook_attempt (job_id, id);
