-- Named queries of artifacts (treadle.artifacts.records), SQLite. :name parameters.
-- Every write runs inside Store.transaction() (BEGIN IMMEDIATE: puts and deletes are
-- serialised by SQLite's single writer).

-- name: pin_blob
-- A put announces the object before trusting it is stored (see records.py).
INSERT INTO treadle_artifact_blobs (sha256, size, created_at) VALUES (:sha256, :size, :now)
ON CONFLICT (sha256) DO UPDATE SET size = excluded.size;

-- name: upsert_artifact
-- A retried step putting the same name again replaces the row (never a duplicate).
INSERT INTO treadle_artifacts (tenant, job_id, step, name, sha256, size, content_type, meta,
                               created_at)
VALUES (:tenant, :job_id, :step, :name, :sha256, :size, :content_type, :meta, :now)
ON CONFLICT (job_id, name) DO UPDATE
    SET step = excluded.step, sha256 = excluded.sha256, size = excluded.size,
        content_type = excluded.content_type, meta = excluded.meta,
        created_at = excluded.created_at
RETURNING id, tenant, job_id, step, name, sha256, size, content_type, meta, created_at;

-- name: artifact_sha
SELECT sha256 FROM treadle_artifacts WHERE job_id = :job_id AND name = :name;

-- name: get_artifact
SELECT id, tenant, job_id, step, name, sha256, size, content_type, meta, created_at
FROM treadle_artifacts WHERE id = :id AND (:tenant IS NULL OR tenant = :tenant);

-- name: job_artifact
SELECT id, tenant, job_id, step, name, sha256, size, content_type, meta, created_at
FROM treadle_artifacts WHERE job_id = :job_id AND name = :name;

-- name: find_by_name
-- The newest artifact of this tenant with this name whose object is still recorded.
SELECT a.id, a.tenant, a.job_id, a.step, a.name, a.sha256, a.size, a.content_type, a.meta,
       a.created_at
FROM treadle_artifacts a JOIN treadle_artifact_blobs b ON b.sha256 = a.sha256
WHERE a.tenant = :tenant AND a.name = :name
ORDER BY a.id DESC LIMIT 1;

-- name: job_artifacts
SELECT id, tenant, job_id, step, name, sha256, size, content_type, meta, created_at
FROM treadle_artifacts WHERE job_id = :job_id AND (:tenant IS NULL OR tenant = :tenant)
ORDER BY id;

-- name: delete_job_artifacts
DELETE FROM treadle_artifacts WHERE job_id = :job_id RETURNING sha256;

-- name: delete_artifact
DELETE FROM treadle_artifacts WHERE id = :id RETURNING sha256;

-- name: orphan_blobs
-- Objects no artifact references any more (their jobs were deleted by retention).
SELECT b.sha256 FROM treadle_artifact_blobs b
WHERE NOT EXISTS (SELECT 1 FROM treadle_artifacts a WHERE a.sha256 = b.sha256)
ORDER BY b.sha256 LIMIT :limit;

-- name: lock_blob
-- PostgreSQL takes a row lock here; SQLite's writer lock already serialises.
SELECT sha256 FROM treadle_artifact_blobs WHERE sha256 = :sha256;

-- name: blob_refs
SELECT count(*) AS refs FROM treadle_artifacts WHERE sha256 = :sha256;

-- name: delete_blob
DELETE FROM treadle_artifact_blobs WHERE sha256 = :sha256;
