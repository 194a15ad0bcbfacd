"""Ages as people write them (``90s``, ``15m``, ``12h``, ``1d``, ``2w``): retention and
``--older-than`` (ADR 0010)."""

from __future__ import annotations

import re

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_AGE = 10 * 365 * 86400.0  # ten years: anything longer is a typo


def parse_age(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``1d``, ``2w`` -> seconds (``ValueError`` otherwise)."""
    m = re.fullmatch(r"\s*(\d{1,9}(?:\.\d{1,6})?)\s*([smhdw])\s*", text) \
        if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not an age like 90s, 15m, 12h, 1d or 2w")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_AGE:
        raise ValueError(f"{text!r} is longer than ten years")
    return seconds


def format_age(seconds: float) -> str:
    """The largest whole unit: 604800 -> ``7d``, 5400 -> ``90m``."""
    for unit, size in _UNITS.items():
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
