"""Progress of a long media step (frames done / total), and stall detection.

A :class:`Progress` is advanced by the encode loop for every frame. A watchdog thread
reports it every ``interval`` seconds (the step's heartbeat: a job log line and the
``on_report`` callback), and marks the step stalled when the count has not moved for
``stall_seconds``; the loop then raises :class:`~treadle.core.errors.Timeout` at its next
frame. This is independent of the job's total budget, which scales with the input's
duration (see ``pipeline.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from treadle.core.errors import Timeout

Report = Callable[[str, int, int], None]  # (label, done, total)


class Stalled(Timeout):
    """No progress for longer than the stall limit."""


class Progress:
    def __init__(self, label: str, total: int, *, report: Report | None = None,
                 interval: float = 2.0, stall_seconds: float = 60.0) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._report = report
        self._interval = interval
        self._stall = stall_seconds
        self._last_move = time.monotonic()
        self._stalled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"progress-{label}",
                                        daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        if et is None and self._report is not None:
            self._report(self.label, self.done, self.total)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` frames; raise ``Stalled`` if the watchdog gave up on this step."""
        if self._stalled:
            raise Stalled(f"{self.label}: no progress for {self._stall:.0f} s "
                          f"({self.done}/{self.total} frames)",
                          detail={"done": self.done, "total": self.total})
        self.done += n
        self._last_move = time.monotonic()

    def _watch(self) -> None:
        last_reported = -1
        while not self._stop.wait(self._interval):
            if self._report is not None and self.done != last_reported:
                self._report(self.label, self.done, self.total)
                last_reported = self.done
            if time.monotonic() - self._last_move > self._stall:
                self._stalled = True
