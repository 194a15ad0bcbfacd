-- How a dead worker is noticed without waiting for its leases (ADR 0018): the key of the
-- session advisory lock its liveness connection holds (PostgreSQL), and the host, pid and
-- process start time of its process (SQLite, one host). NULL: no liveness known (an older
-- worker); its jobs wait for their leases as before.
ALTER TABLE treadle_workers ADD COLUMN lock_key INTEGER;
ALTER TABLE treadle_workers ADD COLUMN host TEXT;
ALTER TABLE treadle_workers ADD COLUMN pid INTEGER;
ALTER TABLE treadle_workers ADD COLUMN pid_start TEXT;
