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
      AND (crashes IS NOT NULL) = :suspect  -- suspects: alone, when idle (ADR 0024)
      AND concurrency_limit IS NULL  -- per-key limited jobs: claim_key
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
      AND (crashes IS NOT NULL) = :suspect  -- suspects: alone, when idle (ADR 0024)
      AND concurrency_limit IS NULL  -- per-key limited jobs: claim_key
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING *;

-- name: insert_event
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
VALUES (:job_id, :from_status, :to_status, :attempt, :worker, :reason, :at, :detail);

-- name: insert_job
-- Positional parameters, in the column order below; only the new id comes back (the job
-- handed to the caller is built from its request, ADR 0027). No row: the key was taken.
INSERT INTO treadle_jobs (
    tenant, queue, kind, task, payload, priority, run_at, max_attempts, timeout,
    idempotency_key, concurrency_key, parent_id, callback_url, concurrency_limit, rate_period,
    max_crashes, created_at, traceparent, rate_key, rate_limit, rate_window)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: insert_enqueued_events
-- The 'enqueued' event of each new job: positional (job_id, at), for executemany.
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
VALUES (?, NULL, 'queued', 0, NULL, 'enqueued', ?);

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
    -- A pending cancel request survives a re-queue or a suspension (it is acted on later).
    cancel_requested = CASE WHEN :status IN ('queued', 'waiting') THEN cancel_requested ELSE 0 END
WHERE id = :id AND status = 'running' AND lease_token = :token
-- The job's columns the usage row copies (ADR 0022), so it need not read the job again.
RETURNING id, attempt, callback_url, tenant, queue, kind, task;

-- name: job_status_token
SELECT id, status, lease_token, attempt FROM treadle_jobs WHERE id = :id;

-- name: heartbeat
UPDATE treadle_jobs SET lease_expires_at = :expires
WHERE id = :id AND status = 'running' AND lease_token = :token
RETURNING id, cancel_requested;

-- name: upsert_worker
-- The lease length lets the reaper tell a dead worker from a live one (ADR 0015).
INSERT INTO treadle_workers (id, started_at, last_heartbeat, info, lease_seconds)
VALUES (:worker, :now, :now, :info, :lease_seconds)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
    lease_seconds = excluded.lease_seconds;

-- name: expired_leases
-- With the lease owner's liveness record: did the worker die, or only this lease lapse?
SELECT j.*, w.last_heartbeat AS owner_heartbeat, w.lease_seconds AS owner_lease_seconds
FROM treadle_jobs j INDEXED BY treadle_jobs_leases
LEFT JOIN treadle_workers w ON w.id = j.lease_owner
WHERE j.status = 'running' AND j.lease_expires_at <= :now
ORDER BY j.lease_expires_at
LIMIT :limit;

-- name: reap_one
-- Guarded by the token read with the row (ADR 0002); an expired lease must still be
-- expired, a dead worker's (:seen_dead, ADR 0018) need not be.
UPDATE treadle_jobs
SET status = :status, error = :error, run_at = :now, lease_owner = NULL,
    lease_expires_at = NULL, finished_at = :finished_at, crashes = coalesce(:crashes, crashes),
    max_attempts = max_attempts + :refund  -- a crash gives its attempt back (ADR 0024)
WHERE id = :id AND status = 'running' AND lease_token = :token
  AND (:seen_dead OR lease_expires_at <= :now);

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
-- Jobs holding no lease (queued, waiting or quarantined) are cancelled at once.
UPDATE treadle_jobs SET status = 'cancelled', finished_at = :now
WHERE id = :id AND status IN ('queued', 'waiting', 'quarantined')
RETURNING attempt;

-- name: unfinished_children
SELECT id FROM treadle_jobs
WHERE parent_id = :id AND status IN ('queued', 'running', 'waiting', 'quarantined')
ORDER BY id;

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
SELECT name, paused, concurrency_limit, retention_seconds FROM treadle_queues;

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
-- It continues the job's trace (traceparent), so the delivery shows in the same trace.
INSERT INTO treadle_jobs (tenant, queue, kind, task, payload, run_at, max_attempts, timeout,
                          parent_id, created_at, traceparent)
SELECT tenant, 'treadle.callbacks', 'task', 'treadle.deliver_callback',
       json_object('job_id', id), :now, 11, 30, id, :now, traceparent
FROM treadle_jobs WHERE id = :id AND callback_url IS NOT NULL
RETURNING id;

-- name: plugin_applied_migrations
SELECT version FROM treadle_plugin_migrations WHERE plugin = :plugin ORDER BY version;

-- name: record_plugin_migration
INSERT INTO treadle_plugin_migrations (plugin, version, name, applied_at)
VALUES (:plugin, :version, :name, :now);

-- name: schedule_states
SELECT name, paused, last_fire FROM treadle_schedules;

-- name: set_schedule_paused
INSERT INTO treadle_schedules (name, paused, updated_at) VALUES (:name, :paused, :now)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at;

