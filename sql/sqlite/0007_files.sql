-- Input files of a job (submit field "files"): one compact JSON object {"path": "<base64>"},
-- NULL when the job has none.  Read only with the job's code (assignments, admin views).
ALTER TABLE jobs ADD COLUMN files TEXT;
