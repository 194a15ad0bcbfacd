"""Artifacts: the files jobs produce, content-addressed in an artifact store (ADR 0013).

>>> app = Treadle("sqlite:///treadle.db")          # artifacts in treadle.db-artifacts/
>>> @app.task(pass_context=True)
... def render(ctx, n: int) -> None:
...     ctx.artifacts.put("out.txt", b"hello")      # doctest: +SKIP
>>> app.job_artifacts(job_id)                       # doctest: +SKIP

Bytes live in an :class:`ArtifactStore` (a local directory, or S3 with ``treadle[s3]``),
addressed by sha256; rows in the app's database say which job (and step) made what.
"""

from treadle.artifacts.backends import default_artifacts_url, open_artifact_store
from treadle.artifacts.blobstore import ArtifactStore, Blob, BlobMissing
from treadle.artifacts.context import JobArtifacts
from treadle.artifacts.gc import ArtifactCollector
from treadle.artifacts.local import LocalArtifactStore
from treadle.artifacts.model import Artifact, ArtifactNotFound
from treadle.artifacts.service import ArtifactService

__all__ = [
    "Artifact",
    "ArtifactCollector",
    "ArtifactNotFound",
    "ArtifactService",
    "ArtifactStore",
    "Blob",
    "BlobMissing",
    "JobArtifacts",
    "LocalArtifactStore",
    "default_artifacts_url",
    "open_artifact_store",
]
