"""Group commit (ADR 0019) on real SQLite and PostgreSQL: concurrent submissions share a
transaction, yet each caller gets its own jobs or its own error, and nothing is reported
durable that is not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from treadle import Treadle
from treadle.core.errors import InvalidInput, StoreError, StoreUnavailable, UnknownTask
from treadle.core.job import Enqueued, NewJob
from treadle.store.base import Transaction
from treadle.store.groupcommit import GroupCommitter, Submission

THREADS = 16
PER_THREAD = 40
WAIT = 30.0


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    app = Treadle(db_url)

    @app.task(name="echo")
    def echo(n: int, who: str) -> int:
        return n

    yield app
    app.close()


def _count(app: Treadle) -> int:
    return sum(app.store.count_by_status().values())


def test_threads_each_get_their_own_job(app: Treadle) -> None:
    echo = app.get_task("echo")
    start = threading.Barrier(THREADS)
    got: dict[str, list[tuple[int, int, str]]] = {}
    errors: list[BaseException] = []

    def producer(who: str) -> None:
        try:
            start.wait()
            mine = []
            for n in range(PER_THREAD):
                h = echo.defer(n=n, who=who)
                mine.append((h.id, h.job.payload["n"], h.job.payload["who"]))
                assert h.created
            got[who] = mine
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(f"t{i}",)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [job_id for mine in got.values() for job_id, _, _ in mine]
    assert len(ids) == len(set(ids)) == THREADS * PER_THREAD
    for who, mine in got.items():
        assert [n for _, n, _ in mine] == list(range(PER_THREAD))  # own payloads, own order
        assert {w for _, _, w in mine} == {who}
        for job_id, n, _ in mine[::7]:  # what was handed back is what is stored
            stored = app.get_job(job_id)
            assert stored.payload == {"n": n, "who": who}
            assert [e.reason for e in app.job_events(job_id)] == ["enqueued"]
    assert _count(app) == THREADS * PER_THREAD


def test_a_lone_caller_commits_inline(app: Treadle) -> None:
    """Sequential defers from one thread never wait for the committer thread."""
    echo = app.get_task("echo")
    for n in range(5):
        echo.defer(n=n, who="solo")
    committer: GroupCommitter = app.store._committer  # type: ignore[attr-defined]
    assert committer._threads == []  # never needed
    assert _count(app) == 5


def test_invalid_input_fails_alone(app: Treadle) -> None:
    echo = app.get_task("echo")
    outcomes: dict[int, Any] = {}

    def producer(i: int) -> None:
        try:
            if i % 4 == 0:
                echo.defer(n=i)  # missing argument: refused before the store
            elif i % 4 == 1:
                app.defer("no-such-task", {"n": i})
            else:
                outcomes[i] = echo.defer(n=i, who="ok").id
                return
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, out in outcomes.items():
        if i % 4 == 0:
            assert isinstance(out, InvalidInput)
        elif i % 4 == 1:
            assert isinstance(out, UnknownTask)
        else:
            assert app.get_job(out).payload == {"n": i, "who": "ok"}
    assert _count(app) == THREADS // 2


class Blockers:
    """Fill every lane of the store's committer with a submission whose guard waits, so
    what is submitted next queues and is committed as one batch once they are released."""

    def __init__(self, app: Treadle) -> None:
        self.app = app
        self.committer: GroupCommitter = app.store._committer  # type: ignore[attr-defined]
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.ids: list[int] = []

    def __enter__(self) -> Blockers:
        echo = self.app.get_task("echo")
        for lane in range(self.committer._lanes):
            entered = threading.Event()

            def hold(tx: Transaction, entered: threading.Event = entered) -> None:
                entered.set()
                assert self.release.wait(WAIT)

            def run(lane: int = lane, hold: Any = hold) -> None:
                job = echo.new_job({"n": lane, "who": "blocker"})
                self.ids.append(self.app.enqueue([job], guard=hold)[0].id)

            t = threading.Thread(target=run)
            t.start()
            self.threads.append(t)
            assert entered.wait(WAIT)  # this lane is now committing (inline, held)
        return self

    def wait_queued(self, n: int) -> None:
        done = threading.Event()
        while not done.wait(0.005):
            with self.committer._cond:
                if len(self.committer._pending) >= n:
                    return

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for t in self.threads:
            t.join(WAIT)


def test_one_batch_isolates_each_submission(app: Treadle) -> None:
    """In one batch: good jobs, a job the database refuses (unknown parent), a guard that
    refuses, and two submissions with one idempotency key: each caller gets its own."""
    echo = app.get_task("echo")

    def refuse(tx: Transaction) -> None:
        raise InvalidInput("refused by its guard")

    subs: list[tuple[str, list[NewJob], Any]] = [
        ("good", [echo.new_job({"n": 1, "who": "a"})], None),
        ("bad-parent", [NewJob(task="echo", payload={"n": 2, "who": "b"},
                               parent_id=10**12)], None),
        ("good-many", [echo.new_job({"n": i, "who": "c"}) for i in range(3)], None),
        ("guard", [echo.new_job({"n": 4, "who": "d"})], refuse),
        ("dup-1", [echo.new_job({"n": 5, "who": "e"}, idempotency_key="k")], None),
        ("dup-2", [echo.new_job({"n": 5, "who": "e"}, idempotency_key="k")], None),
        ("good-2", [echo.new_job({"n": 6, "who": "f"})], None),
    ]
    futures: dict[str, Future[list[Enqueued]]] = {}
    with Blockers(app) as blockers:
        before = blockers.committer.batches
        for name, jobs, guard in subs:
            futures[name] = app.store.submit(jobs, guard=guard)
        blockers.wait_queued(len(subs))
    results = {name: f.exception(WAIT) or f.result() for name, f in futures.items()}
    # The seven were committed together (the blockers' batches aside).
    assert blockers.committer.batches - before <= len(subs) - 1
    assert blockers.committer.largest >= len(subs)

    bad, refused = results["bad-parent"], results["guard"]
    assert isinstance(bad, StoreError) and "FOREIGN KEY" in str(bad).upper()
    assert isinstance(refused, InvalidInput) and str(refused) == "refused by its guard"
    good = results["good"]
    assert isinstance(good, list) and good[0].job.payload == {"n": 1, "who": "a"}
    many = results["good-many"]
    assert isinstance(many, list) and [e.job.payload["n"] for e in many] == [0, 1, 2]
    d1, d2 = results["dup-1"], results["dup-2"]
    assert isinstance(d1, list) and isinstance(d2, list)
    assert d1[0].job.id == d2[0].job.id
    assert (d1[0].created, d2[0].created) == (True, False)
    # Stored: the blockers, good (1), good-many (3), one for the key, good-2 (1).
    assert _count(app) == len(blockers.ids) + 6
    stored = {e.job.id for r in results.values() if isinstance(r, list) for e in r}
    for job_id in stored:
        assert app.get_job(job_id).status.value == "queued"


def test_a_failed_commit_fails_every_caller_of_the_batch(app: Treadle) -> None:
    """The database refuses the batch's COMMIT (SQLite: a deferred foreign key): every
    caller gets the error and none of their jobs exists."""
    if app.store.backend != "sqlite":  # type: ignore[attr-defined]
        pytest.skip("PostgreSQL's foreign keys are not deferrable; see the backend kill test")
    echo = app.get_task("echo")

    def defer_keys(tx: Transaction) -> None:
        tx.execute("PRAGMA defer_foreign_keys = ON", {})

    with Blockers(app) as blockers:
        futures = [app.store.submit([echo.new_job({"n": i, "who": "x"})]) for i in range(5)]
        futures.append(app.store.submit(
            [NewJob(task="echo", payload={"n": 9, "who": "y"}, parent_id=10**12)],
            guard=defer_keys))
        blockers.wait_queued(len(futures))
    errors = [f.exception(WAIT) for f in futures]
    assert all(isinstance(e, StoreError) for e in errors), errors
    assert len({id(e) for e in errors}) == 1  # one failure, told to each caller
    assert _count(app) == len(blockers.ids)
    # The store still works afterwards.
    assert echo.defer(n=1, who="after").created


def test_a_guard_failing_a_commit_that_was_inline_leaves_the_store_usable(
        app: Treadle) -> None:
    """A refused COMMIT on the caller's own thread (inline) rolls back: the write lock is
    not left held (SQLite) and the next enqueue on that thread works."""
    if app.store.backend != "sqlite":  # type: ignore[attr-defined]
        pytest.skip("SQLite-specific: PostgreSQL's foreign keys are not deferrable")
    echo = app.get_task("echo")

    def defer_keys(tx: Transaction) -> None:
        tx.execute("PRAGMA defer_foreign_keys = ON", {})

    bad = NewJob(task="echo", payload={"n": 9, "who": "y"}, parent_id=10**12)
    with pytest.raises(StoreError):
        app.enqueue([bad], guard=defer_keys)
    assert echo.defer(n=2, who="after").created
    assert _count(app) == 1


# -- PostgreSQL: the backend dies mid-batch -------------------------------------------


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[Treadle]:
    app = Treadle(pg_url)

    @app.task(name="echo")
    def echo(n: int, who: str) -> int:
        return n

    yield app
    app.close()


def _killer(admin_url: str) -> Any:
    """A guard that terminates its own transaction's backend (once)."""
    fired = threading.Event()

    def kill_own_backend(tx: Transaction) -> None:
        if fired.is_set():
            return
        fired.set()
        pid = tx.execute("SELECT pg_backend_pid() AS pid", {})[0]["pid"]
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    return kill_own_backend


