-- Named queries of the HTTP API (treadle.api.keystore), SQLite. :name parameters.

-- name: insert_key
INSERT INTO treadle_api_keys (id, tenant, scopes, key_hash, name, created_at)
VALUES (:id, :tenant, :scopes, :key_hash, :name, :now);

-- name: key_by_hash
SELECT id, tenant, scopes, revoked_at FROM treadle_api_keys WHERE key_hash = :key_hash;

-- name: list_keys
SELECT id, tenant, scopes, name, created_at, revoked_at FROM treadle_api_keys
WHERE (:tenant IS NULL OR tenant = :tenant)
ORDER BY created_at, id;

-- name: revoke_key
UPDATE treadle_api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL;

-- name: key_exists
SELECT id FROM treadle_api_keys WHERE id = :id;

-- name: claim_idempotency
INSERT INTO treadle_idempotency (tenant, key, fingerprint, created_at)
VALUES (:tenant, :key, :fingerprint, :now)
ON CONFLICT (tenant, key) DO NOTHING;

-- name: idempotency_fingerprint
SELECT fingerprint FROM treadle_idempotency WHERE tenant = :tenant AND key = :key;

-- name: upsert_hook
INSERT INTO treadle_hooks (name, tenant, task, queue, secret, created_at)
VALUES (:name, :tenant, :task, :queue, :secret, :now)
ON CONFLICT (name) DO UPDATE SET task = excluded.task, queue = excluded.queue,
    secret = excluded.secret
WHERE treadle_hooks.tenant = excluded.tenant
RETURNING name;

-- name: get_hook
SELECT name, tenant, task, queue, secret, created_at FROM treadle_hooks WHERE name = :name;

-- name: list_hooks
SELECT name, tenant, task, queue, secret, created_at FROM treadle_hooks
WHERE tenant = :tenant ORDER BY name;

-- name: delete_hook
DELETE FROM treadle_hooks WHERE name = :name AND tenant = :tenant;
