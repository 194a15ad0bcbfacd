-- Named queries for the PostgreSQL store. Parameters use %(name)s style.

-- name: limited_queues
SELECT name, concurrency_limit FROM treadle_queues
WHERE concurrency_limit IS NOT NULL AND NOT paused;

-- name: lock_queue
-- Serialises claimers of a queue with a concurrency limit, so the count holds.
SELECT pg_advisory_xact_lock(hashtext('treadle_queue:' || %(queue)s));

-- name: running_in_queue
SELECT count(*) FROM treadle_jobs WHERE status = 'running' AND queue = %(queue)s;

-- name: claim_queue
WITH cand AS (
    SELECT id FROM treadle_jobs
    WHERE status = 'queued' AND queue = %(queue)s AND run_at <= %(now)s
      -- Paused queues are never claimed; limited ones only under their lock (limited_ok).
      AND NOT EXISTS (
          SELECT 1 FROM treadle_queues q WHERE q.name = %(queue)s
            AND (q.paused OR (q.concurrency_limit IS NOT NULL AND NOT %(limited_ok)s)))
      -- Only kinds this worker can run (ADR 0008): a filter on the ordered index scan.
      AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
      AND (crashes IS NOT NULL) = %(suspect)s::boolean  -- suspects: alone (ADR 0024)
      AND concurrency_limit IS NULL  -- per-key limited jobs: claim_key
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), fast AS MATERIALIZED (
    -- This claim commits without waiting for its WAL flush (ADR 0030), but for a limited
    -- queue's (in _claim_limited's transaction, under its lock: the limit's count must
    -- survive a server crash). A server crash may forget it: the job is queued again,
    -- and its token is never handed out again (below), so its holder stays fenced out.
    -- The setting is local to the statement's own transaction.
    SELECT set_config('synchronous_commit',
                      CASE WHEN %(limited_ok)s THEN current_setting('synchronous_commit')
                           ELSE 'off' END, true) AS v
), upd AS (
    UPDATE treadle_jobs j
    SET status = 'running', attempt = j.attempt + 1, lease_owner = %(worker)s,
        lease_expires_at = %(expires)s,
        -- The server's clock in µs, and always past the last token: a token a crash made
        -- the server forget (an unflushed claim) is not given again (ADR 0030).
        lease_token = greatest(j.lease_token + 1,
                               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
        started_at = %(now)s
    FROM cand, fast WHERE j.id = cand.id
    RETURNING j.*
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, 'queued', 'running', attempt, %(worker)s, 'claimed', %(now)s FROM upd
)
SELECT * FROM upd;

-- name: claim_any
WITH cand AS (
    SELECT id FROM treadle_jobs
    WHERE status = 'queued' AND run_at <= %(now)s
      -- A hashed subplan filter, neither `queue <> ALL (ARRAY(...))` (the planner cannot
      -- estimate the array, and once the table was analyzed it read every queued row: a
      -- sequential scan and a sort, 140 ms at 100,000 queued, instead of the claim
      -- order's index, 0.4 ms) nor NOT EXISTS (an anti-join the planner may hash against
      -- a scan of the whole table). See bench/results/backlog.md.
      AND queue NOT IN (
          SELECT name FROM treadle_queues WHERE paused OR concurrency_limit IS NOT NULL)
      AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
      AND (crashes IS NOT NULL) = %(suspect)s::boolean  -- suspects: alone (ADR 0024)
      AND concurrency_limit IS NULL  -- per-key limited jobs: claim_key
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), fast AS MATERIALIZED (
    -- This claim commits without waiting for its WAL flush (ADR 0030). A server crash
    -- may forget it: the job is queued again, and its token is never handed out again
    -- (below), so its holder stays fenced out. The setting is local to the statement's
    -- own transaction: the connection's next one flushes.
    SELECT set_config('synchronous_commit', 'off', true) AS v
), upd AS (
    UPDATE treadle_jobs j
    SET status = 'running', attempt = j.attempt + 1, lease_owner = %(worker)s,
        lease_expires_at = %(expires)s,
        -- The server's clock in µs, and always past the last token: a token a crash made
        -- the server forget (an unflushed claim) is not given again (ADR 0030).
        lease_token = greatest(j.lease_token + 1,
                               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
        started_at = %(now)s
    FROM cand, fast WHERE j.id = cand.id
    RETURNING j.*
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, 'queued', 'running', attempt, %(worker)s, 'claimed', %(now)s FROM upd
)
SELECT * FROM upd;

-- name: insert_jobs
-- One round trip for a whole batch. The jobs come as one JSON array of objects, one per
-- job (a key left out is NULL): building and sending it costs the client a fraction of
-- one array parameter per column (ADR 0027). Rows are inserted in input order, so their
-- ids ascend in it; the client builds each job from its request and the returned id.
WITH input AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(jobs)s::jsonb) AS (
        tenant text, queue text, kind text, task text, payload jsonb, priority integer,
        run_at timestamptz, max_attempts integer, timeout double precision,
        idempotency_key text, concurrency_key text, parent_id bigint, callback_url text,
        concurrency_limit integer, rate_period double precision, max_crashes integer,
        traceparent text, rate_key text, rate_limit integer, rate_window double precision)
    ) WITH ORDINALITY AS t
), ins AS (
    INSERT INTO treadle_jobs (
        tenant, queue, kind, task, payload, priority, run_at, max_attempts, timeout,
        idempotency_key, concurrency_key, parent_id, callback_url, concurrency_limit, rate_period,
        max_crashes, created_at, traceparent, rate_key, rate_limit, rate_window)
    SELECT tenant, queue, kind, task, payload, priority, coalesce(run_at, %(now)s),
           max_attempts, timeout, idempotency_key, concurrency_key, parent_id, callback_url,
           concurrency_limit, rate_period, max_crashes, %(now)s, traceparent, rate_key,
           rate_limit, rate_window
    FROM input ORDER BY ordinality
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, tenant, queue, idempotency_key
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, NULL, 'queued', 0, NULL, 'enqueued', %(now)s FROM ins
), note AS MATERIALIZED (
    -- Wake idle workers in the same statement: no extra round trip.
    SELECT count(pg_notify('treadle_jobs', q)) AS n FROM (SELECT DISTINCT queue AS q FROM ins) d
)
SELECT ins.id, ins.tenant, ins.idempotency_key FROM ins, note ORDER BY ins.id;

