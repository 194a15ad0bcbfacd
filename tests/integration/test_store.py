"""The store contract, run against real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from treadle.core.errors import ErrorClass, ErrorInfo, JobNotFound, SchemaTooNew
from treadle.core.job import Job, NewJob
from treadle.core.lifecycle import JobStatus
from treadle.store import JobFilter, Outcome, OutcomeKind, Store, open_store
from treadle.store.postgres.store import PostgresStore
from treadle.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(db_url: str, clock: ManualClock) -> Iterator[Store]:
    s = open_store(db_url, clock=clock)
    yield s
    s.close()


def new(task: str = "t", **kw: object) -> NewJob:
    return NewJob(task=task, **kw)  # type: ignore[arg-type]


def claim(store: Store, limit: int = 10, worker: str = "w1", queues: list[str] | None = None,
          lease: float = 30.0) -> list[Job]:
    return store.claim(queues=queues, worker=worker, limit=limit, lease_seconds=lease)


def ok(job_id: int, token: int, result: object = None, worker: str = "w1") -> Outcome:
    return Outcome(job_id, token, OutcomeKind.SUCCEEDED, worker, result=result)


def test_enqueue_many_keeps_request_order_and_records_an_event(store: Store) -> None:
    out = store.enqueue([new(payload={"i": i}) for i in range(5)])
    assert [e.job.payload["i"] for e in out] == list(range(5))
    assert all(e.created for e in out)
    ev = store.events(out[0].job.id)
    assert [(e.from_status, e.to_status, e.reason) for e in ev] == [
        (None, JobStatus.QUEUED, "enqueued")
    ]


def test_idempotency_key_returns_the_existing_job(store: Store) -> None:
    a = store.enqueue([new(idempotency_key="k1", payload={"v": 1})])[0]
    b = store.enqueue([new(idempotency_key="k1", payload={"v": 2})])[0]
    assert a.created and not b.created and a.job.id == b.job.id
    assert store.get_job(a.job.id).payload == {"v": 1}
    dup = store.enqueue([new(idempotency_key="k2"), new(idempotency_key="k2"), new()])
    assert dup[0].job.id == dup[1].job.id and [d.created for d in dup] == [True, False, True]
    other_tenant = store.enqueue([new(idempotency_key="k1", tenant="acme")])[0]
    assert other_tenant.created and other_tenant.job.id != a.job.id


def test_claim_orders_by_priority_then_age_and_fences_with_a_token(store: Store) -> None:
    low = store.enqueue([new(priority=0)])[0].job
    high = store.enqueue([new(priority=5)])[0].job
    jobs = claim(store)
    assert [j.id for j in jobs] == [high.id, low.id]
    assert all(j.status is JobStatus.RUNNING and j.attempt == 1 for j in jobs)
    # A token is past every token the job had (0 before its first claim): a counter on
    # SQLite, the server's clock in µs on PostgreSQL (ADR 0030).
    assert all(j.lease_token >= 1 and j.lease_owner == "w1" for j in jobs)
    assert claim(store) == []


def test_delayed_job_waits_for_run_at(store: Store, clock: ManualClock) -> None:
    store.enqueue([new(run_at=clock.now() + timedelta(seconds=60))])
    assert claim(store) == []
    clock.advance(61)
    assert len(claim(store)) == 1


def test_paused_queue_is_not_claimed_until_resumed(store: Store) -> None:
    store.enqueue([new(queue="q1"), new(queue="q2")])
    store.set_queue("q1", paused=True)
    assert [j.queue for j in claim(store)] == ["q2"]
    assert claim(store, queues=["q1"]) == []
    store.set_queue("q1", paused=False)
    assert [j.queue for j in claim(store, queues=["q1"])] == ["q1"]


def test_queue_concurrency_limit_caps_running_jobs(store: Store) -> None:
    store.enqueue([new(queue="lim") for _ in range(5)])
    store.set_queue("lim", concurrency_limit=2)
    assert len(claim(store, queues=["lim"])) == 2
    assert len(claim(store, queues=None, worker="w2")) == 0
    info = {q.name: q for q in store.queues()}["lim"]
    assert info.running == 2 and info.queued == 3 and info.concurrency_limit == 2
    store.set_queue("lim", clear_limit=True)
    assert len(claim(store, queues=["lim"])) == 3


def test_complete_with_current_token_succeeds(store: Store) -> None:
    store.enqueue([new()])
    job = claim(store)[0]
    assert store.complete([ok(job.id, job.lease_token, {"answer": 42})]) == [True]
    done = store.get_job(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.result == {"answer": 42}
    assert done.finished_at is not None and done.lease_owner is None
    # The same write again (a reply lost in transit) is recognised, not a zombie.
    assert store.complete([ok(job.id, job.lease_token, {"answer": 42})]) == [True]
    assert [e.reason for e in store.events(job.id)] == ["enqueued", "claimed", "completed"]


def test_zombie_write_is_refused_and_recorded_as_lease_lost(
    store: Store, clock: ManualClock
) -> None:
    store.enqueue([new(max_attempts=3)])
    first = claim(store, worker="zombie", lease=5)[0]
    clock.advance(6)
    assert store.reap().requeued == 1
    # The zombie never heartbeated: a crash, so the job is a suspect, claimed alone.
    assert claim(store, worker="fresh") == []
    second = store.claim(queues=None, worker="fresh", limit=10, lease_seconds=30,
                         suspect=True)[0]
    assert second.lease_token > first.lease_token and second.attempt == 2
    assert store.complete([ok(second.id, second.lease_token, "new", worker="fresh")]) == [True]
    assert store.complete([ok(first.id, first.lease_token, "old", worker="zombie")]) == [False]
    job = store.get_job(first.id)
    assert job.result == "new" and job.status is JobStatus.SUCCEEDED
    lost = [e for e in store.events(job.id) if e.reason == "lease_lost"]
    assert len(lost) == 1 and lost[0].worker == "zombie"
    assert lost[0].detail["stale_token"] == first.lease_token
    reasons = [e.reason for e in store.events(job.id)]
    assert reasons == ["enqueued", "claimed", "lease_expired", "claimed", "completed",
                       "lease_lost"]


def test_heartbeat_extends_the_lease_and_reports_lost_ones(
    store: Store, clock: ManualClock
) -> None:
    store.enqueue([new(max_attempts=2), new(max_attempts=2)])
    a, b = claim(store, lease=10)
    clock.advance(8)
    hb = store.heartbeat(worker="w1", leases=[(a.id, a.lease_token), (b.id, 999)],
                         lease_seconds=10)
    assert hb.lost == frozenset({b.id})
    clock.advance(8)  # a: renewed at 8 -> expires at 18; b expired at 10
    res = store.reap()
    assert res.requeued == 1
    assert store.get_job(a.id).status is JobStatus.RUNNING
    assert store.get_job(b.id).status is JobStatus.QUEUED
    assert [w.id for w in store.worker_processes()] == ["w1"]
    with pytest.deprecated_call(match="use Store.worker_processes"):
        assert store.workers() == store.worker_processes()  # type: ignore[attr-defined]


def test_reaper_fails_a_job_whose_attempts_are_exhausted(store: Store, clock: ManualClock) -> None:
    store.enqueue([new(max_attempts=1)])
    job = claim(store, lease=1)[0]
    clock.advance(2)
    # Its worker lives on (heartbeats) but let this lease lapse: not a crash, so the
    # attempt is used up (a crash would refund it, ADR 0024).
    store.heartbeat(worker="w1", leases=[], lease_seconds=1)
    assert store.reap().failed == 1
    failed = store.get_job(job.id)
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error.error_class is ErrorClass.LEASE_LOST
    assert store.events(job.id)[-1].reason == "lease_expired"


def test_retry_outcome_requeues_with_backoff_and_keeps_the_error(
    store: Store, clock: ManualClock
) -> None:
    store.enqueue([new(max_attempts=3)])
    job = claim(store)[0]
    err = ErrorInfo(ErrorClass.TRANSIENT, "flaky")
    oc = Outcome(job.id, job.lease_token, OutcomeKind.RETRY, "w1", error=err,
                 run_at=clock.now() + timedelta(seconds=30))
    assert store.complete([oc]) == [True]
    assert store.events(job.id)[-1].detail == {"error": err.to_json()}
    again = store.get_job(job.id)
    assert again.status is JobStatus.QUEUED and again.error == err
    assert claim(store) == []
    clock.advance(31)
    assert claim(store)[0].attempt == 2
    q = {x.name: x for x in store.queues()}["default"]
    assert q.running == 1


def test_released_and_continued_attempts_do_not_use_up_retries(store: Store) -> None:
    store.enqueue([new(max_attempts=1)])
    job = claim(store)[0]
    store.complete([Outcome(job.id, job.lease_token, OutcomeKind.RELEASED, "w1")])
    job = claim(store)[0]
    store.complete([Outcome(job.id, job.lease_token, OutcomeKind.CONTINUED, "w1",
                            payload={"step": 2})])
    job = claim(store)[0]
    assert job.attempt == 3 and job.max_attempts == 3 and job.payload == {"step": 2}


def test_cancel_queued_is_immediate_and_running_is_signalled(store: Store) -> None:
    q, r = store.enqueue([new(), new(priority=9)])
    running = claim(store, limit=1)[0]
    assert running.id == r.job.id
    assert store.cancel(q.job.id).status is JobStatus.CANCELLED
    asked = store.cancel(running.id)
    assert asked.status is JobStatus.RUNNING and asked.cancel_requested
    hb = store.heartbeat(worker="w1", leases=[(running.id, running.lease_token)],
                         lease_seconds=30)
    assert hb.cancel_requested == frozenset({running.id})


def test_manual_retry_requeues_a_failed_job_for_one_more_attempt(store: Store) -> None:
    store.enqueue([new()])
    job = claim(store)[0]
    store.complete([Outcome(job.id, job.lease_token, OutcomeKind.FAILED, "w1",
                            error=ErrorInfo(ErrorClass.PERMANENT, "no"))])
    again = store.retry(job.id)
    assert again.status is JobStatus.QUEUED and again.max_attempts == 2
    assert store.events(job.id)[-1].reason == "manual_retry"
    assert claim(store)[0].attempt == 2


def test_tenant_scoping_hides_other_tenants_jobs(store: Store) -> None:
    job = store.enqueue([new(tenant="a")])[0].job
    with pytest.raises(JobNotFound):
        store.get_job(job.id, tenant="b")
    with pytest.raises(JobNotFound):
        store.cancel(job.id, tenant="b")
    assert store.list_jobs(JobFilter(tenant="b")) == []
    assert [j.id for j in store.list_jobs(JobFilter(tenant="a"))] == [job.id]


def test_list_jobs_filters_and_paginates_newest_first(store: Store) -> None:
    ids = [e.job.id for e in store.enqueue([new(task=f"t{i % 2}") for i in range(7)])]
    page1 = store.list_jobs(JobFilter(limit=3))
    assert [j.id for j in page1] == ids[::-1][:3]
    page2 = store.list_jobs(JobFilter(limit=3, before_id=page1[-1].id))
    assert [j.id for j in page2] == ids[::-1][3:6]
    assert all(j.task == "t1" for j in store.list_jobs(JobFilter(task="t1")))
    assert store.list_jobs(JobFilter(statuses=[JobStatus.RUNNING])) == []
    assert store.count_by_status() == {"queued": 7}


def test_logs_are_kept_per_attempt(store: Store) -> None:
    job = store.enqueue([new()])[0].job
    store.add_logs(job.id, 1, ["hello", "<script>x</script>"])
    assert [(log.attempt, log.message) for log in store.logs(job.id)] == [
        (1, "hello"), (1, "<script>x</script>")
    ]


def test_finishing_a_job_with_a_callback_url_enqueues_its_delivery(store: Store) -> None:
    job = store.enqueue([new(callback_url="http://127.0.0.1:9/hook")])[0].job
    claimed = claim(store, queues=["default"])[0]
    store.complete([ok(claimed.id, claimed.lease_token)])
    deliveries = store.list_jobs(JobFilter(task="treadle.deliver_callback"))
    assert len(deliveries) == 1
    assert deliveries[0].payload == {"job_id": job.id} and deliveries[0].parent_id == job.id


def test_wait_for_finish_is_woken_by_the_completion_not_by_polling(db_url: str) -> None:
    """PostgreSQL re-reads on a slow timer in case a notification is lost; set it to a
    minute here, so only the notification can end the wait in time. (SQLite's wake-up
    is its 2 ms ``data_version`` check.)"""
    store = (PostgresStore(db_url, safety_poll=60.0) if db_url.startswith("postgres")
             else open_store(db_url))
    job = store.enqueue([new()])[0].job
    claimed = claim(store)[0]
    other = open_store(db_url)
    waiting = threading.Event()
    completed_at: list[float] = []

    def finish() -> None:
        waiting.wait(10)
        time.sleep(0.2)  # orders the completion after the waiter's first read, proves nothing
        other.complete([ok(claimed.id, claimed.lease_token)])
        completed_at.append(time.monotonic())

    t = threading.Thread(target=finish)
    t.start()
    waiting.set()
    store.wait_for_finish([job.id], timeout=10)
    woke_at = time.monotonic()
    t.join()
    assert completed_at, "the completion did not happen"
    assert woke_at - completed_at[0] < 0.5  # the safety poll is 60 s
    assert store.get_job(job.id).status is JobStatus.SUCCEEDED
    other.close()
    store.close()


def test_migrate_is_idempotent_and_a_newer_schema_is_refused(db_url: str) -> None:
    s = open_store(db_url)
    assert s.migrate() == []
    s.check_schema()
    if db_url.startswith("sqlite"):
        import sqlite3

        from treadle.store.sqlite.store import sqlite_path

        conn = sqlite3.connect(sqlite_path(db_url))
        conn.execute("INSERT INTO treadle_migrations VALUES (9999, 'future', 0)")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pconn:
            pconn.execute("INSERT INTO treadle_migrations (version, name) VALUES (9999, 'f')")
    with pytest.raises(SchemaTooNew):
        s.check_schema()
    with pytest.raises(SchemaTooNew):
        s.migrate()
    s.close()
