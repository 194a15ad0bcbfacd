"""What may be stored: the one sanitiser for every value and line that reaches a store.

Both stores must hold whatever a job hands them without raising: a store that raises
on content kills the thread that writes it (ADR 0006). Anything user code
or a client produces passes through here first, in one of two ways (ADR 0006):

- :func:`check` — *strict*, for values whose meaning belongs to the user (payloads,
  results, continuation payloads). A value that cannot be stored exactly as given is
  refused with a classified error naming what and where; nothing is altered silently.
- :func:`repair` and :func:`clean_text` — *lenient*, for what Treadle itself must be
  able to record whatever happened (error messages and details, event details, log
  lines). Invalid text is made valid, oversized text is cut with a visible marker.

"Storable" is the intersection of what SQLite (JSON as UTF-8 text), PostgreSQL
(``jsonb``, ``text``) and Python's ``json`` can round-trip:

- strings are valid Unicode: no lone surrogates, no NUL (``jsonb`` and ``text`` refuse
  ``\\u0000``); lenient mode replaces either with U+FFFD;
- numbers are finite (no NaN/Infinity) and integers fit in ``MAX_INT_BITS`` bits
  (``json`` refuses to parse integers beyond 4300 digits back);
- mapping keys are strings (``json`` would silently turn ``1`` into ``"1"``);
- nesting is at most ``MAX_DEPTH`` (deeper values overflow recursive parsers in
  ``json`` and PostgreSQL on the way back);
- only ``dict``, ``list``/``tuple``, ``str``, ``int``, ``float``, ``bool`` and ``None``.

Walks are iterative, so a 10,000-deep value is refused, not a ``RecursionError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from treadle.core.errors import InvalidInput, TreadleError

MAX_DEPTH = 100
MAX_INT_BITS = 1024
REPLACEMENT = "\ufffd"
# Lenient mode bounds what it keeps, so an error detail cannot become the next problem.
REPAIR_MAX_STRING = 8192
REPAIR_MAX_NODES = 10_000

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "check",
    "check_size",
    "clean_text",
    "encode",
    "is_valid_text",
    "repair",
]


def is_valid_text(s: str) -> bool:
    """True when ``s`` is storable text: encodable as UTF-8 and without NUL."""
    if s.isascii():
        return "\x00" not in s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in s


def clean_text(s: str, limit: int | None = None) -> str:
    """``s`` made storable: lone surrogates and NUL become U+FFFD; cut at ``limit`` chars.

    A well-formed surrogate *pair* held as two code points (text that went through
    UTF-16) is joined into the character it stands for, not replaced.
    """
    if not is_valid_text(s):
        if not s.isascii():
            s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        s = s.replace("\x00", REPLACEMENT)
    if limit is not None and len(s) > limit:
        cut = len(s) - limit
        s = f"{s[:limit]}… [{cut} more characters not stored]"
    return s


@dataclass(frozen=True)
class _Refused:
    reason: str
    path: tuple[str | int, ...]


def _where(what: str, path: tuple[str | int, ...]) -> str:
    out = what
    if len(path) > 12:  # a deep path: its start and its end say enough
        return f"{_where(what, path[:6])}…{_where('', path[-4:])}"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{clean_text(part, 40)}"
    return out


def finite(value: float) -> bool:
    """``math.isfinite`` that answers False, not OverflowError, for an int too large for
    a float (``10**400``): what every number check on hostile input needs."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _scalar_problem(value: Any) -> str | None:
    """Why a non-container value cannot be stored, or None when it can."""
    if value is None or value is True or value is False:
        return None
    if isinstance(value, str):
        return None if is_valid_text(value) else "a string with a lone surrogate or NUL"
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            return f"an integer beyond {MAX_INT_BITS} bits"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"a non-finite number ({value!r})"
    return f"a value of type {type(value).__name__} (not JSON)"


def _storable(value: Any) -> bool:
    """True when every part of ``value`` can be stored; the hot path for large results.

    Common scalar types are tested inline by exact type, anything unusual goes through
    :func:`_scalar_problem`. It does not say *where* the problem is: :func:`_locate`,
    run only after a refusal, does.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            for key in node:
                if type(key) is not str or "\x00" in key or not (
                    key.isascii() or is_valid_text(key)
                ):
                    return False
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            if _scalar_problem(node):
                return False
            continue
        if depth >= MAX_DEPTH:
            return False
        for child in children:
            t = type(child)
            if t is str:
                if "\x00" in child or not (child.isascii() or is_valid_text(child)):
                    return False
            elif t is int:
                if child.bit_length() > MAX_INT_BITS:
                    return False
            elif t is dict or t is list or t is tuple:
                stack.append((child, depth + 1))
            elif t is float:
                if not math.isfinite(child):
                    return False
            elif child is None or t is bool:
                continue
            elif isinstance(child, Mapping | list | tuple):
                stack.append((child, depth + 1))
            elif _scalar_problem(child):
                return False
    return True


def _locate(value: Any) -> _Refused:
    """The first part of ``value`` that cannot be stored, with its path."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 0, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, Mapping):
            items: Any = node.items()
        elif isinstance(node, list | tuple):
            items = enumerate(node)
        else:
            problem = _scalar_problem(node)
            if problem:
                return _Refused(problem, path)
            continue
        if depth >= MAX_DEPTH:
            return _Refused(f"nesting deeper than {MAX_DEPTH} levels", path)
        for key, child in items:
            if isinstance(node, Mapping):
                if not isinstance(key, str):
                    return _Refused(f"a key that is not a string ({type(key).__name__})", path)
                if not is_valid_text(key):
                    return _Refused("a key with a lone surrogate or NUL", path)
            stack.append((child, depth + 1, (*path, key)))
    return _Refused("a value that cannot be stored", ())


