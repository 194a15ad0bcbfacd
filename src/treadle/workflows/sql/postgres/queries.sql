-- Named queries of the workflow plug-in, PostgreSQL. Parameters use %(name)s style.
-- Checkpoint writes are one statement each (a CTE fenced by the lease token, with its
-- event): one round trip per write.

-- name: steps
SELECT seq, name, kind, status, attempt,
       CASE WHEN result_ref IS NULL THEN result END AS result, result_ref, error, wake_at,
       event_key, event_after, event_id, fail_fast, started_at, finished_at
FROM treadle_wf_steps WHERE job_id = %(job_id)s ORDER BY seq;

-- name: links
SELECT seq, idx, child_id FROM treadle_wf_children WHERE parent_id = %(job_id)s
ORDER BY seq, idx;

-- name: blob
SELECT data FROM treadle_wf_blobs WHERE hash = %(hash)s;

-- name: put_blob
INSERT INTO treadle_wf_blobs (hash, data) VALUES (%(hash)s, %(data)s)
ON CONFLICT (hash) DO NOTHING;

-- name: step_start
WITH j AS (
    SELECT id, attempt, lease_owner FROM treadle_jobs
    WHERE id = %(job_id)s AND status = 'running' AND lease_token = %(token)s
    FOR SHARE
), s AS (
    INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, started_at)
    SELECT id, %(seq)s, %(name)s, %(kind)s, 'running', 1, %(now)s FROM j
    ON CONFLICT (job_id, seq) DO UPDATE SET
        status = 'running', attempt = treadle_wf_steps.attempt + 1,
        started_at = excluded.started_at, finished_at = NULL
    RETURNING attempt
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    SELECT j.id, 'running', 'running', j.attempt, j.lease_owner, 'step_started', %(now)s,
           %(detail)s::jsonb
    FROM j, s
)
SELECT attempt FROM s;

-- name: step_complete
-- unstarted = 1: the run's start was not written on its own (a short step): this is a
-- new attempt of the step, and its step_started event is written here too.
WITH j AS (
    SELECT id, attempt, lease_owner FROM treadle_jobs
    WHERE id = %(job_id)s AND status = 'running' AND lease_token = %(token)s
    FOR SHARE
), s AS (
    INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, result, result_ref,
                                  event_key, event_id, started_at, finished_at)
    SELECT id, %(seq)s, %(name)s, %(kind)s, 'completed', 1, %(result)s::jsonb, %(result_ref)s,
           %(event_key)s, %(event_id)s, %(started_at)s, %(now)s
    FROM j
    ON CONFLICT (job_id, seq) DO UPDATE SET
        status = 'completed', result = excluded.result, result_ref = excluded.result_ref,
        error = NULL, event_key = coalesce(excluded.event_key, treadle_wf_steps.event_key),
        event_id = excluded.event_id, wake_at = NULL, finished_at = excluded.finished_at,
        attempt = treadle_wf_steps.attempt + %(unstarted)s::int,
        started_at = CASE WHEN %(unstarted)s::int = 1 THEN excluded.started_at
                          ELSE treadle_wf_steps.started_at END
    RETURNING seq
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    SELECT j.id, 'running', 'running', j.attempt, j.lease_owner, e.reason, e.at,
           %(detail)s::jsonb
    FROM j, s, (VALUES (1, 'step_started', %(started_at)s::timestamptz),
                       (2, 'step_completed', %(now)s::timestamptz)) AS e(n, reason, at)
    WHERE e.n = 2 OR %(unstarted)s::int = 1
    ORDER BY e.n
)
SELECT seq FROM s;

