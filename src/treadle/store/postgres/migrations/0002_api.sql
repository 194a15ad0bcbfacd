-- HTTP API: API keys (stored hashed), idempotency fingerprints, inbound hook bindings.

CREATE TABLE treadle_api_keys (
    id           text PRIMARY KEY,              -- public handle shown by `keys list`
    tenant       text NOT NULL,
    scopes       text NOT NULL,                 -- comma-separated, sorted
    key_hash     text NOT NULL UNIQUE,          -- hex sha256 of the full secret key
    name         text,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX treadle_api_keys_tenant ON treadle_api_keys (tenant, id);

-- What an Idempotency-Key was first used for, so a reuse with a different
-- request answers 409 instead of silently returning an unrelated job.
CREATE TABLE treadle_idempotency (
    tenant      text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,                  -- hex sha256 of the canonical request
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- POST /v1/hooks/{name}: a signed external webhook becomes a job of `task`.
CREATE TABLE treadle_hooks (
    name       text PRIMARY KEY,
    tenant     text NOT NULL,
    task       text NOT NULL,
    queue      text,
    secret     text NOT NULL,                   -- HMAC key; must be readable to verify
    created_at timestamptz NOT NULL
);
CREATE INDEX treadle_hooks_tenant ON treadle_hooks (tenant, name);
