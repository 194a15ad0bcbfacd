"""A task with both a per-key concurrency limit and a per-key rate limit (ADR 0010,
migration 0010): a job runs only with a free slot under its concurrency key and budget
under its rate key, on both stores."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from treadle import Treadle
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import Job
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.store import JobFilter
from treadle.testing import ManualClock, migrated
from treadle.worker import Worker, WorkerConfig


def _done(app: Treadle, jobs: list[Job]) -> None:
    app.store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w") for j in jobs])


def _claim(app: Treadle, limit: int = 8) -> list[Job]:
    return app.store.claim(queues=None, worker="w", limit=limit, lease_seconds=30)


def _why(app: Treadle, job_id: int) -> str:
    why = app.why_not_running(app.get_job(job_id))
    assert why is not None
    return str(why["rule"])


def test_real_workers_hold_both_limits(db_url: str) -> None:
    """2 workers x 8 slots, 3 users x 2 slots, one vendor at 20 starts/s: observed runs
    never exceed 2 per user, stored starts never exceed 20 in any second, and the rate is
    used to within 10% (60 jobs start within 3 s / 0.9 of the first)."""
    app = Treadle(db_url)
    spans: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    @app.task(name="call", concurrency=("user:{user}", 2), rate_limit=("api:{vendor}", 20, 1.0))
    def call(user: str, vendor: str, n: int) -> None:
        start = time.monotonic()
        time.sleep(0.2)  # the work: long enough that the per-user slots fill
        with lock:
            spans.append((user, start, time.monotonic()))

    call.defer_many([{"user": f"u{i % 3}", "vendor": "acme", "n": i} for i in range(60)])
    workers = [Worker(app.store, app.executors(), WorkerConfig(concurrency=8, poll_interval=5))
               for _ in range(2)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        app.store.wait_for_finish([h.id for h in app.list_jobs(JobFilter(limit=100))], 12)
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(10)
    assert time.monotonic() - t0 < 15
    jobs = app.list_jobs(JobFilter(limit=100))
    assert [j.status.value for j in jobs] == ["succeeded"] * 60
    assert {j.attempt for j in jobs} == {1}  # waiting burnt no attempts
    for user in ("u0", "u1", "u2"):
        mine = [(s, e) for u, s, e in spans if u == user]
        events = sorted([(s, 1) for s, _ in mine] + [(e, -1) for _, e in mine])
        running = peak = 0
        for _, d in events:
            running += d
            peak = max(peak, running)
        assert peak == 2, (user, peak)  # the limit was reached, never passed
    starts = sorted(j.started_at.timestamp() for j in jobs if j.started_at)
    in_window = [sum(1 for x in starts[i:] if x < s + 1.0 - 1e-3) for i, s in enumerate(starts)]
    assert max(in_window) == 20
    assert starts[-1] - starts[0] <= 3.0 / 0.9, starts[-1] - starts[0]
    app.close()


def _dual_app(db_url: str, clock: ManualClock) -> Treadle:
    app = Treadle(db_url, clock=clock)

    @app.task(name="dual", concurrency=("user:{user}", 1), rate_limit=("api:{vendor}", 2, 10))
    def dual(user: str, vendor: str) -> None:
        return None

    @app.task(name="rated", rate_limit=("api:{vendor}", 2, 10))
    def rated(vendor: str) -> None:
        return None

    return app


def test_waiting_on_names_the_rule_that_holds(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    app = _dual_app(db_url, clock)
    dual = app.tasks["dual"]
    a1, a2, a3 = (dual.defer(user="ann", vendor="v") for _ in range(3))
    assert _why(app, a1.id) == "ready"
    assert [j.id for j in _claim(app)] == [a1.id]  # one slot for ann, rate budget left
    assert _why(app, a2.id) == "key_concurrency"
    _done(app, [app.get_job(a1.id)])
    assert [j.id for j in _claim(app)] == [a2.id]  # the second start of the window
    _done(app, [app.get_job(a2.id)])
    assert _why(app, a3.id) == "rate_limit"  # a free slot, but no budget
    assert _claim(app) == []
    assert app.get_job(a3.id).attempt == 0
    clock.advance(10.01)
    assert _why(app, a3.id) == "ready"
    assert [j.id for j in _claim(app)] == [a3.id]
    app.close()


def test_the_rate_key_is_shared_with_rate_only_tasks(db_url: str) -> None:
    """Different users (free slots each) share one vendor's budget, and so does a task
    with a rate limit only: both count the same starts."""
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    app = _dual_app(db_url, clock)
    r1 = app.tasks["rated"].defer(vendor="v")
    b = app.tasks["dual"].defer(user="bob", vendor="v")
    c = app.tasks["dual"].defer(user="cat", vendor="v")
    other = app.tasks["dual"].defer(user="dan", vendor="w")
    got = _claim(app)
    assert sorted(j.id for j in got) == sorted([r1.id, b.id, other.id])
    assert _why(app, c.id) == "rate_limit"
    r2 = app.tasks["rated"].defer(vendor="v")
    assert _why(app, r2.id) == "rate_limit"
    _done(app, got)
    assert _claim(app) == []  # the window, not the slots, holds both
    clock.advance(10.01)
    assert sorted(j.id for j in _claim(app)) == sorted([c.id, r2.id])
    app.close()


def test_both_limits_can_use_one_key(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="same", concurrency=("k:{x}", 2), rate_limit=("k:{x}", 3, 5))
    def same(x: str) -> None:
        return None

    handles = [same.defer(x="1") for _ in range(4)]
    first = _claim(app)
    assert len(first) == 2
    assert _why(app, handles[2].id) == "key_concurrency"
    _done(app, first)
    assert len(_claim(app)) == 1  # three starts in 5 s
    assert _why(app, handles[3].id) == "rate_limit"
    app.close()


def test_bad_dual_limits_are_refused(sqlite_url: str) -> None:
    app = Treadle(migrated(sqlite_url))
    with pytest.raises(ConfigurationError, match="limit"):
        app.task(name="n1", concurrency=("k", -1), rate_limit=("r", 5, 1))(lambda: None)
    with pytest.raises(ConfigurationError, match="limit"):
        app.task(name="n2", concurrency=("k", 1), rate_limit=("r", -5, 1))(lambda: None)
    with pytest.raises(ConfigurationError, match="period"):
        app.task(name="n3", concurrency=("k", 1), rate_limit=("r", 5, -1))(lambda: None)
    with pytest.raises(ConfigurationError, match="n4"):
        app.task(name="n4", concurrency=("k", 1), rate_limit=("{a!r}", 5, 1))(lambda a: None)

    def boom(payload: dict[str, Any]) -> str:
        raise RuntimeError("no key")

    t = app.task(name="raiser", concurrency=("k", 1), rate_limit=(boom, 5, 1))(lambda: None)
    with pytest.raises(InvalidInput, match="raiser"):
        t.new_job({})
    u = app.task(name="long", concurrency=("{x}", 1), rate_limit=("{y}", 5, 1))(
        lambda x, y: None)
    with pytest.raises(InvalidInput, match="long") as err:
        u.new_job({"x": "a", "y": "b" * 201})
    assert err.value.error_class.value == "invalid_input"
    with pytest.raises(InvalidInput, match="long"):
        u.new_job({"x": "a" * 201, "y": "b"})
    assert app.store.count_by_status() == {}  # nothing was stored
    app.close()


def test_concurrent_claimers_of_shared_keys_do_not_deadlock(db_url: str) -> None:
    """Four claimers over (user, vendor) pairs that share users and vendors, plans in
    shifting orders: every claim returns (no deadlock error: PostgreSQL found one in this
    test when each group's keys were locked in turn), every job runs once, and a watcher
    counting each user's running jobs never sees two."""
    app = Treadle(db_url)

    @app.task(name="pair", concurrency=("u:{u}", 1), rate_limit=("v:{v}", 1000, 1))
    def pair(u: int, v: int) -> None:
        return None

    rnd = random.Random(7)
    for i in range(240):
        pair.configure(priority=rnd.randrange(5)).defer(u=i % 12, v=rnd.randrange(4))
    errors: list[BaseException] = []
    claimed: list[int] = []
    seen: list[int] = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def claimer(wid: int) -> None:
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                jobs = app.store.claim(queues=None, worker=f"w{wid}", limit=4, lease_seconds=30)
                _done(app, jobs)
                with lock:
                    claimed.extend(j.id for j in jobs)
                    if len(claimed) >= 240:
                        return
        except BaseException as exc:  # reported below
            errors.append(exc)

    def watch() -> None:  # each count is one statement: a consistent view of one user
        while not stop.is_set():
            seen.extend(app.store.running_with_key(f"u:{u}") for u in range(12))

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stop.set()
    watcher.join(10)
    assert errors == []
    assert sorted(claimed) == sorted({*claimed}) and len(claimed) == 240
    assert len(seen) > 12 and max(seen) <= 1, (len(seen), max(seen))
    app.close()
