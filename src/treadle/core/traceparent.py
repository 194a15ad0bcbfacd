"""W3C Trace Context ``traceparent`` values, checked without OpenTelemetry (ADR 0021).

A job stores the traceparent of the request that submitted it so the worker's span can
continue that trace. The header comes from outside: it is parsed strictly and only the
canonical 55-character form is ever stored; anything else is ignored, as the W3C
recommendation says a receiver must (a bad header starts a new trace, it does not fail
the request).
"""

from __future__ import annotations

import re

from treadle.core.errors import InvalidInput

# version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2 characters, lower-case hex.
_V00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# A later version may append fields after a dash; its first four fields keep their shape.
_LATER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
MAX_HEADER_CHARS = 512  # far above any valid value: longer input is not even scanned
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse(value: object) -> str | None:
    """The canonical version-00 form of ``value``, or None if it is not a valid traceparent.

    Never raises, whatever ``value`` is (non-strings, 50 MB strings, NUL, surrogates).
    A higher version is read by its first four fields, as the specification asks, and
    stored as version 00.
    """
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
        return None
    text = value.strip(" \t")
    m = _V00.fullmatch(text)
    if m is None:
        later = _LATER.fullmatch(text)
        if later is None or later.group(1) in ("00", "ff"):
            return None
        trace, span, flags = later.group(2), later.group(3), later.group(4)
    else:
        trace, span, flags = m.group(1), m.group(2), m.group(3)
    if trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    return f"00-{trace}-{span}-{flags}"


def check(value: object) -> str:
    """``parse`` for callers that pass a traceparent on purpose: a bad one is refused."""
    parsed = parse(value)
    if parsed is None:
        raise InvalidInput("traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
    return parsed
