-- Traces and usage accounting (issue 13; ADR 0021, ADR 0022).
-- The W3C traceparent a job's spans continue: the submitting request's, or the span
-- current at `defer`; only the canonical 55-character form is ever written.
ALTER TABLE treadle_jobs ADD COLUMN traceparent TEXT;

-- One row per attempt that reported an outcome, written in the same transaction as the
-- outcome (so it is counted exactly when the attempt is). No foreign key to the job:
-- accounting outlives retention, which deletes finished jobs.
CREATE TABLE treadle_attempt_usage (
    job_id            INTEGER NOT NULL,
    attempt           INTEGER NOT NULL,
    tenant            TEXT    NOT NULL,
    queue             TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    task              TEXT    NOT NULL,
    outcome           TEXT    NOT NULL,
    error_class       TEXT,
    finished_at       REAL    NOT NULL,
    wall_seconds      REAL    NOT NULL,
    cpu_seconds       REAL,
    peak_memory_bytes INTEGER,
    result_bytes      INTEGER NOT NULL DEFAULT 0,
    log_bytes         INTEGER NOT NULL DEFAULT 0,
    wait_seconds      REAL,
    tokens_in         INTEGER NOT NULL DEFAULT 0,
    tokens_out        INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX treadle_attempt_usage_time ON treadle_attempt_usage (finished_at);
CREATE INDEX treadle_attempt_usage_tenant ON treadle_attempt_usage (tenant, finished_at);
