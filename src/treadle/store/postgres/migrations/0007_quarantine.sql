-- Poison-job quarantine (ADR 0015): the `quarantined` status, each job's crash history
-- (`crashes`, a JSON list of {at, worker, attempt}: attempts whose worker died under them)
-- and its threshold (`max_crashes`, NULL: the default, 3).
ALTER TABLE treadle_jobs DROP CONSTRAINT treadle_jobs_status_check;
ALTER TABLE treadle_jobs ADD CONSTRAINT treadle_jobs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'waiting',
                      'quarantined'));
ALTER TABLE treadle_jobs ADD COLUMN crashes jsonb;
ALTER TABLE treadle_jobs ADD COLUMN max_crashes integer;
-- `GET /v1/jobs?status=quarantined` and the UI list what waits for an operator.
CREATE INDEX treadle_jobs_quarantined ON treadle_jobs (id) WHERE status = 'quarantined';

-- A worker's lease length, written by its heartbeats: the reaper tells a worker that died
-- (its heartbeats stopped too) from a live one that let one lease lapse (ADR 0015).
ALTER TABLE treadle_workers ADD COLUMN lease_seconds double precision;
