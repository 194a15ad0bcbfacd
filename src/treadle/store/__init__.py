"""Stores: where jobs live. ``open_store(url)`` picks the backend from the URL."""

from __future__ import annotations

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ConfigurationError, MissingExtra
from treadle.store.base import (
    Enqueued,
    HeartbeatResult,
    JobFilter,
    Outcome,
    OutcomeKind,
    ReapResult,
    Store,
    WorkerInfo,
)

__all__ = [
    "Enqueued",
    "HeartbeatResult",
    "JobFilter",
    "Outcome",
    "OutcomeKind",
    "ReapResult",
    "Store",
    "WorkerInfo",
    "open_store",
    "probe",
]


def probe(url: str) -> None:
    """Raise ``StoreUnavailable`` (with the server's reason) if a server database cannot be
    reached now; the embedded SQLite needs no probe."""
    if not url.startswith(("postgresql://", "postgres://")):
        return
    try:
        from treadle.store.postgres.connect import probe as probe_postgres
    except ImportError:
        return  # open_store names the missing extra
    probe_postgres(url)


def open_store(url: str, *, clock: Clock = SYSTEM_CLOCK) -> Store:
    """``sqlite:///path.db`` (embedded default) or ``postgresql://...``."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError("a database URL is required, e.g. sqlite:///treadle.db")
    if not url.isprintable():
        # NUL, control characters or a lone surrogate: no driver can open it (they raise
        # ValueError or UnicodeEncodeError, or PostgreSQL retries for its whole timeout).
        raise ConfigurationError("the database URL must be printable text (no NUL, control "
                                 "characters or lone surrogates)")
    if url.startswith("sqlite:"):
        from treadle.store.sqlite.store import SQLiteStore

        return SQLiteStore(url, clock=clock)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from treadle.store.postgres.store import PostgresStore
        except ImportError as exc:
            raise MissingExtra("postgres", "psycopg") from exc
        return PostgresStore(url, clock=clock)
    scheme = url.split(":", 1)[0]
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path.db or postgresql://..."
    )
