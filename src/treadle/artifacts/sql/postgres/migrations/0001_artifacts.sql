-- Artifacts (issue 11): the files jobs produce, content-addressed (the artifacts ADR).

-- One row per stored object (sha256 -> bytes in the artifact store). The row is what
-- puts and reference-counted deletes serialise on: a delete removes the object while it
-- holds this row locked, a put upserts the row before trusting the object is there.
CREATE TABLE treadle_artifact_blobs (
    sha256     text        PRIMARY KEY,
    size       bigint      NOT NULL,
    created_at timestamptz NOT NULL
);

-- One row per named file of a job (and, within a workflow, the step that made it). Rows go
-- with their job (retention); the objects they leave unreferenced are collected by gc.
CREATE TABLE treadle_artifacts (
    id           bigserial   PRIMARY KEY,
    tenant       text        NOT NULL,
    job_id       bigint      NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    step         text,
    name         text        NOT NULL,
    sha256       text        NOT NULL REFERENCES treadle_artifact_blobs (sha256),
    size         bigint      NOT NULL,
    content_type text        NOT NULL,
    meta         jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    UNIQUE (job_id, name)
);
CREATE INDEX treadle_artifacts_sha256 ON treadle_artifacts (sha256);
-- Outputs named by a key of their inputs (a media segment: input sha256 + parameters) are
-- found again across a tenant's jobs, so the same work is not done twice.
CREATE INDEX treadle_artifacts_tenant_name ON treadle_artifacts (tenant, name);
