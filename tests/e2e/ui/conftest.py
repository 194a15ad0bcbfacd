"""A real Treadle server (API + UI) on a free 127.0.0.1 port, real workers, headless Chromium.

Chromium comes from Debian (``scripts/deps/chromium.sh``), never from ``playwright
install``; the browser context aborts every request that is not for 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("playwright")
pytest.importorskip("fastapi")

import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from treadle.api import ApiConfig, create_app
from treadle.api.auth import keystore_for
from treadle.app import Treadle
from treadle.context import JobContext
from treadle.core.errors import Permanent
from treadle.dynamic import DynamicWorkers
from treadle.testing import run_worker
from treadle.ui import mount

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ADMIN_KEY = "ui-test-admin-key-0123456789"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Server:
    url: str
    treadle: Treadle
    tenant_key: str  # read+submit key of tenant "acme"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register_tasks(app: Treadle) -> None:
    @app.task(name="ui.echo", pass_context=True, retries=0)
    def echo(message: str, ctx: JobContext) -> dict[str, str]:
        ctx.log(f"echoing {message}")
        return {"echo": message}

    @app.task(name="ui.boom", retries=0)
    def boom(message: str) -> None:
        raise Permanent(f"boom: {message}")

    @app.task(name="ui.paused", queue="ui-paused", retries=0)
    def paused(n: int) -> int:
        return n * 2


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        script = ROOT / "scripts" / "deps" / "chromium.sh"
        if shutil.which("apt-get") is None or subprocess.call([str(script)]) != 0:
            pytest.skip("Chromium is missing and scripts/deps/chromium.sh could not install it")
    db = tmp_path_factory.mktemp("ui") / "ui.db"
    app = Treadle(f"sqlite:///{db}")
    app.use(DynamicWorkers())  # the /dynamic-workers/new page and `code` jobs
    app.migrate()
    _register_tasks(app)
    _, tenant_key = keystore_for(app).create_key("acme", "read,submit", name="ui-tests")
    web = create_app(app, ApiConfig(admin_key=ADMIN_KEY))
    mount(web, app, secret="ui-tests-session-secret-0123456789")
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        # This worker runs `code` jobs too (the plug-in's SandboxManager starts on the
        # first run and is closed with the app).
        with run_worker(app, concurrency=2, name="ui-test-worker", shutdown_grace=2.0):
            yield Server(f"http://127.0.0.1:{port}", app, tenant_key)
    finally:
        uv.should_exit = True
        thread.join(10)
        app.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _local_only(route: Route) -> None:
    url = route.request.url
    if url.startswith(("http://127.0.0.1:", "data:", "blob:", "about:")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.route("**/*", _local_only)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page that fails the test on any script error or console error (CSP violations
    included: the policy forbids inline script, so a violation means a real regression)."""
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console: {msg.text}")
          if msg.type == "error" and not _expected(msg.text) else None)
    yield pg
    assert problems == [], problems


def _expected(text: str) -> bool:
    # Pages the tests deliberately request with an error status log "Failed to load".
    return "status of 40" in text


def need_bwrap() -> None:
    """Skip a test that runs sandboxed code when bubblewrap is missing and not installable."""
    if shutil.which("bwrap") is None and subprocess.call(
        ["sh", str(ROOT / "scripts" / "deps" / "bubblewrap.sh")]
    ) != 0:
        pytest.skip("bubblewrap (bwrap) is missing")
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is missing")


def login(page: Page, server: Server, key: str = ADMIN_KEY) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=api_key]", key)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(server.url + "/")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
