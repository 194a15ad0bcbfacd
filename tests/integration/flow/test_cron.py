"""Cron schedules (ADR 0010): one job per tick across schedulers, overlap, catch-up,
pause/resume, and refusal of bad declarations. The injected clock stands in for time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from treadle import Treadle
from treadle.core.errors import ConfigurationError
from treadle.store import JobFilter
from treadle.testing import ManualClock
from treadle.worker import Scheduler

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _app(db_url: str, clock: ManualClock, **cron: object) -> Treadle:
    app = Treadle(db_url, clock=clock)

    @app.cron(str(cron.pop("expr", "*/10 * * * * *")), name="tick", **cron)  # type: ignore[arg-type]
    def tick() -> None:
        return None

    return app


def test_three_schedulers_one_job_per_tick(db_url: str) -> None:
    clock = ManualClock(START)
    app = _app(db_url, clock, overlap="allow")
    schedulers = [Scheduler(app, clock) for _ in range(3)]
    assert sum(s.run_once() for s in schedulers) == 0  # first sight: no back-fill
    for _ in range(5):
        clock.advance(10)
        assert sum(s.run_once() for s in schedulers) == 1
    jobs = app.list_jobs(JobFilter(task="tick"))
    assert len(jobs) == 5
    assert sorted(int(j.run_at.timestamp()) % 10 for j in jobs) == [0] * 5
    app.close()


def test_overlap_skip_and_buffer_one(db_url: str) -> None:
    clock = ManualClock(START)
    app = _app(db_url, clock, overlap="skip")
    s = Scheduler(app, clock)
    s.run_once()
    clock.advance(10)
    assert s.run_once() == 1
    clock.advance(10)
    assert s.run_once() == 0  # the first run is still queued: skipped
    app.close()

    app = _app(db_url, clock, overlap="buffer_one")
    s = Scheduler(app, clock)
    clock.advance(10)
    assert s.run_once() == 0  # one is already waiting to start
    jobs = app.store.claim(queues=None, worker="w", limit=10, lease_seconds=30)
    assert len(jobs) == 1
    clock.advance(10)
    assert s.run_once() == 1  # running is fine: one may wait behind it
    app.close()


def test_catch_up_latest_and_all_after_downtime(db_url: str) -> None:
    clock = ManualClock(START)
    app = _app(db_url, clock, overlap="allow", catch_up="all", window=60)
    s = Scheduler(app, clock)
    s.run_once()
    clock.advance(300)  # 30 ticks missed; the window keeps the last 60 s of them
    assert s.run_once() == 6
    app.close()

    app = _app(db_url, clock, overlap="allow", catch_up="latest")
    s = Scheduler(app, clock)
    clock.advance(300)
    assert s.run_once() == 1
    [latest] = app.list_jobs(JobFilter(task="tick", limit=1))
    assert latest.run_at == clock.now().replace(microsecond=0)
    app.close()


def test_pause_and_resume(db_url: str) -> None:
    clock = ManualClock(START)
    app = _app(db_url, clock, overlap="allow")
    s = Scheduler(app, clock)
    s.run_once()
    app.store.set_schedule_paused("tick", True)
    clock.advance(30)
    assert s.run_once() == 0
    app.store.set_schedule_paused("tick", False)
    assert s.run_once() == 0  # the paused ticks are not replayed
    clock.advance(10)
    assert s.run_once() == 1
    info = {i["name"]: i for i in app.schedules()}
    assert info["tick"]["paused"] is False and len(info["tick"]["next_fires"]) == 3
    app.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"expr": "61 * * * *"}, "bad cron expression"),
        ({"expr": "* * *"}, "not a cron expression"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"overlap": "sometimes"}, "sometimes"),
    ],
)
def test_bad_schedules_are_refused_naming_the_task(
    sqlite_url: str, kwargs: dict[str, str], needle: str
) -> None:
    app = Treadle(sqlite_url)
    expr = kwargs.pop("expr", "* * * * *")
    with pytest.raises(ConfigurationError, match=needle) as err:

        @app.cron(expr, name="nightly", **kwargs)  # type: ignore[arg-type]
        def nightly() -> None:
            return None

    assert "nightly" in str(err.value)
    assert "nightly" not in app.tasks
    app.close()


def test_time_zone_and_seconds_field() -> None:
    from treadle.core.cron import CronSchedule

    s = CronSchedule.build("t", "0 3 * * *", tz="Europe/Stockholm")
    [nxt] = s.next_fires(START)
    assert nxt == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 03:00 CET
    s6 = CronSchedule.build("t", "*/10 * * * * *")
    assert s6.next_fires(START, 2) == [
        datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC), datetime(2026, 3, 1, 12, 0, 20, tzinfo=UTC)]
