"""The benchmark's Treadle app factory: one no-op task, nothing else."""

from __future__ import annotations

import time
from typing import Any

from treadle import Treadle


def build_app(url: str) -> Treadle:
    """A Treadle app with the one no-op task the benchmark runs."""
    app = Treadle(url)

    @app.task(name="noop", queue="default", retries=0)
    def noop(**kwargs: Any) -> float:
        """No-op job: returns its start time (``time.time()``) for the latency test."""
        return time.time()

    return app
