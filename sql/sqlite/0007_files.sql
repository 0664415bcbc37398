-- Input files of a job (submit field "files"): one compact JSON object {"path": "<base64>"},
-- NULL when the job has none.  Read only with the job's code (assignments, admin views).
ALTER TABLE jobs ADD COLUMN files TEXT;

-- Output artifacts (files the job left under /work/out), per attempt, stored as chunks like the
-- job output: an append writes only its own bytes.  job_artifact has one row per file (size so
-- far; sha256 once its last chunk is stored, computed from the stored chunks), job_artifact_set
-- one row per job once an attempt's artifacts are complete.  A new attempt's first chunk drops
-- the earlier attempts' rows.
CREATE TABLE job_artifact (
    job_id  TEXT    NOT NULL REFERENCES jobs (job_id),
    attempt INTEGER NOT NULL,
    path    TEXT    NOT NULL,
    size    INTEGER NOT NULL DEFAULT 0,
    sha256  TEXT,
    PRIMARY KEY (job_id, attempt, path)
);
CREATE TABLE job_artifact_chunk (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT    NOT NULL REFERENCES jobs (job_id),
    attempt INTEGER NOT NULL,
    path    TEXT    NOT NULL,
    data    BLOB    NOT NULL
);
CREATE INDEX job_artifact_chunk_file ON job_artifact_chunk (job_id, attempt, path, id);
CREATE TABLE job_artifact_set (
    job_id    TEXT    PRIMARY KEY REFERENCES jobs (job_id),
    attempt   INTEGER NOT NULL,
    files     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    skipped   INTEGER NOT NULL,
    notes     TEXT
);
