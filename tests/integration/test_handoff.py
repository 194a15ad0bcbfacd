"""Hand-off to a parked worker on PostgreSQL (ADR 0034): a lone job enqueued while a
worker waits with free slots, and nothing queued ahead of it, is inserted claimed for
that worker and reaches it on its own channel; nothing else changes hands that way.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tests.support.waiting import Waiter, until
from treadle import Treadle
from treadle.core.clock import ManualClock
from treadle.core.job import Job, NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.jobs import JobHandle
from treadle.store import open_store
from treadle.store.base import Parking, Store
from treadle.store.postgres.producing import NO_PARKED_SECONDS
from treadle.store.postgres.store import PostgresStore
from treadle.testing import run_worker

W = "worker-1"


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _parking(free: int = 4, *, queues: list[str] | None = None,
             kinds: list[str] | None = None) -> Parking:
    return Parking(W, free, queues, kinds, 30.0)


@pytest.fixture
def stores(pg_url: str) -> Iterator[tuple[Store, Store]]:
    """A worker's store and a producer's: two processes' worth of connections."""
    worker, producer = open_store(pg_url), open_store(pg_url)
    try:
        # A first claim opens the claim connection, as a worker's first claim does (a
        # wait that has to connect first reports a wake-up: see ADR 0031).
        assert worker.claim(queues=None, worker=W, limit=1, lease_seconds=30) == []
        yield worker, producer
    finally:
        worker.close()
        producer.close()


def _park(store: Store, park: Parking | None = None) -> Waiter:
    """Park as a waiting worker does; returns the wait, running in its own thread."""
    waiter = Waiter(store, timeout=30.0, park=park or _parking())
    waiter.start()
    return waiter


def _parked(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT worker, free FROM treadle_parked").fetchall())


def _until_parked(url: str) -> None:
    deadline = time.monotonic() + 10
    while W not in _parked(url):
        assert time.monotonic() < deadline, "the worker never parked"
        time.sleep(0.005)


def _taken(store: Store, waiter: Waiter) -> list[Job]:
    waiter.join(10)
    assert not waiter.is_alive() and waiter.result is True
    return store.take_handed(W)


def _end_parked_connection(url: str) -> None:
    """End the backend of the (one) parked worker's claim connection, and wait until it
    is gone, as a killed worker's or a dropped connection's."""
    with psycopg.connect(url, autocommit=True) as admin:
        [(pid,)] = admin.execute("SELECT pid FROM treadle_parked").fetchall()
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        until(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                        [pid]).fetchone(), "the backend never ended")


def _park_second_worker(store: Store) -> None:
    """Park ``worker-2`` (2 free slots) through ``store``'s own claim connection."""
    assert store.claim(queues=None, worker="worker-2", limit=1, lease_seconds=30) == []
    Waiter(store, timeout=0.5, park=Parking("worker-2", 2, None, None, 30.0)).start()


def _queued_not_handed(worker: Store, producer: Store, waiter: Waiter) -> int:
    """Enqueue a lone job that must go the ordinary way: queued, announced (the wait ends
    to claim), handed to nobody. Returns its id."""
    [job] = producer.enqueue([NewJob(task="t")])
    assert producer.get_job(job.id).status is JobStatus.QUEUED
    waiter.join(10)  # woken by the ordinary notification, to claim
    assert waiter.result is True and worker.take_handed(W) == []
    return job.id


