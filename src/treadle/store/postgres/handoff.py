"""Hand-off to a parked worker on PostgreSQL (ADR 0034): park, take, unpark.

A worker that waits for work with free slots *parks*: a row in ``treadle_parked`` says
which queues and kinds it serves, how many jobs it still takes, and which notification
channel and backend (its claim connection, ADR 0031) reach it. An enqueue of one plain
job that finds its queue empty and such a worker alive inserts the job already claimed
by that worker (``insert_job_handoff``) and sends the claimed row to the worker's
channel: the worker starts it without a claim's round trip. Everything else queues and
notifies as before, so a worker that does not park (SQLite, a burst run) changes nothing.

Parking costs a write, so it is kept off the path of a worker that finds work by
claiming: a worker parks when it waits for work with free slots (its last claim came
back short, so the queue was empty), jobs running there or not; it stays parked while
hand-offs keep coming (it parks again, with its free slots, once fewer than half its
slots are left); an ordinary claim that finds jobs makes the row's count wrong, so the
next wait parks again with what is free then (or unparks, nothing being free). A worker
draining a backlog claims full batches and does not wait: it writes nothing for this.
The counts are hints the enqueue counts down; a stale one can at worst hand a job to a
worker whose slots are all busy, and the job then waits there as a claimed-ahead job
does (ADR 0017).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from treadle.core.clock import Clock
from treadle.core.errors import TreadleError
from treadle.core.job import Job
from treadle.logs import get_logger
from treadle.store.base import Parking
from treadle.store.postgres.claimconn import ClaimConnection
from treadle.store.postgres.errors import translated
from treadle.store.queries import load_queries
from treadle.store.rows import Codec, job_from_row

Q = load_queries("treadle.store.postgres")
Cursor = psycopg.Cursor[dict[str, Any]]
log = get_logger("treadle.store")


def _identity(value: Any) -> Any:
    return value


# A handed row arrives as row_to_json: JSON columns already decoded, times as ISO 8601.
HANDED_CODEC = Codec(json_out=_identity, ts_out=datetime.fromisoformat)


@dataclass
class _Parked:
    free: int  # hand-offs the row still allows, as this store last knew it
    generation: int  # the claim connection it was written for
    stale: bool = False  # an ordinary claim found jobs: unpark at the next wait


class HandoffOps:
    clock: Clock
    _cc: ClaimConnection
    _pinned: threading.local
    _cc_use: threading.Lock
    _handoff_channel: str
    _parked: dict[str, _Parked]
    _handed: dict[str, list[Job]]
    _cursor: Callable[..., AbstractContextManager[Cursor]]
    codec: Codec

    def _park(self, park: Parking) -> None:
        """Called on the claim connection before its wait: park, re-park or unpark
        ``park.worker`` as the module docstring says; most waits write nothing."""
        state = self._parked.get(park.worker)
        if state is not None and state.generation != self._cc.generation:
            state = None  # parked through a backend that is gone: its row is dead
        if state is None or state.stale:
            # Not parked, or parked with a count an ordinary claim made wrong: park with
            # what is free now. The wait follows a claim that emptied the queue, so the
            # next lone job may come straight here, also while jobs run here (waiting
            # for the worker to be idle, a worker that started on a backlog, or met a
            # burst, never parked again while a job ran at each of its waits).
            want = park.free
            if state is None and want == 0:
                return
        elif park.free == 0:
            want = 0
        elif state.free < max(1, park.free // 2):
            want = park.free
        else:
            return
        self._write_park(park, want)
        if want:
            self._parked[park.worker] = _Parked(want, self._cc.generation)
        else:
            self._parked.pop(park.worker, None)

    def _write_park(self, park: Parking, free: int) -> None:
        with self._cursor(tx=False) as cur:
            cur.execute(Q["park_worker"], {
                "worker": park.worker, "free": free,
                "queues": None if park.queues is None else list(park.queues),
                "kinds": None if park.kinds is None else list(park.kinds),
                "lease_seconds": park.lease_seconds, "channel": self._handoff_channel,
                "now": self.clock.now(), "lock_key": self._cc.lock_key,
            })

    def _claimed_ordinarily(self, worker: str) -> None:
        """An ordinary claim found jobs: a queue exists again, so unpark at the next wait."""
        state = self._parked.get(worker)
        if state is not None:
            state.stale = True

    def take_handed(self, worker: str) -> list[Job]:
        """Jobs handed to ``worker`` since the last call (ADR 0034), claimed for it."""
        payloads = self._cc.take_handed()
        for payload in payloads:
            job = self._handed_job(payload)
            if job is None or job.lease_owner is None:
                continue
            self._handed.setdefault(job.lease_owner, []).append(job)
            state = self._parked.get(job.lease_owner)
            if state is not None:
                state.free = max(0, state.free - 1)
        return self._handed.pop(worker, [])

    def _handed_job(self, payload: str) -> Job | None:
        try:
            row: Mapping[str, Any] = json.loads(payload)
            if "task" in row:
                return job_from_row(row, HANDED_CODEC)
            # Too long for a notification: the row is read (still claimed for us).
            with self._cursor(tx=False) as cur:
                cur.execute(Q["handed_job"], {"id": row["id"], "worker": row["lease_owner"],
                                              "token": row["lease_token"]})
                found = cur.fetchone()
            return None if found is None else job_from_row(found, self.codec)
        except (ValueError, KeyError, TypeError, RecursionError, TreadleError) as exc:
            # Only our own statement writes to this channel, so a payload that does not
            # parse is a bug, and a row that cannot be read now (an outage) is no loss:
            # either way the job's lease brings it back to the queue.
            log.error("hand-off not taken; its lease will bring the job back",
                      error=str(exc), payload=payload[:200])
            return None

    def unpark(self, worker: str) -> list[Job]:
        """Stop hand-offs to ``worker`` (it stops); returns the jobs handed to it until
        then, which it holds (it releases them as it does claimed-ahead ones)."""
        if self._parked.pop(worker, None) is not None:
            # On the claim connection: a hand-off committed before this delete (which
            # waits for it) signalled that backend, and PostgreSQL sends what it was
            # signalled before the statement's answer. Its row is read here, not left
            # to its lease.
            with self._cc_use:
                with translated():
                    self._pinned.conn = self._cc.connection()
                try:
                    self._write_park(Parking(worker, 0, None, None, 0.0), 0)
                finally:
                    self._pinned.conn = None
        return self.take_handed(worker)


__all__ = ["HANDED_CODEC", "HandoffOps"]
