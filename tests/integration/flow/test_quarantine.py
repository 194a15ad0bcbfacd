"""Poison-job quarantine (ADR 0015) on both stores: crashes counted only when the worker
died, quarantine after max_crashes, release and discard from the store, API and CLI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from treadle import Treadle
from treadle.api import ApiConfig
from treadle.api.app import create_app
from treadle.cli import app as cli
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import NewJob
from treadle.core.lifecycle import JobStatus
from treadle.store import JobFilter
from treadle.testing import ManualClock

KEY = "test-admin-key-0123456789"
LEASE = 5.0


def _app(db_url: str) -> tuple[Treadle, ManualClock]:
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="poison")
    def poison() -> None:
        return None

    @app.task(name="fragile", max_crashes=1, retries=5)
    def fragile() -> None:
        return None

    @app.task(name="fine")
    def fine() -> None:
        return None

    return app, clock


def _crash(app: Treadle, clock: ManualClock, worker: str) -> int:
    """A worker claims the next job and dies at once: no heartbeat ever stamps its record.
    After its first crash a job is a suspect, claimed only alone (ADR 0024)."""
    [job] = (app.store.claim(queues=None, worker=worker, limit=1, lease_seconds=LEASE)
             or app.store.claim(queues=None, worker=worker, limit=1, lease_seconds=LEASE,
                                suspect=True))
    clock.advance(LEASE + 0.5)
    res = app.store.reap()
    assert res.total == 1
    return job.id


def _quarantine(app: Treadle, clock: ManualClock) -> int:
    h = app.tasks["poison"].defer()
    for n in (1, 2, 3):
        assert _crash(app, clock, f"w{n}") == h.id
    assert app.get_job(h.id).status is JobStatus.QUARANTINED
    return h.id


def test_third_crash_quarantines_the_job_with_its_history(db_url: str) -> None:
    app, clock = _app(db_url)
    job_id = _quarantine(app, clock)
    job = app.get_job(job_id)
    assert [(c.worker, c.attempt) for c in job.crashes] == [("w1", 1), ("w2", 2), ("w3", 3)]
    assert job.max_crashes == 3 and job.finished_at is None and not job.is_finished
    assert job.error is not None and job.error.detail["max_crashes"] == 3
    events = app.job_events(job_id)
    assert [e.reason for e in events] == [
        "enqueued", "claimed", "lease_expired", "claimed", "lease_expired", "claimed",
        "quarantined"]
    assert [c["worker"] for c in events[-1].detail["crashes"]] == ["w1", "w2", "w3"]
    # Other jobs keep flowing; the quarantined one is never claimed again.
    other = app.tasks["fine"].defer()
    claimed = app.store.claim(queues=None, worker="w4", limit=10, lease_seconds=LEASE)
    assert [j.id for j in claimed] == [other.id]
    listed = app.list_jobs(JobFilter(statuses=(JobStatus.QUARANTINED,)))
    assert [j.id for j in listed] == [job_id]
    assert app.store.count_by_status()["quarantined"] == 1
    app.close()


def test_a_live_worker_letting_a_lease_lapse_is_not_a_crash(db_url: str) -> None:
    app, clock = _app(db_url)
    h = app.tasks["fragile"].defer()  # max_crashes=1: one crash would quarantine it
    for _ in range(3):
        app.store.heartbeat(worker="live", leases=[], lease_seconds=LEASE)
        app.store.claim(queues=None, worker="live", limit=1, lease_seconds=LEASE)
        # The worker stays alive (heartbeats go on) but stops renewing this lease.
        for _ in range(4):
            clock.advance(LEASE / 3)
            app.store.heartbeat(worker="live", leases=[], lease_seconds=LEASE)
        assert app.store.reap().requeued == 1
    job = app.get_job(h.id)
    assert job.status is JobStatus.QUEUED and job.crashes == () and job.attempt == 3
    # The same job, its worker now dead: the first crash quarantines it.
    _crash(app, clock, "dead")
    assert app.get_job(h.id).status is JobStatus.QUARANTINED
    app.close()


def test_release_resets_the_count_and_discard_fails_for_good(db_url: str) -> None:
    app, clock = _app(db_url)
    job_id = _quarantine(app, clock)
    released = app.release(job_id)
    assert released.status is JobStatus.QUEUED and released.crashes == ()
    assert released.attempts_left == 4  # the three crashes' attempts given back
    assert app.job_events(job_id)[-1].reason == "quarantine_released"
    # Counted afresh: two more crashes are not enough, the third quarantines it again.
    for n in (4, 5):
        _crash(app, clock, f"w{n}")
        assert app.get_job(job_id).status is JobStatus.QUEUED
    app.release(job_id)  # not quarantined: nothing changes
    assert app.job_events(job_id)[-1].reason == "lease_expired"
    _crash(app, clock, "w6")
    again = app.get_job(job_id)
    assert again.status is JobStatus.QUARANTINED and len(again.crashes) == 3
    gone = app.discard(job_id)
    assert gone.status is JobStatus.FAILED and gone.finished_at is not None
    assert gone.error is not None and "discarded" in gone.error.message
    assert app.job_events(job_id)[-1].reason == "discarded"
    assert app.discard(job_id).status is JobStatus.FAILED  # a second discard: unchanged
    assert [e.reason for e in app.job_events(job_id)].count("discarded") == 1
    app.close()


def test_cancel_takes_a_quarantined_job_out_too(db_url: str) -> None:
    app, clock = _app(db_url)
    job_id = _quarantine(app, clock)
    assert app.cancel(job_id).status is JobStatus.CANCELLED
    app.close()


def test_max_crashes_is_set_per_task_and_validated(db_url: str) -> None:
    app, clock = _app(db_url)
    h = app.tasks["fragile"].defer()
    _crash(app, clock, "w1")
    assert app.get_job(h.id).status is JobStatus.QUARANTINED
    for bad in (0, -1, 1001, True, 2.5, "3"):
        with pytest.raises(ConfigurationError, match="max_crashes"):
            app.task(name=f"bad{bad!r}", max_crashes=bad)(lambda: None)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="max_crashes"):
            NewJob(task="t", max_crashes=bad)  # type: ignore[arg-type]
    assert not any(name.startswith("bad") for name in app.tasks)
    app.close()


def test_api_lists_releases_and_discards_quarantined_jobs(db_url: str) -> None:
    app, clock = _app(db_url)
    first, second, third = (_quarantine(app, clock) for _ in range(3))
    fine = app.tasks["fine"].defer()
    client = TestClient(create_app(app, ApiConfig(admin_key=KEY)))
    auth = {"Authorization": f"Bearer {KEY}"}
    page = client.get("/v1/jobs", params={"status": "quarantined"}, headers=auth).json()
    assert [j["id"] for j in page["jobs"]] == [third, second, first]
    assert [c["worker"] for c in page["jobs"][0]["crashes"]] == ["w1", "w2", "w3"]
    why = client.get(f"/v1/jobs/{first}", headers=auth).json()["waiting_on"]
    assert why["rule"] == "quarantined" and "3 times" in why["message"]
    r = client.post(f"/v1/jobs/{first}/release", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "queued" and r.json()["crashes"] == []
    r = client.post(f"/v1/jobs/{second}/discard", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "failed"
    for path in (f"/v1/jobs/{first}/discard", f"/v1/jobs/{fine.id}/release"):
        r = client.post(path, headers=auth)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:treadle:problem:not-quarantined"
    assert client.post("/v1/jobs/999999/release", headers=auth).status_code == 404
    assert client.post(f"/v1/jobs/{first}/release").status_code == 401
    assert app.get_job(first).status is JobStatus.QUEUED  # refused requests changed nothing
    metrics = client.get("/metrics", headers=auth).text
    assert 'treadle_jobs_by_status{status="quarantined"} 1.0' in metrics
    client.close()
    app.close()


def test_cli_releases_and_discards_and_refuses_other_jobs(db_url: str) -> None:
    app, clock = _app(db_url)
    first, second = _quarantine(app, clock), _quarantine(app, clock)
    run = CliRunner().invoke
    listed = run(cli, ["jobs", "list", "--status", "quarantined", "--json", "--db", db_url])
    assert listed.exit_code == 0 and f'"id": {second}' in listed.output
    res = run(cli, ["jobs", "release", str(first), "--db", db_url])
    assert res.exit_code == 0 and "queued" in res.output
    res = run(cli, ["jobs", "discard", str(second), "--db", db_url])
    assert res.exit_code == 0 and "failed" in res.output
    res = run(cli, ["jobs", "discard", str(first), "--db", db_url])
    assert res.exit_code != 0 and "only quarantined jobs" in res.output
    assert app.get_job(first).status is JobStatus.QUEUED
    res = run(cli, ["jobs", "release", "424242", "--db", db_url])
    assert res.exit_code != 0
    app.close()
