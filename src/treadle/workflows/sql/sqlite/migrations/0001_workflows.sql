-- Durable workflows (issue 9, ADR 0009). Timestamps are REAL epoch seconds, as in 0001.

-- One row per step of a workflow job, in program order (seq). Written fenced by the
-- job's lease token, so a zombie attempt cannot checkpoint anything.
CREATE TABLE treadle_wf_steps (
    job_id      INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('step', 'sleep', 'event', 'map', 'spawn')),
    status      TEXT    NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed')),
    attempt     INTEGER NOT NULL DEFAULT 1,     -- times this step was started
    result      TEXT,                           -- JSON, when small enough to keep inline
    result_ref  TEXT,                           -- treadle_wf_blobs.hash, when not
    error       TEXT,                           -- JSON ErrorInfo of the last failure
    wake_at     REAL,                           -- waiting: wake at this time (sleep, timeout)
    event_key   TEXT,                           -- waiting: wake when this event arrives
    event_after INTEGER NOT NULL DEFAULT 0,     -- ... with an id above this one
    event_id    INTEGER,                        -- the event this step received
    fail_fast   INTEGER NOT NULL DEFAULT 1,     -- map: wake at the first failed child
    started_at  REAL    NOT NULL,
    finished_at REAL,
    PRIMARY KEY (job_id, seq),
    UNIQUE (job_id, name)
);
CREATE INDEX treadle_wf_steps_waiting ON treadle_wf_steps (job_id) WHERE status = 'waiting';

-- The child jobs a map/spawn step created, in input order.
CREATE TABLE treadle_wf_children (
    parent_id INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    child_id  INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, seq, idx)
);

-- Events sent with send_event, kept so that one sent before the wait is not lost.
CREATE TABLE treadle_wf_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  TEXT NOT NULL,
    key     TEXT NOT NULL,
    payload TEXT NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX treadle_wf_events_key ON treadle_wf_events (tenant, key, id);

-- Big step results, stored once by content hash and loaded only when replayed.
CREATE TABLE treadle_wf_blobs (
    hash TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
