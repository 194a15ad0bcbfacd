"""The pickup probe's Treadle app (``bench/pickup_probe.py``, ADR 0031): the hand-off
benchmark's append task, plus timestamps taken inside the worker process at each step of
a pickup. The store's ``wait_for_work`` and ``claim`` and the executor's ``_start`` are
wrapped here (bench only): the wait's return (the wake-up), the claim that returned jobs
(start, end), the job handed to its executor thread; the task adds its own start. The
URL comes from ``TREADLE_DATABASE_URL`` (the CLI sets it from ``--db``)."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from treadle import Treadle
from treadle.worker.slots import Slots

_marks: dict[str, float] = {"woke": 0.0, "claim0": 0.0, "claim1": 0.0, "handed": 0.0}


def _wrap_store(cls: type) -> None:
    wait, claim, take = cls.wait_for_work, cls.claim, cls.take_handed

    @functools.wraps(wait)
    def wait_for_work(self: Any, timeout: float, park: Any = None) -> bool:
        woke = wait(self, timeout, park)
        _marks["woke"] = time.time()
        return bool(woke)

    @functools.wraps(take)
    def take_handed(self: Any, worker: str) -> Any:
        # A job handed by its enqueue (ADR 0034) needs no claim: its "claim" is taking it.
        t0 = time.time()
        jobs = take(self, worker)
        if jobs:
            _marks["claim0"], _marks["claim1"] = t0, time.time()
        return jobs

    @functools.wraps(claim)
    def claim_(self: Any, **kw: Any) -> Any:
        t0 = time.time()
        jobs = claim(self, **kw)
        if jobs:
            _marks["claim0"], _marks["claim1"] = t0, time.time()
        return jobs

    cls.wait_for_work, cls.claim = wait_for_work, claim_  # type: ignore[attr-defined]
    cls.take_handed = take_handed  # type: ignore[attr-defined]


def _wrap_start() -> None:
    start = Slots._start

    @functools.wraps(start)
    def _start(self: Any, entry: Any) -> None:
        start(self, entry)
        _marks["handed"] = time.time()

    Slots._start = _start  # type: ignore[method-assign]


def build_app(url: str) -> Treadle:
    app = Treadle(url)

    @app.task(name="append", queue="default", retries=0)
    def append(path: str, i: int, enqueued: float) -> None:
        started = time.time()
        m = _marks
        with open(path, "a") as f:
            f.write(f"{i} {enqueued!r} {m['woke']!r} {m['claim0']!r} {m['claim1']!r} "
                    f"{m['handed']!r} {started!r}\n")

    return app


url = os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-bench.db")
if url.startswith("sqlite"):
    from treadle.store.sqlite.store import SQLiteStore as _Store
else:
    from treadle.store.postgres.store import PostgresStore as _Store  # type: ignore[assignment]
_wrap_store(_Store)
_wrap_start()
app = build_app(url)