-- name: insert_job_handoff
-- One plain job (autocommit, no guard), handed straight to a parked worker when one can
-- take it (ADR 0034): a worker parked with a free slot whose claim connection lives,
-- serving this queue and kind, while nothing is queued in this queue (so no job is
-- overtaken) and the job is due and under no limit. The job is then inserted claimed by
-- that worker, as a claim would leave it, and its row goes to the worker's own channel:
-- the worker starts it without a claim's round trip. Otherwise it is queued as by
-- insert_jobs. A payload too long for a notification sends the id; the worker reads it.
WITH input AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(jobs)s::jsonb) AS (
        tenant text, queue text, kind text, task text, payload jsonb, priority integer,
        run_at timestamptz, max_attempts integer, timeout double precision,
        idempotency_key text, concurrency_key text, parent_id bigint, callback_url text,
        concurrency_limit integer, rate_period double precision, max_crashes integer,
        traceparent text, rate_key text, rate_limit integer, rate_window double precision)
    ) AS t
), pick AS (
    UPDATE treadle_parked p SET free = p.free - 1
    FROM (
        SELECT q.worker FROM treadle_parked q, input i
        WHERE q.free > 0
          AND (q.queues IS NULL OR i.queue = ANY (q.queues))
          AND (q.kinds IS NULL OR i.kind = ANY (q.kinds))
          AND (i.run_at IS NULL OR i.run_at <= %(now)s)
          AND i.concurrency_limit IS NULL AND i.rate_period IS NULL AND i.rate_key IS NULL
          AND (SELECT count(*) FROM input) = 1
          -- Any queued job of the queue, due or not: one probe of the claim index.
          AND NOT EXISTS (SELECT 1 FROM treadle_jobs j
                          WHERE j.status = 'queued' AND j.queue = i.queue)
          AND i.queue NOT IN (
              SELECT name FROM treadle_queues WHERE paused OR concurrency_limit IS NOT NULL)
          -- Its claim connection still lives: the session lock it holds is held. (A
          -- shared try that succeeds finds a dead key; the lock ends with this statement.)
          AND q.lock_key IS NOT NULL AND NOT pg_try_advisory_xact_lock_shared(q.lock_key)
        ORDER BY q.parked_at DESC
        LIMIT 1
        FOR UPDATE OF q SKIP LOCKED
    ) c
    WHERE p.worker = c.worker
    RETURNING p.worker, p.lease_seconds, p.channel
), ins AS (
    INSERT INTO treadle_jobs (
        tenant, queue, kind, task, payload, priority, run_at, max_attempts, timeout,
        idempotency_key, concurrency_key, parent_id, callback_url, concurrency_limit, rate_period,
        max_crashes, created_at, traceparent, rate_key, rate_limit, rate_window,
        status, attempt, lease_owner, lease_expires_at, lease_token, started_at)
    SELECT tenant, queue, kind, task, payload, priority, coalesce(run_at, %(now)s),
           max_attempts, timeout, idempotency_key, concurrency_key, parent_id, callback_url,
           concurrency_limit, rate_period, max_crashes, %(now)s, traceparent, rate_key,
           rate_limit, rate_window,
           CASE WHEN pick.worker IS NULL THEN 'queued' ELSE 'running' END,
           CASE WHEN pick.worker IS NULL THEN 0 ELSE 1 END,
           pick.worker,
           %(now)s + make_interval(secs => pick.lease_seconds),
           -- As a claim makes it (ADR 0030): the server's clock in µs.
           CASE WHEN pick.worker IS NULL THEN 0
                ELSE (extract(epoch FROM clock_timestamp()) * 1000000)::bigint END,
           CASE WHEN pick.worker IS NULL THEN NULL ELSE %(now)s END
    FROM input LEFT JOIN pick ON true
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, NULL, 'queued', 0, NULL, 'enqueued', %(now)s FROM ins
    UNION ALL
    SELECT id, 'queued', 'running', attempt, lease_owner, 'claimed', %(now)s
    FROM ins WHERE status = 'running'
), note AS MATERIALIZED (
    SELECT count(CASE
        WHEN pick.worker IS NULL THEN pg_notify('treadle_jobs', ins.queue)
        WHEN octet_length(r.row) < 7900 THEN pg_notify(pick.channel, r.row)
        ELSE pg_notify(pick.channel, json_build_object(
            'id', ins.id, 'lease_owner', ins.lease_owner,
            'lease_token', ins.lease_token)::text)
    END) AS n
    FROM ins LEFT JOIN pick ON true,
         LATERAL (SELECT CASE WHEN pick.worker IS NOT NULL THEN row_to_json(ins)::text END
                  AS row) r
)
-- ``parked``: whether any worker could be handed a job at all; the producer sends the
-- plain insert for a while when none could (this statement costs ~0.05 ms more). A
-- job handed says so without the look.
SELECT ins.id, ins.tenant, ins.idempotency_key,
       ins.status = 'running' OR EXISTS (SELECT 1 FROM treadle_parked WHERE free > 0)
           AS parked