-- name: step_fail
WITH j AS (
    SELECT id, attempt, lease_owner FROM treadle_jobs
    WHERE id = %(job_id)s AND status = 'running' AND lease_token = %(token)s
    FOR SHARE
), s AS (
    INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, error, started_at,
                                  finished_at)
    SELECT id, %(seq)s, %(name)s, %(kind)s, 'failed', 1, %(error)s::jsonb, %(started_at)s,
           %(now)s
    FROM j
    ON CONFLICT (job_id, seq) DO UPDATE SET
        status = 'failed', error = excluded.error, finished_at = excluded.finished_at,
        attempt = treadle_wf_steps.attempt + %(unstarted)s::int,
        started_at = CASE WHEN %(unstarted)s::int = 1 THEN excluded.started_at
                          ELSE treadle_wf_steps.started_at END
    RETURNING seq
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    SELECT j.id, 'running', 'running', j.attempt, j.lease_owner, e.reason, e.at, e.detail
    FROM j, s, (VALUES (1, 'step_started', %(started_at)s::timestamptz, %(detail)s::jsonb),
                       (2, 'step_failed', %(now)s::timestamptz, %(error_detail)s::jsonb))
                AS e(n, reason, at, detail)
    WHERE e.n = 2 OR %(unstarted)s::int = 1
    ORDER BY e.n
)
SELECT seq FROM s;

-- name: step_wait
WITH j AS (
    SELECT id FROM treadle_jobs
    WHERE id = %(job_id)s AND status = 'running' AND lease_token = %(token)s
    FOR SHARE
)
INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, wake_at, event_key,
                              event_after, fail_fast, started_at)
SELECT id, %(seq)s, %(name)s, %(kind)s, 'waiting', 1, %(wake_at)s, %(event_key)s,
       %(event_after)s, %(fail_fast)s, %(now)s
FROM j
ON CONFLICT (job_id, seq) DO UPDATE SET
    status = 'waiting', attempt = treadle_wf_steps.attempt + 1, wake_at = excluded.wake_at,
    event_key = excluded.event_key, event_after = excluded.event_after,
    fail_fast = excluded.fail_fast, error = NULL, finished_at = NULL,
    started_at = excluded.started_at
RETURNING seq;

-- name: fence
-- Used inside a transaction that also enqueues children (ctx.map): proves the lease and
-- holds it (the row lock) until the checkpoint commits.
SELECT id FROM treadle_jobs
WHERE id = %(job_id)s AND status = 'running' AND lease_token = %(token)s
FOR SHARE;

-- name: retried_after_cancel
-- Was this job cancelled and then retried by hand since :since? (Its children were
-- cancelled with it; the retry should run them again, not fail on them.)
SELECT 1 AS hit FROM treadle_events
WHERE job_id = %(job_id)s AND reason = 'manual_retry' AND from_status = 'cancelled'
  AND at >= %(since)s
LIMIT 1;

-- name: find_event
SELECT e.id, e.payload FROM treadle_wf_events e, treadle_jobs j
WHERE j.id = %(job_id)s AND e.tenant = j.tenant AND e.key = %(key)s AND e.id > %(after)s
  AND e.sent_at >= j.created_at
ORDER BY e.id LIMIT 1;

-- name: link_child
INSERT INTO treadle_wf_children (parent_id, seq, idx, child_id)
VALUES (%(parent_id)s, %(seq)s, %(idx)s, %(child_id)s)
ON CONFLICT (parent_id, seq, idx) DO NOTHING;

-- name: children
SELECT l.idx, j.id, j.status, j.result, j.error
FROM treadle_wf_children l JOIN treadle_jobs j ON j.id = l.child_id
WHERE l.parent_id = %(job_id)s AND l.seq = %(seq)s
ORDER BY l.idx;

-- name: children_to_retry
SELECT j.id, j.status, j.attempt
FROM treadle_wf_children l JOIN treadle_jobs j ON j.id = l.child_id
WHERE l.parent_id = %(job_id)s AND l.seq = %(seq)s AND j.status IN ('failed', 'cancelled')
FOR UPDATE OF j;

-- name: retry_child
UPDATE treadle_jobs
SET status = 'queued', run_at = %(now)s, max_attempts = attempt + 1, finished_at = NULL,
    cancel_requested = false
WHERE id = %(id)s AND status IN ('failed', 'cancelled')
RETURNING attempt;

