"""The job page follows a running job's live stream (ADR 0011): no reloads."""

from __future__ import annotations

import threading

from playwright.sync_api import Page, expect

from tests.e2e.ui.conftest import Server, login, shot
from treadle.context import JobContext


def test_job_page_watches_progress_move(page: Page, server: Server) -> None:
    gates = [threading.Event() for _ in range(3)]

    @server.treadle.task(name="ui.stepper", pass_context=True, retries=0, timeout=60)
    def stepper(ctx: JobContext) -> str:
        for i, gate in enumerate(gates, start=1):
            gate.wait(30)
            ctx.log(f"step {i} <b>not html</b>")
            ctx.progress(i, len(gates), message=f"step {i}")
            ctx.emit("turn", {"n": i})
        return "done"

    job = server.treadle.defer("ui.stepper")
    login(page, server)
    page.goto(f"{server.url}/jobs/{job.id}")
    page.evaluate("window.__noReload = 'still-here'")
    label = page.get_by_test_id("stream-progress-label")
    items = page.get_by_test_id("stream-items")
    for i, gate in enumerate(gates, start=1):
        gate.set()
        expect(label).to_have_text(f"{i} / 3 \u2014 step {i}", timeout=10_000)
        expect(items).to_contain_text(f"step {i} <b>not html</b>")
        expect(items).to_contain_text(f'turn: {{"n":{i}}}')
        expect(page.get_by_test_id("stream-progress")).to_have_attribute("value", str(i))
        if i == 2:
            shot(page, "streams-01-progress")
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "succeeded",
                                                               timeout=15_000)
    assert page.locator("[data-stream-items] b").count() == 0  # text, never markup
    assert page.evaluate("window.__noReload") == "still-here"
