"""A running attempt's progress, carried by the worker's heartbeat, and stall detection.

Tasks report progress as often as they like (a media encode: every frame) through
``ctx.progress(done, total, live=False)``; that only updates this object. The worker's
heartbeat takes the latest value, if it changed, and writes it to the job's stream (ADR
0011), so progress reaches the database with every heartbeat and never more often.

``ctx.watch_progress(stall_seconds)`` arms stall detection for a stretch of work: the
worker's maintenance loop fails the attempt as ``timeout`` when the count has not moved
for that long, whatever the code is doing (even stuck in a decoder that never returns),
independently of the job's total budget (ADR 0016). Time comes from the worker's clock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import InvalidInput
from treadle.core.storable import clean_text, finite

MAX_STALL_SECONDS = 7 * 86_400.0
MAX_MESSAGE_CHARS = 1000  # as a stream's progress item keeps


@dataclass(frozen=True)
class ProgressValue:
    done: float
    total: float | None
    message: str | None


class ProgressState:
    """Thread-safe: the task's thread writes, the worker's maintenance thread reads."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._value: ProgressValue | None = None
        self._reported: ProgressValue | None = None
        self._moved_at = clock.monotonic()
        self._stall: float | None = None

    @property
    def value(self) -> ProgressValue | None:
        with self._lock:
            return self._value

    def update(self, done: float, total: float | None = None,
               message: str | None = None, *, reported: bool = False) -> None:
        """Record progress; a change of ``done`` counts as movement (stall detection)."""
        for name, v in (("done", done), ("total", total)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not finite(v)):
                raise InvalidInput(f"progress {name} must be a finite number")
        text = None if message is None else clean_text(str(message), MAX_MESSAGE_CHARS)
        value = ProgressValue(float(done), None if total is None else float(total), text)
        with self._lock:
            if self._value is None or self._value.done != value.done:
                self._moved_at = self.clock.monotonic()
            self._value = value
            if reported:
                self._reported = value

    def take_unreported(self) -> ProgressValue | None:
        """The latest value if the heartbeat has not carried it yet (then it has)."""
        with self._lock:
            if self._value is None or self._value == self._reported:
                return None
            self._reported = self._value
            return self._value

    @contextlib.contextmanager
    def watch(self, stall_seconds: float | None) -> Iterator[None]:
        """Fail the attempt (``timeout``) if progress stops for ``stall_seconds`` while
        inside this block; None: no stall detection. The clock starts now."""
        if stall_seconds is not None and (
                isinstance(stall_seconds, bool) or not isinstance(stall_seconds, int | float)
                or not 0 < stall_seconds <= MAX_STALL_SECONDS):
            raise InvalidInput(f"stall_seconds must be above 0 and at most "
                               f"{MAX_STALL_SECONDS:.0f}")
        with self._lock:
            previous = self._stall
            self._stall = None if stall_seconds is None else float(stall_seconds)
            self._moved_at = self.clock.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._stall = previous
                self._moved_at = self.clock.monotonic()

    def stalled(self) -> str | None:
        """Why the attempt counts as stalled now, or None."""
        with self._lock:
            if self._stall is None:
                return None
            idle = self.clock.monotonic() - self._moved_at
            limit = self._stall
            if idle <= limit:
                return None
            v = self._value
        where = "" if v is None else (
            f" at {v.done:g}" + ("" if v.total is None else f"/{v.total:g}")
            + ("" if not v.message else f" ({v.message[:200]})"))
        return f"stalled: no progress for {idle:.1f} s (limit {limit:g} s){where}"

