-- HTTP API: API keys (stored hashed), idempotency fingerprints, inbound hook bindings.
-- Timestamps are REAL seconds since the Unix epoch (UTC), as in 0001.

CREATE TABLE treadle_api_keys (
    id           TEXT PRIMARY KEY,              -- public handle shown by `keys list`
    tenant       TEXT NOT NULL,
    scopes       TEXT NOT NULL,                 -- comma-separated, sorted
    key_hash     TEXT NOT NULL UNIQUE,          -- hex sha256 of the full secret key
    name         TEXT,
    created_at   REAL NOT NULL,
    revoked_at   REAL
);
CREATE INDEX treadle_api_keys_tenant ON treadle_api_keys (tenant, id);

-- What an Idempotency-Key was first used for, so a reuse with a different
-- request answers 409 instead of silently returning an unrelated job.
CREATE TABLE treadle_idempotency (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,                  -- hex sha256 of the canonical request
    created_at  REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- POST /v1/hooks/{name}: a signed external webhook becomes a job of `task`.
CREATE TABLE treadle_hooks (
    name       TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    task       TEXT NOT NULL,
    queue      TEXT,
    secret     TEXT NOT NULL,                   -- HMAC key; must be readable to verify
    created_at REAL NOT NULL
);
CREATE INDEX treadle_hooks_tenant ON treadle_hooks (tenant, name);
