-- Named queries of the HTTP API (treadle.api.keystore), PostgreSQL. %(name)s parameters.

-- name: insert_key
INSERT INTO treadle_api_keys (id, tenant, scopes, key_hash, name, created_at)
VALUES (%(id)s, %(tenant)s, %(scopes)s, %(key_hash)s, %(name)s, %(now)s);

-- name: key_by_hash
SELECT id, tenant, scopes, revoked_at FROM treadle_api_keys WHERE key_hash = %(key_hash)s;

-- name: list_keys
SELECT id, tenant, scopes, name, created_at, revoked_at FROM treadle_api_keys
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
ORDER BY created_at, id;

-- name: revoke_key
UPDATE treadle_api_keys SET revoked_at = %(now)s WHERE id = %(id)s AND revoked_at IS NULL;

-- name: key_exists
SELECT id FROM treadle_api_keys WHERE id = %(id)s;

-- name: claim_idempotency
INSERT INTO treadle_idempotency (tenant, key, fingerprint, created_at)
VALUES (%(tenant)s, %(key)s, %(fingerprint)s, %(now)s)
ON CONFLICT (tenant, key) DO NOTHING;

-- name: idempotency_fingerprint
SELECT fingerprint FROM treadle_idempotency WHERE tenant = %(tenant)s AND key = %(key)s;

-- name: upsert_hook
INSERT INTO treadle_hooks (name, tenant, task, queue, secret, created_at)
VALUES (%(name)s, %(tenant)s, %(task)s, %(queue)s, %(secret)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET task = excluded.task, queue = excluded.queue,
    secret = excluded.secret
WHERE treadle_hooks.tenant = excluded.tenant
RETURNING name;

-- name: get_hook
SELECT name, tenant, task, queue, secret, created_at FROM treadle_hooks WHERE name = %(name)s;

-- name: list_hooks
SELECT name, tenant, task, queue, secret, created_at FROM treadle_hooks
WHERE tenant = %(tenant)s ORDER BY name;

-- name: delete_hook
DELETE FROM treadle_hooks WHERE name = %(name)s AND tenant = %(tenant)s;
