"""Weighted tenant fairness in the claim (ADR 0010), on both stores."""

from __future__ import annotations

import time

from treadle import Treadle
from treadle.core.lifecycle import JobStatus
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.store import JobFilter


def _app(db_url: str) -> Treadle:
    app = Treadle(db_url)

    @app.task(name="noop")
    def noop(n: int = 0) -> None:
        return None

    return app


def test_a_small_tenant_is_not_stuck_behind_a_burst(db_url: str) -> None:
    """A enqueues 5,000, then B 20: B's jobs all start within 2 s while A still drains."""
    app = _app(db_url)
    noop = app.tasks["noop"]
    app.enqueue([noop.new_job({"n": i}, tenant="a") for i in range(5000)])
    b_ids = {h.id for h in app.enqueue([noop.new_job({"n": i}, tenant="b") for i in range(20)])}
    t0 = time.monotonic()
    started: set[int] = set()
    a_started = 0
    while not b_ids <= started:
        jobs = app.store.claim(queues=None, worker="w", limit=8, lease_seconds=30)
        assert jobs, "a slot was left idle while tenants had runnable work"
        started |= {j.id for j in jobs}
        a_started += sum(j.tenant == "a" for j in jobs)
        app.store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w")
                            for j in jobs])
    assert time.monotonic() - t0 < 2.0
    assert a_started <= 40  # B got about half of every claim
    assert app.store.count_by_status().get("queued", 0) > 4900  # A's burst still draining
    app.close()


def test_weights_share_slots_and_no_slot_idles(db_url: str) -> None:
    app = _app(db_url)
    noop = app.tasks["noop"]
    app.store.set_tenant_weight("a", 3)
    assert app.store.tenant_weights() == {"a": 3}
    app.enqueue([noop.new_job({}, tenant=t) for t in ("a", "b") for _ in range(50)])
    got = app.store.claim(queues=None, worker="w", limit=40, lease_seconds=30)
    by = {t: sum(j.tenant == t for j in got) for t in ("a", "b")}
    assert by == {"a": 30, "b": 10}
    # B has only 40 left, A 20: a claim for 100 takes all 60 (shares fill each other's gap)
    assert len(app.store.claim(queues=None, worker="w", limit=100, lease_seconds=30)) == 60
    assert not app.list_jobs(JobFilter(statuses=(JobStatus.QUEUED,)))
    app.close()
