"""What one attempt cost: CPU, wall time, memory, bytes, model tokens and money (ADR 0022).

Pure values, no I/O: the worker measures (``treadle/usage.py``), the store writes one row
per attempt with the attempt's outcome, and the aggregate reads sum them per tenant or
queue. Figures the attempt could not measure are ``None`` (not zero): an async task's CPU
is unknown, a task outside a sandbox has no separate peak memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from treadle.core.storable import finite

# An attempt's figures are bounded so a hostile executor cannot store absurd numbers.
MAX_SECONDS = 10 * 365 * 24 * 3600.0
MAX_COUNT = 2**62


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as stored (compact JSON, UTF-8): what a result costs to keep."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _seconds(value: float | None) -> float | None:
    if value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if not finite(value):  # NaN, infinity, an int past a float's range
        return None
    return min(max(0.0, float(value)), MAX_SECONDS)


def _count(value: int | None) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    return min(max(0, value), MAX_COUNT)


@dataclass(frozen=True)
class Usage:
    """One attempt's consumption; every field is clamped to a sane range by ``clean``."""

    wall_seconds: float = 0.0
    cpu_seconds: float | None = None  # thread CPU (in-process) plus sandbox CPU, if known
    peak_memory_bytes: int | None = None  # sandboxed runs only: the sandbox's peak RSS
    result_bytes: int = 0
    log_bytes: int = 0
    wait_seconds: float | None = None  # from run_at to the start of this attempt
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    # Set only on what ``clean`` returns: the worker cleans at the attempt's end and the
    # store (the last line of defence) again, and the second need not redo the work.
    _clean: bool = field(default=False, init=False, repr=False, compare=False)

    def clean(self) -> Usage:
        """A copy that any store can hold: finite, non-negative, bounded."""
        if self._clean:
            return self  # frozen: nothing could change it since
        cost = self.cost_usd if isinstance(self.cost_usd, int | float) else 0.0
        out = Usage(
            wall_seconds=_seconds(self.wall_seconds) or 0.0,
            cpu_seconds=_seconds(self.cpu_seconds),
            peak_memory_bytes=_count(self.peak_memory_bytes),
            result_bytes=_count(self.result_bytes) or 0,
            log_bytes=_count(self.log_bytes) or 0,
            wait_seconds=_seconds(self.wait_seconds),
            tokens_in=_count(self.tokens_in) or 0,
            tokens_out=_count(self.tokens_out) or 0,
            cost_usd=min(max(0.0, float(cost)), 1e12) if finite(cost) else 0.0,
        )
        object.__setattr__(out, "_clean", True)
        return out

    def with_(self, **changes: Any) -> Usage:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds,
            "peak_memory_bytes": self.peak_memory_bytes, "result_bytes": self.result_bytes,
            "log_bytes": self.log_bytes, "wait_seconds": self.wait_seconds,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
        }
