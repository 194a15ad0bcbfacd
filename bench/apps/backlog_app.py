"""The app the backlog benchmark's workers load (``--app bench.apps.backlog_app:app``).

One no-op task (``bench/apps/noop_tasks.py``) and an observer that appends one line per
claim to ``TREADLE_BENCH_CLAIM_LOG``: wall time at the claim's end, jobs claimed, the
claim call's seconds (``store.claim``: plan, statements and round trips), and the highest
job id claimed (the bench places the claim in the backlog by it). The CLI keeps an
observer the app set unless ``--metrics-port`` is given.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO

from bench.apps.noop_tasks import build_app
from treadle.core.job import Job
from treadle.observe import Observer


class ClaimLog(Observer):
    """One line per claim that returned jobs; thread-safe, never raises."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        # Line-buffered: a worker stopped by a signal loses no claim already logged.
        self._out: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - process lifetime

    def claimed(self, worker: str, jobs: list[Job], seconds: float) -> None:
        if not jobs:
            return
        line = f"{time.time():.6f} {len(jobs)} {seconds:.6f} {max(j.id for j in jobs)}\n"
        try:
            with self._lock:
                self._out.write(line)
        except Exception:  # an observer must never break the worker
            pass


app = build_app(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-bench.db"))
if os.environ.get("TREADLE_BENCH_CLAIM_LOG"):
    app.observer = ClaimLog(os.environ["TREADLE_BENCH_CLAIM_LOG"])
