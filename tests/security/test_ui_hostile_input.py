"""Hostile input on the web control plane (ADR 0501): query strings, form fields and path
ids a logged-in tenant controls. Each answer is an HTML page (a 4xx error page, a 422
form with the message, or a redirect with a flash), never a 500, and a refused form
writes nothing. Both stores, through the real ASGI app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.e2e.api.conftest import ADMIN_KEY, tenant_keys
from tests.e2e.api.tasks_app import build_app
from treadle import Treadle, ui
from treadle.api import ApiConfig
from treadle.api.app import create_app
from treadle.core.job import JobFilter
from treadle.dynamic import DynamicWorkers
from treadle.kinds import use_builtin


@dataclass
class Browser:
    app: Treadle
    http: TestClient
    csrf: str

    def get(self, path: str) -> Any:
        return self.http.get(path, headers={"Accept": "text/html"}, follow_redirects=False)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        return self.http.post(path, data={"csrf_token": self.csrf, **data},
                              follow_redirects=False)

    def jobs(self) -> list[tuple[int, str, int]]:
        return [(j.id, j.status.value, j.attempt)
                for j in self.app.list_jobs(JobFilter(limit=1000))]


@pytest.fixture
def browser(db_url: str) -> Iterator[Browser]:
    """A browser logged in with tenant a's submit+read key."""
    app = use_builtin(build_app(db_url))
    app.migrate()
    keys = tenant_keys(app)
    asgi = create_app(app, ApiConfig(admin_key=ADMIN_KEY))
    ui.mount(asgi, app, secret="s" * 32)
    http = TestClient(asgi, raise_server_exceptions=False)
    try:
        form = http.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = http.post("/login", data={"api_key": keys["a"], "csrf_token": token.group(1)},
                      follow_redirects=False)
        assert r.status_code == 303, r.text
        page = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/jobs").text)
        assert page is not None
        yield Browser(app, http, page.group(1))
    finally:
        http.close()
        app.close()


def html(r: Any, *statuses: int) -> str:
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html"), r.text[:500]
    text: str = r.text
    return text


# Digits Python's str.isdigit() accepts but int() refuses, and ids beyond a bigint.
NOT_IDS = ["\u00b2", "\u2460", "99999999999999999999", "9223372036854775808"]


@pytest.mark.parametrize("value", NOT_IDS)
@pytest.mark.parametrize("query", ["/jobs?before_id={}", "/ui/jobs/status?newest={}",
                                   "/ui/jobs/status?before_id={}"])
def test_list_pages_ignore_ids_that_are_not_ids(browser: Browser, query: str,
                                                value: str) -> None:
    job = browser.app.defer("noop", tenant="tenant-a")
    page = html(browser.get(query.format(value)), 200)
    assert f"job-status-{job.id}" in page  # the filter is ignored, the list still shown


@pytest.mark.parametrize("job_id", ["99999999999999999999", "9223372036854775808"])
@pytest.mark.parametrize("path", ["/jobs/{}", "/ui/jobs/{}/live"])
def test_job_pages_of_ids_beyond_a_bigint_are_not_found_pages(browser: Browser, path: str,
                                                              job_id: str) -> None:
    html(browser.get(path.format(job_id)), 404)
    stream = browser.http.get(f"/ui/jobs/{job_id}/stream")
    assert stream.status_code == 404


@pytest.mark.parametrize("ids", [["\u00b2"], ["\u2460", "1"], ["99999999999999999999"]])
def test_bulk_actions_skip_ids_that_are_not_ids(browser: Browser, ids: list[str]) -> None:
    job = browser.app.defer("noop", tenant="tenant-a")
    before = browser.jobs()
    r = browser.post("/jobs/bulk", {"action": "cancel", "ids": ids})
    assert r.status_code == 303, r.text
    after = browser.jobs()
    if "1" in ids:  # the one real id is acted on, the others skipped
        assert dict((i, s) for i, s, _ in after)[job.id] == "cancelled"
    else:
        assert after == before


@pytest.mark.parametrize("payload", ["[" * 10_000 + "]" * 10_000,
                                     '{"x": ' + "[" * 10_000 + "]" * 10_000 + "}"])
def test_submitting_a_payload_nested_too_deep_is_a_form_error(browser: Browser,
                                                              payload: str) -> None:
    page = html(browser.post("/jobs", {"task": "echo", "payload": payload}), 422)
    assert "payload" in page and "deep" in page
    assert browser.jobs() == []


@pytest.mark.parametrize("delay", ["inf", "-inf", "nan", "1e400", "1e308", "1e12",
                                   "99999999999999999999", "-1", "31622401"])
def test_submitting_a_delay_out_of_range_is_a_form_error(browser: Browser, delay: str) -> None:
    page = html(browser.post("/jobs", {"task": "noop", "payload": "{}", "delay": delay}), 422)
    assert "delay" in page
    assert browser.jobs() == []


def test_a_delay_in_range_is_still_accepted(browser: Browser) -> None:
    for delay in ("0", "1.5", "31622400"):
        r = browser.post("/jobs", {"task": "noop", "payload": "{}", "delay": delay})
        assert r.status_code == 303, r.text
    assert len(browser.jobs()) == 3


def test_running_code_with_input_nested_too_deep_is_a_message(browser: Browser) -> None:
    r = browser.post("/dynamic-workers/run", {
        "code": "def handler(i, env):\n    return 1\n", "language": "python",
        "input": "[" * 10_000 + "]" * 10_000})
    page = html(r, 200)
    assert 'role="alert"' in page and "input" in page
    assert browser.jobs() == []


@pytest.mark.parametrize("query", ["queue=a%00", "task=a%00b", "queue=%01x", "task=" + "t" * 300,
                                   "queue=%ED%A0%80%00"])
@pytest.mark.parametrize("path", ["/jobs", "/ui/jobs/status"])
def test_filters_that_cannot_be_names_match_nothing_on_both_stores(browser: Browser, path: str,
                                                                   query: str) -> None:
    """Before: PostgreSQL refused the NUL (the API's JSON 422 instead of the page) while
    SQLite answered the page; a name cut at 200 characters matched another name."""
    job = browser.app.defer("noop", tenant="tenant-a")
    page = html(browser.get(f"{path}?{query}"), 200)
    assert f"job-status-{job.id}" not in page


@pytest.mark.parametrize("bad_input", ['"\\u0000"', '"\\ud800"', "NaN", "[" * 150 + "]" * 150])
def test_running_code_with_an_input_that_cannot_be_stored_registers_nothing(
        browser: Browser, bad_input: str) -> None:
    """Before: the code was registered (a row written) before its input was refused."""
    r = browser.post("/dynamic-workers/run", {
        "code": "def handler(i, env):\n    return 1\n", "language": "python",
        "input": bad_input})
    page = html(r, 200)
    assert 'role="alert"' in page and "input" in page
    registry = browser.app.plugin(DynamicWorkers).registry
    assert registry.list("tenant-a") == []
    assert browser.jobs() == []