def test_backend_killed_mid_batch_fails_every_caller(pg_app: Treadle,
                                                     pg_admin_url: str) -> None:
    """Jobs without idempotency keys cannot be re-sent safely: every caller of the batch
    hears that its write may not have happened, and indeed none did (no COMMIT ran)."""
    echo = pg_app.get_task("echo")
    with Blockers(pg_app) as blockers:
        futures = [pg_app.store.submit([echo.new_job({"n": i, "who": "x"})])
                   for i in range(6)]
        futures.insert(3, pg_app.store.submit([echo.new_job({"n": 99, "who": "k"})],
                                              guard=_killer(pg_admin_url)))
        blockers.wait_queued(len(futures))
    errors = [f.exception(WAIT) for f in futures]
    assert all(isinstance(e, StoreUnavailable) for e in errors), errors
    assert all(e.detail.get("maybe_applied") for e in errors if isinstance(e, StoreUnavailable))
    assert _count(pg_app) == len(blockers.ids)  # nothing of the batch was committed
    assert echo.defer(n=1, who="after").created  # the pool replaced the dead connection


def test_backend_killed_mid_batch_with_keys_is_resent(pg_app: Treadle,
                                                      pg_admin_url: str) -> None:
    """A batch whose every job has an idempotency key is re-sent on a new connection
    (ADR 0007): every caller gets its job, each exactly once."""
    echo = pg_app.get_task("echo")
    with Blockers(pg_app) as blockers:
        futures = [pg_app.store.submit([echo.new_job({"n": i, "who": "x"},
                                                     idempotency_key=f"k{i}")])
                   for i in range(6)]
        futures.append(pg_app.store.submit(
            [echo.new_job({"n": 99, "who": "k"}, idempotency_key="k99")],
            guard=_killer(pg_admin_url)))
        blockers.wait_queued(len(futures))
    results = [f.result(WAIT)[0] for f in futures]
    assert sorted(e.job.payload["n"] for e in results) == [0, 1, 2, 3, 4, 5, 99]
    assert len({e.job.id for e in results}) == 7
    assert _count(pg_app) == len(blockers.ids) + 7


