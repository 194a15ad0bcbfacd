"""Shared by the agent examples: a throwaway database and an in-process worker."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from treadle import Treadle
from treadle.testing import migrated, sqlite_url
from treadle.worker import Scheduler, Worker, WorkerConfig

SCRIPTS = Path(__file__).parent / "scripts"


def temp_db() -> str:
    """A migrated SQLite database in a fresh temp directory (pass a URL to keep one)."""
    return migrated(sqlite_url(tempfile.mkdtemp(prefix="treadle-example-")))


@contextlib.contextmanager
def worker(app: Treadle, *, concurrency: int = 8, scheduler: bool = False) -> Iterator[Worker]:
    """A worker for every kind the app serves (with the scheduler when asked), in a thread;
    what ``treadle worker --app ...`` runs in production."""
    w = Worker(app.store, app.executors(),
               WorkerConfig(concurrency=concurrency, poll_interval=0.2, shutdown_grace=5.0),
               scheduler=Scheduler(app) if scheduler else None, clock=app.clock,
               **app.worker_options())
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    try:
        yield w
    finally:
        w.stop()
        thread.join(30)
