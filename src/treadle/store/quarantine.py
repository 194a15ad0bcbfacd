"""Leaving quarantine (ADR 0015): release a poison job to run again, or discard it; and
the idle worker's look for suspects, jobs whose worker died under them (ADR 0024).

Shared by both SQL backends; each supplies ``_leave_quarantine`` (one guarded update
``WHERE status = 'quarantined'`` with its event, in one transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from treadle.core.clock import Clock
from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import Job


class QuarantineOps:
    clock: Clock

    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job:
        raise NotImplementedError

    def _read(self, name: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        raise NotImplementedError

    def _enc_ts(self, value: datetime) -> Any:
        raise NotImplementedError

    def _enc_list(self, values: Sequence[str]) -> Any:
        raise NotImplementedError

    def suspect_waiting(
        self, *, queues: Sequence[str] | None, kinds: Sequence[str] | None = None
    ) -> bool:
        """Is a suspect due in these queues, of these kinds? One read of a partial index
        that holds only queued suspects: cheap enough for every idle moment of a worker,
        which then claims it alone (``claim(..., suspect=True)``)."""
        return bool(self._read("suspect_waiting", {
            "now": self._enc_ts(self.clock.now()),
            "queues": None if queues is None else self._enc_list(queues),
            "kinds": None if kinds is None else self._enc_list(kinds),
        }))

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
