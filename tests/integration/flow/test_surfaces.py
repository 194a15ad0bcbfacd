"""Flow control on the API and CLI: GET /v1/schedules, waiting_on, schedules list, prune."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from treadle import Treadle
from treadle.api import ApiConfig
from treadle.api.app import create_app
from treadle.cli import app as cli
from treadle.store import JobFilter
from treadle.testing import ManualClock

KEY = "test-admin-key-0123456789"


def test_api_lists_schedules_and_says_why_a_job_waits(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.cron("0 3 * * *", name="nightly", tz="Europe/Stockholm")
    def nightly() -> None:
        return None

    @app.task(name="sync", concurrency=("user:{user}", 1))
    def sync(user: str) -> None:
        return None

    client = TestClient(create_app(app, ApiConfig(admin_key=KEY)))
    auth = {"Authorization": f"Bearer {KEY}"}
    body = client.get("/v1/schedules", headers=auth).json()
    [s] = body["schedules"]
    assert s["name"] == "nightly" and s["next_fires"][0].startswith("2026-03-02T02:00")

    later = sync.configure(delay=60).defer(user="ann")
    assert client.get(f"/v1/jobs/{later.id}", headers=auth).json()["waiting_on"]["rule"] == \
        "run_at"
    first, second = sync.defer(user="bob"), sync.defer(user="bob")
    app.store.claim(queues=None, worker="w", limit=1, lease_seconds=30)
    why = client.get(f"/v1/jobs/{second.id}", headers=auth).json()["waiting_on"]
    assert why["rule"] == "key_concurrency" and "user:bob" in why["message"]
    assert client.get(f"/v1/jobs/{first.id}", headers=auth).json()["waiting_on"] is None
    app.store.set_queue("default", paused=True)
    assert app.why_not_running(app.get_job(second.id))["rule"] == "queue_paused"  # type: ignore[index]
    app.close()


def test_cli_prune_deletes_old_finished_jobs_only(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="t")
    def t() -> None:
        return None

    done = [t.defer() for _ in range(3)]
    for h in done:
        app.cancel(h.id)
    keep = t.defer()
    clock.advance(timedelta(days=2).total_seconds())
    assert app.store.prune(limit=2, older_than=timedelta(days=3).total_seconds()) == 0
    assert app.store.prune() == 0  # default retention: 7 days
    result = CliRunner().invoke(cli, ["jobs", "prune", "--older-than", "1d", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "pruned 3" in result.output
    assert [j.id for j in app.list_jobs(JobFilter())] == [keep.id]
    bad = CliRunner().invoke(cli, ["jobs", "prune", "--older-than", "soon", "--db", db_url])
    assert bad.exit_code != 0
    app.close()


def test_api_and_cli_name_the_rule_holding_a_dual_limited_job(db_url: str) -> None:
    """A task with both limits: the API's and `treadle jobs show`'s waiting_on say which."""
    # The CLI reads with the system clock: start this test's clock at real time, so the
    # 60 s window is still open when the CLI looks.
    clock = ManualClock(datetime.now(UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="call", concurrency=("user:{user}", 1), rate_limit=("api:{vendor}", 1, 60))
    def call(user: str, vendor: str) -> None:
        return None

    client = TestClient(create_app(app, ApiConfig(admin_key=KEY)))
    auth = {"Authorization": f"Bearer {KEY}"}
    first, same_user, other_user = (call.defer(user=u, vendor="acme")
                                    for u in ("ann", "ann", "bob"))
    assert [j.id for j in app.store.claim(queues=None, worker="w", limit=8,
                                          lease_seconds=30)] == [first.id]
    why = client.get(f"/v1/jobs/{same_user.id}", headers=auth).json()["waiting_on"]
    assert why["rule"] == "key_concurrency" and "user:ann" in why["message"]
    why = client.get(f"/v1/jobs/{other_user.id}", headers=auth).json()["waiting_on"]
    assert why["rule"] == "rate_limit" and "api:acme" in why["message"]
    shown = CliRunner().invoke(cli, ["jobs", "show", str(other_user.id), "--json", "--db", db_url])
    assert shown.exit_code == 0, shown.output
    assert '"rule": "rate_limit"' in shown.output
    app.close()