FROM ins, note;

-- name: park_worker
-- Park (free > 0) or unpark (free = 0) a worker, run on its claim connection, whose
-- session lock is recorded (ADR 0034; the backend too, for operators). Rows of other
-- workers whose lock is free (a worker killed while parked) are cleared on the way:
-- never handed a job, they cost each enqueue a look. The test is the enqueue's own (a
-- look at the backend would miss another role's, and clear a live worker's row); rows
-- from before migration 0013, without a key, still by their backend.
WITH fast AS MATERIALIZED (
    -- A parked row is a hint, so its write does not wait for the WAL flush (as a claim,
    -- ADR 0030): a server crash that forgets it also ends the claim connection, and the
    -- worker parks again on its next one. Local to this statement's transaction.
    SELECT set_config('synchronous_commit', 'off', true) AS v
), gone AS (
    DELETE FROM treadle_parked p USING fast
    WHERE fast.v IS NOT NULL AND (
          (p.worker = %(worker)s AND %(free)s::integer = 0)
       OR (p.worker <> %(worker)s AND p.lock_key IS NOT NULL
           AND pg_try_advisory_xact_lock_shared(p.lock_key))
       OR (p.worker <> %(worker)s AND p.lock_key IS NULL AND NOT EXISTS (
               SELECT 1 FROM pg_stat_get_activity(p.pid) a
               WHERE a.backend_start = p.backend_start)))
)
INSERT INTO treadle_parked (worker, free, queues, kinds, lease_seconds, pid, backend_start,
                            channel, parked_at, lock_key)
SELECT %(worker)s, %(free)s, %(queues)s::text[], %(kinds)s::text[], %(lease_seconds)s,
       a.pid, a.backend_start, %(channel)s, %(now)s, %(lock_key)s
FROM pg_stat_get_activity(pg_backend_pid()) a WHERE %(free)s::integer > 0
ON CONFLICT (worker) DO UPDATE SET free = excluded.free, queues = excluded.queues,
    kinds = excluded.kinds, lease_seconds = excluded.lease_seconds, pid = excluded.pid,
    backend_start = excluded.backend_start, channel = excluded.channel,
    parked_at = excluded.parked_at, lock_key = excluded.lock_key;

-- name: handed_job
-- A job handed to this worker whose row did not fit its notification (ADR 0034).
SELECT * FROM treadle_jobs
WHERE id = %(id)s AND status = 'running' AND lease_owner = %(worker)s
  AND lease_token = %(token)s;

-- name: jobs_by_idempotency_keys
SELECT * FROM treadle_jobs
WHERE (tenant, idempotency_key) IN (
    SELECT * FROM unnest(%(tenant)s::text[], %(idempotency_key)s::text[]));

-- name: notify_jobs
SELECT pg_notify('treadle_jobs', q) FROM unnest(%(queues)s::text[]) AS q;

-- name: notify_done
SELECT pg_notify('treadle_done', %(ids)s);

