-- Artifact garbage collection (ADR 0016): a writer holds a blob's row before it uploads
-- the object, so every object has a row while it is being written, and the collector
-- leaves a blob alone while it is held, referenced or not.
ALTER TABLE treadle_artifact_blobs ADD COLUMN held_until timestamptz;
CREATE INDEX treadle_artifact_blobs_held ON treadle_artifact_blobs (held_until);
