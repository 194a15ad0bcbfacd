-- Named queries of artifacts (treadle.artifacts.records), SQLite. :name parameters.
-- Every write runs inside Store.transaction() (BEGIN IMMEDIATE: puts and deletes are
-- serialised by SQLite's single writer).

-- name: pin_blob
-- A put announces the object before trusting it is stored (see records.py).
-- The reference it commits with protects the object from now on: the hold is released.
INSERT INTO treadle_artifact_blobs (sha256, size, created_at) VALUES (:sha256, :size, :now)
ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, held_until = NULL;

-- name: hold_blob
-- A writer holds the blob's row (committed) before it uploads the object: while held,
-- neither the collector nor a reference-counted delete removes it (ADR 0016).
INSERT INTO treadle_artifact_blobs (sha256, size, created_at, held_until)
VALUES (:sha256, :size, :now, :until)
ON CONFLICT (sha256) DO UPDATE
    SET held_until = max(coalesce(treadle_artifact_blobs.held_until, excluded.held_until),
                         excluded.held_until);

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
-- Objects no artifact references any more (their jobs were deleted by retention)
-- and no writer holds.
SELECT b.sha256 FROM treadle_artifact_blobs b
WHERE NOT EXISTS (SELECT 1 FROM treadle_artifacts a WHERE a.sha256 = b.sha256)
  AND (b.held_until IS NULL OR b.held_until < :now)
ORDER BY b.sha256 LIMIT :limit;

-- name: lock_blob
-- PostgreSQL takes a row lock here; SQLite's writer lock already serialises.
SELECT sha256 FROM treadle_artifact_blobs WHERE sha256 = :sha256;

-- name: blob_in_use
-- Asked under the blob row's lock: referenced by an artifact, or held by a writer.
SELECT EXISTS (SELECT 1 FROM treadle_artifacts WHERE sha256 = :sha256)
    OR EXISTS (SELECT 1 FROM treadle_artifact_blobs
               WHERE sha256 = :sha256 AND held_until >= :now) AS used;

-- name: held_blobs
-- Tests and the CLI: blobs a writer holds now.
SELECT sha256 FROM treadle_artifact_blobs WHERE held_until >= :now ORDER BY sha256;

-- name: delete_blob
DELETE FROM treadle_artifact_blobs WHERE sha256 = :sha256;
