-- A job's steps on the server (PostgreSQL only; SQLite keeps its statements, store.c).  Each step
-- ran as a dozen statements, each a round trip with its row locks held across the wait: the
-- claim's worker lock, worker read, job lock and assign; the finish's final update, callback
-- queue, owner read, users lock, three money moves, outcome and (after the commit) reputation.
-- Each is now one call; store.c keeps the same checks, lock order and error codes:
--
--   cacheout_claim   the worker row first (FOR NO KEY UPDATE), then the job; the assigned row
--                    comes back whole.  A refusal is a row too, not an error (a lost race is
--                    routine with several schedulers, and an error would be written to the
--                    server's log): job_id NULL, status 'CO409' (no room, the wrong state or
--                    terms: CO_E_CONFLICT) or 'CO404' (unknown worker or job: CO_E_NOTFOUND),
--                    failure the message.
--   cacheout_settle  the end of a job the caller locked and fenced: its final state and charge,
--                    its callback queued, its users locked in byte order (COLLATE "C", as
--                    store_users_lock_ensure), a missing payee created with the starting credits,
--                    the money moves (the buyer's charge and refund in one write of its row), the
--                    worker's outcome, and its reputation when the score changed and no claim
--                    holds its row.  A balance that would go negative raises SQLSTATE CO500
--                    (CO_E_INTERNAL; CO404 for an unknown buyer).
--
-- The outbox triggers of jobs and users insert their row themselves instead of calling
-- cacheout_outbox() (a nested function call and an executor start for each of the seven rows of
-- a job; the worker's row, now written only when its reputation moves, keeps the shared one).

CREATE OR REPLACE FUNCTION cacheout_outbox_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := COALESCE(current_setting('cacheout.node', true), '');
BEGIN
    INSERT INTO event_outbox (kind, ref, origin) VALUES ('job', NEW.job_id, node);
    PERFORM pg_notify('cacheout_events', node);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cacheout_outbox_user() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := COALESCE(current_setting('cacheout.node', true), '');
BEGIN
    INSERT INTO event_outbox (kind, ref, origin) VALUES (TG_ARGV[0], NEW.user_id, node);
    PERFORM pg_notify('cacheout_events', node);
    RETURN NULL;
END $$;

-- The claim of job @jid by worker @wid at @now (store.c coord_store_job_claim).
CREATE FUNCTION cacheout_claim(jid TEXT, wid TEXT, now BIGINT) RETURNS SETOF jobs
LANGUAGE plpgsql AS $$
DECLARE
    w worker_registrations;
    j jobs;
    no jobs; -- a refusal: job_id NULL, status the code, failure the message
    used_cores BIGINT;
    used_ram BIGINT;
BEGIN
    SELECT * INTO w FROM worker_registrations WHERE worker_id = wid FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        no.status := 'CO404';
        no.failure := format('no such worker ''%s''', wid);
        RETURN NEXT no;
        RETURN;
    END IF;
    SELECT COALESCE(SUM(required_cores), 0), COALESCE(SUM(required_ram_mb), 0)
        INTO used_cores, used_ram FROM jobs
        WHERE assigned_worker = wid AND status IN ('assigned', 'running');
    SELECT * INTO j FROM jobs WHERE job_id = jid FOR NO KEY UPDATE;
    no.status := 'CO409';
    IF NOT FOUND THEN
        no.status := 'CO404';
        no.failure := format('no such job ''%s''', jid);
    ELSIF j.status <> 'pending' THEN
        no.failure := format('job ''%s'' is %s, not pending', jid, j.status);
    ELSIF w.cpu_cores - used_cores < j.required_cores
          OR w.ram_mb - used_ram < j.required_ram_mb THEN
        no.failure := format('worker ''%s'' has no room for job ''%s''', wid, jid);
    ELSIF w.reputation < j.min_reputation OR (j.pricing = 'market' AND
          (w.price_per_core_second > j.max_price_per_core_second OR
           w.price_per_gb_second > j.max_price_per_gb_second)) THEN
        no.failure := format('worker ''%s'' is outside the price or reputation of job ''%s''',
                             wid, jid);
    END IF;
    IF no.failure IS NOT NULL THEN
        RETURN NEXT no;
        RETURN;
    END IF;
    UPDATE jobs SET status = 'assigned', assigned_worker = wid, attempts = attempts + 1,
        assigned_at = now, started_at = NULL,
        price_per_core_second = CASE WHEN pricing = 'market' THEN w.price_per_core_second
                                ELSE price_per_core_second END,
        price_per_gb_second = CASE WHEN pricing = 'market' THEN w.price_per_gb_second
                              ELSE price_per_gb_second END
        WHERE job_id = jid AND status = 'pending' RETURNING * INTO j;
    -- A re-run starts with no output: the earlier attempts' rows go in the same transaction.
    IF j.attempts > 1 THEN
        DELETE FROM job_output_chunk WHERE job_id = jid;
        DELETE FROM job_output WHERE job_id = jid;
    END IF;
    RETURN NEXT j;
END $$;

-- The end of job @jid (locked and fenced by the caller) with the settlement store.c planned
-- (coord_price): @charge, @refund (both 0 and @refund_all: everything back), @payout to the
-- worker's owner, @fee to @fee_user.  @outcome: the worker's outcome to record, NULL for none.
-- Returns: whether a callback was queued, whether an outcome was recorded, and the reputation
-- update: 1 written, 0 unchanged or no outcome, -1 skipped because a claim holds the worker
-- (store.c leaves it to the lease tick).
CREATE FUNCTION cacheout_settle(jid TEXT, st TEXT, fail TEXT, exit_code INTEGER, wall BIGINT,
                                cpu BIGINT, rss BIGINT, now BIGINT, buyer TEXT, wid TEXT,
                                refund_all BOOLEAN, cost BIGINT, charge BIGINT, refund BIGINT,
                                payout BIGINT, fee BIGINT, fee_user TEXT, start_credits BIGINT,
                                why TEXT, outcome TEXT,
                                OUT queued BOOLEAN, OUT noted BOOLEAN, OUT reputed INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    owner TEXT;
    ids TEXT[];
    uid TEXT;
    bal BIGINT;
    cur BIGINT;
    score BIGINT;
BEGIN
    queued := false;
    noted := false;
    reputed := 0;
    UPDATE jobs SET status = st, failure = fail, exit_code = cacheout_settle.exit_code,
        wall_ms = wall, cpu_ms = cpu, max_rss_kb = rss, completed_at = now,
        charged = charge
        WHERE job_id = jid;
    UPDATE webhook_delivery SET state = 'pending', queued_at = now, next_at = now
        WHERE job_id = jid AND state = 'waiting';
    queued := FOUND;

    IF refund_all THEN
        UPDATE users SET credits = credits + cost, held = held - cost, updated_at = now
            WHERE user_id = buyer AND held - cost >= 0 RETURNING credits INTO bal;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'CO500',
                MESSAGE = format('ledger refund for user ''%s'' job ''%s'' would make a balance negative',
                                 buyer, jid);
        END IF;
        INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, created_at)
            VALUES (buyer, jid, 'refund', cost, -cost, bal, why, now);
    ELSE
        SELECT owner_id INTO owner FROM worker_registrations WHERE worker_id = wid;
        IF owner IS NULL OR owner = '' THEN
            owner := wid;
        END IF;
        IF owner IS NULL OR owner = '' THEN
            RAISE EXCEPTION USING ERRCODE = 'CO500',
                MESSAGE = format('job ''%s'' has no worker to pay', jid);
        END IF;
        ids := CASE WHEN fee > 0 THEN ARRAY[buyer, owner, fee_user] ELSE ARRAY[buyer, owner] END;
        -- Every user of the settlement locked in byte order, the existing ones in one statement.
        PERFORM 1 FROM users WHERE user_id = ANY (ids) ORDER BY user_id COLLATE "C"
            FOR NO KEY UPDATE;
        -- Then the missing payees (the owner as a seller, the fee's user), in the same order.
        FOR uid IN SELECT u FROM (SELECT DISTINCT u FROM unnest(ids) AS u) d
                   WHERE (u = owner OR (fee > 0 AND u = fee_user))
                   AND NOT EXISTS (SELECT 1 FROM users WHERE user_id = u)
                   ORDER BY u COLLATE "C" LOOP
            INSERT INTO users (user_id, username, credits, held, is_worker, created_at, updated_at)
                VALUES (uid, uid, 0, 0, CASE WHEN uid = owner THEN 1 ELSE 0 END, now, now)
                ON CONFLICT (user_id) DO NOTHING;
            IF FOUND AND start_credits > 0 THEN
                UPDATE users SET credits = credits + start_credits, updated_at = now
                    WHERE user_id = uid RETURNING credits INTO bal;
                INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, created_at)
                    VALUES (uid, NULL, 'grant', start_credits, 0, bal, 'starting credits', now);
            END IF;
            PERFORM 1 FROM users WHERE user_id = uid FOR NO KEY UPDATE;
        END LOOP;
        -- The buyer's charge and refund: one write of its row, one ledger row each.
        UPDATE users SET credits = credits + refund, held = held - charge - refund,
            updated_at = now
            WHERE user_id = buyer AND held - charge - refund >= 0 RETURNING credits INTO bal;
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM users WHERE user_id = buyer) THEN
                RAISE EXCEPTION USING ERRCODE = 'CO404',
                    MESSAGE = format('no such user ''%s''', buyer);
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'CO500',
                MESSAGE = format('ledger charge for user ''%s'' job ''%s'' would make a balance negative',
                                 buyer, jid);
        END IF;
        INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, created_at)
            VALUES (buyer, jid, 'charge', 0, -charge, bal - refund, 'job settled', now);
        IF refund > 0 THEN
            INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, created_at)
                VALUES (buyer, jid, 'refund', refund, -refund, bal, 'unused time', now);
        END IF;
        UPDATE users SET credits = credits + payout, updated_at = now
            WHERE user_id = owner RETURNING credits INTO bal;
        INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, created_at)
            VALUES (owner, jid, 'payout', payout, 0, bal, 'job payout', now);
        IF fee > 0 THEN
            UPDATE users SET credits = credits + fee, updated_at = now
                WHERE user_id = fee_user RETURNING credits INTO bal;
            INSERT INTO ledger (user_id, job_id, kind, amount, held, balance, note, created_at)
                VALUES (fee_user, jid, 'fee', fee, 0, bal, 'platform fee', now);
        END IF;
    END IF;

    IF outcome IS NOT NULL AND wid IS NOT NULL AND wid <> '' THEN
        INSERT INTO worker_outcome (worker_id, owner_id, job_id, kind, created_at)
            SELECT worker_id, owner_id, jid, outcome, now FROM worker_registrations
            WHERE worker_id = wid;
        noted := FOUND;
    END IF;
    IF noted THEN
        -- The score over the worker's last 50 outcomes (store.c REPUTATION_SQL); its row is
        -- written only when the score moves, and never waits for a claim that holds it.  A
        -- score of 50 completed out of 50 (no other window gives that score) stays when one
        -- more completes: nothing to read then, the steady state of a sound worker.
        SELECT reputation INTO cur FROM worker_registrations WHERE worker_id = wid;
        IF outcome = 'completed' AND cur = (4 + 50) * 1000000 / (5 + 50) THEN
            RETURN;
        END IF;
        -- The last 50 read once (REPUTATION_SQL finds the 50th, then reads them again).
        SELECT (4 + COUNT(*) FILTER (WHERE o.kind = 'completed')) * 1000000 / (5 + COUNT(*))
            INTO score FROM (SELECT kind FROM worker_outcome WHERE worker_id = wid
                             ORDER BY id DESC LIMIT 50) o;
        IF score IS DISTINCT FROM cur THEN
            UPDATE worker_registrations SET reputation = score
                WHERE worker_id = (SELECT worker_id FROM worker_registrations
                                   WHERE worker_id = wid FOR NO KEY UPDATE SKIP LOCKED);
            reputed := CASE WHEN FOUND THEN 1 ELSE -1 END;
        END IF;
    END IF;
END $$;
