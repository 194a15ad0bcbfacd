"""Tables owned by extensions (API keys, dynamic workers), over a store's connections.

An extension keeps its own named queries in ``<name>_queries.sql`` beside each
backend's ``queries.sql`` and runs them through :meth:`execute` on the store,
instead of growing the :class:`~treadle.store.Store` protocol or reaching into a
backend's private connections. Values cross the seam through the backend's codec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, LiteralString, Protocol

from treadle.core.errors import ConfigurationError
from treadle.store.base import Store
from treadle.store.queries import load_queries
from treadle.store.rows import Codec


class SqlBackend(Protocol):
    """What the SQL stores offer extensions (both built-in backends implement it)."""

    backend: str  # "sqlite" or "postgres": which named-query files apply
    codec: Codec

    def execute(
        self, sql: LiteralString, params: Mapping[str, Any], *, write: bool
    ) -> list[Mapping[str, Any]]: ...


class ExtensionSql:
    """Runs one extension's named queries on ``store``; encodes values for its backend."""

    def __init__(self, store: Store, filename: str) -> None:
        backend = getattr(store, "backend", None)
        if backend not in ("sqlite", "postgres") or not hasattr(store, "execute"):
            raise ConfigurationError(f"{type(store).__name__} does not run extension SQL")
        self._store: SqlBackend = store  # type: ignore[assignment]
        self.backend: str = backend
        self.queries = load_queries(f"treadle.store.{backend}", filename)

    def run(
        self, name: str, params: Mapping[str, Any], *, write: bool = False
    ) -> list[Mapping[str, Any]]:
        """Run query ``name``; ``write=True`` runs it in its own write transaction."""
        return self._store.execute(self.queries[name], params, write=write)

    def now(self) -> datetime:
        clock = getattr(self._store, "clock", None)
        return clock.now() if clock is not None else datetime.now(UTC)

    def ts_in(self, value: datetime) -> Any:
        return value.timestamp() if self.backend == "sqlite" else value

    def ts_out(self, value: Any) -> datetime | None:
        return self._store.codec.opt_ts(value)

    def json_in(self, value: Any) -> Any:
        if self.backend == "sqlite":
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def json_out(self, value: Any) -> Any:
        return self._store.codec.opt_json(value)