-- name: retried_child_event
WITH ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    VALUES (%(id)s, %(from_status)s, 'queued', %(attempt)s, NULL, 'manual_retry', %(now)s,
            %(detail)s::jsonb)
)
SELECT pg_notify('treadle_jobs', queue) FROM treadle_jobs WHERE id = %(id)s;

-- name: wake
-- The one way out of `waiting` (besides cancel): a guarded update, so a job wakes once.
WITH w AS (
    UPDATE treadle_jobs SET status = 'queued', run_at = %(now)s
    WHERE id = %(id)s AND status = 'waiting'
    RETURNING id, attempt, queue
), ev AS (
    INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at,
                                detail)
    SELECT id, 'waiting', 'queued', attempt, NULL, 'woken', %(now)s, %(detail)s::jsonb FROM w
), note AS MATERIALIZED (
    SELECT count(pg_notify('treadle_jobs', queue)) AS n FROM w
)
SELECT w.id, w.attempt, w.queue FROM w, note;

-- name: next_wake
-- When the earliest timer of a waiting workflow comes due: the paced sweep sleeps until
-- then (issue 13). Only waiting rows, a handful even when many workflows exist.
SELECT min(s.wake_at) AS at
FROM treadle_wf_steps s JOIN treadle_jobs j ON j.id = s.job_id
WHERE s.status = 'waiting' AND s.wake_at IS NOT NULL AND j.status = 'waiting';

-- name: due
-- Waiting workflows whose condition holds: time, an event, or their children. The sweep
-- (id NULL) is the safety net; a single job (id) is checked right after it suspends
-- and when one of its children finishes.
SELECT j.id,
       CASE
           WHEN s.job_id IS NULL THEN 'lost_wait'
           WHEN s.kind IN ('map', 'spawn') THEN 'children'
           WHEN s.event_key IS NOT NULL AND EXISTS (
               SELECT 1 FROM treadle_wf_events e
               WHERE e.tenant = j.tenant AND e.key = s.event_key AND e.id > s.event_after
                 AND e.sent_at >= j.created_at) THEN 'event'
           ELSE 'time'
       END AS cause
FROM treadle_jobs j
LEFT JOIN treadle_wf_steps s ON s.job_id = j.id AND s.status = 'waiting'
WHERE j.status = 'waiting' AND j.kind = 'workflow'
  AND (%(id)s::bigint IS NULL OR j.id = %(id)s::bigint)
  AND (
      s.job_id IS NULL
      OR (s.wake_at IS NOT NULL AND s.wake_at <= %(now)s)
      OR (s.event_key IS NOT NULL AND EXISTS (
          SELECT 1 FROM treadle_wf_events e
          WHERE e.tenant = j.tenant AND e.key = s.event_key AND e.id > s.event_after
            AND e.sent_at >= j.created_at))
      OR (s.kind IN ('map', 'spawn') AND NOT EXISTS (
          SELECT 1 FROM treadle_wf_children l JOIN treadle_jobs c ON c.id = l.child_id
          WHERE l.parent_id = j.id AND l.seq = s.seq
            AND c.status IN ('queued', 'running', 'waiting', 'quarantined')))
      OR (s.kind IN ('map', 'spawn') AND s.fail_fast AND EXISTS (
          SELECT 1 FROM treadle_wf_children l JOIN treadle_jobs c ON c.id = l.child_id
          WHERE l.parent_id = j.id AND l.seq = s.seq AND c.status IN ('failed', 'cancelled')))
  )
LIMIT %(limit)s;

-- name: insert_wf_event
INSERT INTO treadle_wf_events (tenant, key, payload, sent_at)
VALUES (%(tenant)s, %(key)s, %(payload)s::jsonb, %(now)s)
RETURNING id;

-- name: waiting_on_event
SELECT j.id FROM treadle_jobs j
JOIN treadle_wf_steps s ON s.job_id = j.id AND s.status = 'waiting'
WHERE j.status = 'waiting' AND j.tenant = %(tenant)s AND s.event_key = %(key)s
  AND s.event_after < %(event_id)s AND j.created_at <= %(now)s;
