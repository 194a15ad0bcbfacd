-- Usage accounting (ADR 0022): per-attempt rows and their sums.

-- name: usage_by_tenant
SELECT tenant AS grp, count(*) AS attempts,
       sum(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
       sum(wall_seconds) AS wall_seconds, sum(coalesce(cpu_seconds, 0)) AS cpu_seconds,
       max(peak_memory_bytes) AS peak_memory_bytes, sum(result_bytes) AS result_bytes,
       sum(log_bytes) AS log_bytes, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM treadle_attempt_usage
WHERE finished_at >= %(start)s AND finished_at < %(end)s
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
GROUP BY tenant
ORDER BY tenant;

-- name: usage_by_queue
SELECT queue AS grp, count(*) AS attempts,
       sum(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
       sum(wall_seconds) AS wall_seconds, sum(coalesce(cpu_seconds, 0)) AS cpu_seconds,
       max(peak_memory_bytes) AS peak_memory_bytes, sum(result_bytes) AS result_bytes,
       sum(log_bytes) AS log_bytes, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM treadle_attempt_usage
WHERE finished_at >= %(start)s AND finished_at < %(end)s
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
GROUP BY queue
ORDER BY queue;

-- name: usage_of_job
SELECT * FROM treadle_attempt_usage WHERE job_id = %(job_id)s ORDER BY attempt;

-- name: finished_attempts
-- Attempts that ended their job (succeeded or failed) since a time: the dashboard charts.
SELECT finished_at, outcome, error_class, wall_seconds, wait_seconds
FROM treadle_attempt_usage
WHERE finished_at >= %(since)s AND outcome IN ('succeeded', 'failed')
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
ORDER BY finished_at;

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
