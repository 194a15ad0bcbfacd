-- Live job streams (treadle.streams). Items are appended in one statement per job per
-- flush: %(items)s is a JSON array of [attempt, kind, data_json_text, at].

-- name: migrated
SELECT 1 AS ok FROM treadle_plugin_migrations WHERE plugin = 'streams' LIMIT 1;

-- name: reserve
-- Reserve n sequence numbers for a job that still exists; no row if it was deleted.
-- The head row's lock orders concurrent appends to one job.
INSERT INTO treadle_streams (job_id, last_seq)
SELECT id, %(n)s FROM treadle_jobs WHERE id = %(job_id)s
ON CONFLICT (job_id) DO UPDATE SET last_seq = treadle_streams.last_seq + excluded.last_seq
RETURNING last_seq;

-- name: append
INSERT INTO treadle_stream_items (job_id, seq, attempt, kind, data, at)
SELECT %(job_id)s, %(first)s + i.ord - 1,
       (i.v->>0)::integer, i.v->>1, i.v->>2, (i.v->>3)::double precision
FROM jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS i(v, ord);

-- name: notify
SELECT pg_notify('treadle_stream', %(ids)s);

-- name: trim
DELETE FROM treadle_stream_items WHERE job_id = %(job_id)s AND seq <= %(through)s;

-- name: mark_trimmed
UPDATE treadle_streams SET trimmed_through = greatest(trimmed_through, %(through)s)
WHERE job_id = %(job_id)s;

-- name: read
SELECT seq, attempt, kind, data, at FROM treadle_stream_items
WHERE job_id = %(job_id)s AND seq > %(after)s ORDER BY seq LIMIT %(limit)s;

-- name: latest_of_kind
-- A job's newest item of one kind (its progress, carried by heartbeats): walks the
-- primary key backwards from the head.
SELECT seq, attempt, kind, data, at FROM treadle_stream_items
WHERE job_id = %(job_id)s AND kind = %(kind)s ORDER BY seq DESC LIMIT 1;

-- name: heads
-- One query for every job a process follows: its state and its stream's head.
SELECT j.id AS job_id, j.status AS status, j.attempt AS attempt,
       COALESCE(s.last_seq, 0) AS last_seq, COALESCE(s.trimmed_through, 0) AS trimmed_through
FROM treadle_jobs AS j
LEFT JOIN treadle_streams AS s ON s.job_id = j.id
WHERE j.id = ANY(%(ids)s::bigint[]);

-- name: delete_for_jobs
-- For retention that removes streams without removing their jobs.
DELETE FROM treadle_streams WHERE job_id = ANY(%(ids)s::bigint[]);
