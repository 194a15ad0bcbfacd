-- The key of the session lock a parked worker's claim connection holds (ADR 0034): a
-- PostgreSQL column; on SQLite workers never park, the table only mirrors the schema.
ALTER TABLE treadle_parked ADD COLUMN lock_key INTEGER;
