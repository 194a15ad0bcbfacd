-- Dynamic workers (issue 4): stored code + configuration, and the tenant-scoped KV store
-- behind `env.kv`.

-- A worker's id is a hash of code + language + limits + bindings (sandbox.worker_id), so a
-- row never changes meaning; the same code registered by two tenants is two rows.
CREATE TABLE treadle_dynamic_workers (
    tenant      text        NOT NULL,
    id          text        NOT NULL,
    name        text,
    language    text        NOT NULL CHECK (language IN ('javascript', 'python')),
    code        text        NOT NULL,
    limits      jsonb       NOT NULL,           -- sandbox.Limits.to_dict()
    config      jsonb       NOT NULL,           -- allow_wasm, fetch_allow, kv
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX treadle_dynamic_workers_created ON treadle_dynamic_workers (tenant, created_at);

-- `env.kv` is one namespace per tenant, shared by that tenant's workers.
CREATE TABLE treadle_kv (
    tenant      text        NOT NULL,
    key         text        NOT NULL,
    value       text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, key)
);
