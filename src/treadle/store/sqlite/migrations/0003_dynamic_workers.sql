-- Dynamic workers (issue 4): stored code + configuration, and the tenant-scoped KV store
-- behind `env.kv`. Timestamps are REAL seconds since the Unix epoch (UTC), as in 0001.

-- A worker's id is a hash of code + language + limits + bindings (sandbox.worker_id), so a
-- row never changes meaning; the same code registered by two tenants is two rows.
CREATE TABLE treadle_dynamic_workers (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT,
    language    TEXT NOT NULL CHECK (language IN ('javascript', 'python')),
    code        TEXT NOT NULL,
    limits      TEXT NOT NULL,                  -- JSON: sandbox.Limits.to_dict()
    config      TEXT NOT NULL,                  -- JSON: allow_wasm, fetch_allow, kv
    created_at  REAL NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX treadle_dynamic_workers_created ON treadle_dynamic_workers (tenant, created_at);

-- `env.kv` is one namespace per tenant, shared by that tenant's workers.
CREATE TABLE treadle_kv (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
