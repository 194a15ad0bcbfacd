-- Named queries of dynamic workers (treadle.dynamic.repo), PostgreSQL. %(name)s parameters.

-- name: upsert_worker
-- Registering the same code again is idempotent; a new non-null name relabels it.
INSERT INTO treadle_dynamic_workers (tenant, id, name, language, code, limits, config, created_at)
VALUES (%(tenant)s, %(id)s, %(name)s, %(language)s, %(code)s, %(limits)s, %(config)s, %(now)s)
ON CONFLICT (tenant, id) DO UPDATE
    SET name = COALESCE(excluded.name, treadle_dynamic_workers.name)
RETURNING tenant, id, name, language, code, limits, config, created_at;

-- name: get_worker
SELECT tenant, id, name, language, code, limits, config, created_at
FROM treadle_dynamic_workers WHERE tenant = %(tenant)s AND id = %(id)s;

-- name: list_workers
SELECT tenant, id, name, language, code, limits, config, created_at
FROM treadle_dynamic_workers WHERE tenant = %(tenant)s
ORDER BY created_at DESC, id
LIMIT %(limit)s;

-- name: kv_get
SELECT value FROM treadle_kv WHERE tenant = %(tenant)s AND key = %(key)s;

-- name: kv_put
INSERT INTO treadle_kv (tenant, key, value, updated_at) VALUES (%(tenant)s, %(key)s, %(value)s, %(now)s)
ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;

-- name: kv_delete
DELETE FROM treadle_kv WHERE tenant = %(tenant)s AND key = %(key)s;
