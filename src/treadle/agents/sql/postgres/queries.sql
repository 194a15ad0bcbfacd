-- Named queries of the agents plug-in, PostgreSQL. Parameters use %(name)s style.

-- name: record_spend
INSERT INTO treadle_agent_spend (job_id, turn, tenant, agent, model, tokens_in, tokens_out,
                                 cost_usd, at)
VALUES (%(job_id)s, %(turn)s, %(tenant)s, %(agent)s, %(model)s, %(tokens_in)s, %(tokens_out)s, %(cost_usd)s, %(now)s)
ON CONFLICT (job_id, turn) DO NOTHING;

-- name: tenant_spend
SELECT coalesce(sum(cost_usd), 0) AS cost_usd FROM treadle_agent_spend WHERE tenant = %(tenant)s;

-- name: tenant_cap
SELECT cap_usd FROM treadle_agent_caps WHERE tenant = %(tenant)s;

-- name: set_cap
INSERT INTO treadle_agent_caps (tenant, cap_usd, updated_at) VALUES (%(tenant)s, %(cap_usd)s, %(now)s)
ON CONFLICT (tenant) DO UPDATE SET cap_usd = excluded.cap_usd, updated_at = excluded.updated_at;

-- name: clear_cap
DELETE FROM treadle_agent_caps WHERE tenant = %(tenant)s;

-- name: spend_by_tenant
SELECT s.tenant, count(DISTINCT s.job_id) AS runs, count(*) AS calls,
       sum(s.tokens_in) AS tokens_in, sum(s.tokens_out) AS tokens_out,
       sum(s.cost_usd) AS cost_usd, max(c.cap_usd) AS cap_usd
FROM treadle_agent_spend s LEFT JOIN treadle_agent_caps c ON c.tenant = s.tenant
GROUP BY s.tenant ORDER BY sum(s.cost_usd) DESC, s.tenant LIMIT %(limit)s;

-- name: job_spend
SELECT turn, model, tokens_in, tokens_out, cost_usd FROM treadle_agent_spend
WHERE job_id = %(job_id)s ORDER BY turn;

-- name: cap_and_spend
-- One round trip before each model call; no row when the tenant has no cap (no sum).
SELECT c.cap_usd,
       (SELECT coalesce(sum(s.cost_usd), 0) FROM treadle_agent_spend s
        WHERE s.tenant = c.tenant) AS spent_usd
FROM treadle_agent_caps c WHERE c.tenant = %(tenant)s;
