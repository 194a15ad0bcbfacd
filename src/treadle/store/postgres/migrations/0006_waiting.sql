-- The `waiting` status (ADR 0009): a job suspended without a lease or a worker slot.
ALTER TABLE treadle_jobs DROP CONSTRAINT treadle_jobs_status_check;
ALTER TABLE treadle_jobs ADD CONSTRAINT treadle_jobs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'waiting'));
-- The waker's sweep reads waiting jobs; cancelling a job finds its children.
CREATE INDEX treadle_jobs_waiting ON treadle_jobs (id) WHERE status = 'waiting';
CREATE INDEX treadle_jobs_parent ON treadle_jobs (parent_id) WHERE parent_id IS NOT NULL;
