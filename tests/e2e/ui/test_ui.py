"""Browser tests of the control plane (ADR 0501): log in, submit, watch live, steer, escape."""

from __future__ import annotations

import json
import time

import httpx
from playwright.sync_api import Dialog, Page, expect

from tests.e2e.ui.conftest import ADMIN_KEY, Server, login, need_bwrap, shot
from treadle.api.auth import keystore_for
from treadle.core.lifecycle import JobStatus


def _wait_status(server: Server, job_id: int, status: JobStatus, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while server.treadle.get_job(job_id).status is not status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.05)


def _mark(page: Page) -> None:
    """A value that only survives if the page is never reloaded."""
    page.evaluate("window.__noReload = 'still-here'")


def _assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload") == "still-here"


def test_login_and_every_page_renders(page: Page, server: Server) -> None:
    page.goto(server.url + "/jobs")
    expect(page).to_have_url(server.url + "/login?next=%2Fjobs")
    shot(page, "01-login")
    page.fill("input[name=api_key]", "not-a-key")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    login(page, server)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "treadle_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert ADMIN_KEY not in cookie["value"]
    shot(page, "02-dashboard")
    for path, heading in [("/jobs", "Jobs"), ("/queues", "Queues"), ("/metrics", "Metrics")]:
        page.goto(server.url + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def test_submit_and_watch_it_succeed_without_reload(page: Page, server: Server) -> None:
    login(page, server)
    page.goto(server.url + "/jobs")
    page.click("summary:has-text('Submit a job')")
    page.select_option("#s-task", "ui.echo")
    page.fill("#s-payload", json.dumps({"message": "hello"}))
    page.fill("#s-delay", "1.5")  # stays queued long enough to be seen queued
    shot(page, "03-jobs-submit")
    page.click("#submit button[type=submit]")
    page.wait_for_url(f"{server.url}/jobs/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    status = page.locator("#job-status .badge")
    expect(status).to_have_attribute("data-status", "queued")
    _mark(page)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=15_000)
    _assert_not_reloaded(page)
    assert server.treadle.get_job(job_id).status is JobStatus.SUCCEEDED
    expect(page.get_by_test_id("result")).to_contain_text('"echo": "hello"')
    expect(page.locator(".timeline")).to_contain_text("Claimed")
    expect(page.locator(".timeline")).to_contain_text("Succeeded")
    expect(page.locator(".timeline .log")).to_contain_text("echoing hello")
    shot(page, "04-job-detail")

    # The list updates in place too (status cells swapped out-of-band, rows kept).
    later = server.treadle.defer("ui.echo", {"message": "list"}, delay=1.5)
    page.goto(server.url + "/jobs")
    cell = page.locator(f"#job-status-{later.id}")
    expect(cell).to_have_attribute("data-status", "queued")
    page.check(f"input[name=ids][value='{later.id}']")
    _mark(page)
    expect(cell).to_have_attribute("data-status", "succeeded", timeout=15_000)
    _assert_not_reloaded(page)
    expect(page.locator(f"input[name=ids][value='{later.id}']")).to_be_checked()
    shot(page, "05-jobs-list")


def test_retry_failed_job(page: Page, server: Server) -> None:
    job = server.treadle.defer("ui.boom", {"message": "kaput"})
    _wait_status(server, job.id, JobStatus.FAILED)
    login(page, server)
    page.goto(f"{server.url}/jobs/{job.id}")
    expect(page.locator(".err")).to_contain_text("permanent")
    expect(page.locator(".err")).to_contain_text("boom: kaput")
    shot(page, "06-job-failed")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("retry requested")
    expect(page.locator(".timeline")).to_contain_text("Retried by a user")
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "failed",
                                                               timeout=15_000)
    assert server.treadle.get_job(job.id).attempt == 2
    expect(page.locator(".record")).to_contain_text("2 of 2")
    shot(page, "07-job-retried")


def test_bulk_retry_from_list(page: Page, server: Server) -> None:
    jobs = [server.treadle.defer("ui.boom", {"message": f"bulk{i}"}) for i in range(2)]
    for j in jobs:
        _wait_status(server, j.id, JobStatus.FAILED)
    login(page, server)
    page.goto(server.url + "/jobs?status=failed&task=ui.boom")
    for j in jobs:
        page.check(f"input[name=ids][value='{j.id}']")
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_role("status")).to_contain_text("Retry: 2 job(s) done")
    for j in jobs:
        _wait_status(server, j.id, JobStatus.FAILED)
        assert server.treadle.get_job(j.id).attempt == 2


