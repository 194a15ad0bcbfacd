"""The enqueue path builds the jobs it hands back from their requests (ADR 0027), not
from rows read back: on both stores, what a caller gets must equal what a read of the
row gives, field for field, whatever the request held."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.integration.test_group_commit import WAIT, Blockers
from treadle import Treadle
from treadle.core.errors import StoreError
from treadle.core.job import Enqueued, JobKind, NewJob
from treadle.store import Store, open_store
from treadle.testing import ManualClock

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url, clock=ManualClock(datetime(2026, 3, 1, 12, 0, 0, 123457, UTC)))
    yield s
    s.close()


def _varied() -> list[NewJob]:
    """Requests covering every column the insert writes, and the odd values of each."""
    far = timezone(timedelta(hours=5, minutes=30))
    return [
        NewJob(task="plain"),
        NewJob(task="t", payload={"b": [1, (2, 3)], "a": {"z": None, "é": "ünï"}, "f": 0.1,
                                  "big": 10**30, "neg": -0.0, "t": True},
               queue="q1", kind=JobKind.WORKFLOW, priority=-7, max_attempts=4,
               timeout=30, tenant="acme", callback_url="https://example.com/hook",
               traceparent=TRACEPARENT, max_crashes=7,
               run_at=datetime(2026, 3, 2, 8, 30, 1, 999999, far)),
        NewJob(task="limited", concurrency_key="k", concurrency_limit=2, rate_period=5,
               timeout=1.5),
        NewJob(task="dual", concurrency_key="k", concurrency_limit=3, rate_key="r",
               rate_limit=9, rate_window=2),
        NewJob(task="keyed", idempotency_key="key-1", run_at=datetime(2026, 1, 1, tzinfo=UTC)),
    ]


def _same_as_read(store: Store, handed: list[Enqueued]) -> None:
    for e in handed:
        read = store.get_job(e.job.id, tenant=e.job.tenant)
        assert e.job == read
        assert e.job.to_json() == read.to_json()
        assert [type(v) for v in vars(e.job).values()] == [type(v) for v in vars(read).values()]


def test_handed_back_jobs_equal_their_stored_rows(store: Store) -> None:
    handed = store.enqueue(_varied())
    assert all(e.created for e in handed)
    _same_as_read(store, handed)


def test_a_child_job_and_a_repeated_key_equal_their_stored_rows(store: Store) -> None:
    parent = store.enqueue([NewJob(task="p")])[0].job
    handed = store.enqueue([NewJob(task="c", parent_id=parent.id),
                            NewJob(task="k", idempotency_key="once"),
                            NewJob(task="k", idempotency_key="once")])
    assert [e.created for e in handed] == [True, True, False]
    assert handed[1].job.id == handed[2].job.id
    again = store.enqueue([NewJob(task="k", idempotency_key="once")])
    assert not again[0].created and again[0].job == handed[1].job
    _same_as_read(store, handed + again)


def test_the_payload_handed_back_is_a_copy(store: Store) -> None:
    inner = [1, 2]
    nj = NewJob(task="t", payload={"l": inner})
    job = store.enqueue([nj])[0].job
    inner.append(3)  # the caller's own object changes afterwards: the job does not
    assert job.payload == {"l": [1, 2]} == store.get_job(job.id).payload


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    app = Treadle(db_url)

    @app.task(name="echo")
    def echo(n: int, who: str) -> int:
        return n

    yield app
    app.close()


def test_a_batch_without_guards_still_isolates_a_refused_submission(app: Treadle) -> None:
    """SQLite first commits a batch without guards in one go (no savepoints); when the
    database refuses one submission the batch is done again under savepoints, and only
    that caller fails. PostgreSQL re-sends each submission alone. Either way each caller
    gets its own answer, and nothing refused is written."""
    echo = app.get_task("echo")
    subs = [
        [echo.new_job({"n": 1, "who": "a"})],
        [NewJob(task="echo", payload={"n": 2, "who": "b"}, parent_id=10**12)],
        [echo.new_job({"n": i, "who": "c"}) for i in range(3)],
        [echo.new_job({"n": 5, "who": "d"}, idempotency_key="same")],
        [echo.new_job({"n": 5, "who": "d"}, idempotency_key="same")],
    ]
    futures: list[Future[list[Enqueued]]] = []
    with Blockers(app) as blockers:
        for jobs in subs:
            futures.append(app.store.submit(jobs))
        blockers.wait_queued(len(subs))
    results = [f.exception(WAIT) or f.result() for f in futures]
    assert isinstance(results[1], StoreError) and "FOREIGN KEY" in str(results[1]).upper()
    good = [r for i, r in enumerate(results) if i != 1]
    assert all(isinstance(r, list) for r in good)
    assert [e.job.payload["n"] for r in good for e in r] == [1, 0, 1, 2, 5, 5]  # type: ignore[union-attr]
    assert sum(app.store.count_by_status().values()) == len(blockers.ids) + 5
    for r in good:
        _same_as_read(app.store, r)  # type: ignore[arg-type]


def test_a_large_batch_without_keys_pairs_every_job_with_its_own_row(store: Store) -> None:
    """SQLite inserts such a batch 32 rows per statement and pairs the ids in order
    (ADR 0032); 70 varied jobs cross two statement boundaries."""
    unkeyed = [nj for nj in _varied() if nj.idempotency_key is None]
    jobs = [replace(nj, payload={**nj.payload, "n": i})
            for i, nj in enumerate(unkeyed * 18)][:70]
    handed = store.enqueue(jobs)
    assert [e.job.payload["n"] for e in handed] == list(range(70))
    assert [e.job.task for e in handed] == [nj.task for nj in jobs]
    assert len({e.id for e in handed}) == 70
    _same_as_read(store, handed)
