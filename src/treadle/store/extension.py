"""Tables owned by extensions (API keys, job-kind plug-ins), over a store's connections.

An extension keeps its own named queries in a ``queries.sql`` per backend and runs them
through the store's :meth:`execute` (one statement, its own transaction) or inside a
:meth:`~treadle.store.Store.transaction` (with other statements and new jobs), instead of
growing the :class:`~treadle.store.Store` protocol or reaching into a backend's private
connections. Values cross the seam through the backend's codec, so nothing here asks
which backend it is on beyond picking the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, LiteralString, Protocol

from treadle.core.errors import ConfigurationError
from treadle.store.base import Store, Transaction
from treadle.store.queries import load_queries
from treadle.store.rows import Codec


class SqlBackend(Protocol):
    """What the SQL stores offer extensions (both built-in backends implement it)."""

    backend: str  # "sqlite" or "postgres": which named-query files apply
    codec: Codec

    def execute(
        self, sql: LiteralString, params: Mapping[str, Any], *, write: bool
    ) -> list[Mapping[str, Any]]: ...


def _sql_backend(store: Store) -> SqlBackend:
    backend = getattr(store, "backend", None)
    if backend not in ("sqlite", "postgres") or not hasattr(store, "execute"):
        raise ConfigurationError(f"{type(store).__name__} does not run extension SQL")
    return store  # type: ignore[return-value]


class ExtensionSql:
    """Runs one extension's named queries on ``store``; encodes values for its backend.

    ``ExtensionSql.of_package(store, "treadle.dynamic.sql")`` reads
    ``<package>/<backend>/queries.sql`` (a job-kind plug-in's layout);
    ``ExtensionSql(store, "api_queries.sql")`` reads a file beside the store's own.
    """

    def __init__(self, store: Store, filename: str, *, package: str | None = None) -> None:
        self._store = _sql_backend(store)
        self.backend: str = self._store.backend
        if package is None:
            self.queries = load_queries(f"treadle.store.{self.backend}", filename)
        else:
            self.queries = load_queries(f"{package}.{self.backend}", filename)

    @classmethod
    def of_package(cls, store: Store, package: str) -> ExtensionSql:
        return cls(store, "queries.sql", package=package)

    @property
    def codec(self) -> Codec:
        return self._store.codec

    def run(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        write: bool = False,
        tx: Transaction | None = None,
    ) -> list[Mapping[str, Any]]:
        """Run query ``name``: inside ``tx`` when given, else on its own (``write=True``
        runs it in its own write transaction)."""
        if tx is not None:
            return tx.execute(self.queries[name], params)
        return self._store.execute(self.queries[name], params, write=write)

    def now(self) -> datetime:
        clock = getattr(self._store, "clock", None)
        return clock.now() if clock is not None else datetime.now(UTC)

    def ts_in(self, value: datetime) -> Any:
        return self.codec.ts_in(value)

    def ts_out(self, value: Any) -> datetime | None:
        return self.codec.opt_ts(value)

    def json_in(self, value: Any) -> Any:
        return self.codec.json_in(value)

    def json_out(self, value: Any) -> Any:
        return self.codec.opt_json(value)