def test_pause_and_resume_queue(page: Page, server: Server) -> None:
    server.treadle.store.set_queue("ui-paused", paused=False)
    first = server.treadle.defer("ui.paused", {"n": 1})
    _wait_status(server, first.id, JobStatus.SUCCEEDED)
    login(page, server)
    page.goto(server.url + "/queues")
    row = page.locator("tr[data-queue='ui-paused']")
    row.get_by_role("button", name="Pause queue ui-paused").click()
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "paused")
    assert server.treadle.store.queue("ui-paused").paused  # type: ignore[attr-defined]
    held = server.treadle.defer("ui.paused", {"n": 2})
    # Claims take the oldest job first: once a job enqueued after `held` has run, a claim
    # passed `held` over. (Waiting on that, not on a sleep.)
    later = server.treadle.defer("ui.echo", {"message": "after the held job"})
    _wait_status(server, later.id, JobStatus.SUCCEEDED)
    assert server.treadle.get_job(held.id).status is JobStatus.QUEUED
    shot(page, "08-queues-paused")
    row.get_by_role("button", name="Resume queue ui-paused").click()
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "active")
    _wait_status(server, held.id, JobStatus.SUCCEEDED)
    row.get_by_label("Concurrency limit for ui-paused").fill("3")
    row.get_by_role("button", name="Set").click()
    expect(page.get_by_role("status")).to_contain_text("at most 3")
    shot(page, "09-queues")


def test_script_in_payload_is_shown_as_text(page: Page, server: Server) -> None:
    dialogs: list[str] = []

    def on_dialog(d: Dialog) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    evil = "<script>alert('xss')</script><img src=x onerror=\"alert('img')\">"
    login(page, server)
    page.goto(server.url + "/jobs")
    page.click("summary:has-text('Submit a job')")
    page.select_option("#s-task", "ui.echo")
    page.fill("#s-payload", json.dumps({"message": evil}))
    page.click("#submit button[type=submit]")
    page.wait_for_url(f"{server.url}/jobs/*")
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "succeeded",
                                                               timeout=15_000)
    expect(page.get_by_test_id("payload")).to_contain_text(evil.replace('"', '\\"'))
    expect(page.get_by_test_id("result")).to_contain_text("<script>alert('xss')</script>")
    expect(page.locator(".timeline .log")).to_contain_text(evil)
    assert page.locator("main script").count() == 0
    assert page.locator("main img").count() == 0
    page.goto(server.url + "/jobs")
    page.wait_for_timeout(500)
    assert dialogs == []
    shot(page, "10-xss-escaped")


def test_tenant_key_sees_only_its_tenant(page: Page, server: Server) -> None:
    other = server.treadle.defer("ui.echo", {"message": "default-tenant"})
    mine = server.treadle.defer("ui.echo", {"message": "acme"}, tenant="acme")
    login(page, server, server.tenant_key)
    page.goto(server.url + "/jobs")
    expect(page.locator(f"a[href='/jobs/{mine.id}']")).to_be_visible()
    expect(page.locator(f"a[href='/jobs/{other.id}']")).to_have_count(0)
    resp = page.goto(f"{server.url}/jobs/{other.id}")
    assert resp is not None and resp.status == 404
    page.goto(server.url + "/queues")
    expect(page.get_by_role("button", name="Pause queue default")).to_have_count(0)


def test_posts_without_csrf_token_are_refused(page: Page, server: Server) -> None:
    job = server.treadle.defer("ui.boom", {"message": "csrf"})
    _wait_status(server, job.id, JobStatus.FAILED)
    login(page, server)
    resp = page.request.post(f"{server.url}/jobs/{job.id}/retry", form={"x": "1"})
    assert resp.status == 403
    resp = page.request.post(f"{server.url}/jobs/{job.id}/retry",
                             form={"csrf_token": "forged"})
    assert resp.status == 403
    assert server.treadle.get_job(job.id).status is JobStatus.FAILED


def test_workers_editor_and_metrics(page: Page, server: Server) -> None:
    login(page, server)
    # The menu names the concept in full (ADR 0023); the old address still leads here.
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Dynamic workers", exact=True).click()
    expect(page).to_have_url(server.url + "/dynamic-workers/new")
    page.goto(server.url + "/workers/new")
    expect(page).to_have_url(server.url + "/dynamic-workers/new")
    expect(page.locator(".CodeMirror")).to_be_visible()
    expect(page.locator(".CodeMirror .cm-keyword").first).to_be_visible()  # highlighted
    expect(page.locator("#workers-unavailable")).to_have_count(0)
    page.select_option("#w-language", "python")
    expect(page.locator(".CodeMirror")).to_contain_text("def handler")
    shot(page, "11-workers-new")
    page.goto(server.url + "/metrics")
    expect(page.locator("[data-chart='latency'] canvas")).to_be_visible()
    shot(page, "12-metrics")
    # The same URL still serves Prometheus text to a scraper.
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_phone_layout(page: Page, server: Server) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, server)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"page scrolls sideways on a phone ({width}px)"
    shot(page, "13-dashboard-phone")
    page.goto(server.url + "/jobs")
    shot(page, "14-jobs-phone")


