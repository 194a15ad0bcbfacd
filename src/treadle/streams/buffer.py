"""Items a worker's tasks emitted, waiting for the flusher.

Tasks append from their own threads; the worker's flusher takes everything pending and
writes it in one transaction (``StreamRepo.append``) before the outcomes of the same
batch, so a job's final record always follows its last item. The first item after a
flush wakes the flusher (``wake``); the items emitted while it writes wait for the next
round, which is how bursts (an agent's tokens) become one write instead of one per item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import StoreUnavailable
from treadle.core.storable import clean_text
from treadle.logs import get_logger
from treadle.streams.model import (
    LOG,
    PROGRESS,
    STEP,
    TRIMMED,
    Pending,
    check_kind,
    encode,
    progress_data,
)
from treadle.streams.repo import StreamRepo

log = get_logger("treadle.streams")


class StreamBuffer:
    """One per worker; thread-safe."""

    def __init__(self, repo: StreamRepo, wake: Callable[[], None],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.repo = repo
        self.limits = repo.limits
        self.clock = clock
        self._wake = wake
        self._lock = threading.Lock()
        self._pending: dict[int, list[Pending]] = {}
        self._dropped: dict[int, tuple[int, int]] = {}  # job -> (attempt, count)
        self._warned = False

    def writer(self, job_id: int, attempt: int) -> StreamWriter:
        return StreamWriter(self, job_id, attempt)

    def add(self, job_id: int, item: Pending) -> None:
        with self._lock:
            was_empty = not self._pending and not self._dropped
            items = self._pending.setdefault(job_id, [])
            if len(items) < self.limits.max_pending:
                items.append(item)
            else:
                _, n = self._dropped.get(job_id, (item.attempt, 0))
                self._dropped[job_id] = (item.attempt, n + 1)
        if was_empty:
            self._wake()

    def take(self) -> dict[int, list[Pending]]:
        with self._lock:
            pending, self._pending = self._pending, {}
            dropped, self._dropped = self._dropped, {}
        for job_id, (attempt, n) in dropped.items():
            note = encode({"dropped": n, "reason": "the worker held too many unwritten "
                           "items of this job"}, self.limits)
            pending.setdefault(job_id, []).append(
                Pending(attempt, TRIMMED, note, self.clock.now().timestamp()))
        return pending

    def put_back(self, pending: dict[int, list[Pending]]) -> None:
        with self._lock:
            for job_id, items in pending.items():
                self._pending[job_id] = items + self._pending.get(job_id, [])

    def flush(self, stopping: threading.Event | None = None) -> None:
        """Write what is pending. Outages are retried (as outcomes are); any other failure
        drops the items with an error log, so a stream can never hold up outcomes."""
        pending = self.take()
        if not pending:
            return
        if not self.repo.available():
            if not self._warned:
                self._warned = True
                log.warning("stream items are not stored: the database has no streams "
                            "tables (run treadle migrate)")
            return
        backoff = 0.05
        while True:
            try:
                self.repo.append(pending)
                return
            except StoreUnavailable as exc:
                if stopping is not None and stopping.is_set():
                    log.warning("stream items not stored at shutdown (database unavailable)",
                                jobs=len(pending), error=str(exc))
                    return
                log.warning("writing stream items failed; retrying", error=str(exc))
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                log.error("stream items could not be stored; dropped", jobs=len(pending),
                          items=sum(map(len, pending.values())), error=repr(exc),
                          exc_info=exc)
                return


class StreamWriter:
    """What ``ctx.emit``/``ctx.progress``/``ctx.log`` append through, for one attempt."""

    def __init__(self, buffer: StreamBuffer, job_id: int, attempt: int) -> None:
        self._buffer = buffer
        self.job_id = job_id
        self.attempt = attempt

    def _add(self, kind: str, data_json: str) -> None:
        at = self._buffer.clock.now().timestamp()
        self._buffer.add(self.job_id, Pending(self.attempt, kind, data_json, at))

    def emit(self, kind: str, data: Any) -> None:
        self._add(check_kind(kind), encode(data, self._buffer.limits))

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        self._add(PROGRESS, encode(progress_data(done, total, message), self._buffer.limits))

    def log(self, line: str) -> None:
        text = clean_text(line, self._buffer.limits.max_log_chars)
        self._add(LOG, encode(text, self._buffer.limits))

    def step(self, seq: int, name: str, state: str) -> None:
        """A workflow step started, completed or failed (platform kind ``step``)."""
        data = {"seq": seq, "name": clean_text(name, 200), "state": state}
        self._add(STEP, encode(data, self._buffer.limits))
