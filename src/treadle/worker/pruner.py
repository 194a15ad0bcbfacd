"""Retention (ADR 0010): deletes finished jobs past their queue's retention."""

from __future__ import annotations

from dataclasses import dataclass

from treadle.core.errors import ConfigurationError
from treadle.logs import get_logger
from treadle.store import Store

log = get_logger("treadle.pruner")


@dataclass
class Pruner:
    """Every worker runs one, every ``interval`` seconds. A pass deletes small batches
    (each its own short transaction, so it never holds locks long) up to ``max_batches``;
    what is left waits for the next pass. Concurrent pruners skip each other's rows on
    PostgreSQL and take turns on SQLite."""

    store: Store
    interval: float = 60.0
    batch: int = 500
    max_batches: int = 20

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ConfigurationError("pruner interval must be positive")
        if not 1 <= self.batch <= 10_000 or self.max_batches < 1:
            raise ConfigurationError("pruner batch must be 1..10000 and max_batches >= 1")

    def run_once(self) -> int:
        total = 0
        for _ in range(self.max_batches):
            n = self.store.prune(limit=self.batch)
            total += n
            if n < self.batch:
                break
        if total:
            log.info("pruned finished jobs", count=total)
        return total