-- name: schedule_fired
-- The last tick handled only moves forward, whichever scheduler writes last.
INSERT INTO treadle_schedules (name, paused, last_fire, updated_at)
VALUES (:name, 0, :fire, :now)
ON CONFLICT (name) DO UPDATE SET
    last_fire = max(coalesce(treadle_schedules.last_fire, excluded.last_fire), excluded.last_fire),
    updated_at = excluded.updated_at;

-- name: prune_finished
-- One small batch, oldest first; events and logs go with their job (ON DELETE CASCADE).
-- :cutoff bounds the index scan by the shortest retention; each row then meets its own.
DELETE FROM treadle_jobs WHERE id IN (
    SELECT j.id FROM treadle_jobs j LEFT JOIN treadle_queues q ON q.name = j.queue
    WHERE j.finished_at IS NOT NULL AND j.finished_at < :cutoff
      AND j.status IN ('succeeded', 'failed', 'cancelled')
      AND j.finished_at < :now - coalesce(:override, q.retention_seconds, :default)
    ORDER BY j.finished_at
    LIMIT :limit)
RETURNING id;

-- name: min_retention
SELECT min(retention_seconds) AS s FROM treadle_queues;

-- name: set_retention
INSERT INTO treadle_queues (name, retention_seconds) VALUES (:name, :seconds)
ON CONFLICT (name) DO UPDATE SET retention_seconds = excluded.retention_seconds;

-- name: running_with_key
SELECT count(*) AS n FROM treadle_jobs
WHERE status = 'running' AND concurrency_key = :key AND rate_period IS NULL;

-- name: started_in_window
-- A rate key's starts within its window (the sliding window of ADR 0010): of rate-only
-- jobs (the key in concurrency_key) and of jobs whose rate limit sits beside a
-- concurrency limit (rate_key, 0010), one index probe each.
SELECT sum(n) AS n, min(oldest) AS oldest FROM (
    SELECT count(*) AS n, min(started_at) AS oldest FROM treadle_jobs
    WHERE rate_period IS NOT NULL AND concurrency_key = :key AND started_at > :since
    UNION ALL
    SELECT count(*), min(started_at) FROM treadle_jobs
    WHERE rate_key = :key AND started_at > :since);

-- name: queued_ahead_in_tenant
SELECT count(*) AS n FROM treadle_jobs
WHERE status = 'queued' AND tenant = :tenant AND queue = :queue AND run_at <= :now
  AND (priority > :priority OR (priority = :priority AND (run_at < :run_at
       OR (run_at = :run_at AND id < :id))));

-- name: claim_plan
-- What a claim must share out, in one read under BEGIN IMMEDIATE (ADR 0010): the tenants
-- with queued work (a skip scan of the fair index, at most :max_tenants) with weight and
-- running count, and the per-key limited keys with runnable work in claim order.
WITH RECURSIVE t(tenant, depth) AS (
    SELECT (SELECT tenant FROM treadle_jobs INDEXED BY treadle_jobs_fair
            WHERE status = 'queued' ORDER BY tenant LIMIT 1), 1
    UNION ALL
    SELECT (SELECT j.tenant FROM treadle_jobs j INDEXED BY treadle_jobs_fair
            WHERE j.status = 'queued' AND j.tenant > t.tenant ORDER BY j.tenant LIMIT 1),
           t.depth + 1
    FROM t WHERE t.tenant IS NOT NULL AND t.depth < :max_tenants
)
SELECT 'tenant' AS what, t.tenant AS name, coalesce(w.weight, 1) AS n,
       (SELECT count(*) FROM treadle_jobs r WHERE r.status = 'running' AND r.tenant = t.tenant)
           AS running, NULL AS period, NULL AS rkey, NULL AS rn, NULL AS rperiod
FROM t LEFT JOIN treadle_tenants w ON w.name = t.tenant
WHERE t.tenant IS NOT NULL
UNION ALL
-- One row per (key, kind of rule, second rate key): a job with both rules (rate_key set)
-- is claimed only with room under both, so it is planned apart from its key's others.
SELECT 'key', concurrency_key, min(concurrency_limit),
       (SELECT count(*) FROM treadle_jobs r WHERE r.status = 'running'
          AND r.concurrency_key = c.concurrency_key AND r.rate_period IS NULL),
       max(rate_period), rate_key, min(rate_limit), max(rate_window)
