"""The workflow plug-in's SQL, over the store's connections (ADR 0009).

Named queries live in ``sql/<backend>/queries.sql`` (run through
:class:`~treadle.store.extension.ExtensionSql`); ``transaction()`` is the store's
:meth:`~treadle.store.Store.transaction`, so a checkpoint and the child jobs it creates
commit together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from treadle.core.job import Job, NewJob
from treadle.store import Store
from treadle.store.base import Transaction
from treadle.store.extension import ExtensionSql
from treadle.store.rows import Codec

SQL_PACKAGE = "treadle.workflows.sql"
Rows = list[Mapping[str, Any]]


class Tx:
    """One open write transaction."""

    def __init__(self, db: WorkflowDb, run: Callable[[str, Mapping[str, Any]], Rows],
                 enqueue: Callable[[Sequence[NewJob]], list[Job]],
                 store_tx: Transaction) -> None:
        self.db = db
        self.run = run
        self.enqueue = enqueue
        self.store_tx = store_tx  # the store's transaction, for others' statements

    def op(self, name: str, params: Mapping[str, Any]) -> Rows:
        """A named operation (see :meth:`WorkflowDb.op`) inside this transaction."""
        rows = self.run(name, params)
        n = 2
        while rows and f"{name}__{n}" in self.db.q:
            self.run(f"{name}__{n}", params)
            n += 1
        return rows


class WorkflowDb:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sql = ExtensionSql.of_package(store, SQL_PACKAGE)
        self.codec: Codec = self.sql.codec
        self.q = self.sql.queries

    def now(self) -> datetime:
        return self.sql.now()

    def ts_in(self, value: datetime | None) -> Any:
        return None if value is None else self.codec.ts_in(value)

    def json_out(self, value: Any) -> Any:
        return self.codec.opt_json(value)

    def read(self, name: str, params: Mapping[str, Any]) -> Rows:
        return self.sql.run(name, params)

    def write(self, name: str, params: Mapping[str, Any]) -> Rows:
        """One statement in its own transaction (PostgreSQL: a single round trip)."""
        return self.sql.run(name, params, write=True)

    def op(self, name: str, params: Mapping[str, Any]) -> Rows:
        """Run named operation ``name``: one statement on its own, or, when the backend's
        file splits it (``name__2``, ...: SQLite cannot write two tables in one
        statement), all of them in one transaction, the later ones only if the first
        matched a row. Returns the first statement's rows."""
        if f"{name}__2" not in self.q:
            return self.write(name, params)
        with self.transaction() as tx:
            return tx.op(name, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.store.transaction() as stx:

            def run(name: str, params: Mapping[str, Any]) -> Rows:
                return stx.execute(self.q[name], params)

            def enqueue(jobs: Sequence[NewJob]) -> list[Job]:
                return [e.job for e in stx.enqueue(jobs)]

            yield Tx(self, run, enqueue, stx)
