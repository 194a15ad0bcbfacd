"""One ``complete`` and one ``claim`` carrying many jobs at once (issue 13): every job gets
its own guarded write, answer, event and usage row, whatever else the batch holds. On
SQLite both are set-based (one statement per kind of row for the whole batch); run on
both stores, as the contract is the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.usage import Usage
from treadle.store import JobFilter, Outcome, OutcomeKind, Store, open_store
from treadle.store.usage import UsageReader
from treadle.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(db_url: str, clock: ManualClock) -> Iterator[Store]:
    s = open_store(db_url, clock=clock)
    yield s
    s.close()


def _claim(store: Store, n: int, worker: str = "w1") -> list:  # type: ignore[type-arg]
    return store.claim(queues=None, worker=worker, limit=n, lease_seconds=30)


def test_a_batch_claim_records_one_claimed_event_per_job_with_its_attempt(
    store: Store,
) -> None:
    store.enqueue([NewJob(task="t", max_attempts=3) for _ in range(5)])
    first = _claim(store, 5)
    store.complete([Outcome(j.id, j.lease_token, OutcomeKind.RELEASED, "w1") for j in first])
    again = _claim(store, 5, worker="w2")
    assert sorted(j.id for j in again) == sorted(j.id for j in first)
    for job in again:
        claimed = [e for e in store.events(job.id) if e.reason == "claimed"]
        assert [(e.attempt, e.worker, e.from_status, e.to_status) for e in claimed] == [
            (1, "w1", JobStatus.QUEUED, JobStatus.RUNNING),
            (2, "w2", JobStatus.QUEUED, JobStatus.RUNNING)]


def test_a_mixed_batch_answers_each_outcome_in_its_place(
    store: Store, clock: ManualClock
) -> None:
    jobs = [e.job for e in store.enqueue(
        [NewJob(task="t", max_attempts=3) for _ in range(5)]
        + [NewJob(task="t", callback_url="https://example.com/hook")])]
    claimed = {j.id: j for j in _claim(store, 6)}
    ok, retry, cont, stale, fail, hooked = (claimed[j.id] for j in jobs)
    err = ErrorInfo(ErrorClass.TRANSIENT, "flaky")
    retry_at = clock.now() + timedelta(seconds=30.123457)
    usage = Usage(wall_seconds=0.25, cpu_seconds=0.125, result_bytes=2).clean()
    batch = [
        Outcome(ok.id, ok.lease_token, OutcomeKind.SUCCEEDED, "w1", result=42, usage=usage),
        Outcome(retry.id, retry.lease_token, OutcomeKind.RETRY, "w1", error=err,
                run_at=retry_at, usage=usage),
        Outcome(cont.id, cont.lease_token, OutcomeKind.CONTINUED, "w1", payload={"step": 2}),
        Outcome(stale.id, stale.lease_token + 1, OutcomeKind.SUCCEEDED, "zombie", result=1),
        Outcome(fail.id, fail.lease_token, OutcomeKind.FAILED, "w1", error=err,
                reason="failed", usage=usage),
        # The same job twice in one batch: the second is a replay of the first.
        Outcome(ok.id, ok.lease_token, OutcomeKind.SUCCEEDED, "w1", result=42, usage=usage),
        Outcome(hooked.id, hooked.lease_token, OutcomeKind.SUCCEEDED, "w1", result="x"),
    ]
    assert store.complete(batch) == [True, True, True, False, True, True, True]

    done = store.get_job(ok.id)
    assert done.status is JobStatus.SUCCEEDED and done.result == 42
    assert done.finished_at == clock.now() and done.lease_owner is None
    assert [e.reason for e in store.events(ok.id)] == ["enqueued", "claimed", "completed"]

    again = store.get_job(retry.id)
    assert again.status is JobStatus.QUEUED and again.run_at == retry_at
    assert again.error == err and again.finished_at is None
    assert store.events(retry.id)[-1].detail == {"error": err.to_json()}

    cont_job = store.get_job(cont.id)
    assert cont_job.status is JobStatus.QUEUED and cont_job.payload == {"step": 2}
    assert cont_job.max_attempts == 4 and cont_job.run_at == clock.now()

    assert store.get_job(stale.id).status is JobStatus.RUNNING
    lost = store.events(stale.id)[-1]
    assert lost.reason == "lease_lost" and lost.worker == "zombie"

    failed = store.get_job(fail.id)
    assert failed.status is JobStatus.FAILED and failed.finished_at == clock.now()
    assert store.events(fail.id)[-1].detail == {"error": err.to_json()}

    # A finished job with a callback URL gets its durable delivery job.
    children = store.list_jobs(JobFilter(task="treadle.deliver_callback"))
    assert [c.parent_id for c in children] == [hooked.id]

    reader = UsageReader(store)
    rows = reader.attempts(ok.id)
    assert len(rows) == 1 and rows[0]["wall_seconds"] == 0.25
    assert rows[0]["cpu_seconds"] == 0.125 and rows[0]["outcome"] == "succeeded"
    assert [r["outcome"] for r in reader.attempts(retry.id)] == ["retry"]
    assert [r["error_class"] for r in reader.attempts(fail.id)] == ["transient"]
    assert reader.attempts(stale.id) == []


def test_a_pending_cancel_survives_a_requeue_in_a_batch(store: Store) -> None:
    store.enqueue([NewJob(task="t", max_attempts=3), NewJob(task="t")])
    a, b = _claim(store, 2)
    store.cancel(a.id)
    store.cancel(b.id)
    assert store.complete([
        Outcome(a.id, a.lease_token, OutcomeKind.RELEASED, "w1"),
        Outcome(b.id, b.lease_token, OutcomeKind.SUCCEEDED, "w1", result=None),
    ]) == [True, True]
    assert store.get_job(a.id).cancel_requested
    assert not store.get_job(b.id).cancel_requested