FROM (
    SELECT concurrency_key, concurrency_limit, rate_period, rate_key, rate_limit, rate_window
    FROM treadle_jobs j INDEXED BY treadle_jobs_keyed_queued
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL AND run_at <= :now
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND queue NOT IN (SELECT name FROM treadle_queues WHERE paused = 1)
      AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
      AND CASE WHEN j.rate_period IS NULL
          THEN (SELECT count(*) FROM treadle_jobs r WHERE r.status = 'running'
                  AND r.concurrency_key = j.concurrency_key AND r.rate_period IS NULL)
          ELSE (SELECT count(*) FROM treadle_jobs r WHERE r.rate_period IS NOT NULL
                  AND r.concurrency_key = j.concurrency_key
                  AND r.started_at > :now - j.rate_period)
          END < j.concurrency_limit
      AND (j.rate_key IS NULL
           OR (SELECT count(*) FROM treadle_jobs r WHERE r.rate_key = j.rate_key
                 AND r.started_at > :now - j.rate_window)
              + (SELECT count(*) FROM treadle_jobs r WHERE r.rate_period IS NOT NULL
                   AND r.concurrency_key = j.rate_key AND r.started_at > :now - j.rate_window)
              < j.rate_limit)
    ORDER BY priority DESC, run_at, id
    LIMIT :scan
) c GROUP BY concurrency_key, rate_period IS NULL, rate_key
UNION ALL
-- While rate-limited work waits, idle claimers look again at its spacing (no notification
-- says that a window moved on).
SELECT * FROM (
    SELECT 'rate', NULL, NULL, NULL,
           coalesce(rate_window / rate_limit, rate_period / concurrency_limit), NULL, NULL, NULL
    FROM treadle_jobs INDEXED BY treadle_jobs_keyed_queued
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL
      AND (rate_period IS NOT NULL OR rate_key IS NOT NULL) AND run_at <= :now
    LIMIT 1);

-- name: claim_tenant
-- One tenant's share of a claim (ADR 0010): its next jobs by priority, then due time.
UPDATE treadle_jobs
SET status = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_expires_at = :expires, lease_token = lease_token + 1, started_at = :now
WHERE id IN (
    SELECT id FROM treadle_jobs INDEXED BY treadle_jobs_fair
    WHERE status = 'queued' AND tenant = :tenant AND run_at <= :now
      AND concurrency_limit IS NULL
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND queue NOT IN (SELECT value FROM json_each(:excluded))
      AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
      AND (crashes IS NOT NULL) = :suspect  -- suspects: alone, when idle (ADR 0024)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING *;

-- name: set_tenant_weight
INSERT INTO treadle_tenants (name, weight) VALUES (:name, :weight)
ON CONFLICT (name) DO UPDATE SET weight = excluded.weight;

-- name: tenant_weights
SELECT name, weight FROM treadle_tenants ORDER BY name;

-- name: claim_key
UPDATE treadle_jobs
SET status = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_expires_at = :expires, lease_token = lease_token + 1, started_at = :now
WHERE id IN (
    SELECT id FROM treadle_jobs INDEXED BY treadle_jobs_keyed_queued
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL AND concurrency_key = :key
      AND (rate_period IS NULL) = (:period IS NULL) AND rate_key IS :rkey AND run_at <= :now
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND queue NOT IN (SELECT name FROM treadle_queues WHERE paused = 1)
      AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
      AND (crashes IS NOT NULL) = :suspect  -- suspects: alone, when idle (ADR 0024)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING *;

-- name: work_exists
-- Is any job queued or running? A commit seen by an idle wait for work ends it only if so
-- (ADR 0029). Two probes of partial indexes: no scan however many jobs wait or finished.
SELECT EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'queued')
    OR EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'running') AS work;

-- name: next_queued_run_at
-- When the earliest queued job comes due: an idle wait for work sleeps until then.
SELECT min(run_at) AS at FROM treadle_jobs WHERE status = 'queued';

-- name: next_lease_expiry
SELECT min(lease_expires_at) AS at FROM treadle_jobs WHERE status = 'running';

-- name: leave_quarantine
-- Release (back to queued: crash count reset, at least one attempt left) or discard
-- (failed, terminal) a quarantined job (ADR 0015).
UPDATE treadle_jobs
SET status = :status,
    run_at = CASE WHEN :status = 'queued' THEN :now ELSE run_at END,
    crashes = CASE WHEN :status = 'queued' THEN NULL ELSE crashes END,
    -- Crashes refunded their attempts when reaped (ADR 0024): at least one is left.
    max_attempts = CASE WHEN :status = 'queued'
        THEN max(max_attempts, attempt + 1)
        ELSE max_attempts END,
    error = coalesce(:error, error),
    finished_at = :finished_at
WHERE id = :id AND status = 'quarantined'
RETURNING attempt, queue;

-- name: register_worker
-- A worker's row with its process, by which its death is noticed on this host (ADR 0018).
INSERT INTO treadle_workers (id, started_at, last_heartbeat, info, host, pid, pid_start)
VALUES (:worker, :now, :now, '{}', :host, :pid, :pid_start)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
    host = excluded.host, pid = excluded.pid, pid_start = excluded.pid_start;

-- name: running_owners
-- The workers holding running jobs, with the process each recorded (if any).
SELECT DISTINCT w.id, w.host, w.pid, w.pid_start
FROM treadle_jobs j JOIN treadle_workers w ON w.id = j.lease_owner
WHERE j.status = 'running' AND w.pid IS NOT NULL;

-- name: owner_leases
SELECT * FROM treadle_jobs
WHERE status = 'running' AND lease_owner = :owner
ORDER BY id
LIMIT :limit;

-- name: suspect_waiting
-- Is a suspect due (ADR 0024)? An idle worker's look: the partial index holds only
-- queued suspects, so with none this reads nothing (no write lock either).
SELECT 1 FROM treadle_jobs INDEXED BY treadle_jobs_suspects
WHERE status = 'queued' AND crashes IS NOT NULL AND run_at <= :now
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
  AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
LIMIT 1;
