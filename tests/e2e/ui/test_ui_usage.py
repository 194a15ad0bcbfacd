"""The dashboard's usage section and charts read the store's aggregate (ADR 0022), in a
real browser; a tenant key sees its own tenant's usage only."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import ADMIN_KEY, Server, login, shot
from treadle.store.usage import UsageReader


def _wait_usage(server: Server, job_id: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not UsageReader(server.treadle.store).attempts(job_id):
        assert time.monotonic() < deadline, f"no usage row for job {job_id}"
        time.sleep(0.05)


def test_dashboard_usage_per_queue_and_tenant(page: Page, server: Server) -> None:
    mine = server.treadle.defer("ui.echo", {"message": "usage"}, tenant="acme")
    theirs = server.treadle.defer("ui.echo", {"message": "other"})
    _wait_usage(server, mine.id)
    _wait_usage(server, theirs.id)
    login(page, server)  # admin: per queue and per tenant
    expect(page.get_by_role("heading", name="Usage, last 24 hours")).to_be_visible()
    expect(page.locator("tr[data-usage='acme']")).to_be_visible()
    expect(page.locator("tr[data-usage='default']").first).to_be_visible()
    shot(page, "20-dashboard-usage")
    # The throughput chart's data come from the store aggregate: the jobs are counted.
    series = page.request.get(server.url + "/ui/data/series.json?window=15m").json()
    assert sum(series["succeeded"]) >= 2 and series["truncated"] is False
    page.context.clear_cookies()
    login(page, server, server.tenant_key)  # tenant acme
    expect(page.get_by_role("heading", name="Usage, last 24 hours")).to_be_visible()
    expect(page.locator("tr[data-usage='acme']")).to_have_count(0)  # no per-tenant table
    expect(page.get_by_role("heading", name="Per tenant")).to_have_count(0)
    own = httpx.get(server.url + "/v1/usage", headers={"Authorization":
                                                       f"Bearer {server.tenant_key}"}).json()
    assert [g["group"] for g in own["groups"]] == ["acme"]
    everyone = httpx.get(server.url + "/v1/usage",
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert {"acme", "default"} <= {g["group"] for g in everyone["groups"]}
