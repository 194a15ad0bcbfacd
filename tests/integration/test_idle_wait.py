"""An idle worker's wait for work (ADR 0029) ends when work may exist, not on every
commit (SQLite) or every poll (PostgreSQL); new work still ends it at once.

Statements are counted on the real stores (``bench/statement_count.py``); the tests
wait for the wait's own check to have run (a count), never for time to pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import cast

import psycopg
import pytest

from bench.statement_count import StatementCount, counting_statements
from tests.support.waiting import Waiter, until
from treadle.core.job import NewJob
from treadle.store import open_store
from treadle.store.postgres.store import PostgresStore
from treadle.testing import ManualClock, migrated


def _seen(count: StatementCount, head: str) -> int:
    return sum(n for label, n in count.snapshot().items() if label.startswith(head))


# The SQLite wait's look for queued or running work (query work_exists), by its first words.
WORK_EXISTS = "SELECT EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'q"


@pytest.fixture
def counted() -> Iterator[StatementCount]:
    with counting_statements() as count:
        yield count


def test_a_commit_that_leaves_no_work_does_not_end_an_idle_sqlite_wait(
    sqlite_url: str, counted: StatementCount
) -> None:
    url = migrated(sqlite_url)
    waiting, other = open_store(url), open_store(url)
    try:
        waiter = Waiter(waiting, timeout=30.0)
        waiter.start()
        checks = _seen(counted, WORK_EXISTS)
        # Another worker's heartbeats: commits, but no job queued or running (beaten
        # until the wait has looked: the waiter may take its mark after the first).
        def beaten_and_looked() -> bool:
            other.heartbeat(worker="peer", leases=[], lease_seconds=30)
            return _seen(counted, WORK_EXISTS) > checks

        until(beaten_and_looked, "the wait's look after a commit")
        assert waiter.is_alive()  # it looked, found nothing to do, and waits on
        other.enqueue([NewJob(task="t")])
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
    finally:
        waiting.close()
        other.close()


def test_a_commit_that_leaves_a_job_running_ends_an_idle_sqlite_wait(
    sqlite_url: str, counted: StatementCount
) -> None:
    url = migrated(sqlite_url)
    waiting, other = open_store(url), open_store(url)
    try:
        other.enqueue([NewJob(task="t")])
        assert other.claim(queues=None, worker="peer", limit=1, lease_seconds=30)
        waiter = Waiter(waiting, timeout=30.0)
        waiter.start()
        # A peer's job runs: its heartbeat ends the wait (the worker then watches for
        # the peer's death, ADR 0025). Beaten until then: the waiter may take its mark
        # after the first.
        def beaten_and_ended() -> bool:
            other.heartbeat(worker="peer", leases=[], lease_seconds=30)
            return not waiter.is_alive()

        until(beaten_and_ended, "the wait's end after a commit")
        assert waiter.result is True
    finally:
        waiting.close()
        other.close()


# The statement's first words (the count keeps a statement's first 70 characters).
ANY_QUEUED = "SELECT EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'queued')"


def _server_now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return cast(datetime, row[0])


def _look_answered(url: str, since: datetime) -> bool:
    """Whether a backend of this database finished the wait's look after ``since``."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle' AND state_change > %s AND query LIKE %s",
            (since, "%" + ANY_QUEUED + "%")).fetchone()
    return bool(row and row[0])


def test_an_idle_postgres_wait_with_nothing_queued_lasts_until_a_notification(
    pg_url: str, counted: StatementCount
) -> None:
    waiting, other = open_store(pg_url), open_store(pg_url)
    try:
        # The listener's start wakes a first wait (it may have missed notifications
        # while connecting): wait again until one looks and stays.
        for _ in range(20):
            before = _seen(counted, ANY_QUEUED)
            since = _server_now(pg_url)
            waiter = Waiter(waiting, timeout=0.05)  # the poll runs out almost at once
            waiter.start()

            def looked(w: Waiter = waiter, n: int = before) -> bool:
                return not w.is_alive() or _seen(counted, ANY_QUEUED) > n

            until(looked, "the wait's look once its poll ran out")
            # Counted as sent; enqueue only once the server has answered it, or the look
            # may see the job below and (rightly) end the wait with "look again".
            def answered(w: Waiter = waiter, t: datetime = since) -> bool:
                return not w.is_alive() or _look_answered(pg_url, t)

            until(answered, "the server's answer to the wait's look")
            if waiter.is_alive():
                break
        assert waiter.is_alive()  # nothing queued: it waits for a notification
        other.enqueue([NewJob(task="t")])
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
    finally:
        waiting.close()
        other.close()


def test_an_idle_postgres_wait_keeps_its_poll_while_a_job_is_queued(pg_url: str) -> None:
    clock = ManualClock()
    waiting = open_store(pg_url, clock=clock)
    try:
        # Queued but not yet due (a retry's back-off): only time makes it claimable, and
        # no notification says when, so the poll stays (after the wake-ups of the
        # listener's start and of the enqueue itself).
        waiting.enqueue([NewJob(task="t", run_at=clock.now() + timedelta(hours=1))])
        t0 = time.monotonic()
        results = [waiting.wait_for_work(0.05) for _ in range(3)]
        assert results[-1] is False
        assert time.monotonic() - t0 < 5  # not the idle cap's 16 s
    finally:
        waiting.close()


def test_while_work_flows_a_sqlite_wait_ends_on_any_commit_without_looking_first(
    sqlite_url: str, counted: StatementCount
) -> None:
    # A store whose last claim found jobs (ADR 0030) claims again at the next commit at
    # once: the look for queued or running work would only delay the next job's pickup.
    url = migrated(sqlite_url)
    waiting, other = open_store(url), open_store(url)
    try:
        waiting.enqueue([NewJob(task="t")])
        assert len(waiting.claim(queues=None, worker="w", limit=1, lease_seconds=30)) == 1
        looks = _seen(counted, WORK_EXISTS)
        waiter = Waiter(waiting, timeout=30.0)
        waiter.start()

        def beaten_and_ended() -> bool:
            other.heartbeat(worker="peer", leases=[], lease_seconds=30)
            return not waiter.is_alive()

        until(beaten_and_ended, "the busy wait ending on a commit")
        assert waiter.result is True
        assert _seen(counted, WORK_EXISTS) == looks
    finally:
        waiting.close()
        other.close()


def test_an_interrupt_before_the_wait_ends_the_next_idle_wait_at_once(db_url: str) -> None:
    """A worker told to stop just before it waits (stop() interrupts the store between
    its last look at the stop flag and its wait) does not sleep a whole idle wait."""
    store = open_store(db_url)
    try:
        if isinstance(store, PostgresStore):
            # A wait that connects its claim connection reports a wake-up (ADR 0031): a
            # first claim connects it (and listens) instead, so only the interrupt can
            # end the waits below early.
            assert store.claim(queues=None, worker="w", limit=1, lease_seconds=30) == []
        store.interrupt()
        t0 = time.monotonic()
        assert store.wait_for_work(0.05) is True  # nothing queued: would wait ~16 s
        assert time.monotonic() - t0 < 5
        # Consumed: the wait after it is an ordinary idle wait again (ends by timeout
        # poll and then by the job enqueued here).
        waiter = Waiter(store, timeout=0.05)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()
        store.enqueue([NewJob(task="t")])
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
    finally:
        store.close()
