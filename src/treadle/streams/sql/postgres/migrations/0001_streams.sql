-- Live job streams (ADR 0010): a head row per job (its last sequence number and how far
-- the oldest items were trimmed) and the items themselves. Both go with their job
-- (ON DELETE CASCADE), so retention that deletes jobs deletes their streams too.
-- Times are seconds since the Unix epoch (UTC), as the SQLite track stores them.
CREATE TABLE treadle_streams (
    job_id           bigint PRIMARY KEY REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    last_seq         bigint NOT NULL DEFAULT 0,
    trimmed_through  bigint NOT NULL DEFAULT 0
);
CREATE TABLE treadle_stream_items (
    job_id   bigint           NOT NULL REFERENCES treadle_streams (job_id) ON DELETE CASCADE,
    seq      bigint           NOT NULL,
    attempt  integer          NOT NULL,
    kind     text             NOT NULL,
    data     text             NOT NULL,  -- JSON text, made storable before it is written
    at       double precision NOT NULL,
    PRIMARY KEY (job_id, seq)
);
