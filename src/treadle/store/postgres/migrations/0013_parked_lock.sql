-- How an enqueue knows a parked worker's claim connection still lives (ADR 0034): that
-- connection holds a session advisory lock under this random key, which PostgreSQL
-- releases when the session ends. Probing it (a failed shared try) costs the enqueue
-- nothing measurable; reading the backend's pid and start time snapshotted every
-- backend (~0.085 ms on each hand-off) and is hidden from producers of other roles.
-- `pid` and `backend_start` stay for people reading the table (and clearing dead rows).
-- NULL: parked by a worker from before this migration, which is never handed a job.
ALTER TABLE treadle_parked ADD COLUMN lock_key bigint;
