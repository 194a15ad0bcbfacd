"""``ctx.artifacts``: a job's own artifacts, from inside its task or workflow code."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from treadle.artifacts.model import Artifact
from treadle.artifacts.service import ArtifactService, Source
from treadle.core.job import Job


class JobArtifacts:
    """Put and get the artifacts of one job (a retried attempt sees what earlier ones put)."""

    def __init__(self, service: ArtifactService, job: Job) -> None:
        self._service = service
        self._job = job

    def put(
        self,
        name: str,
        source: Source,
        *,
        content_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """Store a path, bytes or binary stream as ``name``; idempotent (see ArtifactService)."""
        return self._service.put(
            self._job.id, name, source, tenant=self._job.tenant,
            content_type=content_type, meta=meta)

    def get(self, name: str) -> Artifact:
        """This job's artifact ``name`` (``ArtifactNotFound`` if it has none)."""
        return self._service.by_name(self._job.id, name, tenant=self._job.tenant)

    def list(self) -> list[Artifact]:
        return self._service.for_job(self._job.id, tenant=self._job.tenant)

    def open(self, name: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self._service.open(self.get(name), start, end)

    def read_bytes(self, name: str) -> bytes:
        return self._service.read_bytes(self.get(name))

    def download(self, name: str, path: Path | str) -> Path:
        return self._service.download(self.get(name), Path(path))
