-- Named queries for the SQLite store. Parameters use :name style.

-- name: paused_or_limited_queues
SELECT name, paused, concurrency_limit FROM treadle_queues
WHERE paused = 1 OR concurrency_limit IS NOT NULL;

-- name: running_in_queue
SELECT count(*) FROM treadle_jobs WHERE status = 'running' AND queue = :queue;

-- name: claim_queue
UPDATE treadle_jobs
SET status = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_expires_at = :expires, lease_token = lease_token + 1, started_at = :now
WHERE id IN (
    SELECT id FROM treadle_jobs INDEXED BY treadle_jobs_claim
    WHERE status = 'queued' AND queue = :queue AND run_at <= :now
      AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING *;

-- name: claim_any
UPDATE treadle_jobs
SET status = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_expires_at = :expires, lease_token = lease_token + 1, started_at = :now
WHERE id IN (
    SELECT id FROM treadle_jobs INDEXED BY treadle_jobs_claim_any
    WHERE status = 'queued' AND run_at <= :now
      AND queue NOT IN (SELECT value FROM json_each(:excluded))
      AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING *;

-- name: insert_event
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
VALUES (:job_id, :from_status, :to_status, :attempt, :worker, :reason, :at, :detail);

-- name: insert_job
INSERT INTO treadle_jobs (
    tenant, queue, kind, task, payload, priority, run_at, max_attempts, timeout,
    idempotency_key, concurrency_key, parent_id, callback_url, created_at)
VALUES (
    :tenant, :queue, :kind, :task, :payload, :priority, :run_at, :max_attempts, :timeout,
    :idempotency_key, :concurrency_key, :parent_id, :callback_url, :created_at)
ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *;

-- name: job_by_idempotency_key
SELECT * FROM treadle_jobs WHERE tenant = :tenant AND idempotency_key = :idempotency_key;

-- name: finish
-- The guarded update: only the holder of the current lease token may write.
UPDATE treadle_jobs
SET status = :status,
    result = :result,
    error = :error,
    run_at = coalesce(:run_at, run_at),
    payload = coalesce(:payload, payload),
    max_attempts = max_attempts + :extra_attempts,
    finished_at = :finished_at,
    lease_owner = NULL,
    lease_expires_at = NULL,
    cancel_requested = CASE WHEN :status = 'queued' THEN cancel_requested ELSE 0 END
WHERE id = :id AND status = 'running' AND lease_token = :token
RETURNING id, attempt, callback_url;

-- name: job_status_token
SELECT id, status, lease_token, attempt FROM treadle_jobs WHERE id = :id;

-- name: heartbeat
UPDATE treadle_jobs SET lease_expires_at = :expires
WHERE id = :id AND status = 'running' AND lease_token = :token
RETURNING id, cancel_requested;

-- name: upsert_worker
INSERT INTO treadle_workers (id, started_at, last_heartbeat, info)
VALUES (:worker, :now, :now, :info)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat;

-- name: expired_leases
SELECT id, attempt, max_attempts, lease_owner, cancel_requested FROM treadle_jobs
WHERE status = 'running' AND lease_expires_at <= :now
ORDER BY lease_expires_at
LIMIT :limit;

-- name: reap_one
UPDATE treadle_jobs
SET status = :status, error = :error, run_at = :now, lease_owner = NULL,
    lease_expires_at = NULL, finished_at = :finished_at
WHERE id = :id AND status = 'running' AND lease_expires_at <= :now;

-- name: get_job
SELECT * FROM treadle_jobs WHERE id = :id AND (:tenant IS NULL OR tenant = :tenant);

-- name: list_jobs
SELECT * FROM treadle_jobs
WHERE (:tenant IS NULL OR tenant = :tenant)
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC
LIMIT :limit;

-- name: count_by_status
SELECT status, count(*) AS n FROM treadle_jobs
WHERE (:tenant IS NULL OR tenant = :tenant)
GROUP BY status;

-- name: cancel_queued
UPDATE treadle_jobs SET status = 'cancelled', finished_at = :now
WHERE id = :id AND status = 'queued'
RETURNING attempt;

-- name: request_cancel
UPDATE treadle_jobs SET cancel_requested = 1
WHERE id = :id AND status = 'running';

-- name: manual_retry
UPDATE treadle_jobs
SET status = 'queued', run_at = :now, max_attempts = attempt + 1, finished_at = NULL,
    cancel_requested = 0
WHERE id = :id AND status IN ('failed', 'cancelled')
RETURNING attempt, status;

-- name: events
SELECT * FROM treadle_events WHERE job_id = :job_id ORDER BY id;

-- name: insert_log
INSERT INTO treadle_job_logs (job_id, attempt, at, message) VALUES (:job_id, :attempt, :at, :message);

-- name: logs
SELECT * FROM treadle_job_logs WHERE job_id = :job_id ORDER BY id;

-- name: upsert_queue
INSERT INTO treadle_queues (name, paused, concurrency_limit)
VALUES (:name, coalesce(:paused, 0), :concurrency_limit)
ON CONFLICT (name) DO UPDATE SET
    paused = coalesce(:paused, treadle_queues.paused),
    concurrency_limit = CASE WHEN :clear_limit THEN NULL
                             ELSE coalesce(:concurrency_limit, treadle_queues.concurrency_limit) END;

-- name: queue_configs
SELECT name, paused, concurrency_limit FROM treadle_queues;

-- name: queue_stats
SELECT queue,
       sum(status = 'queued' AND run_at <= :now AND attempt = 0) AS queued,
       sum(status = 'queued' AND run_at > :now) AS scheduled,
       sum(status = 'queued' AND run_at <= :now AND attempt > 0) AS retrying,
       sum(status = 'running') AS running,
       sum(status = 'failed' AND finished_at >= :hour_ago) AS failed_last_hour,
       sum(status = 'succeeded' AND finished_at >= :hour_ago) AS succeeded_last_hour
FROM treadle_jobs
WHERE status IN ('queued', 'running') OR finished_at >= :hour_ago
GROUP BY queue;

-- name: workers
SELECT * FROM treadle_workers ORDER BY last_heartbeat DESC;

-- name: applied_migrations
SELECT version FROM treadle_migrations ORDER BY version;

-- name: insert_callback_job
-- The delivery of a finished job's callback is itself a durable job, written in
-- the same transaction as the job's final state so it can never be lost.
INSERT INTO treadle_jobs (tenant, queue, kind, task, payload, run_at, max_attempts, timeout,
                          parent_id, created_at)
SELECT tenant, 'treadle.callbacks', 'task', 'treadle.deliver_callback',
       json_object('job_id', id), :now, 11, 30, id, :now
FROM treadle_jobs WHERE id = :id AND callback_url IS NOT NULL
RETURNING id;

-- name: plugin_applied_migrations
SELECT version FROM treadle_plugin_migrations WHERE plugin = :plugin ORDER BY version;

-- name: record_plugin_migration
INSERT INTO treadle_plugin_migrations (plugin, version, name, applied_at)
VALUES (:plugin, :version, :name, :now);