def _set_code(page: Page, code: str) -> None:
    """Type into the CodeMirror editor the way a user does (select all, then type)."""
    page.locator(".CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # CodeMirror auto-indents and closes nothing by default; typing line by line keeps the
    # indentation we give (each new line starts at column 0 after Home + select-to-start).
    page.evaluate(
        "code => document.querySelector('.CodeMirror').CodeMirror.setValue(code)", code
    )


def _run_now(page: Page) -> None:
    """Click "Run now" and wait for a new result (another job, or a refusal) to replace the
    previous one."""
    link = page.locator("#worker-run-summary a")
    before = link.get_attribute("href") if link.count() else None
    alert = page.locator("#worker-result > [role=alert]")
    old_alert = alert.inner_text() if alert.count() else None
    page.get_by_role("button", name="Run now").click()
    page.wait_for_function(
        """([before, oldAlert]) => {
            const a = document.querySelector('#worker-run-summary a');
            const al = document.querySelector('#worker-result > [role=alert]');
            return (a && a.getAttribute('href') !== before)
                || (al && !a && al.innerText !== oldAlert);
        }""",
        arg=[before, old_alert], timeout=30_000,
    )


def test_workers_write_run_and_see_output(page: Page, server: Server) -> None:
    need_bwrap()
    login(page, server, server.tenant_key)
    page.goto(server.url + "/dynamic-workers/new")
    page.select_option("#w-language", "javascript")
    page.locator(".CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("async function handler(input, env) {\n")
    page.keyboard.type("console.log('typed <b>' + input.n);\n")
    page.keyboard.type("return {sum: input.n + 1};\n}")
    page.fill("#w-input", json.dumps({"n": 41}))
    page.fill("input[name=timeout]", "3")
    _run_now(page)
    summary = page.locator("#worker-run-summary")
    expect(summary).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(page.locator("#worker-run-output")).to_contain_text('"sum": 42')
    # Console output is shown as text, never as markup.
    expect(page.locator("#worker-run-console")).to_have_text("typed <b>41\n")
    assert page.locator("#worker-run-console b").count() == 0
    shot(page, "15-workers-run-ok")
    job_link = summary.get_by_role("link")
    job_id = int(job_link.get_attribute("href").rsplit("/", 1)[1])  # type: ignore[union-attr]
    job = server.treadle.get_job(job_id)
    assert job.kind.value == "code" and job.tenant == "acme" and job.result == {"sum": 42}

    # Cached mode in Python: the same warm instance answers twice in a row.
    page.select_option("#w-language", "python")
    _set_code(page, "n = 0\ndef handler(input, env):\n    global n\n    n += 1\n"
                    "    print('call', n)\n    return n")
    page.check("input[name=mode][value=cached]")
    _run_now(page)
    expect(summary).to_have_attribute("data-status", "succeeded", timeout=30_000)
    first = int(page.locator("#worker-run-output").inner_text())
    _run_now(page)
    expect(page.locator("#worker-run-output")).to_have_text(str(first + 1), timeout=30_000)
    expect(page.locator("#worker-run-console")).to_contain_text(f"call {first + 1}")

    # Save it as a named worker.
    page.fill("#w-name", "ui-counter")
    page.get_by_role("button", name="Save worker").click()
    expect(page.locator("#worker-saved")).to_contain_text("ui-counter")
    saved = page.locator("#worker-saved code").first.inner_text()
    assert server.treadle.dynamic_workers.get(saved, tenant="acme").name == "ui-counter"
    shot(page, "16-workers-saved")


def test_workers_hostile_snippets_show_a_classified_error(page: Page, server: Server) -> None:
    need_bwrap()
    login(page, server, server.tenant_key)
    page.goto(server.url + "/dynamic-workers/new")
    page.select_option("#w-language", "python")
    _set_code(page, "import socket\ndef handler(input, env):\n    print('dialing out')\n"
                    "    socket.socket().connect(('1.1.1.1', 80))\n")
    _run_now(page)
    error = page.locator("#worker-run-error [data-error-class]")
    expect(error).to_have_attribute("data-error-class", "sandbox_violation", timeout=30_000)
    expect(page.locator("#worker-run-console")).to_contain_text("dialing out")
    shot(page, "17-workers-violation")

    page.select_option("#w-language", "javascript")
    _set_code(page, "function handler() { while (true) {} }")
    page.fill("input[name=timeout]", "1")
    _run_now(page)
    expect(error).to_have_attribute("data-error-class", "timeout", timeout=30_000)
    expect(page.locator("#worker-run-summary")).to_have_attribute("data-status", "failed")

    # A syntax error is reported as invalid input; a bad limit before anything runs.
    _set_code(page, "function handler( {")
    _run_now(page)
    expect(error).to_have_attribute("data-error-class", "invalid_input", timeout=30_000)
    page.fill("input[name=timeout]", "-5")
    _run_now(page)
    expect(page.locator("#worker-result [role=alert]")).to_contain_text("timeout")
    expect(page.locator("#worker-run-summary")).to_have_count(0)
    shot(page, "18-workers-bad-limit")


def test_workers_read_only_key_cannot_run(page: Page, server: Server) -> None:
    _, reader = keystore_for(server.treadle).create_key("acme", "read", name="ui-reader")
    login(page, server, reader)
    page.goto(server.url + "/dynamic-workers/new")
    expect(page.locator("#workers-readonly")).to_be_visible()
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#worker-result [role=alert]")).to_contain_text("may not run")
