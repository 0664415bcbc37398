-- Job output as appended chunks: an append writes only its own bytes (rewriting one growing
-- value cost O(n^2) over a job's output).  job_output keeps the lengths and truncation flags;
-- its stdout/stderr columns hold what was written before this migration and are read first.

CREATE TABLE job_output_chunk (
    id     BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id TEXT    NOT NULL REFERENCES jobs (job_id),
    stream INTEGER NOT NULL CHECK (stream IN (1, 2)),
    data   BYTEA   NOT NULL
);
CREATE INDEX job_output_chunk_job ON job_output_chunk (job_id, id);

ALTER TABLE job_output ADD COLUMN stdout_len BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_output ADD COLUMN stderr_len BIGINT NOT NULL DEFAULT 0;
UPDATE job_output SET stdout_len = length(stdout), stderr_len = length(stderr);
