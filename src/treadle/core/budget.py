"""Execution budgets: the deadline an attempt must finish by (ADR 0004)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import Timeout


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock. Task code asks it how long is left.

    Long work should check :meth:`remaining` and checkpoint (continue in a
    fresh attempt) instead of running into the hard timeout.
    """

    at: float  # monotonic seconds; math.inf for no deadline
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def after(cls, seconds: float | None, clock: Clock = SYSTEM_CLOCK) -> Deadline:
        if seconds is None:
            return cls(math.inf, clock)
        return cls(clock.monotonic() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        return self.clock.monotonic() >= self.at

    def check(self) -> None:
        """Raise :class:`Timeout` if the budget is spent."""
        if self.expired:
            raise Timeout("execution budget exhausted")
