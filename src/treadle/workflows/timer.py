"""One daemon thread that runs callbacks after a delay unless they were settled first.

Used to record a step's start only when the step runs long enough for anyone to look
(ADR 0009): short steps write their start together with their result, one commit per
step; a long one shows as started while it runs.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from treadle.logs import get_logger

log = get_logger("treadle.workflows")


class Pending:
    """A scheduled callback; ``settle()`` stops it and says whether it already ran."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._settled = False
        self.fired = False

    def fire(self) -> None:
        with self._lock:
            if self._settled:
                return
            try:
                self._fn()
                self.fired = True
            except BaseException as exc:  # a failed early write is redone with the result
                log.debug("deferred write failed", error=repr(exc))

    def settle(self) -> bool:
        """Cancel if still pending (waits for a run in progress); True if it ran."""
        with self._lock:
            self._settled = True
            return self.fired


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Pending]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def after(self, delay: float, fn: Callable[[], object]) -> Pending:
        pending = Pending(fn)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), pending))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="treadle-wf-timers",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return pending

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, pending = heapq.heappop(self._heap)
            pending.fire()


TIMERS = Timers()
