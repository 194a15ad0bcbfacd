"""Frames done / total of a media step, reported through the job's context (ADR 0016).

The encode loop advances a :class:`FrameMeter` for every frame; that only updates the
attempt's progress (``ctx.progress(..., live=False)``), which the worker's heartbeat
carries to the job's stream. Stall detection is the worker's: a step runs inside
``ctx.watch_progress(stall_seconds)``, so one whose frame count stops moving is failed as
``timeout`` even if it is stuck in FFmpeg and never returns to Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ProgressSink(Protocol):
    def progress(self, done: float, total: float | None = None,
                 message: str | None = None, *, live: bool = True) -> None: ...


class FrameMeter:
    def __init__(self, sink: ProgressSink | None, label: str, total: int,
                 hook: Callable[[int], None] | None = None) -> None:
        self.sink = sink
        self.label = label
        self.total = total
        self.done = 0
        self._hook = hook  # a test seam: called with the count before each frame counts

    def advance(self, n: int = 1) -> None:
        if self._hook is not None:
            self._hook(self.done)
        self.done += n
        if self.sink is not None:
            self.sink.progress(self.done, self.total, self.label, live=False)

    def finish(self) -> None:
        """The final count, written at once (not left for the next heartbeat)."""
        if self.sink is not None:
            self.sink.progress(self.done, self.total, self.label, live=True)
