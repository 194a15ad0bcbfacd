-- Durable workflows (issue 9, ADR 0009).

-- One row per step of a workflow job, in program order (seq). Written fenced by the
-- job's lease token, so a zombie attempt cannot checkpoint anything.
CREATE TABLE treadle_wf_steps (
    job_id      bigint      NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    seq         integer     NOT NULL,
    name        text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('step', 'sleep', 'event', 'map', 'spawn')),
    status      text        NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed')),
    attempt     integer     NOT NULL DEFAULT 1,     -- times this step was started
    result      jsonb,                              -- when small enough to keep inline
    result_ref  text,                               -- treadle_wf_blobs.hash, when not
    error       jsonb,                              -- ErrorInfo of the last failure
    wake_at     timestamptz,                        -- waiting: wake at this time
    event_key   text,                               -- waiting: wake when this event arrives
    event_after bigint      NOT NULL DEFAULT 0,     -- ... with an id above this one
    event_id    bigint,                             -- the event this step received
    fail_fast   boolean     NOT NULL DEFAULT true,  -- map: wake at the first failed child
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (job_id, seq),
    UNIQUE (job_id, name)
);
CREATE INDEX treadle_wf_steps_waiting ON treadle_wf_steps (job_id) WHERE status = 'waiting';

-- The child jobs a map/spawn step created, in input order.
CREATE TABLE treadle_wf_children (
    parent_id bigint  NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    idx       integer NOT NULL,
    child_id  bigint  NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, seq, idx)
);

-- Events sent with send_event, kept so that one sent before the wait is not lost.
CREATE TABLE treadle_wf_events (
    id      bigserial   PRIMARY KEY,
    tenant  text        NOT NULL,
    key     text        NOT NULL,
    payload jsonb       NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE INDEX treadle_wf_events_key ON treadle_wf_events (tenant, key, id);

-- Big step results, stored once by content hash and loaded only when replayed.
CREATE TABLE treadle_wf_blobs (
    hash text PRIMARY KEY,
    data text NOT NULL
);
