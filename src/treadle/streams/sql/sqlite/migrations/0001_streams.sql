-- Live job streams (ADR 0010): a head row per job (its last sequence number and how far
-- the oldest items were trimmed) and the items themselves. Both go with their job
-- (ON DELETE CASCADE), so retention that deletes jobs deletes their streams too.
-- Times are REAL seconds since the Unix epoch (UTC), as in the core schema.
CREATE TABLE treadle_streams (
    job_id           INTEGER PRIMARY KEY REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    trimmed_through  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE treadle_stream_items (
    job_id   INTEGER NOT NULL REFERENCES treadle_streams (job_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    data     TEXT    NOT NULL,  -- JSON text, made storable before it is written
    at       REAL    NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