def test_a_lone_job_goes_to_the_parked_worker_already_claimed_for_it(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, producer = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    [enqueued] = producer.enqueue([NewJob(task="t", payload={"n": 1})])
    [job] = _taken(worker, waiter)
    assert (job.id, job.payload, job.status) == (enqueued.id, {"n": 1}, JobStatus.RUNNING)
    assert job.lease_owner == W and job.attempt == 1 and job.lease_token > 0
    assert job.lease_expires_at is not None and job.started_at is not None
    stored = producer.get_job(job.id)
    assert (stored.status, stored.lease_owner, stored.lease_token, stored.attempt) == (
        JobStatus.RUNNING, W, job.lease_token, 1)
    assert [(e.reason, e.worker) for e in producer.events(job.id)] == [
        ("enqueued", None), ("claimed", W)]
    assert _parked(pg_url) == {W: 3}  # the enqueue counted the hand-off down
    # The worker holds a real lease: its token finishes the job; no other does.
    assert worker.complete([Outcome(job.id, job.lease_token + 1, OutcomeKind.SUCCEEDED,
                                    "zombie")]) == [False]
    assert worker.complete([Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, W,
                                    result=2)]) == [True]
    assert producer.get_job(job.id).result == 2


def test_a_job_is_not_handed_past_jobs_queued_before_it(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, producer = stores
    # Queued through the worker's store: the producer's first look must find it parked.
    [delayed] = worker.enqueue([NewJob(task="t", run_at=_in(3600))])
    waiter = _park(worker)
    _until_parked(pg_url)
    _queued_not_handed(worker, producer, waiter)
    assert producer.get_job(delayed.id).status is JobStatus.QUEUED
    assert _parked(pg_url) == {W: 4}


def test_a_producer_that_found_no_parked_worker_looks_again_a_second_later(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, _ = stores
    clock = ManualClock(datetime.now(UTC))
    producer = PostgresStore(pg_url, clock=clock)
    try:
        [alone] = producer.enqueue([NewJob(task="t")])  # nobody parked: noted
        assert worker.claim(queues=None, worker=W, limit=4, lease_seconds=30)[0].id == alone.id
        waiter = _park(worker, _parking(free=3))
        _until_parked(pg_url)
        plain = _queued_not_handed(worker, producer, waiter)  # the cheaper insert meanwhile
        assert worker.claim(queues=None, worker=W, limit=3, lease_seconds=30)[0].id == plain
        waiter = _park(worker, _parking(free=2))
        deadline = time.monotonic() + 10  # parked again (the claim found a job: stale)
        while _parked(pg_url).get(W) != 2:
            assert time.monotonic() < deadline, "not parked again"
            time.sleep(0.005)
        clock.advance(NO_PARKED_SECONDS)
        [handed] = producer.enqueue([NewJob(task="t")])
        assert [j.id for j in _taken(worker, waiter)] == [handed.id]
    finally:
        producer.close()


def test_free_slots_bound_the_hand_offs(stores: tuple[Store, Store], pg_url: str) -> None:
    worker, producer = stores
    waiter = _park(worker, _parking(free=1))
    _until_parked(pg_url)
    [first] = producer.enqueue([NewJob(task="t")])
    [second] = producer.enqueue([NewJob(task="t")])
    assert [j.id for j in _taken(worker, waiter)] == [first.id]
    assert producer.get_job(second.id).status is JobStatus.QUEUED
    assert _parked(pg_url) == {W: 0}


@pytest.mark.parametrize("case", [
    "paused queue", "limited queue", "keyed limit", "rate limit", "delayed",
    "other queue", "other kind", "a batch"])
def test_jobs_a_claim_would_hold_back_or_not_take_are_never_handed(
    stores: tuple[Store, Store], pg_url: str, case: str,
) -> None:
    worker, producer = stores
    park = _parking()
    jobs = [NewJob(task="t")]
    if case == "paused queue":
        producer.set_queue("default", paused=True)
    elif case == "limited queue":
        producer.set_queue("default", concurrency_limit=5)
    elif case == "keyed limit":
        jobs = [NewJob(task="t", concurrency_key="k", concurrency_limit=2)]
    elif case == "rate limit":
        jobs = [NewJob(task="t", concurrency_key="k", rate_period=1.0, concurrency_limit=1)]
    elif case == "delayed":
        jobs = [NewJob(task="t", run_at=_in(60))]
    elif case == "other queue":
        park = _parking(queues=["other"])
    elif case == "other kind":
        park = _parking(kinds=["workflow"])
    elif case == "a batch":
        jobs = [NewJob(task="t"), NewJob(task="t")]
    waiter = _park(worker, park)
    _until_parked(pg_url)
    enqueued = producer.enqueue(jobs)
    for e in enqueued:
        assert producer.get_job(e.id).status is JobStatus.QUEUED, case
    worker.interrupt()
    waiter.join(10)
    assert worker.take_handed(W) == []
    assert _parked(pg_url) == {W: 4}


def test_nothing_is_handed_through_a_claim_connection_that_is_gone(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, producer = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    _end_parked_connection(pg_url)
    _queued_not_handed(worker, producer, waiter)
    # The next wait parks again, through the new connection, and is handed jobs again.
    assert len(worker.claim(queues=None, worker=W, limit=4, lease_seconds=30)) == 1
    waiter = _park(worker, _parking(free=3))
    deadline = time.monotonic() + 10
    while _parked(pg_url).get(W) != 3:
        assert time.monotonic() < deadline, "not parked again"
        time.sleep(0.01)
    [again] = producer.enqueue([NewJob(task="t")])
    assert [j.id for j in _taken(worker, waiter)] == [again.id]


def test_a_row_parked_without_a_session_lock_is_never_handed_a_job(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    # As a worker from before migration 0013 parks: no lock to tell whether it lives.
    worker, producer = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("UPDATE treadle_parked SET lock_key = NULL")
    _queued_not_handed(worker, producer, waiter)


@contextlib.contextmanager
def _other_role(pg_url: str) -> Iterator[str]:
    """The URL of a fresh login role (not a superuser) with every right on the tables."""
    role = f"treadle_other_{secrets.token_hex(4)}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for what in ("TABLES", "SEQUENCES"):
            admin.execute(sql.SQL("GRANT ALL ON ALL {} IN SCHEMA public TO {}").format(
                sql.SQL(what), sql.Identifier(role)))
    try:
        yield pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_producer_of_another_database_role_hands_off_too(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    # Liveness is a lock any role can probe; another role's backends are hidden from
    # pg_stat_activity, so a look there would never find the worker alive.
    worker, _ = stores
    with _other_role(pg_url) as url:
        producer = open_store(url)
        try:
            waiter = _park(worker)
            _until_parked(pg_url)
            [enqueued] = producer.enqueue([NewJob(task="t")])
            assert [j.id for j in _taken(worker, waiter)] == [enqueued.id]
        finally:
            producer.close()


def test_a_worker_of_another_role_parking_leaves_a_live_worker_parked(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    # Each park clears the rows of workers that are gone; a worker of another role must
    # not take a live one for gone because its backend is hidden from it.
    worker, _ = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    with _other_role(pg_url) as url:
        other = open_store(url)
        try:
            _park_second_worker(other)
            until(lambda: "worker-2" in _parked(pg_url), "the other worker never parked")
            assert _parked(pg_url)[W] == 4
        finally:
            other.close()
    waiter.store.interrupt()
    waiter.join(10)


def test_a_park_clears_the_row_of_a_worker_whose_connection_is_gone(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, producer = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    _end_parked_connection(pg_url)
    waiter.join(10)
    # Another worker parks (through the producer's store: another claim connection).
    _park_second_worker(producer)
    until(lambda: _parked(pg_url) == {"worker-2": 2}, "the dead row was never cleared")


def test_unpark_ends_hand_offs_and_returns_what_was_handed_until_then(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, producer = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    [handed] = producer.enqueue([NewJob(task="t")])
    waiter.join(10)
    assert [j.id for j in worker.unpark(W)] == [handed.id]  # not taken before: not lost
    assert _parked(pg_url) == {}
    [queued] = producer.enqueue([NewJob(task="t")])
    assert producer.get_job(queued.id).status is JobStatus.QUEUED
    assert worker.take_handed(W) == []


def test_a_row_too_long_for_a_notification_is_read_by_the_worker(
    stores: tuple[Store, Store], pg_url: str,
) -> None:
    worker, producer = stores
    waiter = _park(worker)
    _until_parked(pg_url)
    payload = {"text": "é" * 9000}  # 18,000 bytes: past the 8,000 a notification holds
    [enqueued] = producer.enqueue([NewJob(task="t", payload=payload)])
    [job] = _taken(worker, waiter)
    assert (job.id, job.payload, job.status, job.lease_owner) == (
        enqueued.id, payload, JobStatus.RUNNING, W)


def test_a_worker_runs_handed_jobs_and_unparks_when_it_stops(pg_url: str) -> None:
    app = Treadle(pg_url)
    try:
        @app.task(name="double")
        def double(x: int) -> int:
            return 2 * x

        with run_worker(app, concurrency=4) as worker:
            deadline = time.monotonic() + 10
            while worker.id not in _parked(pg_url):
                assert time.monotonic() < deadline, "the idle worker never parked"
                time.sleep(0.01)
            handles = []
            for i in range(6):
                handles.append(double.defer(x=i))
                time.sleep(0.05)  # one at a time: each finds the queue empty
            assert [h.wait(20).result for h in handles] == [0, 2, 4, 6, 8, 10]
            handed = 0
            for h in handles:
                events = app.job_events(h.job.id)
                assert [e.reason for e in events] == ["enqueued", "claimed", "completed"]
                handed += events[1].at == events[0].at  # claimed by its own enqueue
            assert handed >= 5  # all, but for a race with the worker's own claim
        assert _parked(pg_url) == {}
    finally:
        app.close()


def test_a_worker_with_a_job_running_parks_and_is_handed_the_next_job(pg_url: str) -> None:
    """A worker that started on a queued job (an ordinary claim) waits with that job
    running; it parks all the same, so a lone job enqueued meanwhile comes straight to it.
    (Parking only when nothing ran left such a worker unparked for good at a low rate: a
    job ran at each of its waits.)"""
    app = Treadle(pg_url)
    release = threading.Event()
    try:
        @app.task(name="hold")
        def hold() -> None:
            assert release.wait(20)

        @app.task(name="double")
        def double(x: int) -> int:
            return 2 * x

        # Queued before any worker, so claimed the ordinary way; by another producer, as
        # this one would then send lone jobs with the plain insert for a second.
        other = open_store(pg_url)
        try:
            [first] = other.enqueue([NewJob(task="hold")])
        finally:
            other.close()
        with run_worker(app, concurrency=4) as worker:
            until(lambda: app.get_job(first.id).status is JobStatus.RUNNING,
                  "the first job never started")
            until(lambda: _parked(pg_url).get(worker.id) == 3,
                  "the worker never parked while its job ran")
            second = double.defer(x=21)
            assert second.wait(20).result == 42
            events = app.job_events(second.job.id)
            assert [e.reason for e in events] == ["enqueued", "claimed", "completed"]
            assert events[1].at == events[0].at  # claimed by its own enqueue: handed
            release.set()
            assert JobHandle.of(app, first).wait(20).status is JobStatus.SUCCEEDED
    finally:
        release.set()
        app.close()


@pytest.mark.parametrize("free", [3, 0])
def test_a_park_or_unpark_commits_without_waiting_for_the_wal_flush(
    pg_url: str, free: int
) -> None:
    """Parked rows are hints (a server crash that forgets one ends the claim connection
    too), so their writes commit asynchronously, as a claim does (ADR 0030); the setting
    stays local to the statement's transaction."""
    from treadle.store.postgres.handoff import Q

    with psycopg.connect(pg_url) as conn:  # a transaction, to read the setting inside it
        conn.execute(Q["park_worker"], {
            "worker": W, "free": free, "queues": None, "kinds": None,
            "lease_seconds": 30.0, "channel": "treadle_handoff_test",
            "now": datetime.now(UTC), "lock_key": 1})
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
        conn.commit()
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