# -- the committer itself --------------------------------------------------------------


def _echo_commit(batch: Any) -> list[Any]:
    at = datetime.now(UTC)
    return [[Enqueued.new(nj, i, at) for i, nj in enumerate(s.jobs)] for s in batch]


def test_commit_raising_fails_its_batch_and_the_committer_goes_on() -> None:
    calls: list[int] = []

    def commit(batch: Any) -> list[Any]:
        calls.append(len(batch))
        if len(calls) == 1:
            raise StoreUnavailable("disk on fire")
        return _echo_commit(batch)

    gc = GroupCommitter("t", commit)
    try:
        job = NewJob(task="t")
        first = gc.submit([job])
        with pytest.raises(StoreUnavailable, match="disk on fire"):
            first.result(WAIT)
        assert len(gc.submit([job, job]).result(WAIT)) == 2
        assert len(gc.enqueue([job])) == 1
    finally:
        gc.close()


def test_the_committer_thread_is_restarted_after_a_crash() -> None:
    class Flaky(GroupCommitter):
        crashes = 0

        def _take(self) -> list[Submission]:
            if self.crashes == 0:
                self.crashes += 1
                raise RuntimeError("a bug in the committer loop")
            return super()._take()

    gc = Flaky("t", _echo_commit)
    try:
        assert len(gc.submit([NewJob(task="t")]).result(WAIT)) == 1
        assert gc.crashes == 1
        assert all(t.is_alive() for t in gc._threads)
    finally:
        gc.close()
    assert not any(t.is_alive() for t in gc._threads)


