-- The scheduler's pending read (store.c Q_JOB_PENDING_FIT) walks the pending jobs by priority,
-- buyer and shape class (image, cores, RAM): one seek finds each class, and a placeable class
-- gives its oldest jobs in (created_at, id) order, so a pass reads about as many rows as it
-- can place per class instead of numbering and sorting every pending job. A class no agent can
-- run (a backlog of jobs too large for every agent) costs one seek, not one row per job.
CREATE INDEX jobs_pending_class
    ON jobs (priority, buyer_id, image, required_cores, required_ram_mb, created_at, id)
    WHERE status = 'pending' AND replicas = 1;
