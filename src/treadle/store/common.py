"""Read-side operations shared by both SQL backends.

Backends differ in how they encode timestamps and lists and in how they run
a named query; everything else about reading jobs, events, logs, queues and
workers is the same and lives here once.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from treadle.core.clock import Clock
from treadle.core.errors import JobNotFound
from treadle.core.job import DEFAULT_RETENTION, Job, JobEvent, JobFilter, JobLog, QueueInfo
from treadle.core.lease import WorkerInfo
from treadle.store.rows import Codec, event_from_row, job_from_row, log_from_row

_STAT_COLUMNS = (
    "queued", "scheduled", "retrying", "running", "failed_last_hour", "succeeded_last_hour",
)


class SqlReads:
    clock: Clock
    codec: Codec

    def _read(self, name: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        raise NotImplementedError

    def _enc_ts(self, value: datetime) -> Any:
        raise NotImplementedError

    def _enc_list(self, values: Sequence[str]) -> Any:
        raise NotImplementedError

    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job:
        rows = self._read("get_job", {"id": job_id, "tenant": tenant})
        if not rows:
            raise JobNotFound(f"job {job_id} not found", detail={"id": job_id})
        return job_from_row(rows[0], self.codec)

    def list_jobs(self, flt: JobFilter) -> list[Job]:
        params = {
            "tenant": flt.tenant,
            "statuses": self._enc_list([s.value for s in flt.statuses]) if flt.statuses else None,
            "queue": flt.queue,
            "task": flt.task,
            "created_after": self._enc_ts(flt.created_after) if flt.created_after else None,
            "created_before": self._enc_ts(flt.created_before) if flt.created_before else None,
            "before_id": flt.before_id,
            "limit": flt.limit,
        }
        return [job_from_row(r, self.codec) for r in self._read("list_jobs", params)]

    def count_by_status(self, *, tenant: str | None = None) -> dict[str, int]:
        rows = self._read("count_by_status", {"tenant": tenant})
        return {r["status"]: int(r["n"]) for r in rows}

    def events(self, job_id: int) -> list[JobEvent]:
        return [event_from_row(r, self.codec) for r in self._read("events", {"job_id": job_id})]

    def logs(self, job_id: int) -> list[JobLog]:
        return [log_from_row(r, self.codec) for r in self._read("logs", {"job_id": job_id})]

    def queues(self) -> list[QueueInfo]:
        now = self.clock.now()
        configs = {r["name"]: r for r in self._read("queue_configs", {})}
        params = {"now": self._enc_ts(now), "hour_ago": self._enc_ts(now - timedelta(hours=1))}
        stats = {r["queue"]: r for r in self._read("queue_stats", params)}
        out = []
        for name in sorted(set(configs) | set(stats)):
            cfg, st = configs.get(name), stats.get(name)
            counts = {k: int(st[k] or 0) if st else 0 for k in _STAT_COLUMNS}
            out.append(
                QueueInfo(
                    name=name,
                    paused=bool(cfg["paused"]) if cfg else False,
                    concurrency_limit=cfg["concurrency_limit"] if cfg else None,
                    **counts,
                    retention_seconds=float(cfg["retention_seconds"])
                    if cfg and cfg["retention_seconds"] is not None else DEFAULT_RETENTION,
                )
            )
        return out

    def queue(self, name: str) -> QueueInfo:
        for q in self.queues():
            if q.name == name:
                return q
        return QueueInfo(name=name, paused=False, concurrency_limit=None)

    def workers(self) -> list[WorkerInfo]:
        """Deprecated name of :meth:`worker_processes` ("workers" alone was ambiguous)."""
        warnings.warn("Store.workers() is deprecated; use Store.worker_processes()",
                      DeprecationWarning, stacklevel=2)
        return self.worker_processes()

    def worker_processes(self) -> list[WorkerInfo]:
        """The worker processes that have heartbeated, most recent first."""
        return [
            WorkerInfo(
                r["id"],
                self.codec.ts_out(r["started_at"]),
                self.codec.ts_out(r["last_heartbeat"]),
                self.codec.json_out(r["info"]),
            )
            for r in self._read("workers", {})
        ]
