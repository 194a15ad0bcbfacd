"""A test kit for apps built on Treadle (and for Treadle's own tests).

    from treadle.testing import ManualClock, migrated, run_worker

    app = Treadle(migrated(f"sqlite:///{tmp_path}/t.db"))
    with run_worker(app) as worker:          # a real Worker, in this process
        assert add.defer(a=1, b=2).wait(10).result == 3

``ManualClock`` moves only when told (``clock.advance(30)``): pass it to
``Treadle(url, clock=clock)`` to test delays, retries and leases without sleeping.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadle.core.clock import ManualClock
from treadle.kinds import JobKindPlugin
from treadle.worker import Worker, WorkerConfig

if TYPE_CHECKING:
    from treadle.app import Treadle

__all__ = ["ManualClock", "migrated", "run_worker", "sqlite_url"]


def sqlite_url(directory: Path | str, name: str = "treadle.db") -> str:
    """A SQLite URL for a database file in ``directory`` (e.g. pytest's ``tmp_path``)."""
    return f"sqlite:///{Path(directory) / name}"


def migrated(url: str, plugins: Iterable[JobKindPlugin] = ()) -> str:
    """Migrate the database at ``url`` (core schema, the built-in kinds' and ``plugins``'
    own migrations, as ``app.migrate()`` does); return ``url``."""
    from treadle.app import Treadle

    app = Treadle(url)
    try:
        for plugin in plugins:
            app.use(plugin)
        app.migrate()
    finally:
        app.close()
    return url


@contextlib.contextmanager
def run_worker(
    app: Treadle, *, join_timeout: float = 30.0, **config: Any
) -> Iterator[Worker]:
    """Run a worker for every kind ``app`` serves in a thread; stop it on exit.

    ``config`` are :class:`~treadle.worker.WorkerConfig` fields; the defaults suit tests
    (4 slots, a 0.2 s safety poll, a 5 s shutdown grace). On exit the worker drains (up
    to its grace) and its threads are joined, so nothing touches the store afterwards.
    """
    options: dict[str, Any] = {"concurrency": 4, "poll_interval": 0.2, "shutdown_grace": 5.0}
    options.update(config)
    worker = Worker(app.store, app.executors(), WorkerConfig(**options), **app.worker_options(),
                    clock=app.clock, observer=_observer(app))
    thread = threading.Thread(target=worker.run, name=f"treadle-test-{worker.id}", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(join_timeout)
        if thread.is_alive():
            raise RuntimeError(f"worker {worker.id} did not stop within {join_timeout}s")


def _observer(app: Treadle) -> Any:
    from treadle.observe import NULL_OBSERVER

    return app.observer if app.observer is not None else NULL_OBSERVER
