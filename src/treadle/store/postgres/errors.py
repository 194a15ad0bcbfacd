"""psycopg's exceptions become Treadle's at the store's edge (callers never see psycopg)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from treadle.core.errors import StoreError, StoreUnavailable, ValueOutOfRange


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise :class:`StoreError` / :class:`ValueOutOfRange` for a statement the server
    refused. A lost connection is :class:`StoreUnavailable` (the retry layer already
    raises it after its own attempts); Treadle's own errors pass as they are."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreUnavailable(f"PostgreSQL unavailable: {first_line(exc)}") from exc
    except psycopg.DataError as exc:  # e.g. a number or date the column cannot hold
        raise ValueOutOfRange("a value is out of range") from exc
    except psycopg.Error as exc:
        raise StoreError(f"database error: {first_line(exc)}") from exc


def translate(exc: Exception) -> Exception:
    """The Treadle error :func:`translated` would raise for ``exc`` (itself if none)."""
    try:
        with translated():
            raise exc
    except Exception as out:
        return out
