"""Leaving quarantine (ADR 0015): release a poison job to run again, or discard it.

Shared by both SQL backends; each supplies ``_leave_quarantine`` (one guarded update
``WHERE status = 'quarantined'`` with its event, in one transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from treadle.core.clock import Clock
from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import Job


class QuarantineOps:
    clock: Clock

    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job:
        raise NotImplementedError

    def _leave_quarantine(
        self, job_id: int, *, to: str, reason: str, now: datetime,
        error: ErrorInfo | None, detail: dict[str, Any],
    ) -> bool:
        raise NotImplementedError

    def release(self, job_id: int, *, tenant: str | None = None) -> Job:
        """A quarantined job back to ``queued`` with its crash count reset and the attempts
        its crashes used given back; the history stays in the event. Any other job:
        unchanged."""
        job = self.get_job(job_id, tenant=tenant)
        self._leave_quarantine(job.id, to="queued", reason="quarantine_released",
                               now=self.clock.now(), error=None,
                               detail={"crashes": [c.to_json() for c in job.crashes]})
        return self.get_job(job.id)

    def discard(self, job_id: int, *, tenant: str | None = None) -> Job:
        """A quarantined job to ``failed`` for good (its callback, if any, is delivered).
        Any other job: unchanged."""
        job = self.get_job(job_id, tenant=tenant)
        crashes = [c.to_json() for c in job.crashes]
        err = ErrorInfo(ErrorClass.PERMANENT,
                        f"discarded from quarantine after {len(crashes)} worker crashes",
                        {"crashes": crashes})
        self._leave_quarantine(job.id, to="failed", reason="discarded", now=self.clock.now(),
                               error=err, detail={"crashes": crashes})
        return self.get_job(job.id)
