"""The workflow package's SQL, over the store's connections (ADR 0007).

Named queries live in ``sql/<backend>/queries.sql``. ``transaction()`` groups a
checkpoint with the child jobs it creates, so both commit or neither does.

TEMPORARY: until the job-kind seam (Store.transaction, ExtensionSql.of_package) is on
main, this reaches into the two stores' private transaction helpers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from treadle.core.errors import ConfigurationError
from treadle.core.job import Job, NewJob
from treadle.store import Store
from treadle.store.queries import load_queries
from treadle.store.rows import Codec, dumps, job_from_row

Rows = list[Mapping[str, Any]]


class Tx:
    """One open write transaction."""

    def __init__(self, db: WorkflowDb, run: Callable[[str, Mapping[str, Any]], Rows],
                 enqueue: Callable[[Sequence[NewJob]], list[Job]]) -> None:
        self.db = db
        self.run = run
        self.enqueue = enqueue

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
        backend = getattr(store, "backend", None)
        if backend not in ("sqlite", "postgres"):
            raise ConfigurationError(f"workflows need a SQL store, not {type(store).__name__}")
        self.store = store
        self.backend: str = backend
        self.codec: Codec = store.codec  # type: ignore[attr-defined]
        self.q = load_queries(f"treadle.workflows.sql.{backend}")

    def now(self) -> datetime:
        return self.store.clock.now()  # type: ignore[attr-defined,no-any-return]

    def ts_in(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.timestamp() if self.backend == "sqlite" else value

    def read(self, name: str, params: Mapping[str, Any]) -> Rows:
        return self.store.execute(self.q[name], params, write=False)  # type: ignore[attr-defined,no-any-return]

    def write(self, name: str, params: Mapping[str, Any]) -> Rows:
        """One statement in its own transaction (PostgreSQL: a single round trip)."""
        return self.store.execute(self.q[name], params, write=True)  # type: ignore[attr-defined,no-any-return]

    def op(self, name: str, params: Mapping[str, Any]) -> Rows:
        """Run named operation ``name``: one statement on its own, or, when the backend's
        file splits it (``name__2``, ...), all of them in one transaction, the later ones
        only if the first matched a row. Returns the first statement's rows."""
        if f"{name}__2" not in self.q:
            return self.write(name, params)
        with self.transaction() as tx:
            return tx.op(name, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        if self.backend == "sqlite":
            yield from self._sqlite_tx()
        else:
            yield from self._postgres_tx()

    def _sqlite_tx(self) -> Iterator[Tx]:
        from treadle.store.sqlite.store import Q as CORE
        from treadle.store.sqlite.store import SQLiteStore

        store = self.store
        assert isinstance(store, SQLiteStore)
        with store._tx() as conn:  # temporary, see module docstring

            def run(name: str, params: Mapping[str, Any]) -> Rows:
                return list(conn.execute(self.q[name], params).fetchall())

            def enqueue(jobs: Sequence[NewJob]) -> list[Job]:
                now = store.clock.now()
                out = []
                for nj in jobs:
                    params = _job_params(nj, now.timestamp(), dumps(nj.payload))
                    row = conn.execute(CORE["insert_job"], params).fetchone()
                    if row is None:
                        row = conn.execute(CORE["job_by_idempotency_key"], params).fetchone()
                    else:
                        conn.execute(CORE["insert_event"], {
                            "job_id": row["id"], "from_status": None, "to_status": "queued",
                            "attempt": 0, "worker": None, "reason": "enqueued",
                            "at": now.timestamp(), "detail": None})
                    out.append(job_from_row(row, self.codec))
                return out

            tx = Tx(self, run, enqueue)
            yield tx
        store._notify()  # temporary, see module docstring

    def _postgres_tx(self) -> Iterator[Tx]:
        from psycopg.types.json import Jsonb

        from treadle.store.postgres.store import PostgresStore, _match_inserted
        from treadle.store.postgres.store import Q as CORE

        store = self.store
        assert isinstance(store, PostgresStore)
        with store._cursor(tx=True) as cur:  # temporary, see module docstring

            def run(name: str, params: Mapping[str, Any]) -> Rows:
                cur.execute(self.q[name], params)
                return list(cur.fetchall()) if cur.description else []

            def enqueue(jobs: Sequence[NewJob]) -> list[Job]:
                now = store.clock.now()
                rows = [_job_params(nj, now, Jsonb(nj.payload)) for nj in jobs]
                cols = {k: [r[k] for r in rows] for k in rows[0] if k != "created_at"}
                cur.execute(CORE["insert_jobs"], {**cols, "now": now})
                inserted = [job_from_row(r, self.codec) for r in cur.fetchall()]
                cur.execute(CORE["jobs_by_idempotency_keys"], {
                    "tenant": [nj.tenant for nj in jobs],
                    "idempotency_key": [nj.idempotency_key for nj in jobs]})
                existing = {}
                for r in cur.fetchall():
                    job = job_from_row(r, self.codec)
                    existing[(job.tenant, job.idempotency_key or "")] = job
                return [e.job for e in _match_inserted(jobs, inserted, existing)]

            yield Tx(self, run, enqueue)

    def json_out(self, value: Any) -> Any:
        return self.codec.opt_json(value)

    def json_text(self, value: Any) -> Any:
        """A JSON column value as text (for results passed on without decoding)."""
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)


def _job_params(nj: NewJob, now: Any, payload: Any) -> dict[str, Any]:
    run_at = nj.run_at.timestamp() if (nj.run_at and not isinstance(now, datetime)) else nj.run_at
    return {
        "tenant": nj.tenant, "queue": nj.queue, "kind": nj.kind.value, "task": nj.task,
        "payload": payload, "priority": nj.priority, "run_at": run_at or now,
        "max_attempts": nj.max_attempts, "timeout": nj.timeout,
        "idempotency_key": nj.idempotency_key, "concurrency_key": nj.concurrency_key,
        "parent_id": nj.parent_id, "callback_url": nj.callback_url, "created_at": now,
    }