def test_closed_committer_refuses_and_answers_everyone() -> None:
    gc = GroupCommitter("t", _echo_commit)
    fut = gc.submit([NewJob(task="t")])
    gc.close()
    assert fut.done()  # committed during close, or told it was not
    with pytest.raises(StoreUnavailable):
        gc.enqueue([NewJob(task="t")])


def test_cancelled_before_its_batch_is_never_written(app: Treadle) -> None:
    echo = app.get_task("echo")
    with Blockers(app) as blockers:
        keep = app.store.submit([echo.new_job({"n": 1, "who": "keep"})])
        drop = app.store.submit([echo.new_job({"n": 2, "who": "drop"})])
        blockers.wait_queued(2)
        assert drop.cancel()
    assert keep.result(WAIT)[0].job.payload["who"] == "keep"
    assert _count(app) == len(blockers.ids) + 1



def test_postgres_enqueue_reads_the_database_clock_before_borrowing(pg_url: str) -> None:
    """The store's clock re-syncs with the server on its own connection. Read inside the
    enqueue's borrow, a pool whose every connection was held by enqueuers could not serve
    it (the code before group commit stalled with 16 producers on 4 connections). With one
    connection and a clock that re-syncs on every read, the re-sync must still succeed."""
    import structlog

    from treadle.store.postgres.dbclock import DatabaseClock
    from treadle.store.postgres.store import PostgresStore

    store = PostgresStore(pg_url, pool_size=1, timeout=1.0)
    try:
        store.clock = DatabaseClock(store._server_time, resync=0.0)
        with structlog.testing.capture_logs() as logs:
            done = store.enqueue([NewJob(task="echo", payload={"n": 1, "who": "x"})])
        assert done[0].created
        assert not [e for e in logs if e.get("event") == "cannot read the database clock"]
    finally:
        store.close()


def test_a_caller_arriving_during_a_commit_waits_for_the_committer() -> None:
    """With a lane free, a blocking caller that finds a commit in flight does not commit
    alone on its own thread (ADR 0027): it queues, and the committer threads gather what
    is waiting into batches. Each caller still gets its own answer, or its own error."""
    entered, release = threading.Event(), threading.Event()
    calls: list[tuple[str, int]] = []

    def commit(batch: Any) -> list[Any]:
        calls.append((threading.current_thread().name, len(batch)))
        if len(calls) == 1:
            entered.set()
            assert release.wait(WAIT)
        return [ValueError("refused") if sub.jobs[0].task == "bad" else r
                for sub, r in zip(batch, _echo_commit(batch), strict=True)]

    gc = GroupCommitter("t", commit, lanes=2)
    try:
        first = threading.Thread(target=gc.enqueue, args=([NewJob(task="t")],), name="first")
        first.start()
        assert entered.wait(WAIT)  # committing inline, one lane of two busy
        answers: dict[int, Any] = {}

        def call(i: int) -> None:
            try:
                answers[i] = gc.enqueue([NewJob(task="bad" if i == 2 else "t")])
            except ValueError as exc:
                answers[i] = exc

        callers = [threading.Thread(target=call, args=(i,), name=f"caller-{i}")
                   for i in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(WAIT)  # answered while the first commit is still held
        release.set()
        first.join(WAIT)
        assert calls[0] == ("first", 1)
        assert all(name.startswith("treadle-group-commit-t") for name, _ in calls[1:])
        assert sum(n for _, n in calls[1:]) == 4
        assert isinstance(answers.pop(2), ValueError)
        assert all(len(a) == 1 for a in answers.values())
    finally:
        gc.close()
