-- Flow control (issue 10, ADR 0010): per-key concurrency limits and cron schedule state.
-- The limit travels with the job (computed at submit from the task's declaration), so a
-- claimer needs no registry of tasks to enforce it. Timestamps are REAL epoch seconds.
ALTER TABLE treadle_jobs ADD COLUMN concurrency_limit INTEGER;
-- Set for a per-key rate limit: at most concurrency_limit starts per rate_period seconds,
-- counted over the jobs' own started_at (a sliding window, ADR 0010).
ALTER TABLE treadle_jobs ADD COLUMN rate_period REAL;
CREATE INDEX treadle_jobs_rate ON treadle_jobs (concurrency_key, started_at)
    WHERE rate_period IS NOT NULL;
-- Keys with work waiting, and the count of running jobs per key, are both index probes.
CREATE INDEX treadle_jobs_keyed_queued ON treadle_jobs (concurrency_key, priority DESC, run_at, id)
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL;
CREATE INDEX treadle_jobs_keyed_running ON treadle_jobs (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;

-- A cron schedule's operator state: paused or not. Schedules themselves are code
-- (@app.cron); a row holds whether it is paused and the last tick handled (so a scheduler
-- that starts after downtime knows which ticks it missed).
CREATE TABLE treadle_schedules (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    last_fire  REAL,
    updated_at REAL NOT NULL
);

-- Retention: finished jobs (their events and logs cascade) older than this are deleted in
-- batches by the maintenance loop; NULL means the default (7 days).
ALTER TABLE treadle_queues ADD COLUMN retention_seconds integer;

-- Weighted tenant fairness (ADR 0010): claims share slots among tenants with queued work
-- by weight (default 1). Tenants with queued work are found by a skip scan of the fair
-- index; each tenant's next jobs are a probe of it too.
CREATE TABLE treadle_tenants (
    name   TEXT PRIMARY KEY,
    weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000)
);
CREATE INDEX treadle_jobs_fair ON treadle_jobs (tenant, priority DESC, run_at, id)
    WHERE status = 'queued';
CREATE INDEX treadle_jobs_running_tenant ON treadle_jobs (tenant) WHERE status = 'running';
