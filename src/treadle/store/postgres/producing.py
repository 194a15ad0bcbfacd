"""How a PostgreSQL store takes new jobs: group-committed batches (ADR 0019), one
statement when nothing needs a transaction (ADRs 0027, 0032), guards under savepoints,
and plug-ins' own transactions.

A mixin of ``PostgresStore``, kept apart so the producer's path reads on its own.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from treadle.core.clock import Clock
from treadle.core.errors import StoreError, ValueOutOfRange
from treadle.core.job import Enqueued, Job, NewJob
from treadle.store.groupcommit import GroupCommitter, Guard, Result, Submission
from treadle.store.postgres.errors import translate, translated
from treadle.store.postgres.inserts import job_document, match_inserted
from treadle.store.postgres.plaininsert import (
    INSERT_HANDOFF,
    INSERT_JOBS,
    insert_plain,
    libpq_text,
)
from treadle.store.postgres.retry import Reconnect, is_connection_lost
from treadle.store.queries import load_queries
from treadle.store.rows import Codec, job_from_row
from treadle.store.transaction import StoreTransaction

T = TypeVar("T")
Q = load_queries("treadle.store.postgres")
Cursor = psycopg.Cursor[dict[str, Any]]
_INSERT_JOBS_LIBPQ = libpq_text(Q["insert_jobs"])  # see plaininsert.py
_INSERT_HANDOFF_LIBPQ = libpq_text(Q["insert_job_handoff"])  # one job (ADR 0034)
# How long a producer that found no worker parked sends lone jobs with the plain insert:
# a worker parking meanwhile waits at most this long for its first hand-off, and takes
# those jobs by an ordinary claim until then.
NO_PARKED_SECONDS = 1.0


class ProduceOps:
    _no_parked_until: float  # monotonic; see NO_PARKED_SECONDS
    clock: Clock
    codec: Codec
    _committer: GroupCommitter
    _pool: psycopg_pool.ConnectionPool[Any]
    _reconnect: Reconnect
    _cursor: Callable[..., AbstractContextManager[Cursor]]

    if TYPE_CHECKING:  # PostgresStore's
        def _retrying(self, what: str, op: Callable[[Cursor], T], *, tx: bool,
                      idempotent: bool) -> T: ...

    def enqueue(self, jobs: Sequence[NewJob], *, guard: Guard | None = None) -> list[Enqueued]:
        """Insert ``jobs`` (all or none), coalesced with concurrent callers (ADR 0019)."""
        if not jobs:
            return []
        return self._committer.enqueue(jobs, guard)

    def submit(self, jobs: Sequence[NewJob], *,
               guard: Guard | None = None) -> Future[list[Enqueued]]:
        """Non-blocking :meth:`enqueue`: the future resolves once the jobs are durable."""
        return self._committer.submit(jobs, guard)

    def _commit_group(self, batch: Sequence[Submission]) -> list[Result]:
        """A batch of submissions in one statement (or one transaction with guards).

        When the server refuses the combined statement (one submission's bad parent, say),
        nothing of it was written; each submission is then sent on its own, so each
        caller gets its own answer and only the bad one fails."""
        try:
            return self._commit_once(batch)
        except (StoreError, ValueOutOfRange):  # refused, not lost (StoreUnavailable)
            if len(batch) == 1:
                raise
        out: list[Result] = []
        for sub in batch:
            try:
                out.append(self._commit_once([sub])[0])
            except Exception as exc:
                out.append(exc)
        return out

    def _commit_once(self, batch: Sequence[Submission]) -> list[Result]:
        jobs = [nj for sub in batch for nj in sub.jobs]
        keyed = sum(nj.idempotency_key is not None for nj in jobs)
        # Read the clock before borrowing: its periodic re-sync borrows a connection of its
        # own, and taken inside the borrow, producers holding every pool connection waited
        # on each other until the pool timed out (16 threads on 4 connections stalled).
        now = self.clock.now()
        # Without idempotency keys or guards the insert (with its events and wake-up) is
        # one atomic statement: one round trip. Keys need a second look in the same
        # transaction. Only a batch whose every job has a key may be re-sent after a lost
        # connection: the keys turn a repeat into a lookup (ADR 0007).
        if not any(sub.guard is not None for sub in batch):
            # Through libpq, not a cursor, in autocommit (ADR 0032).
            with translated():
                flat = self._reconnect.on_connection(
                    self._pool, "enqueue", lambda conn: self._insert_plain(conn, jobs, now),
                    idempotent=keyed == len(jobs))
            return _split(batch, flat, [None] * len(batch))
        return self._retrying("enqueue", lambda cur: self._guarded(cur, batch, now),
                              tx=True, idempotent=keyed == len(jobs))

    def _guarded(self, cur: Cursor, batch: Sequence[Submission], now: datetime) -> list[Result]:
        """Each guard under its own savepoint (a refusal rolls back only its own
        statements), then one insert for the submissions that passed."""

        def execute(sql: LiteralString, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        tx = StoreTransaction(execute, lambda jobs: self._enqueue_in(cur, jobs), self.codec)
        refused: list[Exception | None] = [None] * len(batch)
        for i, sub in enumerate(batch):
            if sub.guard is None:
                continue
            cur.execute("SAVEPOINT treadle_submission")
            try:
                sub.guard(tx)
            except Exception as exc:
                if is_connection_lost(exc):
                    raise  # the whole transaction is gone: the retry layer decides
                cur.execute("ROLLBACK TO SAVEPOINT treadle_submission")
                refused[i] = translate(exc)
            cur.execute("RELEASE SAVEPOINT treadle_submission")
        live = [sub for sub, r in zip(batch, refused, strict=True) if r is None]
        flat = self._enqueue_in(cur, [nj for sub in live for nj in sub.jobs], now)
        return _split(batch, flat, refused)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One transaction for a plug-in's statements and new jobs (notifications of new
        work are delivered by PostgreSQL at commit)."""

        def execute(sql: LiteralString, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        with self._cursor(tx=True) as cur:
            yield StoreTransaction(execute, lambda jobs: self._enqueue_in(cur, jobs),
                                   self.codec)

    def _enqueue_in(
        self, cur: Cursor, jobs: Sequence[NewJob], now: datetime | None = None
    ) -> list[Enqueued]:
        if not jobs:
            return []
        now = now or self.clock.now()
        cur.execute(Q["insert_jobs"], {"jobs": job_document(jobs), "now": now})
        inserted = cur.fetchall()
        existing: dict[tuple[str, str], Job] = {}
        keyed = [nj for nj in jobs if nj.idempotency_key is not None]
        if keyed:
            cur.execute(
                Q["jobs_by_idempotency_keys"],
                {"tenant": [nj.tenant for nj in keyed],
                 "idempotency_key": [nj.idempotency_key for nj in keyed]},
            )
            for r in cur.fetchall():
                job = job_from_row(r, self.codec)
                existing[(job.tenant, job.idempotency_key or "")] = job
        return match_inserted(jobs, inserted, existing, now, cur.connection.info.timezone)

    def _insert_plain(self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob],
                      now: datetime) -> list[Enqueued]:
        """Jobs without guards, in autocommit: one statement, and a second only for the
        idempotency keys it did not insert (or that the batch repeats), whose jobs are
        read. No transaction is needed around the two: a key the insert skipped belongs
        to a committed row (``ON CONFLICT`` waits for a concurrent inserter's outcome),
        and at read committed the transaction's second statement saw no more than this
        one does. Keyed jobs paid BEGIN, insert, read and COMMIT before: four round trips
        for one (ADR 0032)."""
        # A lone job may go straight to a parked worker (ADR 0034), unless the last look
        # found none that could take one: then the cheaper plain insert, for a while.
        if len(jobs) == 1 and self.clock.monotonic() >= self._no_parked_until:
            inserted = insert_plain(conn, _INSERT_HANDOFF_LIBPQ, job_document(jobs), now,
                                    INSERT_HANDOFF)
            if inserted and not inserted[0]["parked"]:
                self._no_parked_until = self.clock.monotonic() + NO_PARKED_SECONDS
        else:
            inserted = insert_plain(conn, _INSERT_JOBS_LIBPQ, job_document(jobs), now,
                                    INSERT_JOBS)
        existing: dict[tuple[str, str], Job] = {}
        keyed = [(nj.tenant, nj.idempotency_key) for nj in jobs
                 if nj.idempotency_key is not None]
        if keyed:
            keys = Counter(keyed)
            got = {(r["tenant"], r["idempotency_key"]) for r in inserted}
            wanted = [k for k, n in keys.items() if n > 1 or k not in got]
            if wanted:
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(Q["jobs_by_idempotency_keys"],
                                {"tenant": [t for t, _ in wanted],
                                 "idempotency_key": [k for _, k in wanted]})
                    for r in cur.fetchall():
                        job = job_from_row(r, self.codec)
                        existing[(job.tenant, job.idempotency_key or "")] = job
        return match_inserted(jobs, inserted, existing, now, conn.info.timezone)


def _split(
    batch: Sequence[Submission], flat: list[Enqueued], refused: list[Exception | None]
) -> list[Result]:
    """Hand each submission its slice of ``flat`` (the jobs of those not refused, in
    order), or its refusal."""
    out: list[Result] = []
    at = 0
    for sub, refusal in zip(batch, refused, strict=True):
        if refusal is not None:
            out.append(refusal)
            continue
        out.append(flat[at:at + len(sub.jobs)])
        at += len(sub.jobs)
    return out
