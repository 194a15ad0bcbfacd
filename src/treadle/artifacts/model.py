"""``Artifact``: one named file of a job, as recorded in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from treadle.core.errors import ErrorClass, TreadleError


class ArtifactNotFound(TreadleError, LookupError):
    """No such artifact (or not the caller's tenant's: the same answer, on purpose)."""

    error_class = ErrorClass.INVALID_INPUT


@dataclass(frozen=True)
class Artifact:
    id: int
    tenant: str
    job_id: int
    step: str | None
    name: str
    sha256: str
    size: int
    content_type: str
    created_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The content address the bytes are stored under."""
        return f"sha256:{self.sha256}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "job_id": self.job_id, "step": self.step, "name": self.name,
            "key": self.key, "sha256": self.sha256, "size": self.size,
            "content_type": self.content_type, "meta": self.meta,
            "created_at": self.created_at.isoformat(),
        }


def human_size(n: int) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 KiB``, ... ``3.2 GiB`` (the UI and the CLI)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
