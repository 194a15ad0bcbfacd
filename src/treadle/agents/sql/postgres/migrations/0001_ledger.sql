-- Durable agents (issue 12): the per-tenant spending ledger.

-- One row per completed model call: what it cost, whose it was. Keyed by (job, turn) so
-- writing it again for the same call (a replay, a retry of the write) changes nothing.
CREATE TABLE treadle_agent_spend (
    job_id     bigint           NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    turn       integer          NOT NULL,
    tenant     text             NOT NULL,
    agent      text             NOT NULL,
    model      text             NOT NULL,
    tokens_in  bigint           NOT NULL,
    tokens_out bigint           NOT NULL,
    cost_usd   double precision NOT NULL,
    at         timestamptz      NOT NULL,
    PRIMARY KEY (job_id, turn)
);
CREATE INDEX treadle_agent_spend_tenant ON treadle_agent_spend (tenant, at);

-- A tenant's cap on total agent spend (USD); no row means no cap.
CREATE TABLE treadle_agent_caps (
    tenant     text             PRIMARY KEY,
    cap_usd    double precision NOT NULL CHECK (cap_usd >= 0),
    updated_at timestamptz      NOT NULL
);
