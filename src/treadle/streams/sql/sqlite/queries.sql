-- Live job streams (treadle.streams). Items are appended in one statement per job per
-- flush: :items is a JSON array of [attempt, kind, data_json_text, at].

-- name: migrated
SELECT 1 AS ok FROM treadle_plugin_migrations WHERE plugin = 'streams' LIMIT 1;

-- name: reserve
-- Reserve :n sequence numbers for a job that still exists; no row if it was deleted.
INSERT INTO treadle_streams (job_id, last_seq)
SELECT id, :n FROM treadle_jobs WHERE id = :job_id
ON CONFLICT (job_id) DO UPDATE SET last_seq = treadle_streams.last_seq + excluded.last_seq
RETURNING last_seq;

-- name: append
INSERT INTO treadle_stream_items (job_id, seq, attempt, kind, data, at)
SELECT :job_id, :first + CAST(i.key AS INTEGER),
       json_extract(i.value, '$[0]'), json_extract(i.value, '$[1]'),
       json_extract(i.value, '$[2]'), json_extract(i.value, '$[3]')
FROM json_each(:items) AS i;

-- name: trim
DELETE FROM treadle_stream_items WHERE job_id = :job_id AND seq <= :through;

-- name: mark_trimmed
UPDATE treadle_streams SET trimmed_through = max(trimmed_through, :through)
WHERE job_id = :job_id;

-- name: read
SELECT seq, attempt, kind, data, at FROM treadle_stream_items
WHERE job_id = :job_id AND seq > :after ORDER BY seq LIMIT :limit;

-- name: latest_of_kind
-- A job's newest item of one kind (its progress, carried by heartbeats): walks the
-- primary key backwards from the head.
SELECT seq, attempt, kind, data, at FROM treadle_stream_items
WHERE job_id = :job_id AND kind = :kind ORDER BY seq DESC LIMIT 1;

-- name: heads
-- One query for every job a process follows: its state and its stream's head.
SELECT j.id AS job_id, j.status AS status, j.attempt AS attempt,
       COALESCE(s.last_seq, 0) AS last_seq, COALESCE(s.trimmed_through, 0) AS trimmed_through
FROM json_each(:ids) AS i
JOIN treadle_jobs AS j ON j.id = i.value
LEFT JOIN treadle_streams AS s ON s.job_id = j.id;

-- name: delete_for_jobs
-- For retention that removes streams without removing their jobs (:ids a JSON array).
DELETE FROM treadle_streams WHERE job_id IN (SELECT value FROM json_each(:ids));
