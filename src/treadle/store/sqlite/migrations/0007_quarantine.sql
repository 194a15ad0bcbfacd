-- treadle: foreign_keys=off
-- Poison-job quarantine (ADR 0015): the `quarantined` status, each job's crash history
-- (`crashes`, a JSON list of {at, worker, attempt}: attempts whose worker died under them)
-- and its threshold (`max_crashes`, NULL: the default, 3). SQLite cannot alter a CHECK
-- constraint, so the jobs table is rebuilt as in 0006 (every column and index it has after
-- 0006, plus the new ones); the runner turns foreign keys off for this script and runs
-- `PRAGMA foreign_key_check` before committing.
CREATE TABLE treadle_jobs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT    NOT NULL DEFAULT 'default',
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL DEFAULT 'task',
    task             TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'waiting',
                          'quarantined')),
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
    finished_at      REAL,
    concurrency_limit INTEGER,                      -- 0005_flow
    rate_period      REAL,                          -- 0005_flow
    crashes          TEXT,                          -- new: JSON list, NULL: none
    max_crashes      INTEGER                        -- new: NULL: the default (3)
);

INSERT INTO treadle_jobs_new (
    id, tenant, queue, kind, task, payload, status, priority, run_at, attempt, max_attempts,
    timeout, lease_owner, lease_expires_at, lease_token, idempotency_key, concurrency_key,
    result, error, parent_id, callback_url, cancel_requested, created_at, started_at,
    finished_at, concurrency_limit, rate_period)
SELECT
    id, tenant, queue, kind, task, payload, status, priority, run_at, attempt, max_attempts,
    timeout, lease_owner, lease_expires_at, lease_token, idempotency_key, concurrency_key,
    result, error, parent_id, callback_url, cancel_requested, created_at, started_at,
    finished_at, concurrency_limit, rate_period
FROM treadle_jobs;

-- Ids are never reused: carry AUTOINCREMENT's high-water mark over (rows may be deleted).
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'treadle_jobs'), 0))
WHERE name = 'treadle_jobs_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'treadle_jobs_new', seq FROM sqlite_sequence
WHERE name = 'treadle_jobs'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'treadle_jobs_new');

DROP TABLE treadle_jobs;
ALTER TABLE treadle_jobs_new RENAME TO treadle_jobs;

CREATE UNIQUE INDEX treadle_jobs_idempotency
    ON treadle_jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX treadle_jobs_claim
    ON treadle_jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX treadle_jobs_claim_any
    ON treadle_jobs (priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX treadle_jobs_leases
    ON treadle_jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX treadle_jobs_status ON treadle_jobs (status, queue);
CREATE INDEX treadle_jobs_finished ON treadle_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX treadle_jobs_tenant ON treadle_jobs (tenant, id);
CREATE INDEX treadle_jobs_rate ON treadle_jobs (concurrency_key, started_at)
    WHERE rate_period IS NOT NULL;
CREATE INDEX treadle_jobs_keyed_queued ON treadle_jobs (concurrency_key, priority DESC, run_at, id)
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL;
CREATE INDEX treadle_jobs_keyed_running ON treadle_jobs (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX treadle_jobs_fair ON treadle_jobs (tenant, priority DESC, run_at, id)
    WHERE status = 'queued';
CREATE INDEX treadle_jobs_running_tenant ON treadle_jobs (tenant) WHERE status = 'running';
CREATE INDEX treadle_jobs_waiting ON treadle_jobs (id) WHERE status = 'waiting';
CREATE INDEX treadle_jobs_parent ON treadle_jobs (parent_id) WHERE parent_id IS NOT NULL;
-- New: `GET /v1/jobs?status=quarantined` and the UI list what waits for an operator.
CREATE INDEX treadle_jobs_quarantined ON treadle_jobs (id) WHERE status = 'quarantined';

-- A worker's lease length, written by its heartbeats: the reaper tells a worker that died
-- (its heartbeats stopped too) from a live one that let one lease lapse (ADR 0015).
ALTER TABLE treadle_workers ADD COLUMN lease_seconds REAL;
