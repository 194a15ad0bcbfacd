-- A task with both a per-key concurrency limit and a per-key rate limit (ADR 0010, update).
-- Such a job keeps its concurrency rule where a concurrency-only job has it
-- (concurrency_key, concurrency_limit, rate_period NULL), so the fast claims keep leaving
-- it out by `concurrency_limit IS NULL`; its rate rule goes here. A rate-only job keeps
-- the 0005 encoding. Added columns only: no table rebuild.
ALTER TABLE treadle_jobs ADD COLUMN rate_key TEXT;
ALTER TABLE treadle_jobs ADD COLUMN rate_limit INTEGER;
ALTER TABLE treadle_jobs ADD COLUMN rate_window double precision;
-- The sliding window's count for such jobs (the 0005 index covers rate-only jobs).
CREATE INDEX treadle_jobs_rate_dual ON treadle_jobs (rate_key, started_at)
    WHERE rate_key IS NOT NULL;
