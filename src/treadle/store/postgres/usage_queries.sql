-- Usage accounting (ADR 0022): per-attempt rows and their sums.

-- name: usage_grouped
-- Sums per tenant or per queue (`by`); grouped by position so the parameter
-- appears once.
SELECT CASE WHEN %(by)s::text = 'queue' THEN queue ELSE tenant END AS grp, count(*) AS attempts,
       sum(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
       sum(wall_seconds) AS wall_seconds, sum(coalesce(cpu_seconds, 0)) AS cpu_seconds,
       max(peak_memory_bytes) AS peak_memory_bytes, sum(result_bytes) AS result_bytes,
       sum(log_bytes) AS log_bytes, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM treadle_attempt_usage
WHERE finished_at >= %(start)s AND finished_at < %(end)s
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
GROUP BY 1
ORDER BY 1;

-- name: usage_of_job
SELECT * FROM treadle_attempt_usage WHERE job_id = %(job_id)s ORDER BY attempt;

-- name: usage_by_tenant_and_queue
-- /metrics: the last hour's usage per (tenant, queue).
SELECT tenant, queue, count(*) AS attempts, sum(wall_seconds) AS wall_seconds,
       sum(coalesce(cpu_seconds, 0)) AS cpu_seconds, sum(result_bytes) AS result_bytes,
       sum(log_bytes) AS log_bytes, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM treadle_attempt_usage
WHERE finished_at >= %(start)s
GROUP BY tenant, queue
ORDER BY tenant, queue
LIMIT 1000;

-- name: chart_counts
-- The dashboard charts (ui/queries.py): attempts that ended their job, per time bucket,
-- outcome and error class; computed by the database, not from a sample of jobs.
SELECT floor((extract(epoch FROM finished_at) - %(start)s) / %(step)s)::integer AS b, outcome, error_class, count(*) AS n
FROM treadle_attempt_usage
WHERE finished_at >= to_timestamp(%(start)s) AND outcome IN ('succeeded', 'failed')
      AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
GROUP BY 1, outcome, error_class;

-- name: chart_percentiles
-- Nearest-rank run-time percentiles per bucket (every value shown really happened).
WITH a AS (
    SELECT floor((extract(epoch FROM finished_at) - %(start)s) / %(step)s)::integer AS b, wall_seconds AS w
    FROM treadle_attempt_usage
    WHERE finished_at >= to_timestamp(%(start)s) AND outcome IN ('succeeded', 'failed')
      AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
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
    WHERE finished_at >= to_timestamp(%(start)s) AND outcome IN ('succeeded', 'failed')
      AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
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
