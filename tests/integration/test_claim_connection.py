"""A PostgreSQL worker waits for work on a connection of its own and claims on it
(ADR 0031): the backend that forwarded the notification runs the claim. The notification
stays a hint: a lost connection ends the wait (reconnected, a wake-up) and a second thread
still claims and waits, on the pool and the shared listener.
"""

from __future__ import annotations

import time

import psycopg

from bench.statement_count import counting_statements
from tests.support.waiting import Waiter, until
from treadle.core.job import NewJob
from treadle.store import Store, open_store
from treadle.store.postgres.claimconn import APPLICATION_NAME
from treadle.store.postgres.store import PostgresStore


def _claim_backends(url: str) -> list[tuple[int, str]]:
    """The claim connections' backends of this database, with their last statement."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s", (APPLICATION_NAME,)).fetchall()
    return [(r[0], r[1]) for r in rows]


def _settled(store: Store) -> None:
    """A first claim: it opens the claim connection (and listens) before it looks."""
    assert store.claim(queues=None, worker="w", limit=1, lease_seconds=30) == []


def test_the_claim_runs_on_the_connection_the_wait_listens_on(pg_url: str) -> None:
    waiting, other = open_store(pg_url), open_store(pg_url)
    try:
        _settled(waiting)
        other.enqueue([NewJob(task="t")])
        assert waiting.wait_for_work(10) is True
        assert len(waiting.claim(queues=None, worker="w", limit=1, lease_seconds=30)) == 1
        [(claimer, last)] = _claim_backends(pg_url)
        assert last.startswith("WITH cand AS")  # the claim ran on the listening connection
        waiter = Waiter(waiting, timeout=30.0)
        waiter.start()
        # Ending the backend that ran the claim ends the wait: the wait was listening on
        # that very connection. It reports a wake-up (what happened meanwhile is unknown).
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (claimer,))
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
        # A new connection: work is claimed and notifications wake the wait again.
        assert waiting.claim(queues=None, worker="w", limit=1, lease_seconds=30) == []
        waiter = Waiter(waiting, timeout=30.0)
        waiter.start()
        other.enqueue([NewJob(task="t")])
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
        assert len(waiting.claim(queues=None, worker="w", limit=1, lease_seconds=30)) == 1
    finally:
        waiting.close()
        other.close()


def test_a_claim_after_the_server_closed_the_connection_reconnects(pg_url: str) -> None:
    waiting, other = open_store(pg_url), open_store(pg_url)
    try:
        _settled(waiting)
        [(claimer, _)] = _claim_backends(pg_url)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (claimer,))
        until(lambda: not _claim_backends(pg_url), "the backend gone (its goodbye sent)")
        other.enqueue([NewJob(task="t")])
        # No wait in between (a busy claim loop): the goodbye is read before the claim
        # is sent, and the claim goes out on a new connection.
        until(lambda: len(waiting.claim(queues=None, worker="w", limit=1,
                                         lease_seconds=30)) == 1, "the claim")
    finally:
        waiting.close()
        other.close()


def test_work_queued_after_a_claim_ends_the_next_wait_at_once(pg_url: str) -> None:
    waiting, other = open_store(pg_url), open_store(pg_url)
    try:
        _settled(waiting)
        assert waiting.claim(queues=None, worker="w", limit=1, lease_seconds=30) == []
        other.enqueue([NewJob(task="t")])  # before the wait starts: not a lost wake-up
        t0 = time.monotonic()
        assert waiting.wait_for_work(30) is True
        assert time.monotonic() - t0 < 10
    finally:
        waiting.close()
        other.close()


def test_an_interrupt_ends_the_wait(pg_url: str) -> None:
    waiting = open_store(pg_url)
    try:
        assert isinstance(waiting, PostgresStore)  # its claim connection is looked at
        _settled(waiting)
        waiter = Waiter(waiting, timeout=30.0)
        waiter.start()
        until(lambda: waiting._cc_use.locked(), "the wait on the claim connection")
        waiting.interrupt()
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
    finally:
        waiting.close()


def test_a_second_thread_claims_and_waits_while_the_first_waits(pg_url: str) -> None:
    store, other = open_store(pg_url), open_store(pg_url)
    try:
        assert isinstance(store, PostgresStore)  # its claim connection is looked at
        _settled(store)
        first = Waiter(store, timeout=30.0)
        first.start()
        until(lambda: store._cc_use.locked(), "the first wait on the claim connection")
        # The claim connection is taken: this thread claims on the pool and waits on the
        # shared listener, and both waits end at the next enqueue.
        assert store.claim(queues=None, worker="w2", limit=1, lease_seconds=30) == []
        second = Waiter(store, timeout=30.0)
        second.start()  # its mark was taken by its claim: an enqueue now still ends it
        other.enqueue([NewJob(task="t")])
        for w in (first, second):
            w.join(10)
            assert not w.is_alive() and w.result is True
        assert len(store.claim(queues=None, worker="w2", limit=1, lease_seconds=30)) == 1
    finally:
        store.close()
        other.close()


def test_an_interrupt_before_the_wait_ends_only_the_next_wait(pg_url: str) -> None:
    waiting, other = open_store(pg_url), open_store(pg_url)
    try:
        _settled(waiting)
        waiting.interrupt()  # a worker told to stop just before it waits
        assert waiting.wait_for_work(30) is True
        waiter = Waiter(waiting, timeout=30.0)  # used up: an ordinary wait again
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()
        other.enqueue([NewJob(task="t")])
        waiter.join(10)
        assert not waiter.is_alive() and waiter.result is True
    finally:
        waiting.close()
        other.close()


def test_a_busy_workers_heartbeat_reads_the_notifications_its_claim_loop_does_not(
    pg_url: str,
) -> None:
    # A worker whose slots are all busy neither waits nor claims: unread notifications
    # would pile up until the backend blocks sending them (holding back the server's
    # notification queue). Its heartbeat reads them.
    busy, other = open_store(pg_url), open_store(pg_url)
    try:
        assert isinstance(busy, PostgresStore)  # its claim connection is looked at
        _settled(busy)
        mark = busy._cc.mark()
        other.enqueue([NewJob(task="t")])

        def read() -> bool:
            busy.heartbeat(worker="w", leases=[], lease_seconds=30)
            return busy._cc.mark() > mark

        until(read, "the notification read by a heartbeat")
    finally:
        busy.close()
        other.close()


SUSPECT_LOOK = "SELECT 1 FROM treadle_jobs WHERE status = 'queued' AND crashes IS NOT"


def test_the_look_for_a_suspect_after_an_empty_claim_rides_with_its_plan(
    pg_url: str,
) -> None:
    # The worker that lost the race for a job (its claim came back empty) looks for a
    # suspect next (ADR 0024): the empty claim read a plan, which carried the answer.
    store = open_store(pg_url)
    try:
        with counting_statements() as count:
            assert store.claim(queues=None, worker="w", limit=4, lease_seconds=30) == []
            assert store.suspect_waiting(queues=None, kinds=None) is False
            assert not any(k.startswith(SUSPECT_LOOK) for k in count.snapshot())
            # Asked again without a claim in between: a read of its own.
            assert store.suspect_waiting(queues=None, kinds=None) is False
            assert sum(n for k, n in count.snapshot().items()
                       if k.startswith(SUSPECT_LOOK)) == 1
        [job] = store.enqueue([NewJob(task="t")])
        crash = '[{"at": "2026-01-01T00:00:00+00:00", "worker": "gone", "attempt": 1}]'
        with psycopg.connect(pg_url, autocommit=True) as conn:  # a job whose worker died
            conn.execute("UPDATE treadle_jobs SET crashes = %s::jsonb WHERE id = %s",
                         (crash, job.id))
        assert store.claim(queues=None, worker="w", limit=4, lease_seconds=30) == []
        assert store.suspect_waiting(queues=None, kinds=None) is True
        # Another scope than the plan's: looked up, not taken from the plan.
        assert store.suspect_waiting(queues=["other"], kinds=None) is False
        [claimed] = store.claim(queues=None, worker="w", limit=1, lease_seconds=30,
                                suspect=True)
        assert claimed.id == job.id
    finally:
        store.close()


LIMITED_LIST = "SELECT name, concurrency_limit FROM treadle_queues WHERE concurrency_l"


def test_an_idle_wait_reads_the_limited_queues_so_the_claim_after_it_does_not(
    pg_url: str,
) -> None:
    # The list of concurrency-limited queues is read again every _LIMITED_TTL; once it
    # would run out within half of that, a wait reads it (idle), and the claim the wait
    # leads to does not: no round trip before the claim on those pickups.
    store, other = open_store(pg_url), open_store(pg_url)
    try:
        _settled(store)
        with counting_statements() as count:
            def reads() -> int:
                return sum(n for k, n in count.snapshot().items() if k.startswith(LIMITED_LIST))

            deadline = time.monotonic() + 10
            while True:
                assert time.monotonic() < deadline, "a wait's read of the list"
                before = reads()
                waiter = Waiter(store, timeout=30.0)
                waiter.start()
                other.enqueue([NewJob(task="t", queue="q")])
                waiter.join(10)
                assert waiter.result is True
                read_by_wait = reads() > before
                after_wait = reads()
                assert len(store.claim(queues=["q"], worker="w", limit=1,
                                       lease_seconds=30)) == 1
                if read_by_wait:
                    assert reads() == after_wait  # none inside the claim
                    break
    finally:
        store.close()
        other.close()


def test_after_close_an_interrupt_or_a_second_close_leaves_reused_descriptors_alone(
    pg_url: str,
) -> None:
    """The wake-up pipe's descriptor numbers are free once closed, and the next pipe the
    process makes takes them: a late interrupt (a worker's stop after the app closed)
    or a second close must not write to, or close, that other pipe."""
    import os

    from treadle.store.postgres.claimconn import ClaimConnection

    cc = ClaimConnection(pg_url, "treadle_handoff_test")
    cc.close()
    r, w = os.pipe()  # most likely the numbers the closed pipe had
    try:
        os.set_blocking(r, False)
        cc.interrupt()
        cc.close()
        os.write(w, b"ok")  # still open
        assert os.read(r, 16) == b"ok"  # and nothing else was written to it
    finally:
        os.close(r)
        os.close(w)
