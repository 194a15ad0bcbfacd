from __future__ import annotations

from treadle import Treadle
from treadle.store import JobFilter
from treadle.testing import ManualClock
from treadle.worker import Scheduler


def test_periodic_task_gets_one_job_per_slot_however_many_schedulers_tick(db_url: str) -> None:
    clock = ManualClock()
    app = Treadle(db_url, clock=clock)

    @app.periodic(every=60, name="cleanup", payload={"days": 7})
    def cleanup(days: int) -> int:
        return days

    schedulers = [Scheduler(app, clock), Scheduler(app, clock)]
    assert sum(s.run_once() for s in schedulers) == 1
    assert sum(s.run_once() for s in schedulers) == 0  # same slot: nothing new
    clock.advance(60)
    assert sum(s.run_once() for s in schedulers) == 1
    jobs = app.list_jobs(JobFilter(task="cleanup"))
    assert len(jobs) == 2 and all(j.payload == {"days": 7} for j in jobs)
    assert len({j.idempotency_key for j in jobs}) == 2
    app.close()
