"""Connection settings shared by the pool and the listener."""

from __future__ import annotations

from typing import Any

import psycopg

from treadle.core.errors import ConfigurationError, StoreUnavailable


def connect_kwargs() -> dict[str, Any]:
    # A dead server must fail fast so the worker can retry, not hang for minutes;
    # keepalives find a half-open connection after a network partition.
    return {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


def check_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(f"not a PostgreSQL URL (expected postgresql://...): {url!r}")
    return url


def probe(url: str) -> None:
    """Connect once, without the pool's retries: the server's own reason if it fails."""
    try:
        psycopg.connect(check_url(url), connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {reason}") from None
