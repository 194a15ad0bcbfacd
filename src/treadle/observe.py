"""Instrumentation seam: the worker reports what happens; observers count it.

The core never imports a metrics library; ``treadle.api.metrics`` provides a
Prometheus observer, tests may provide their own.
"""

from __future__ import annotations

from treadle.core.job import Job
from treadle.core.lease import ReapResult
from treadle.core.outcome import Outcome


class Observer:
    """No-op base; override what you need. Must be thread-safe and never raise."""

    def claimed(self, worker: str, jobs: list[Job], seconds: float) -> None:
        """A claim call returned ``jobs`` after ``seconds``."""

    def finished(self, worker: str, job: Job, outcome: Outcome, seconds: float) -> None:
        """An attempt's outcome was durably recorded (``seconds``: run time)."""

    def heartbeat(self, worker: str, leases: int) -> None:
        """The worker renewed ``leases`` leases."""

    def reaped(self, result: ReapResult) -> None:
        """Expired leases were re-queued, failed or cancelled."""

    def pruned(self, count: int) -> None:
        """Retention deleted ``count`` finished jobs (with their events and logs)."""


NULL_OBSERVER = Observer()
