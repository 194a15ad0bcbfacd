-- Hand-off to a parked worker (ADR 0034): a worker waiting for work with free slots parks
-- here, and an enqueue that finds the queue empty gives its job straight to it, claimed
-- in the enqueue's own statement, instead of queueing it and waking a worker to claim.
-- `free` counts the hand-offs the worker still takes (the enqueue counts it down).
-- `pid` and `backend_start` name the backend of the worker's claim connection, which
-- listens on `channel`: a job is handed only while that very backend lives (a dead
-- worker's, or a lost connection's, is gone, and a reused pid starts at another time).
CREATE TABLE treadle_parked (
    worker        text PRIMARY KEY,
    free          integer NOT NULL CHECK (free >= 0),
    queues        text[],
    kinds         text[],
    lease_seconds double precision NOT NULL,
    pid           integer NOT NULL,
    backend_start timestamptz NOT NULL,
    channel       text NOT NULL,
    parked_at     timestamptz NOT NULL
);
