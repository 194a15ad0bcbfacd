"""Per-key rate limits (ADR 0010): a sliding window over the jobs' own start times."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from treadle import Treadle
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.store import JobFilter
from treadle.testing import ManualClock
from treadle.worker import Worker, WorkerConfig


def _app(db_url: str, clock: ManualClock | None = None) -> Treadle:
    app = Treadle(db_url, clock=clock) if clock else Treadle(db_url)

    @app.task(name="call", rate_limit=("api:{vendor}", 20, 1.0))
    def call(vendor: str, n: int = 0) -> None:
        return None

    return app


def test_twenty_per_second_holds_over_ten_seconds(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    app = _app(db_url, clock)
    app.tasks["call"].defer_many([{"vendor": "acme", "n": i} for i in range(400)])
    app.tasks["call"].defer_many([{"vendor": "other", "n": i} for i in range(5)])
    starts: list[float] = []
    for _step in range(1000):  # 10 s of clock time in 10 ms steps, 4 claimers each step
        for w in range(4):
            jobs = app.store.claim(queues=None, worker=f"w{w}", limit=8, lease_seconds=30)
            starts.extend(clock.now().timestamp() for j in jobs if j.concurrency_key == "api:acme")
            app.store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w")
                                for j in jobs])
        clock.advance(0.01)
    t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    assert 180 <= len(starts) <= 220
    for i, s in enumerate(starts):  # any window of one second holds at most 20 starts
        assert sum(1 for x in starts[i:] if x < s + 1.0 - 1e-9) <= 20
    assert max(starts) - t0 <= 10.0
    waiting = app.store.count_by_status().get("queued", 0)
    assert waiting == 400 - len(starts)
    # waiting jobs burn no attempts and say why they wait
    app.store.claim(queues=None, worker="w", limit=50, lease_seconds=30)  # the window fills
    queued = next(j for j in app.list_jobs(JobFilter(limit=1000)) if j.status.value == "queued")
    assert queued.attempt == 0
    assert app.why_not_running(queued)["rule"] == "rate_limit"  # type: ignore[index]
    app.close()


def test_workers_wake_when_the_window_moves_on(db_url: str) -> None:
    """Real workers: throughput follows the limit (no 2 s poll stalls) and holds it."""
    app = _app(db_url)
    app.tasks["call"].defer_many([{"vendor": "acme", "n": i} for i in range(60)])
    workers = [Worker(app.store, app.executors(), WorkerConfig(concurrency=8, poll_interval=5))
               for _ in range(2)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(1.6)
    for w in workers:
        w.stop()
    for t in threads:
        t.join(10)
    jobs = app.list_jobs(JobFilter(limit=1000))
    started = sorted(j.started_at.timestamp() for j in jobs if j.started_at)
    assert 30 <= len(started) <= 40, len(started)  # ~20/s over 1.6 s, burst included
    for i, s in enumerate(started):
        assert sum(1 for x in started[i:] if x < s + 1.0 - 1e-3) <= 20
    assert time.monotonic() - t0 < 15
    app.close()


def test_bad_rate_limits_are_refused(sqlite_url: str) -> None:
    app = Treadle(sqlite_url)
    with pytest.raises(ConfigurationError, match="period"):
        app.task(name="r0", rate_limit=("k", 5, 0))(lambda: None)
    t = app.task(name="r2", rate_limit=("{v}", 5, 1))(lambda v: None)
    with pytest.raises(InvalidInput, match="r2") as err:
        t.new_job({"v": "x" * 201})
    assert err.value.error_class.value == "invalid_input"
    app.close()
