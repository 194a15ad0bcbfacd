-- Named queries of dynamic workers (treadle.dynamic.repo), SQLite. :name parameters.
-- Owned by this package (ADR 0008); run through treadle.store.extension.ExtensionSql.

-- name: upsert_worker
-- Registering the same code again is idempotent; a new non-null name relabels it.
INSERT INTO treadle_dynamic_workers (tenant, id, name, language, code, limits, config, created_at)
VALUES (:tenant, :id, :name, :language, :code, :limits, :config, :now)
ON CONFLICT (tenant, id) DO UPDATE
    SET name = COALESCE(excluded.name, treadle_dynamic_workers.name)
RETURNING tenant, id, name, language, code, limits, config, created_at;

-- name: get_worker
SELECT tenant, id, name, language, code, limits, config, created_at
FROM treadle_dynamic_workers WHERE tenant = :tenant AND id = :id;

-- name: list_workers
SELECT tenant, id, name, language, code, limits, config, created_at
FROM treadle_dynamic_workers WHERE tenant = :tenant
ORDER BY created_at DESC, id
LIMIT :limit;

-- name: kv_get
SELECT value FROM treadle_kv WHERE tenant = :tenant AND key = :key;

-- name: kv_put
INSERT INTO treadle_kv (tenant, key, value, updated_at) VALUES (:tenant, :key, :value, :now)
ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;

-- name: kv_delete
DELETE FROM treadle_kv WHERE tenant = :tenant AND key = :key;
