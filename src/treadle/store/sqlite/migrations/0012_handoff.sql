-- Hand-off to a parked worker (ADR 0034) is PostgreSQL's: there the claim is a second
-- round trip between two processes that the hand-off saves. On SQLite workers poll the
-- one file and never park; the table exists so both backends share one schema.
CREATE TABLE treadle_parked (
    worker        TEXT PRIMARY KEY,
    free          INTEGER NOT NULL CHECK (free >= 0),
    queues        TEXT,
    kinds         TEXT,
    lease_seconds REAL NOT NULL,
    pid           INTEGER NOT NULL,
    backend_start REAL NOT NULL,
    channel       TEXT NOT NULL,
    parked_at     REAL NOT NULL
);
