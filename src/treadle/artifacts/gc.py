"""The artifact collector: a maintenance service every worker runs (ADR 0016).

Retention deletes finished jobs, and their artifact rows go with them (``ON DELETE
CASCADE``); the objects those rows referenced stay in the artifact store until something
deletes them. This service does, every ``interval`` seconds: it removes each object that
no artifact references and no writer holds, re-checking each under its blob row's lock
(``records.py``), so a put racing the collection keeps its object. Several workers may
run it at once: they serialise on the same row locks, and an object already gone is
simply skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from treadle.artifacts.service import ArtifactService
from treadle.core.errors import ConfigurationError
from treadle.logs import get_logger

if TYPE_CHECKING:
    from treadle.app import Treadle

log = get_logger("treadle.artifacts.gc")


@dataclass
class ArtifactCollector:
    """``run_once()`` deletes up to ``batch * max_batches`` unreferenced objects (each
    batch its own short transaction) and returns how many went; the rest waits for the
    next pass."""

    service: ArtifactService
    interval: float = 60.0
    batch: int = 200
    max_batches: int = 10

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ConfigurationError("artifact collector interval must be positive")
        if not 1 <= self.batch <= 10_000 or self.max_batches < 1:
            raise ConfigurationError(
                "artifact collector batch must be 1..10000 and max_batches >= 1")

    def run_once(self) -> int:
        gone = self.service.collect_garbage(batch=self.batch, max_batches=self.max_batches)
        if gone:
            log.info("collected unreferenced artifacts", count=gone)
        return gone


def artifact_services(app: Treadle) -> list[ArtifactCollector]:
    """The collector for ``app``'s workers, when the app has a place for artifacts (a
    configured store, or the directory beside a SQLite file); else none."""
    if not app.artifacts_configured:
        from treadle.artifacts.backends import default_artifacts_url

        try:
            default_artifacts_url(app.url)
        except ConfigurationError:
            return []  # a server database without TREADLE_ARTIFACTS_URL: nothing stored
    return [ArtifactCollector(app.artifacts, interval=app.artifacts_gc_interval)]
