-- Treadle schema, PostgreSQL.
CREATE TABLE treadle_jobs (
    id               bigserial PRIMARY KEY,
    tenant           text        NOT NULL DEFAULT 'default',
    queue            text        NOT NULL,
    kind             text        NOT NULL DEFAULT 'task',
    task             text        NOT NULL,
    payload          jsonb       NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         integer     NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL,
    attempt          integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 1,
    timeout          double precision,
    lease_owner      text,
    lease_expires_at timestamptz,
    lease_token      bigint      NOT NULL DEFAULT 0,
    idempotency_key  text,
    concurrency_key  text,
    result           jsonb,
    error            jsonb,
    parent_id        bigint REFERENCES treadle_jobs (id) ON DELETE SET NULL,
    callback_url     text,
    cancel_requested boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz
);

CREATE UNIQUE INDEX treadle_jobs_idempotency
    ON treadle_jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Claim order within one queue: highest priority, then oldest due, then id.
CREATE INDEX treadle_jobs_claim
    ON treadle_jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX treadle_jobs_claim_any
    ON treadle_jobs (priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX treadle_jobs_leases
    ON treadle_jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX treadle_jobs_status ON treadle_jobs (status, queue);
CREATE INDEX treadle_jobs_finished ON treadle_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX treadle_jobs_tenant ON treadle_jobs (tenant, id);

CREATE TABLE treadle_events (
    id          bigserial PRIMARY KEY,
    job_id      bigint  NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    from_status text,
    to_status   text    NOT NULL,
    attempt     integer NOT NULL,
    worker      text,
    reason      text    NOT NULL,
    at          timestamptz NOT NULL,
    detail      jsonb
);
CREATE INDEX treadle_events_job ON treadle_events (job_id, id);

CREATE TABLE treadle_job_logs (
    id      bigserial PRIMARY KEY,
    job_id  bigint  NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    at      timestamptz NOT NULL,
    message text    NOT NULL
);
CREATE INDEX treadle_job_logs_job ON treadle_job_logs (job_id, id);

CREATE TABLE treadle_queues (
    name              text PRIMARY KEY,
    paused            boolean NOT NULL DEFAULT false,
    concurrency_limit integer
);

CREATE TABLE treadle_workers (
    id             text PRIMARY KEY,
    started_at     timestamptz NOT NULL,
    last_heartbeat timestamptz NOT NULL,
    info           jsonb NOT NULL DEFAULT '{}'
);
