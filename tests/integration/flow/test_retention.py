"""Per-queue retention (ADR 0010) set from the CLI and the API, applied by the Pruner in the
worker's maintenance loop, its count on /metrics."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from treadle import Treadle
from treadle.api import ApiConfig
from treadle.api.app import create_app
from treadle.api.metrics import Metrics
from treadle.cli import app as cli
from treadle.core.ages import format_age, parse_age
from treadle.core.errors import InvalidInput
from treadle.core.job import DEFAULT_RETENTION
from treadle.core.lifecycle import JobStatus
from treadle.store import JobFilter
from treadle.testing import ManualClock, run_worker

KEY = "test-admin-key-0123456789"


def _retention(app: Treadle, queue: str) -> float:
    return next(q.retention_seconds for q in app.store.queues() if q.name == queue)


def test_ages_parse_and_format() -> None:
    assert [parse_age(t) for t in ("90s", "15m", "12h", "1d", " 2w ")] == \
        [90, 900, 43200, 86400, 14 * 86400]
    assert [format_age(s) for s in (604800, 5400, 86400 * 3, 59, 1.5)] == \
        ["1w", "90m", "3d", "59s", "1.5s"]
    for bad in ("", "soon", "1y", "-1d", "1e9d", "1\x00d", "\ud800", "9" * 50 + "s"):
        with pytest.raises(ValueError):
            parse_age(bad)


def test_cli_sets_and_lists_retention(db_url: str) -> None:
    app = Treadle(db_url)
    run = CliRunner().invoke
    res = run(cli, ["queues", "set-retention", "short", "12h", "--db", db_url])
    assert res.exit_code == 0 and "12h" in res.output
    assert _retention(app, "short") == 12 * 3600
    listed = run(cli, ["queues", "list", "--db", db_url])
    assert listed.exit_code == 0 and re.search(r"short .*12h", listed.output)
    for bad in ("soon", "30s", "11000d"):
        res = run(cli, ["queues", "set-retention", "short", bad, "--db", db_url])
        assert res.exit_code != 0, bad
        assert _retention(app, "short") == 12 * 3600  # refused: nothing changed
    res = run(cli, ["queues", "set-retention", "short", "default", "--db", db_url])
    assert res.exit_code == 0 and _retention(app, "short") == DEFAULT_RETENTION
    with pytest.raises(InvalidInput):
        app.store.set_retention("bad\x00queue", 3600)
    app.close()


def test_api_sets_retention_and_refuses_bad_values(db_url: str) -> None:
    app = Treadle(db_url)
    client = TestClient(create_app(app, ApiConfig(admin_key=KEY)))
    auth = {"Authorization": f"Bearer {KEY}"}
    r = client.patch("/v1/queues/short", json={"retention_seconds": 3600}, headers=auth)
    assert r.status_code == 200 and r.json()["retention_seconds"] == 3600
    for bad in (59, 10**12, "1d", True, 1.5):
        r = client.patch("/v1/queues/short", json={"retention_seconds": bad}, headers=auth)
        assert r.status_code == 422, bad
        assert r.headers["content-type"] == "application/problem+json"
    assert _retention(app, "short") == 3600
    listed = client.get("/v1/queues", headers=auth).json()["queues"]
    assert [q["retention_seconds"] for q in listed if q["name"] == "short"] == [3600]
    r = client.patch("/v1/queues/short", json={"retention_seconds": None}, headers=auth)
    assert r.status_code == 200 and r.json()["retention_seconds"] == DEFAULT_RETENTION
    client.close()
    app.close()


def test_pruner_in_the_maintenance_loop_counts_on_metrics(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="short_lived", queue="short")
    def short_lived() -> None:
        return None

    @app.task(name="kept")
    def kept() -> None:
        return None

    for h in short_lived.defer_many([{}] * 5) + kept.defer_many([{}] * 3):
        app.cancel(h.id)  # finished now
    app.store.set_retention("short", 3600)
    clock.advance(timedelta(hours=2).total_seconds())  # past 1 h, well within 7 days
    metrics = Metrics()
    app.observer = metrics.observer()
    client = TestClient(create_app(app, ApiConfig(admin_key=KEY), metrics=metrics))
    auth = {"Authorization": f"Bearer {KEY}"}

    def pruned() -> float:
        text = client.get("/metrics", headers=auth).text
        m = re.search(r"^treadle_jobs_pruned_total (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    assert pruned() == 0
    with run_worker(app, prune_interval=0.05):
        deadline = time.monotonic() + 20
        while pruned() < 5:
            assert time.monotonic() < deadline, "the pruner did not run"
            time.sleep(0.05)
    assert pruned() == 5
    left = app.list_jobs(JobFilter())
    assert {j.task for j in left} == {"kept"} and len(left) == 3
    assert all(j.status is JobStatus.CANCELLED for j in left)
    client.close()
    app.close()
