-- Scale-out (several coordinators on one database).
--
-- Worker sessions: which coordinator node holds the worker's agent session, and an epoch that
-- every accepted hello increments; a node whose session of the worker is no longer the current
-- one closes it (coord_node, coord_agent).
ALTER TABLE worker_registrations ADD COLUMN session_node TEXT NOT NULL DEFAULT '';
ALTER TABLE worker_registrations ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;

-- The change feed (coord_feed): one row per published change (kind: "job", "worker", "credits",
-- "key", "user"; ref: the changed row's id), with a global sequence.  Writers take an advisory
-- transaction lock before inserting, so that sequence order is commit order and a reader that
-- reads rows above the last sequence it saw never skips one.  pg_notify('cacheout_events')
-- wakes the other nodes' listeners; rows are deleted after a while.
CREATE TABLE event_outbox (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT        NOT NULL,
    ref        TEXT        NOT NULL,
    origin     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX event_outbox_created ON event_outbox (created_at);
