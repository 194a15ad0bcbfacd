"""The producer path of the SQLite store: enqueue, group commit, inserts (ADR 0019, 0027, 0032).

Concurrent enqueues from one process share one ``BEGIN IMMEDIATE ... COMMIT``, so one
fsync (``store/groupcommit.py`` gathers them, ``_commit_group`` writes them); jobs without
idempotency keys go in multi-row inserts. Separate from ``store.py`` because it is one
concern of its own, the way jobs get in, with its own tuning, and it keeps that module short.
A mixin of ``SQLiteStore``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from treadle.core.clock import Clock
from treadle.core.errors import StoreUnavailable
from treadle.core.job import Enqueued, NewJob
from treadle.store.groupcommit import GroupCommitter, Guard, Result, Submission, unwrap
from treadle.store.queries import load_queries
from treadle.store.rows import SQLITE_CODEC, epoch_to_dt, job_from_row
from treadle.store.rows import dt_to_epoch as _ts
from treadle.store.sqlite.errors import translated
from treadle.store.transaction import StoreTransaction

Q = load_queries("treadle.store.sqlite")


# Rows per multi-row insert: 21 parameters each, well under SQLite's 999 of old builds,
# and at most this many statement texts (one per row count) in a connection's cache.
_ROWS_PER_INSERT = 32
_ONE_ROW = "(" + ", ".join(["?"] * 21) + ")"
_INSERT_ROWS: dict[int, str] = {}


def _insert_rows_sql(rows: int) -> str:
    """``insert_job`` for ``rows`` rows (its parameters repeated, in order)."""
    sql = _INSERT_ROWS.get(rows)
    if sql is None:
        one = Q["insert_job"]
        assert one.count(_ONE_ROW) == 1, "insert_job's VALUES changed"
        sql = _INSERT_ROWS[rows] = one.replace(_ONE_ROW, ", ".join([_ONE_ROW] * rows))
    return sql


class ProduceOps:
    clock: Clock
    _local: threading.local
    _committer: GroupCommitter
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _notify: Callable[[], None]

    def enqueue(self, jobs: Sequence[NewJob], *, guard: Guard | None = None) -> list[Enqueued]:
        """Insert ``jobs`` (all or none), coalesced with concurrent callers (ADR 0019)."""
        if not jobs:
            return []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.in_transaction:
            # Inside this thread's own open transaction: SQLite refuses a nested BEGIN at
            # once (as before); the committer would wait for a lock this thread holds.
            return unwrap(self._commit_group([Submission(jobs, guard)])[0])
        return self._committer.enqueue(jobs, guard)

    def submit(self, jobs: Sequence[NewJob], *,
               guard: Guard | None = None) -> Future[list[Enqueued]]:
        """Non-blocking :meth:`enqueue`: the future resolves once the jobs are durable."""
        return self._committer.submit(jobs, guard)

    def _commit_group(self, batch: Sequence[Submission]) -> list[Result]:
        """One write transaction for a batch; each submission under its own savepoint,
        so one the database (or its guard) refuses is rolled back alone.

        Without guards the batch is first tried without savepoints (two statements less
        per submission, ADR 0027): a refusal then rolls back the whole transaction, and
        the batch is done again with them, so each caller still gets its own answer."""
        if len(batch) > 1 and all(sub.guard is None for sub in batch):
            try:
                with self._tx() as conn:
                    # The batch's jobs as one list (multi-row inserts, ADR 0032), then
                    # handed back per submission, in order.
                    done = iter(self._enqueue_in(conn, [nj for sub in batch for nj in sub.jobs]))
                    plain: list[Result] = [[next(done) for _ in sub.jobs] for sub in batch]
            except StoreUnavailable:
                raise  # not a refusal: the lock never came
            except Exception:  # a refusal: nothing of the batch was written
                pass
            else:
                self._notify()
                return plain
        out: list[Result] = []
        with self._tx() as conn:
            tx = self._store_tx(conn)
            if len(batch) == 1 and batch[0].guard is None:  # nothing to isolate
                out.append(self._enqueue_in(conn, batch[0].jobs))
            else:
                for sub in batch:
                    out.append(self._one_submission(conn, tx, sub))
        if any(not isinstance(r, Exception) for r in out):
            self._notify()
        return out

    def _one_submission(self, conn: sqlite3.Connection, tx: StoreTransaction,
                        sub: Submission) -> Result:
        conn.execute("SAVEPOINT treadle_submission")
        try:
            with translated():
                if sub.guard is not None:
                    sub.guard(tx)
                result: Result = self._enqueue_in(conn, sub.jobs)
        except Exception as exc:
            if not conn.in_transaction:
                raise  # SQLite dropped the whole transaction (I/O error, full disk)
            conn.execute("ROLLBACK TO treadle_submission")
            result = exc
        conn.execute("RELEASE treadle_submission")
        return result

    def _store_tx(self, conn: sqlite3.Connection) -> StoreTransaction:
        return StoreTransaction(
            lambda sql, params: list(conn.execute(sql, params).fetchall()),
            lambda jobs: self._enqueue_in(conn, jobs),
            SQLITE_CODEC,
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One ``BEGIN IMMEDIATE`` transaction for a plug-in's statements and new jobs."""
        with self._tx() as conn:
            tx = self._store_tx(conn)
            yield tx
        if tx.enqueued:
            self._notify()

    def _enqueue_in(self, conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[Enqueued]:
        at = _ts(self.clock.now())
        # Times as a read of the row gives them (epoch seconds back to datetimes): the
        # job handed back is built from its request, not read back (ADR 0027).
        created_at = epoch_to_dt(at)
        if len(jobs) > 1 and all(nj.idempotency_key is None for nj in jobs):
            return self._insert_rows(conn, jobs, at, created_at)
        out: list[Enqueued] = []
        events: list[tuple[int, float]] = []
        for nj in jobs:
            run_at = at if nj.run_at is None else _ts(nj.run_at)
            row = conn.execute(Q["insert_job"], (
                nj.tenant, nj.queue, nj.kind.value, nj.task, nj.payload_json, nj.priority,
                run_at, nj.max_attempts, nj.timeout, nj.idempotency_key, nj.concurrency_key,
                nj.parent_id, nj.callback_url, nj.concurrency_limit, nj.rate_period,
                nj.max_crashes, at, nj.traceparent, nj.rate_key, nj.rate_limit,
                nj.rate_window,
            )).fetchone()
            if row is None:  # idempotency key already used: hand back that job
                row = conn.execute(Q["job_by_idempotency_key"], {
                    "tenant": nj.tenant, "idempotency_key": nj.idempotency_key}).fetchone()
                out.append(Enqueued(job_from_row(row, SQLITE_CODEC), created=False))
                continue
            events.append((row[0], at))
            out.append(Enqueued.new(
                nj, row[0], created_at, None if nj.run_at is None else epoch_to_dt(run_at)))
        if events:
            conn.executemany(Q["insert_enqueued_events"], events)
        return out

    def _insert_rows(self, conn: sqlite3.Connection, jobs: Sequence[NewJob], at: float,
                     created_at: datetime) -> list[Enqueued]:
        """Jobs without idempotency keys (none can be refused as a duplicate), up to
        ``_ROWS_PER_INSERT`` per statement: a statement per job cost ~10 µs of CPU more
        per job, each releasing and retaking the GIL (ADR 0032). A multi-row insert
        numbers its rows in order (each id one above the largest before), so its ids,
        sorted, pair with the requests in order."""
        ids: list[int] = []
        for start in range(0, len(jobs), _ROWS_PER_INSERT):
            chunk = jobs[start:start + _ROWS_PER_INSERT]
            params: list[Any] = []
            for nj in chunk:
                params += (
                    nj.tenant, nj.queue, nj.kind.value, nj.task, nj.payload_json,
                    nj.priority, at if nj.run_at is None else _ts(nj.run_at),
                    nj.max_attempts, nj.timeout, None, nj.concurrency_key, nj.parent_id,
                    nj.callback_url, nj.concurrency_limit, nj.rate_period, nj.max_crashes,
                    at, nj.traceparent, nj.rate_key, nj.rate_limit, nj.rate_window)
            got = sorted(row[0] for row in conn.execute(_insert_rows_sql(len(chunk)), params))
            if len(got) != len(chunk):  # never guess which job is which
                raise RuntimeError(f"inserted {len(got)} of {len(chunk)} jobs")
            ids += got
        conn.executemany(Q["insert_enqueued_events"], [(job_id, at) for job_id in ids])
        return [Enqueued.new(nj, job_id, created_at,
                             None if nj.run_at is None else epoch_to_dt(_ts(nj.run_at)))
                for nj, job_id in zip(jobs, ids, strict=True)]


__all__ = ["ProduceOps"]
