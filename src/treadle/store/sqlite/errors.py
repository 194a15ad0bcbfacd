"""SQLite's exceptions become Treadle's at the store's edge (callers never see sqlite3)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from treadle.core.errors import StoreError, ValueOutOfRange


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise :class:`StoreError` / :class:`ValueOutOfRange` for what the driver raised.

    Treadle's own errors (a lock that never freed is ``StoreUnavailable``) pass as they are.
    """
    try:
        yield
    except OverflowError as exc:  # sqlite3 cannot bind an int beyond 64 bits
        raise ValueOutOfRange("a value is out of range") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"database error: {exc}") from exc
