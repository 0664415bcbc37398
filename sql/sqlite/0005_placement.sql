-- Placement: pending jobs by shape, so that the scheduler reads only the jobs some connected
-- agent can run (image, then cores) and never visits the unplaceable ones.
CREATE INDEX jobs_pending_shape ON jobs (image, required_cores, required_ram_mb)
    WHERE status = 'pending';
