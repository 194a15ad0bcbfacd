"""Parsing JSON that comes out of a sandbox: finite numbers, bounded nesting, no surprises.

Everything a sandbox sends is written by (or can be forged by) user code: a Python
handler can write its own frames to the pipe. ``json.loads`` alone accepts ``NaN``,
``Infinity`` and ``1e999`` (all non-finite), and raises ``RecursionError`` (not
``ValueError``) on deep nesting. :func:`loads` turns all of that into one
:class:`UnsafeJSON` (a ``ValueError``) that callers classify (ADR 0102).

``MAX_DEPTH`` matches the write path's limit (``treadle.core.storable``): a value nested
deeper could not be stored, nor parsed back by recursive parsers.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100


class UnsafeJSON(ValueError):
    """Not JSON, a non-finite number, or nested deeper than the limit."""


def _no_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"non-finite number {text[:40]!r}")
    return value


# One decoder for all calls (json.loads with hooks would build a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON text; raises :class:`UnsafeJSON` for anything unacceptable."""
    try:
        value = _DECODER.decode(text if isinstance(text, str) else text.decode("utf-8"))
    except UnsafeJSON:
        raise
    except RecursionError:
        raise UnsafeJSON(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise UnsafeJSON(f"not JSON: {exc}") from None
    # Cheap pre-check (C speed): fewer openers than the limit cannot nest that deep.
    sample = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if sample.count("[") + sample.count("{") > max_depth:
        _check_depth(value, max_depth)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    """Iteratively (no recursion of our own) refuse containers nested deeper than allowed."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= max_depth:
            raise UnsafeJSON(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
