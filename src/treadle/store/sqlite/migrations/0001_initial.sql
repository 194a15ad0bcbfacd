-- Treadle schema, SQLite. Timestamps are REAL seconds since the Unix epoch (UTC).
CREATE TABLE treadle_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT    NOT NULL DEFAULT 'default',
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL DEFAULT 'task',
    task             TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           REAL    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    timeout          REAL,
    lease_owner      TEXT,
    lease_expires_at REAL,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    concurrency_key  TEXT,
    result           TEXT,
    error            TEXT,
    parent_id        INTEGER REFERENCES treadle_jobs (id) ON DELETE SET NULL,
    callback_url     TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL
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
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT,
    reason      TEXT    NOT NULL,
    at          REAL    NOT NULL,
    detail      TEXT
);
CREATE INDEX treadle_events_job ON treadle_events (job_id, id);

CREATE TABLE treadle_job_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at      REAL    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX treadle_job_logs_job ON treadle_job_logs (job_id, id);

CREATE TABLE treadle_queues (
    name              TEXT PRIMARY KEY,
    paused            INTEGER NOT NULL DEFAULT 0,
    concurrency_limit INTEGER
);

CREATE TABLE treadle_workers (
    id             TEXT PRIMARY KEY,
    started_at     REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    info           TEXT NOT NULL DEFAULT '{}'
);
