"""The Treadle app the API tests serve and run (``--app tests.e2e.api.tasks_app:app``)."""

from __future__ import annotations

import os
import time
from typing import Any

from treadle.app import Treadle
from treadle.core.errors import Permanent
from treadle.dynamic import DynamicWorkers
from treadle.sandbox import SandboxManager


def register(app: Treadle) -> Treadle:
    @app.task(name="echo", retries=0)
    def echo(**payload: Any) -> dict[str, Any]:
        return payload

    @app.task(name="add", retries=0)
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="noop", retries=0)
    def noop() -> None:
        return None

    @app.task(name="sleep", retries=0, timeout=60)
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task(name="boom", retries=0)
    def boom() -> None:
        raise Permanent("boom")

    @app.task(name="hooked", retries=0)
    def hooked(body: Any) -> Any:
        return {"got": body}

    return app


def build_app(url: str, sandboxes: SandboxManager | None = None) -> Treadle:
    """The test app, serving dynamic workers (kind ``code``) like `treadle server` does."""
    app = register(Treadle(url))
    app.use(DynamicWorkers(sandboxes))
    return app


# Loaded by `python -m treadle server|worker --app tests.e2e.api.tasks_app:app --db URL`.
app = build_app(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-api-test.db"))
