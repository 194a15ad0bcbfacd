"""The streams' tables, through the store's extension seam (named SQL per backend).

The stream has its own migration track (``streams``, ADR 0008's mechanism), so it never
competes with core or plug-in migrations for a number. A store whose database has not
applied that track (a test that ran only ``store.migrate()``) simply has no streams:
:meth:`StreamRepo.available` says so and the worker drops items with one warning
instead of failing jobs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from treadle.core.errors import ConfigurationError
from treadle.store import Store
from treadle.store.extension import ExtensionSql
from treadle.streams.model import DEFAULT_LIMITS, Pending, StreamItem, StreamLimits

SQL_PACKAGE = "treadle.streams.sql"
TRACK = "streams"
_RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class Head:
    """A followed job's state and its stream's head, read in one query for many jobs."""

    job_id: int
    status: str
    attempt: int
    last_seq: int
    trimmed_through: int


class StreamRepo:
    def __init__(self, store: Store, limits: StreamLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        try:
            self._sql: ExtensionSql | None = ExtensionSql.of_package(store, SQL_PACKAGE)
        except ConfigurationError:
            self._sql = None  # a store without SQL (a test double): no streams
        self._store = store
        self._available = False
        self._checked = -_RECHECK_SECONDS

    @property
    def backend(self) -> str | None:
        return None if self._sql is None else self._sql.backend

    def available(self) -> bool:
        """Whether the streams' tables exist (checked again now and then until they do)."""
        if self._available or self._sql is None:
            return self._available
        now = time.monotonic()
        if now - self._checked >= _RECHECK_SECONDS:
            self._checked = now
            try:
                self._available = bool(self._sql.run("migrated", {}))
            except Exception:
                self._available = False  # no plug-in table either: an old schema
        return self._available

    def _q(self) -> ExtensionSql:
        if self._sql is None:
            raise ConfigurationError("this store has no streams (not an SQL store)")
        return self._sql

    def append(self, items: Mapping[int, Sequence[Pending]]) -> dict[int, int]:
        """Write every job's pending items in one transaction; returns each job's last
        sequence number (jobs deleted meanwhile are skipped)."""
        sql = self._q()
        heads: dict[int, int] = {}
        with self._store.transaction() as tx:
            for job_id, pending in items.items():
                if not pending:
                    continue
                rows = sql.run("reserve", {"job_id": job_id, "n": len(pending)}, tx=tx)
                if not rows:
                    continue
                last = int(rows[0]["last_seq"])
                payload = json.dumps([[p.attempt, p.kind, p.data_json, p.at] for p in pending],
                                     ensure_ascii=False, separators=(",", ":"))
                sql.run("append", {"job_id": job_id, "first": last - len(pending) + 1,
                                   "items": payload}, tx=tx)
                through = last - self.limits.max_items
                if through > 0:
                    sql.run("trim", {"job_id": job_id, "through": through}, tx=tx)
                    sql.run("mark_trimmed", {"job_id": job_id, "through": through}, tx=tx)
                heads[job_id] = last
            if heads and sql.backend == "postgres":
                # One notification per flush, delivered at commit: the servers' hubs wake.
                sql.run("notify", {"ids": ",".join(map(str, heads))}, tx=tx)
        return heads

    def read(self, job_id: int, after: int, limit: int = 500) -> list[StreamItem]:
        rows = self._q().run("read", {"job_id": job_id, "after": after, "limit": limit})
        return [StreamItem(int(r["seq"]), int(r["attempt"]), str(r["kind"]),
                           json.loads(r["data"]), float(r["at"])) for r in rows]

    def latest(self, job_id: int, kind: str) -> StreamItem | None:
        """The job's newest item of ``kind`` still in its stream, or None."""
        rows = self._q().run("latest_of_kind", {"job_id": job_id, "kind": kind})
        return next((StreamItem(int(r["seq"]), int(r["attempt"]), str(r["kind"]),
                                json.loads(r["data"]), float(r["at"])) for r in rows), None)

    def heads(self, job_ids: Sequence[int]) -> dict[int, Head]:
        if not job_ids:
            return {}
        sql = self._q()
        ids: Any = list(job_ids) if sql.backend == "postgres" else json.dumps(list(job_ids))
        rows = sql.run("heads", {"ids": ids})
        return {int(r["job_id"]): Head(int(r["job_id"]), str(r["status"]), int(r["attempt"]),
                                       int(r["last_seq"]), int(r["trimmed_through"]))
                for r in rows}

    def delete_for_jobs(self, job_ids: Sequence[int]) -> None:
        """Drop these jobs' streams (retention that keeps the jobs); deleting a job drops
        its stream by itself (foreign keys cascade)."""
        if not job_ids:
            return
        sql = self._q()
        ids: Any = list(job_ids) if sql.backend == "postgres" else json.dumps(list(job_ids))
        sql.run("delete_for_jobs", {"ids": ids}, write=True)