-- name: finish_many
-- The guarded update: only the holder of the current lease token may write.
WITH input AS (
    SELECT * FROM unnest(
        %(id)s::bigint[], %(token)s::bigint[], %(status)s::text[], %(result)s::jsonb[],
        %(error)s::jsonb[], %(run_at)s::timestamptz[], %(payload)s::jsonb[],
        %(extra_attempts)s::integer[], %(finished_at)s::timestamptz[], %(worker)s::text[],
        %(reason)s::text[], %(u_outcome)s::text[], %(u_error_class)s::text[],
        %(u_wall)s::float8[], %(u_cpu)s::float8[], %(u_peak)s::bigint[],
        %(u_result)s::bigint[], %(u_log)s::bigint[], %(u_wait)s::float8[],
        %(u_tokens_in)s::bigint[], %(u_tokens_out)s::bigint[], %(u_cost)s::float8[]
    ) AS t(id, token, status, result, error, run_at, payload, extra_attempts, finished_at,
           worker, reason, u_outcome, u_error_class, u_wall, u_cpu, u_peak, u_result, u_log,
           u_wait, u_tokens_in, u_tokens_out, u_cost)
), upd AS (
    UPDATE treadle_jobs j
    SET status = i.status,
        result = i.result,
        error = i.error,
        run_at = coalesce(i.run_at, j.run_at),
        payload = coalesce(i.payload, j.payload),
        max_attempts = j.max_attempts + i.extra_attempts,
        finished_at = i.finished_at,
        lease_owner = NULL,
        lease_expires_at = NULL,
        -- A pending cancel request survives a re-queue or a suspension (acted on later).
        cancel_requested = CASE WHEN i.status IN ('queued', 'waiting') THEN j.cancel_requested
                                ELSE false END
    FROM input i
    WHERE j.id = i.id AND j.status = 'running' AND j.lease_token = i.token
    RETURNING j.id, j.attempt, j.status, j.queue, j.tenant, j.callback_url, i.worker,
              i.reason, i.error, j.kind, j.task, j.traceparent, i.u_outcome, i.u_error_class,
              i.u_wall, i.u_cpu, i.u_peak, i.u_result, i.u_log, i.u_wait, i.u_tokens_in,
              i.u_tokens_out, i.u_cost
), us AS (
    -- What the attempt cost (ADR 0022), counted exactly when its outcome is accepted.
    -- Typed arrays, not a JSON document per job: no JSON to quote into the array
    -- literal, parse and pick apart per row. u_outcome is NULL when nothing was measured.
    INSERT INTO treadle_attempt_usage (
        job_id, attempt, tenant, queue, kind, task, outcome, error_class, finished_at,
        wall_seconds, cpu_seconds, peak_memory_bytes, result_bytes, log_bytes, wait_seconds,
        tokens_in, tokens_out, cost_usd)
    SELECT id, attempt, tenant, queue, kind, task, u_outcome, u_error_class, %(now)s,
           u_wall, u_cpu, u_peak, u_result, u_log, u_wait, u_tokens_in, u_tokens_out, u_cost
    FROM upd WHERE u_outcome IS NOT NULL
    ON CONFLICT (job_id, attempt) DO NOTHING
), ev AS (
    -- Each attempt's error stays in its event, after the job's own error moves on.
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    SELECT id, 'running', status, attempt, worker, reason, %(now)s,
           CASE WHEN error IS NULL THEN NULL ELSE jsonb_build_object('error', error) END
    FROM upd
), cb AS (
    -- A finished job's callback delivery is a durable job written in this same statement.
    INSERT INTO treadle_jobs (tenant, queue, kind, task, payload, run_at, max_attempts, timeout,
                              parent_id, created_at, traceparent)
    SELECT tenant, 'treadle.callbacks', 'task', 'treadle.deliver_callback',
           jsonb_build_object('job_id', id), %(now)s, 11, 30, id, %(now)s, traceparent
    FROM upd WHERE callback_url IS NOT NULL AND status IN ('succeeded', 'failed', 'cancelled')
    RETURNING id
), cb_ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, NULL, 'queued', 0, NULL, 'enqueued', %(now)s FROM cb
), note AS MATERIALIZED (
    -- Waiters learn of finished jobs, idle workers of re-queued ones and deliveries.
    SELECT count(pg_notify(channel, payload)) AS n FROM (
        SELECT 'treadle_done' AS channel, string_agg(id::text, ',') AS payload
        FROM upd WHERE status IN ('succeeded', 'failed', 'cancelled') HAVING count(*) > 0
        UNION ALL
        SELECT DISTINCT 'treadle_jobs', queue FROM upd WHERE status = 'queued'
        UNION ALL
        (SELECT 'treadle_jobs', 'treadle.callbacks' FROM cb LIMIT 1)
    ) n
)
SELECT upd.id, upd.status, upd.queue FROM upd, note;

-- name: jobs_status_token
SELECT id, status, lease_token, attempt FROM treadle_jobs WHERE id = ANY (%(ids)s::bigint[]);

-- name: insert_event
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
VALUES (%(job_id)s, %(from_status)s, %(to_status)s, %(attempt)s, %(worker)s, %(reason)s,
        %(at)s, %(detail)s);

-- name: heartbeat
UPDATE treadle_jobs j SET lease_expires_at = %(expires)s
FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS t(id, token)
WHERE j.id = t.id AND j.status = 'running' AND j.lease_token = t.token
RETURNING j.id, j.cancel_requested;

-- name: upsert_worker
-- The lease length lets the reaper tell a dead worker from a live one (ADR 0015).
INSERT INTO treadle_workers (id, started_at, last_heartbeat, info, lease_seconds)
VALUES (%(worker)s, %(now)s, %(now)s, '{}', %(lease_seconds)s)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
    lease_seconds = excluded.lease_seconds;

-- name: any_expired
SELECT 1 FROM treadle_jobs WHERE status = 'running' AND lease_expires_at <= %(now)s LIMIT 1;

-- name: expired_leases
-- With the lease owner's liveness record: did the worker die, or only this lease lapse?
SELECT j.*, w.last_heartbeat AS owner_heartbeat, w.lease_seconds AS owner_lease_seconds
FROM treadle_jobs j LEFT JOIN treadle_workers w ON w.id = j.lease_owner
WHERE j.status = 'running' AND j.lease_expires_at <= %(now)s
ORDER BY j.lease_expires_at
LIMIT %(limit)s
FOR UPDATE OF j SKIP LOCKED;

