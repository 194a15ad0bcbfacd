"""Resource limits of one sandboxed run (per worker, overridable per run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from treadle.core.errors import InvalidInput
from treadle.core.storable import finite


class InvalidLimits(InvalidInput, ValueError):
    """A limit is missing its unit sense (negative, zero, absurdly large or not a number)."""


# Upper bounds keep a typo ("timeout": 36000000) from pinning a worker slot for a year.
_BOUNDS: dict[str, tuple[float, float]] = {
    "timeout": (0.001, 3600.0),
    "cpu_seconds": (0.01, 3600.0),
    "memory_mb": (32, 16384),
    "max_output_bytes": (1, 1 << 30),
    "max_log_bytes": (0, 1 << 30),
    "max_host_calls": (0, 100_000),
}
_INTS = frozenset({"memory_mb", "max_output_bytes", "max_log_bytes", "max_host_calls"})


@dataclass(frozen=True)
class Limits:
    """What one run may consume. Every limit is enforced by the host, never by asking.

    ``timeout`` is wall-clock seconds (the sandbox is killed when it passes);
    ``cpu_seconds`` CPU time; ``memory_mb`` the address space (Python) or heap plus growth
    of the host's resident memory (JavaScript); ``max_output_bytes`` the JSON result;
    ``max_log_bytes`` the captured console output; ``max_host_calls`` the number of
    binding calls (``env.kv``/``env.fetch``), Cloudflare's "subrequest" limit.
    """

    timeout: float = 5.0
    cpu_seconds: float = 5.0
    memory_mb: int = 256
    max_output_bytes: int = 1 << 20
    max_log_bytes: int = 1 << 20
    max_host_calls: int = 50

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidLimits(f"limit {f.name} must be a number, got {value!r}")
            if f.name in _INTS and not (isinstance(value, int) or float(value).is_integer()):
                raise InvalidLimits(f"limit {f.name} must be an integer, got {value!r}")
            if not finite(value):
                raise InvalidLimits(f"limit {f.name} must be finite, got {value!r}")
            low, high = _BOUNDS[f.name]
            if not low <= value <= high:
                raise InvalidLimits(f"limit {f.name}={value!r} is outside [{low}, {high}]")
            if f.name in _INTS:
                object.__setattr__(self, f.name, int(value))

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Limits | None = None) -> Limits:
        """Build limits from JSON (API/CLI input); unknown names are an error."""
        if not isinstance(data, dict):
            raise InvalidLimits("limits must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidLimits(f"unknown limit(s): {', '.join(unknown)}")
        merged = {**asdict(base or cls()), **data}
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
