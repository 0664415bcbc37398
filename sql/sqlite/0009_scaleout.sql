-- Scale-out: the session columns of sql/postgres/0009_scaleout.sql, so that both schemas stay
-- the same.  SQLite runs one coordinator (an instance lock beside the file), so its change feed
-- stays in the process and it has no outbox.
ALTER TABLE worker_registrations ADD COLUMN session_node TEXT NOT NULL DEFAULT '';
ALTER TABLE worker_registrations ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