-- name: reap_many
-- Guarded by the token read with the rows (ADR 0002): only the attempt that was judged.
WITH input AS (
    SELECT * FROM unnest(%(id)s::bigint[], %(token)s::bigint[], %(status)s::text[],
                         %(error)s::jsonb[], %(reason)s::text[], %(worker)s::text[],
                         %(crashes)s::jsonb[], %(detail)s::jsonb[], %(refund)s::integer[])
        AS t(id, token, status, error, reason, worker, crashes, detail, refund)
), upd AS (
    UPDATE treadle_jobs j
    SET status = i.status, error = i.error, run_at = %(now)s, lease_owner = NULL,
        lease_expires_at = NULL, crashes = coalesce(i.crashes, j.crashes),
        max_attempts = j.max_attempts + i.refund,  -- a crash gives its attempt back (0024)
        finished_at = CASE WHEN i.status IN ('queued', 'quarantined') THEN NULL
                           ELSE %(now)s END
    FROM input i WHERE j.id = i.id AND j.status = 'running' AND j.lease_token = i.token
    RETURNING j.id, j.status, j.attempt, i.reason, i.worker, i.detail, i.error, j.tenant,
              j.queue, j.kind, j.task, j.started_at
), us AS (
    -- The reaped attempt's usage (ADR 0022): only rows the guard let through. Wall time
    -- from its start to the reap; CPU, memory and wait unknown (NULL), bytes, tokens and
    -- cost 0. A re-queued attempt is a 'retry', as a worker's would be.
    INSERT INTO treadle_attempt_usage (
        job_id, attempt, tenant, queue, kind, task, outcome, error_class, finished_at,
        wall_seconds)
    SELECT id, attempt, tenant, queue, kind, task,
           CASE WHEN status = 'queued' THEN 'retry' ELSE status END, error->>'class',
           %(now)s, greatest(0, extract(epoch FROM %(now)s::timestamptz
                                                  - coalesce(started_at, %(now)s::timestamptz)))
    FROM upd
    ON CONFLICT (job_id, attempt) DO NOTHING
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    SELECT id, 'running', status, attempt, worker, reason, %(now)s, detail FROM upd
)
SELECT id, status FROM upd;

-- name: get_job
SELECT * FROM treadle_jobs
WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text);

-- name: jobs_finished
SELECT id FROM treadle_jobs
WHERE id = ANY (%(ids)s::bigint[]) AND status IN ('succeeded', 'failed', 'cancelled');

-- name: list_jobs
SELECT * FROM treadle_jobs
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
  AND (%(statuses)s::text[] IS NULL OR status = ANY (%(statuses)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(task)s::text IS NULL OR task = %(task)s::text)
  AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s::timestamptz)
  AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: count_by_status
SELECT status, count(*) AS n FROM treadle_jobs
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
GROUP BY status;

-- name: lock_job
SELECT id, status, attempt FROM treadle_jobs WHERE id = %(id)s FOR UPDATE;

-- name: cancel_queued
-- Jobs holding no lease (queued, waiting or quarantined) are cancelled at once.
UPDATE treadle_jobs SET status = 'cancelled', finished_at = %(now)s
WHERE id = %(id)s AND status IN ('queued', 'waiting', 'quarantined')
RETURNING attempt;

-- name: unfinished_children
SELECT id FROM treadle_jobs
WHERE parent_id = %(id)s AND status IN ('queued', 'running', 'waiting', 'quarantined')
ORDER BY id;

-- name: request_cancel
UPDATE treadle_jobs SET cancel_requested = true
WHERE id = %(id)s AND status = 'running';

-- name: manual_retry
UPDATE treadle_jobs
SET status = 'queued', run_at = %(now)s, max_attempts = attempt + 1, finished_at = NULL,
    cancel_requested = false
WHERE id = %(id)s AND status IN ('failed', 'cancelled')
RETURNING attempt, queue;

-- name: events
SELECT * FROM treadle_events WHERE job_id = %(job_id)s ORDER BY id;

-- name: insert_log
INSERT INTO treadle_job_logs (job_id, attempt, at, message)
VALUES (%(job_id)s, %(attempt)s, %(at)s, %(message)s);

-- name: logs
SELECT * FROM treadle_job_logs WHERE job_id = %(job_id)s ORDER BY id;

-- name: upsert_queue
INSERT INTO treadle_queues (name, paused, concurrency_limit)
VALUES (%(name)s, coalesce(%(paused)s::boolean, false), %(concurrency_limit)s::integer)
ON CONFLICT (name) DO UPDATE SET
    paused = coalesce(%(paused)s::boolean, treadle_queues.paused),
    concurrency_limit = CASE WHEN %(clear_limit)s THEN NULL
        ELSE coalesce(%(concurrency_limit)s::integer, treadle_queues.concurrency_limit) END;

-- name: queue_configs
SELECT name, paused, concurrency_limit, retention_seconds FROM treadle_queues;

-- name: queue_stats
SELECT queue,
       count(*) FILTER (WHERE status = 'queued' AND run_at <= %(now)s AND attempt = 0) AS queued,
       count(*) FILTER (WHERE status = 'queued' AND run_at > %(now)s) AS scheduled,
       count(*) FILTER (WHERE status = 'queued' AND run_at <= %(now)s AND attempt > 0)
           AS retrying,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'failed' AND finished_at >= %(hour_ago)s)
           AS failed_last_hour,
       count(*) FILTER (WHERE status = 'succeeded' AND finished_at >= %(hour_ago)s)
           AS succeeded_last_hour
FROM treadle_jobs
WHERE status IN ('queued', 'running') OR finished_at >= %(hour_ago)s
GROUP BY queue;

-- name: workers
SELECT * FROM treadle_workers ORDER BY last_heartbeat DESC;

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS treadle_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());

-- name: applied_migrations
SELECT version FROM treadle_migrations ORDER BY version;

-- name: record_migration
INSERT INTO treadle_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: migration_lock
SELECT pg_advisory_xact_lock(hashtext('treadle_migrate'));

