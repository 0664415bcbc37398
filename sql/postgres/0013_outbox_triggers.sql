-- The change feed's outbox rows are written by the changing transaction itself (triggers), not
-- by a node's feed thread after the commit: a node that dies between its commit and any later
-- write no longer loses the change for the other nodes, and a change made by any session (an
-- operator's psql too) reaches every node.
--
-- origin: the node that made the change, from the setting cacheout.node that each coordinator
-- connection sets at connect ('' for any other session: every node takes those).
-- txid: the writing transaction's id.  Readers take, in each round, the rows whose txid lies
-- between the previous round's horizon and pg_snapshot_xmin(pg_current_snapshot()) (every
-- transaction below it has ended), so that a row committed late with a low sequence is never
-- skipped and no lock orders the writers.
ALTER TABLE event_outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX event_outbox_txid ON event_outbox (txid, seq);

CREATE FUNCTION cacheout_outbox(k TEXT, r TEXT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO event_outbox (kind, ref, origin)
        VALUES (k, r, COALESCE(current_setting('cacheout.node', true), ''));
    -- Identical notifications of one transaction are delivered once.
    SELECT pg_notify('cacheout_events', '');
$$;

CREATE FUNCTION cacheout_outbox_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cacheout_outbox('job', NEW.job_id);
    RETURN NULL;
END $$;

CREATE FUNCTION cacheout_outbox_worker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cacheout_outbox('worker', NEW.worker_id);
    RETURN NULL;
END $$;

-- A user's row: the kind ('credits' or 'user') is the trigger's argument.
CREATE FUNCTION cacheout_outbox_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cacheout_outbox(TG_ARGV[0], NEW.user_id);
    RETURN NULL;
END $$;

CREATE FUNCTION cacheout_outbox_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cacheout_outbox('key', NEW.key_id);
    RETURN NULL;
END $$;

-- Jobs: every new row and every real change; their output as it grows.
CREATE TRIGGER jobs_outbox_new AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION cacheout_outbox_job();
CREATE TRIGGER jobs_outbox_change AFTER UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION cacheout_outbox_job();
CREATE TRIGGER job_output_outbox AFTER INSERT OR UPDATE ON job_output
    FOR EACH ROW EXECUTE FUNCTION cacheout_outbox_job();

-- Workers: anything but the heartbeat (stored for every worker once a second).
CREATE TRIGGER workers_outbox_new AFTER INSERT ON worker_registrations
    FOR EACH ROW EXECUTE FUNCTION cacheout_outbox_worker();
CREATE TRIGGER workers_outbox_change AFTER UPDATE ON worker_registrations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.websocket IS DISTINCT FROM NEW.websocket
                       OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
                       OR OLD.cpu_cores IS DISTINCT FROM NEW.cpu_cores
                       OR OLD.ram_mb IS DISTINCT FROM NEW.ram_mb
                       OR OLD.owner_claimed_at IS DISTINCT FROM NEW.owner_claimed_at
                       OR OLD.session_node IS DISTINCT FROM NEW.session_node
                       OR OLD.session_epoch IS DISTINCT FROM NEW.session_epoch
                       OR OLD.price_per_core_second IS DISTINCT FROM NEW.price_per_core_second
                       OR OLD.price_per_gb_second IS DISTINCT FROM NEW.price_per_gb_second
                       OR OLD.reputation IS DISTINCT FROM NEW.reputation)
    EXECUTE FUNCTION cacheout_outbox_worker();

-- Users: balances (credits) and what authorization reads (user).
CREATE TRIGGER users_outbox_credits AFTER INSERT OR UPDATE OF credits, held ON users
    FOR EACH ROW EXECUTE FUNCTION cacheout_outbox_user('credits');
CREATE TRIGGER users_outbox_user AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.disabled IS DISTINCT FROM NEW.disabled
                       OR OLD.is_admin IS DISTINCT FROM NEW.is_admin
                       OR OLD.limits IS DISTINCT FROM NEW.limits)
    EXECUTE FUNCTION cacheout_outbox_user('user');

-- API keys: a revocation.
CREATE TRIGGER api_keys_outbox AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION cacheout_outbox_key();
