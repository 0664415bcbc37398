-- The change feed, cheaper and with its origin in the wake-up.
--
-- 1. The notification names the node that made the change (its payload: the session setting
--    cacheout.node; '' for any other session, e.g. an operator's psql).  A node delivers its own
--    changes in process, so it skips a wake-up whose payload is its own id and only reads the
--    outbox for other nodes' changes (its own rows are passed over by the once-a-second round).
--    Identical notifications of one transaction are still delivered once: one per transaction.
-- 2. cacheout_outbox, which every trigger function of 0013 calls, is PL/pgSQL, whose statements
--    are planned once per session; as an SQL function its body was planned again at every call
--    (75-90 us a row, eight rows for every job run).
CREATE OR REPLACE FUNCTION cacheout_outbox(k TEXT, r TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := COALESCE(current_setting('cacheout.node', true), '');
BEGIN
    INSERT INTO event_outbox (kind, ref, origin) VALUES (k, r, node);
    PERFORM pg_notify('cacheout_events', node);
END $$;

-- 3. The scheduler's placeable pending jobs (store.c Q_JOB_PENDING_FIT) are numbered per
--    priority and buyer in (created_at, id) order: an index of the pending jobs in that order
--    gives them sorted, instead of a sort of every pending row at each pass.
CREATE INDEX jobs_pending_turn ON jobs (priority, buyer_id, created_at, id)
    WHERE status = 'pending' AND replicas = 1;
