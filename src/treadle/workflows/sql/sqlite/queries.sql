-- Named queries of the workflow plug-in, SQLite. Parameters use :name style.

-- name: steps
SELECT seq, name, kind, status, attempt,
       CASE WHEN result_ref IS NULL THEN result END AS result, result_ref, error, wake_at,
       event_key, event_after, event_id, fail_fast, started_at, finished_at
FROM treadle_wf_steps WHERE job_id = :job_id ORDER BY seq;

-- name: links
SELECT seq, idx, child_id FROM treadle_wf_children WHERE parent_id = :job_id ORDER BY seq, idx;

-- name: blob
SELECT data FROM treadle_wf_blobs WHERE hash = :hash;

-- name: put_blob
INSERT INTO treadle_wf_blobs (hash, data) VALUES (:hash, :data) ON CONFLICT (hash) DO NOTHING;

-- Checkpoint writes. Each named operation is one statement, or several run in one
-- transaction (`<name>__2`, ...) when the first one matched a row; every statement is fenced
-- by the lease token itself, so a zombie attempt writes nothing.

-- name: step_start
INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, started_at)
SELECT id, :seq, :name, :kind, 'running', 1, :now FROM treadle_jobs
WHERE id = :job_id AND status = 'running' AND lease_token = :token
ON CONFLICT (job_id, seq) DO UPDATE SET
    status = 'running', attempt = treadle_wf_steps.attempt + 1, started_at = excluded.started_at,
    finished_at = NULL
RETURNING attempt;

-- name: step_start__2
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
SELECT id, 'running', 'running', attempt, lease_owner, 'step_started', :now, :detail
FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token;

-- name: step_complete
-- :unstarted = 1: the run's start was not written on its own (a short step): this is a
-- new attempt of the step, and its step_started event is written here too.
INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, result, result_ref,
                              event_key, event_id, started_at, finished_at)
SELECT id, :seq, :name, :kind, 'completed', 1, :result, :result_ref, :event_key, :event_id,
       :started_at, :now
FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token
ON CONFLICT (job_id, seq) DO UPDATE SET
    status = 'completed', result = excluded.result, result_ref = excluded.result_ref,
    error = NULL, event_key = coalesce(excluded.event_key, treadle_wf_steps.event_key),
    event_id = excluded.event_id, wake_at = NULL, finished_at = excluded.finished_at,
    attempt = treadle_wf_steps.attempt + :unstarted,
    started_at = CASE WHEN :unstarted THEN excluded.started_at
                      ELSE treadle_wf_steps.started_at END
RETURNING seq;

-- name: step_complete__2
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
SELECT id, 'running', 'running', attempt, lease_owner, 'step_started', :started_at, :detail
FROM treadle_jobs
WHERE id = :job_id AND status = 'running' AND lease_token = :token AND :unstarted = 1;

-- name: step_complete__3
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
SELECT id, 'running', 'running', attempt, lease_owner, 'step_completed', :now, :detail
FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token;

-- name: step_fail
INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, error, started_at,
                              finished_at)
SELECT id, :seq, :name, :kind, 'failed', 1, :error, :started_at, :now
FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token
ON CONFLICT (job_id, seq) DO UPDATE SET
    status = 'failed', error = excluded.error, finished_at = excluded.finished_at,
    attempt = treadle_wf_steps.attempt + :unstarted,
    started_at = CASE WHEN :unstarted THEN excluded.started_at
                      ELSE treadle_wf_steps.started_at END
RETURNING seq;

-- name: step_fail__2
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
SELECT id, 'running', 'running', attempt, lease_owner, 'step_started', :started_at, :detail
FROM treadle_jobs
WHERE id = :job_id AND status = 'running' AND lease_token = :token AND :unstarted = 1;

-- name: step_fail__3
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
SELECT id, 'running', 'running', attempt, lease_owner, 'step_failed', :now, :error_detail
FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token;

-- name: step_wait
INSERT INTO treadle_wf_steps (job_id, seq, name, kind, status, attempt, wake_at, event_key,
                              event_after, fail_fast, started_at)
SELECT id, :seq, :name, :kind, 'waiting', 1, :wake_at, :event_key, :event_after, :fail_fast,
       :now
FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token
ON CONFLICT (job_id, seq) DO UPDATE SET
    status = 'waiting', attempt = treadle_wf_steps.attempt + 1, wake_at = excluded.wake_at,
    event_key = excluded.event_key, event_after = excluded.event_after,
    fail_fast = excluded.fail_fast, error = NULL, finished_at = NULL,
    started_at = excluded.started_at
RETURNING seq;

-- name: fence
-- Used inside a transaction that also enqueues children (ctx.map): proves the lease.
SELECT id FROM treadle_jobs WHERE id = :job_id AND status = 'running' AND lease_token = :token;

-- name: retried_child_event
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
VALUES (:id, :from_status, 'queued', :attempt, NULL, 'manual_retry', :now, :detail);

-- name: retried_after_cancel
-- Was this job cancelled and then retried by hand since :since? (Its children were
-- cancelled with it; the retry should run them again, not fail on them.)
SELECT 1 AS hit FROM treadle_events
WHERE job_id = :job_id AND reason = 'manual_retry' AND from_status = 'cancelled'
  AND at >= :since
LIMIT 1;

-- name: find_event
SELECT e.id, e.payload FROM treadle_wf_events e, treadle_jobs j
WHERE j.id = :job_id AND e.tenant = j.tenant AND e.key = :key AND e.id > :after
  AND e.sent_at >= j.created_at
ORDER BY e.id LIMIT 1;

-- name: link_child
INSERT INTO treadle_wf_children (parent_id, seq, idx, child_id)
VALUES (:parent_id, :seq, :idx, :child_id)
ON CONFLICT (parent_id, seq, idx) DO NOTHING;

-- name: children
SELECT l.idx, j.id, j.status, j.result, j.error
FROM treadle_wf_children l JOIN treadle_jobs j ON j.id = l.child_id
WHERE l.parent_id = :job_id AND l.seq = :seq
ORDER BY l.idx;

-- name: children_to_retry
SELECT j.id, j.status, j.attempt
FROM treadle_wf_children l JOIN treadle_jobs j ON j.id = l.child_id
WHERE l.parent_id = :job_id AND l.seq = :seq AND j.status IN ('failed', 'cancelled');

-- name: retry_child
UPDATE treadle_jobs
SET status = 'queued', run_at = :now, max_attempts = attempt + 1, finished_at = NULL,
    cancel_requested = 0
WHERE id = :id AND status IN ('failed', 'cancelled')
RETURNING attempt;

-- name: wake
-- The one way out of `waiting` (besides cancel): a guarded update, so a job wakes once.
UPDATE treadle_jobs SET status = 'queued', run_at = :now
WHERE id = :id AND status = 'waiting'
RETURNING id, attempt, queue;

-- name: wake__2
INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, reason, at, detail)
SELECT id, 'waiting', 'queued', attempt, NULL, 'woken', :now, :detail
FROM treadle_jobs WHERE id = :id;

-- name: next_wake
-- When the earliest timer of a waiting workflow comes due: the paced sweep sleeps until
-- then (issue 13). Only waiting rows, a handful even when many workflows exist.
SELECT min(s.wake_at) AS at
FROM treadle_wf_steps s JOIN treadle_jobs j ON j.id = s.job_id
WHERE s.status = 'waiting' AND s.wake_at IS NOT NULL AND j.status = 'waiting';

-- name: due
-- Waiting workflows whose condition holds: time, an event, or their children. The sweep
-- (:id NULL) is the safety net; a single job (:id) is checked right after it suspends
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
  AND (:id IS NULL OR j.id = :id)
  AND (
      s.job_id IS NULL
      OR (s.wake_at IS NOT NULL AND s.wake_at <= :now)
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
LIMIT :limit;

-- name: insert_wf_event
INSERT INTO treadle_wf_events (tenant, key, payload, sent_at)
VALUES (:tenant, :key, :payload, :now)
RETURNING id;

-- name: waiting_on_event
SELECT j.id FROM treadle_jobs j
JOIN treadle_wf_steps s ON s.job_id = j.id AND s.status = 'waiting'
WHERE j.status = 'waiting' AND j.tenant = :tenant AND s.event_key = :key
  AND s.event_after < :event_id AND j.created_at <= :now;
