"""The hand-off benchmark's Treadle app (issue 13): one task appending a line to a file,
the same code every peer runs (``bench/peers/append_task.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

from treadle import Treadle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))
from append_task import append_line


def build_app(url: str) -> Treadle:
    app = Treadle(url)

    @app.task(name="append", queue="default", retries=0)
    def append(path: str, i: int, enqueued: float) -> None:
        append_line(path, i, enqueued)

    return app