-- name: insert_callback_jobs
-- The delivery of a finished job's callback is itself a durable job, written in
-- the same transaction as the job's final state so it can never be lost.
WITH ins AS (
    INSERT INTO treadle_jobs (tenant, queue, kind, task, payload, run_at, max_attempts, timeout,
                              parent_id, created_at, traceparent)
    SELECT tenant, 'treadle.callbacks', 'task', 'treadle.deliver_callback',
           jsonb_build_object('job_id', id), %(now)s, 11, 30, id, %(now)s, traceparent
    FROM treadle_jobs WHERE id = ANY (%(ids)s::bigint[]) AND callback_url IS NOT NULL
    RETURNING id
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, NULL, 'queued', 0, NULL, 'enqueued', %(now)s FROM ins
)
SELECT pg_notify('treadle_jobs', 'treadle.callbacks') FROM ins LIMIT 1;

-- name: plugin_applied_migrations
SELECT version FROM treadle_plugin_migrations WHERE plugin = %(plugin)s ORDER BY version;

-- name: record_plugin_migration
INSERT INTO treadle_plugin_migrations (plugin, version, name) VALUES (%(plugin)s, %(version)s, %(name)s);

-- name: schedule_states
SELECT name, paused, last_fire FROM treadle_schedules;

-- name: set_schedule_paused
INSERT INTO treadle_schedules (name, paused, updated_at) VALUES (%(name)s, %(paused)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at;

-- name: schedule_fired
-- The last tick handled only moves forward, whichever scheduler writes last.
INSERT INTO treadle_schedules (name, paused, last_fire, updated_at)
VALUES (%(name)s, false, %(fire)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET
    last_fire = greatest(coalesce(treadle_schedules.last_fire, excluded.last_fire),
                         excluded.last_fire),
    updated_at = excluded.updated_at;

-- name: prune_finished
-- One small batch, oldest first; events and logs go with their job (ON DELETE CASCADE).
-- %(cutoff)s bounds the index scan by the shortest retention; each row then meets its own.
WITH doomed AS (
    SELECT j.id FROM treadle_jobs j LEFT JOIN treadle_queues q ON q.name = j.queue
    WHERE j.finished_at IS NOT NULL AND j.finished_at < %(cutoff)s
      AND j.status IN ('succeeded', 'failed', 'cancelled')
      AND j.finished_at < %(now)s - make_interval(secs => coalesce(
            %(override)s::double precision, q.retention_seconds, %(default)s::double precision))
    ORDER BY j.finished_at
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
)
DELETE FROM treadle_jobs WHERE id IN (SELECT id FROM doomed) RETURNING id;

-- name: min_retention
SELECT min(retention_seconds) AS s FROM treadle_queues;

-- name: set_retention
INSERT INTO treadle_queues (name, retention_seconds) VALUES (%(name)s, %(seconds)s)
ON CONFLICT (name) DO UPDATE SET retention_seconds = excluded.retention_seconds;

-- name: running_with_key
SELECT count(*) AS n FROM treadle_jobs
WHERE status = 'running' AND concurrency_key = %(key)s AND rate_period IS NULL;

-- name: started_in_window
-- A rate key's starts within its window (the sliding window of ADR 0010): of rate-only
-- jobs (the key in concurrency_key) and of jobs whose rate limit sits beside a
-- concurrency limit (rate_key, 0010), one index probe each.
SELECT sum(n)::bigint AS n, min(oldest) AS oldest FROM (
    SELECT count(*) AS n, min(started_at) AS oldest FROM treadle_jobs
    WHERE rate_period IS NOT NULL AND concurrency_key = %(key)s AND started_at > %(since)s
    UNION ALL
    SELECT count(*), min(started_at) FROM treadle_jobs
    WHERE rate_key = %(key)s AND started_at > %(since)s
) w;

-- name: queued_ahead_in_tenant
SELECT count(*) AS n FROM treadle_jobs
WHERE status = 'queued' AND tenant = %(tenant)s AND queue = %(queue)s AND run_at <= %(now)s
  AND (priority > %(priority)s OR (priority = %(priority)s AND (run_at, id) < (%(run_at)s, %(id)s)));

-- name: claim_plan
-- What a claim must share out, in one read (ADR 0010): the tenants with queued work (a
-- skip scan of the fair index, at most %(max_tenants)s) with weight and running count, and
-- the per-key limited keys with runnable work in claim order. Counts here only plan the
-- claim; a key's exact count is read again under its lock.
WITH RECURSIVE t AS (
    (SELECT tenant, 1 AS depth FROM treadle_jobs WHERE status = 'queued'
     ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant FROM treadle_jobs j WHERE j.status = 'queued' AND j.tenant > t.tenant
            ORDER BY j.tenant LIMIT 1), t.depth + 1
    FROM t WHERE t.tenant IS NOT NULL AND t.depth < %(max_tenants)s
), keyed AS (
    -- One row per (key, kind of rule, second rate key): a job with both rules (rate_key
    -- set) is claimed only with room under both, so it is planned apart from the others.
    SELECT concurrency_key, min(concurrency_limit) AS lim, max(rate_period) AS period,
           rate_key, min(rate_limit) AS rlim, max(rate_window) AS rperiod FROM (
        SELECT concurrency_key, concurrency_limit, rate_period, rate_key, rate_limit,
               rate_window FROM treadle_jobs j
        WHERE status = 'queued' AND concurrency_limit IS NOT NULL AND run_at <= %(now)s
          AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
          AND queue <> ALL (ARRAY(SELECT name FROM treadle_queues WHERE paused))
          AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
          AND CASE WHEN j.rate_period IS NULL
          THEN (SELECT count(*) FROM treadle_jobs r WHERE r.status = 'running'
                  AND r.concurrency_key = j.concurrency_key AND r.rate_period IS NULL)
          ELSE (SELECT count(*) FROM treadle_jobs r WHERE r.rate_period IS NOT NULL
                  AND r.concurrency_key = j.concurrency_key
                  AND r.started_at > %(now)s - make_interval(secs => j.rate_period))
          END < j.concurrency_limit
          AND (j.rate_key IS NULL
               OR (SELECT count(*) FROM treadle_jobs r WHERE r.rate_key = j.rate_key
                     AND r.started_at > %(now)s - make_interval(secs => j.rate_window))
                  + (SELECT count(*) FROM treadle_jobs r WHERE r.rate_period IS NOT NULL
                       AND r.concurrency_key = j.rate_key
                       AND r.started_at > %(now)s - make_interval(secs => j.rate_window))
                  < j.rate_limit)
          -- A one-time probe of the (small) keyed index: with no such jobs queued, the
          -- scan above never runs, whatever plan the other indexes suggest.
          AND EXISTS (SELECT 1 FROM treadle_jobs k
                      WHERE k.status = 'queued' AND k.concurrency_limit IS NOT NULL)
        ORDER BY priority DESC, run_at, id
        LIMIT %(scan)s
    ) c GROUP BY concurrency_key, rate_period IS NULL, rate_key LIMIT %(keys)s
)
SELECT 'tenant' AS what, t.tenant AS name, coalesce(w.weight, 1) AS n,
       (SELECT count(*) FROM treadle_jobs r WHERE r.status = 'running' AND r.tenant = t.tenant)
           AS running, NULL::double precision AS period, NULL::text AS rkey,
       NULL::integer AS rn, NULL::double precision AS rperiod
FROM t LEFT JOIN treadle_tenants w ON w.name = t.tenant
WHERE t.tenant IS NOT NULL
UNION ALL
SELECT 'key', concurrency_key, lim, 0, period, rate_key, rlim, rperiod FROM keyed
UNION ALL
-- While rate-limited work waits, idle claimers look again at its spacing (no notification
-- says that a window moved on).
(SELECT 'rate', NULL, NULL, NULL,
        coalesce(rate_window / rate_limit, rate_period / concurrency_limit), NULL, NULL, NULL
 FROM treadle_jobs
 WHERE status = 'queued' AND concurrency_limit IS NOT NULL
   AND (rate_period IS NOT NULL OR rate_key IS NOT NULL) AND run_at <= %(now)s
 LIMIT 1)
UNION ALL
-- Whether a suspect is due (suspect_waiting's look, ADR 0024), in the same round trip: a
-- worker whose claim came back empty looks for one next (ADR 0031).
(SELECT 'suspect', NULL, NULL, NULL, NULL, NULL, NULL, NULL
 FROM treadle_jobs
 WHERE status = 'queued' AND crashes IS NOT NULL AND run_at <= %(now)s
   AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
   AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
 LIMIT 1);

-- name: claim_fair
-- Each tenant's share of this claim (ADR 0010), in one statement: per tenant, its next
-- jobs by priority, then due time. Paused, limited queues and per-key jobs are left out.
WITH alloc AS (
    SELECT * FROM unnest(%(tenants)s::text[], %(counts)s::integer[]) AS a(tenant, n)
), cand AS (
    SELECT c.id FROM alloc a CROSS JOIN LATERAL (
        SELECT j.id FROM treadle_jobs j
        WHERE j.status = 'queued' AND j.tenant = a.tenant AND j.run_at <= %(now)s
          AND j.concurrency_limit IS NULL
          AND (%(queues)s::text[] IS NULL OR j.queue = ANY (%(queues)s::text[]))
          -- An anti-join, not `queue <> ALL (ARRAY(...))`: the planner cannot estimate
          -- the array, and after ANALYZE it then read a whole tenant by another index.
          AND NOT EXISTS (SELECT 1 FROM treadle_queues q WHERE q.name = j.queue
                            AND (q.paused OR q.concurrency_limit IS NOT NULL))
          AND (%(kinds)s::text[] IS NULL OR j.kind = ANY (%(kinds)s::text[]))
          AND (j.crashes IS NOT NULL) = %(suspect)s::boolean  -- suspects: alone (ADR 0024)
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT a.n
        FOR UPDATE SKIP LOCKED
    ) c
), fast AS MATERIALIZED (
    -- This claim commits without waiting for its WAL flush (ADR 0030). A server crash
    -- may forget it: the job is queued again, and its token is never handed out again
    -- (below), so its holder stays fenced out. The setting is local to the statement's
    -- own transaction: the connection's next one flushes.
    SELECT set_config('synchronous_commit', 'off', true) AS v
), upd AS (
    UPDATE treadle_jobs j
    SET status = 'running', attempt = j.attempt + 1, lease_owner = %(worker)s,
        lease_expires_at = %(expires)s,
        -- The server's clock in µs, and always past the last token: a token a crash made
        -- the server forget (an unflushed claim) is not given again (ADR 0030).
        lease_token = greatest(j.lease_token + 1,
                               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
        started_at = %(now)s
    FROM cand, fast WHERE j.id = cand.id
    RETURNING j.*
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, 'queued', 'running', attempt, %(worker)s, 'claimed', %(now)s FROM upd
)
SELECT * FROM upd;

-- name: set_tenant_weight
INSERT INTO treadle_tenants (name, weight) VALUES (%(name)s, %(weight)s)
ON CONFLICT (name) DO UPDATE SET weight = excluded.weight;

-- name: tenant_weights
SELECT name, weight FROM treadle_tenants ORDER BY name;

-- name: lock_keys
-- Serialises claimers of a per-key limited key, so its count holds. Every key one claim
-- plans to count (concurrency and rate keys), locked up front in one
-- order of the lock ids themselves: a claimer that takes keys one by one in its plan's
-- order can deadlock with another whose plan orders them differently, which a job with
-- two keys (ADR 0010, migration 0010) makes likely (claimers of (user, vendor) pairs sharing a vendor).
SELECT pg_advisory_xact_lock(h) FROM (
    SELECT DISTINCT hashtext('treadle_key:' || k) AS h FROM unnest(%(keys)s::text[]) AS k
    ORDER BY h
) ids;

-- name: claim_key
WITH cand AS (
    SELECT id FROM treadle_jobs
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL AND concurrency_key = %(key)s
      AND (rate_period IS NULL) = (%(period)s::double precision IS NULL) AND run_at <= %(now)s
      AND rate_key IS NOT DISTINCT FROM %(rkey)s::text
      AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
      AND queue <> ALL (ARRAY(SELECT name FROM treadle_queues WHERE paused))
      AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
      AND (crashes IS NOT NULL) = %(suspect)s::boolean  -- suspects: alone (ADR 0024)
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE treadle_jobs j
    SET status = 'running', attempt = j.attempt + 1, lease_owner = %(worker)s,
        lease_expires_at = %(expires)s,
        -- The server's clock in µs, and always past the last token: a token a crash made
        -- the server forget (an unflushed claim) is not given again (ADR 0030).
        lease_token = greatest(j.lease_token + 1,
                               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
        started_at = %(now)s
    FROM cand WHERE j.id = cand.id
    RETURNING j.*
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at)
    SELECT id, 'queued', 'running', attempt, %(worker)s, 'claimed', %(now)s FROM upd
)
SELECT * FROM upd;

-- name: any_queued
-- Is any job queued? With none, an idle wait for work waits for a notification (ADR 0029).
SELECT EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'queued') AS queued;

-- name: server_time
SELECT clock_timestamp() AS now;

-- name: next_lease_expiry
SELECT min(lease_expires_at) AS at FROM treadle_jobs WHERE status = 'running';

-- name: leave_quarantine
-- Release (back to queued: crash count reset, at least one attempt left) or discard
-- (failed, terminal) a quarantined job (ADR 0015).
UPDATE treadle_jobs
SET status = %(status)s,
    run_at = CASE WHEN %(status)s = 'queued' THEN %(now)s ELSE run_at END,
    crashes = CASE WHEN %(status)s = 'queued' THEN NULL ELSE crashes END,
    -- Crashes refunded their attempts when reaped (ADR 0024): at least one is left.
    max_attempts = CASE WHEN %(status)s = 'queued'
        THEN greatest(max_attempts, attempt + 1)
        ELSE max_attempts END,
    error = coalesce(%(error)s::jsonb, error),
    finished_at = %(finished_at)s::timestamptz
WHERE id = %(id)s AND status = 'quarantined'
RETURNING attempt, queue;

-- name: register_worker
-- A worker's row with how its death is noticed (ADR 0018): the key of the session lock
-- its liveness connection holds, and its process (for people reading the table).
INSERT INTO treadle_workers (id, started_at, last_heartbeat, info, lock_key, host, pid, pid_start)
VALUES (%(worker)s, %(now)s, %(now)s, '{}', %(lock_key)s, %(host)s, %(pid)s, %(pid_start)s)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
    lock_key = excluded.lock_key, host = excluded.host, pid = excluded.pid,
    pid_start = excluded.pid_start;

-- name: dead_owner_leases
-- Running jobs whose worker recorded a liveness lock that no session holds any more:
-- the worker is gone. Locked (SKIP LOCKED) for the guarded re-queue that follows.
WITH held AS MATERIALIZED (
    SELECT (classid::bigint << 32) | objid::bigint AS key FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT j.*, w.last_heartbeat AS owner_heartbeat, w.lease_seconds AS owner_lease_seconds
FROM treadle_jobs j JOIN treadle_workers w ON w.id = j.lease_owner
WHERE j.status = 'running' AND w.lock_key IS NOT NULL
  AND w.lock_key NOT IN (SELECT key FROM held)
ORDER BY j.id
LIMIT %(limit)s
FOR UPDATE OF j SKIP LOCKED;

-- name: suspect_waiting
-- Is a suspect due (ADR 0024)? An idle worker's look: the partial index holds only
-- queued suspects, so with none this reads nothing.
SELECT 1 FROM treadle_jobs
WHERE status = 'queued' AND crashes IS NOT NULL AND run_at <= %(now)s
  AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
  AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
LIMIT 1;
