"""HTTP ``Range: bytes=...`` for artifact downloads (one range; others are answered whole)."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


class Unsatisfiable(ValueError):
    """The range lies outside the content (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` for a single satisfiable range, None for no (or an ignorable)
    header: RFC 9110 lets a server ignore a Range it does not support, e.g. several."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise Unsatisfiable(header)
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if last and int(last) < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable(header)
    return start, end
