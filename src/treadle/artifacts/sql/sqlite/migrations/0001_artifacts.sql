-- Artifacts (issue 11): the files jobs produce, content-addressed (the artifacts ADR).

-- One row per stored object (sha256 -> bytes in the artifact store). The row is what
-- puts and reference-counted deletes serialise on: a delete removes the object while it
-- holds this row, a put (re)writes the row before trusting the object is there.
CREATE TABLE treadle_artifact_blobs (
    sha256     TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at REAL    NOT NULL
);

-- One row per named file of a job (and, within a workflow, the step that made it). Rows go
-- with their job (retention); the objects they leave unreferenced are collected by gc.
CREATE TABLE treadle_artifacts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT    NOT NULL,
    job_id       INTEGER NOT NULL REFERENCES treadle_jobs (id) ON DELETE CASCADE,
    step         TEXT,
    name         TEXT    NOT NULL,
    sha256       TEXT    NOT NULL REFERENCES treadle_artifact_blobs (sha256),
    size         INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    meta         TEXT    NOT NULL DEFAULT '{}',
    created_at   REAL    NOT NULL,
    UNIQUE (job_id, name)
);
CREATE INDEX treadle_artifacts_sha256 ON treadle_artifacts (sha256);
-- Outputs named by a key of their inputs (a media segment: input sha256 + parameters) are
-- found again across a tenant's jobs, so the same work is not done twice.
CREATE INDEX treadle_artifacts_tenant_name ON treadle_artifacts (tenant, name);
