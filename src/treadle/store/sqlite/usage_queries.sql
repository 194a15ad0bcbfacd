-- Usage accounting (ADR 0022): per-attempt rows and their sums.

-- name: insert_usage
-- What an attempt cost (ADR 0022), written with its accepted outcome by `complete`: one
-- executemany per batch, after the guarded updates that returned the job's columns.
INSERT INTO treadle_attempt_usage (
    job_id, attempt, tenant, queue, kind, task, outcome, error_class, finished_at,
    wall_seconds, cpu_seconds, peak_memory_bytes, result_bytes, log_bytes, wait_seconds,
    tokens_in, tokens_out, cost_usd)
VALUES (:job_id, :attempt, :tenant, :queue, :kind, :task, :outcome, :error_class, :now,
        :wall_seconds, :cpu_seconds, :peak_memory_bytes, :result_bytes, :log_bytes,
        :wait_seconds, :tokens_in, :tokens_out, :cost_usd)
ON CONFLICT (job_id, attempt) DO NOTHING;

-- name: insert_reap_usage
-- A reaped attempt's usage (ADR 0022), run right after its guarded update succeeded: wall
-- time from its start to the reap; CPU, memory and wait unknown (NULL); bytes, tokens and
-- cost 0. A re-queued attempt is a 'retry', as a worker's would be.
INSERT INTO treadle_attempt_usage (
    job_id, attempt, tenant, queue, kind, task, outcome, error_class, finished_at,
    wall_seconds)
SELECT id, attempt, tenant, queue, kind, task,
       CASE WHEN :status = 'queued' THEN 'retry' ELSE :status END, :error_class, :now,
       max(0.0, :now - coalesce(started_at, :now))
FROM treadle_jobs WHERE id = :job_id
ON CONFLICT (job_id, attempt) DO NOTHING;

-- name: usage_grouped
-- Sums per tenant or per queue (`by`); grouped by position so the parameter
-- appears once.
SELECT CASE WHEN :by = 'queue' THEN queue ELSE tenant END AS grp, count(*) AS attempts,
       sum(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
       sum(wall_seconds) AS wall_seconds, sum(coalesce(cpu_seconds, 0)) AS cpu_seconds,
       max(peak_memory_bytes) AS peak_memory_bytes, sum(result_bytes) AS result_bytes,
       sum(log_bytes) AS log_bytes, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM treadle_attempt_usage
WHERE finished_at >= :start AND finished_at < :end
  AND (:tenant IS NULL OR tenant = :tenant)
GROUP BY 1
ORDER BY 1;

-- name: usage_of_job
SELECT * FROM treadle_attempt_usage WHERE job_id = :job_id ORDER BY attempt;

-- name: usage_by_tenant_and_queue
-- /metrics: the last hour's usage per (tenant, queue).
SELECT tenant, queue, count(*) AS attempts, sum(wall_seconds) AS wall_seconds,
       sum(coalesce(cpu_seconds, 0)) AS cpu_seconds, sum(result_bytes) AS result_bytes,
       sum(log_bytes) AS log_bytes, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM treadle_attempt_usage
WHERE finished_at >= :start
GROUP BY tenant, queue
ORDER BY tenant, queue
LIMIT 1000;

-- name: chart_counts
-- The dashboard charts (ui/queries.py): attempts that ended their job, per time bucket,
-- outcome and error class; computed by the database, not from a sample of jobs.
SELECT CAST((finished_at - :start) / :step AS INTEGER) AS b, outcome, error_class, count(*) AS n
FROM treadle_attempt_usage
WHERE finished_at >= :start AND outcome IN ('succeeded', 'failed')
      AND (:tenant IS NULL OR tenant = :tenant)
GROUP BY 1, outcome, error_class;

-- name: chart_percentiles
-- Nearest-rank run-time percentiles per bucket (every value shown really happened).
WITH a AS (
    SELECT CAST((finished_at - :start) / :step AS INTEGER) AS b, wall_seconds AS w
    FROM treadle_attempt_usage
    WHERE finished_at >= :start AND outcome IN ('succeeded', 'failed')
      AND (:tenant IS NULL OR tenant = :tenant)
), r AS (
    SELECT b, w, row_number() OVER (PARTITION BY b ORDER BY w) AS rn,
           count(*) OVER (PARTITION BY b) AS n
    FROM a
)
SELECT b, max(CASE WHEN rn = (n * 50 + 99) / 100 THEN w END) AS p50,
       max(CASE WHEN rn = (n * 95 + 99) / 100 THEN w END) AS p95,
       max(CASE WHEN rn = (n * 99 + 99) / 100 THEN w END) AS p99
FROM r GROUP BY b;

-- name: chart_totals
-- The same window as a whole: run-time and wait percentiles (nearest rank).
WITH a AS (
    SELECT wall_seconds AS w, wait_seconds AS ws
    FROM treadle_attempt_usage
    WHERE finished_at >= :start AND outcome IN ('succeeded', 'failed')
      AND (:tenant IS NULL OR tenant = :tenant)
), rw AS (
    SELECT w, row_number() OVER (ORDER BY w) AS rn, count(*) OVER () AS n FROM a
), rs AS (
    SELECT ws, row_number() OVER (ORDER BY ws) AS rn, count(*) OVER () AS n
    FROM a WHERE ws IS NOT NULL
)
SELECT (SELECT max(CASE WHEN rn = (n * 50 + 99) / 100 THEN w END) FROM rw) AS run_p50,
       (SELECT max(CASE WHEN rn = (n * 95 + 99) / 100 THEN w END) FROM rw) AS run_p95,
       (SELECT max(CASE WHEN rn = (n * 99 + 99) / 100 THEN w END) FROM rw) AS run_p99,
       (SELECT max(CASE WHEN rn = (n * 50 + 99) / 100 THEN ws END) FROM rs) AS wait_p50,
       (SELECT max(CASE WHEN rn = (n * 95 + 99) / 100 THEN ws END) FROM rs) AS wait_p95;
