-- Durable agents (issue 12): the per-tenant spending ledger. Timestamps are REAL epoch
-- seconds, as in the core schema.

-- One row per completed model call: what it cost, whose it was. Keyed by (job, turn) so
-- writing it again for the same call (a replay, a retry of the write) changes nothing.
CREATE TABLE treadle_agent_spend (
    job_id     INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    turn       INTEGER NOT NULL,
    tenant     TEXT    NOT NULL,
    agent      TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    tokens_in  INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_usd   REAL    NOT NULL,
    at         REAL    NOT NULL,
    PRIMARY KEY (job_id, turn)
);
CREATE INDEX treadle_agent_spend_tenant ON treadle_agent_spend (tenant, at);

-- A tenant's cap on total agent spend (USD); no row means no cap.
CREATE TABLE treadle_agent_caps (
    tenant     TEXT PRIMARY KEY,
    cap_usd    REAL NOT NULL CHECK (cap_usd >= 0),
    updated_at REAL NOT NULL
);
