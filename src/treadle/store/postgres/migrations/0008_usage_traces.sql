-- Traces and usage accounting (issue 13; ADR 0021, ADR 0022).
-- The W3C traceparent a job's spans continue: the submitting request's, or the span
-- current at `defer`; only the canonical 55-character form is ever written.
ALTER TABLE treadle_jobs ADD COLUMN traceparent text;

-- One row per attempt that reported an outcome, written in the same statement as the
-- outcome (so it is counted exactly when the attempt is). No foreign key to the job:
-- accounting outlives retention, which deletes finished jobs.
CREATE TABLE treadle_attempt_usage (
    job_id            bigint           NOT NULL,
    attempt           integer          NOT NULL,
    tenant            text             NOT NULL,
    queue             text             NOT NULL,
    kind              text             NOT NULL,
    task              text             NOT NULL,
    outcome           text             NOT NULL,
    error_class       text,
    finished_at       timestamptz      NOT NULL,
    wall_seconds      double precision NOT NULL,
    cpu_seconds       double precision,
    peak_memory_bytes bigint,
    result_bytes      bigint           NOT NULL DEFAULT 0,
    log_bytes         bigint           NOT NULL DEFAULT 0,
    wait_seconds      double precision,
    tokens_in         bigint           NOT NULL DEFAULT 0,
    tokens_out        bigint           NOT NULL DEFAULT 0,
    cost_usd          double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX treadle_attempt_usage_time ON treadle_attempt_usage (finished_at);
CREATE INDEX treadle_attempt_usage_tenant ON treadle_attempt_usage (tenant, finished_at);
