-- SQLite's 0016 adds the index its pending read walks class by class.  PostgreSQL's pending read
-- walks jobs_pending_turn (0014) instead: nothing to do here; the file keeps the two folders'
-- numbers aligned.
SELECT 1;
