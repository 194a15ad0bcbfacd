"""Browser tests of flow control in the control plane: the schedules page (ADR 0010), queue
retention, and releasing or discarding a quarantined job (ADR 0015)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim
from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import Server, login, shot
from treadle.core.job import JobKind, NewJob
from treadle.core.lifecycle import JobStatus


def _expected_fires(expr: str, tz: str, n: int) -> list[str]:
    """The next ``n`` fire times in UTC, straight from cronsim (not through Treadle)."""
    it = CronSim(expr, datetime.now(ZoneInfo(tz)))
    return [next(it).astimezone(UTC).isoformat() for _ in range(n)]


def test_schedules_page_lists_next_fires_and_paused_state(page: Page, server: Server) -> None:
    app = server.treadle
    # Rare ticks: the session's scheduler sees these too, and must not fire during tests.
    if "ui.nightly" not in app.tasks:
        @app.cron("0 3 * * *", name="ui.nightly", tz="Europe/Stockholm")
        def nightly() -> None:
            return None

        @app.cron("15 4 1 1 *", name="ui.new-year", overlap="allow", catch_up="all",
                  window=600)
        def new_year() -> None:
            return None

    app.set_schedule_paused("ui.new-year", True)
    login(page, server)
    page.get_by_role("link", name="Schedules").first.click()
    expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()
    nightly_row = page.locator("tr[data-schedule='ui.nightly']")
    expect(nightly_row.locator("td.mono").first).to_have_text("0 3 * * *")
    expect(nightly_row).to_contain_text("Europe/Stockholm")
    expect(nightly_row.locator("[data-state]")).to_have_attribute("data-state", "active")
    fires = nightly_row.locator("td.mono").last.locator("div")
    expect(fires).to_have_count(5)
    assert fires.all_inner_texts() == _expected_fires("0 3 * * *", "Europe/Stockholm", 5)
    paused_row = page.locator("tr[data-schedule='ui.new-year']")
    expect(paused_row.locator("[data-state]")).to_have_attribute("data-state", "paused")
    expect(paused_row).to_contain_text("allow")
    expect(paused_row).to_contain_text("all")
    shot(page, "20-schedules")

    app.set_schedule_paused("ui.new-year", False)  # resumed elsewhere (the CLI): reload
    page.reload()
    expect(paused_row.locator("[data-state]")).to_have_attribute("data-state", "active")
    new_year_fires = paused_row.locator("td.mono").last.locator("div")
    assert new_year_fires.all_inner_texts() == _expected_fires("15 4 1 1 *", "UTC", 5)
    # A schedule's name leads to its task's jobs.
    nightly_row.get_by_role("link", name="ui.nightly").click()
    expect(page).to_have_url(server.url + "/jobs?task=ui.nightly")


def test_queue_retention_is_set_from_the_queues_page(page: Page, server: Server) -> None:
    server.treadle.defer("ui.echo", {"message": "make the default queue exist"})
    login(page, server)
    page.goto(server.url + "/queues")
    row = page.locator("tr[data-queue='default']")
    field = row.get_by_label("Retention for default")
    expect(field).to_have_value("1w")
    field.fill("2d")
    row.get_by_role("button", name="Keep finished jobs of default this long").click()
    expect(page.get_by_role("status")).to_contain_text("kept 2d")
    assert server.treadle.store.queue("default").retention_seconds == 2 * 86400  # type: ignore[attr-defined]
    row.get_by_label("Retention for default").fill("soon")
    row.get_by_role("button", name="Keep finished jobs of default this long").click()
    expect(page.get_by_role("status")).to_contain_text("not an age")
    assert server.treadle.store.queue("default").retention_seconds == 2 * 86400  # type: ignore[attr-defined]
    row.get_by_label("Retention for default").fill("")
    row.get_by_role("button", name="Keep finished jobs of default this long").click()
    expect(page.get_by_role("status")).to_contain_text("kept 1w")


def _quarantined(server: Server) -> int:
    """A job whose worker dies under it: kind `media`, which the session's worker does not
    serve, claimed by a "worker" that never heartbeats; one crash is its limit."""
    store = server.treadle.store
    [made] = store.enqueue([NewJob(task="ui.poison", kind=JobKind.MEDIA, max_crashes=1)])
    [job] = store.claim(queues=None, worker="ui-dies", limit=1, lease_seconds=0.05,
                        kinds=["media"])
    assert job.id == made.job.id
    deadline = time.monotonic() + 10
    while store.get_job(job.id).status is not JobStatus.QUARANTINED:
        assert time.monotonic() < deadline, "the crash was not reaped"
        store.reap()
        time.sleep(0.02)
    return job.id


def test_release_and_discard_a_quarantined_job(page: Page, server: Server) -> None:
    job_id = _quarantined(server)
    login(page, server)
    page.goto(f"{server.url}/jobs?status=quarantined")
    page.get_by_role("link", name=f"#{job_id}", exact=True).click()
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "quarantined")
    expect(page.locator("#job-crashes")).to_contain_text("1 of 1")
    expect(page.locator("#job-crashes")).to_contain_text("ui-dies")
    expect(page.locator("#job-waiting-on")).to_have_attribute("data-rule", "quarantined")
    expect(page.locator(".timeline")).to_contain_text("Quarantined")
    shot(page, "21-job-quarantined")
    page.get_by_role("button", name="Release").click()
    expect(page.get_by_role("status")).to_contain_text("release requested")
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "queued")
    expect(page.get_by_role("button", name="Release")).to_have_count(0)
    assert server.treadle.get_job(job_id).crashes == ()
    # Still queued (nothing here runs `media` jobs): cancel it so no stray work is left.
    server.treadle.cancel(job_id)

    again = _quarantined(server)
    page.goto(f"{server.url}/jobs/{again}")
    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_role("status")).to_contain_text("discard requested")
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "failed")
    expect(page.locator(".timeline")).to_contain_text("Discarded from quarantine")
    assert server.treadle.get_job(again).status is JobStatus.FAILED


def test_job_page_names_the_rate_limit_holding_a_dual_limited_job(
    page: Page, server: Server
) -> None:
    """A task with both per-key limits (ADR 0010): once one job has used the vendor's
    budget, another user's job (a free slot of its own) waits on the rate limit."""
    app = server.treadle
    if "ui.dual" not in app.tasks:
        @app.task(name="ui.dual", concurrency=("user:{user}", 1),
                  rate_limit=("vendor:{vendor}", 1, 3600), retries=0)
        def dual(user: str, vendor: str) -> None:
            return None

    vendor = f"v{time.time_ns()}"  # a fresh window for this run
    first = app.tasks["ui.dual"].defer(user="ann", vendor=vendor)
    second = app.tasks["ui.dual"].defer(user="bob", vendor=vendor)
    deadline = time.monotonic() + 15
    while app.get_job(first.id).status is JobStatus.QUEUED:  # the session's worker claims it
        assert time.monotonic() < deadline, "the first job was never claimed"
        time.sleep(0.05)
    login(page, server)
    page.goto(f"{server.url}/jobs/{second.id}")
    why = page.locator("#job-waiting-on")
    expect(why).to_have_attribute("data-rule", "rate_limit")
    expect(why).to_contain_text(f"vendor:{vendor}")
    assert app.get_job(second.id).attempt == 0
    shot(page, "23-job-waiting-on-rate-limit")
