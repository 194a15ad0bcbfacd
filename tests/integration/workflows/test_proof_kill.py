"""The durable-workflow proofs (ADR 0009), worker processes killed with SIGKILL, both stores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.workflows.procs import WorkerProcs, wait_until
from tests.integration.workflows.wf_app import fan, six_steps
from treadle import JobStatus, Treadle
from treadle.workflows import StepStatus


@pytest.fixture
def procs(db_url: str, tmp_path: Path) -> Iterator[WorkerProcs]:
    marks, logs = tmp_path / "marks", tmp_path / "logs"
    marks.mkdir()
    logs.mkdir()
    w = WorkerProcs(db_url, marks, logs)
    yield w
    w.stop_all()
    print(w.tracebacks())


def test_six_steps_with_the_worker_killed_between_steps(
    db_url: str, procs: WorkerProcs
) -> None:
    app = Treadle(db_url)
    h = app.enqueue([six_steps.new_job({"seconds": 0.3})])[0]
    # At each kill: which steps were checkpointed, and how often each had started.
    at_kill: list[tuple[set[str], Counter[str]]] = []
    for after in ("s2", "s4"):
        victim = procs.start()

        def ended(a: str = after) -> bool:
            return f"end {a}" in procs.lines()

        wait_until(ended, 60, f"step {after} to end", tick=app.store.reap)
        procs.kill9(victim)
        done = {s.name for s in app.job_steps(h.id) if s.status is StepStatus.COMPLETED}
        at_kill.append((done, procs.count("start")))
    procs.start()
    wait_until(lambda: app.get_job(h.id).is_finished, 90, "the workflow to finish",
               tick=app.store.reap)
    job = app.get_job(h.id)
    assert job.status is JobStatus.SUCCEEDED, (job.error, procs.tracebacks())
    names = [f"s{i}" for i in range(1, 7)]
    assert job.result == names
    starts = procs.count("start")
    assert set(starts) == set(names)
    assert {"s1"} <= at_kill[0][0] and {"s1", "s2", "s3"} <= at_kill[1][0]
    for done, started in at_kill:
        for name in done:  # a checkpointed step never runs again
            assert starts[name] == started[name], (name, starts, started)
    assert starts["s1"] == 1 and starts["s6"] == 1
    assert all(n <= 2 for n in starts.values()), starts  # the interrupted one at most twice
    assert sum(1 for n in starts.values() if n == 2) <= 2  # one per kill at most
    steps = app.job_steps(h.id)
    assert [s.name for s in steps] == names
    assert all(s.status is StepStatus.COMPLETED for s in steps)
    # Each kill is seen by the worker's liveness (ADR 0018) or, failing that, its lease.
    reasons = [e.reason for e in app.job_events(h.id)]
    assert reasons.count("lease_expired") + reasons.count("worker_died") == 2
    app.close()


def test_map_over_200_children_with_two_workers_killed_during_fan_out(
    db_url: str, procs: WorkerProcs
) -> None:
    app = Treadle(db_url)
    h = app.enqueue([fan.new_job({"n": 200, "seconds": 0.05})])[0]
    first = [procs.start(concurrency=4) for _ in range(3)]
    wait_until(lambda: sum(procs.count("child").values()) >= 40, 60, "40 children to run")
    procs.kill9(first[0])
    procs.kill9(first[1])
    procs.start(concurrency=4)
    wait_until(lambda: app.get_job(h.id).is_finished, 180, "the workflow to finish",
               tick=app.store.reap)
    job = app.get_job(h.id)
    assert job.status is JobStatus.SUCCEEDED, (job.error, procs.tracebacks())
    assert job.result == {"n": 200, "squares": [i * i for i in range(200)]}
    # The parent resumed exactly once after the fan-out: one wake-up, one "after" step.
    assert [e.reason for e in app.job_events(h.id)].count("woken") == 1
    steps = procs.count("step")
    assert steps["after"] == 1 and steps["prep"] == 1
    children = app.job_steps(h.id)[1].children
    assert len(children) == 200
    assert all(app.get_job(c).parent_id == h.id for c in children)
    ran = procs.count("child")
    assert set(ran) == {str(i) for i in range(200)}  # every child ran; killed ones again
    app.close()
