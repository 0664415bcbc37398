-- The change feed's notification names the node that made the change (its payload, the session
-- setting cacheout.node; '' for any other session, e.g. an operator's psql).  A node delivers its
-- own changes in process, so it skips a wake-up whose payload is its own id and only reads the
-- outbox for other nodes' changes (its own rows are passed over by the once-a-second round).
-- Identical notifications of one transaction are still delivered once: one per transaction.
CREATE OR REPLACE FUNCTION cacheout_outbox(k TEXT, r TEXT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO event_outbox (kind, ref, origin)
        VALUES (k, r, COALESCE(current_setting('cacheout.node', true), ''));
    SELECT pg_notify('cacheout_events', COALESCE(current_setting('cacheout.node', true), ''));
$$;
