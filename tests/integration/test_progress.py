"""Progress carried by the worker's heartbeat, and stall detection (ADR 0016)."""

from __future__ import annotations

import threading
import time
from typing import Any

from treadle import JobContext, Treadle
from treadle.core.clock import ManualClock
from treadle.core.lease import LeaseConfig
from treadle.streams.model import PROGRESS
from treadle.streams.repo import StreamRepo
from treadle.testing import run_worker


def test_progress_rides_with_the_heartbeat(db_url: str) -> None:
    """A thousand updates in a tight loop reach the database as the latest value, once
    per heartbeat: a handful of stream items, not a thousand."""
    app = Treadle(db_url)
    release = threading.Event()

    @app.task(pass_context=True, timeout=60)
    def frames(ctx: JobContext) -> None:
        for i in range(1, 1001):
            ctx.progress(i, 1000, "frames", live=False)
        assert release.wait(30)

    try:
        with run_worker(app, lease=LeaseConfig(seconds=0.6)):  # a beat every 0.2 s
            handle = frames.defer()
            deadline = time.monotonic() + 20
            seen: Any = None
            while time.monotonic() < deadline:
                seen = app.job_progress(handle.id)
                if seen is not None and seen["done"] == 1000:
                    break
                time.sleep(0.05)
            release.set()
            job = handle.wait(20)
        assert job.status.value == "succeeded", job.error
        assert seen == {"done": 1000.0, "total": 1000.0, "message": "frames"}
        items = [i for i in StreamRepo(app.store).read(handle.id, 0) if i.kind == PROGRESS]
        assert 1 <= len(items) <= 3  # the values at each beat that saw a change
    finally:
        release.set()
        app.close()


def test_a_stalled_attempt_fails_as_timeout_even_when_stuck(db_url: str) -> None:
    """The task blocks in a call that never returns (an uninterruptible wait, like a hung
    decoder); on the worker's clock the stall limit passes; the attempt is failed as
    ``timeout`` long before the job's own budget."""
    clock = ManualClock()
    app = Treadle(db_url, clock=clock)
    entered, release = threading.Event(), threading.Event()

    @app.task(pass_context=True, retries=0, timeout=3600)
    def hangs(ctx: JobContext) -> None:
        with ctx.watch_progress(5):
            ctx.progress(3, 10, "frames", live=False)
            entered.set()
            release.wait()  # no timeout: blocked in C, as a hung decoder would be

    try:
        with run_worker(app):
            handle = hangs.defer()
            assert entered.wait(20)
            clock.advance(6)
            job = handle.wait(20)
            release.set()
        assert job.status.value == "failed"
        assert job.error is not None and job.error.error_class.value == "timeout"
        assert job.error.message.startswith("stalled: no progress for 6.0 s (limit 5 s) at 3/10")
    finally:
        release.set()
        app.close()