def check(
    value: Any,
    what: str,
    *,
    error: type[TreadleError] = InvalidInput,
    max_bytes: int | None = None,
) -> Any:
    """Return ``value`` if it can be stored exactly as given; else raise ``error``.

    The message names ``what`` and the path of the first offending part, e.g.
    ``result.items[3].name contains a string with a lone surrogate or NUL``.
    """
    if not _storable(value):
        exc = _locate(value)
        where = _where(what, exc.path)
        raise error(
            f"{where} cannot be stored: it contains {exc.reason}",
            detail={"path": [clean_text(str(p), 200) for p in exc.path], "reason": exc.reason},
        ) from None
    if max_bytes is not None:
        check_size(encode(value), what, max_bytes, error=error)
    return value


def _not_json(value: Any) -> Any:
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


# ``json.dumps`` builds an encoder and its C scanner on every call, which cost more than
# encoding a small payload (ADR 0032); this one is built once. No cycle check (``check``
# already refused anything deeper than MAX_DEPTH, so a cycle never gets here) and NaN
# refused, as ``check`` does.
_C_ENCODER = (json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if getattr(json.encoder, "c_make_encoder", None) is not None else None)
_PY_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any) -> str:
    """``value`` (already checked) as compact JSON text: what both stores write."""
    if _C_ENCODER is not None:
        return "".join(_C_ENCODER(value, 0))
    return _PY_ENCODER.encode(value)


def check_size(
    text: str, what: str, max_bytes: int, *, error: type[TreadleError] = InvalidInput
) -> None:
    """Refuse ``text`` (the JSON of ``what``) when its UTF-8 form exceeds ``max_bytes``."""
    # ASCII text is as many bytes as characters: no second copy of a large payload.
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_bytes:
        raise error(f"{what} is {size} bytes; the limit is {max_bytes}",
                    detail={"bytes": size, "limit": max_bytes})


def repair(value: Any) -> Any:
    """A storable, bounded copy of ``value``.

    Used where a record must be written whatever it holds (errors, event details).
    Invalid text is cleaned, strings are cut at ``REPAIR_MAX_STRING`` characters,
    non-string keys become strings, non-finite numbers and foreign objects become their
    ``repr``, and parts deeper than ``MAX_DEPTH`` or beyond ``REPAIR_MAX_NODES`` are
    replaced by a marker string. Always a bounded copy: these records are small.
    """
    budget = REPAIR_MAX_NODES

    def scalar(node: Any) -> Any:
        if _scalar_problem(node) is None:
            return clean_text(node, REPAIR_MAX_STRING) if isinstance(node, str) else node
        if isinstance(node, str):
            return clean_text(node, REPAIR_MAX_STRING)
        if isinstance(node, int):
            return f"<integer of {node.bit_length()} bits>"
        try:
            text = repr(node)
        except Exception:  # a hostile __repr__ must not stop the repair
            text = f"<{type(node).__name__}>"
        return clean_text(text, REPAIR_MAX_STRING)

    # Iterative copy: (source, depth, destination container, key in destination).
    root: list[Any] = [None]
    stack: list[tuple[Any, int, Any, Any]] = [(value, 0, root, 0)]
    while stack:
        node, depth, dest, slot = stack.pop()
        if isinstance(node, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                dest[slot] = f"<not stored: nested deeper than {MAX_DEPTH}>"
                continue
            out: Any = {} if isinstance(node, Mapping) else []
            pairs = node.items() if isinstance(node, Mapping) else enumerate(node)
            for k, v in pairs:
                if budget <= 0:
                    marker = f"<not stored: more than {REPAIR_MAX_NODES} parts>"
                    if isinstance(out, dict):
                        out["…"] = marker
                    else:
                        out.append(marker)
                    break
                budget -= 1
                key: str | int
                if isinstance(out, dict):
                    key = clean_text(k if isinstance(k, str) else str(scalar(k)), 200)
                    out[key] = None
                else:
                    key = len(out)
                    out.append(None)
                stack.append((v, depth + 1, out, key))
            dest[slot] = out
        else:
            dest[slot] = scalar(node)
    return root[0]
